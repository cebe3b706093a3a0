/* One Python handler worker process (python/wick_worker) driven over a socketpair with
 * the OTF frames of backend/otf. Starts, loads, runs batches, stops. Restarts, queues
 * and metrics parsing belong to the caller. */
#ifndef WK_BACKEND_PYWORKER_H
#define WK_BACKEND_PYWORKER_H

#include "backend/otf.h"
#include "core/buf.h"
#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The workers' interpreter unless the config names one: the build's WK_PYTHON (the
 * venv holding the torch wick is built against; see CMakeLists.txt). */
#ifdef WK_DEFAULT_PYTHON
#define WK_PYWORKER_DEFAULT_PYTHON WK_DEFAULT_PYTHON
#else
#define WK_PYWORKER_DEFAULT_PYTHON "/usr/bin/python3"
#endif
#define WK_PYWORKER_TAIL_BYTES 2048 /* stderr kept for failure messages */

typedef struct wk_pyworker_opts_s {
  const char *python;      /* NULL: WK_PYWORKER_DEFAULT_PYTHON */
  const char *pythonpath;  /* the folder that holds wick_worker (the repo's python/) */
  const char *model_name;
  const char *model_dir;   /* unpacked model directory, absolute */
  const char *handler;     /* NULL or "": the manifest's */
  const char *envelope;    /* NULL or "": none; else TorchServe's service_envelope */
  int batch_size;          /* 1 or more */
  int gpu_id;              /* -1: no GPU */
  int worker_index;        /* N in the log tag "[model/worker N]" */
  int startup_timeout_ms;  /* spawn + load; <= 0: WK_DEFAULT_STARTUP_TIMEOUT_S */
  const char *const *env;  /* NULL-terminated "K=V" added to (overriding) wick's env */
  int fork_server;         /* fork it from the template for its python and environment
                              (backend/forkserver.h) when that works, else spawn it */
  /* optional: called on the worker's log-reader thread with the JSON text of each
   * "[METRICS] {...}" line the handler's context.metrics produced */
  void (*on_metric)(void *ud, const char *json, size_t len);
  void *metric_ud;
  wk_buf_t *failure_log;   /* optional: on a failed start, gets the worker's whole
                              message and its stderr tail (err holds 512 bytes only) */
} wk_pyworker_opts_t;

typedef struct wk_pyworker_s wk_pyworker_t;

/* Spawns the worker, sends the load frame and waits for the load response. Returns 0
 * and *out (free it with wk_pyworker_stop), or WK_EIO (spawn/socket), WK_ETIMEDOUT,
 * WK_EMODEL (the load failed: the message and the stderr tail are in err), with the
 * process reaped. The worker's stdout/stderr go to wk_log from a reader thread. */
int wk_pyworker_start(const wk_pyworker_opts_t *opts, wk_pyworker_t **out, wk_err_t *err);

/* Sends reqs[0..n) as one inference frame and reads the first response frame into
 * *resp (free with wk_otf_response_destroy). For a streaming handler
 * (wk_otf_response_streams(resp)), read the rest with wk_pyworker_read_response.
 * Returns 0 (a frame with code != 200 is still 0: the batch failed in the handler),
 * WK_ETIMEDOUT after timeout_ms (<= 0: no timeout), WK_EIO when the worker died
 * ("worker exited with status N while running a batch") or WK_EFORMAT for a garbage
 * frame. After an error the worker is unusable: stop it. One thread at a time. */
int wk_pyworker_infer(wk_pyworker_t *w, const wk_otf_request_t *reqs, size_t n,
                      wk_otf_response_t *resp, int timeout_ms, wk_err_t *err);

/* Reads the next response frame (streaming). Same returns as wk_pyworker_infer. */
int wk_pyworker_read_response(wk_pyworker_t *w, wk_otf_response_t *resp, int timeout_ms,
                              wk_err_t *err);

/* The worker's pid, and 1 while it is usable (no error so far). */
int wk_pyworker_pid(const wk_pyworker_t *w);
int wk_pyworker_alive(const wk_pyworker_t *w);
/* 1 when the process has ended (found without waiting), with how in why ("was killed by
 * signal 9"): a worker killed while idle, found before a batch is sent to it. The owning
 * thread only. */
int wk_pyworker_exited(wk_pyworker_t *w, char *why, size_t whylen);

/* Copies the last WK_PYWORKER_TAIL_BYTES of the worker's output to b. Any thread. */
int wk_pyworker_log_tail(wk_pyworker_t *w, wk_buf_t *b);

/* Closes the socket (the worker exits 0), waits up to 2 s, then SIGKILLs, reaps the
 * process, joins the reader thread and frees w. Returns the exit status as waitpid
 * encodes it, or -1. NULL-safe. Not concurrently with infer on the same w. */
int wk_pyworker_stop(wk_pyworker_t *w);

#ifdef __cplusplus
}
#endif

#endif
