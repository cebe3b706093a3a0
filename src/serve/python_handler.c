/* Models whose handler is Python code: each worker thread owns one Python worker process
 * (backend/pyworker.c) and sends it the batch as an OTF inference frame; the replies map
 * back to the jobs by request id. A process that dies is restarted by its thread. */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backend/otf.h"
#include "backend/pyworker.h"
#include "core/clock.h"
#include "core/log.h"
#include "http/multipart.h"
#include "serve/model_internal.h"

static _Atomic uint64_t g_request_ids;
/* per worker thread: when its process may be started again after a failed start */
static _Thread_local int64_t t_next_start_us;
static _Thread_local int t_backoff_ms;

const char *wk__python_dir(void) {
  const char *env = getenv("WICK_PYTHON_PATH");
  return env && *env ? env : WK_PYTHON_DIR;
}

/* Keeps [A-Za-z0-9_:] and turns anything else into '_' (Prometheus metric/label names). */
static void sanitize(char *s) {
  for (; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
          *s == '_' || *s == ':'))
      *s = '_';
}

/* Records one "[METRICS] {...}" line of a worker: counters add up, gauges and
 * histogram observations keep the last value. Runs on the worker's log-reader thread. */
static void on_metric(void *ud, const char *text, size_t len) {
  wk_model_t *m = ud;
  json_t *root = json_loadb(text, len, 0, NULL);
  json_t *name = json_object_get(root, "name"), *value = json_object_get(root, "value");
  const char *type = json_string_value(json_object_get(root, "type"));
  if (!json_is_string(name) || !json_is_number(value)) {
    json_decref(root);
    return;
  }
  char metric[128];
  snprintf(metric, sizeof metric, "%s", json_string_value(name));
  sanitize(metric);
  wk_buf_t labels = WK_BUF_INIT;
  const char *key;
  json_t *v;
  json_object_foreach(json_object_get(root, "dimensions"), key, v) {
    if (!json_is_string(v) || strcmp(key, "ModelName") == 0) continue;
    char k[64];
    snprintf(k, sizeof k, "%s", key);
    sanitize(k);
    wk_buf_printf(&labels, "%s%s=", labels.len ? "," : "", k);
    wk_buf_json_str(&labels, json_string_value(v));
  }
  int counter = type != NULL && strcmp(type, "counter") == 0;
  double x = json_number_value(value);
  pthread_mutex_lock(&m->custom_lock);
  size_t i = 0;
  const char *lab = labels.data ? labels.data : "";
  while (i < m->n_custom && (strcmp(m->custom[i].name, metric) != 0 || strcmp(m->custom[i].labels, lab) != 0))
    i++;
  if (i == m->n_custom && m->n_custom < WK__MAX_CUSTOM_METRICS) {
    wk__custom_metric_t *grown = realloc(m->custom, sizeof *grown * (m->n_custom + 1));
    if (grown != NULL) {
      m->custom = grown;
      grown[i] = (wk__custom_metric_t){strdup(metric), strdup(lab), counter, 0};
      m->n_custom++;
    }
  }
  if (i < m->n_custom) m->custom[i].value = counter ? m->custom[i].value + x : x;
  pthread_mutex_unlock(&m->custom_lock);
  wk_buf_destroy(&labels);
  json_decref(root);
}

int wk__python_start(wk_model_t *m, int index, wk_pyworker_t **out, wk_err_t *err) {
  wk_pyworker_opts_t o;
  memset(&o, 0, sizeof o);
  o.python = m->python;
  o.pythonpath = m->pythonpath ? m->pythonpath : wk__python_dir();
  o.model_name = m->name;
  o.model_dir = m->model_dir;
  o.handler = m->handler;
  o.batch_size = m->batch_size;
  o.gpu_id = m->n_gpu_ids > 0 ? m->gpu_ids[index % m->n_gpu_ids] : -1;
  o.worker_index = index;
  o.startup_timeout_ms = m->startup_timeout_s * 1000;
  o.on_metric = on_metric;
  o.metric_ud = m;
  return wk_pyworker_start(&o, out, err);
}

/* Copies one request header into the job (context.get_request_header reads them). */
static int keep_header(void *ud, const char *name, const char *value) {
  wk__job_t *j = ud;
  if (j->n_headers >= WK_MAX_FORWARDED_HEADERS) return 1;
  char *n = strdup(name), *v = strdup(value);
  if (n == NULL || v == NULL) {
    free(n);
    free(v);
    return 1;
  }
  j->headers[2 * j->n_headers] = n;
  j->headers[2 * j->n_headers + 1] = v;
  j->n_headers++;
  return 0;
}

int wk__python_job_set_body(wk__job_t *j, wk_http_req_t *req, const void *data, size_t len,
                            const char *content_type, wk_err_t *err) {
  j->headers = calloc(2 * WK_MAX_FORWARDED_HEADERS, sizeof *j->headers);
  j->image = malloc(len ? len : 1);
  j->content_type = strdup(content_type ? content_type : "");
  if (j->headers == NULL || j->image == NULL || j->content_type == NULL)
    return wk_err(err, WK_ENOMEM, "out of memory");
  wk_http_req_each_header(req, keep_header, j);
  if (len) memcpy(j->image, data, len);
  j->image_len = len;
  snprintf(j->id, sizeof j->id, "%016llx", (unsigned long long)atomic_fetch_add(&g_request_ids, 1));
  return 0;
}

int wk__python_job_init(wk_model_t *m, wk__job_t *j, wk_http_req_t *req, wk_err_t *err) {
  (void)m;
  size_t len;
  const char *body = wk_http_req_body(req, &len);
  return wk__python_job_set_body(j, req, body, len, wk_http_req_header(req, "Content-Type"), err);
}

/* The params of one request: the form fields of a multipart body, else the body. */
static int request_params(wk__job_t *j, wk_otf_param_t *params, size_t cap, wk_err_t *err) {
  if (wk_multipart_is(j->content_type)) {
    wk_multipart_part_t parts[WK_MULTIPART_MAX_PARTS];
    int n = wk_multipart_parse(j->content_type, (const char *)j->image, j->image_len, parts,
                               WK_MULTIPART_MAX_PARTS, err);
    if (n < 0) return n;
    /* the part descriptors point into j->image; names are copied into the job */
    size_t k = 0;
    for (int i = 0; i < n && k < cap; i++, k++) {
      j->field_names[k] = strdup(parts[i].name[0] ? parts[i].name : "body");
      j->field_types[k] = strdup(parts[i].content_type);
      params[k].name = j->field_names[k];
      params[k].content_type = j->field_types[k];
      params[k].value = parts[i].data;
      params[k].value_len = parts[i].len;
    }
    j->n_fields = k;
    return (int)k;
  }
  params[0].name = "body";
  params[0].content_type = j->content_type;
  params[0].value = j->image;
  params[0].value_len = j->image_len;
  return 1;
}

static const wk_otf_prediction_t *find_pred(const wk_otf_response_t *r, const wk__job_t *j) {
  for (size_t k = 0; k < r->n_preds; k++)
    if (strcmp(r->preds[k].id, j->id) == 0) return &r->preds[k];
  return NULL;
}

/* The handler's response headers for j, less the stream marker (wick's business). */
static void add_headers(wk__job_t *j, const wk_otf_prediction_t *p) {
  for (size_t h = 0; h < p->n_headers; h++)
    if (strcasecmp(p->headers[h].name, "ts_stream_next") != 0)
      wk__job_header(j, p->headers[h].name, p->headers[h].value);
}

/* A streaming handler's batch (send_intermediate_predict_response): each request's reply
 * starts with its part of the first frame (status and headers from it) and every later
 * frame adds one chunk, until a frame no longer says `ts_stream_next: true`. A failure
 * after the first frame cannot change the status any more: the reply is cut (no final
 * chunk) so the client knows it is incomplete. Consumes *resp. Returns 0, or the error that
 * left the worker unusable. */
static int stream_batch(wk_model_t *m, wk_pyworker_t *py, int index, wk__job_t **sent, size_t n,
                        wk_otf_response_t *resp, int timeout_ms, wk_err_t *err) {
  char *open = calloc(n, 1);
  int rc = 0, failed = 0;
  if (open == NULL) {
    wk_otf_response_destroy(resp);
    for (size_t i = 0; i < n; i++) wk__job_reply_error(m, sent[i], 500, "InternalServerException", "out of memory");
    return 0;
  }
  for (size_t i = 0; i < n; i++) {
    const wk_otf_prediction_t *p = find_pred(resp, sent[i]);
    if (p == NULL) {
      wk__job_reply_error(m, sent[i], 503, "InternalServerException",
                          "the Python worker sent no response for this request");
      continue;
    }
    add_headers(sent[i], p);
    open[i] = (char)wk__job_stream_begin(m, sent[i], p->status ? p->status : 200,
                                         p->content_type[0] ? p->content_type : "application/json");
    if (open[i]) wk_http_stream_write(sent[i]->req, p->body, p->body_len);
  }
  while (wk_otf_response_streams(resp)) {
    wk_otf_response_destroy(resp);
    rc = wk_pyworker_read_response(py, resp, timeout_ms, err);
    if (rc != 0) {
      wk_log_error("model %s: Python worker %d failed in the middle of a streamed reply: %s", m->name,
                   index, err->msg);
      failed = 1;
      break;
    }
    if (resp->code != 200) {
      wk_log_error("model %s: Python worker %d: the handler failed in the middle of a streamed "
                   "reply (%d %s); the replies are cut",
                   m->name, index, resp->code, resp->message);
      failed = 1;
      break;
    }
    for (size_t i = 0; i < n; i++) {
      const wk_otf_prediction_t *p = open[i] ? find_pred(resp, sent[i]) : NULL;
      if (p) wk_http_stream_write(sent[i]->req, p->body, p->body_len);
    }
  }
  if (rc == 0) wk_otf_response_destroy(resp);
  for (size_t i = 0; i < n; i++)
    if (open[i]) wk_http_stream_end(sent[i]->req, failed);
  free(open);
  return rc;
}

/* Starts this thread's process, unless the last failure's back-off (1 s, 2 s, ... 30 s)
 * still runs. Returns 0 with *py set, or the error. Worker thread. */
static int start_with_backoff(wk_model_t *m, wk_pyworker_t **py, int index, wk_err_t *err) {
  int64_t now = wk_now_us();
  if (now < t_next_start_us)
    return wk_err(err, WK_EBUSY, "model '%s': its Python worker failed to start; next attempt in %lld ms",
                  m->name, (long long)((t_next_start_us - now) / 1000));
  int rc = wk__python_start(m, index, py, err);
  if (rc != 0) {
    t_backoff_ms = t_backoff_ms ? (t_backoff_ms * 2 > 30000 ? 30000 : t_backoff_ms * 2) : 1000;
    t_next_start_us = wk_now_us() + (int64_t)t_backoff_ms * 1000;
    return rc;
  }
  t_backoff_ms = 0;
  return 0;
}

void wk__python_warm(wk_model_t *m, wk_pyworker_t **py, int index) {
  if (*py != NULL) return;
  wk_err_t err = {{0}};
  if (start_with_backoff(m, py, index, &err) != 0)
    wk_log_error("model %s: Python worker %d did not start: %s; retrying at its first batch", m->name,
                 index, err.msg);
}

void wk__python_run(wk_model_t *m, wk_pyworker_t **py, int index, wk__job_t **jobs, size_t n) {
  wk_otf_request_t *reqs = calloc(n, sizeof *reqs);
  wk_otf_param_t(*params)[WK_MULTIPART_MAX_PARTS] = calloc(n, sizeof *params);
  wk_otf_kv_t(*hdrs)[WK_MAX_FORWARDED_HEADERS + 2] = calloc(n, sizeof *hdrs);
  size_t live = 0;
  wk__job_t **sent = calloc(n, sizeof *sent);
  if (reqs == NULL || params == NULL || hdrs == NULL || sent == NULL) {
    for (size_t i = 0; i < n; i++) wk__job_reply_error(m, jobs[i], 500, "InternalServerException", "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    wk_err_t err = {{0}};
    int np = request_params(jobs[i], params[live], WK_MULTIPART_MAX_PARTS, &err);
    if (np < 0) {
      wk__job_reply_error(m, jobs[i], 400, "BadRequestException", err.msg);
      continue;
    }
    size_t nh = 0;
    for (size_t h = 0; h < jobs[i]->n_headers; h++)
      hdrs[live][nh++] = (wk_otf_kv_t){jobs[i]->headers[2 * h], jobs[i]->headers[2 * h + 1]};
    if (jobs[i]->n_headers == 0) hdrs[live][nh++] = (wk_otf_kv_t){"Content-Type", jobs[i]->content_type};
    if (jobs[i]->explain) hdrs[live][nh++] = (wk_otf_kv_t){"explain", "True"};
    reqs[live] = (wk_otf_request_t){jobs[i]->id, hdrs[live], nh, params[live], (size_t)np};
    sent[live++] = jobs[i];
  }
  if (live == 0) goto done;
  if (*py == NULL) {
    /* (re)start this thread's process, backing off 1 s, 2 s, ... 30 s after failures */
    wk_err_t err = {{0}};
    start_with_backoff(m, py, index, &err);
    if (*py == NULL) {
      for (size_t i = 0; i < live; i++)
        wk__job_reply_error(m, sent[i], 503, "ServiceUnavailableException", err.msg);
      goto done;
    }
  }
  int64_t t0 = wk_now_us();
  wk_otf_response_t resp;
  wk_err_t err = {{0}};
  int timeout_ms = m->response_timeout_s * 1000 + 1000;
  int rc = wk_pyworker_infer(*py, reqs, live, &resp, timeout_ms, &err);
  int64_t took = wk_now_us() - t0;
  for (size_t i = 0; i < live; i++) {
    atomic_fetch_add(&m->inference_us_total, (uint64_t)took);
    wk__hist_add(&m->inference_hist, wk__lat_bounds, WK__LAT_BUCKETS, (double)took / 1e6, (uint64_t)took);
  }
  wk__hist_add(&m->batch_hist, wk__batch_bounds, WK__BATCH_BUCKETS, (double)live, live);
  if (rc != 0) {
    wk_log_error("model %s: Python worker %d: %s; restarting it", m->name, index, err.msg);
    for (size_t i = 0; i < live; i++)
      wk__job_reply_error(m, sent[i], 503, "ServiceUnavailableException", err.msg);
    wk_pyworker_stop(*py);
    *py = NULL; /* the next batch starts a new process */
    goto done;
  }
  if (resp.code == 200 && wk_otf_response_streams(&resp)) {
    if (stream_batch(m, *py, index, sent, live, &resp, timeout_ms, &err) != 0) {
      wk_pyworker_stop(*py);
      *py = NULL;
    }
    goto done;
  }
  if (resp.code != 200) {
    for (size_t i = 0; i < live; i++)
      wk__job_reply_error(m, sent[i], resp.code, resp.code == 503 ? "InternalServerException" : "PredictionException",
                          resp.message);
  } else {
    for (size_t i = 0; i < live; i++) {
      const wk_otf_prediction_t *p = find_pred(&resp, sent[i]);
      if (p == NULL) {
        wk__job_reply_error(m, sent[i], 503, "InternalServerException",
                            "the Python worker sent no response for this request");
        continue;
      }
      add_headers(sent[i], p);
      char *body = malloc(p->body_len + 1);
      if (body) memcpy(body, p->body, p->body_len);
      const char *ct = p->content_type[0] ? p->content_type : "application/json";
      wk__job_reply_typed(m, sent[i], p->status ? p->status : 200, ct, body, body ? p->body_len : 0);
    }
  }
  wk_otf_response_destroy(&resp);
done:
  free(reqs);
  free(params);
  free(hdrs);
  free(sent);
}
