/* The operator's view of each model (see status.h): answers counted by latency and status
 * as they happen, a ring of samples the model's monitor takes every interval, and the
 * server-wide list of recent error answers. Prints JSON; serves nothing itself. */
#include "serve/status.h"

#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend/forkserver.h"
#include "core/clock.h"
#include "core/log.h"
#include "serve/gpu_memory.h"
#include "serve/host_metrics.h"
#include "serve/model_internal.h"

/* ---- latency buckets: four per power of two microseconds (about 19% wide) ---- */

static int bucket_of(int64_t us) {
  if (us < 1) return 0;
  uint64_t v = (uint64_t)us;
  int e = 63 - __builtin_clzll(v);                          /* 2^e <= v */
  int sub = e >= 2 ? (int)((v >> (e - 2)) & 3) : (int)((v << (2 - e)) & 3);
  int b = 4 * e + sub;
  return b < WK__E2E_BUCKETS ? b : WK__E2E_BUCKETS - 1;
}

/* The bounds of bucket b in microseconds: [lo, hi). */
static void bucket_bounds(int b, double *lo, double *hi) {
  double base = ldexp(1.0, b / 4);
  *lo = base * (1.0 + (b % 4) / 4.0);
  *hi = base * (1.0 + (b % 4 + 1) / 4.0);
}

/* The q-quantile (0 < q <= 1) of the counts in milliseconds, interpolated inside its
 * bucket; -1 when there are none. */
static double quantile_ms(const uint64_t *counts, double q) {
  uint64_t n = 0;
  for (int b = 0; b < WK__E2E_BUCKETS; b++) n += counts[b];
  if (n == 0) return -1;
  double rank = q * (double)n, cum = 0;
  for (int b = 0; b < WK__E2E_BUCKETS; b++) {
    if (counts[b] == 0) continue;
    if (cum + (double)counts[b] >= rank) {
      double lo, hi;
      bucket_bounds(b, &lo, &hi);
      double frac = (rank - cum) / (double)counts[b];
      return (lo + frac * (hi - lo)) / 1000.0;
    }
    cum += (double)counts[b];
  }
  return -1;
}

/* ---- samples ---- */

/* The model's cumulative counters at one moment. */
typedef struct {
  uint64_t lat[WK__E2E_BUCKETS];
  uint64_t answered, ok, client_err, server_err, cancelled, batches, batch_rows;
} snap_t;

typedef struct {
  int64_t t_ms;    /* wall clock at its end */
  double seconds;  /* what it covers */
  uint64_t requests, ok, client_err, server_err, cancelled, batches;
  double p50_ms, p99_ms, batch_mean; /* -1: no answer or batch in it */
  int queue, workers;                /* at its end */
} sample_t;

struct wk__window_s {
  pthread_mutex_t lock;
  int64_t interval_us;
  int64_t last_us; /* when the last sample ended (the model's load at first) */
  snap_t prev;     /* the counters then */
  sample_t ring[WK_STATUS_SAMPLES];
  size_t head, n;  /* the oldest sample, and how many */
};

static void take_snap(wk_model_t *m, snap_t *s) {
  for (int b = 0; b < WK__E2E_BUCKETS; b++) s->lat[b] = atomic_load(&m->e2e_counts[b]);
  s->ok = atomic_load(&m->req_ok);
  s->client_err = atomic_load(&m->req_client_err);
  s->server_err = atomic_load(&m->req_server_err);
  s->cancelled = atomic_load(&m->req_cancelled);
  s->answered = s->ok + s->client_err + s->server_err + s->cancelled;
  s->batches = atomic_load(&m->batch_hist.n);
  s->batch_rows = atomic_load(&m->batch_hist.sum);
}

/* The sample between a and b (b later), us long. */
static void diff(const snap_t *a, const snap_t *b, int64_t us, sample_t *out) {
  uint64_t lat[WK__E2E_BUCKETS];
  for (int i = 0; i < WK__E2E_BUCKETS; i++) lat[i] = b->lat[i] - a->lat[i];
  out->seconds = (double)us / 1e6;
  out->requests = b->answered - a->answered;
  out->ok = b->ok - a->ok;
  out->client_err = b->client_err - a->client_err;
  out->server_err = b->server_err - a->server_err;
  out->cancelled = b->cancelled - a->cancelled;
  out->batches = b->batches - a->batches;
  out->batch_mean = out->batches ? (double)(b->batch_rows - a->batch_rows) / (double)out->batches : -1;
  out->p50_ms = quantile_ms(lat, 0.5);
  out->p99_ms = quantile_ms(lat, 0.99);
}

static int64_t wall_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int wk__status_init(wk_model_t *m, int interval_ms) {
  wk__window_t *w = calloc(1, sizeof *w);
  if (w == NULL) return WK_ENOMEM;
  pthread_mutex_init(&w->lock, NULL);
  w->interval_us = (int64_t)(interval_ms > 0 ? interval_ms : WK_STATUS_DEFAULT_INTERVAL_MS) * 1000;
  w->last_us = wk_now_us();
  take_snap(m, &w->prev);
  m->window = w;
  m->loaded_at = time(NULL);
  return 0;
}

void wk__status_free(wk_model_t *m) {
  if (m->window == NULL) return;
  pthread_mutex_destroy(&m->window->lock);
  free(m->window);
  m->window = NULL;
}

void wk__status_tick(wk_model_t *m, int64_t now_us) {
  wk__window_t *w = m->window;
  if (w == NULL || now_us - w->last_us < w->interval_us) return;
  snap_t cur;
  take_snap(m, &cur);
  sample_t s;
  pthread_mutex_lock(&w->lock);
  diff(&w->prev, &cur, now_us - w->last_us, &s);
  s.t_ms = wall_ms();
  s.queue = m->queued;   /* m->lock is held */
  s.workers = m->workers;
  w->prev = cur;
  w->last_us = now_us;
  size_t at = (w->head + w->n) % WK_STATUS_SAMPLES;
  w->ring[at] = s;
  if (w->n < WK_STATUS_SAMPLES) w->n++;
  else w->head = (w->head + 1) % WK_STATUS_SAMPLES;
  pthread_mutex_unlock(&w->lock);
}

/* ---- answers ---- */

void wk__status_answered(wk_model_t *m, const wk__job_t *j, int status) {
  if (status >= WK__STATUS_FIRST && status < WK__STATUS_FIRST + WK__STATUS_CODES)
    atomic_fetch_add(&m->by_status[status - WK__STATUS_FIRST], 1);
  if (j != NULL && j->enqueued_us > 0)
    atomic_fetch_add(&m->e2e_counts[bucket_of(wk_now_us() - j->enqueued_us)], 1);
}

/* The recent errors: a ring, newest at (g_next - 1). */
typedef struct {
  int64_t t_ms;
  int status;
  char model[128], version[64];
  char msg[WK_STATUS_MESSAGE_MAX];
} recent_t;

static pthread_mutex_t g_recent_lock = PTHREAD_MUTEX_INITIALIZER;
static recent_t g_recent[WK_STATUS_RECENT_ERRORS];
static size_t g_next, g_count;

void wk_status_note_error(const char *model, const char *version, int status, const char *msg) {
  pthread_mutex_lock(&g_recent_lock);
  recent_t *r = &g_recent[g_next];
  r->t_ms = wall_ms();
  r->status = status;
  snprintf(r->model, sizeof r->model, "%s", model ? model : "");
  snprintf(r->version, sizeof r->version, "%s", version ? version : "");
  snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
  g_next = (g_next + 1) % WK_STATUS_RECENT_ERRORS;
  if (g_count < WK_STATUS_RECENT_ERRORS) g_count++;
  pthread_mutex_unlock(&g_recent_lock);
}

void wk__status_error(wk_model_t *m, int status, const char *msg) {
  if (status < 400 || status == WK__STATUS_CLIENT_GONE) return;
  wk_status_note_error(m->name, m->version, status, msg);
}

void wk__status_worker_crashed(wk_model_t *m, int index, const char *why) {
  pthread_mutex_lock(&m->lock);
  for (wk__worker_t *w = m->worker_list; w; w = w->next) {
    if (w->id != WK__WORKER_ID_BASE + index) continue;
    w->crashes++;
    w->crashed_at = time(NULL);
    snprintf(w->crash_reason, sizeof w->crash_reason, "%s", why);
  }
  pthread_mutex_unlock(&m->lock);
  char msg[WK_STATUS_MESSAGE_MAX];
  snprintf(msg, sizeof msg, "worker %d: %s", WK__WORKER_ID_BASE + index, why);
  wk_status_note_error(m->name, m->version, 0, msg);
}

/* ---- JSON ---- */

static json_t *iso_time(time_t t) {
  char ts[32];
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return json_string(ts);
}

/* A number, or null for "none" (negative). */
static json_t *maybe(double v) { return v < 0 ? json_null() : json_real(round(v * 1000) / 1000); }

static json_t *sample_json(const sample_t *s) {
  return json_pack("{s:I,s:f,s:I,s:f,s:I,s:I,s:I,s:I,s:I,s:o,s:o,s:o,s:i,s:i}", "t", (json_int_t)s->t_ms,
                   "seconds", s->seconds, "requests", (json_int_t)s->requests, "rps",
                   s->seconds > 0 ? round((double)s->requests / s->seconds * 100) / 100 : 0.0,
                   "ok", (json_int_t)s->ok, "client_errors", (json_int_t)s->client_err,
                   "server_errors", (json_int_t)s->server_err, "cancelled",
                   (json_int_t)s->cancelled, "batches", (json_int_t)s->batches, "p50_ms",
                   maybe(s->p50_ms), "p99_ms", maybe(s->p99_ms), "batch_mean",
                   maybe(s->batch_mean), "queue", s->queue, "workers", s->workers);
}

static const char *worker_state(wk__wstate_t st) {
  switch (st) {
  case WK__W_BUSY: return "busy";
  case WK__W_ABANDONED: return "abandoned";
  default: return "idle";
  }
}

static json_t *device_name(const wk_model_t *m, int index) {
  int dev = m->h && m->h->device ? m->h->device(m, index) : -1;
  if (dev < 0) return json_string("cpu");
  char d[32];
  snprintf(d, sizeof d, "cuda:%d", dev);
  return json_string(d);
}

/* Workers and queue; m->lock taken here. */
static void add_pool(wk_model_t *m, json_t *o) {
  json_t *workers = json_array();
  pthread_mutex_lock(&m->lock);
  int64_t now = wk_now_us();
  for (const wk__worker_t *w = m->worker_list; w; w = w->next) {
    int index = w->id - WK__WORKER_ID_BASE;
    json_t *wj = json_pack("{s:i,s:s,s:o,s:o,s:f,s:i}", "id", w->id, "state",
                           worker_state(w->state), "device", device_name(m, index), "started",
                           iso_time(w->start_time), "load_ms", (double)w->load_us / 1000.0,
                           "restarts", w->crashes);
    if (w->state != WK__W_IDLE && w->batch_n > 0)
      json_object_set_new(wj, "batch", json_integer((json_int_t)w->batch_n));
    if (w->state == WK__W_BUSY && w->batch_deadline_us > 0)
      json_object_set_new(wj, "deadline_in_ms",
                          json_integer((json_int_t)((w->batch_deadline_us - now) / 1000)));
    if (w->crashes > 0) {
      json_object_set_new(wj, "last_crash", iso_time(w->crashed_at));
      json_object_set_new(wj, "last_crash_reason", json_string(w->crash_reason));
    }
    json_array_insert_new(workers, 0, wj); /* the list holds the newest first */
  }
  json_object_set_new(o, "workers", workers);
  json_object_set_new(o, "workers_live", json_integer(m->workers));
  json_object_set_new(o, "workers_min", json_integer(m->min_workers));
  json_object_set_new(o, "workers_max", json_integer(m->max_workers));
  json_object_set_new(o, "workers_abandoned", json_integer(m->abandoned));
  json_object_set_new(o, "queue", json_pack("{s:i,s:i}", "depth", m->queued, "capacity", m->queue_cap));
  pthread_mutex_unlock(&m->lock);
}

/* The samples and the one in progress. */
static void add_samples(wk_model_t *m, json_t *o) {
  wk__window_t *w = m->window;
  json_t *list = json_array();
  if (w == NULL) {
    json_object_set_new(o, "samples", list);
    return;
  }
  snap_t cur;
  take_snap(m, &cur);
  pthread_mutex_lock(&m->lock);
  int queue = m->queued, workers = m->workers;
  pthread_mutex_unlock(&m->lock);
  pthread_mutex_lock(&w->lock);
  for (size_t i = 0; i < w->n; i++)
    json_array_append_new(list, sample_json(&w->ring[(w->head + i) % WK_STATUS_SAMPLES]));
  sample_t now;
  diff(&w->prev, &cur, wk_now_us() - w->last_us, &now);
  int64_t interval_ms = w->interval_us / 1000;
  pthread_mutex_unlock(&w->lock);
  now.t_ms = wall_ms();
  now.queue = queue;
  now.workers = workers;
  json_object_set_new(o, "sample_interval_ms", json_integer((json_int_t)interval_ms));
  json_object_set_new(o, "samples", list);
  json_object_set_new(o, "current", sample_json(&now));
}

json_t *wk_status_model(wk_model_t *m, int is_default) {
  json_t *o = json_pack("{s:s,s:s,s:b,s:s,s:s,s:s,s:o,s:o,s:i,s:i,s:i,s:i}", "name", m->name, "version",
                        m->version, "default", is_default, "url", m->url, "runtime",
                        m->h->flags & WK__HF_NATIVE ? "native" : "python", "handler", m->handler,
                        "device", device_name(m, 0), "loaded", iso_time(m->loaded_at),
                        "batch_size", m->batch_size, "max_batch_delay_ms", m->max_batch_delay_ms,
                        "response_timeout_s", m->response_timeout_s, "startup_timeout_s",
                        m->startup_timeout_s);
  if (o == NULL) return NULL;
  add_pool(m, o);
  json_object_set_new(o, "totals",
                      json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "requests",
                                (json_int_t)atomic_load(&m->req_total), "ok",
                                (json_int_t)atomic_load(&m->req_ok), "client_errors",
                                (json_int_t)atomic_load(&m->req_client_err), "server_errors",
                                (json_int_t)atomic_load(&m->req_server_err), "cancelled",
                                (json_int_t)atomic_load(&m->req_cancelled), "abandoned_workers",
                                (json_int_t)atomic_load(&m->abandoned_total)));
  json_t *by = json_object();
  for (int i = 0; i < WK__STATUS_CODES; i++) {
    uint64_t n = atomic_load(&m->by_status[i]);
    if (n == 0) continue;
    char code[8];
    snprintf(code, sizeof code, "%d", WK__STATUS_FIRST + i);
    json_object_set_new(by, code, json_integer((json_int_t)n));
  }
  json_object_set_new(o, "answers_by_status", by);
  add_samples(m, o);
  return o;
}

json_t *wk_status_recent_errors(void) {
  json_t *list = json_array();
  pthread_mutex_lock(&g_recent_lock);
  for (size_t k = 0; k < g_count; k++) {
    const recent_t *r = &g_recent[(g_next + WK_STATUS_RECENT_ERRORS - 1 - k) % WK_STATUS_RECENT_ERRORS];
    json_t *e = json_pack("{s:I,s:o,s:s,s:s,s:s}", "t", (json_int_t)r->t_ms, "time",
                          iso_time((time_t)(r->t_ms / 1000)), "model", r->model, "version",
                          r->version, "message", r->msg);
    /* a worker's crash has no HTTP status */
    json_object_set_new(e, "status", r->status ? json_integer(r->status) : json_null());
    json_array_append_new(list, e);
  }
  pthread_mutex_unlock(&g_recent_lock);
  return list;
}

/* ---- the process ---- */

static int64_t g_started_us;
static time_t g_started;

__attribute__((constructor)) static void note_start(void) {
  g_started_us = wk_now_us();
  g_started = time(NULL);
}

/* Resident memory in bytes of pid (0: this process) from /proc/PID/statm; -1 when
 * unreadable. */
static long long rss_bytes(int pid) {
  char path[64];
  if (pid > 0) snprintf(path, sizeof path, "/proc/%d/statm", pid);
  else snprintf(path, sizeof path, "/proc/self/statm");
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long long size, resident;
  int n = fscanf(f, "%lld %lld", &size, &resident);
  fclose(f);
  return n == 2 ? resident * sysconf(_SC_PAGESIZE) : -1;
}

json_t *wk_status_process(void) {
  unsigned long long total_kb = 0, avail_kb = 0;
  int mem = wk_host_meminfo(&total_kb, &avail_kb);
  long long total = mem == 0 ? (long long)total_kb * 1024 : -1;
  long long avail = mem == 0 ? (long long)avail_kb * 1024 : -1;
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  json_t *o = json_pack("{s:s,s:s,s:i,s:o,s:f,s:I,s:I,s:I,s:i}", "server", "wick", "version", WK_VERSION,
                        "pid", (int)getpid(), "started", iso_time(g_started), "uptime_s",
                        round((double)(wk_now_us() - g_started_us) / 1e4) / 100, "rss_bytes",
                        (json_int_t)rss_bytes(0), "host_memory_bytes", (json_int_t)total,
                        "host_memory_available_bytes", (json_int_t)avail, "cpus",
                        (int)sysconf(_SC_NPROCESSORS_ONLN));
  if (o == NULL) return NULL;
  json_object_set_new(o, "hostname", json_string(host));
  wk_gpu_memory_t gpus[WK_GPU_MEMORY_MAX];
  int n = wk_gpu_memory(gpus, WK_GPU_MEMORY_MAX);
  json_t *list = json_array();
  for (int i = 0; i < n; i++)
    json_array_append_new(list, json_pack("{s:i,s:s,s:I,s:I}", "index", gpus[i].index, "name",
                                          gpus[i].name, "memory_used_bytes",
                                          (json_int_t)gpus[i].used, "memory_total_bytes",
                                          (json_int_t)gpus[i].total));
  json_object_set_new(o, "gpus", list);
  pid_t tpl[16];
  size_t nt = wk_forkserver_pids(tpl, sizeof tpl / sizeof tpl[0]);
  json_t *tl = json_array();
  for (size_t i = 0; i < nt && i < sizeof tpl / sizeof tpl[0]; i++)
    json_array_append_new(tl, json_pack("{s:i,s:I}", "pid", (int)tpl[i], "rss_bytes",
                                        (json_int_t)rss_bytes((int)tpl[i])));
  json_object_set_new(o, "python_templates", tl);
  return o;
}
