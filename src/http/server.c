/* libmicrohttpd glue: collects bodies (413 before reading an oversized one), inflates gzip
 * and deflate bodies (http/encoding.c), calls the handler, and suspends the connection
 * until a reply arrives from whichever thread finished the work; compresses the replies
 * of routes that allow it when the client asks. Also writes the access log. */
#include "http/server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "core/clock.h"
#include "core/buf.h"
#include "core/limits.h"
#include "core/log.h"
#include "http/encoding.h"

struct wk_http_server_s {
  struct MHD_Daemon *daemon;
  wk_http_opts_t opts;
  char name[32];
  int port;
  _Atomic uint64_t codes[600];
  char *tls_cert, *tls_key; /* copies of the PEM texts, or NULL */
  int starting;             /* MHD_start_daemon is running: keep its last complaint */
  char start_error[400];
  /* the request deadline ([11] part 2): connections still receiving a request, swept */
  pthread_mutex_t conns_lock;
  struct conn_s *conns;
  int64_t request_timeout_us;
  pthread_t sweeper;
  int sweeper_started, sweeper_stop;
  pthread_cond_t sweeper_cond;
};

/* One connection, for the request deadline: waiting_since is when it began waiting for
 * (or receiving) a request, 0 once the request is complete. */
typedef struct conn_s {
  int fd;
  int64_t waiting_since;
  int cut;
  struct conn_s *prev, *next;
} conn_t;

typedef struct hdr_s {
  char *name;
  char *value;
  struct hdr_s *next;
} hdr_t;

struct wk_http_req_s {
  wk_http_server_t *server;
  struct MHD_Connection *conn;
  char method[16];
  char *path;
  wk_buf_t body;
  int64_t start_us;
  int too_large;  /* replied 413 from the headers */
  int compressible; /* the reply may be compressed if the client accepts it */
  int dispatched; /* handler called */

  pthread_mutex_t lock;
  int suspended;
  int replied;
  int refs; /* MHD's reference and the handler's (until reply) */
  int status;
  char *content_type; /* a copy: callers' strings may die before the reply is sent */
  char *reply_body;
  size_t reply_len;
  hdr_t *headers;
  size_t sent_bytes;
  /* a streamed reply (wk_http_stream_*): chunks wait in `pending` until MHD reads them */
  int streaming;
  int stream_done;      /* 1: ended; 2: ended by a failure (the client sees a cut reply) */
  int reader_waiting;   /* the content reader found nothing and suspended the connection */
  int conn_gone;        /* MHD finished with the connection: never touch conn again */
  int fd;               /* the connection's socket, -1 when unknown (read-only to others) */
  wk_buf_t pending;
  size_t pending_off;
  /* an in-process request (wk_http_local_new): no server, no connection */
  struct local_s *local;
};

typedef struct local_s {
  char server_name[32];
  struct hdr_s *args, *in_headers; /* in the order added */
  wk_http_local_done_fn done;
  int (*gone)(void *ud);
  void *ud;
  void *decoded; /* wk_http_local_decoded: the sender's, never freed here */
} local_t;

static void free_hdrs(hdr_t *h) {
  for (hdr_t *n; h; h = n) {
    n = h->next;
    free(h->name);
    free(h->value);
    free(h);
  }
}

static void req_unref(wk_http_req_t *r) {
  pthread_mutex_lock(&r->lock);
  int left = --r->refs;
  pthread_mutex_unlock(&r->lock);
  if (left > 0) return;
  free(r->path);
  wk_buf_destroy(&r->body);
  free(r->reply_body);
  wk_buf_destroy(&r->pending);
  free(r->content_type);
  free_hdrs(r->headers);
  if (r->local) {
    free_hdrs(r->local->args);
    free_hdrs(r->local->in_headers);
    free(r->local);
  }
  pthread_mutex_destroy(&r->lock);
  free(r);
}

/* MHD asks for the next piece of a streamed reply. With nothing pending and the stream
 * still open, the connection is suspended until wk_http_stream_write resumes it (returning
 * 0 without suspending would make MHD spin). */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max) {
  (void)pos;
  wk_http_req_t *r = cls;
  pthread_mutex_lock(&r->lock);
  size_t avail = r->pending.len - r->pending_off;
  ssize_t n;
  if (avail > 0) {
    n = (ssize_t)(avail < max ? avail : max);
    memcpy(buf, r->pending.data + r->pending_off, (size_t)n);
    r->pending_off += (size_t)n;
    r->sent_bytes += (size_t)n;
    if (r->pending_off == r->pending.len) r->pending.len = r->pending_off = 0;
  } else if (r->stream_done) {
    n = r->stream_done == 1 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
  } else {
    r->reader_waiting = 1;
    MHD_suspend_connection(r->conn);
    n = 0;
  }
  pthread_mutex_unlock(&r->lock);
  return n;
}

static void stream_free(void *cls) { req_unref(cls); }

static void set_waiting(wk_http_server_t *s, struct MHD_Connection *conn, int64_t since);

/* Replies of at least this many bytes are compressed when the client accepts it. */
#define COMPRESS_MIN 256

/* Compresses the reply body in place when the request's Accept-Encoding asks for gzip or
 * deflate (and the handler set no Content-Encoding of its own). */
static void compress_reply(wk_http_req_t *r) {
  if (!r->compressible || r->reply_len < COMPRESS_MIN) return;
  for (hdr_t *h = r->headers; h; h = h->next)
    if (strcasecmp(h->name, "Content-Encoding") == 0) return;
  wk_encoding_t enc = wk_encoding_accepted(
      MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING));
  char *z;
  size_t zn;
  if (enc == WK_ENC_IDENTITY || wk_encoding_deflate(enc, r->reply_body, r->reply_len, &z, &zn) != 0)
    return;
  free(r->reply_body);
  r->reply_body = z;
  r->reply_len = zn;
  wk_http_reply_header(r, "Content-Encoding", enc == WK_ENC_GZIP ? "gzip" : "deflate");
  wk_http_reply_header(r, "Vary", "Accept-Encoding");
}

/* Inflates a gzip or deflate request body (Content-Encoding) before the handler sees it,
 * bounded by max_request_size. Replies 415 for another coding, 413 past the limit, 400 for
 * a body that is not in its coding; returns nonzero once it replied. */
static int decode_body(wk_http_req_t *r) {
  const char *ce = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
  wk_encoding_t enc = wk_encoding_of(ce);
  if (enc == WK_ENC_IDENTITY) return 0;
  if (enc == WK_ENC_UNKNOWN) {
    wk_http_reply_error(r, 415, "UnsupportedMediaTypeException",
                        "Content-Encoding '%.64s' is not supported; send gzip, deflate or no coding", ce);
    return 1;
  }
  char *out;
  size_t n;
  wk_err_t err = {{0}};
  int rc = wk_encoding_inflate(enc, r->body.data ? r->body.data : "", r->body.len,
                               (size_t)r->server->opts.max_body, &out, &n, &err);
  if (rc != 0) {
    wk_http_reply_error(r, rc == WK_ETOOBIG ? 413 : rc == WK_ENOMEM ? 500 : 400,
                        rc == WK_ETOOBIG ? "PayloadTooLarge" : rc == WK_ENOMEM ? "InternalServerException"
                                                                                : "BadRequestException",
                        "Content-Encoding %s: %s", enc == WK_ENC_GZIP ? "gzip" : "deflate", err.msg);
    return 1;
  }
  wk_buf_destroy(&r->body);
  r->body.data = out;
  r->body.len = n;
  r->body.cap = n + 1;
  return 0;
}

static enum MHD_Result queue_reply(wk_http_req_t *r) {
  struct MHD_Response *resp;
  if (r->streaming) {
    pthread_mutex_lock(&r->lock);
    r->refs++; /* the response's: dropped by stream_free */
    pthread_mutex_unlock(&r->lock);
    resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, r, stream_free);
    if (resp == NULL) {
      req_unref(r);
      return MHD_NO;
    }
  } else {
    compress_reply(r);
    resp = MHD_create_response_from_buffer_with_free_callback(r->reply_len, r->reply_body, free);
    if (resp == NULL) return MHD_NO;
    r->reply_body = NULL; /* MHD owns it now */
    r->sent_bytes = r->reply_len;
  }
  if (r->content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
  for (hdr_t *h = r->headers; h; h = h->next) MHD_add_response_header(resp, h->name, h->value);
  enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
  MHD_destroy_response(resp);
  if ((unsigned)r->status < 600) atomic_fetch_add(&r->server->codes[r->status], 1);
  return ret;
}

typedef struct framing_s {
  int content_lengths, transfer_encodings, hosts;
  const char *cl, *te;
  int cl_differ;
} framing_t;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value) {
  (void)kind;
  framing_t *f = cls;
  if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
    if (f->cl && value && strcmp(f->cl, value) != 0) f->cl_differ = 1;
    f->cl = value;
    f->content_lengths++;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
    f->te = value;
    f->transfer_encodings++;
  } else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
    f->hosts++;
  }
  return MHD_YES;
}

/* What makes a request's framing ambiguous, refused before its body is read ([11] part 10:
 * behind a proxy that reads it another way, a second request could be smuggled in): two
 * Content-Length headers that differ, Content-Length beside Transfer-Encoding, a
 * Transfer-Encoding other than chunked, an HTTP/1.1 request without Host. NULL when fine;
 * *status gets 400 or 501. */
static const char *framing_problem(struct MHD_Connection *conn, const char *version, int *status) {
  framing_t f = {0};
  MHD_get_connection_values(conn, MHD_HEADER_KIND, count_framing, &f);
  *status = 400;
  if (f.cl_differ) return "two Content-Length headers that differ";
  if (f.content_lengths && f.transfer_encodings)
    return "both Content-Length and Transfer-Encoding; send one of them";
  if (f.transfer_encodings > 1 || (f.te && strcasecmp(f.te, "chunked") != 0)) {
    *status = 501;
    return "a Transfer-Encoding other than chunked (compress with Content-Encoding instead)";
  }
  if (version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0 && f.hosts != 1)
    return f.hosts ? "more than one Host header" : "no Host header (HTTP/1.1 needs one)";
  return NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
  wk_http_server_t *s = cls;
  wk_http_req_t *r = *con_cls;
  if (r == NULL) {
    r = calloc(1, sizeof *r);
    if (r == NULL) return MHD_NO;
    r->server = s;
    r->conn = conn;
    snprintf(r->method, sizeof r->method, "%s", method);
    r->path = strdup(url);
    r->start_us = wk_now_us();
    r->refs = 1;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    r->fd = ci ? ci->connect_fd : -1;
    pthread_mutex_init(&r->lock, NULL);
    *con_cls = r;
    if (r->path == NULL) return MHD_NO;
    int status;
    const char *bad = framing_problem(conn, version, &status);
    if (bad != NULL) {
      r->too_large = 1; /* the body is not read */
      r->dispatched = 1;
      r->refs++;
      wk_http_reply_header(r, "Connection", "close");
      wk_http_reply_error(r, status, status == 400 ? "BadRequestException" : "NotImplementedException",
                          "the request has %s", bad);
      return queue_reply(r);
    }
    const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL && strtoll(cl, NULL, 10) > s->opts.max_body) {
      r->too_large = 1;
      r->dispatched = 1;
      r->refs++;
      wk_http_reply_error(r, 413, "PayloadTooLarge",
                          "request body is %s bytes, the limit (max_request_size) is %ld bytes",
                          cl, s->opts.max_body);
      return queue_reply(r);
    }
    return MHD_YES;
  }
  if (r->too_large) {
    *upload_data_size = 0; /* discard */
    return MHD_YES;
  }
  if (*upload_data_size > 0) {
    if (r->body.len + *upload_data_size > (size_t)s->opts.max_body) {
      /* chunked body without Content-Length that grew too large */
      r->too_large = 1;
      r->dispatched = 1;
      r->refs++;
      *upload_data_size = 0;
      wk_http_reply_error(r, 413, "PayloadTooLarge",
                          "request body exceeds the limit (max_request_size) of %ld bytes",
                          s->opts.max_body);
      return queue_reply(r);
    }
    if (wk_buf_append(&r->body, upload_data, *upload_data_size) != 0) return MHD_NO;
    *upload_data_size = 0;
    return MHD_YES;
  }
  if (!r->dispatched) {
    r->dispatched = 1;
    r->refs++; /* held until the reply */
    set_waiting(s, conn, 0); /* the whole request arrived in time */
    if (decode_body(r)) return queue_reply(r);
    s->opts.handler(r, s->opts.ud);
    pthread_mutex_lock(&r->lock);
    if (!r->replied) {
      r->suspended = 1;
      MHD_suspend_connection(conn);
      pthread_mutex_unlock(&r->lock);
      return MHD_YES;
    }
    pthread_mutex_unlock(&r->lock);
    return queue_reply(r);
  }
  /* resumed: the reply is ready */
  return queue_reply(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
  (void)conn;
  wk_http_server_t *s = cls;
  wk_http_req_t *r = *con_cls;
  if (r == NULL) return;
  *con_cls = NULL;
  pthread_mutex_lock(&r->lock);
  r->conn_gone = 1;
  pthread_mutex_unlock(&r->lock);
  if (s->opts.access_log) {
    wk_log(WK_LOG_INFO, "%s %s %s %d %zu %lldus%s", s->name, r->method, r->path,
           r->replied ? r->status : 0, r->sent_bytes, (long long)(wk_now_us() - r->start_us),
           toe == MHD_REQUEST_TERMINATED_COMPLETED_OK ? "" : " (aborted)");
  }
  req_unref(r);
}

static conn_t *conn_of(struct MHD_Connection *conn) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
  return ci ? (conn_t *)ci->socket_context : NULL;
}

static void set_waiting(wk_http_server_t *s, struct MHD_Connection *conn, int64_t since) {
  conn_t *c = conn_of(conn);
  if (c == NULL) return;
  pthread_mutex_lock(&s->conns_lock);
  c->waiting_since = since;
  pthread_mutex_unlock(&s->conns_lock);
}

/* Arguments in uri's query (each '&'-separated piece, empty ones included). */
static size_t query_args(const char *uri) {
  const char *q = strchr(uri, '?');
  if (q == NULL) return 0;
  size_t n = 1;
  for (q++; *q; q++)
    if (*q == '&') n++;
  return n;
}

/* A request line with more query arguments than WK_MAX_QUERY_ARGS. libmicrohttpd 0.9.75
 * would run out of connection memory parsing them, log a 431 and send nothing, leaving the
 * client to wait for request_timeout; it has not parsed them yet, so wick answers 414 on
 * the socket itself (plain HTTP: nothing of this request was sent) and shuts the socket,
 * which makes libmicrohttpd close the connection. Over TLS only the shutdown is possible. */
static void refuse_query(wk_http_server_t *s, struct MHD_Connection *conn, size_t n) {
  const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
  if (ci == NULL) return;
  wk_log_warn("%s API: a request line with %zu query arguments (at most %d): refused", s->name,
              n, WK_MAX_QUERY_ARGS);
  if (s->tls_cert == NULL) {
    char body[200], msg[400];
    int blen = snprintf(body, sizeof body,
                        "{\"code\": 414, \"type\": \"URITooLong\", \"message\": \"the query has %zu "
                        "arguments; at most %d are read\"}\n",
                        n, WK_MAX_QUERY_ARGS);
    int mlen = snprintf(msg, sizeof msg,
                        "HTTP/1.1 414 URI Too Long\r\nConnection: close\r\nContent-Type: "
                        "application/json\r\nContent-Length: %d\r\n\r\n%s",
                        blen, body);
    if (mlen > 0 && (size_t)mlen < sizeof msg) (void)!send(ci->connect_fd, msg, (size_t)mlen, MSG_NOSIGNAL);
  }
  shutdown(ci->connect_fd, SHUT_RDWR);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn) {
  set_waiting(cls, conn, wk_now_us()); /* a request line: its deadline starts (again) */
  size_t n = query_args(uri);
  if (n > WK_MAX_QUERY_ARGS) refuse_query(cls, conn, n);
  return NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code) {
  wk_http_server_t *s = cls;
  if (code == MHD_CONNECTION_NOTIFY_STARTED) {
    conn_t *c = calloc(1, sizeof *c);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (c == NULL || ci == NULL) {
      free(c);
      return;
    }
    c->fd = ci->connect_fd;
    c->waiting_since = wk_now_us();
    pthread_mutex_lock(&s->conns_lock);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    pthread_mutex_unlock(&s->conns_lock);
    *socket_context = c;
  } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && *socket_context != NULL) {
    conn_t *c = *socket_context; /* before MHD closes the fd: the sweeper never sees it reused */
    pthread_mutex_lock(&s->conns_lock);
    if (c->prev) c->prev->next = c->next;
    else s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    pthread_mutex_unlock(&s->conns_lock);
    free(c);
    *socket_context = NULL;
  }
}

/* Cuts connections whose request (header and body together, or the wait for one) has
 * taken longer than request_timeout: a client trickling a byte at a time stays inside the
 * idle timeout forever. shutdown() makes libmicrohttpd see the end and close it. */
static void *sweep(void *arg) {
  wk_http_server_t *s = arg;
  pthread_mutex_lock(&s->conns_lock);
  while (!s->sweeper_stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 1;
    pthread_cond_timedwait(&s->sweeper_cond, &s->conns_lock, &ts);
    int64_t now = wk_now_us();
    for (conn_t *c = s->conns; c; c = c->next) {
      if (c->cut || c->waiting_since == 0 || now - c->waiting_since < s->request_timeout_us) continue;
      c->cut = 1;
      shutdown(c->fd, SHUT_RDWR);
    }
  }
  pthread_mutex_unlock(&s->conns_lock);
  return NULL;
}

/* libmicrohttpd's own complaints go to wick's log; while the daemon starts, the last one is
 * kept so that a failure can say why (a port in use, a certificate GnuTLS refused). */
__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt,
                                                             va_list ap) {
  wk_http_server_t *s = cls;
  char msg[512];
  vsnprintf(msg, sizeof msg, fmt, ap);
  size_t n = strlen(msg);
  while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '.' || msg[n - 1] == ' '))
    msg[--n] = '\0';
  if (s->starting) { /* every complaint: the last one is often the least specific */
    size_t used = strlen(s->start_error);
    snprintf(s->start_error + used, sizeof s->start_error - used, "%s%s", used ? "; " : "", msg);
  } else
    wk_log(WK_LOG_WARN, "%s API: %s", s->name, msg);
}

static void free_server(wk_http_server_t *s) {
  if (s->sweeper_started) {
    pthread_mutex_lock(&s->conns_lock);
    s->sweeper_stop = 1;
    pthread_cond_signal(&s->sweeper_cond);
    pthread_mutex_unlock(&s->conns_lock);
    pthread_join(s->sweeper, NULL);
  }
  pthread_mutex_destroy(&s->conns_lock);
  pthread_cond_destroy(&s->sweeper_cond);
  if (s->tls_key) memset(s->tls_key, 0, strlen(s->tls_key));
  free(s->tls_key);
  free(s->tls_cert);
  free(s);
}

int wk_http_server_start(const wk_http_opts_t *opts, wk_http_server_t **out, wk_err_t *err) {
  if ((opts->tls_cert_pem == NULL) != (opts->tls_key_pem == NULL))
    return wk_err(err, WK_EINVAL, "%s API: HTTPS needs both a certificate and a private key",
                  opts->name ? opts->name : "http");
  if (opts->tls_cert_pem && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
    return wk_err(err, WK_EUNSUPPORTED,
                  "%s API: this libmicrohttpd was built without TLS, so https:// cannot be served",
                  opts->name ? opts->name : "http");
  wk_http_server_t *s = calloc(1, sizeof *s);
  if (s == NULL) return WK_ENOMEM;
  s->opts = *opts;
  pthread_mutex_init(&s->conns_lock, NULL);
  pthread_cond_init(&s->sweeper_cond, NULL);
  s->request_timeout_us =
      (int64_t)(opts->request_timeout_s > 0 ? opts->request_timeout_s : WK_DEFAULT_REQUEST_TIMEOUT_S) * 1000000;
  if (opts->tls_cert_pem) {
    s->tls_cert = strdup(opts->tls_cert_pem);
    s->tls_key = strdup(opts->tls_key_pem);
    if (s->tls_cert == NULL || s->tls_key == NULL) {
      free_server(s);
      return WK_ENOMEM;
    }
  }
  s->opts.tls_cert_pem = s->tls_cert;
  s->opts.tls_key_pem = s->tls_key;
  snprintf(s->name, sizeof s->name, "%s", opts->name ? opts->name : "http");
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                       MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
  if (strchr(opts->host, ':') != NULL) {
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)opts->port);
    if (inet_pton(AF_INET6, opts->host, &a6->sin6_addr) != 1) {
      int rc = wk_err(err, WK_EINVAL, "%s address: '%s' is not an IPv6 address", s->name, opts->host);
      free_server(s);
      return rc;
    }
    flags |= MHD_USE_IPv6;
  } else {
    struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)opts->port);
    const char *h = strcmp(opts->host, "localhost") == 0 ? "127.0.0.1" : opts->host;
    if (inet_pton(AF_INET, h, &a4->sin_addr) != 1) {
      int rc = wk_err(err, WK_EINVAL, "%s address: '%s' is not an IPv4 address", s->name, opts->host);
      free_server(s);
      return rc;
    }
  }
  /* A pool of one (or zero) is no pool and MHD warns about it: name it only when it helps. */
  struct MHD_OptionItem extra[6];
  int n_extra = 0;
  if (opts->threads > 1)
    extra[n_extra++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, opts->threads, NULL};
  if (s->tls_cert) {
    flags |= MHD_USE_TLS;
    extra[n_extra++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key};
    extra[n_extra++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert};
  }
  if (opts->max_per_client > 0)
    extra[n_extra++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                                (intptr_t)opts->max_per_client, NULL};
  extra[n_extra] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
  s->starting = 1;
  s->daemon = MHD_start_daemon(
      flags, (uint16_t)opts->port, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER,
      on_mhd_log, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_NOTIFY_COMPLETED,
      on_completed, s, MHD_OPTION_URI_LOG_CALLBACK, on_uri, s, MHD_OPTION_NOTIFY_CONNECTION,
      on_connection, s, MHD_OPTION_CONNECTION_TIMEOUT,
      (unsigned int)(opts->idle_timeout_s > 0 ? opts->idle_timeout_s : WK_DEFAULT_IDLE_TIMEOUT_S),
      MHD_OPTION_CONNECTION_LIMIT,
      (unsigned int)(opts->max_connections > 0 ? opts->max_connections : 4096),
      MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned int)1024, MHD_OPTION_ARRAY, extra, MHD_OPTION_END);
  s->starting = 0;
  if (s->daemon == NULL) {
    int rc;
    if (s->start_error[0])
      rc = wk_err(err, WK_EIO, "%s API: cannot listen on %s:%d%s: %s", s->name, opts->host,
                  opts->port, s->tls_cert ? " with TLS" : "", s->start_error);
    else
      rc = wk_err(err, WK_EIO, "%s API: cannot listen on %s:%d (is the port in use?)", s->name,
                  opts->host, opts->port);
    free_server(s);
    return rc;
  }
  const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
  s->port = info ? info->port : opts->port;
  s->sweeper_started = pthread_create(&s->sweeper, NULL, sweep, s) == 0;
  *out = s;
  return 0;
}

void wk_http_server_stop(wk_http_server_t *s) {
  if (s == NULL) return;
  MHD_stop_daemon(s->daemon);
  free_server(s);
}

int wk_http_server_port(const wk_http_server_t *s) { return s->port; }

void wk_http_server_stats(const wk_http_server_t *s, wk_http_stats_t *out) {
  memset(out, 0, sizeof *out);
  for (int i = 100; i < 600; i++) {
    out->codes[i] = atomic_load(&((wk_http_server_t *)s)->codes[i]);
    out->by_status[i / 100] += out->codes[i];
  }
}

const char *wk_http_req_method(const wk_http_req_t *r) { return r->method; }
const char *wk_http_req_path(const wk_http_req_t *r) { return r->path; }
const char *wk_http_req_server_name(const wk_http_req_t *r) {
  return r->local ? r->local->server_name : r->server->name;
}

static const char *find_hdr(const hdr_t *h, const char *name, int nocase) {
  for (; h; h = h->next)
    if ((nocase ? strcasecmp(h->name, name) : strcmp(h->name, name)) == 0) return h->value;
  return NULL;
}

const char *wk_http_req_arg(wk_http_req_t *r, const char *key) {
  if (r->local) return find_hdr(r->local->args, key, 0);
  return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *wk_http_req_header(wk_http_req_t *r, const char *name) {
  if (r->local) return find_hdr(r->local->in_headers, name, 1);
  return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

static int each_local(const hdr_t *h, int (*fn)(void *, const char *, const char *), void *ud) {
  int n = 0;
  for (; h; h = h->next) {
    n++;
    if (fn(ud, h->name, h->value)) break;
  }
  return n;
}

typedef struct {
  int (*fn)(void *, const char *, const char *);
  void *ud;
} each_header_t;

static enum MHD_Result each_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
  (void)kind;
  each_header_t *e = cls;
  return e->fn(e->ud, key, value ? value : "") ? MHD_NO : MHD_YES;
}

int wk_http_req_each_header(wk_http_req_t *r, int (*fn)(void *ud, const char *name, const char *value),
                            void *ud) {
  if (r->local) return each_local(r->local->in_headers, fn, ud);
  each_header_t e = {fn, ud};
  return MHD_get_connection_values(r->conn, MHD_HEADER_KIND, each_header, &e);
}

int wk_http_req_each_arg(wk_http_req_t *r, int (*fn)(void *ud, const char *name, const char *value),
                         void *ud) {
  if (r->local) return each_local(r->local->args, fn, ud);
  each_header_t e = {fn, ud};
  return MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, each_header, &e);
}

const char *wk_http_req_body(const wk_http_req_t *r, size_t *len) {
  *len = r->body.len;
  return r->body.data ? r->body.data : "";
}

int64_t wk_http_req_start_us(const wk_http_req_t *r) { return r->start_us; }

void wk_http_req_compressible(wk_http_req_t *r) { r->compressible = 1; }

int wk_http_req_client_gone(wk_http_req_t *r) {
  if (r->local) return r->local->gone ? r->local->gone(r->local->ud) : 0;
  pthread_mutex_lock(&r->lock);
  int gone = r->conn_gone;
  /* While unanswered the connection is suspended and MHD keeps its socket open, so the fd
   * is still this client's. Its end of the stream (FIN, or a reset) shows as RDHUP/HUP/ERR;
   * readable bytes alone are a pipelined request, not a departure. */
  if (!gone && !r->replied && r->fd >= 0) {
    struct pollfd p = {.fd = r->fd, .events = POLLRDHUP};
    if (poll(&p, 1, 0) == 1 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR))) gone = 1;
  }
  pthread_mutex_unlock(&r->lock);
  return gone;
}

void wk_http_reply_header(wk_http_req_t *r, const char *name, const char *value) {
  hdr_t *h = calloc(1, sizeof *h);
  if (h == NULL) return;
  h->name = strdup(name);
  h->value = strdup(value);
  h->next = r->headers;
  r->headers = h;
}

void wk_http_reply(wk_http_req_t *r, int status, const char *content_type, char *body,
                   size_t len) {
  pthread_mutex_lock(&r->lock);
  if (r->replied) { /* a bug in the caller: keep the first reply */
    pthread_mutex_unlock(&r->lock);
    free(body);
    return;
  }
  r->replied = 1;
  if (r->local) { /* straight to its owner, on this thread */
    pthread_mutex_unlock(&r->lock);
    r->local->done(r->local->ud, status, content_type, body, body ? len : 0);
    req_unref(r);
    return;
  }
  r->status = status;
  r->content_type = content_type ? strdup(content_type) : NULL;
  r->reply_body = body;
  r->reply_len = body ? len : 0;
  if (r->suspended) {
    r->suspended = 0;
    MHD_resume_connection(r->conn);
  }
  pthread_mutex_unlock(&r->lock);
  req_unref(r); /* the handler's reference */
}

void wk_http_reply_json(wk_http_req_t *r, int status, const char *json, size_t len) {
  char *copy = malloc(len + 1);
  if (copy) {
    memcpy(copy, json, len);
    copy[len] = '\0';
  }
  wk_http_reply(r, status, "application/json", copy, copy ? len : 0);
}

/* 1 for a path of the KServe protocols (/v1/..., /v2, /v2/...), whose clients read "error". */
static int kserve_path(const char *p) {
  return strncmp(p, "/v1/", 4) == 0 || strcmp(p, "/v2") == 0 || strncmp(p, "/v2/", 4) == 0;
}

void wk_http_reply_error(wk_http_req_t *r, int status, const char *type, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (kserve_path(r->path)) {
    wk_http_reply_kserve_error(r, status, type, "%s", msg);
    return;
  }
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_printf(&b, "{\n  \"code\": %d,\n  \"type\": ", status);
  wk_buf_json_str(&b, type);
  wk_buf_puts(&b, ",\n  \"message\": ");
  wk_buf_json_str(&b, msg);
  wk_buf_puts(&b, "\n}\n");
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(r, status, "application/json", body, len);
}

/* ---- streamed replies ---- */

int wk_http_stream_begin(wk_http_req_t *r, int status, const char *content_type) {
  pthread_mutex_lock(&r->lock);
  if (r->replied || r->local) { /* an in-process request takes whole replies only */
    pthread_mutex_unlock(&r->lock);
    return WK_EINVAL;
  }
  r->replied = 1;
  r->streaming = 1;
  r->status = status;
  r->content_type = content_type ? strdup(content_type) : NULL;
  if (r->suspended) {
    r->suspended = 0;
    MHD_resume_connection(r->conn);
  }
  pthread_mutex_unlock(&r->lock);
  return 0;
}

/* Wakes the content reader if it is waiting for data. Lock held. */
static void stream_wake(wk_http_req_t *r) {
  if (r->reader_waiting && !r->conn_gone) {
    r->reader_waiting = 0;
    MHD_resume_connection(r->conn);
  }
}

int wk_http_stream_write(wk_http_req_t *r, const void *data, size_t len) {
  pthread_mutex_lock(&r->lock);
  int rc = 0;
  if (!r->streaming || r->stream_done) rc = WK_EINVAL;
  else if (r->conn_gone) rc = WK_EIO; /* the client went away: drop the data */
  else if (len > 0) {
    rc = wk_buf_append(&r->pending, data, len);
    stream_wake(r);
  }
  pthread_mutex_unlock(&r->lock);
  return rc;
}

void wk_http_stream_end(wk_http_req_t *r, int failed) {
  pthread_mutex_lock(&r->lock);
  if (!r->streaming || r->stream_done) {
    pthread_mutex_unlock(&r->lock);
    return;
  }
  r->stream_done = failed ? 2 : 1;
  stream_wake(r);
  pthread_mutex_unlock(&r->lock);
  req_unref(r); /* the handler's reference */
}

void wk_http_reply_field(wk_http_req_t *r, int status, const char *key, const char *msg, int pretty) {
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, pretty ? "{\n  " : "{");
  wk_buf_json_str(&b, key);
  wk_buf_puts(&b, ": ");
  wk_buf_json_str(&b, msg);
  wk_buf_puts(&b, pretty ? "\n}\n" : "}\n");
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(r, status, "application/json", body, len);
}

void wk_http_reply_kserve_error(wk_http_req_t *r, int status, const char *type, const char *fmt,
                                ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{\"error\": ");
  wk_buf_json_str(&b, msg);
  wk_buf_printf(&b, ", \"code\": %d, \"type\": ", status);
  wk_buf_json_str(&b, type);
  wk_buf_puts(&b, ", \"message\": ");
  wk_buf_json_str(&b, msg);
  wk_buf_puts(&b, "}\n");
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk_http_reply(r, status, "application/json", body, len);
}

/* ---- in-process requests ---- */

wk_http_req_t *wk_http_local_new(const char *server_name, const char *method, const char *path,
                                 const void *body, size_t len, wk_http_local_done_fn done,
                                 int (*gone)(void *ud), void *ud) {
  wk_http_req_t *r = calloc(1, sizeof *r);
  local_t *l = calloc(1, sizeof *l);
  if (r == NULL || l == NULL || (r->path = strdup(path)) == NULL ||
      (len > 0 && wk_buf_append(&r->body, body, len) != 0)) {
    if (r) {
      free(r->path);
      wk_buf_destroy(&r->body);
    }
    free(r);
    free(l);
    return NULL;
  }
  snprintf(l->server_name, sizeof l->server_name, "%s", server_name);
  snprintf(r->method, sizeof r->method, "%s", method);
  l->done = done;
  l->gone = gone;
  l->ud = ud;
  r->local = l;
  r->fd = -1;
  r->refs = 1; /* the handler's, dropped by the reply */
  r->start_us = wk_now_us();
  r->dispatched = 1;
  pthread_mutex_init(&r->lock, NULL);
  return r;
}

static int add_hdr(hdr_t **list, const char *name, const char *value) {
  hdr_t *h = calloc(1, sizeof *h);
  if (h == NULL || (h->name = strdup(name)) == NULL || (h->value = strdup(value ? value : "")) == NULL) {
    if (h) free(h->name);
    free(h);
    return WK_ENOMEM;
  }
  while (*list) list = &(*list)->next;
  *list = h;
  return 0;
}

int wk_http_local_arg(wk_http_req_t *r, const char *key, const char *value) {
  return r->local ? add_hdr(&r->local->args, key, value) : WK_EINVAL;
}

int wk_http_local_header(wk_http_req_t *r, const char *name, const char *value) {
  return r->local ? add_hdr(&r->local->in_headers, name, value) : WK_EINVAL;
}

void wk_http_local_set_decoded(wk_http_req_t *r, void *decoded) {
  if (r->local) r->local->decoded = decoded;
}

void *wk_http_req_decoded(const wk_http_req_t *r) { return r->local ? r->local->decoded : NULL; }

void wk_http_local_discard(wk_http_req_t *r) {
  if (r != NULL && r->local) req_unref(r);
}
