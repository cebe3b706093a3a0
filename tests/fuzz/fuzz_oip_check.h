/* The checks both tensor/oip fuzz targets run on one body (header-only; included once
 * per target). */
#ifndef WK_FUZZ_OIP_CHECK_H
#define WK_FUZZ_OIP_CHECK_H

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "tensor/oip.h"

static void wk_fuzz_oip_check(const char *body, size_t len, size_t json_len) {
  wk_oip_request_t r;
  wk_err_t err;
  err.msg[0] = '\0';
  if (wk_oip_parse_request(body, len, json_len, &r, &err) != 0) {
    if (err.msg[0] == '\0') abort(); /* every failure says why */
    return;
  }
  if (r.n_inputs == 0 || r.n_inputs > WK_OIP_MAX_TENSORS) abort();
  wk_oip_output_t outs[WK_OIP_MAX_TENSORS];
  for (size_t i = 0; i < r.n_inputs; i++) {
    const wk_oip_input_t *in = &r.inputs[i];
    int64_t numel = 1;
    for (int d = 0; d < in->ndim; d++) numel *= in->shape[d];
    if (in->is_bytes) {
      if ((int64_t)in->n_elems != numel) abort();
      outs[i] = (wk_oip_output_t){in->name, NULL, in->n_elems, (const char *const *)in->elems,
                                  in->elem_lens, (int)(i & 1)};
    } else {
      if (wk_tensor_numel(&in->tensor) != numel) abort();
      if (in->tensor.nbytes != (size_t)numel * wk_dtype_size(in->tensor.dtype)) abort();
      outs[i] = (wk_oip_output_t){in->name, &in->tensor, 0, NULL, NULL, (int)(i & 1)};
    }
  }
  wk_buf_t b = WK_BUF_INIT;
  size_t head = 0;
  if (wk_oip_write_response(&b, "m", "1", r.id, outs, r.n_inputs, &head) != 0) abort();
  if (head > b.len) abort();
  /* the JSON part must parse, except that non-finite floats print as NaN/Infinity (as
   * Python's json writes them), which strict JSON parsers refuse */
  json_t *doc = json_loadb(b.data, head, 0, NULL);
  if (doc == NULL && !memmem(b.data, head, "NaN", 3) && !memmem(b.data, head, "Infinity", 8)) abort();
  json_decref(doc);
  wk_buf_destroy(&b);
  wk_oip_request_destroy(&r);
}

#endif
