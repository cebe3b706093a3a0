/* HTTP requests as serve/'s requests, and HTTP replies as sinks (see bridge.h). */
#include "api/bridge.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
  wk_api_request_t *out;
  int args;
} fill_t;

static int keep(void *ud, const char *name, const char *value) {
  fill_t *f = ud;
  wk_request_t *r = &f->out->r;
  if (f->args) {
    if (r->n_args >= WK_API_MAX_ARGS) return 1;
    f->out->args[r->n_args++] = (wk_kv_t){name, value ? value : ""};
  } else {
    if (r->n_headers >= WK_MAX_FORWARDED_HEADERS) return 1;
    f->out->headers[r->n_headers++] = (wk_kv_t){name, value ? value : ""};
  }
  return 0;
}

void wk_api_request_from_http(wk_http_req_t *req, wk_api_request_t *out) {
  memset(&out->r, 0, sizeof out->r);
  out->r.body = wk_http_req_body(req, &out->r.body_len);
  out->r.content_type = wk_http_req_header(req, "Content-Type");
  out->r.headers = out->headers;
  out->r.args = out->args;
  fill_t f = {out, 0};
  wk_http_req_each_header(req, keep, &f);
  f.args = 1;
  wk_http_req_each_arg(req, keep, &f);
}

typedef struct {
  wk_sink_t sink; /* first */
  wk_http_req_t *req;
  wk_api_errors_t errors;
} http_sink_t;

static void on_reply(wk_sink_t *s, int status, const char *content_type, char *body, size_t len) {
  http_sink_t *h = (http_sink_t *)s;
  wk_http_reply(h->req, status, content_type, body, len);
  free(h);
}

static void on_error(wk_sink_t *s, int status, const char *type, const char *msg) {
  http_sink_t *h = (http_sink_t *)s;
  if (h->errors == WK_API_ERRORS_KSERVE) wk_http_reply_kserve_error(h->req, status, type, "%s", msg);
  else wk_http_reply_error(h->req, status, type, "%s", msg);
  free(h);
}

static void on_header(wk_sink_t *s, const char *name, const char *value) {
  wk_http_reply_header(((http_sink_t *)s)->req, name, value);
}

static int on_stream_begin(wk_sink_t *s, int status, const char *content_type) {
  http_sink_t *h = (http_sink_t *)s;
  int rc = wk_http_stream_begin(h->req, status, content_type);
  if (rc != 0) free(h); /* not begun: no end will come */
  return rc;
}

static int on_stream_write(wk_sink_t *s, const void *data, size_t len) {
  return wk_http_stream_write(((http_sink_t *)s)->req, data, len);
}

static void on_stream_end(wk_sink_t *s, int failed) {
  http_sink_t *h = (http_sink_t *)s;
  wk_http_stream_end(h->req, failed);
  free(h);
}

static int on_gone(wk_sink_t *s) { return wk_http_req_client_gone(((http_sink_t *)s)->req); }

static const wk_sink_ops_t http_ops = {
    .gone = on_gone,
    .reply = on_reply,
    .error = on_error,
    .header = on_header,
    .stream_begin = on_stream_begin,
    .stream_write = on_stream_write,
    .stream_end = on_stream_end,
};

wk_sink_t *wk_api_sink_new(wk_http_req_t *req, wk_api_errors_t errors) {
  http_sink_t *h = calloc(1, sizeof *h);
  if (h == NULL) return NULL;
  h->sink.ops = &http_ops;
  h->req = req;
  h->errors = errors;
  return &h->sink;
}
