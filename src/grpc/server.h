/* gRPC's transport on nghttp2 ([12] part 1): HTTP/2 without TLS (prior knowledge, as
 * gRPC clients speak it on an insecure channel) or over TLS (OpenSSL, ALPN h2), length-
 * prefixed messages, the
 * `grpc-status` / `grpc-message` trailers. It knows no protobuf and no service: a table
 * maps each method path ("/package.Service/Method") to a function that gets the request's
 * message bytes and answers through the call, from any thread, once.
 *
 * Threads: one thread accepts; plain connections are served by a few event-loop threads,
 * TLS connections by a thread each; only the thread serving a connection touches its
 * nghttp2 session. A method function runs on that thread and must not block: work that
 * waits (a model's queue) answers later from its own thread; the answer is handed to the
 * thread serving the connection through a wake list and an eventfd. */
#ifndef WK_GRPC_SERVER_H
#define WK_GRPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* gRPC status codes (grpc/doc/statuscodes.md). */
enum {
  WK_GRPC_OK = 0,
  WK_GRPC_CANCELLED = 1,
  WK_GRPC_UNKNOWN = 2,
  WK_GRPC_INVALID_ARGUMENT = 3,
  WK_GRPC_DEADLINE_EXCEEDED = 4,
  WK_GRPC_NOT_FOUND = 5,
  WK_GRPC_ALREADY_EXISTS = 6,
  WK_GRPC_PERMISSION_DENIED = 7,
  WK_GRPC_RESOURCE_EXHAUSTED = 8,
  WK_GRPC_FAILED_PRECONDITION = 9,
  WK_GRPC_ABORTED = 10,
  WK_GRPC_OUT_OF_RANGE = 11,
  WK_GRPC_UNIMPLEMENTED = 12,
  WK_GRPC_INTERNAL = 13,
  WK_GRPC_UNAVAILABLE = 14,
  WK_GRPC_DATA_LOSS = 15,
  WK_GRPC_UNAUTHENTICATED = 16,
};

typedef struct wk_grpc_server_s wk_grpc_server_t;
typedef struct wk_grpc_call_s wk_grpc_call_t;

/* A method: msg is the request's one message (len bytes, valid during the call only). The
 * function must answer exactly once, now or later (wk_grpc_reply or wk_grpc_fail). */
typedef void (*wk_grpc_method_fn)(wk_grpc_call_t *call, const uint8_t *msg, size_t len, void *ud);

typedef struct wk_grpc_method_s {
  const char *path; /* "/org.pytorch.serve.grpc.inference.InferenceAPIsService/Ping" */
  wk_grpc_method_fn fn;
} wk_grpc_method_t;

typedef struct wk_grpc_opts_s {
  const char *name;       /* "gRPC inference": for logs */
  const char *host;       /* "127.0.0.1" */
  int port;               /* 0: any free port (wk_grpc_server_port) */
  size_t max_request;     /* bytes of one request message; more is RESOURCE_EXHAUSTED */
  const wk_grpc_method_t *methods; /* others are UNIMPLEMENTED */
  size_t n_methods;
  void *ud;               /* handed to every method */
  /* TLS (ALPN h2): both PEM texts (copied into the server's TLS context), or both NULL for
   * HTTP/2 without TLS. */
  const char *tls_cert_pem; /* the certificate, optionally followed by its chain */
  const char *tls_key_pem;  /* the private key, unencrypted */
} wk_grpc_opts_t;

/* Listens on opts->host:port (the method table is copied). Main thread. */
int wk_grpc_server_start(const wk_grpc_opts_t *opts, wk_grpc_server_t **out, wk_err_t *err);
int wk_grpc_server_port(const wk_grpc_server_t *s);
/* Stops accepting, closes every connection (calls not answered yet are dropped: their
 * answers go nowhere) and frees s. Main thread. */
void wk_grpc_server_stop(wk_grpc_server_t *s);

/* The value of request metadata (a header; name in lower case), or NULL. Valid until the
 * call is answered. */
const char *wk_grpc_call_metadata(const wk_grpc_call_t *c, const char *name);

/* 1 once the call's stream is gone (the client cancelled or its connection closed): an
 * answer would go nowhere. Any thread, until answered. */
int wk_grpc_call_gone(const wk_grpc_call_t *c);
/* The deadline the client set (grpc-timeout) as a wk_now_us() time, or 0. At that time the
 * transport answers DEADLINE_EXCEEDED itself and drops the method's later answer. */
int64_t wk_grpc_call_deadline_us(const wk_grpc_call_t *c);

/* A server-streaming method's messages: each call sends one message (len bytes, copied)
 * now, before the final answer (wk_grpc_reply with the last message, or wk_grpc_fail,
 * whose status then follows the messages already sent). Returns WK_EIO once the call is
 * gone or answered (the deadline passed): stop sending, still answer. Any thread. */
int wk_grpc_send(wk_grpc_call_t *c, const void *msg, size_t len);
/* Answers with one message (len bytes, copied) and status OK. Any thread, once. */
void wk_grpc_reply(wk_grpc_call_t *c, const void *msg, size_t len);
/* Answers with a status other than OK and a message (a plain text; sent percent-encoded as
 * gRPC asks). Any thread, once. */
void wk_grpc_fail(wk_grpc_call_t *c, int code, const char *message);

#endif
