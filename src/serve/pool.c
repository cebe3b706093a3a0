/* The per-model queue, batcher and worker pool: a bounded FIFO; one idle worker at a time
 * gathers the next batch (batchSize requests of one shape, or whatever came within
 * maxBatchDelay of the first); live scaling; and a monitor thread that answers 504 when
 * responseTimeout passes and replaces workers stuck in a forward that never returns. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/limits.h"
#include "core/log.h"
#include "serve/host_metrics.h"
#include "serve/model_internal.h"

/* How often the monitor looks for expired requests when nothing wakes it sooner. */
#define MONITOR_TICK_US 20000
/* How often the monitor looks for queued requests whose client has gone. */
#define GONE_SWEEP_US 250000

/* ---- submit ---- */

void wk__pool_submit(wk_model_t *m, wk__job_t *j) {
  pthread_mutex_lock(&m->lock);
  if (m->stopping || m->failed || m->queued >= m->queue_cap || m->target_workers == 0) {
    int stopping = m->stopping, none = m->target_workers == 0, failed = m->failed;
    char msg[512];
    if (failed) snprintf(msg, sizeof msg, "%s", m->failed_reason);
    pthread_mutex_unlock(&m->lock);
    if (failed) {
      wk__job_reply_error(m, j, 503, "ServiceUnavailableException", msg);
      wk__job_free(j);
      return;
    }
    if (stopping) snprintf(msg, sizeof msg, "model '%s' is being unloaded", m->name);
    else if (none)
      snprintf(msg, sizeof msg,
               "Model \"%s\" has no worker to serve inference request. Please use scale workers "
               "API to add workers.",
               m->name);
    else
      snprintf(msg, sizeof msg,
               "model '%s' has %d requests waiting: its job queue is full (jobQueueSize / "
               "job_queue_size %d); retry later",
               m->name, m->queue_cap, m->queue_cap);
    wk__job_header(j, "Retry-After", "1");
    wk__job_reply_error(m, j, 503, "ServiceUnavailableException", msg);
    wk__job_free(j);
    return;
  }
  if (m->tail) m->tail->next = j;
  else m->head = j;
  m->tail = j;
  m->queued++;
  atomic_fetch_add(&m->nqueued, 1);
  /* Wake the filler, unless it is polling; with no filler (every worker busy or asleep
   * on idle_cond) wake an idle worker to become one. */
  if (m->filling) {
    if (!m->spinning) pthread_cond_signal(&m->fill_cond);
  } else {
    pthread_cond_signal(&m->idle_cond);
  }
  pthread_mutex_unlock(&m->lock);
}

void wk__job_enqueue(wk_model_t *m, wk__job_t *j) {
  j->enqueued_us = wk_now_us();
  j->deadline_us = j->enqueued_us + (int64_t)m->response_timeout_s * 1000000;
  wk__pool_submit(m, j);
}

/* ---- batching ---- */

static void unlink_job(wk_model_t *m, wk__job_t *prev, wk__job_t *j) {
  if (prev) prev->next = j->next;
  else m->head = j->next;
  if (m->tail == j) m->tail = prev;
  j->next = NULL;
  m->queued--;
  atomic_fetch_sub(&m->nqueued, 1);
}

/* 1 if b may join a's batch: explanations and describe requests run alone; the handler
 * decides the rest. */
static int batchable(const wk_model_t *m, const wk__job_t *a, const wk__job_t *b) {
  if (a->explain || b->explain || a->describe || b->describe) return 0;
  return m->h->batchable == NULL || m->h->batchable(a, b);
}

/* Moves queued jobs that can join batch[0]'s batch into batch, up to cap jobs and the
 * model's max_batch_elements (a job that would go past it waits for the next batch; the
 * first job of a batch always goes). Lock held. */
static void gather(wk_model_t *m, wk__job_t **batch, size_t *n, size_t cap) {
  wk__job_t *prev = NULL, *j = m->head;
  int64_t elements = 0;
  for (size_t i = 0; i < *n; i++) elements += batch[i]->elements;
  while (j && *n < cap) {
    wk__job_t *next = j->next;
    int fits = *n == 0 || m->max_batch_elements <= 0 ||
               elements + j->elements <= m->max_batch_elements;
    if (*n == 0 || (fits && batchable(m, batch[0], j))) {
      unlink_job(m, prev, j);
      batch[(*n)++] = j;
      elements += j->elements;
    } else {
      prev = j;
    }
    j = next;
  }
}

static int should_exit(wk_model_t *m) { return m->stopping || m->retire > 0; }

/* Waits for and returns the next batch in batch (n >= 1), or 0 when this worker must
 * exit (model stopping or scaled down). Worker thread; takes the lock. */
static size_t next_batch(wk_model_t *m, wk__job_t **batch, size_t cap) {
  size_t n = 0;
  pthread_mutex_lock(&m->lock);
  for (;;) {
    if (should_exit(m)) {
      if (!m->stopping) m->retire--;
      pthread_mutex_unlock(&m->lock);
      return 0;
    }
    if (m->filling) {
      pthread_cond_wait(&m->idle_cond, &m->lock);
      continue;
    }
    m->filling = 1;
    /* Poll briefly before sleeping: a wake-up costs more than a small forward. */
    if (m->head == NULL && m->spin_us > 0) {
      m->spinning = 1;
      pthread_mutex_unlock(&m->lock);
      int64_t until = wk_now_us() + m->spin_us;
      while (atomic_load_explicit(&m->nqueued, memory_order_acquire) == 0 && wk_now_us() < until) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      pthread_mutex_lock(&m->lock);
      m->spinning = 0;
    }
    while (m->head == NULL && !should_exit(m)) pthread_cond_wait(&m->fill_cond, &m->lock);
    if (m->head != NULL && !m->stopping) {
      gather(m, batch, &n, 1);
      m->gathered = 1; /* jobs out of the queue, not yet running: drain waits for them */
      struct timespec until;
      int64_t deadline = batch[0]->enqueued_us + (int64_t)m->max_batch_delay_ms * 1000;
      while (n < cap) {
        gather(m, batch, &n, cap);
        if (n == cap || m->stopping) break;
        int64_t now = wk_now_us();
        if (now >= deadline) break;
        wk_realtime_in(deadline - now, &until);
        pthread_cond_timedwait(&m->fill_cond, &m->lock, &until);
      }
    }
    m->filling = 0;
    /* Hand the filler role on only when work is waiting: an idle worker woken for an
     * empty queue would poll it while this one runs forward, on the same cores. */
    if (m->head != NULL) pthread_cond_signal(&m->idle_cond);
    if (n > 0) break;
    m->gathered = 0;
  }
  pthread_mutex_unlock(&m->lock);
  return n;
}

/* ---- workers ---- */

/* Runs one batch through the handler, recording how long each job waited and how long
 * the batch ran. */
static void run_batch(wk_model_t *m, wk__worker_t *w, int index, wk__job_t **batch, size_t n) {
  int64_t start = wk_now_us();
  for (size_t i = 0; i < n; i++) wk__metrics_queued(m, start - batch[i]->enqueued_us);
  char why[512];
  if (wk__pool_failed(m, why, sizeof why)) {
    for (size_t i = 0; i < n; i++)
      wk__job_reply_error(m, batch[i], 503, "ServiceUnavailableException", why);
    return;
  }
  if (batch[0]->explain && m->h->explain == NULL) {
    char msg[200];
    snprintf(msg, sizeof msg, "%s models have no explanations", m->h->name);
    for (size_t i = 0; i < n; i++)
      wk__job_reply_error(m, batch[i], 501, "NotImplementedException", msg);
    return;
  }
  if (batch[0]->explain) m->h->explain(m, &w->hstate, index, batch, n);
  else m->h->run(m, &w->hstate, index, batch, n);
  wk__metrics_ran(m, wk_now_us() - start, n);
}

/* Waits out the worker's rest after a crash (woken early when the model stops, fails or is
 * scaled); returns 1 when the worker should start its process again now (it crashed, and
 * the model is neither failed nor stopping). */
static int rest(wk_model_t *m, wk__worker_t *w) {
  pthread_mutex_lock(&m->lock);
  int crashed = w->rest_until_us != 0;
  while (!should_exit(m) && !m->failed && wk_now_us() < w->rest_until_us) {
    struct timespec until;
    wk_realtime_in(w->rest_until_us - wk_now_us(), &until);
    pthread_cond_timedwait(&m->state_cond, &m->lock, &until);
  }
  w->rest_until_us = 0;
  int again = crashed && !should_exit(m) && !m->failed;
  pthread_mutex_unlock(&m->lock);
  return again;
}

int wk__pool_worker_crashed(wk_model_t *m, int index, const char *why) {
  int64_t now = wk_now_us();
  int streak = atomic_fetch_add(&m->crash_streak, 1) + 1;
  int backoff = 0, failed_now = 0;
  pthread_mutex_lock(&m->lock);
  for (wk__worker_t *w = m->worker_list; w; w = w->next) {
    if (w->id != WK__WORKER_ID_BASE + index) continue;
    /* dying again within a minute, with nothing answered since the last death, doubles the
     * rest; an answer (or a minute) in between starts it over: a worker killed now and then
     * under load comes back after 1 s each time */
    int again = streak > 1 && w->last_crash_us && now - w->last_crash_us < 60 * 1000000LL;
    w->backoff_ms = again && w->backoff_ms ? w->backoff_ms * 2 : 1000;
    if (w->backoff_ms > WK_MAX_RESTART_BACKOFF_MS) w->backoff_ms = WK_MAX_RESTART_BACKOFF_MS;
    w->last_crash_us = now;
    w->rest_until_us = now + (int64_t)w->backoff_ms * 1000;
    backoff = w->backoff_ms;
  }
  if (!m->failed && streak >= WK_CRASH_LOOP_MAX) {
    m->failed = failed_now = 1;
    snprintf(m->failed_reason, sizeof m->failed_reason,
             "model '%s' failed: its workers died %d times in a row with no request answered "
             "between (last: %.160s); scale it (PUT /models/%.100s) or register it again",
             m->name, streak, why, m->name);
    pthread_cond_broadcast(&m->state_cond); /* resting workers need not wait any longer */
  }
  int failed = m->failed;
  pthread_mutex_unlock(&m->lock);
  wk__status_worker_crashed(m, index, why);
  if (failed_now) wk_log_error("%s", m->failed_reason);
  else if (!failed)
    wk_log_warn("model %s %s: worker %d: %s; it restarts in %d ms (%d in a row)", m->name,
                m->version, WK__WORKER_ID_BASE + index, why, backoff, streak);
  return failed;
}

int wk__pool_failed(wk_model_t *m, char *why, size_t whylen) {
  pthread_mutex_lock(&m->lock);
  int failed = m->failed;
  if (failed && why) snprintf(why, whylen, "%s", m->failed_reason);
  pthread_mutex_unlock(&m->lock);
  return failed;
}

static void *worker_main(void *arg) {
  wk__worker_t *w = arg;
  wk_model_t *m = w->model;
  size_t cap = (size_t)(m->batch_size > 0 ? m->batch_size : 1);
  wk__job_t **batch = calloc(cap, sizeof *batch);
  if (batch == NULL) /* never silently: the model's health and describe show the worker gone */
    wk_log_error("model %s %s: worker %d cannot allocate its batch of %zu; it stops", m->name,
                 m->version, w->id, cap);
  int index = w->id - WK__WORKER_ID_BASE;
  int64_t t0 = wk_now_us();
  if (m->h->warm) m->h->warm(m, &w->hstate, index);
  pthread_mutex_lock(&m->lock);
  w->load_us = wk_now_us() - t0;
  if (w->state != WK__W_ABANDONED) {
    w->warmed = 1;
    m->warmed++;
    pthread_cond_broadcast(&m->state_cond); /* a synchronous scale-up waits for this */
  }
  pthread_mutex_unlock(&m->lock);
  for (size_t n; batch;) {
    /* after a crash: rest, then start again at once rather than at the next request (a
     * start that fails is a crash too, so a model that cannot start fails by itself) */
    while (rest(m, w) && m->h->warm) m->h->warm(m, &w->hstate, index);
    if ((n = next_batch(m, batch, cap)) == 0) break;
    /* Requests whose client has gone are dropped and requests whose time ran out while they
     * waited are answered now: neither runs. */
    size_t kept = 0;
    int64_t now = wk_now_us();
    for (size_t i = 0; i < n; i++) {
      if (wk__job_client_gone(batch[i])) {
        /* Its client closed the connection while it waited: nobody would read the answer,
         * so the model does not spend a forward on it. */
        wk__job_reply_error(m, batch[i], WK__STATUS_CLIENT_GONE, "ClientClosedRequest",
                            "the client closed the connection before the request ran");
        wk__job_free(batch[i]);
        continue;
      }
      if (batch[i]->deadline_us > now) {
        batch[kept++] = batch[i];
        continue;
      }
      char msg[256];
      snprintf(msg, sizeof msg,
               "model '%s' did not answer within its response timeout (responseTimeout) of %d s: "
               "the request waited in the queue",
               m->name, m->response_timeout_s);
      wk__job_reply_error(m, batch[i], 504, "RequestTimeout", msg);
      wk__job_free(batch[i]);
    }
    if ((n = kept) == 0) {
      pthread_mutex_lock(&m->lock);
      m->gathered = 0;
      pthread_mutex_unlock(&m->lock);
      continue;
    }
    int64_t deadline = batch[0]->deadline_us;
    for (size_t i = 1; i < n; i++)
      if (batch[i]->deadline_us < deadline) deadline = batch[i]->deadline_us;
    pthread_mutex_lock(&m->lock);
    m->gathered = 0;
    w->state = WK__W_BUSY;
    w->batch = batch;
    w->batch_n = n;
    w->batch_deadline_us = deadline;
    pthread_mutex_unlock(&m->lock);

    int64_t ran_from = wk_now_us();
    run_batch(m, w, index, batch, n);
    int64_t ran_to = wk_now_us();

    pthread_mutex_lock(&m->lock);
    int abandoned = w->state == WK__W_ABANDONED;
    w->batch = NULL;
    w->batch_n = 0;
    if (!abandoned) w->state = WK__W_IDLE;
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n; i++) wk__job_free(batch[i]);
    /* TorchServe's WorkerThreadTime: the batch's time in the worker outside the handler */
    wk_host_metrics_worker_thread_time((wk_now_us() - ran_to) + (ran_from - now));
    if (abandoned) break; /* the late result was dropped; a replacement already runs */
  }
  free(batch);
  if (m->h->worker_exit) m->h->worker_exit(m, w->hstate);
  pthread_mutex_lock(&m->lock);
  if (w->state == WK__W_ABANDONED) {
    m->abandoned--;
  } else {
    m->workers--;
    if (w->warmed) m->warmed--;
  }
  m->threads--;
  for (wk__worker_t **p = &m->worker_list; *p; p = &(*p)->next) {
    if (*p == w) {
      *p = w->next;
      break;
    }
  }
  pthread_cond_broadcast(&m->state_cond);
  pthread_mutex_unlock(&m->lock);
  free(w);
  return NULL;
}

/* Starts one worker thread. Lock held. */
static int spawn_worker(wk_model_t *m, wk_err_t *err) {
  wk__worker_t *w = calloc(1, sizeof *w);
  if (w == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  w->model = m;
  w->id = WK__WORKER_ID_BASE + m->next_worker_id++;
  w->start_time = time(NULL);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&w->thread, &attr, worker_main, w);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    free(w);
    return wk_err(err, WK_EINTERNAL, "model '%s': cannot start a worker thread: %s", m->name,
                  strerror(rc));
  }
  w->next = m->worker_list;
  m->worker_list = w;
  m->workers++;
  m->threads++;
  return 0;
}

/* Starts or retires workers until `workers` matches target_workers. Lock held. */
static int reconcile(wk_model_t *m, wk_err_t *err) {
  int effective = m->workers - m->retire;
  while (effective < m->target_workers) {
    if (m->retire > 0) {
      m->retire--; /* cancel a pending retirement instead of starting a thread */
    } else {
      int rc = spawn_worker(m, err);
      if (rc != 0) return rc;
    }
    effective++;
  }
  if (effective > m->target_workers) {
    m->retire += effective - m->target_workers;
    pthread_cond_broadcast(&m->idle_cond);
    pthread_cond_broadcast(&m->fill_cond);
    pthread_cond_broadcast(&m->state_cond);
  }
  return 0;
}

/* ---- timeouts ---- */

static void *monitor_main(void *arg) {
  wk_model_t *m = arg;
  wk__job_t *expired = NULL, *gone = NULL;
  int64_t next_sweep = 0;
  pthread_mutex_lock(&m->lock);
  while (!m->stopping) {
    struct timespec until;
    wk_realtime_in(MONITOR_TICK_US, &until);
    pthread_cond_timedwait(&m->mon_cond, &m->lock, &until);
    if (m->stopping) break;
    int64_t now = wk_now_us();
    wk__status_tick(m, now);
    /* requests that waited in the queue past their deadline and, now and then, requests
     * whose client has gone: out of the queue (its slots free again, their sockets
     * closed) without waiting for a worker to reach them */
    int sweep = now >= next_sweep;
    if (sweep) next_sweep = now + GONE_SWEEP_US;
    wk__job_t *prev = NULL, *j = m->head;
    while (j) {
      wk__job_t *next = j->next;
      if (j->deadline_us <= now) {
        unlink_job(m, prev, j);
        j->next = expired;
        expired = j;
      } else if (sweep && wk__job_client_gone(j)) {
        unlink_job(m, prev, j);
        j->next = gone;
        gone = j;
      } else {
        prev = j;
      }
      j = next;
    }
    /* batches whose forward runs past a deadline: answer them, replace the worker */
    char msg[256];
    snprintf(msg, sizeof msg,
             "model '%s' did not answer within its response timeout (responseTimeout) of %d s",
             m->name, m->response_timeout_s);
    for (wk__worker_t *w = m->worker_list; w; w = w->next) {
      if (w->state != WK__W_BUSY || w->batch_deadline_us > now) continue;
      for (size_t i = 0; i < w->batch_n; i++)
        wk__job_reply_error(m, w->batch[i], 504, "RequestTimeout", msg);
      w->state = WK__W_ABANDONED;
      m->workers--;
      if (w->warmed) m->warmed--;
      m->abandoned++;
      atomic_fetch_add(&m->abandoned_total, 1);
      wk_log_warn("model %s %s: worker %d abandoned: its forward has run past the response "
                  "timeout of %d s; it exits when the forward returns (%d abandoned now)",
                  m->name, m->version, w->id, m->response_timeout_s, m->abandoned);
      wk_err_t err = {{0}};
      if (reconcile(m, &err) != 0) wk_log_error("model %s: %s", m->name, err.msg);
    }
    if (expired || gone) {
      pthread_mutex_unlock(&m->lock);
      while (expired) {
        wk__job_t *next = expired->next;
        wk__job_reply_error(m, expired, 504, "RequestTimeout", msg);
        wk__job_free(expired);
        expired = next;
      }
      while (gone) {
        wk__job_t *next = gone->next;
        wk__job_reply_error(m, gone, WK__STATUS_CLIENT_GONE, "ClientClosedRequest",
                            "the client closed the connection before the request ran");
        wk__job_free(gone);
        gone = next;
      }
      pthread_mutex_lock(&m->lock);
    }
  }
  pthread_mutex_unlock(&m->lock);
  return NULL;
}

/* ---- lifecycle and scaling ---- */

int wk__pool_start(wk_model_t *m, int workers, wk_err_t *err) {
  pthread_mutex_lock(&m->lock);
  m->target_workers = workers;
  int rc = reconcile(m, err);
  pthread_mutex_unlock(&m->lock);
  if (rc != 0) return rc;
  if (pthread_create(&m->monitor, NULL, monitor_main, m) != 0)
    return wk_err(err, WK_EINTERNAL, "model '%s': cannot start the timeout monitor", m->name);
  m->monitor_started = 1;
  return 0;
}

int wk_model_scale(wk_model_t *m, int min_workers, int max_workers, int synchronous,
                   wk_err_t *err) {
  if (min_workers < 0 || max_workers < min_workers || max_workers > WK_MAX_WORKERS)
    return wk_err(err, WK_EINVAL,
                  "min_worker %d and max_worker %d: expected 0 <= min_worker <= max_worker <= %d",
                  min_workers, max_workers, WK_MAX_WORKERS);
  pthread_mutex_lock(&m->lock);
  m->min_workers = min_workers;
  m->max_workers = max_workers;
  m->target_workers = min_workers;
  if (m->failed) { /* the operator's answer to a failed model: try again, from scratch */
    wk_log_info("model %s %s: scaled: no longer failed, its workers start again", m->name,
                m->version);
    m->failed = 0;
    atomic_store(&m->crash_streak, 0);
    for (wk__worker_t *w = m->worker_list; w; w = w->next) w->backoff_ms = 0, w->rest_until_us = 0;
  }
  int rc = reconcile(m, err);
  if (rc == 0 && synchronous) {
    /* Until the new workers have started (a Python handler loaded: TorchServe answers a
     * synchronous scale-up once its workers are up) and retiring ones have finished their
     * batch, or a new one failed to start; bounded by the response timeout. */
    int64_t give_up = wk_now_us() + (int64_t)(m->response_timeout_s + 5) * 1000000;
    int streak = atomic_load(&m->crash_streak);
    while ((m->workers != m->target_workers || m->warmed < m->workers) && !m->stopping &&
           wk_now_us() < give_up && atomic_load(&m->crash_streak) == streak) {
      struct timespec until;
      wk_realtime_in(100000, &until);
      pthread_cond_timedwait(&m->state_cond, &m->lock, &until);
    }
    if (atomic_load(&m->crash_streak) != streak) {
      const char *why = "";
      for (wk__worker_t *w = m->worker_list; w; w = w->next)
        if (w->crash_reason[0]) why = w->crash_reason;
      rc = wk_err(err, WK_EWORKER, "model '%s': a new worker failed to start: %s", m->name, why);
    } else if (m->workers != m->target_workers || m->warmed < m->workers) {
      rc = wk_err(err, WK_ETIMEDOUT, "model '%s': %d workers running (%d started), %d wanted",
                  m->name, m->workers, m->warmed, m->target_workers);
    }
  }
  pthread_mutex_unlock(&m->lock);
  return rc;
}

int wk_model_drain(wk_model_t *m, int64_t deadline_us) {
  pthread_mutex_lock(&m->lock);
  for (;;) {
    int busy = 0;
    for (wk__worker_t *w = m->worker_list; w; w = w->next) busy |= w->state == WK__W_BUSY;
    if ((m->queued == 0 && !busy && m->gathered == 0) || m->target_workers == 0) break;
    if (wk_now_us() >= deadline_us) break;
    struct timespec until;
    wk_realtime_in(20000, &until); /* re-check every 20 ms */
    pthread_cond_timedwait(&m->state_cond, &m->lock, &until);
  }
  int left = m->queued;
  pthread_mutex_unlock(&m->lock);
  return left;
}

void wk__pool_stop(wk_model_t *m) {
  pthread_mutex_lock(&m->lock);
  m->stopping = 1;
  wk__job_t *pending = m->head;
  m->head = m->tail = NULL;
  m->queued = 0;
  atomic_store(&m->nqueued, 0);
  pthread_cond_broadcast(&m->fill_cond);
  pthread_cond_broadcast(&m->idle_cond);
  pthread_cond_broadcast(&m->mon_cond);
  pthread_cond_broadcast(&m->state_cond); /* workers resting after a crash */
  pthread_mutex_unlock(&m->lock);
  for (wk__job_t *j = pending, *n; j; j = n) {
    n = j->next;
    wk__job_reply_error(m, j, 503, "ServiceUnavailableException",
                        "the model was unloaded before it ran this request");
    wk__job_free(j);
  }
  if (m->monitor_started) pthread_join(m->monitor, NULL);
  m->monitor_started = 0;
  /* Running batches finish and are answered. Abandoned workers are inside a forward that
   * may never return: wait a little for them, then give up (see wk__pool_all_exited). */
  pthread_mutex_lock(&m->lock);
  int64_t give_up = wk_now_us() + 5 * 1000000;
  while (m->threads > 0 && (m->threads > m->abandoned || wk_now_us() < give_up)) {
    struct timespec until;
    wk_realtime_in(1000000, &until);
    pthread_cond_timedwait(&m->state_cond, &m->lock, &until);
  }
  pthread_mutex_unlock(&m->lock);
}

int wk__pool_all_exited(wk_model_t *m) {
  pthread_mutex_lock(&m->lock);
  int done = m->threads == 0;
  pthread_mutex_unlock(&m->lock);
  return done;
}
