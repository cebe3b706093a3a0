/* libFuzzer target for tensor/numjson: parses arbitrary bytes as a request body (and, with
 * the first byte choosing a dtype, as one tensor); whatever parses is printed, and the
 * printed text must parse back to the same shape and the same bits. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "tensor/numjson.h"

static void check_round_trip(const wk_tensor_t *t) {
  wk_buf_t b = WK_BUF_INIT;
  if (wk_json_print_tensor(&b, t) != 0) abort();
  wk_tensor_t back;
  wk_err_t err;
  if (wk_json_parse_tensor(b.data, b.len, t->dtype, &back, &err) != 0) abort();
  if (back.nbytes != t->nbytes) abort();
  if (wk_tensor_numel(t) > 0) {
    /* an empty tensor prints as [] whatever its shape; others keep theirs */
    if (back.ndim != t->ndim || memcmp(back.shape, t->shape, sizeof(int64_t) * (size_t)t->ndim))
      abort();
    if (memcmp(back.data, t->data, t->nbytes) != 0) abort();
  }
  wk_tensor_destroy(&back);
  wk_buf_destroy(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  wk_json_inputs_t in;
  wk_err_t err;
  err.msg[0] = '\0';
  if (wk_json_parse_inputs((const char *)data, size, &in, &err) == 0) {
    for (size_t i = 0; i < in.count; i++)
      check_round_trip(&in.tensors[i]);
    wk_json_inputs_destroy(&in);
  } else if (err.msg[0] == '\0') {
    abort(); /* every failure says why */
  }
  if (size > 0) {
    wk_tensor_t t;
    wk_dtype_t dt = (wk_dtype_t)(data[0] % WK_DT_COUNT);
    if (wk_json_parse_tensor((const char *)data + 1, size - 1, dt, &t, &err) == 0) {
      check_round_trip(&t);
      wk_tensor_destroy(&t);
    }
  }
  return 0;
}
