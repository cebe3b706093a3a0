/* Model versions: load (unpack, manifest, config, TorchScript), the bounded job queue, the
 * native worker threads that share one module, replies and per-model metrics.
 * Batching and live scaling come with issue [2]; the Python runtime with issue [4]. */
#include "serve/model.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "archive/manifest.h"
#include "archive/model_config.h"
#include "archive/zip.h"
#include "backend/torch.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"

/* Upper bounds of the latency histograms, seconds (Prometheus "le"). */
static const double k_buckets[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                   0.025,  0.05,    0.1,    0.25,  0.5,    1,     2.5,
                                   5,      10};
#define N_BUCKETS (sizeof k_buckets / sizeof k_buckets[0])

typedef struct hist_s {
  _Atomic uint64_t counts[N_BUCKETS + 1];
  _Atomic uint64_t sum_us;
  _Atomic uint64_t n;
} hist_t;

typedef struct job_s {
  wk_http_req_t *req;
  wk_json_inputs_t inputs;
  int64_t enqueued_us;
  int64_t deadline_us;
  struct job_s *next;
} job_t;

typedef struct worker_s {
  pthread_t thread;
  int id;
  int started;
  time_t start_time;
  wk_model_t *model;
} worker_t;

struct wk_model_s {
  char *name;
  char *version;
  char *url;
  char *handler;
  char model_dir[4096];
  char tmp_dir[4096]; /* our unpack directory, removed at free; empty for directories */
  wk_manifest_t manifest;
  wk_model_config_t config;
  wk_torch_model_t *torch;
  int min_workers, max_workers, batch_size, max_batch_delay_ms, response_timeout_s;
  int loaded_at_startup;

  pthread_mutex_t lock;
  pthread_cond_t cond;
  job_t *head, *tail;
  int queued;
  int queue_cap;
  int stopping;
  worker_t *workers;
  int n_workers;
  _Atomic int live_workers;
  _Atomic int nqueued;  /* == queued, readable without the lock (the spinner polls it) */
  int spinning;         /* a worker is polling nqueued: submit need not signal; lock held */
  int spin_us;

  _Atomic uint64_t req_total, req_ok, req_client_err, req_server_err;
  _Atomic uint64_t inference_us_total, queue_us_total;
  hist_t inference_hist, queue_hist;
};

static void hist_add(hist_t *h, int64_t us) {
  double s = (double)us / 1e6;
  size_t i = 0;
  while (i < N_BUCKETS && s > k_buckets[i]) i++;
  atomic_fetch_add(&h->counts[i], 1);
  atomic_fetch_add(&h->sum_us, (uint64_t)(us > 0 ? us : 0));
  atomic_fetch_add(&h->n, 1);
}

static void count_reply(wk_model_t *m, int status) {
  if (status < 400) atomic_fetch_add(&m->req_ok, 1);
  else if (status < 500) atomic_fetch_add(&m->req_client_err, 1);
  else atomic_fetch_add(&m->req_server_err, 1);
}

static void reply_error(wk_model_t *m, wk_http_req_t *req, int status, const char *type,
                        const char *msg) {
  count_reply(m, status);
  wk_http_reply_error(req, status, type, "%s", msg);
}

static void job_free(job_t *j) {
  wk_json_inputs_destroy(&j->inputs);
  free(j);
}

/* ---- the native tensor handler ---- */

static void run_job(wk_model_t *m, job_t *j) {
  int64_t start = wk_now_us();
  if (start > j->deadline_us) {
    char msg[256];
    snprintf(msg, sizeof msg,
             "model '%s' did not answer within its response timeout of %d s (request waited in "
             "the queue)",
             m->name, m->response_timeout_s);
    reply_error(m, j->req, 504, "RequestTimeout", msg);
    return;
  }
  int64_t queued_us = start - j->enqueued_us;
  atomic_fetch_add(&m->queue_us_total, (uint64_t)queued_us);
  hist_add(&m->queue_hist, queued_us);

  wk_value_t args_storage[WK_MAX_NAMED_INPUTS];
  const wk_value_t *args[WK_MAX_NAMED_INPUTS];
  size_t nargs = j->inputs.count;
  memset(args_storage, 0, sizeof args_storage);
  for (size_t i = 0; i < nargs; i++) {
    args_storage[i].kind = WK_V_TENSOR;
    args_storage[i].tensor = j->inputs.tensors[i];
    args_storage[i].tensor.owns_data = 0; /* still owned by the job */
    args[i] = &args_storage[i];
  }
  wk_value_t *out = NULL;
  wk_err_t err = {{0}};
  int rc = wk_torch_forward(m->torch, args, nargs, &out, &err);
  int64_t took = wk_now_us() - start;
  atomic_fetch_add(&m->inference_us_total, (uint64_t)took);
  hist_add(&m->inference_hist, took);
  if (rc != 0) {
    if (rc == WK_EMODEL) {
      /* Say what was sent: libtorch's message names the shapes it compared, not always
       * the input's. */
      char msg[sizeof err.msg + 256];
      size_t n = (size_t)snprintf(msg, sizeof msg, "%s (received", err.msg);
      for (size_t i = 0; i < nargs && n < sizeof msg; i++) {
        char shape[128];
        wk_shape_str(j->inputs.tensors[i].shape, j->inputs.tensors[i].ndim, shape, sizeof shape);
        n += (size_t)snprintf(msg + n, sizeof msg - n, "%s input %zu: %s %s", i ? "," : "", i,
                              wk_dtype_name(j->inputs.tensors[i].dtype), shape);
      }
      if (n < sizeof msg) snprintf(msg + n, sizeof msg - n, ")");
      reply_error(m, j->req, 400, "BadRequestException", msg);
    }
    else reply_error(m, j->req, 500, "InternalServerException", err.msg);
    return;
  }
  wk_buf_t b = WK_BUF_INIT;
  rc = wk_json_print_value(&b, out);
  wk_value_free(out);
  if (rc != 0) {
    wk_buf_destroy(&b);
    reply_error(m, j->req, 500, "InternalServerException", "cannot encode the model's output");
    return;
  }
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  count_reply(m, 200);
  wk_http_reply(j->req, 200, "application/json", body, len);
}

/* Takes the next job, or NULL when the model stops. One idle worker at a time polls the
 * queue for spin_us before it sleeps, so that a request arriving soon after the last one
 * does not pay for a thread wake-up; the others sleep at once. */
static job_t *next_job(wk_model_t *m) {
  pthread_mutex_lock(&m->lock);
  if (m->head == NULL && !m->stopping && m->spin_us > 0 && !m->spinning) {
    m->spinning = 1;
    pthread_mutex_unlock(&m->lock);
    int64_t until = wk_now_us() + m->spin_us;
    while (atomic_load_explicit(&m->nqueued, memory_order_acquire) == 0 && wk_now_us() < until) {
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    pthread_mutex_lock(&m->lock);
    m->spinning = 0; /* from here on submit signals again */
  }
  while (m->head == NULL && !m->stopping) pthread_cond_wait(&m->cond, &m->lock);
  job_t *j = m->head;
  if (j != NULL) {
    m->head = j->next;
    if (m->head == NULL) m->tail = NULL;
    m->queued--;
    atomic_fetch_sub(&m->nqueued, 1);
  }
  pthread_mutex_unlock(&m->lock);
  return j;
}

static void *worker_main(void *arg) {
  worker_t *w = arg;
  wk_model_t *m = w->model;
  atomic_fetch_add(&m->live_workers, 1);
  job_t *j;
  while ((j = next_job(m)) != NULL) {
    run_job(m, j);
    job_free(j);
  }
  atomic_fetch_sub(&m->live_workers, 1);
  return NULL;
}

/* ---- predictions ---- */

/* Moves inputs named after forward()'s arguments into argument order. */
static int order_named_inputs(wk_model_t *m, wk_json_inputs_t *in, char *msg, size_t msglen) {
  if (in->count == 0 || in->names[0] == NULL) return 0;
  size_t nargs = wk_torch_arg_count(m->torch);
  wk_json_inputs_t sorted;
  memset(&sorted, 0, sizeof sorted);
  size_t used = 0;
  for (size_t a = 0; a < nargs && a < WK_MAX_NAMED_INPUTS; a++) {
    const char *arg = wk_torch_arg_name(m->torch, a);
    size_t k = 0;
    while (k < in->count && (in->names[k] == NULL || strcmp(in->names[k], arg) != 0)) k++;
    if (k == in->count) break; /* later arguments may have defaults */
    sorted.tensors[sorted.count] = in->tensors[k];
    sorted.names[sorted.count] = in->names[k];
    in->names[k] = NULL;
    memset(&in->tensors[k], 0, sizeof in->tensors[k]);
    sorted.count++;
    used++;
  }
  if (used != in->count) {
    wk_buf_t b = WK_BUF_INIT;
    for (size_t a = 0; a < nargs; a++) wk_buf_printf(&b, "%s%s", a ? ", " : "", wk_torch_arg_name(m->torch, a));
    const char *bad = "?";
    for (size_t k = 0; k < in->count; k++)
      if (in->names[k] != NULL) bad = in->names[k];
    snprintf(msg, msglen,
             "input '%s' does not match forward(%s): name the inputs after forward()'s "
             "arguments, in order, without gaps",
             bad, b.data ? b.data : "");
    wk_buf_destroy(&b);
    wk_json_inputs_destroy(&sorted);
    return WK_EINVAL;
  }
  wk_json_inputs_destroy(in);
  *in = sorted;
  return 0;
}

void wk_model_predict(wk_model_t *m, wk_http_req_t *req) {
  atomic_fetch_add(&m->req_total, 1);
  job_t *j = calloc(1, sizeof *j);
  if (j == NULL) {
    reply_error(m, req, 500, "InternalServerException", "out of memory");
    return;
  }
  size_t len;
  const char *body = wk_http_req_body(req, &len);
  wk_err_t err = {{0}};
  int rc = wk_json_parse_inputs(body, len, &j->inputs, &err);
  if (rc == 0) rc = order_named_inputs(m, &j->inputs, err.msg, sizeof err.msg);
  if (rc != 0) {
    job_free(j);
    reply_error(m, req, rc == WK_ETOOBIG ? 413 : 400, "BadRequestException", err.msg);
    return;
  }
  j->req = req;
  j->enqueued_us = wk_now_us();
  j->deadline_us = j->enqueued_us + (int64_t)m->response_timeout_s * 1000000;
  pthread_mutex_lock(&m->lock);
  if (m->stopping || m->queued >= m->queue_cap) {
    int stopping = m->stopping;
    pthread_mutex_unlock(&m->lock);
    char msg[256];
    if (stopping) snprintf(msg, sizeof msg, "model '%s' is being unloaded", m->name);
    else
      snprintf(msg, sizeof msg,
               "model '%s' has %d requests waiting, its job queue is full (job_queue_size %d): "
               "retry later",
               m->name, m->queue_cap, m->queue_cap);
    job_free(j);
    wk_http_reply_header(req, "Retry-After", "1");
    reply_error(m, req, 503, "ServiceUnavailableException", msg);
    return;
  }
  if (m->tail) m->tail->next = j;
  else m->head = j;
  m->tail = j;
  m->queued++;
  atomic_fetch_add(&m->nqueued, 1);
  if (!m->spinning) pthread_cond_signal(&m->cond);
  pthread_mutex_unlock(&m->lock);
}

/* ---- loading ---- */

/* A TorchScript archive holds code/ and constants.pkl beside data.pkl; a state_dict
 * (torch.save of tensors) holds only data.pkl, data/ and version. */
static int is_torchscript(const char *path) {
  wk_zip_t *z = NULL;
  if (wk_zip_open(path, &z, NULL) != 0) return 0;
  int found = 0;
  for (size_t i = 0; i < wk_zip_count(z) && !found; i++) {
    const char *n = wk_zip_entry(z, i)->name;
    const char *slash = strchr(n, '/');
    if (slash && (strcmp(slash + 1, "constants.pkl") == 0 || strncmp(slash + 1, "code/", 5) == 0))
      found = 1;
  }
  wk_zip_close(z);
  return found;
}

static int is_native_handler(const char *h) {
  return h == NULL || *h == '\0' || strcmp(h, "tensor") == 0 || strcmp(h, "base_handler") == 0;
}

static char *dup_or(const char *s, const char *dflt) {
  return strdup(s && *s ? s : dflt);
}

static int pick(int from_config, int fallback) { return from_config >= 0 ? from_config : fallback; }

int wk_model_load(const wk_model_load_opts_t *o, wk_model_t **out, wk_err_t *err) {
  wk_model_t *m = calloc(1, sizeof *m);
  if (m == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  wk_manifest_init(&m->manifest);
  wk_model_config_init(&m->config);
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->cond, NULL);
  int rc;
  const char *what = o->name ? o->name : o->url;

  /* 1. the archive, unpacked into a private directory (directories are used in place) */
  int kind = wk_archive_kind(o->archive);
  if (kind < 0) {
    rc = wk_err(err, WK_ENOTFOUND, "model '%s': %s is not a model archive (.mar, .tar.gz) or directory",
                what, o->archive);
    goto fail;
  }
  if (kind == WK_ARCHIVE_DIR) {
    snprintf(m->model_dir, sizeof m->model_dir, "%s", o->archive);
  } else {
    if ((rc = wk_fs_mkdtemp("model", m->tmp_dir, sizeof m->tmp_dir, err)) != 0) goto fail;
    snprintf(m->model_dir, sizeof m->model_dir, "%s", m->tmp_dir);
    if ((rc = wk_archive_unpack(o->archive, m->model_dir, err)) != 0) {
      wk_err_prefix(err, "model '%s': %s", what, o->archive);
      goto fail;
    }
  }

  /* 2. the manifest and the model config */
  char path[4096];
  char *text = NULL;
  size_t len = 0;
  wk_fs_join(path, sizeof path, m->model_dir, "MAR-INF/MANIFEST.json");
  if ((rc = wk_fs_read_file(path, WK_MAX_MANIFEST_SIZE, &text, &len, err)) != 0) {
    wk_err(err, rc, "model '%s': %s has no MAR-INF/MANIFEST.json (pack it with wick pack)", what,
           o->archive);
    goto fail;
  }
  rc = wk_manifest_parse(text, len, &m->manifest, err);
  free(text);
  if (rc != 0) {
    wk_err_prefix(err, "model '%s': MANIFEST.json", what);
    goto fail;
  }
  if (m->manifest.config_file) {
    wk_fs_join(path, sizeof path, m->model_dir, m->manifest.config_file);
    if ((rc = wk_fs_read_file(path, WK_MAX_CONFIG_FILE_SIZE, &text, &len, err)) != 0) {
      wk_err_prefix(err, "model '%s': configFile", what);
      goto fail;
    }
    rc = wk_model_config_parse(text, len, &m->config, err);
    free(text);
    if (rc != 0) {
      wk_err_prefix(err, "model '%s': %s", what, m->manifest.config_file);
      goto fail;
    }
  }
  m->name = dup_or(o->name, m->manifest.model_name);
  m->version = dup_or(m->manifest.model_version, "1.0");
  m->url = dup_or(o->url, o->archive);
  m->handler = dup_or(m->manifest.handler, "tensor");
  m->loaded_at_startup = o->loaded_at_startup;
  m->spin_us = o->worker_spin_us;

  /* 3. which runtime */
  if (m->manifest.serialized_file == NULL) {
    rc = wk_err(err, WK_EINVAL, "model '%s': the manifest names no serializedFile", m->name);
    goto fail;
  }
  wk_fs_join(path, sizeof path, m->model_dir, m->manifest.serialized_file);
  int forced_native = m->config.wick_runtime && strcmp(m->config.wick_runtime, "native") == 0;
  int native = forced_native || (is_native_handler(m->manifest.handler) &&
                                 m->manifest.model_file == NULL && is_torchscript(path));
  if (!native) {
    rc = wk_err(err, WK_EUNSUPPORTED,
                "model '%s' needs a Python worker (handler '%s'%s%s), and this wick has no Python "
                "workers yet: only TorchScript models with the tensor handler run (natively)",
                m->name, m->handler, m->manifest.model_file ? ", modelFile " : "",
                m->manifest.model_file ? m->manifest.model_file : "");
    goto fail;
  }

  /* 4. settings: the model config first, then the server's defaults */
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  if (ncpu < 1) ncpu = 1;
  int dflt_workers = o->default_workers > 0 ? o->default_workers : (int)ncpu;
  m->min_workers = pick(m->config.min_workers, dflt_workers);
  m->max_workers = pick(m->config.max_workers, m->min_workers);
  if (m->max_workers < m->min_workers) m->max_workers = m->min_workers;
  if (m->min_workers < 1) m->min_workers = 1;
  if (m->min_workers > WK_MAX_WORKERS) m->min_workers = WK_MAX_WORKERS;
  m->batch_size = pick(m->config.batch_size, 1);
  m->max_batch_delay_ms = pick(m->config.max_batch_delay_ms, 100);
  m->response_timeout_s = pick(m->config.response_timeout_s, o->response_timeout_s > 0 ? o->response_timeout_s : WK_DEFAULT_RESPONSE_TIMEOUT_S);
  m->queue_cap = pick(m->config.job_queue_size, o->job_queue_size > 0 ? o->job_queue_size : WK_DEFAULT_JOB_QUEUE_SIZE);
  int threads = m->config.wick_threads > 0 ? m->config.wick_threads : o->torch_threads;
  if (threads <= 0) threads = (int)(ncpu / m->min_workers > 0 ? ncpu / m->min_workers : 1);
  wk_torch_set_threads(threads);

  /* 5. the module, loaded once and shared by every worker */
  wk_torch_opts_t topts = {.freeze = 1, .device = -1};
  int64_t t0 = wk_now_us();
  if ((rc = wk_torch_load(path, &topts, &m->torch, err)) != 0) {
    wk_err_prefix(err, "model '%s': %s", m->name, m->manifest.serialized_file);
    goto fail;
  }
  wk_log_info("model %s %s: TorchScript %s loaded in %lld ms (native, %d workers, %d torch threads)",
              m->name, m->version, m->manifest.serialized_file,
              (long long)((wk_now_us() - t0) / 1000), m->min_workers, threads);

  /* 6. workers */
  m->workers = calloc((size_t)m->min_workers, sizeof *m->workers);
  if (m->workers == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory");
    goto fail;
  }
  for (int i = 0; i < m->min_workers; i++) {
    worker_t *w = &m->workers[i];
    w->id = 9000 + i;
    w->model = m;
    w->start_time = time(NULL);
    if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
      rc = wk_err(err, WK_EINTERNAL, "model '%s': cannot start worker thread", m->name);
      goto fail;
    }
    w->started = 1;
    m->n_workers++;
  }
  *out = m;
  return 0;

fail:
  wk_model_free(m);
  return rc;
}

void wk_model_free(wk_model_t *m) {
  if (m == NULL) return;
  pthread_mutex_lock(&m->lock);
  m->stopping = 1;
  job_t *pending = m->head;
  m->head = m->tail = NULL;
  m->queued = 0;
  atomic_store(&m->nqueued, 0);
  pthread_cond_broadcast(&m->cond);
  pthread_mutex_unlock(&m->lock);
  for (job_t *j = pending, *n; j; j = n) {
    n = j->next;
    reply_error(m, j->req, 503, "ServiceUnavailableException", "the model was unloaded before it ran this request");
    job_free(j);
  }
  for (int i = 0; i < m->n_workers; i++)
    if (m->workers[i].started) pthread_join(m->workers[i].thread, NULL);
  free(m->workers);
  if (m->torch) wk_torch_free(m->torch);
  if (m->tmp_dir[0]) wk_fs_rmtree(m->tmp_dir);
  wk_manifest_destroy(&m->manifest);
  wk_model_config_destroy(&m->config);
  pthread_mutex_destroy(&m->lock);
  pthread_cond_destroy(&m->cond);
  free(m->name);
  free(m->version);
  free(m->url);
  free(m->handler);
  free(m);
}

const char *wk_model_name(const wk_model_t *m) { return m->name; }
const char *wk_model_version(const wk_model_t *m) { return m->version; }
const char *wk_model_url(const wk_model_t *m) { return m->url; }
int wk_model_live_workers(const wk_model_t *m) { return atomic_load(&((wk_model_t *)m)->live_workers); }
int wk_model_min_workers(const wk_model_t *m) { return m->min_workers; }

/* ---- describe and metrics ---- */

void wk_model_describe(const wk_model_t *mc, wk_buf_t *b) {
  wk_model_t *m = (wk_model_t *)mc;
  pthread_mutex_lock(&m->lock);
  int queued = m->queued;
  pthread_mutex_unlock(&m->lock);
  wk_buf_puts(b, "{\n    \"modelName\": ");
  wk_buf_json_str(b, m->name);
  wk_buf_puts(b, ",\n    \"modelVersion\": ");
  wk_buf_json_str(b, m->version);
  wk_buf_puts(b, ",\n    \"modelUrl\": ");
  wk_buf_json_str(b, m->url);
  wk_buf_puts(b, ",\n    \"runtime\": \"native\",\n    \"handler\": ");
  wk_buf_json_str(b, m->handler);
  wk_buf_printf(b,
                ",\n    \"minWorkers\": %d,\n    \"maxWorkers\": %d,\n    \"batchSize\": %d,\n"
                "    \"maxBatchDelay\": %d,\n    \"responseTimeout\": %d,\n"
                "    \"loadedAtStartup\": %s,\n    \"workers\": [",
                m->min_workers, m->max_workers, m->batch_size, m->max_batch_delay_ms,
                m->response_timeout_s, m->loaded_at_startup ? "true" : "false");
  for (int i = 0; i < m->n_workers; i++) {
    char ts[32];
    struct tm tm;
    gmtime_r(&m->workers[i].start_time, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    wk_buf_printf(b,
                  "%s\n      {\n        \"id\": \"%d\",\n        \"startTime\": \"%s\",\n"
                  "        \"status\": \"READY\",\n        \"memoryUsage\": 0,\n"
                  "        \"pid\": %d,\n        \"gpu\": false,\n        \"gpuUsage\": \"N/A\"\n      }",
                  i ? "," : "", m->workers[i].id, ts, (int)getpid());
  }
  wk_buf_printf(b,
                "\n    ],\n    \"jobQueueStatus\": {\n      \"remainingCapacity\": %d,\n"
                "      \"pendingRequests\": %d\n    }\n  }",
                m->queue_cap - queued, queued);
}

static void hist_print(wk_buf_t *b, const char *metric, const char *labels, const hist_t *h) {
  uint64_t cum = 0;
  for (size_t i = 0; i <= N_BUCKETS; i++) {
    cum += atomic_load(&((hist_t *)h)->counts[i]);
    if (i < N_BUCKETS) wk_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", metric, labels, k_buckets[i], (unsigned long long)cum);
    else wk_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", metric, labels, (unsigned long long)cum);
  }
  wk_buf_printf(b, "%s_sum{%s} %.6f\n", metric, labels, (double)atomic_load(&((hist_t *)h)->sum_us) / 1e6);
  wk_buf_printf(b, "%s_count{%s} %llu\n", metric, labels, (unsigned long long)atomic_load(&((hist_t *)h)->n));
}

static void labels_of(const wk_model_t *m, char *out, size_t outlen) {
  snprintf(out, outlen, "model_name=\"%s\",model_version=\"%s\"", m->name, m->version);
}

/* Counter/gauge families: name, type, help, and the reader of one model's value. */
typedef uint64_t (*reader_fn)(wk_model_t *m);
static uint64_t rd_total(wk_model_t *m) { return atomic_load(&m->req_total); }
static uint64_t rd_lat(wk_model_t *m) { return atomic_load(&m->inference_us_total); }
static uint64_t rd_queue(wk_model_t *m) { return atomic_load(&m->queue_us_total); }
static uint64_t rd_depth(wk_model_t *m) {
  pthread_mutex_lock(&m->lock);
  uint64_t q = (uint64_t)m->queued;
  pthread_mutex_unlock(&m->lock);
  return q;
}
static uint64_t rd_workers(wk_model_t *m) { return (uint64_t)atomic_load(&m->live_workers); }

void wk_models_metrics(wk_model_t *const *models, size_t n, wk_buf_t *b) {
  static const struct {
    const char *name, *type, *help;
    reader_fn read;
  } families[] = {
      {"ts_inference_requests_total", "counter", "Prediction requests received, by model.", rd_total},
      {"ts_inference_latency_microseconds", "counter", "Total time spent in forward(), microseconds.", rd_lat},
      {"ts_queue_latency_microseconds", "counter", "Total time requests waited in the job queue, microseconds.", rd_queue},
      {"wick_queue_depth", "gauge", "Requests waiting in the job queue.", rd_depth},
      {"wick_workers", "gauge", "Live workers.", rd_workers},
  };
  char labels[512];
  for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
    wk_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                  families[f].name, families[f].type);
    for (size_t i = 0; i < n; i++) {
      labels_of(models[i], labels, sizeof labels);
      wk_buf_printf(b, "%s{%s} %llu\n", families[f].name, labels,
                    (unsigned long long)families[f].read(models[i]));
    }
  }
  wk_buf_puts(b, "# HELP wick_model_requests_total Prediction replies by model and result.\n"
                 "# TYPE wick_model_requests_total counter\n");
  for (size_t i = 0; i < n; i++) {
    wk_model_t *m = models[i];
    labels_of(m, labels, sizeof labels);
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"ok\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_ok));
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"client_error\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_client_err));
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"server_error\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_server_err));
  }
  static const struct {
    const char *name, *help;
    size_t off;
  } hists[] = {
      {"wick_inference_seconds", "Time in forward() per request.", offsetof(wk_model_t, inference_hist)},
      {"wick_queue_seconds", "Time in the job queue per request.", offsetof(wk_model_t, queue_hist)},
  };
  for (size_t h = 0; h < 2; h++) {
    wk_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", hists[h].name, hists[h].help, hists[h].name);
    for (size_t i = 0; i < n; i++) {
      labels_of(models[i], labels, sizeof labels);
      hist_print(b, hists[h].name, labels, (const hist_t *)((const char *)models[i] + hists[h].off));
    }
  }
}
