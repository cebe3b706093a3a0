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
 *   "ragged nested list at line 1, column 10 (offset 9): expected 3 elements at depth 2,
 *    found 2" (depth 1 is the outermost list; the position is where the odd list opens).
 * Numbers follow JSON's grammar, plus NaN, Infinity and -Infinity (Python's json writes
 * them); float32/float64 values are the correctly rounded values of the decimal text (as
 * strtof/strtod give); float16/bfloat16 are rounded from the double. Integer dtypes read
 * integers exactly with a range check (2.0 and 1e3 are accepted, 2.5 is not); true and
 * false read as 1 and 0. On success the caller owns out (wk_json_inputs_destroy); on
 * failure out is untouched. Any thread. */
int wk_json_parse_inputs(const char *body, size_t len, wk_json_inputs_t *out, wk_err_t *err);

/* Parses one nested numeric list starting at body[0] into t with dtype dt. The whole of
 * body[0..len) must be that list or a bare number (0-d), with whitespace around it allowed.
 * On success t owns its data (wk_tensor_destroy); on failure t is untouched. */
int wk_json_parse_tensor(const char *body, size_t len, wk_dtype_t dt, wk_tensor_t *t,
                         wk_err_t *err);
/* As wk_json_parse_tensor, failing with WK_ETOOBIG past max_elems elements (capped at
 * WK_MAX_TENSOR_ELEMS): for callers that know how big the input may be. */
int wk_json_parse_tensor_max(const char *body, size_t len, wk_dtype_t dt, size_t max_elems,
                             wk_tensor_t *t, wk_err_t *err);

/* Appends v as JSON: tensors as nested lists (0-d as a number), lists as arrays, dicts as
 * objects. float32 (and float16/bfloat16, through float32) with the shortest text that
 * reads back to the same float32; float64 with the fewest of 15, 16 or 17 significant
 * digits that read back to the same double; floats always look like floats to Python
 * ("1.0", "1e+20"); NaN and infinities as NaN, Infinity, -Infinity (as Python's json
 * module writes them). Returns 0, WK_ENOMEM, WK_EINVAL for a malformed tensor, or
 * WK_ETOOBIG past WK_MAX_TENSOR_ELEMS elements (or lists). */
int wk_json_print_value(wk_buf_t *out, const wk_value_t *v);
int wk_json_print_tensor(wk_buf_t *out, const wk_tensor_t *t);

#endif
