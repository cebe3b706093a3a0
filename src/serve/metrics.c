/* A model's counters and histograms, recorded by the worker loop around each batch and
 * printed in Prometheus' text format; and the values Python handlers record through
 * context.metrics. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve/host_metrics.h"
#include "serve/model_internal.h"

static const double lat_bounds[WK__LAT_BUCKETS] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                1,      2.5,     5,      10};
static const double batch_bounds[WK__BATCH_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};

static void hist_add(wk__hist_t *h, const double *bounds, size_t nb, double value, uint64_t sum) {
  size_t i = 0;
  while (i < nb && value > bounds[i]) i++;
  atomic_fetch_add(&h->counts[i], 1);
  atomic_fetch_add(&h->sum, sum);
  atomic_fetch_add(&h->n, 1);
}

void wk__metrics_queued(wk_model_t *m, int64_t waited_us) {
  wk_host_metrics_queue_time(waited_us);
  atomic_fetch_add(&m->queue_us_total, (uint64_t)waited_us);
  hist_add(&m->queue_hist, lat_bounds, WK__LAT_BUCKETS, (double)waited_us / 1e6, (uint64_t)waited_us);
}

void wk__metrics_ran(wk_model_t *m, int64_t took_us, size_t n) {
  if (m->batch_runs != NULL && n >= 1 && n <= (size_t)m->batch_size) {
    atomic_fetch_add(&m->batch_runs[n], 1);
    atomic_fetch_add(&m->batch_run_us[n], (uint64_t)took_us);
  }
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  atomic_store(&m->last_inference_ms, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
  for (size_t r = 0; r < n; r++) {
    atomic_fetch_add(&m->inference_us_total, (uint64_t)took_us);
    hist_add(&m->inference_hist, lat_bounds, WK__LAT_BUCKETS, (double)took_us / 1e6,
             (uint64_t)took_us);
  }
  hist_add(&m->batch_hist, batch_bounds, WK__BATCH_BUCKETS, (double)n, (uint64_t)n);
}

void wk__metrics_custom(wk_model_t *m, const char *name, const char *labels, int counter,
                        double value) {
  pthread_mutex_lock(&m->custom_lock);
  size_t i = 0;
  while (i < m->n_custom &&
         (strcmp(m->custom[i].name, name) != 0 || strcmp(m->custom[i].labels, labels) != 0))
    i++;
  if (i == m->n_custom && m->n_custom < WK__MAX_CUSTOM_METRICS) {
    wk__custom_metric_t *grown = realloc(m->custom, sizeof *grown * (m->n_custom + 1));
    char *n = strdup(name), *l = strdup(labels);
    if (grown != NULL) m->custom = grown;
    if (grown != NULL && n != NULL && l != NULL) {
      grown[i] = (wk__custom_metric_t){n, l, counter, 0};
      m->n_custom++;
    } else {
      free(n);
      free(l);
    }
  }
  if (i < m->n_custom) m->custom[i].value = counter ? m->custom[i].value + value : value;
  pthread_mutex_unlock(&m->custom_lock);
}

int wk__metrics_init(wk_model_t *m) {
  size_t n = (size_t)(m->batch_size > 0 ? m->batch_size : 1) + 1;
  m->batch_runs = calloc(n, sizeof *m->batch_runs);
  m->batch_run_us = calloc(n, sizeof *m->batch_run_us);
  return m->batch_runs && m->batch_run_us ? 0 : WK_ENOMEM;
}

void wk__metrics_free(wk_model_t *m) {
  free((void *)m->batch_runs);
  free((void *)m->batch_run_us);
  m->batch_runs = m->batch_run_us = NULL;
  for (size_t i = 0; i < m->n_custom; i++) {
    free(m->custom[i].name);
    free(m->custom[i].labels);
  }
  free(m->custom);
  m->custom = NULL;
  m->n_custom = 0;
}

/* Prints a histogram; scale turns the stored sum into the unit of the buckets. */
static void hist_print(wk_buf_t *b, const char *metric, const char *labels, const wk__hist_t *hc,
                       const double *bounds, size_t nb, double scale) {
  wk__hist_t *h = (wk__hist_t *)hc;
  uint64_t cum = 0;
  for (size_t i = 0; i <= nb; i++) {
    cum += atomic_load(&h->counts[i]);
    if (i < nb)
      wk_buf_printf(b, "%s_bucket{%s,le=\"%g\"} %llu\n", metric, labels, bounds[i],
                    (unsigned long long)cum);
    else
      wk_buf_printf(b, "%s_bucket{%s,le=\"+Inf\"} %llu\n", metric, labels, (unsigned long long)cum);
  }
  wk_buf_printf(b, "%s_sum{%s} %.6f\n", metric, labels, (double)atomic_load(&h->sum) * scale);
  wk_buf_printf(b, "%s_count{%s} %llu\n", metric, labels, (unsigned long long)atomic_load(&h->n));
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
static uint64_t locked(wk_model_t *m, const int *field) {
  pthread_mutex_lock(&m->lock);
  uint64_t n = (uint64_t)*field;
  pthread_mutex_unlock(&m->lock);
  return n;
}
static uint64_t rd_workers(wk_model_t *m) { return locked(m, &m->workers); }
static uint64_t rd_abandoned(wk_model_t *m) { return locked(m, &m->abandoned); }

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
      {"wick_workers_abandoned", "gauge", "Workers stuck in a forward past the response timeout.", rd_abandoned},
  };
  char labels[512], host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
    wk_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help,
                  families[f].name, families[f].type);
    int ts = strncmp(families[f].name, "ts_", 3) == 0; /* TorchServe's: with its hostname */
    for (size_t i = 0; i < n; i++) {
      labels_of(models[i], labels, sizeof labels);
      wk_buf_printf(b, "%s{%s", families[f].name, labels);
      if (ts) {
        wk_buf_puts(b, ",hostname=");
        wk_buf_json_str(b, host);
      }
      wk_buf_printf(b, "} %llu\n", (unsigned long long)families[f].read(models[i]));
    }
  }
  /* TorchServe's WorkerLoadTime: each live worker's start, named as TorchServe names it */
  wk_buf_puts(b, "# HELP WorkerLoadTime Time a worker took to start, milliseconds.\n"
                 "# TYPE WorkerLoadTime gauge\n");
  for (size_t i = 0; i < n; i++) {
    wk_model_t *m = models[i];
    pthread_mutex_lock(&m->lock);
    for (const wk__worker_t *w = m->worker_list; w; w = w->next) {
      wk_buf_printf(b, "WorkerLoadTime{WorkerName=\"W-%d-%s_%s\",Level=\"Host\",Hostname=", w->id,
                    m->name, m->version);
      wk_buf_json_str(b, host);
      wk_buf_printf(b, "} %.3f\n", (double)w->load_us / 1000.0);
    }
    pthread_mutex_unlock(&m->lock);
  }
  wk_buf_puts(b, "# HELP wick_model_requests_total Prediction replies by model and result.\n"
                 "# TYPE wick_model_requests_total counter\n");
  for (size_t i = 0; i < n; i++) {
    wk_model_t *m = models[i];
    labels_of(m, labels, sizeof labels);
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"ok\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_ok));
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"client_error\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_client_err));
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"server_error\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_server_err));
    wk_buf_printf(b, "wick_model_requests_total{%s,result=\"cancelled\"} %llu\n", labels, (unsigned long long)atomic_load(&m->req_cancelled));
  }
  static const struct {
    const char *name, *help;
    size_t off;
    const double *bounds;
    size_t nb;
    double scale;
  } hists[] = {
      {"wick_inference_seconds", "Time in forward() per request.",
       offsetof(wk_model_t, inference_hist), lat_bounds, WK__LAT_BUCKETS, 1e-6},
      {"wick_queue_seconds", "Time in the job queue per request.", offsetof(wk_model_t, queue_hist),
       lat_bounds, WK__LAT_BUCKETS, 1e-6},
      {"wick_batch_size", "Requests per forward() call.", offsetof(wk_model_t, batch_hist),
       batch_bounds, WK__BATCH_BUCKETS, 1},
  };
  for (size_t h = 0; h < sizeof hists / sizeof hists[0]; h++) {
    wk_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", hists[h].name, hists[h].help,
                  hists[h].name);
    for (size_t i = 0; i < n; i++) {
      labels_of(models[i], labels, sizeof labels);
      hist_print(b, hists[h].name, labels,
                 (const wk__hist_t *)((const char *)models[i] + hists[h].off), hists[h].bounds,
                 hists[h].nb, hists[h].scale);
    }
  }
  /* values Python handlers recorded through context.metrics, grouped by name */
  for (size_t i = 0; i < n; i++) pthread_mutex_lock(&models[i]->custom_lock);
  for (size_t i = 0; i < n; i++) {
    for (size_t k = 0; k < models[i]->n_custom; k++) {
      const wk__custom_metric_t *c = &models[i]->custom[k];
      int first = 1; /* print the family once, at its first occurrence */
      for (size_t i2 = 0; i2 <= i && first; i2++)
        for (size_t k2 = 0; k2 < (i2 == i ? k : models[i2]->n_custom) && first; k2++)
          if (strcmp(models[i2]->custom[k2].name, c->name) == 0) first = 0;
      if (!first) continue;
      wk_buf_printf(b, "# HELP %s Recorded by the model's handler (context.metrics).\n# TYPE %s %s\n",
                    c->name, c->name, c->counter ? "counter" : "gauge");
      for (size_t i2 = i; i2 < n; i2++) {
        labels_of(models[i2], labels, sizeof labels);
        for (size_t k2 = 0; k2 < models[i2]->n_custom; k2++) {
          const wk__custom_metric_t *d = &models[i2]->custom[k2];
          if (strcmp(d->name, c->name) != 0) continue;
          /* the handler's dimensions (ModelName, Level, ...) and TorchServe's Hostname */
          wk_buf_printf(b, "%s{%s%s%s,Hostname=", d->name, labels, d->labels[0] ? "," : "",
                        d->labels);
          wk_buf_json_str(b, host);
          wk_buf_printf(b, "} %.17g\n", d->value);
        }
      }
    }
  }
  for (size_t i = 0; i < n; i++) pthread_mutex_unlock(&models[i]->custom_lock);
}
