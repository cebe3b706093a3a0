/* What model.c (load, submit, describe, metrics), pool.c (queue, batcher, workers,
 * scaling, timeouts) and native.c (the tensor handler) share about a model version.
 * Not an API: nothing outside src/serve/ includes it. */
#ifndef WK_SERVE_MODEL_INTERNAL_H
#define WK_SERVE_MODEL_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "archive/manifest.h"
#include "archive/model_config.h"
#include "backend/pyworker.h"
#include "backend/torch.h"
#include "http/multipart.h"
#include "serve/model.h"
#include "vision/preprocess.h"

/* Upper bounds of the latency histograms (seconds) and of the batch-size histogram. */
#define WK__LAT_BUCKETS 16
#define WK__BATCH_BUCKETS 10

typedef struct wk__hist_s {
  _Atomic uint64_t counts[WK__LAT_BUCKETS + 1]; /* the last one is +Inf */
  _Atomic uint64_t sum;                          /* microseconds, or rows for batch sizes */
  _Atomic uint64_t n;
} wk__hist_t;

/* A KServe v1 request whose instances run as separate jobs (serve/kserve.c): each job
 * fills its slot, the last one assembles and sends the one HTTP reply. */
typedef struct wk__group_s wk__group_t;

/* How a job's reply is wrapped: TorchServe's bodies and error objects, or KServe v1's
 * {"predictions": ...} / {"error": "..."}. */
enum { WK__ENV_TS = 0, WK__ENV_V1, WK__ENV_V2 };

/* One request. Owned by the queue, then by the worker that runs it (which frees it);
 * whoever replies first (worker or timeout monitor) flips `answered`. */
typedef struct wk__job_s {
  wk_http_req_t *req;
  wk_json_inputs_t inputs;   /* tensor handler */
  unsigned char *image;      /* image handler: the encoded bytes (owned) */
  size_t image_len;
  int explain;               /* /explanations: integrated gradients instead of predict */
  int64_t target;            /* explain: class index, -1 = the predicted class */
  int n_steps;               /* explain: quadrature points */
  char *content_type;        /* Python handler: the request's Content-Type (owned) */
  char id[24];               /* Python handler: the request id sent to the worker */
  char *field_names[WK_MULTIPART_MAX_PARTS]; /* Python handler: multipart field names */
  char *field_types[WK_MULTIPART_MAX_PARTS];
  size_t n_fields;
  char **headers;            /* Python handler: request headers, name and value alternating */
  size_t n_headers;          /* pairs */
  int envelope;              /* WK__ENV_* */
  struct wk_oip_request_s *v2; /* KServe v2: the request (its inputs moved out), owned */
  wk__group_t *group;        /* KServe v1 fan-out: the reply goes to slot `slot` of it */
  size_t slot;
  int64_t enqueued_us;
  int64_t deadline_us;
  _Atomic int answered;
  struct wk__job_s *next;
} wk__job_t;

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
  wk_pyworker_t *py;    /* Python handler: this thread's worker process */
  size_t batch_n;
  int64_t batch_deadline_us;
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

/* The native built-in handlers. */
typedef enum { WK__H_TENSOR = 0, WK__H_IMAGE, WK__H_PYTHON, WK__H_DETECT } wk__handler_t;

/* 1 for the native handlers that take an image per request (image_classifier,
 * object_detector): same bodies, same KServe instance handling. */
#define WK__TAKES_IMAGES(kind) ((kind) == WK__H_IMAGE || (kind) == WK__H_DETECT)

struct wk_model_s {
  wk__handler_t kind;
  /* image handler settings (image_handler.c) */
  wk_preprocess_opts_t pre;
  long max_pixels;
  int topk;
  float threshold;   /* object_detector: the lowest score reported */
  int explain_batch; /* scaled inputs per backward pass in integrated gradients; 0: all */
  char **labels; /* index_to_name.json, by class index; NULL entries: no name */
  size_t n_labels;
  char *name;
  char *version;
  char *url;
  char *handler;
  char model_dir[4096];
  char tmp_dir[4096]; /* our unpack directory, removed at free; empty for directories */
  char weights_path[4096]; /* wick.weights: the checkpoint in model_dir; "" when none */
  int weights_copied;      /* the checkpoint went into the module once (logged once) */
  wk_manifest_t manifest;
  wk_model_config_t config;
  wk_torch_model_t *torch;
  int batch_size, max_batch_delay_ms, response_timeout_s;
  int loaded_at_startup;
  int spin_us;
  char *python;          /* Python handler: the interpreter */
  int startup_timeout_s; /* Python handler: spawn + load */
  wk_pyworker_t *first_py; /* started at load to check the model; the first worker takes it */
  char *pythonpath;      /* Python handler: wick's python/ plus the model's pip folder */
  char deps_dir[4096];   /* Python handler: its requirements' pip --target, removed at free */
  int gpu_ids[16];       /* Python handler: worker i gets gpu_ids[i % n_gpu_ids] */
  int n_gpu_ids;         /* 0: every worker runs on the CPU (gpu id -1) */
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
  int abandoned;      /* abandoned, still inside forward */
  int threads;        /* all worker threads alive, abandoned included */
  int retire;         /* workers asked to exit after their batch */
  int next_worker_id;
  wk__worker_t *worker_list;
  pthread_t monitor;
  int monitor_started;

  _Atomic int nqueued; /* == queued, readable without the lock (the filler polls it) */
  _Atomic uint64_t req_total, req_ok, req_client_err, req_server_err, abandoned_total;
  _Atomic uint64_t inference_us_total, queue_us_total;
  wk__hist_t inference_hist, queue_hist, batch_hist;
};

/* pool.c */
int wk__pool_start(wk_model_t *m, int workers, wk_err_t *err); /* main thread, at load */
void wk__pool_stop(wk_model_t *m); /* returns 1 if every thread exited (m may be freed) */
int wk__pool_all_exited(wk_model_t *m);
/* Queues j; replies 503 itself when full or stopping. HTTP thread. */
void wk__pool_submit(wk_model_t *m, wk__job_t *j);
void wk__job_free(wk__job_t *j);
/* Replies once (the first caller wins); counts the reply. Any thread. */
int wk__job_reply_error(wk_model_t *m, wk__job_t *j, int status, const char *type,
                        const char *msg);
int wk__job_reply(wk_model_t *m, wk__job_t *j, int status, char *body, size_t len);
/* Adds a reply header for j (dropped for a job of a KServe v1 group: one reply, many jobs). */
void wk__job_header(wk__job_t *j, const char *name, const char *value);
/* Starts a streamed reply for j (see wk_http_stream_begin); 1 if this call answered j, 0 if
 * someone else (the timeout monitor) already had. Counted like a reply. Any thread. */
int wk__job_stream_begin(wk_model_t *m, wk__job_t *j, int status, const char *content_type);
void wk__hist_add(wk__hist_t *h, const double *bounds, size_t nb, double value, uint64_t sum);
extern const double wk__lat_bounds[WK__LAT_BUCKETS];
extern const double wk__batch_bounds[WK__BATCH_BUCKETS];

/* image_handler.c */
int wk__image_configure(wk_model_t *m, long max_pixels, wk_err_t *err); /* at load */
/* The same, starting from dflt instead of image_classifier's preprocessing. */
int wk__image_configure_from(wk_model_t *m, const wk_preprocess_opts_t *dflt, long max_pixels,
                             wk_err_t *err);
/* Appends f as the shortest JSON number that reads back to the same float32. */
void wk__print_float(wk_buf_t *b, float f);
void wk__image_unconfigure(wk_model_t *m);
/* Takes the image bytes out of req's body (raw, multipart, or JSON base64). HTTP thread. */
int wk__image_job_init(wk_model_t *m, wk__job_t *j, wk_http_req_t *req, wk_err_t *err);
void wk__image_run(wk_model_t *m, wk__job_t **jobs, size_t n);
/* Decodes and preprocesses j's image into a new [1,C,H,W] float tensor; on failure answers
 * j (400/413) and returns the error. Worker thread. */
int wk__image_prepare(wk_model_t *m, wk__job_t *j, wk_tensor_t *t);
/* Reads an explanation parameter ("target", "n_steps") given as a multipart field or a JSON
 * field beside "data"; the query string is read by the caller. 0 if absent. */

/* model.c */
/* A new job for req (predict or explain; target/n_steps from the query string) in *out;
 * WK_EINVAL when the query is bad, WK_ENOMEM. Counts the request. */
int wk__job_new(wk_model_t *m, wk_http_req_t *req, int explain, wk__job_t **out, wk_err_t *err);
/* Stamps j's deadline and queues it. */
void wk__job_enqueue(wk_model_t *m, wk__job_t *j);
/* Turns req into one job as its model's handler reads bodies and queues it; bad input is
 * answered at once (in the envelope's error form). */
void wk__submit(wk_model_t *m, wk_http_req_t *req, int explain, int envelope);

/* kserve.c */
/* Sends a native handler's output as a KServe v2 response (outputs named, filtered and
 * binary as j->v2 asks). */
void wk__v2_reply_value(wk_model_t *m, wk__job_t *j, const wk_value_t *v);
/* A Python handler's successful answer to a v2 request, sent on j's request: a JSON object
 * with "outputs" gets model_name/model_version/id added; anything else becomes one BYTES
 * output. Takes body. Called once j is answered. */
void wk__v2_reply_python(wk_model_t *m, wk__job_t *j, int status, char *body, size_t len);
/* Records a group member's answer (body owned, may be NULL; msg for errors); the last
 * one replies to the HTTP request and frees the group. */
void wk__group_put(wk__group_t *g, size_t slot, int status, const char *content_type, char *body,
                   size_t len, const char *msg);

/* python_handler.c */
/* A job carrying data (copied) as its one body parameter of type content_type. */
int wk__python_job_set_body(wk__job_t *j, wk_http_req_t *req, const void *data, size_t len,
                            const char *content_type, wk_err_t *err);
const char *wk__python_dir(void);
int wk__python_start(wk_model_t *m, int index, wk_pyworker_t **out, wk_err_t *err);
int wk__python_job_init(wk_model_t *m, wk__job_t *j, wk_http_req_t *req, wk_err_t *err);
void wk__python_run(wk_model_t *m, wk_pyworker_t **py, int index, wk__job_t **jobs, size_t n);
/* Starts a worker thread's process when it has none, so that every worker is ready (and
 * has its GPU) before its first batch; a failure is logged and retried at that batch. */
void wk__python_warm(wk_model_t *m, wk_pyworker_t **py, int index);
int wk__job_reply_typed(wk_model_t *m, wk__job_t *j, int status, const char *content_type,
                        char *body, size_t len);

/* detect_handler.c: the object_detector handler */
int wk__detect_configure(wk_model_t *m, long max_pixels, wk_err_t *err); /* at load */
void wk__detect_run(wk_model_t *m, wk__job_t **jobs, size_t n);          /* worker thread */

/* native.c: runs one batch of jobs (n >= 1) through the TorchScript module and replies
 * to each job that is still unanswered. Worker thread. */
void wk__native_run(wk_model_t *m, wk__job_t **jobs, size_t n);
/* forward() on tensors; records the time for each of the `requests` it serves and the
 * batch size. Worker thread. */
int wk__forward(wk_model_t *m, const wk_tensor_t *tensors, size_t count, size_t requests,
                wk_value_t **out, wk_err_t *err);
/* forward() on any argument values (a list of images, say); counted like wk__forward. */
int wk__forward_values(wk_model_t *m, const wk_value_t *const *args, size_t nargs,
                       size_t requests, wk_value_t **out, wk_err_t *err);
/* 1 if a and b can share a batch (same inputs, dtypes and trailing shapes). */
int wk__native_batchable(const wk__job_t *a, const wk__job_t *b);

#endif
