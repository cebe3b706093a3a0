/* The Open Inference Protocol (KServe v2) request and response bodies, JSON and the binary
 * tensor data extension, independent of models and HTTP.
 *
 * A request body is JSON, optionally followed by binary tensor data: then json_len (the
 * Inference-Header-Content-Length header) says where the JSON ends, and each input with
 * parameters.binary_data_size takes that many bytes of the rest, in input order. Numeric
 * data (flat or nested lists in JSON; little-endian row-major in binary) becomes a
 * wk_tensor_t of the input's shape; BYTES elements are JSON strings, or in binary a 4-byte
 * little-endian length before each element. torch 1.13 has no unsigned types above uint8:
 * UINT16 becomes int32, UINT32 and UINT64 become int64, and a UINT64 value above
 * 2^63 - 1 is refused. BF16 is accepted as an extension. */
#ifndef WK_TENSOR_OIP_H
#define WK_TENSOR_OIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/limits.h"
#include "tensor/tensor.h"

#define WK_OIP_MAX_TENSORS 16 /* inputs, or requested outputs, in one request */

typedef struct wk_oip_input_s {
  char *name;
  char datatype[8]; /* as the client spelled it: "FP32", "BYTES", ... */
  int ndim;
  int64_t shape[WK_MAX_DIMS];
  int is_bytes;       /* BYTES: elems below; else tensor */
  int binary;         /* the data came as binary tensor data (not JSON) */
  wk_tensor_t tensor; /* numeric data, owned */
  size_t n_elems;     /* BYTES elements (== the product of shape) */
  unsigned char **elems; /* each owned */
  size_t *elem_lens;
} wk_oip_input_t;

typedef struct wk_oip_output_req_s {
  char *name;
  int binary; /* -1: not said (the request's binary_data_output decides), 0, 1 */
} wk_oip_output_req_t;

typedef struct wk_oip_request_s {
  char *id;              /* NULL when the request has none */
  char *parameters;      /* the request's "parameters" object as JSON text, or NULL */
  int binary_output;     /* parameters.binary_data_output */
  wk_oip_input_t inputs[WK_OIP_MAX_TENSORS];
  size_t n_inputs;
  wk_oip_output_req_t outputs[WK_OIP_MAX_TENSORS];
  size_t n_outputs;      /* 0: every output */
} wk_oip_request_t;

/* Parses body[0..len): JSON in body[0..json_len) (json_len == len without binary data).
 * Errors name the field, e.g. "inputs[1] 'x': shape [2,3] holds 6 elements, data has 5".
 * On success the caller owns out (wk_oip_request_destroy); on failure out is cleared. */
int wk_oip_parse_request(const char *body, size_t len, size_t json_len, wk_oip_request_t *out,
                         wk_err_t *err);
void wk_oip_request_destroy(wk_oip_request_t *r);

/* Builds a request without JSON (another transport's, e.g. gRPC's ModelInfer): appends an
 * input whose data comes as binary tensor data (len bytes, as after a JSON header), checked
 * as the parser checks one (datatype, shape, size, unsigned ranges; messages name
 * "inputs[i] 'name'"); or a requested output (binary: -1 not said, 0, 1). Start from a
 * zeroed request; on failure it stays valid for wk_oip_request_destroy. */
int wk_oip_add_input(wk_oip_request_t *r, const char *name, const char *datatype, const int64_t *shape,
                     size_t ndim, const void *data, size_t len, wk_err_t *err);
int wk_oip_add_output(wk_oip_request_t *r, const char *name, int binary, wk_err_t *err);

/* Writes r back as a JSON-only request (binary tensor data turned into JSON "data"), for
 * handlers that read the request as JSON. BYTES elements are JSON strings when every
 * element of the input is UTF-8; else base64, and the input's parameters say
 * {"content_encoding": "base64"}. WK_ENOMEM. */
int wk_oip_request_json(const wk_oip_request_t *r, wk_buf_t *out);

/* The protocol's datatype name of a torch dtype ("FP32", "INT64", "BOOL", "BF16"). */
const char *wk_oip_datatype(wk_dtype_t dt);

/* Appends the binary tensor data of `output`, one output object of a response in JSON
 * ({name, datatype, shape, data}; `idx` its place, for messages): numbers little-endian at
 * the datatype's width (UINT16 two bytes, FP16/BF16 rounded to nearest even), BYTES a
 * 4-byte length before each element; the byte count binary_data_size announces. The data
 * must fit the shape and datatype as a request's would (WK_EINVAL naming the output and
 * the element), WK_ENOMEM. For answers written as JSON (Python handlers) that a client
 * asked to get in binary. */
struct json_t;
int wk_oip_output_binary(const struct json_t *output, size_t idx, wk_buf_t *out, wk_err_t *err);

/* One output of a response: a tensor, or BYTES elements. */
typedef struct wk_oip_output_s {
  const char *name;
  const wk_tensor_t *tensor; /* NULL for BYTES */
  size_t n_elems;            /* BYTES */
  const char *const *elems;
  const size_t *elem_lens;
  int binary; /* 1: data goes after the JSON, with parameters.binary_data_size */
} wk_oip_output_t;

/* Writes a response: {"model_name", "model_version", "id" (when given), "outputs"}; binary
 * outputs' bytes follow the JSON, whose length goes to *json_len (== out->len added when
 * nothing is binary). */
int wk_oip_write_response(wk_buf_t *out, const char *model, const char *version, const char *id,
                          const wk_oip_output_t *outs, size_t n, size_t *json_len);

#endif
