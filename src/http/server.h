/* The HTTP layer: one libmicrohttpd daemon per listening address, bodies collected up to a
 * limit, and replies that may come later from any thread (the connection is suspended
 * meanwhile, so no HTTP thread waits for a model). Routing lives in api/, not here. */
#ifndef WK_HTTP_SERVER_H
#define WK_HTTP_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct wk_http_server_s wk_http_server_t;
typedef struct wk_http_req_s wk_http_req_t;

/* Called once per request, on an HTTP thread, when the whole body has arrived. The
 * handler must eventually call exactly one wk_http_reply* for req, either before it
 * returns or later from any thread. */
typedef void (*wk_http_handler_fn)(wk_http_req_t *req, void *ud);

typedef struct wk_http_opts_s {
  const char *name;      /* "inference", "management", "metrics": for logs and metrics */
  const char *host;      /* "127.0.0.1" */
  int port;              /* 0: any free port (see wk_http_server_port) */
  long max_body;         /* bytes; larger bodies get 413 before they are read */
  int threads;           /* HTTP event threads */
  int access_log;        /* one log line per request */
  int idle_timeout_s;    /* close a connection idle this long; 0: 60 */
  int max_connections;   /* accepted at once; more are closed at once; 0: 4096 */
  int max_per_client;    /* per client address; 0: no cap */
  int request_timeout_s; /* a request's header and body (or the wait for the next one on a
                            kept-alive connection) take at most this long; 0: 60 */
  wk_http_handler_fn handler;
  void *ud;
  /* HTTPS: both set to PEM text (copied), or both NULL for plain HTTP. */
  const char *tls_cert_pem; /* the certificate, optionally followed by its chain */
  const char *tls_key_pem;  /* the private key (PKCS#1 or PKCS#8, unencrypted) */
} wk_http_opts_t;

/* Listens on opts->host:port. Fails with a message naming the address, or with
 * libmicrohttpd's reason when the TLS certificate or key cannot be used. Main thread. */
int wk_http_server_start(const wk_http_opts_t *opts, wk_http_server_t **out, wk_err_t *err);
/* Stops accepting and closes connections. Every pending request must have been answered. */
void wk_http_server_stop(wk_http_server_t *s);
int wk_http_server_port(const wk_http_server_t *s);

/* Request accessors: valid until the reply is sent (any thread holding req). */
const char *wk_http_req_method(const wk_http_req_t *r);
const char *wk_http_req_path(const wk_http_req_t *r); /* URL path without the query */
/* Query argument value (NULL if absent); call from the handler only (HTTP thread). */
const char *wk_http_req_arg(wk_http_req_t *r, const char *key);
/* Request header value (NULL if absent); call from the handler only (HTTP thread). */
const char *wk_http_req_header(wk_http_req_t *r, const char *name);
const char *wk_http_req_body(const wk_http_req_t *r, size_t *len);
/* Calls fn for each request header in arrival order until it returns nonzero; returns the
 * number of headers visited. Call from the handler only (HTTP thread). */
int wk_http_req_each_header(wk_http_req_t *r, int (*fn)(void *ud, const char *name, const char *value),
                            void *ud);
/* The same for the query arguments (a key without "=value" has value ""). */
int wk_http_req_each_arg(wk_http_req_t *r, int (*fn)(void *ud, const char *name, const char *value),
                         void *ud);
/* Lets the reply be compressed (gzip or deflate) when the request's Accept-Encoding asks;
 * only routes whose clients decompress by that header call it (Triton's infer: its
 * clients send Accept-Encoding on every call but read other replies uncompressed). */
void wk_http_req_compressible(wk_http_req_t *r);
/* 1 when the client has closed its side of the connection (or it broke) before the reply:
 * the reply would be thrown away. A client that half-closes after sending its request
 * counts as gone, as nginx takes it (its 499). Any thread, until the reply. */
int wk_http_req_client_gone(wk_http_req_t *r);
/* Monotonic microseconds when the request line arrived. */
int64_t wk_http_req_start_us(const wk_http_req_t *r);
const char *wk_http_req_server_name(const wk_http_req_t *r);

/* Sends the reply. Takes ownership of body (malloc'd; may be NULL when len is 0);
 * content_type is copied.
 * Any thread, exactly once per request. */
void wk_http_reply(wk_http_req_t *r, int status, const char *content_type, char *body,
                   size_t len);
/* Adds a header to the reply that will be sent; call before wk_http_reply. */
void wk_http_reply_header(wk_http_req_t *r, const char *name, const char *value);
/* Replies {"code": status, "type": type, "message": msg} as TorchServe does; under /v1/
 * and /v2 the KServe form (wk_http_reply_kserve_error), which holds the same keys. */
void wk_http_reply_error(wk_http_req_t *r, int status, const char *type, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Replies {"key": msg}: on one line, or with pretty set as TorchServe indents its
 * {"status": ...} replies. */
void wk_http_reply_field(wk_http_req_t *r, int status, const char *key, const char *msg, int pretty);
/* Replies {"error": msg} as KServe's v1 and v2 protocols do, with TorchServe's code, type
 * and message beside it (TorchServe answers its KServe routes with those). */
void wk_http_reply_kserve_error(wk_http_req_t *r, int status, const char *type, const char *fmt,
                                ...) __attribute__((format(printf, 4, 5)));
/* Replies a copy of a JSON text. */
void wk_http_reply_json(wk_http_req_t *r, int status, const char *json, size_t len);

/* Streamed replies (chunked transfer encoding on HTTP/1.1): instead of wk_http_reply,
 * begin sends the status and headers (wk_http_reply_header before it), each write sends
 * a piece as soon as the client can take it, and end finishes the reply; with failed set
 * the connection is closed without the final chunk, so the client sees a cut reply rather
 * than a complete one. Any thread, one writer per request; end exactly once after begin.
 * begin returns WK_EINVAL when req was already answered; write returns WK_EIO once the
 * client has gone (the data is dropped; still call end). */
int wk_http_stream_begin(wk_http_req_t *r, int status, const char *content_type);
int wk_http_stream_write(wk_http_req_t *r, const void *data, size_t len);
void wk_http_stream_end(wk_http_req_t *r, int failed);

/* In-process requests: a request no socket brought, for another transport (gRPC) to pass
 * through the same routes. wk_http_local_new makes one (method, decoded path and body
 * copied; no server: wk_http_req_server_name answers server_name); add its query arguments
 * and headers, then hand it to a handler, which answers it as any other: the reply calls
 * done(ud, status, content_type, body, len) on the replying thread, with body's ownership
 * (free it), and frees the request. gone (may be NULL) answers wk_http_req_client_gone.
 * Streamed replies are refused (wk_http_stream_begin returns WK_EINVAL). A request never
 * handed to a handler is freed with wk_http_local_discard. NULL when out of memory. */
typedef void (*wk_http_local_done_fn)(void *ud, int status, const char *content_type, char *body,
                                      size_t len);
wk_http_req_t *wk_http_local_new(const char *server_name, const char *method, const char *path,
                                 const void *body, size_t len, wk_http_local_done_fn done,
                                 int (*gone)(void *ud), void *ud);
int wk_http_local_arg(wk_http_req_t *r, const char *key, const char *value);
int wk_http_local_header(wk_http_req_t *r, const char *name, const char *value);
void wk_http_local_discard(wk_http_req_t *r);
/* The body already decoded by the sender, for the route that knows its form (gRPC's
 * ModelInfer hands the v2 infer route a wk_oip_request_t instead of a body to parse).
 * Opaque here and owned by the sender, which keeps it until done is called. NULL for
 * requests from sockets. */
void wk_http_local_set_decoded(wk_http_req_t *r, void *decoded);
void *wk_http_req_decoded(const wk_http_req_t *r);

/* Per-server counts of replies by status class, for /metrics. */
typedef struct wk_http_stats_s {
  uint64_t by_status[6]; /* index status/100: [2]=2xx ... [5]=5xx */
  uint64_t codes[600];   /* exact status codes */
} wk_http_stats_t;
void wk_http_server_stats(const wk_http_server_t *s, wk_http_stats_t *out);

#endif
