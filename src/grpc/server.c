/* gRPC over HTTP/2 on nghttp2 (see server.h). Each connection has an nghttp2 session:
 * whoever holds the connection's io lock reads the socket into it, and nghttp2 calls back
 * with headers and data per stream; when a request stream ends, its one message is handed
 * to the method. Answers (one message, or several for a server-streaming method, then the
 * final status) are framed into the call's output from any thread, which puts the call on
 * its connection's ready list; HEADERS go out with a data source that nghttp2 reads as flow
 * control allows (deferred while nothing is framed), then trailers with grpc-status; a
 * failure before any message is a trailers-only response.
 *
 * Plain connections are served by a few event loops (epoll, level-triggered, non-blocking
 * sockets; one loop per two cores, at most four), each owning its connections. A loop reads
 * what a ready socket has (a few reads at most, for fairness), submits the answers waiting
 * and sends what the socket takes; the rest waits in the connection's pending bytes with
 * EPOLLOUT asked and reading paused (so a client that does not read stops being read, and
 * is dropped after 30 s without progress). TLS connections keep a thread each (OpenSSL's
 * blocking reads and writes).
 *
 * Answers are sent by the loop or the connection's thread, never by the answering thread:
 * it puts the connection on the loop's wake list (or writes the connection thread's
 * eventfd). Measured on ModelInfer at 16 connections, one model worker: a thread per
 * connection cost every call a wake-up of that thread; the model worker sending answers
 * itself (a loopback send also delivers to the client) made that one worker the
 * bottleneck. An answer given on the thread that holds the io lock (a method that answers
 * at once) is sent when that thread flushes. */
#include "grpc/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "grpc/reflection.h"

#define MAX_METADATA 64
#define MAX_STREAMS 128 /* SETTINGS_MAX_CONCURRENT_STREAMS we announce */
#define MAX_LOOPS 4
#define STALL_US (30 * 1000000LL) /* a client that takes none of our bytes for this long goes */
#define READS_PER_EVENT 4          /* socket reads per readiness, so one client cannot hog a loop */

typedef struct conn_s conn_t;
typedef struct loop_s loop_t;

struct wk_grpc_call_s {
  conn_t *conn;
  int32_t stream_id;
  int refs;        /* the stream's (until nghttp2 closes it) and the method's (until answered) */
  int stream_open; /* under the connection's io lock */
  _Atomic int closed;   /* the stream is gone (client cancelled, connection closed): any thread */
  _Atomic int answered; /* an answer went out (the method's, or the deadline's) */
  int64_t deadline_us;  /* grpc-timeout as a wk_now_us() time; 0: none */
  wk_grpc_call_t *dl_next; /* on the connection's list of calls with a deadline */
  /* the request */
  char path[256];
  char *content_type;
  char *md_name[MAX_METADATA], *md_value[MAX_METADATA];
  size_t n_md;
  wk_buf_t body;
  int too_big;
  int reflection;  /* a ServerReflectionInfo stream: each message is answered as it comes */
  /* the answer, under the connection's lock: length-prefixed messages not yet handed to
   * nghttp2 (out, from out_off), and, once done, the final status and message */
  wk_buf_t out;
  size_t out_off;
  int done;
  int status;      /* WK_GRPC_* */
  char *message;   /* grpc-message, percent-encoded; NULL when none */
  int queued;      /* on the connection's ready list (which holds a reference) */
  int started;     /* response headers submitted (under io) */
  char status_text[12];
  struct wk_grpc_call_s *next;      /* on the connection's ready list */
  struct wk_grpc_call_s *all_next;  /* on the connection's list of open streams */
};

struct conn_s {
  wk_grpc_server_t *srv;
  loop_t *loop; /* the event loop serving it; NULL: a thread of its own (TLS) */
  int fd, efd;  /* efd: the own thread's wake-up; -1 on a loop */
  SSL *ssl; /* TLS (enable_grpc_ssl); NULL for plain HTTP/2. Connection thread only. */
  nghttp2_session *session;
  /* io: held by whoever uses session, the socket or pending (the loop while it serves
   * the connection, or the connection's thread outside poll). Taken before lock, never
   * after. */
  pthread_mutex_t io;
  wk_buf_t pending; /* bytes nghttp2 produced that the socket did not take yet */
  pthread_mutex_t lock;
  int refs;               /* the thread's and one per call */
  int closing;            /* the thread has stopped: answers are dropped */
  wk_grpc_call_t *ready;  /* answered, waiting to be submitted */
  wk_grpc_call_t *open;   /* streams nghttp2 still holds (under io) */
  conn_t *next;
  /* on a loop */
  int woken;              /* on the loop's wake list (loop's lock; the list holds a reference) */
  conn_t *wake_next;
  conn_t *loop_next;      /* the loop's connections (loop thread only) */
  uint32_t interest;      /* the epoll events asked for (io) */
  int64_t stalled_since;  /* when pending bytes last stopped moving; 0: none pending (io) */
};

struct loop_s {
  wk_grpc_server_t *srv;
  int ep, efd;
  pthread_t thread;
  int started;
  pthread_mutex_t lock;   /* wake and adopt */
  conn_t *wake;           /* connections with answers to send */
  conn_t *adopt;          /* accepted, not yet in the epoll set */
  conn_t *conns;          /* loop thread only */
  conn_t *dead;           /* closed in this round of events: freed after it (events for
                           * them may still follow in the same round) */
  int64_t next_check_us;  /* deadlines and stalls: the next scan (loop thread only) */
};

struct wk_grpc_server_s {
  wk_grpc_opts_t opts;
  char name[64];
  int lfd, port;
  pthread_t acceptor;
  _Atomic int stopping;
  wk_grpc_method_t *methods; /* a copy of opts.methods */
  char **services;           /* "package.Service" of every method, and reflection's own */
  size_t n_services;
  SSL_CTX *tls;              /* NULL: plain HTTP/2 (prior knowledge) */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  conn_t *conns;
  loop_t loops[MAX_LOOPS];
  int n_loops;
  unsigned next_loop;
};

/* The connection whose io lock this thread holds while it reads and flushes: an answer
 * posted for it from here is sent by that flush. */
static _Thread_local conn_t *tl_io_conn;

/* ---- calls and connections: reference counts ---- */

static void conn_unref(conn_t *c) {
  pthread_mutex_lock(&c->lock);
  int left = --c->refs;
  pthread_mutex_unlock(&c->lock);
  if (left > 0) return;
  pthread_mutex_destroy(&c->lock);
  pthread_mutex_destroy(&c->io);
  wk_buf_destroy(&c->pending);
  free(c);
}

static void call_unref(wk_grpc_call_t *k) {
  conn_t *c = k->conn;
  pthread_mutex_lock(&c->lock);
  int left = --k->refs;
  pthread_mutex_unlock(&c->lock);
  if (left > 0) return;
  free(k->content_type);
  for (size_t i = 0; i < k->n_md; i++) {
    free(k->md_name[i]);
    free(k->md_value[i]);
  }
  wk_buf_destroy(&k->body);
  free(k->message);
  wk_buf_destroy(&k->out);
  free(k);
  conn_unref(c);
}

/* Puts k on its connection's ready list (unless it is there already), so the connection's
 * thread submits what it has: headers, messages, the final status. Any thread. */
static void loop_wake(loop_t *l, conn_t *c);

static void post(wk_grpc_call_t *k) {
  conn_t *c = k->conn;
  pthread_mutex_lock(&c->lock);
  int wake = !c->closing && !k->queued;
  if (wake) {
    k->queued = 1;
    k->refs++; /* the ready list's */
    k->next = c->ready;
    c->ready = k;
  }
  pthread_mutex_unlock(&c->lock);
  if (!wake || tl_io_conn == c) return; /* this thread flushes c before letting go of it */
  if (c->loop) {
    loop_wake(c->loop, c);
    return;
  }
  uint64_t one = 1;
  (void)!write(c->efd, &one, sizeof one);
}

/* ---- answers ---- */

/* grpc-message is percent-encoded: bytes outside printable ASCII, '%', and a space at
 * either end (HTTP/2 refuses a field value with leading or trailing whitespace: a strict
 * client resets the stream and never sees the status). */
static char *percent_encode(const char *s) {
  size_t n = strlen(s);
  char *out = malloc(n * 3 + 1), *p = out;
  if (out == NULL) return NULL;
  for (const unsigned char *q = (const unsigned char *)s; *q; q++) {
    int edge_space = *q == ' ' && (q == (const unsigned char *)s || q[1] == '\0');
    if (*q >= 0x20 && *q < 0x7f && *q != '%' && !edge_space) *p++ = (char)*q;
    else p += sprintf(p, "%%%02X", *q);
  }
  *p = '\0';
  return out;
}

/* Appends one length-prefixed message to k's output. Lock held. */
static int frame(wk_grpc_call_t *k, const void *msg, size_t len) {
  uint8_t head[5] = {0}; /* not compressed */
  uint32_t be = htonl((uint32_t)len);
  memcpy(head + 1, &be, 4);
  size_t before = k->out.len;
  if (wk_buf_append(&k->out, head, 5) != 0 || (len && wk_buf_append(&k->out, msg, len) != 0)) {
    k->out.len = before;
    return WK_ENOMEM;
  }
  return 0;
}

/* The method's final answer: status (and message), after the messages already framed. The
 * first final answer wins: one after the deadline's is dropped. Drops the method's
 * reference. */
static void finish(wk_grpc_call_t *k, int code, const char *message) {
  int expected = 0;
  if (atomic_compare_exchange_strong(&k->answered, &expected, 1)) {
    char *m = message ? percent_encode(message) : NULL;
    pthread_mutex_lock(&k->conn->lock);
    k->done = 1;
    k->status = code;
    k->message = m;
    pthread_mutex_unlock(&k->conn->lock);
    post(k);
  }
  call_unref(k);
}

void wk_grpc_reply(wk_grpc_call_t *k, const void *msg, size_t len) {
  pthread_mutex_lock(&k->conn->lock);
  int rc = atomic_load(&k->answered) ? 0 : frame(k, msg, len);
  pthread_mutex_unlock(&k->conn->lock);
  if (rc != 0) finish(k, WK_GRPC_RESOURCE_EXHAUSTED, "out of memory for the reply");
  else finish(k, WK_GRPC_OK, NULL);
}

void wk_grpc_fail(wk_grpc_call_t *k, int code, const char *message) { finish(k, code, message); }

int wk_grpc_send(wk_grpc_call_t *k, const void *msg, size_t len) {
  pthread_mutex_lock(&k->conn->lock);
  int rc = atomic_load(&k->answered) || atomic_load(&k->closed) ? WK_EIO : frame(k, msg, len);
  pthread_mutex_unlock(&k->conn->lock);
  if (rc == 0) post(k);
  return rc;
}

const char *wk_grpc_call_metadata(const wk_grpc_call_t *k, const char *name) {
  for (size_t i = 0; i < k->n_md; i++)
    if (strcmp(k->md_name[i], name) == 0) return k->md_value[i];
  return NULL;
}

#define NV(n, v)                                                                                   \
  { (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v), NGHTTP2_NV_FLAG_NONE }

/* nghttp2 asks for the next DATA bytes of k's response: what is framed so far; nothing
 * yet defers the stream until post() resumes it; everything sent after the final status
 * ends the stream with the trailers. Connection thread. */
static ssize_t read_reply(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                          uint32_t *data_flags, nghttp2_data_source *source, void *user_data) {
  (void)user_data;
  wk_grpc_call_t *k = source->ptr;
  pthread_mutex_lock(&k->conn->lock);
  size_t n = k->out.len - k->out_off;
  if (n > length) n = length;
  if (n > 0) memcpy(buf, k->out.data + k->out_off, n);
  k->out_off += n;
  if (k->out_off == k->out.len) k->out_off = k->out.len = 0; /* reuse the buffer */
  int done = k->done && k->out.len == 0;
  pthread_mutex_unlock(&k->conn->lock);
  if (n == 0 && !done) return NGHTTP2_ERR_DEFERRED;
  if (done) {
    /* the trailers end the stream (k->status and message are final once done is set) */
    *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    snprintf(k->status_text, sizeof k->status_text, "%d", k->status);
    nghttp2_nv trailers[] = {NV("grpc-status", k->status_text), NV("grpc-message", k->message ? k->message : "")};
    if (nghttp2_submit_trailer(session, stream_id, trailers, k->message ? 2 : 1) != 0)
      return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
  }
  return (ssize_t)n;
}

/* Submits what k has on the connection's thread: the response headers with a data source
 * the first time (or a trailers-only response for a failure with no message sent), a
 * resumed data source later. Drops the ready list's reference. */
static void submit(conn_t *c, wk_grpc_call_t *k) {
  pthread_mutex_lock(&c->lock);
  k->queued = 0;
  int done = k->done, empty = k->out.len == k->out_off;
  pthread_mutex_unlock(&c->lock);
  if (k->stream_open && !k->started) {
    k->started = 1;
    if (done && empty && k->status != WK_GRPC_OK) {
      snprintf(k->status_text, sizeof k->status_text, "%d", k->status);
      nghttp2_nv hdrs[] = {NV(":status", "200"), NV("content-type", "application/grpc"),
                           NV("grpc-status", k->status_text), NV("grpc-message", k->message ? k->message : "")};
      nghttp2_submit_response(c->session, k->stream_id, hdrs, k->message ? 4 : 3, NULL);
    } else {
      nghttp2_nv hdrs[] = {NV(":status", "200"), NV("content-type", "application/grpc")};
      nghttp2_data_provider prd = {.source.ptr = k, .read_callback = read_reply};
      nghttp2_submit_response(c->session, k->stream_id, hdrs, 2, &prd);
    }
  } else if (k->stream_open) {
    nghttp2_session_resume_data(c->session, k->stream_id);
  }
  call_unref(k);
}

/* ---- deadlines and cancellation ---- */

/* grpc-timeout ("100m": up to 8 digits and a unit, H M S m u n) as a wk_now_us() deadline;
 * 0 when absent or malformed (no deadline). */
static int64_t parse_timeout(const char *v, size_t n) {
  if (n < 2 || n > 9) return 0;
  int64_t x = 0;
  for (size_t i = 0; i + 1 < n; i++) {
    if (v[i] < '0' || v[i] > '9') return 0;
    x = x * 10 + (v[i] - '0');
  }
  int64_t us;
  switch (v[n - 1]) {
  case 'H': us = x * 3600 * 1000000; break;
  case 'M': us = x * 60 * 1000000; break;
  case 'S': us = x * 1000000; break;
  case 'm': us = x * 1000; break;
  case 'u': us = x; break;
  case 'n': us = x / 1000; break;
  default: return 0;
  }
  return wk_now_us() + (us > 0 ? us : 1);
}

int wk_grpc_call_gone(const wk_grpc_call_t *k) { return atomic_load(&k->closed); }

int64_t wk_grpc_call_deadline_us(const wk_grpc_call_t *k) { return k->deadline_us; }

/* Answers DEADLINE_EXCEEDED for the open calls whose deadline has passed and no answer went
 * out; the method's answer, when it comes, is dropped. Returns the ms until the next
 * deadline (at most 1000). Connection thread. */
static int expire(conn_t *c) {
  int64_t now = wk_now_us(), next = now + 1000000;
  for (wk_grpc_call_t *k = c->open; k; k = k->all_next) {
    if (k->deadline_us == 0 || atomic_load(&k->answered)) continue;
    if (k->deadline_us > now) {
      if (k->deadline_us < next) next = k->deadline_us;
      continue;
    }
    int expected = 0;
    if (!atomic_compare_exchange_strong(&k->answered, &expected, 1)) continue;
    char *m = strdup("Deadline Exceeded");
    pthread_mutex_lock(&c->lock);
    k->done = 1;
    k->status = WK_GRPC_DEADLINE_EXCEEDED;
    k->message = m;
    int queued = k->queued;
    if (!queued) {
      k->queued = 1;
      k->refs++; /* submit() drops it */
    }
    pthread_mutex_unlock(&c->lock);
    if (!queued) submit(c, k); /* else drain_ready will */
  }
  int64_t ms = (next - now + 999) / 1000;
  return ms < 1 ? 1 : (int)ms;
}

/* ---- nghttp2 callbacks: the request side ---- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  conn_t *c = user_data;
  if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
  wk_grpc_call_t *k = calloc(1, sizeof *k);
  if (k == NULL) return NGHTTP2_ERR_CALLBACK_FAILURE;
  k->conn = c;
  k->stream_id = frame->hd.stream_id;
  k->refs = 1;
  k->stream_open = 1;
  pthread_mutex_lock(&c->lock);
  c->refs++;
  pthread_mutex_unlock(&c->lock);
  k->all_next = c->open;
  c->open = k;
  nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, k);
  return 0;
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user_data) {
  (void)flags, (void)user_data;
  wk_grpc_call_t *k = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
  if (k == NULL) return 0;
  if (namelen == 5 && memcmp(name, ":path", 5) == 0) {
    snprintf(k->path, sizeof k->path, "%.*s", (int)valuelen, (const char *)value);
  } else if (namelen == 12 && memcmp(name, "content-type", 12) == 0) {
    free(k->content_type);
    k->content_type = strndup((const char *)value, valuelen);
  } else if (namelen == 12 && memcmp(name, "grpc-timeout", 12) == 0) {
    k->deadline_us = parse_timeout((const char *)value, valuelen);
    loop_t *l = k->conn->loop; /* on its thread: mem_recv runs there */
    if (l && k->deadline_us && k->deadline_us < l->next_check_us) l->next_check_us = k->deadline_us;
  } else if (name[0] != ':' && k->n_md < MAX_METADATA) {
    k->md_name[k->n_md] = strndup((const char *)name, namelen);
    k->md_value[k->n_md] = strndup((const char *)value, valuelen);
    if (k->md_name[k->n_md] && k->md_value[k->n_md]) k->n_md++;
  }
  return 0;
}

/* application/grpc, optionally +proto or ;params */
static int grpc_content_type(const wk_grpc_call_t *k) {
  return k->content_type != NULL && strncasecmp(k->content_type, "application/grpc", 16) == 0 &&
         (k->content_type[16] == '\0' || k->content_type[16] == '+' || k->content_type[16] == ';');
}

static int is_reflection(const char *path) {
  return strcmp(path, wk_grpc_reflection_paths[0]) == 0 || strcmp(path, wk_grpc_reflection_paths[1]) == 0;
}

/* A reflection stream: answers each complete message in k's body and keeps the rest (a
 * message still arriving). Returns 0, or -1 after failing the call (a bad message). */
static int reflect(conn_t *c, wk_grpc_call_t *k) {
  wk_grpc_server_t *s = c->srv;
  size_t off = 0;
  const uint8_t *b = (const uint8_t *)k->body.data;
  while (k->body.len - off >= 5) {
    uint32_t be;
    memcpy(&be, b + off + 1, 4);
    size_t mlen = ntohl(be);
    if (mlen > k->body.len - off - 5) break;
    uint8_t *out = NULL;
    size_t out_len = 0;
    if (b[off] != 0 || wk_grpc_reflection_answer((const char *const *)s->services, s->n_services, b + off + 5,
                                                 mlen, &out, &out_len) != 0) {
      free(out);
      pthread_mutex_lock(&c->lock);
      k->refs++; /* the answer's (finish drops it) */
      pthread_mutex_unlock(&c->lock);
      wk_grpc_fail(k, WK_GRPC_INVALID_ARGUMENT, "not a ServerReflectionRequest");
      k->reflection = 2; /* answered: ignore the rest */
      return -1;
    }
    wk_grpc_send(k, out, out_len);
    free(out);
    off += 5 + mlen;
  }
  if (off > 0) {
    memmove(k->body.data, k->body.data + off, k->body.len - off);
    k->body.len -= off;
  }
  return 0;
}

static int on_data(nghttp2_session *session, uint8_t flags, int32_t stream_id, const uint8_t *data,
                   size_t len, void *user_data) {
  (void)flags;
  conn_t *c = user_data;
  wk_grpc_call_t *k = nghttp2_session_get_stream_user_data(session, stream_id);
  if (k == NULL || k->too_big) return 0;
  if (k->body.len + len > c->srv->opts.max_request + 5) {
    k->too_big = 1;
    wk_buf_destroy(&k->body);
    return 0;
  }
  if (wk_buf_append(&k->body, data, len) != 0) k->too_big = 1;
  else if (k->reflection == 0 && is_reflection(k->path) && grpc_content_type(k)) k->reflection = 1;
  if (k->reflection == 1) reflect(c, k);
  return 0;
}

static int lookup(const wk_grpc_server_t *s, const char *path) {
  for (size_t i = 0; i < s->opts.n_methods; i++)
    if (strcmp(s->methods[i].path, path) == 0) return (int)i;
  return -1;
}

/* The request stream ended: checks it and calls its method (which now holds a reference). */
static void dispatch(conn_t *c, wk_grpc_call_t *k) {
  wk_grpc_server_t *s = c->srv;
  pthread_mutex_lock(&c->lock);
  k->refs++; /* the method's */
  pthread_mutex_unlock(&c->lock);
  char msg[400];
  if (!grpc_content_type(k)) {
    /* not gRPC: plain HTTP's answer, as the gRPC spec asks */
    atomic_store(&k->answered, 1); /* no deadline answer after this one */
    k->started = 1;
    nghttp2_nv hdrs[] = {NV(":status", "415")};
    nghttp2_submit_response(c->session, k->stream_id, hdrs, 1, NULL);
    call_unref(k);
    return;
  }
  if (k->too_big) {
    snprintf(msg, sizeof msg, "the request message is larger than the limit (max_request_size) of %zu bytes",
             s->opts.max_request);
    wk_grpc_fail(k, WK_GRPC_RESOURCE_EXHAUSTED, msg);
    return;
  }
  if (k->reflection == 2) { /* failed already */
    call_unref(k);
    return;
  }
  if (is_reflection(k->path)) { /* the client has sent all it will: end the stream */
    if (reflect(c, k) != 0) {
      call_unref(k);
      return;
    }
    if (k->body.len > 0) wk_grpc_fail(k, WK_GRPC_INTERNAL, "the stream ended inside a message");
    else wk_grpc_fail(k, WK_GRPC_OK, NULL);
    return;
  }
  const uint8_t *b = (const uint8_t *)k->body.data;
  size_t n = k->body.len, mlen = 0;
  if (n >= 5) {
    uint32_t be;
    memcpy(&be, b + 1, 4);
    mlen = ntohl(be);
  }
  if (n < 5 || mlen != n - 5) {
    snprintf(msg, sizeof msg,
             n < 5 ? "a unary call needs one request message; %zu bytes came"
                   : "a unary call takes one length-prefixed message; %zu bytes came",
             n);
    wk_grpc_fail(k, n < 5 ? WK_GRPC_INTERNAL : WK_GRPC_INVALID_ARGUMENT, msg);
    return;
  }
  if (b[0] != 0) {
    wk_grpc_fail(k, WK_GRPC_UNIMPLEMENTED, "compressed messages are not supported; send grpc-encoding identity");
    return;
  }
  int m = lookup(s, k->path);
  if (m < 0) {
    snprintf(msg, sizeof msg, "%s has no method %.200s", s->name, k->path);
    wk_grpc_fail(k, WK_GRPC_UNIMPLEMENTED, msg);
    return;
  }
  s->methods[m].fn(k, b + 5, mlen, s->opts.ud);
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data) {
  conn_t *c = user_data;
  if ((frame->hd.type == NGHTTP2_DATA || frame->hd.type == NGHTTP2_HEADERS) &&
      (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
    wk_grpc_call_t *k = nghttp2_session_get_stream_user_data(session, frame->hd.stream_id);
    if (k) dispatch(c, k);
  }
  return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user_data) {
  (void)error_code;
  conn_t *c = user_data;
  wk_grpc_call_t *k = nghttp2_session_get_stream_user_data(session, stream_id);
  if (k == NULL) return 0;
  nghttp2_session_set_stream_user_data(session, stream_id, NULL);
  k->stream_open = 0;
  atomic_store(&k->closed, 1);
  for (wk_grpc_call_t **p = &c->open; *p; p = &(*p)->all_next) {
    if (*p == k) {
      *p = k->all_next;
      break;
    }
  }
  call_unref(k); /* the stream's */
  return 0;
}

/* ---- a connection's thread ---- */

static int write_all(conn_t *c, const uint8_t *p, size_t n) {
  while (c->ssl && n > 0) {
    int w = SSL_write(c->ssl, p, n > INT32_MAX ? INT32_MAX : (int)n);
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  while (n > 0) {
    ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Sends what nghttp2 has queued, blocking (a TLS connection's thread): its frames are
 * gathered into one buffer and written with one write (an answer is HEADERS, DATA and
 * trailers: three otherwise). */
static int flush(conn_t *c) {
  static _Thread_local uint8_t buf[1 << 14];
  size_t used = 0;
  for (;;) {
    const uint8_t *data;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n < 0) return -1;
    if (n == 0 || used + (size_t)n > sizeof buf) {
      if (used > 0 && write_all(c, buf, used) != 0) return -1;
      used = 0;
    }
    if (n == 0) return 0;
    if ((size_t)n > sizeof buf) {
      if (write_all(c, data, (size_t)n) != 0) return -1;
    } else {
      memcpy(buf + used, data, (size_t)n);
      used += (size_t)n;
    }
  }
}

static void submit_ready(conn_t *c);

static void drain_ready(conn_t *c) {
  uint64_t v;
  (void)!read(c->efd, &v, sizeof v);
  submit_ready(c);
}

/* Sends p[0..n) without blocking; what the socket does not take is kept in pending, with
 * then[0..then_n) (the frame that was to follow). 0 when all went; nonzero when bytes were
 * kept (pending not empty) or the connection failed (pending empty). */
static int send_or_keep(conn_t *c, const uint8_t *p, size_t n, const uint8_t *then, size_t then_n) {
  ssize_t w = send(c->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
  if (w < 0) w = 0;
  if ((size_t)w == n) return 0;
  if (wk_buf_append(&c->pending, p + w, n - (size_t)w) != 0 || (then_n && wk_buf_append(&c->pending, then, then_n) != 0)) {
    c->pending.len = 0;
    return -1;
  }
  c->stalled_since = wk_now_us();
  return 1;
}

/* Sends what the socket takes now without blocking (a loop, io held): the bytes left
 * pending first, then what nghttp2 has; what the socket does not take is kept in pending.
 * 0 when everything went, 1 when bytes wait for the socket, -1 when the connection failed. */
static int send_some(conn_t *c) {
  if (c->pending.len > 0) {
    ssize_t w = send(c->fd, c->pending.data, c->pending.len, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    if (w > 0) {
      memmove(c->pending.data, c->pending.data + w, c->pending.len - (size_t)w);
      c->pending.len -= (size_t)w;
      c->stalled_since = wk_now_us(); /* it moves */
    }
    if (c->pending.len > 0) return 1;
  }
  c->stalled_since = 0;
  /* gathered into one send where they fit: an answer is HEADERS, DATA and trailers */
  static _Thread_local uint8_t buf[1 << 14];
  size_t used = 0;
  for (;;) {
    const uint8_t *data = NULL;
    ssize_t n = nghttp2_session_mem_send(c->session, &data);
    if (n < 0) return -1;
    if (n > 0 && used + (size_t)n <= sizeof buf) {
      memcpy(buf + used, data, (size_t)n);
      used += (size_t)n;
      continue;
    }
    /* data stays valid until the next mem_send: send the buffer, then data (alone, or
     * starting the next buffer) */
    if (used > 0 && send_or_keep(c, buf, used, n > 0 ? data : NULL, (size_t)(n > 0 ? n : 0)) != 0)
      return c->pending.len > 0 ? 1 : -1;
    used = 0;
    if (n == 0) return 0;
    if ((size_t)n <= sizeof buf) {
      memcpy(buf, data, (size_t)n);
      used = (size_t)n;
    } else if (send_or_keep(c, data, (size_t)n, NULL, 0) != 0) {
      return c->pending.len > 0 ? 1 : -1;
    }
  }
}

static void submit_ready(conn_t *c) {
  pthread_mutex_lock(&c->lock);
  wk_grpc_call_t *list = c->ready;
  c->ready = NULL;
  pthread_mutex_unlock(&c->lock);
  /* oldest first */
  wk_grpc_call_t *rev = NULL;
  while (list) {
    wk_grpc_call_t *next = list->next;
    list->next = rev;
    rev = list;
    list = next;
  }
  while (rev) {
    wk_grpc_call_t *next = rev->next;
    submit(c, rev);
    rev = next;
  }
}

/* Reads what the peer sent: up to n bytes, 0 when it closed (or TLS failed), -1 with
 * errno EAGAIN/EINTR when nothing could be read now. */
static ssize_t conn_recv(conn_t *c, uint8_t *buf, size_t n) {
  if (c->ssl == NULL) return recv(c->fd, buf, n, 0);
  int r = SSL_read(c->ssl, buf, (int)n);
  if (r > 0) return r;
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
    errno = EAGAIN;
    return -1;
  }
  return 0;
}

/* The TLS handshake, bounded by the socket's timeouts: 0, or -1 (logged at debug level;
 * a port scanner or a plain-text client is not an error of wick's). */
static int tls_accept(conn_t *c) {
  c->ssl = SSL_new(c->srv->tls);
  if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) return -1;
  struct timeval tv = {.tv_sec = 10};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int ok = SSL_accept(c->ssl) == 1;
  struct timeval none = {0};
  setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  if (!ok) {
    char why[200];
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    wk_log_debug("%s: a TLS handshake failed: %s", c->srv->name, why);
    ERR_clear_error();
    return -1;
  }
  const unsigned char *proto = NULL;
  unsigned len = 0;
  SSL_get0_alpn_selected(c->ssl, &proto, &len);
  return len == 2 && memcmp(proto, "h2", 2) == 0 ? 0 : -1;
}

static void conn_teardown(conn_t *c);
static void conn_close(conn_t *c);

/* c's nghttp2 session, our SETTINGS queued. 0, or -1. */
static int session_new(conn_t *c) {
  nghttp2_session_callbacks *cb;
  if (nghttp2_session_callbacks_new(&cb) != 0) return -1;
  nghttp2_session_callbacks_set_on_begin_headers_callback(cb, on_begin_headers);
  nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
  nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
  nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
  nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
  int ok = nghttp2_session_server_new(&c->session, cb, c) == 0;
  nghttp2_session_callbacks_del(cb);
  nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, MAX_STREAMS}};
  return ok && nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, 1) == 0 ? 0 : -1;
}

/* A TLS connection's own thread. */
static void *conn_main(void *arg) {
  conn_t *c = arg;
  wk_grpc_server_t *s = c->srv;
  int ok = tls_accept(c) == 0 && session_new(c) == 0;
  uint8_t *in = malloc(1 << 16);
  pthread_mutex_lock(&c->io); /* let go only while in poll */
  tl_io_conn = c;
  while (ok && in && !atomic_load(&s->stopping)) {
    submit_ready(c); /* answers given on this thread */
    if (flush(c) != 0) break;
    if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session)) break;
    struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN}, {.fd = c->efd, .events = POLLIN}};
    /* TLS may hold decrypted bytes the socket no longer shows */
    int buffered = c->ssl && SSL_pending(c->ssl) > 0;
    int timeout = buffered ? 0 : expire(c);
    tl_io_conn = NULL;
    pthread_mutex_unlock(&c->io);
    int n = poll(p, 2, timeout);
    pthread_mutex_lock(&c->io);
    tl_io_conn = c;
    if (n < 0 && errno != EINTR) break;
    if (n <= 0 && !buffered) {
      expire(c);
      continue;
    }
    if (n > 0 && (p[1].revents & POLLIN)) drain_ready(c);
    if (buffered || (n > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))) {
      ssize_t got = conn_recv(c, in, 1 << 16);
      if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (got <= 0) break;
      if (nghttp2_session_mem_recv(c->session, in, (size_t)got) < 0) break;
    }
  }
  free(in);
  tl_io_conn = NULL;
  conn_teardown(c);
  pthread_mutex_unlock(&c->io);
  conn_close(c);
  conn_unref(c);
  return NULL;
}

/* The end of a connection (io held): answers still to come go nowhere; the streams nghttp2
 * held are closed; the session is freed. */
static void conn_teardown(conn_t *c) {
  pthread_mutex_lock(&c->lock);
  c->closing = 1;
  wk_grpc_call_t *ready = c->ready;
  c->ready = NULL;
  pthread_mutex_unlock(&c->lock);
  while (ready) {
    wk_grpc_call_t *next = ready->next;
    call_unref(ready);
    ready = next;
  }
  while (c->open) {
    wk_grpc_call_t *k = c->open;
    c->open = k->all_next;
    k->stream_open = 0;
    atomic_store(&k->closed, 1);
    call_unref(k);
  }
  if (c->session) nghttp2_session_del(c->session);
  c->session = NULL;
}

/* After conn_teardown (io let go): the socket closed, c off the server's list. The caller
 * then drops the connection's own reference. */
static void conn_close(conn_t *c) {
  wk_grpc_server_t *s = c->srv;
  if (c->ssl) SSL_free(c->ssl);
  c->ssl = NULL;
  close(c->fd);
  if (c->efd >= 0) close(c->efd);
  pthread_mutex_lock(&s->lock);
  for (conn_t **pp = &s->conns; *pp; pp = &(*pp)->next) {
    if (*pp == c) {
      *pp = c->next;
      break;
    }
  }
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

/* ---- event loops (plain connections) ---- */

/* Puts c on l's wake list (once) and wakes l: c has answers to send. Any thread. */
static void loop_wake(loop_t *l, conn_t *c) {
  pthread_mutex_lock(&l->lock);
  int add = !c->woken;
  if (add) {
    c->woken = 1;
    pthread_mutex_lock(&c->lock);
    c->refs++; /* the wake list's, taken before the loop can see it */
    pthread_mutex_unlock(&c->lock);
    c->wake_next = l->wake;
    l->wake = c;
  }
  pthread_mutex_unlock(&l->lock);
  if (!add) return;
  uint64_t one = 1;
  (void)!write(l->efd, &one, sizeof one);
}

/* Asks epoll for what c needs now (io held): reading, unless bytes wait for the socket
 * (then only writing: a client that does not read is not read either). */
static int set_interest(loop_t *l, conn_t *c) {
  uint32_t want = c->pending.len > 0 ? EPOLLOUT : EPOLLIN;
  if (want == c->interest) return 0;
  struct epoll_event ev = {.events = want, .data.ptr = c};
  if (epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev) != 0) return -1;
  c->interest = want;
  return 0;
}

/* Serves c after epoll said events (0: woken for answers): reads what came, hands it to
 * nghttp2, submits the answers waiting and sends what the socket takes. io held. 0, or -1
 * when the connection is over. */
static int serve(loop_t *l, conn_t *c, uint32_t events, uint8_t *in, size_t in_size) {
  if (c->session == NULL) return -1;
  if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && c->pending.len == 0) {
    for (int k = 0; k < READS_PER_EVENT; k++) {
      ssize_t got = recv(c->fd, in, in_size, MSG_DONTWAIT);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
      if (got <= 0) return -1; /* closed, or reset */
      if (nghttp2_session_mem_recv(c->session, in, (size_t)got) < 0) return -1;
      if ((size_t)got < in_size) break;
    }
  }
  submit_ready(c);
  if (send_some(c) < 0) return -1;
  if (c->pending.len == 0 && !nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
    return -1; /* GOAWAY both ways, or an error nghttp2 answered */
  return set_interest(l, c);
}

/* Ends c, one of l's connections (io let go). */
static void loop_close(loop_t *l, conn_t *c) {
  pthread_mutex_lock(&c->io);
  conn_teardown(c);
  pthread_mutex_unlock(&c->io);
  epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
  for (conn_t **p = &l->conns; *p; p = &(*p)->loop_next) {
    if (*p == c) {
      *p = c->loop_next;
      break;
    }
  }
  conn_close(c);
  c->loop_next = l->dead;
  l->dead = c;
}

static void bury(loop_t *l) {
  while (l->dead) {
    conn_t *c = l->dead;
    l->dead = c->loop_next;
    conn_unref(c);
  }
}

/* Serves c under its io lock; closes it when it is over. */
static void loop_serve(loop_t *l, conn_t *c, uint32_t events, uint8_t *in, size_t in_size) {
  pthread_mutex_lock(&c->io);
  tl_io_conn = c;
  int over = c->session != NULL && serve(l, c, events, in, in_size) != 0;
  tl_io_conn = NULL;
  pthread_mutex_unlock(&c->io);
  if (over) loop_close(l, c);
}

/* Deadlines and stalled clients, on every connection of l; returns when to look again. */
static int64_t loop_check(loop_t *l) {
  int64_t now = wk_now_us(), next = now + 1000000;
  for (conn_t *c = l->conns, *following; c; c = following) {
    following = c->loop_next;
    pthread_mutex_lock(&c->io);
    int64_t at = now + (int64_t)expire(c) * 1000;
    int stalled = c->pending.len > 0 && c->stalled_since && now - c->stalled_since > STALL_US;
    /* expire's answers, when it gave any */
    int over = c->session == NULL || stalled ||
               (nghttp2_session_want_write(c->session) && serve(l, c, 0, NULL, 0) != 0);
    pthread_mutex_unlock(&c->io);
    if (stalled)
      wk_log_debug("%s: a client took none of its answers for %lld s: closed", l->srv->name,
                   (long long)(STALL_US / 1000000));
    if (over) loop_close(l, c);
    else if (at < next) next = at;
  }
  return next;
}

/* Connections the acceptor handed over: into the epoll set, our SETTINGS sent. */
static void loop_adopt(loop_t *l) {
  pthread_mutex_lock(&l->lock);
  conn_t *list = l->adopt;
  l->adopt = NULL;
  pthread_mutex_unlock(&l->lock);
  while (list) {
    conn_t *c = list;
    list = c->loop_next;
    c->loop_next = l->conns;
    l->conns = c;
    c->interest = EPOLLIN;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0) loop_close(l, c);
    else loop_serve(l, c, 0, NULL, 0);
  }
}

static void *loop_main(void *arg) {
  loop_t *l = arg;
  wk_grpc_server_t *s = l->srv;
  size_t in_size = 1 << 16;
  uint8_t *in = malloc(in_size);
  struct epoll_event ev[64];
  l->next_check_us = wk_now_us() + 1000000;
  while (in && !atomic_load(&s->stopping)) {
    int64_t wait_us = l->next_check_us - wk_now_us();
    int timeout = wait_us <= 0 ? 0 : (int)((wait_us + 999) / 1000);
    int n = epoll_wait(l->ep, ev, 64, timeout);
    if (n < 0 && errno != EINTR) break;
    for (int i = 0; i < n; i++) {
      conn_t *c = ev[i].data.ptr;
      if (c != NULL) {
        loop_serve(l, c, ev[i].events, in, in_size);
        continue;
      }
      uint64_t v;
      (void)!read(l->efd, &v, sizeof v);
      loop_adopt(l);
      pthread_mutex_lock(&l->lock);
      conn_t *wake = l->wake;
      l->wake = NULL;
      pthread_mutex_unlock(&l->lock);
      while (wake) { /* each holds a reference: c may have been closed meanwhile */
        conn_t *w = wake;
        wake = w->wake_next; /* read while w is still marked woken: nobody relinks it */
        pthread_mutex_lock(&l->lock);
        w->woken = 0; /* from here a new answer wakes the loop again */
        pthread_mutex_unlock(&l->lock);
        loop_serve(l, w, 0, in, in_size);
        conn_unref(w);
      }
    }
    if (wk_now_us() >= l->next_check_us) l->next_check_us = loop_check(l);
    bury(l);
  }
  free(in);
  loop_adopt(l);
  while (l->conns) loop_close(l, l->conns);
  bury(l);
  return NULL;
}

static int loops_start(wk_grpc_server_t *s) {
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  s->n_loops = cores >= 2 ? (int)(cores / 2) : 1;
  if (s->n_loops > MAX_LOOPS) s->n_loops = MAX_LOOPS;
  for (int i = 0; i < s->n_loops; i++) s->loops[i].ep = s->loops[i].efd = -1;
  for (int i = 0; i < s->n_loops; i++) {
    loop_t *l = &s->loops[i];
    l->srv = s;
    pthread_mutex_init(&l->lock, NULL);
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    if (l->ep < 0 || l->efd < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->efd, &ev) != 0 ||
        pthread_create(&l->thread, NULL, loop_main, l) != 0)
      return -1;
    l->started = 1;
  }
  return 0;
}

/* Stops the loops (each closes its connections) and frees them. */
static void loops_stop(wk_grpc_server_t *s) {
  for (int i = 0; i < s->n_loops; i++) {
    loop_t *l = &s->loops[i];
    if (l->started) {
      uint64_t one = 1;
      (void)!write(l->efd, &one, sizeof one);
      pthread_join(l->thread, NULL);
    }
    if (l->ep >= 0) close(l->ep);
    if (l->efd >= 0) close(l->efd);
    pthread_mutex_destroy(&l->lock);
    /* wake-list entries left hold references only */
    while (l->wake) {
      conn_t *w = l->wake;
      l->wake = w->wake_next;
      conn_unref(w);
    }
  }
}

/* ---- the server ---- */

/* A connection on fd (efd: its own thread's wake-up, -1 on a loop), not yet seen by any
 * other thread; NULL when out of memory. */
static conn_t *conn_new(wk_grpc_server_t *s, int fd, int efd) {
  conn_t *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->srv = s;
  c->fd = fd;
  c->efd = efd;
  c->refs = 1;
  pthread_mutex_init(&c->lock, NULL);
  pthread_mutex_init(&c->io, NULL);
  return c;
}

/* Undoes conn_new for a connection that could not start; closes its descriptors. */
static void conn_discard(conn_t *c) {
  if (c->session) nghttp2_session_del(c->session);
  pthread_mutex_destroy(&c->lock);
  pthread_mutex_destroy(&c->io);
  close(c->fd);
  if (c->efd >= 0) close(c->efd);
  free(c);
}

/* A plain connection, handed to the next loop (its session made here, before any other
 * thread can see it). Acceptor thread. */
static void adopt(wk_grpc_server_t *s, int fd) {
  int fl = fcntl(fd, F_GETFL);
  conn_t *c = fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0 ? conn_new(s, fd, -1) : NULL;
  if (c == NULL) {
    close(fd);
    return;
  }
  if (session_new(c) != 0) {
    conn_discard(c);
    return;
  }
  loop_t *l = &s->loops[s->next_loop++ % (unsigned)s->n_loops];
  c->loop = l;
  pthread_mutex_lock(&s->lock);
  c->next = s->conns;
  s->conns = c;
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_lock(&l->lock);
  c->loop_next = l->adopt;
  l->adopt = c;
  pthread_mutex_unlock(&l->lock);
  uint64_t one = 1;
  (void)!write(l->efd, &one, sizeof one);
}

static void *accept_main(void *arg) {
  wk_grpc_server_t *s = arg;
  while (!atomic_load(&s->stopping)) {
    int fd = accept(s->lfd, NULL, NULL);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (atomic_load(&s->stopping)) break;
      if (errno == EMFILE || errno == ENFILE) usleep(100000);
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (s->tls == NULL) {
      adopt(s, fd);
      continue;
    }
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    conn_t *c = efd >= 0 ? conn_new(s, fd, efd) : NULL;
    pthread_t t;
    pthread_attr_t attr;
    if (c == NULL) {
      close(fd);
      if (efd >= 0) close(efd);
      continue;
    }
    if (pthread_attr_init(&attr) != 0) {
      conn_discard(c);
      continue;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_mutex_lock(&s->lock);
    c->next = s->conns;
    s->conns = c;
    int rc = pthread_create(&t, &attr, conn_main, c);
    if (rc != 0) s->conns = c->next;
    pthread_mutex_unlock(&s->lock);
    pthread_attr_destroy(&attr);
    if (rc != 0) conn_discard(c);
  }
  return NULL;
}

static void free_services(wk_grpc_server_t *s) {
  for (size_t i = 0; i < s->n_services; i++) free(s->services[i]);
  free(s->services);
}

/* ALPN: gRPC over TLS is HTTP/2 ("h2") or nothing. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg) {
  (void)ssl, (void)arg;
  for (unsigned i = 0; i < inlen;) {
    unsigned n = in[i];
    if (i + 1 + n > inlen) break;
    if (n == 2 && memcmp(in + i + 1, "h2", 2) == 0) {
      *out = in + i + 1;
      *outlen = 2;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + n;
  }
  return SSL_TLSEXT_ERR_ALERT_FATAL;
}

/* A TLS context from PEM texts: the certificate (then its chain) and the key. */
static SSL_CTX *tls_context(const char *name, const char *cert_pem, const char *key_pem, wk_err_t *err) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  BIO *b = BIO_new_mem_buf(cert_pem, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  int ok = ctx && x && SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) == 1 &&
           SSL_CTX_use_certificate(ctx, x) == 1;
  X509_free(x);
  while (ok && b && (x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
    if (SSL_CTX_add_extra_chain_cert(ctx, x) != 1) X509_free(x); /* else the context owns it */
  BIO_free(b);
  b = ok ? BIO_new_mem_buf(key_pem, -1) : NULL;
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  ok = ok && k && SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1;
  EVP_PKEY_free(k);
  BIO_free(b);
  if (!ok) {
    char why[200] = "no certificate or key";
    unsigned long e = ERR_get_error();
    if (e) ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    wk_err(err, WK_EINVAL, "%s: the TLS certificate or key cannot be used: %s", name, why);
    return NULL;
  }
  SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
  return ctx;
}

int wk_grpc_server_start(const wk_grpc_opts_t *opts, wk_grpc_server_t **out, wk_err_t *err) {
  wk_grpc_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  s->opts = *opts;
  s->methods = malloc((opts->n_methods ? opts->n_methods : 1) * sizeof *s->methods);
  if (s->methods == NULL) {
    free(s);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  if (opts->n_methods) memcpy(s->methods, opts->methods, opts->n_methods * sizeof *s->methods);
  s->services = calloc(opts->n_methods + 2, sizeof *s->services);
  for (size_t i = 0; s->services && i < opts->n_methods + 2; i++) {
    const char *path = i < opts->n_methods ? opts->methods[i].path : wk_grpc_reflection_paths[i - opts->n_methods];
    const char *slash = strchr(path + 1, '/');
    if (path[0] != '/' || slash == NULL) continue;
    char *name = strndup(path + 1, (size_t)(slash - path - 1));
    int seen = 0;
    for (size_t j = 0; name && j < s->n_services && !seen; j++) seen = strcmp(s->services[j], name) == 0;
    if (name && !seen) s->services[s->n_services++] = name;
    else free(name);
  }
  if (opts->tls_cert_pem && opts->tls_key_pem &&
      (s->tls = tls_context(opts->name ? opts->name : "gRPC", opts->tls_cert_pem, opts->tls_key_pem, err)) == NULL) {
    free_services(s);
    free(s->methods);
    free(s);
    return WK_EINVAL;
  }
  snprintf(s->name, sizeof s->name, "%s", opts->name ? opts->name : "gRPC");
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  struct sockaddr_storage ss = {0};
  socklen_t slen;
  int family = strchr(opts->host, ':') ? AF_INET6 : AF_INET;
  const char *h = strcmp(opts->host, "localhost") == 0 ? "127.0.0.1" : opts->host;
  if (family == AF_INET6) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((uint16_t)opts->port);
    slen = sizeof *a;
    if (inet_pton(AF_INET6, h, &a->sin6_addr) != 1) goto bad_address;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t)opts->port);
    slen = sizeof *a;
    if (inet_pton(AF_INET, h, &a->sin_addr) != 1) goto bad_address;
  }
  s->lfd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  if (s->lfd < 0 || setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      bind(s->lfd, (struct sockaddr *)&ss, slen) != 0 || listen(s->lfd, 1024) != 0) {
    int e = errno;
    if (s->lfd >= 0) close(s->lfd);
    SSL_CTX_free(s->tls);
  free_services(s);
  free(s->methods);
    free(s);
    return wk_err(err, WK_EIO, "%s: cannot listen on %s:%d: %s", opts->name, opts->host, opts->port,
                  strerror(e));
  }
  struct sockaddr_storage bound;
  socklen_t blen = sizeof bound;
  getsockname(s->lfd, (struct sockaddr *)&bound, &blen);
  s->port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                     : ((struct sockaddr_in *)&bound)->sin_port);
  if (loops_start(s) != 0 || pthread_create(&s->acceptor, NULL, accept_main, s) != 0) {
    atomic_store(&s->stopping, 1);
    loops_stop(s);
    close(s->lfd);
    SSL_CTX_free(s->tls);
  free_services(s);
  free(s->methods);
    free(s);
    return wk_err(err, WK_EINTERNAL, "%s: cannot start its thread", opts->name);
  }
  *out = s;
  return 0;
bad_address:
  SSL_CTX_free(s->tls);
  free_services(s);
  free(s->methods);
  free(s);
  return wk_err(err, WK_EINVAL, "%s address: '%s' is not an IP address", opts->name, opts->host);
}

int wk_grpc_server_port(const wk_grpc_server_t *s) { return s->port; }

void wk_grpc_server_stop(wk_grpc_server_t *s) {
  if (s == NULL) return;
  atomic_store(&s->stopping, 1);
  shutdown(s->lfd, SHUT_RDWR);
  pthread_join(s->acceptor, NULL);
  close(s->lfd);
  loops_stop(s); /* each closes its connections */
  pthread_mutex_lock(&s->lock);
  for (conn_t *c = s->conns; c; c = c->next) shutdown(c->fd, SHUT_RDWR); /* wakes its poll */
  while (s->conns) pthread_cond_wait(&s->cond, &s->lock);
  pthread_mutex_unlock(&s->lock);
  pthread_mutex_destroy(&s->lock);
  pthread_cond_destroy(&s->cond);
  SSL_CTX_free(s->tls);
  free_services(s);
  free(s->methods);
  free(s);
}
