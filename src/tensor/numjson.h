/* JSON for tensors: a direct scanner that turns request bodies (nested numeric lists and
 * the envelopes around them) into tensors without building a JSON tree, and a printer
 * that writes value trees as JSON with floats that read back to the same float32. */
#ifndef WK_TENSOR_NUMJSON_H
#define WK_TENSOR_NUMJSON_H

#include <stddef.h>

#include "core/buf.h"
#include "core/error.h"
#include "tensor/tensor.h"

/* The tensors a request carries, in order. name is NULL for positional inputs and set
 * when the body maps names to tensors ({"inputs": {"x": [...], "y": [...]}}). */
typedef struct wk_json_inputs_s {
  wk_tensor_t tensors[WK_MAX_NAMED_INPUTS];
  char *names[WK_MAX_NAMED_INPUTS];
  size_t count;
} wk_json_inputs_t;

void wk_json_inputs_destroy(wk_json_inputs_t *in);

/* Parses a request body into tensors. Accepted forms:
 *   [[...], ...]                 a nested list: one tensor, as is
 *   {"data": X}                  X as is (first dimension = rows); also "body"
 *   {"instances": [row, ...]}    rows stacked along a new first dimension
 *   {"inputs": X}                one tensor
 *   {"inputs": {"a": X, ...}}    tensors by forward() argument name
 *   {"inputs": [X0, X1]}         not distinguishable from one tensor: read as one tensor
 * An optional top-level "dtype" ("float32" default, "float64", "int64", "int32", "bool",
 * ...) sets the dtype of every tensor. Other top-level keys are skipped.
 * Errors carry a message with the byte offset and line:column, e.g.
 *   "malformed JSON at line 1, column 7 (offset 6): expected a number or '['"
 *   "ragged nested list at offset 14: expected 3 elements at depth 2, found 2". */
int wk_json_parse_inputs(const char *body, size_t len, wk_json_inputs_t *out, wk_err_t *err);

/* Parses one nested numeric list starting at body[0] into t with dtype dt. */
int wk_json_parse_tensor(const char *body, size_t len, wk_dtype_t dt, wk_tensor_t *t,
                         wk_err_t *err);

/* Appends v as JSON: tensors as nested lists (0-d as a number), lists as arrays, dicts as
 * objects. float32 with the shortest text that reads back to the same float32; float64
 * with 17 significant digits; NaN and infinities as NaN, Infinity, -Infinity (as Python's
 * json module writes them). */
int wk_json_print_value(wk_buf_t *out, const wk_value_t *v);
int wk_json_print_tensor(wk_buf_t *out, const wk_tensor_t *t);

#endif
