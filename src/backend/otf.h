/* The OTF codec: TorchServe's frontend/backend frames as docs/otf-protocol.md describes
 * them. Encodes load ('L') and inference ('I') frames and decodes the worker's response
 * frames from bytes that may be incomplete. No I/O here (see backend/pyworker). */
#ifndef WK_BACKEND_OTF_H
#define WK_BACKEND_OTF_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Limits applied to response frames (the worker applies the same to requests). */
#define WK_OTF_MAX_FRAME (1024L * 1024 * 1024) /* one response frame, bytes */
#define WK_OTF_MAX_STRING (1024L * 1024)       /* id, message, content type, header */
#define WK_OTF_MAX_REQUESTS 4096               /* requests (predictions) in one batch */
#define WK_OTF_MAX_HEADERS 4096                /* headers of one request/prediction */
#define WK_OTF_MAX_PARAMS 4096                 /* parameters of one request */
#define WK_OTF_MAX_VALUE 0x7fffffffL           /* a value a length field can carry */

/* Positive return of wk_otf_parse_response: the bytes so far are a valid prefix of a
 * frame, read more and call again with all of them. */
#define WK_OTF_NEED_MORE 1

/* ---- encoding ---- */

typedef struct wk_otf_load_s {
  const char *model_name;
  const char *model_path; /* the unpacked model directory, absolute */
  int batch_size;         /* 1 or more */
  const char *handler;    /* NULL or "": the manifest's handler */
  int gpu_id;             /* -1: no GPU */
  const char *envelope;   /* NULL or "": none; body, json, kserve, kservev2 (service_envelope) */
  int limit_max_image_pixels; /* 0 lifts PIL's limit */
} wk_otf_load_t;

typedef struct wk_otf_kv_s {
  const char *name;
  const char *value;
} wk_otf_kv_t;

typedef struct wk_otf_param_s {
  const char *name;         /* "body" for a raw body, else the form field */
  const char *content_type; /* NULL or "" when unknown */
  const void *value;
  size_t value_len;
} wk_otf_param_t;

typedef struct wk_otf_request_s {
  const char *id;
  const wk_otf_kv_t *headers;
  size_t n_headers;
  const wk_otf_param_t *params;
  size_t n_params;
} wk_otf_request_t;

/* Appends a load frame to b. Returns 0, or WK_EINVAL/WK_ETOOBIG/WK_ENOMEM with b left
 * as it was. Any thread (b has one owner). */
int wk_otf_encode_load(wk_buf_t *b, const wk_otf_load_t *load, wk_err_t *err);

/* Appends an inference frame holding reqs[0..n) (1 <= n <= WK_OTF_MAX_REQUESTS) to b.
 * The caller keeps ownership of reqs. Same returns as wk_otf_encode_load. */
int wk_otf_encode_inference(wk_buf_t *b, const wk_otf_request_t *reqs, size_t n,
                            wk_err_t *err);

/* ---- decoding ---- */

/* Strings below are NUL-terminated copies (a NUL inside the wire value shortens them);
 * body keeps its exact bytes and is NUL-terminated too. */
typedef struct wk_otf_prediction_s {
  const char *id;
  const char *content_type; /* "" when the handler set none */
  int status;
  const char *reason; /* usually "" */
  wk_otf_kv_t *headers;
  size_t n_headers;
  const uint8_t *body;
  size_t body_len;
} wk_otf_prediction_t;

typedef struct wk_otf_response_s {
  int code;            /* 200 for success */
  const char *message;
  wk_otf_prediction_t *preds;
  size_t n_preds;     /* 0 for a load response */
  void *mem_;         /* the one block that holds everything above */
} wk_otf_response_t;

/* Decodes one response frame from the start of buf[0..len). Returns 0 and fills out
 * (the caller frees it with wk_otf_response_destroy; it copies what it needs, so buf
 * may be freed at once) and *consumed (bytes of the frame); WK_OTF_NEED_MORE when buf
 * is a valid but incomplete prefix; WK_EFORMAT for a negative or malformed length;
 * WK_ETOOBIG for a limit above; WK_ENOMEM. On anything but 0, out and *consumed are
 * unchanged. Any thread. */
int wk_otf_parse_response(const void *buf, size_t len, wk_otf_response_t *out,
                          size_t *consumed, wk_err_t *err);

/* Frees what wk_otf_parse_response put in r; r is zeroed. NULL-safe. */
void wk_otf_response_destroy(wk_otf_response_t *r);

/* The value of header name (ASCII case-insensitive) of p, or NULL. */
const char *wk_otf_prediction_header(const wk_otf_prediction_t *p, const char *name);

/* 1 when r is an intermediate frame of a stream (a prediction has the header
 * `ts_stream_next: true`), so more frames follow for this batch; else 0. */
int wk_otf_response_streams(const wk_otf_response_t *r);

#ifdef __cplusplus
}
#endif

#endif
