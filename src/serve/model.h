/* A loaded model version: its archive unpacked, its settings, its runtime (native
 * TorchScript for now), its bounded job queue and its worker threads. Registry and HTTP
 * routing live elsewhere; this module owns what happens between submit and reply. */
#ifndef WK_SERVE_MODEL_H
#define WK_SERVE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "http/server.h"
#include "tensor/numjson.h"

typedef struct wk_model_s wk_model_t;

typedef struct wk_model_load_opts_s {
  const char *archive;        /* path of the .mar, .tar.gz or model directory */
  const char *url;            /* as the user named it (shown in describe) */
  const char *name;           /* NULL: the manifest's modelName */
  int default_workers;        /* used when the model config has no minWorkers; 0: auto */
  int job_queue_size;         /* used when the model config has no jobQueueSize */
  int response_timeout_s;     /* used when the model config has no responseTimeout */
  int torch_threads;          /* 0: auto */
  int worker_spin_us;         /* idle polling before a worker sleeps; 0: never poll */
  int loaded_at_startup;
} wk_model_load_opts_t;

/* Unpacks, reads the manifest and model-config.yaml, loads the TorchScript module once and
 * starts the workers. On failure err says why ("model 'x': ..."). Main thread. */
int wk_model_load(const wk_model_load_opts_t *o, wk_model_t **out, wk_err_t *err);

/* Stops the workers, answers every queued request with 503 and frees m. */
void wk_model_free(wk_model_t *m);

const char *wk_model_name(const wk_model_t *m);
const char *wk_model_version(const wk_model_t *m);
const char *wk_model_url(const wk_model_t *m);

/* Parses the body of a prediction request (on the HTTP thread, so bad input is answered
 * at once) and queues it. Always replies to req, now or later. */
void wk_model_predict(wk_model_t *m, wk_http_req_t *req);

/* Appends the TorchServe describe object of this version ({"modelName": ...}). */
void wk_model_describe(const wk_model_t *m, wk_buf_t *out);

/* Appends the Prometheus families (HELP, TYPE, one line per model version) of these
 * models: TorchServe's counters and wick's gauges and histograms. */
void wk_models_metrics(wk_model_t *const *models, size_t n, wk_buf_t *out);

/* Live workers, and minimum workers wanted (for /ping health). */
int wk_model_live_workers(const wk_model_t *m);
int wk_model_min_workers(const wk_model_t *m);

#endif
