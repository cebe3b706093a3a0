/* A job: one request on its way through a model, from the transport thread that parsed
 * it, through the queue, to the worker that runs it and the sink its answer goes to.
 * Not an API: only src/serve/ includes it.
 *
 * Ownership: the transport thread makes a job (wk__job_new), the handler's parse fills
 * its payload, the queue owns it while it waits, the worker that runs it frees it (or the
 * queue when it is refused or expires). Answering is separate from owning: whoever answers
 * first (a worker, the timeout monitor, the transport thread for bad input) wins, every
 * later answer is dropped, so a job is answered exactly once. */
#ifndef WK_SERVE_JOB_H
#define WK_SERVE_JOB_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "core/multipart.h"
#include "serve/sink.h"
#include "tensor/numjson.h"

typedef struct wk_model_s wk_model_t;
struct wk_oip_request_s;

/* How a job's successful answer is wrapped. Errors go to the sink, which knows its
 * protocol's error body. */
enum {
  WK__ENV_TS = 0, /* TorchServe: the handler's body as it is */
  WK__ENV_V1,     /* KServe v1: {"predictions": <body>} (or "explanations") */
  WK__ENV_V2,     /* KServe v2: named output tensors (serve/v2_encode.c) */
};

/* One parameter a Python handler sees (a key of its request dict): a query argument, a
 * form field or the body. */
typedef struct wk__field_s {
  char *name;         /* owned */
  char *content_type; /* owned; "" when none */
  const char *value;  /* into the job's data, or owned below */
  size_t len;
  char *owned;        /* the value when it is a decoded copy */
} wk__field_t;

typedef struct wk__job_s {
  wk_sink_t *sink;
  int envelope;            /* WK__ENV_* */
  int explain;             /* /explanations: integrated gradients (native) or explain=True */
  int describe;            /* Python: describe=True (GET /models/{m}?customized=true) */
  int64_t target;          /* explain: class index, -1 = the predicted class */
  int n_steps;             /* explain: quadrature points */
  /* the payload, filled by the handler's parse on the transport thread */
  wk_json_inputs_t inputs; /* tensor handler: forward()'s arguments */
  unsigned char *data;     /* image handlers: the encoded image; Python: the body (owned) */
  size_t data_len;
  char *content_type;      /* Python: the body's Content-Type (owned) */
  char id[24];             /* Python: the request id sent to the worker */
  struct wk__field_s *fields; /* Python: the handler's parameters, as TorchServe builds them */
  size_t n_fields;
  char **headers;          /* Python: request headers, name and value alternating */
  size_t n_headers;        /* pairs */
  struct wk_oip_request_s *v2; /* KServe v2: the request (its inputs moved out), owned */
  int64_t elements;        /* input elements, when the handler counts them (tensor); 0: not */
  /* the queue's */
  int64_t enqueued_us;
  int64_t deadline_us;
  _Atomic int answered;
  struct wk__job_s *next;
} wk__job_t;

/* A new job for m answering to sink; counts the request. With explain, target and n_steps
 * come from r's query (may be NULL); WK_EINVAL when they are bad, WK_ENOMEM. Transport
 * thread. */
int wk__job_new(wk_model_t *m, wk_sink_t *sink, const wk_request_t *r, int explain, int envelope,
                wk__job_t **out, wk_err_t *err);
void wk__job_free(wk__job_t *j);

/* Applies an explanation parameter given as text (a multipart field or a JSON field beside
 * the data): "target" or "n_steps"; other names and non-explain jobs are ignored. */
int wk__job_explain_param(wk__job_t *j, const char *name, const char *text, size_t len,
                          wk_err_t *err);

/* nginx's status for a request whose client closed the connection before it was answered;
 * counted apart (result="cancelled"), never read by anyone. */
#define WK__STATUS_CLIENT_GONE 499

/* 1 when j's receiver has gone (see wk_sink_ops_t.gone). Only while j is unanswered and
 * held by the caller (out of the queue, not yet running). */
int wk__job_client_gone(const wk__job_t *j);

/* The answers. Each returns 1 if this call answered j, 0 if it had been answered (the
 * body is then freed). Every answer is counted in the model's reply counters. Any thread. */
int wk__job_reply_error(wk_model_t *m, wk__job_t *j, int status, const char *type,
                        const char *msg);
/* The answer for a failure with code WK_E* (status and type from wk__error_status). */
int wk__job_fail(wk_model_t *m, wk__job_t *j, int code, const char *msg);
/* A handler's body, wrapped as j's envelope asks (v1: in "predictions"). */
int wk__job_reply_typed(wk_model_t *m, wk__job_t *j, int status, const char *content_type,
                        char *body, size_t len);
int wk__job_reply(wk_model_t *m, wk__job_t *j, int status, char *body, size_t len);
/* A native handler's output value: JSON for TorchServe and v1, named tensors for v2. */
int wk__job_reply_value(wk_model_t *m, wk__job_t *j, const struct wk_value_s *v);
/* Sends a KServe v2 response held in b (taken) to sink: JSON, or JSON followed by binary
 * data (json_len < b->len, with Inference-Header-Content-Length). */
void wk__sink_reply_v2(wk_sink_t *sink, wk_buf_t *b, size_t json_len);
/* A header for j's answer (dropped by sinks that carry none, e.g. a v1 instance). */
void wk__job_header(wk__job_t *j, const char *name, const char *value);
/* Starts a streamed answer; 1 if this call answered j. When j's envelope or sink cannot
 * stream, answers 501 and returns 0. Writes and the end go to j->sink directly. */
int wk__job_stream_begin(wk_model_t *m, wk__job_t *j, int status, const char *content_type);

/* The HTTP status and TorchServe error type of a WK_E* code, the one map every path uses:
 * bad input (EINVAL, EFORMAT, ECRC, EMODEL, EUNSAFE) 400 BadRequestException; ETOOBIG 413
 * PayloadTooLargeException; ENOTFOUND 404; EUNSUPPORTED 501 NotImplementedException; EBUSY
 * 503 ServiceUnavailableException; ETIMEDOUT 504 RequestTimeout; ENOMEM 507 (out of
 * memory, as TorchServe answers a worker's MemoryError); anything else 500
 * InternalServerException. type may be NULL. Any thread. */
int wk__error_status(int code, const char **type);

#endif
