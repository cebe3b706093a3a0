/* A handler kind is one const table: how a model of that kind reads a request into a job,
 * which jobs may share a batch, how a batch runs, what it says about its inputs. model.c
 * finds the table by the archive's handler name and keeps a pointer; pool.c calls run;
 * kserve.c asks the flags how instances map to jobs. Adding a kind = one new file that
 * defines a table + one line in handlers.c. Not an API: only src/serve/ includes it.
 *
 * State: init puts the kind's per-model state in m->hstate (freed by free); a worker
 * thread's own state (a Python process) lives in the void * that run, explain, warm and
 * worker_exit get, NULL until the handler sets it.
 *
 * Threads: init and free on the thread that loads or frees the model; parse and parse_v2
 * on a transport thread (an HTTP thread), where bad input is answered at once; batchable
 * under the model's queue lock (keep it cheap, no locks); run, explain, warm, worker_exit
 * on the worker thread. run and explain answer every job of the batch they get (directly
 * or through a failure); the worker frees the jobs afterwards.
 *
 * Errors: init, parse and parse_v2 return 0 or a WK_E* code with err set; the caller
 * answers the job and frees it. */
#ifndef WK_SERVE_HANDLER_H
#define WK_SERVE_HANDLER_H

#include <stddef.h>

#include "core/error.h"
#include "serve/job.h"
#include "serve/model.h"

struct wk_oip_request_s;

enum {
  WK__HF_NATIVE = 1 << 0, /* runs a TorchScript module in this process */
  WK__HF_IMAGES = 1 << 1, /* one image per request: KServe instances are base64 images
                             and the job's payload is their bytes (j->data) */
  WK__HF_ROWS = 1 << 2,   /* KServe v1 instances are rows of one tensor: one job */
};

/* One input of the v2 model metadata. */
typedef struct wk__io_s {
  const char *name;
  const char *datatype; /* "FP32", "BYTES", ... */
  int ndim;             /* 0: shape unknown, shown as [-1] */
  int64_t shape[8];     /* -1: any size */
} wk__io_t;

typedef struct wk_handler_s {
  const char *name;             /* as an archive's handler names it: "image_classifier" */
  const char *const *aliases;   /* other names for it (NULL-terminated), or NULL */
  unsigned flags;               /* WK__HF_* */
  const char *platform;         /* v2 metadata: "pytorch_libtorch", "python" */
  const char *output_datatype;  /* v2 metadata of OUTPUT__0 unless the config declares it */

  int (*init)(wk_model_t *m, const wk_model_load_opts_t *o, wk_err_t *err);
  void (*free)(wk_model_t *m); /* also after a failed init */
  /* A request's body (TorchServe routes, KServe v1 instances of non-ROWS kinds) into j. */
  int (*parse)(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err);
  /* A KServe v2 request into j (j->v2 is r, its tensors may be moved out); NULL: the
   * request's JSON goes to parse as the body, or, with WK__HF_IMAGES, each BYTES element
   * becomes a job of its own. */
  int (*parse_v2)(wk_model_t *m, wk__job_t *j, struct wk_oip_request_s *r, wk_err_t *err);
  /* 1 if a and b may run in one batch; NULL: any two may. Never asked for explanations
   * (each runs alone). */
  int (*batchable)(const wk__job_t *a, const wk__job_t *b);
  void (*run)(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n);
  /* Explanations (n is 1); NULL: answered 501. */
  void (*explain)(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n);
  /* Before a worker's first batch (start its process, say); may be NULL. */
  void (*warm)(wk_model_t *m, void **wstate, int index);
  void (*worker_exit)(wk_model_t *m, void *wstate); /* may be NULL */
  /* The CUDA device worker index runs on, -1 for the CPU (GET /models/{m}); NULL: CPU. */
  int (*device)(const wk_model_t *m, int index);
  /* v2 metadata inputs unless the config declares them; NULL: one BYTES INPUT__0. */
  size_t (*inputs)(const wk_model_t *m, wk__io_t *out, size_t cap);
} wk_handler_t;

/* The kinds (handlers.c lists them). */
extern const wk_handler_t wk__handler_tensor;
extern const wk_handler_t wk__handler_image;
extern const wk_handler_t wk__handler_detect;
extern const wk_handler_t wk__handler_python;

/* The native kind called `name` (or an alias); NULL or "" is the tensor handler. NULL
 * when no native kind has that name (a Python handler: a file, a module, a built-in of
 * the Python runtime). */
const wk_handler_t *wk__handler_find(const char *name);

#endif
