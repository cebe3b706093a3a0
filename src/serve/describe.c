/* TorchServe's customizedMetadata (GET /models/{m}?customized=true): a request with
 * describe=True through the model's queue, waited for (see wk_model_customized in
 * model.h). Its own file: it uses the queue (model.c, job.c) and the v2 metadata
 * (kserve.c), which must not use each other in a circle. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/model_internal.h"

/* A sink that a caller waits on. Two owners (the waiter and the answer): whoever is last
 * frees it, so a waiter that gave up leaves nothing dangling. */
typedef struct wait_sink_s {
  wk_sink_t sink; /* first */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, status, refs;
  char *body;
  size_t len;
} wait_sink_t;

static void wait_unref(wait_sink_t *w) {
  pthread_mutex_lock(&w->mu);
  int last = --w->refs == 0;
  pthread_mutex_unlock(&w->mu);
  if (!last) return;
  free(w->body);
  pthread_mutex_destroy(&w->mu);
  pthread_cond_destroy(&w->cv);
  free(w);
}

static void wait_reply(wk_sink_t *s, int status, const char *content_type, char *body, size_t len) {
  (void)content_type;
  wait_sink_t *w = (wait_sink_t *)s;
  pthread_mutex_lock(&w->mu);
  w->status = status;
  w->body = body;
  w->len = len;
  w->done = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  wait_unref(w);
}

static void wait_error(wk_sink_t *s, int status, const char *type, const char *msg) {
  (void)type;
  wait_reply(s, status, NULL, strdup(msg), strlen(msg));
}

static const wk_sink_ops_t wait_ops = {.reply = wait_reply, .error = wait_error};

int wk_model_customized(wk_model_t *m, int timeout_ms, char **json, size_t *len, wk_err_t *err) {
  if (strcmp(m->h->platform, "python") != 0) { /* native: what its v2 metadata says */
    wk_buf_t b = WK_BUF_INIT;
    wk_model_v2_metadata(m, &b);
    *json = wk_buf_steal(&b, len);
    return *json ? 0 : wk_err(err, WK_ENOMEM, "out of memory");
  }
  wait_sink_t *w = calloc(1, sizeof *w);
  if (w == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  w->sink.ops = &wait_ops;
  w->refs = 2;
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  wk_request_t r = {.body = "", .body_len = 0};
  wk__job_t *j = NULL;
  int rc = wk__job_new(m, &w->sink, &r, 0, WK__ENV_TS, &j, err);
  if (rc == 0) {
    j->describe = 1;
    if ((rc = m->h->parse(m, j, &r, err)) != 0) {
      wk__job_fail(m, j, rc, err->msg);
      wk__job_free(j);
      rc = 0; /* answered through the sink */
    } else {
      wk__job_enqueue(m, j); /* a full queue or no worker answers through the sink too */
    }
  } else {
    w->refs--; /* no job: no answer will come */
  }
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += timeout_ms / 1000;
  until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
  pthread_mutex_lock(&w->mu);
  while (rc == 0 && !w->done && pthread_cond_timedwait(&w->cv, &w->mu, &until) == 0) {
  }
  if (rc == 0 && !w->done)
    rc = wk_err(err, WK_ETIMEDOUT, "the handler's describe_handle did not answer within %d ms",
                timeout_ms);
  else if (rc == 0 && (w->status < 200 || w->status >= 300))
    rc = wk_err(err, WK_EMODEL, "the handler's describe_handle failed (%d): %.*s", w->status,
                (int)(w->len < 300 ? w->len : 300), w->body ? w->body : "");
  else if (rc == 0) {
    *json = w->body; /* taken */
    *len = w->len;
    w->body = NULL;
  }
  pthread_mutex_unlock(&w->mu);
  wait_unref(w);
  return rc;
}

