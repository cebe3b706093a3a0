/* A loaded model version: its archive unpacked, its settings, its handler kind (native
 * TorchScript or Python workers), its bounded job queue and its worker threads. Registry
 * and routing live elsewhere; this module owns what happens between a transport handing it
 * a request (serve/sink.h) and the answer going to that request's sink. */
#ifndef WK_SERVE_MODEL_H
#define WK_SERVE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/error.h"
#include "serve/sink.h"
#include "tensor/numjson.h"

typedef struct wk_model_s wk_model_t;
struct json_t;

typedef struct wk_model_load_opts_s {
  const char *archive;        /* path of the .mar, .tar.gz or model directory */
  const char *url;            /* as the user named it (shown in describe) */
  const char *name;           /* NULL: the manifest's modelName */
  int default_workers;        /* used when the model config has no minWorkers; 0: auto */
  int job_queue_size;         /* used when the model config has no jobQueueSize */
  int response_timeout_s;     /* used when the model config has no responseTimeout */
  int torch_threads;          /* 0: auto */
  int worker_spin_us;         /* idle polling before a worker sleeps; 0: never poll */
  int status_interval_ms;     /* the operator's view: one sample per interval; 0: 10 s */
  long max_image_pixels;      /* image handler: limit_max_image_pixels; <= 0: no limit */
  long max_response_size;     /* bytes one answer may hold (max_response_size); 0: the
                                 default, 6553500 */
  const char *python;         /* Python handlers: the interpreter (NULL: WK_PYWORKER_DEFAULT_PYTHON) */
  const char *service_envelope; /* Python handlers: TorchServe's service_envelope (body, json,
                                 kserve, kservev2) or NULL */
  int startup_timeout_s;      /* Python handlers: worker start + load; 0: the default */
  int install_py_deps;        /* Python handlers: pip-install the manifest's requirementsFile
                                 into a folder of this model (install_py_dep_per_model) */
  int python_fork_server;     /* Python handlers: fork workers from a template that imported
                                 torch once (python_fork_server, default 1) */
  int loaded_at_startup;
  long max_unpacked_archive;  /* bytes this archive may unpack to; 0: the default */
  long max_unpacked_total;    /* bytes every model's unpacked folder may add up to; 0: default */
  /* Overrides from a register request (POST /models?...): -1 (or NULL) = not given, and
   * then model-config.yaml and the server defaults decide. */
  const char *handler;        /* replaces the manifest's handler */
  const char *version;        /* replaces the manifest's modelVersion */
  int batch_size;
  int max_batch_delay_ms;
  int initial_workers;
  int response_timeout_s_override;
} wk_model_load_opts_t;

/* Fills o with "nothing given": zeros, NULLs and -1 for the overrides. */
void wk_model_load_opts_init(wk_model_load_opts_t *o);
/* Fills o as wk_model_load_opts_init does, then with the server's settings from cfg (may be
 * NULL: the defaults): worker counts, queue, timeouts, threads, Python, envelopes, image
 * and unpack limits. The caller adds the archive and what its request overrides. */
struct wk_config_s;
void wk_model_load_opts_from_config(wk_model_load_opts_t *o, const struct wk_config_s *cfg);

/* Unpacks, reads the manifest and model-config.yaml, loads the TorchScript module once and
 * starts the workers. On failure err says why ("model 'x': ..."). Main thread. */
int wk_model_load(const wk_model_load_opts_t *o, wk_model_t **out, wk_err_t *err);

/* Sets the worker range and starts or stops workers to reach max(min, live) within
 * [min, max]. With synchronous set, returns once the workers run (or have exited);
 * otherwise at once. Requests keep flowing meanwhile. Management thread. */
int wk_model_scale(wk_model_t *m, int min_workers, int max_workers, int synchronous,
                   wk_err_t *err);

/* Waits until m's queue is empty and no batch runs, or deadline_us (wk_now_us clock)
 * passes. Returns the number of requests still queued. New requests are not stopped
 * here: the caller has stopped routing them. Main thread, at shutdown. */
int wk_model_drain(wk_model_t *m, int64_t deadline_us);

/* Stops the workers, answers every queued request with 503 and frees m. */
void wk_model_free(wk_model_t *m);

const char *wk_model_name(const wk_model_t *m);
int wk_model_loaded_at_startup(const wk_model_t *m); /* --models / load_models, not the API */
const char *wk_model_version(const wk_model_t *m);
const char *wk_model_url(const wk_model_t *m);

/* The entry points of requests. Each parses r on the calling (transport) thread, so bad
 * input is answered at once, and queues the job; the answer always goes to sink, now or
 * later, from any thread. r is read only during the call. */

/* TorchServe's /predictions (explain 0) and /explanations (explain 1: integrated gradients
 * of the model's output for `target` (query, multipart field or JSON field; default the
 * predicted class) with `n_steps` quadrature points (default 50)). */
void wk_model_predict(wk_model_t *m, const wk_request_t *r, wk_sink_t *sink, int explain);
/* KServe v1 :predict / :explain: {"instances": [...]} or {"inputs": ...} in,
 * {"predictions": [...]} (or "explanations") out (serve/kserve.c). */
void wk_model_predict_v1(wk_model_t *m, const wk_request_t *r, wk_sink_t *sink, int explain);
/* KServe v2 /infer: JSON and binary tensor data in and out (tensor/oip.h); /explain (explain
 * 1) is the same request run as the handler's explanation, as TorchServe routes it. */
void wk_model_infer_v2(wk_model_t *m, const wk_request_t *r, wk_sink_t *sink, int explain);
/* Appends the v2 model metadata object: name, versions, platform, inputs, outputs (from
 * wick: {inputs, outputs} in the model config, else the forward() argument names, FP32
 * (INT64 for an embedding's indices),
 * shape [-1]). */
void wk_model_v2_metadata(const wk_model_t *m, wk_buf_t *out);
/* TorchServe's customizedMetadata (GET /models/{m}?customized=true): a Python model's
 * handler answers a request with describe=True (its describe_handle) through the queue,
 * waited for at most timeout_ms; a native model gives its v2 metadata. *json (malloc'd)
 * is the answer's text. WK_ETIMEDOUT, WK_EMODEL when the handler failed. Blocks. */
int wk_model_customized(wk_model_t *m, int timeout_ms, char **json, size_t *len, wk_err_t *err);
/* Appends Triton's model configuration (GET /v2/models/{m}/config): platform, backend,
 * max_batch_size, input and output (TYPE_* and dims without the batch dimension),
 * dynamic_batching, instance_group (the workers). */
void wk_model_v2_config(wk_model_t *m, wk_buf_t *out);
/* Appends m's Triton statistics object (GET /v2/models/{m}/stats) to list, a JSON array:
 * counts and times of successes, failures, the queue and the forward (compute_infer; wick
 * does not time input and output apart: their ns are 0), and per exact batch size. */
void wk_model_v2_stats(wk_model_t *m, struct json_t *list);
/* Appends the TorchServe describe object of this version ({"modelName": ...}). */
void wk_model_describe(const wk_model_t *m, wk_buf_t *out);

/* Appends the Prometheus families (HELP, TYPE, one line per model version) of these
 * models: TorchServe's counters and wick's gauges and histograms. */
void wk_models_metrics(wk_model_t *const *models, size_t n, wk_buf_t *out);

/* Live workers (not abandoned), and minimum workers wanted. */
int wk_model_live_workers(const wk_model_t *m);
int wk_model_min_workers(const wk_model_t *m);
/* 1 if the model has at least minWorkers live workers and at most
 * WK_MAX_ABANDONED_WORKERS abandoned ones; otherwise 0 and why says which. Any thread. */
int wk_model_healthy(const wk_model_t *m, char *why, size_t whylen);
/* 1 when m's workers kept dying and it was marked failed (wk_model_healthy says why):
 * requests are answered 503 until it is scaled (wk_model_scale) or registered again. */
int wk_model_failed(const wk_model_t *m);

#endif
