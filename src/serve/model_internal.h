/* A model version as serve/ sees it: its archive and config (model.c), its handler kind
 * and that kind's state (handler.h), its queue, batcher and workers (pool.c), its counters
 * and histograms (metrics.c). Not an API: nothing outside src/serve/ includes it.
 *
 * Threads: the fields above `lock` are set at load and read-only after; the pool's fields
 * are guarded by `lock`; counters are atomics; custom metrics have their own lock. */
#ifndef WK_SERVE_MODEL_INTERNAL_H
#define WK_SERVE_MODEL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "archive/manifest.h"
#include "archive/model_config.h"
#include "serve/handler.h"
#include "serve/job.h"
#include "serve/model.h"

/* Upper bounds of the latency histograms (seconds) and of the batch-size histogram. */
#define WK__LAT_BUCKETS 16
#define WK__BATCH_BUCKETS 10
/* status.c's latency buckets (four per power of two microseconds) and the statuses it
 * counts one by one (100 ... 599). */
#define WK__E2E_BUCKETS 128
#define WK__STATUS_FIRST 100
#define WK__STATUS_CODES 500

typedef struct wk__window_s wk__window_t;

typedef struct wk__hist_s {
  _Atomic uint64_t counts[WK__LAT_BUCKETS + 1]; /* the last one is +Inf */
  _Atomic uint64_t sum;                          /* microseconds, or rows for batch sizes */
  _Atomic uint64_t n;
} wk__hist_t;

typedef enum {
  WK__W_IDLE = 0,  /* waiting for a batch */
  WK__W_BUSY,      /* running a batch */
  WK__W_ABANDONED, /* its batch timed out; exits when forward returns */
} wk__wstate_t;

typedef struct wk__worker_s {
  pthread_t thread;
  int id;
  time_t start_time;
  wk_model_t *model;
  wk__wstate_t state;   /* lock held */
  wk__job_t **batch;    /* the running batch (lock held to read or change) */
  void *hstate;         /* the handler's per-worker state (a Python process) */
  size_t batch_n;
  int64_t batch_deadline_us;
  int64_t load_us;      /* how long its start (the handler's warm-up) took */
  int warmed;           /* its start is done (counted in the model's warmed; lock held) */
  int crashes;          /* its process died (Python) and was replaced (lock held) */
  int backoff_ms;       /* the wait before its next process (lock held) */
  int64_t rest_until_us;/* takes no batch before (lock held) */
  int64_t last_crash_us;
  time_t crashed_at;    /* the last time, and why (lock held) */
  char crash_reason[200];
  struct wk__worker_s *next;
} wk__worker_t;

/* A value a Python handler recorded through context.metrics. */
typedef struct wk__custom_metric_s {
  char *name;   /* Prometheus-safe */
  char *labels; /* dimensions as label="value" pairs, comma-separated (may be "") */
  int counter;  /* 1: added up; 0: gauge (the last value) */
  double value;
} wk__custom_metric_t;

#define WK__MAX_CUSTOM_METRICS 1024

/* Worker ids start here (TorchServe numbers its workers from 9000 too). */
#define WK__WORKER_ID_BASE 9000

struct wk_model_s {
  const wk_handler_t *h; /* the handler kind; never NULL once loaded */
  void *hstate;          /* its per-model state (h->init, h->free) */
  char *name;
  char *version;
  char *url;
  char *handler;
  char *service_envelope; /* Python handlers: TorchServe's request envelope, or NULL */
  char model_dir[4096];
  char tmp_dir[4096]; /* our unpack directory, removed at free; empty for directories */
  uint64_t unpacked;  /* bytes written into tmp_dir, counted in the server's total */
  wk_manifest_t manifest;
  wk_model_config_t config;
  int batch_size, max_batch_delay_ms, response_timeout_s;
  /* the most input elements one batch may hold (the handler's init sets it; 0: no bound):
   * the batcher leaves a job for the next batch rather than go past it ([11] part 1) */
  int64_t max_batch_elements;
  int loaded_at_startup;
  long max_response_size; /* bytes an answer's body may hold; 0: no limit */
  int startup_timeout_s; /* as described (TorchServe's startupTimeout) */
  int spin_us;
  pthread_mutex_t custom_lock; /* guards custom metrics (written by worker log readers) */
  wk__custom_metric_t *custom;
  size_t n_custom;

  pthread_mutex_t lock;
  pthread_cond_t fill_cond;  /* the filling worker waits here for jobs */
  pthread_cond_t idle_cond;  /* other idle workers wait here to become the filler */
  pthread_cond_t state_cond; /* worker count changes (scale, free) */
  pthread_cond_t mon_cond;   /* wakes the timeout monitor */
  /* all below: lock held */
  wk__job_t *head, *tail;
  int queued;
  int queue_cap;
  int stopping;
  int filling;        /* a worker is gathering the next batch */
  int gathered;       /* it holds jobs taken from the queue that are not running yet */
  int spinning;       /* the filler polls nqueued: submit need not signal */
  int min_workers, max_workers;
  int target_workers; /* workers wanted (not counting abandoned ones) */
  int workers;        /* running, not abandoned */
  int warmed;         /* of those, the ones whose start (the handler's warm-up) is done */
  int abandoned;      /* abandoned, still inside forward */
  int threads;        /* all worker threads alive, abandoned included */
  int retire;         /* workers asked to exit after their batch */
  int failed;         /* its workers kept dying: no restart, every request 503 ([13]) */
  char failed_reason[512];
  int next_worker_id;
  wk__worker_t *worker_list;
  pthread_t monitor;
  int monitor_started;

  _Atomic int nqueued; /* == queued, readable without the lock (the filler polls it) */
  _Atomic int crash_streak; /* worker deaths since the last successful answer */
  _Atomic uint64_t req_total, req_ok, req_client_err, req_server_err, abandoned_total;
  _Atomic uint64_t req_cancelled; /* the client went before its request ran (499) */
  _Atomic uint64_t inference_us_total, queue_us_total;
  wk__hist_t inference_hist, queue_hist, batch_hist;
  /* Triton's statistics: batches run per exact size (index 1..batch_size) and their time,
   * the wall-clock time of the latest */
  _Atomic uint64_t *batch_runs, *batch_run_us;
  _Atomic int64_t last_inference_ms;
  /* the operator's view (status.c): answers by latency from arrival and by status, and
   * the ring of samples the monitor takes (NULL: none taken) */
  _Atomic uint64_t e2e_counts[WK__E2E_BUCKETS];
  _Atomic uint64_t by_status[WK__STATUS_CODES];
  wk__window_t *window;
  time_t loaded_at;
};

/* metrics.c */
/* Records one request's time in the queue, or a batch's run (its time counted for each of
 * its n requests, and its size). Worker thread. */
void wk__metrics_queued(wk_model_t *m, int64_t waited_us);
void wk__metrics_ran(wk_model_t *m, int64_t took_us, size_t n);
/* Records a value a Python handler sent through context.metrics: counters add up, gauges
 * keep the last value. Any thread. */
void wk__metrics_custom(wk_model_t *m, const char *name, const char *labels, int counter,
                        double value);
/* The per-batch-size counters (after the batch size is known). WK_ENOMEM. */
int wk__metrics_init(wk_model_t *m);
void wk__metrics_free(wk_model_t *m);

/* status.c */
/* Starts m's sample ring, one sample every interval_ms (<= 0: the default). WK_ENOMEM. */
int wk__status_init(wk_model_t *m, int interval_ms);
void wk__status_free(wk_model_t *m);
/* Counts an answer: its status and, for a queued job (j may be NULL), its time from
 * arrival. Any thread. */
void wk__status_answered(wk_model_t *m, const wk__job_t *j, int status);
/* Remembers an error answer (status >= 400, not a departed client's) among the recent
 * errors. Any thread. */
void wk__status_error(wk_model_t *m, int status, const char *msg);
/* Takes a sample when one is due. The monitor thread, m->lock held. */
void wk__status_tick(wk_model_t *m, int64_t now_us);
/* Worker index's process died (why) and is being replaced: counted on the worker, shown
 * with the recent errors. Worker thread, lock not held. */
void wk__status_worker_crashed(wk_model_t *m, int index, const char *why);

/* pool.c */
/* Worker index's process died or did not start (why): the worker rests 1 s, 2 s, ... 30 s
 * (doubling while it dies again within a minute with nothing answered between) before it
 * takes the next batch; after
 * WK_CRASH_LOOP_MAX deaths with no successful answer between them the model is marked
 * failed: its requests are answered 503 and no process is started until it is scaled.
 * Returns 1 when the model is (now) failed. Worker thread, lock not held. */
int wk__pool_worker_crashed(wk_model_t *m, int index, const char *why);
/* 1 when m is failed, with the reason in why. Any thread. */
int wk__pool_failed(wk_model_t *m, char *why, size_t whylen);
int wk__pool_start(wk_model_t *m, int workers, wk_err_t *err); /* main thread, at load */
void wk__pool_stop(wk_model_t *m);
int wk__pool_all_exited(wk_model_t *m); /* 1 if every thread exited (m may be freed) */
/* Queues j; answers 503 itself when full or stopping. Transport thread. */
void wk__pool_submit(wk_model_t *m, wk__job_t *j);
/* Stamps j's arrival and deadline (responseTimeout from now) and queues it. */
void wk__job_enqueue(wk_model_t *m, wk__job_t *j);

/* model.c */
/* Makes a job for r, lets m's handler parse it and queues it; bad input is answered at
 * once. Transport thread. */
void wk__submit(wk_model_t *m, const wk_request_t *r, wk_sink_t *sink, int explain, int envelope);

#endif
