/* KServe v2 (Open Inference Protocol) answers: a native model's output value as named
 * output tensors, a Python handler's body as a v2 response. Pure: they encode into a
 * buffer and send nothing. Not an API: only src/serve/ includes it. Any thread. */
#ifndef WK_SERVE_V2_ENCODE_H
#define WK_SERVE_V2_ENCODE_H

#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"
#include "tensor/oip.h"
#include "tensor/tensor.h"

typedef struct wk_model_s wk_model_t;

/* The name of item k of wick.<key> ("inputs" / "outputs" declared in the model config),
 * or NULL. */
const char *wk__declared_name(const wk_model_t *m, const char *key, size_t k);

/* Appends the response for v (a tensor, or a list or dict of tensors) to r: its outputs
 * named (dict keys, wick.outputs, else OUTPUT__k), filtered and binary as r asks. The JSON
 * part's length goes to *json_len (< out->len when binary data follows). WK_EINVAL when r
 * asks for an output the model lacks (a client error), WK_EUNSUPPORTED when v is not made
 * of tensors, WK_ENOMEM. */
int wk__v2_encode_value(const wk_model_t *m, const wk_oip_request_t *r, const wk_value_t *v,
                        wk_buf_t *out, size_t *json_len, wk_err_t *err);

/* Appends the response for a Python handler's answer body: a JSON object with "outputs"
 * gets model_name, model_version and id added, its outputs picked as r lists them and
 * those r wants in binary moved after the JSON; anything else becomes one BYTES output.
 * WK_EINVAL when r asks for an output the answer lacks, WK_EMODEL when an output to send
 * in binary has data that does not fit its shape and datatype (err says which), WK_ENOMEM. */
int wk__v2_encode_body(const wk_model_t *m, const wk_oip_request_t *r, const char *body,
                       size_t len, wk_buf_t *out, size_t *json_len, wk_err_t *err);

#endif
