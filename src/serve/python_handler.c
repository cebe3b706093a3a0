/* Models whose handler is Python code: each worker thread owns one Python worker process
 * (backend/pyworker.c) and sends it the batch as an OTF inference frame; the replies map
 * back to the jobs by request id. A process that dies is restarted by its thread. */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <pthread.h>

#include "archive/archive.h"
#include "backend/otf.h"
#include "backend/pyworker.h"
#include "core/clock.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/form.h"
#include "core/multipart.h"
#include "serve/gpus.h"
#include "serve/model_internal.h"
#include "serve/pydeps.h"

typedef struct {
  char *python;            /* the interpreter */
  int startup_timeout_s;   /* spawn + load */
  int fork_server;         /* fork workers from the template (backend/forkserver.h) */
  char *pythonpath;        /* wick's python/ plus the model's pip folder */
  char deps_dir[4096];     /* its requirements' pip --target, removed at free */
  wk__gpus_t gpus;         /* the workers' GPUs (serve/gpus.h) */
  pthread_mutex_t lock;    /* guards first_py */
  wk_pyworker_t *first_py; /* started at load to check the model; worker 0 takes it */
} state_t;

static _Atomic uint64_t g_request_ids;
/* per worker thread: when its process may be started again after a failed start */

static const char *python_dir(void) {
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
    if (!json_is_string(v)) continue;
    char k[64];
    snprintf(k, sizeof k, "%s", key);
    sanitize(k);
    wk_buf_printf(&labels, "%s%s=", labels.len ? "," : "", k);
    wk_buf_json_str(&labels, json_string_value(v));
  }
  int counter = type != NULL && strcmp(type, "counter") == 0;
  wk__metrics_custom(m, metric, labels.data ? labels.data : "", counter, json_number_value(value));
  wk_buf_destroy(&labels);
  json_decref(root);
}

static int start_process(wk_model_t *m, int index, wk_pyworker_t **out, wk_err_t *err) {
  const state_t *st = m->hstate;
  wk_pyworker_opts_t o;
  memset(&o, 0, sizeof o);
  o.python = st->python;
  o.pythonpath = st->pythonpath ? st->pythonpath : python_dir();
  o.model_name = m->name;
  o.model_dir = m->model_dir;
  o.handler = m->handler;
  o.envelope = m->service_envelope;
  o.batch_size = m->batch_size;
  o.gpu_id = wk__gpus_of(&st->gpus, index);
  o.worker_index = index;
  o.startup_timeout_ms = st->startup_timeout_s * 1000;
  o.on_metric = on_metric;
  o.metric_ud = m;
  o.fork_server = st->fork_server;
  return wk_pyworker_start(&o, out, err);
}

/* Copies one request header into the job (context.get_request_header reads them). */
static int keep_header(wk__job_t *j, const char *name, const char *value) {
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

/* Adds one parameter to j; value is copied when copy is set, else it points into j->data. */
static int add_field(wk__job_t *j, const char *name, const char *ctype, const char *value,
                     size_t len, int copy, wk_err_t *err) {
  if (j->n_fields == WK_MULTIPART_MAX_PARTS)
    return wk_err(err, WK_ETOOBIG,
                  "too many parameters (query arguments and form fields): at most %d",
                  WK_MULTIPART_MAX_PARTS);
  wk__field_t *f = &j->fields[j->n_fields];
  f->name = strdup(name);
  f->content_type = strdup(ctype ? ctype : "");
  f->owned = copy ? malloc(len + 1) : NULL;
  j->n_fields++; /* freed with the job from here on */
  if (f->name == NULL || f->content_type == NULL || (copy && f->owned == NULL))
    return wk_err(err, WK_ENOMEM, "out of memory");
  if (copy) {
    memcpy(f->owned, value, len);
    f->owned[len] = '\0';
  }
  f->value = copy ? f->owned : value;
  f->len = len;
  return 0;
}

/* The parameters a handler sees, as TorchServe's frontend builds them: each query
 * argument (no content type), then the fields of a multipart or urlencoded form body, or
 * else the body itself as "body" with the request's Content-Type. */
static int build_fields(wk__job_t *j, const wk_request_t *r, wk_err_t *err) {
  j->fields = calloc(WK_MULTIPART_MAX_PARTS, sizeof *j->fields);
  if (j->fields == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  int rc = 0;
  for (size_t i = 0; i < r->n_args && rc == 0; i++)
    rc = add_field(j, r->args[i].name, "", r->args[i].value, strlen(r->args[i].value), 1, err);
  if (rc != 0) return rc;
  const char *body = (const char *)j->data;
  if (wk_multipart_is(j->content_type)) {
    wk_multipart_part_t parts[WK_MULTIPART_MAX_PARTS];
    int n = wk_multipart_parse(j->content_type, body, j->data_len, parts, WK_MULTIPART_MAX_PARTS, err);
    for (int i = 0; i < n && rc == 0; i++)
      rc = add_field(j, parts[i].name[0] ? parts[i].name : "body", parts[i].content_type,
                     parts[i].data, parts[i].len, 0, err);
    return n < 0 ? n : rc;
  }
  if (wk_form_is(j->content_type)) {
    wk_form_field_t form[WK_MULTIPART_MAX_PARTS];
    int n = wk_form_parse(body, j->data_len, form, WK_MULTIPART_MAX_PARTS, err);
    for (int i = 0; i < n && rc == 0; i++)
      rc = add_field(j, form[i].name, "", form[i].value, form[i].len, 1, err);
    if (n > 0) wk_form_fields_free(form, n);
    return n < 0 ? n : rc;
  }
  return add_field(j, "body", j->content_type, body, j->data_len, 0, err);
}

static int parse(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err) {
  (void)m;
  j->headers = calloc(2 * WK_MAX_FORWARDED_HEADERS, sizeof *j->headers);
  j->data = malloc(r->body_len ? r->body_len : 1);
  j->content_type = strdup(r->content_type ? r->content_type : "");
  if (j->headers == NULL || j->data == NULL || j->content_type == NULL)
    return wk_err(err, WK_ENOMEM, "out of memory");
  for (size_t h = 0; h < r->n_headers && !keep_header(j, r->headers[h].name, r->headers[h].value); h++) {
  }
  if (r->body_len) memcpy(j->data, r->body, r->body_len);
  j->data_len = r->body_len;
  snprintf(j->id, sizeof j->id, "%016llx", (unsigned long long)atomic_fetch_add(&g_request_ids, 1));
  return build_fields(j, r, err);
}

/* The params of one request, as parse built them. */
static int request_params(wk__job_t *j, wk_otf_param_t *params) {
  for (size_t k = 0; k < j->n_fields; k++)
    params[k] = (wk_otf_param_t){.name = j->fields[k].name,
                                 .content_type = j->fields[k].content_type,
                                 .value = j->fields[k].value,
                                 .value_len = j->fields[k].len};
  return (int)j->n_fields;
}

static const wk_otf_prediction_t *find_pred(const wk_otf_response_t *r, const wk__job_t *j) {
  for (size_t k = 0; k < r->n_preds; k++)
    if (strcmp(r->preds[k].id, j->id) == 0) return &r->preds[k];
  return NULL;
}

/* The reply's content type: the prediction's, else a Content-Type header the handler set,
 * else JSON. */
static const char *reply_type(const wk_otf_prediction_t *p) {
  if (p->content_type[0]) return p->content_type;
  for (size_t h = 0; h < p->n_headers; h++)
    if (strcasecmp(p->headers[h].name, "content-type") == 0) return p->headers[h].value;
  return "application/json";
}

/* The handler's response headers for j, less the stream marker (wick's business) and the
 * content type (the reply carries it once; TorchServe's users saw it twice). */
static void add_headers(wk__job_t *j, const wk_otf_prediction_t *p) {
  for (size_t h = 0; h < p->n_headers; h++)
    if (strcasecmp(p->headers[h].name, "ts_stream_next") != 0 &&
        strcasecmp(p->headers[h].name, "content-type") != 0)
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
    for (size_t i = 0; i < n; i++) wk__job_fail(m, sent[i], WK_ENOMEM, "out of memory");
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
                                         reply_type(p));
    if (open[i]) sent[i]->sink->ops->stream_write(sent[i]->sink, p->body, p->body_len);
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
      if (p) sent[i]->sink->ops->stream_write(sent[i]->sink, p->body, p->body_len);
    }
  }
  if (rc == 0) wk_otf_response_destroy(resp);
  for (size_t i = 0; i < n; i++)
    if (open[i]) sent[i]->sink->ops->stream_end(sent[i]->sink, failed);
  free(open);
  return rc;
}

/* Starts this thread's process. A failure counts as the worker's death: the pool rests the
 * worker (1 s, 2 s, ... 30 s) before its next batch, and a model whose workers keep failing
 * is marked failed (wk__pool_worker_crashed). Returns 0 with *py set, or the error. Worker
 * thread. */
static int start_or_note_crash(wk_model_t *m, wk_pyworker_t **py, int index, wk_err_t *err) {
  int rc = start_process(m, index, py, err);
  if (rc != 0) {
    char why[600];
    snprintf(why, sizeof why, "its process did not start: %s", err->msg);
    wk__pool_worker_crashed(m, index, why);
  }
  return rc;
}

/* Starts a worker thread's process when it has none, so that every worker is ready (and
 * has its GPU) before its first batch; worker 0 takes the process started at load. A
 * failure is logged and retried at that batch. */
static void warm(wk_model_t *m, void **wstate, int index) {
  wk_pyworker_t **py = (wk_pyworker_t **)wstate;
  state_t *st = m->hstate;
  if (*py == NULL && index == 0) {
    pthread_mutex_lock(&st->lock);
    *py = st->first_py;
    st->first_py = NULL;
    pthread_mutex_unlock(&st->lock);
  }
  if (*py != NULL) return;
  wk_err_t err = {{0}};
  if (start_or_note_crash(m, py, index, &err) != 0)
    wk_log_error("model %s: Python worker %d did not start: %s", m->name, index, err.msg);
}

static void run(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  wk_pyworker_t **py = (wk_pyworker_t **)wstate;
  wk_otf_request_t *reqs = calloc(n, sizeof *reqs);
  wk_otf_param_t(*params)[WK_MULTIPART_MAX_PARTS] = calloc(n, sizeof *params);
  wk_otf_kv_t(*hdrs)[WK_MAX_FORWARDED_HEADERS + 3] = calloc(n, sizeof *hdrs);
  size_t live = 0;
  wk__job_t **sent = calloc(n, sizeof *sent);
  if (reqs == NULL || params == NULL || hdrs == NULL || sent == NULL) {
    for (size_t i = 0; i < n; i++) wk__job_fail(m, jobs[i], WK_ENOMEM, "out of memory");
    goto done;
  }
  for (size_t i = 0; i < n; i++) {
    int np = request_params(jobs[i], params[live]);
    size_t nh = 0;
    for (size_t h = 0; h < jobs[i]->n_headers; h++)
      hdrs[live][nh++] = (wk_otf_kv_t){jobs[i]->headers[2 * h], jobs[i]->headers[2 * h + 1]};
    if (jobs[i]->n_headers == 0) hdrs[live][nh++] = (wk_otf_kv_t){"Content-Type", jobs[i]->content_type};
    if (jobs[i]->explain) hdrs[live][nh++] = (wk_otf_kv_t){"explain", "True"};
    if (jobs[i]->describe) hdrs[live][nh++] = (wk_otf_kv_t){"describe", "True"};
    reqs[live] = (wk_otf_request_t){jobs[i]->id, hdrs[live], nh, params[live], (size_t)np};
    sent[live++] = jobs[i];
  }
  if (live == 0) goto done;
  char how[64];
  if (*py != NULL && wk_pyworker_exited(*py, how, sizeof how)) {
    /* it died while idle (killed, out of memory): a new process takes this batch rather
     * than the batch failing on the dead one; the death counts as a crash */
    char why[160];
    snprintf(why, sizeof why, "its process %s while idle", how);
    wk_log_error("model %s: Python worker %d: %s", m->name, index, why);
    wk__pool_worker_crashed(m, index, why);
    wk_pyworker_stop(*py);
    *py = NULL;
  }
  if (*py == NULL) {
    /* (re)start this thread's process, backing off 1 s, 2 s, ... 30 s after failures */
    wk_err_t err = {{0}};
    start_or_note_crash(m, py, index, &err);
    if (*py == NULL) {
      for (size_t i = 0; i < live; i++)
        wk__job_reply_error(m, sent[i], 503, "ServiceUnavailableException", err.msg);
      goto done;
    }
  }
  wk_otf_response_t resp;
  wk_err_t err = {{0}};
  int timeout_ms = m->response_timeout_s * 1000 + 1000;
  int rc = wk_pyworker_infer(*py, reqs, live, &resp, timeout_ms, &err);
  if (rc != 0) {
    wk_log_error("model %s: Python worker %d: %s", m->name, index, err.msg);
    wk__pool_worker_crashed(m, index, err.msg);
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
      wk__pool_worker_crashed(m, index, err.msg);
    }
    goto done;
  }
  if (resp.code != 200) {
    for (size_t i = 0; i < live; i++)
      /* TorchServe's type for every failure a worker reports, its custom codes included */
      wk__job_reply_error(m, sent[i], resp.code, "InternalServerException", resp.message);
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
      const char *ct = reply_type(p);
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

/* ---- loading ---- */

/* With install_py_deps, pip-installs the manifest's requirementsFile into a private
 * folder of this model (st->deps_dir); then sets the workers' PYTHONPATH. */
static int python_requirements(wk_model_t *m, state_t *st, int install, wk_err_t *err) {
  const char *req = m->manifest.requirements_file;
  wk_buf_t pp = WK_BUF_INIT;
  if (req != NULL && !install) {
    wk_log_info("model %s: requirementsFile %s is not installed (install_py_dep_per_model is "
                "false)",
                m->name, req);
  } else if (req != NULL) {
    char path[4096];
    int rc = wk_archive_check_name(req, strlen(req), err);
    if (rc == 0 && wk_fs_join(path, sizeof path, m->model_dir, req) != 0)
      rc = wk_err(err, WK_ETOOBIG, "path too long");
    if (rc == 0 && !wk_fs_exists(path))
      rc = wk_err(err, WK_ENOTFOUND, "the archive has no such file");
    if (rc == 0) rc = wk_fs_mkdtemp("pydeps", st->deps_dir, sizeof st->deps_dir, err);
    int64_t t0 = wk_now_us();
    if (rc == 0)
      rc = wk_pydeps_install(st->python, path, st->deps_dir, m->model_dir, WK_PIP_TIMEOUT_S, err);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': requirementsFile %s", m->name, req);
      return rc;
    }
    wk_log_info("model %s: requirements installed into %s in %lld ms", m->name, st->deps_dir,
                (long long)((wk_now_us() - t0) / 1000));
  }
  wk_buf_puts(&pp, python_dir());
  if (st->deps_dir[0]) wk_buf_printf(&pp, ":%s", st->deps_dir);
  if (pp.data == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  st->pythonpath = wk_buf_steal(&pp, NULL);
  return 0;
}

static int init(wk_model_t *m, const wk_model_load_opts_t *o, wk_err_t *err) {
  state_t *st = calloc(1, sizeof *st);
  if (st == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  pthread_mutex_init(&st->lock, NULL);
  m->hstate = st;
  st->python = strdup(o->python && *o->python ? o->python : WK_PYWORKER_DEFAULT_PYTHON);
  st->startup_timeout_s = o->startup_timeout_s > 0 ? o->startup_timeout_s : WK_DEFAULT_STARTUP_TIMEOUT_S;
  if (st->python == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  int rc;
  if ((rc = wk__gpus_assign(m, &st->gpus, err)) != 0 ||
      (rc = python_requirements(m, st, o->install_py_deps, err)) != 0)
    return rc;
  /* a model with its own requirements has its own import path: a template for it would
   * outlive it (one per registration), so its workers start on their own */
  st->fork_server = o->python_fork_server && st->deps_dir[0] == '\0';
  /* Start one worker process now, so that a handler that cannot load fails the load with
   * its traceback; worker 0 takes this process over. With no worker asked for, nothing
   * runs the handler yet (as in TorchServe: the model registers, scaling up starts it). */
  if (m->min_workers == 0) {
    wk_log_info("model %s %s: handler %s not started (0 workers; scale up to start it)", m->name,
                m->version, m->handler);
    return 0;
  }
  int64_t t0 = wk_now_us();
  if ((rc = start_process(m, 0, &st->first_py, err)) != 0) {
    wk_err_prefix(err, "model '%s'", m->name);
    /* the handler raised or the worker timed out: TorchServe's "failed to start workers" */
    return rc == WK_EMODEL || rc == WK_ETIMEDOUT ? WK_EWORKER : rc;
  }
  wk_log_info("model %s %s: handler %s loaded in a Python worker in %lld ms (python, %d "
              "workers, batch size %d)",
              m->name, m->version, m->handler, (long long)((wk_now_us() - t0) / 1000),
              m->min_workers, m->batch_size);
  return 0;
}

static void free_state(wk_model_t *m) {
  state_t *st = m->hstate;
  if (st == NULL) return;
  if (st->first_py) wk_pyworker_stop(st->first_py);
  free(st->python);
  free(st->pythonpath);
  if (st->deps_dir[0]) wk_fs_rmtree(st->deps_dir);
  pthread_mutex_destroy(&st->lock);
  free(st);
  m->hstate = NULL;
}

static void worker_exit(wk_model_t *m, void *wstate) {
  (void)m;
  if (wstate) wk_pyworker_stop(wstate);
}

/* Python handlers batch as they like: any two requests may share a batch; explanations
 * reach the handler as requests with an explain header. */
static int device(const wk_model_t *m, int index) {
  const state_t *st = m->hstate;
  return st ? wk__gpus_of(&st->gpus, index) : -1;
}

const wk_handler_t wk__handler_python = {
    .name = "python",
    .flags = 0,
    .platform = "python",
    .output_datatype = "BYTES",
    .init = init,
    .free = free_state,
    .parse = parse,
    .run = run,
    .explain = run,
    .warm = warm,
    .worker_exit = worker_exit,
    .device = device,
};
