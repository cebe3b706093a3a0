/* Jobs (see job.h): made on the transport thread, answered once through their sink, in
 * the envelope their route asked for. */
#include "serve/job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"
#include "serve/model_internal.h"
#include "serve/v2_encode.h"
#include "tensor/oip.h"

/* Reads an explanation parameter, "target" (a class index) or "n_steps". */
static int explain_number(wk__job_t *j, const char *name, const char *text, wk_err_t *err) {
  int steps = strcmp(name, "n_steps") == 0;
  char *end;
  long long v = strtoll(text, &end, 10);
  if (*text == '\0' || *end || v < 0 || (steps && (v < 1 || v > WK_MAX_IG_STEPS)))
    return wk_err(err, WK_EINVAL, "%s: expected %s, got '%.40s'", name,
                  steps ? "an integer from 1 to " WK_STR(WK_MAX_IG_STEPS)
                        : "a non-negative class index",
                  text);
  if (steps) j->n_steps = (int)v;
  else j->target = v;
  return 0;
}

int wk__job_explain_param(wk__job_t *j, const char *name, const char *text, size_t len,
                          wk_err_t *err) {
  if (!j->explain || (strcmp(name, "target") != 0 && strcmp(name, "n_steps") != 0)) return 0;
  char buf[32];
  if (len == 0 || len >= sizeof buf)
    return wk_err(err, WK_EINVAL, "%s: expected a non-negative integer", name);
  memcpy(buf, text, len);
  buf[len] = '\0';
  return explain_number(j, name, buf, err);
}

int wk__job_new(wk_model_t *m, wk_sink_t *sink, const wk_request_t *r, int explain, int envelope,
                wk__job_t **out, wk_err_t *err) {
  atomic_fetch_add(&m->req_total, 1);
  wk__job_t *j = calloc(1, sizeof *j);
  if (j == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  j->sink = sink;
  j->envelope = envelope;
  j->explain = explain;
  j->target = -1;
  j->n_steps = WK_DEFAULT_IG_STEPS;
  static const char *const names[2] = {"target", "n_steps"};
  for (int k = 0; explain && r && k < 2; k++) {
    const char *v = wk_request_arg(r, names[k]);
    int rc = v ? explain_number(j, names[k], v, err) : 0;
    if (rc != 0) {
      wk__job_free(j);
      return rc;
    }
  }
  *out = j;
  return 0;
}

void wk__job_free(wk__job_t *j) {
  wk_json_inputs_destroy(&j->inputs);
  free(j->data);
  free(j->content_type);
  for (size_t i = 0; i < j->n_fields; i++) {
    free(j->fields[i].name);
    free(j->fields[i].content_type);
    free(j->fields[i].owned);
  }
  free(j->fields);
  if (j->v2) {
    wk_oip_request_destroy(j->v2);
    free(j->v2);
  }
  for (size_t i = 0; i < 2 * j->n_headers; i++) free(j->headers[i]);
  free(j->headers);
  free(j);
}

/* 1 for the first caller (who then answers j and counts the answer), 0 after. */
static int claim(wk_model_t *m, wk__job_t *j, int status) {
  int expected = 0;
  if (!atomic_compare_exchange_strong(&j->answered, &expected, 1)) return 0;
  if (status < 400) {
    atomic_fetch_add(&m->req_ok, 1);
    if (atomic_load_explicit(&m->crash_streak, memory_order_relaxed) != 0)
      atomic_store(&m->crash_streak, 0); /* a worker answers: no crash loop */
  } else if (status == WK__STATUS_CLIENT_GONE) atomic_fetch_add(&m->req_cancelled, 1);
  else if (status < 500) atomic_fetch_add(&m->req_client_err, 1);
  else atomic_fetch_add(&m->req_server_err, 1);
  wk__status_answered(m, j, status);
  return 1;
}

int wk__job_reply_error(wk_model_t *m, wk__job_t *j, int status, const char *type,
                        const char *msg) {
  if (!claim(m, j, status)) return 0;
  wk__status_error(m, status, msg);
  j->sink->ops->error(j->sink, status, type, msg);
  return 1;
}

int wk__job_client_gone(const wk__job_t *j) {
  const wk_sink_ops_t *ops = j->sink->ops;
  return ops->gone != NULL && ops->gone(j->sink);
}

int wk__error_status(int code, const char **type) {
  int status;
  const char *t;
  switch (code) {
  case WK_EINVAL:
  case WK_EFORMAT:
  case WK_ECRC:
  case WK_EMODEL:
  case WK_EUNSAFE: status = 400, t = "BadRequestException"; break;
  case WK_ETOOBIG: status = 413, t = "PayloadTooLargeException"; break;
  case WK_ENOTFOUND: status = 404, t = "NotFoundException"; break;
  case WK_EUNSUPPORTED: status = 501, t = "NotImplementedException"; break;
  case WK_EBUSY: status = 503, t = "ServiceUnavailableException"; break;
  case WK_ETIMEDOUT: status = 504, t = "RequestTimeout"; break;
  case WK_ENOMEM: status = 507, t = "OutOfMemoryException"; break;
  default: status = 500, t = "InternalServerException"; break;
  }
  if (type) *type = t;
  return status;
}

int wk__job_fail(wk_model_t *m, wk__job_t *j, int code, const char *msg) {
  const char *type;
  int status = wk__error_status(code, &type);
  return wk__job_reply_error(m, j, status, type, msg && *msg ? msg : wk_strerror(code));
}

void wk__sink_reply_v2(wk_sink_t *sink, wk_buf_t *b, size_t json_len) {
  size_t len;
  char *body = wk_buf_steal(b, &len);
  if (json_len < len) {
    char hdr[32];
    snprintf(hdr, sizeof hdr, "%zu", json_len);
    if (sink->ops->header) sink->ops->header(sink, "Inference-Header-Content-Length", hdr);
    sink->ops->reply(sink, 200, "application/octet-stream", body, len);
  } else {
    sink->ops->reply(sink, 200, "application/json", body, len);
  }
}

/* 1 when an answer of len bytes is over m's max_response_size; j is then answered 500
 * with the sizes (TorchServe refuses a worker's response over it too). */
static int over_limit(wk_model_t *m, wk__job_t *j, size_t len) {
  if (m->max_response_size <= 0 || len <= (size_t)m->max_response_size) return 0;
  char msg[300];
  snprintf(msg, sizeof msg,
           "the model's answer is %zu bytes, over max_response_size (%ld bytes); raise "
           "max_response_size in config.properties to send it",
           len, m->max_response_size);
  wk__job_reply_error(m, j, 500, "InternalServerException", msg);
  return 1;
}

/* Sends an encoded v2 answer (rc: how its encoding went; err says why it failed): a
 * client's mistake is 400, anything else 500, then max_response_size, then the claim. */
static int send_v2(wk_model_t *m, wk__job_t *j, int rc, wk_buf_t *b, size_t json_len,
                   const wk_err_t *err) {
  if (rc != 0) {
    wk_buf_destroy(b);
    return rc == WK_EINVAL ? wk__job_reply_error(m, j, 400, "BadRequestException", err->msg)
                           : wk__job_reply_error(m, j, 500, "InternalServerException", err->msg);
  }
  if (over_limit(m, j, b->len)) {
    wk_buf_destroy(b);
    return 1;
  }
  if (!claim(m, j, 200)) {
    wk_buf_destroy(b);
    return 0;
  }
  wk__sink_reply_v2(j->sink, b, json_len);
  return 1;
}

/* A Python handler's answer to a v2 request, encoded before the job is claimed so that an
 * answer that cannot be sent counts as the error it becomes. */
static int reply_v2_body(wk_model_t *m, wk__job_t *j, char *body, size_t len) {
  wk_buf_t b = WK_BUF_INIT;
  size_t json_len = 0;
  wk_err_t err = {{0}};
  int rc = wk__v2_encode_body(m, j->v2, body, len, &b, &json_len, &err);
  free(body);
  return send_v2(m, j, rc, &b, json_len, &err);
}

int wk__job_reply_typed(wk_model_t *m, wk__job_t *j, int status, const char *content_type,
                        char *body, size_t len) {
  if (j->envelope == WK__ENV_V2 && status < 400) return reply_v2_body(m, j, body, len);
  if (over_limit(m, j, len)) {
    free(body);
    return 1;
  }
  if (!claim(m, j, status)) {
    free(body);
    return 0;
  }
  if (j->envelope == WK__ENV_TS) {
    j->sink->ops->reply(j->sink, status, content_type, body, len);
    return 1;
  }
  if (status >= 400) { /* a handler's error body becomes the KServe error message */
    char *msg = strndup(body ? body : "error", body ? len : 5);
    j->sink->ops->error(j->sink, status, "PredictionException", msg ? msg : "error");
    free(msg);
    free(body);
    return 1;
  }
  wk_buf_t b = WK_BUF_INIT;
  /* v1: the handler's answer inside {"predictions": ...} */
  wk_buf_puts(&b, j->explain ? "{\"explanations\": " : "{\"predictions\": ");
  wk_buf_append(&b, body ? body : "null", body ? len : 4);
  wk_buf_puts(&b, "}\n");
  free(body);
  size_t n;
  char *out = wk_buf_steal(&b, &n);
  j->sink->ops->reply(j->sink, status, "application/json", out, n);
  return 1;
}

int wk__job_reply(wk_model_t *m, wk__job_t *j, int status, char *body, size_t len) {
  return wk__job_reply_typed(m, j, status, "application/json", body, len);
}

int wk__job_reply_value(wk_model_t *m, wk__job_t *j, const wk_value_t *v) {
  wk_buf_t b = WK_BUF_INIT;
  if (j->envelope == WK__ENV_V2) {
    size_t json_len = 0;
    wk_err_t err = {{0}};
    int rc = wk__v2_encode_value(m, j->v2, v, &b, &json_len, &err);
    return send_v2(m, j, rc, &b, json_len, &err);
  }
  if (wk_json_print_value(&b, v) != 0) {
    wk_buf_destroy(&b);
    return wk__job_reply_error(m, j, 500, "InternalServerException",
                               "cannot encode the model's output");
  }
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  return wk__job_reply(m, j, 200, body, len);
}

void wk__job_header(wk__job_t *j, const char *name, const char *value) {
  if (j->sink->ops->header) j->sink->ops->header(j->sink, name, value);
}

int wk__job_stream_begin(wk_model_t *m, wk__job_t *j, int status, const char *content_type) {
  if (j->envelope != WK__ENV_TS || j->sink->ops->stream_begin == NULL) {
    wk__job_reply_error(m, j, 501, "InternalServerException",
                        "this handler streams its reply, which the KServe APIs cannot carry; use "
                        "/predictions");
    return 0;
  }
  if (!claim(m, j, status)) return 0;
  return j->sink->ops->stream_begin(j->sink, status, content_type) == 0;
}

const char *wk_request_arg(const wk_request_t *r, const char *name) {
  for (size_t i = 0; i < r->n_args; i++)
    if (strcmp(r->args[i].name, name) == 0) return r->args[i].value;
  return NULL;
}

const char *wk_request_header(const wk_request_t *r, const char *name) {
  for (size_t i = 0; i < r->n_headers; i++)
    if (strcasecmp(r->headers[i].name, name) == 0) return r->headers[i].value;
  return NULL;
}
