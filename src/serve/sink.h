/* What a transport (the HTTP API today, gRPC later) hands serve/: a plain request (body,
 * content type, headers, query arguments) and a sink, the place the answer goes. serve/
 * never sees the transport's own request object, so any transport feeds the same queue.
 *
 * Threads: a wk_request_t is read only during the call it is passed to (the job copies
 * what it keeps). A sink is called from any thread (the HTTP thread for bad input, a
 * worker or the timeout monitor later), exactly once with reply or error, or once with
 * stream_begin followed by writes and one stream_end; after that final call the sink may
 * free itself and must not be touched again. */
#ifndef WK_SERVE_SINK_H
#define WK_SERVE_SINK_H

#include <stddef.h>

typedef struct wk_kv_s {
  const char *name;
  const char *value;
} wk_kv_t;

struct wk_oip_request_s;

typedef struct wk_request_s {
  const char *body; /* never NULL ("" when empty) */
  size_t body_len;
  const char *content_type; /* NULL when absent */
  const wk_kv_t *headers;   /* in arrival order */
  size_t n_headers;
  const wk_kv_t *args;      /* query arguments */
  size_t n_args;
  /* KServe v2 inference only: the request already decoded by its transport (gRPC), used
   * instead of the body, whose contents are moved out (the transport frees the rest). */
  struct wk_oip_request_s *v2;
} wk_request_t;

/* The value of query argument / header `name` (headers case-insensitively), or NULL. */
const char *wk_request_arg(const wk_request_t *r, const char *name);
const char *wk_request_header(const wk_request_t *r, const char *name);

typedef struct wk_sink_s wk_sink_t;

typedef struct wk_sink_ops_s {
  /* The answer: status, content type (copied) and body (taken; malloc'd or NULL). */
  void (*reply)(wk_sink_t *s, int status, const char *content_type, char *body, size_t len);
  /* A failure: status, TorchServe's error type ("BadRequestException") and a message;
   * the sink picks the error body its protocol uses. */
  void (*error)(wk_sink_t *s, int status, const char *type, const char *msg);
  /* A header for the answer, before reply or stream_begin. NULL: headers are dropped. */
  void (*header)(wk_sink_t *s, const char *name, const char *value);
  /* A streamed answer; NULL when this sink cannot carry one. begin returns 0 once the
   * status went out; write returns nonzero once the receiver has gone (keep calling end). */
  int (*stream_begin)(wk_sink_t *s, int status, const char *content_type);
  int (*stream_write)(wk_sink_t *s, const void *data, size_t len);
  void (*stream_end)(wk_sink_t *s, int failed);
  /* 1 when the receiver is known to have gone (the client closed its connection), so the
   * answer would be thrown away; 0 when it may still be waiting. May be NULL (never
   * gone). Called by whoever holds an unanswered job, from any thread. */
  int (*gone)(wk_sink_t *s);
} wk_sink_ops_t;

/* Embed as the first member of the transport's own sink struct. */
struct wk_sink_s {
  const wk_sink_ops_t *ops;
};

#endif
