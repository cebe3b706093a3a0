/* Unit tests for serve/pool.c (queue, batcher, workers, timeouts, scaling, drain, stop)
 * with no libtorch, no HTTP server and no real handler: a fake handler table runs the
 * batches and a capturing sink records the answer each job gets. The job and reply code
 * (serve/job.c) and the metrics (serve/metrics.c) are the real ones. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/log.h"
#include "serve/model_internal.h"

/* ---- the capturing sink: what a transport would have sent ---- */

typedef struct {
  wk_sink_t sink; /* first */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int status; /* 0 until answered */
  int replies;
  char body[512];
  char type[64];
  char retry_after[16];
  int64_t answered_us;
  _Atomic int gone; /* the client closed its connection */
} cap_t;

static void answer(wk_sink_t *s, int status, const char *type, const char *body) {
  cap_t *r = (cap_t *)s;
  pthread_mutex_lock(&r->mu);
  r->status = status;
  r->replies++;
  r->answered_us = wk_now_us();
  snprintf(r->body, sizeof r->body, "%s", body ? body : "");
  snprintf(r->type, sizeof r->type, "%s", type ? type : "");
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void cap_reply(wk_sink_t *s, int status, const char *content_type, char *body, size_t len) {
  (void)content_type, (void)len;
  answer(s, status, NULL, body);
  free(body);
}

static void cap_error(wk_sink_t *s, int status, const char *type, const char *msg) {
  answer(s, status, type, msg);
}

static void cap_header(wk_sink_t *s, const char *name, const char *value) {
  cap_t *r = (cap_t *)s;
  if (strcmp(name, "Retry-After") == 0) snprintf(r->retry_after, sizeof r->retry_after, "%s", value);
}

static int cap_gone(wk_sink_t *s) { return atomic_load(&((cap_t *)s)->gone); }

static const wk_sink_ops_t cap_ops = {
    .reply = cap_reply, .error = cap_error, .header = cap_header, .gone = cap_gone};

static void req_init(cap_t *r) {
  memset(r, 0, sizeof *r);
  r->sink.ops = &cap_ops;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
}

/* Waits up to ms for r's answer; returns its status (0: none came). */
static int req_wait(cap_t *r, int ms) {
  int64_t until = wk_now_us() + (int64_t)ms * 1000;
  pthread_mutex_lock(&r->mu);
  while (r->status == 0 && wk_now_us() < until) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long ns = ts.tv_nsec + 5 * 1000000L;
    ts.tv_sec += ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    pthread_cond_timedwait(&r->cv, &r->mu, &ts);
  }
  int s = r->status;
  pthread_mutex_unlock(&r->mu);
  return s;
}

/* ---- the fake handler ---- */

/* A job's batching key is its `target` field (the tensor handler's is its shape). */
static int fake_batchable(const wk__job_t *a, const wk__job_t *b) { return a->target == b->target; }

static struct {
  pthread_mutex_t mu;
  int batches;
  size_t sizes[64];
  int mixed;         /* a batch held two keys */
  int hold;          /* 1: runs wait until released */
  int slow_ms;       /* each run sleeps this long (after hold) */
  int running;
} g_fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void fake_run(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate, (void)index;
  pthread_mutex_lock(&g_fake.mu);
  if (g_fake.batches < 64) g_fake.sizes[g_fake.batches] = n;
  g_fake.batches++;
  for (size_t i = 1; i < n; i++) g_fake.mixed |= jobs[i]->target != jobs[0]->target;
  g_fake.running++;
  pthread_mutex_unlock(&g_fake.mu);
  for (;;) {
    pthread_mutex_lock(&g_fake.mu);
    int hold = g_fake.hold;
    pthread_mutex_unlock(&g_fake.mu);
    if (!hold) break;
    usleep(2000);
  }
  if (g_fake.slow_ms > 0) usleep((useconds_t)g_fake.slow_ms * 1000);
  for (size_t i = 0; i < n; i++) {
    char *body = malloc(32);
    int len = snprintf(body, 32, "{\"batch\": %zu}", n);
    wk__job_reply(m, jobs[i], 200, body, (size_t)len);
  }
  pthread_mutex_lock(&g_fake.mu);
  g_fake.running--;
  pthread_mutex_unlock(&g_fake.mu);
}

static const wk_handler_t fake_handler = {
    .name = "fake",
    .flags = WK__HF_NATIVE,
    .batchable = fake_batchable,
    .run = fake_run,
};

/* A kind whose workers have state of their own, made before the first batch and handed
 * back when the worker exits (as the Python kind's processes). */
static _Atomic int g_py_runs, g_py_warm_mask, g_py_exits;

static void py_run(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  assert_non_null(*wstate); /* warmed before its first batch */
  atomic_fetch_add(&g_py_runs, 1);
  fake_run(m, wstate, index, jobs, n);
}

static void py_warm(wk_model_t *m, void **wstate, int index) {
  (void)m;
  *wstate = malloc(1);
  atomic_fetch_or(&g_py_warm_mask, 1 << index);
}

static void py_exit(wk_model_t *m, void *wstate) {
  (void)m;
  free(wstate);
  atomic_fetch_add(&g_py_exits, 1);
}

static const wk_handler_t fake_python = {
    .name = "fake python",
    .run = py_run,
    .explain = py_run,
    .warm = py_warm,
    .worker_exit = py_exit,
};

/* A kind whose worker process "dies" on every job with key 99 (as a Python worker killed
 * mid-batch) and answers the others. */
static _Atomic int64_t g_crash_runs_us[16];
static _Atomic int g_crash_runs;

static void crashing_run(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate;
  int k = atomic_fetch_add(&g_crash_runs, 1);
  if (k < 16) atomic_store(&g_crash_runs_us[k], wk_now_us());
  if (jobs[0]->target != 99) {
    fake_run(m, wstate, index, jobs, n);
    return;
  }
  for (size_t i = 0; i < n; i++)
    wk__job_reply_error(m, jobs[i], 503, "ServiceUnavailableException", "worker died");
  wk__pool_worker_crashed(m, index, "its process was killed by signal 9");
}

static const wk_handler_t crashing = {.name = "crashing", .run = crashing_run};

/* ---- a model and its jobs ---- */

static wk_model_t *model_new(int batch_size, int delay_ms, int timeout_s, int queue_cap) {
  wk_model_t *m = calloc(1, sizeof *m);
  m->name = strdup("m");
  m->version = strdup("1.0");
  m->h = &fake_handler;
  m->batch_size = batch_size;
  m->max_batch_delay_ms = delay_ms;
  m->response_timeout_s = timeout_s;
  m->queue_cap = queue_cap;
  pthread_mutex_init(&m->lock, NULL);
  pthread_cond_init(&m->fill_cond, NULL);
  pthread_cond_init(&m->idle_cond, NULL);
  pthread_cond_init(&m->state_cond, NULL);
  pthread_cond_init(&m->mon_cond, NULL);
  pthread_mutex_init(&m->custom_lock, NULL);
  g_fake.batches = 0;
  g_fake.mixed = 0;
  g_fake.hold = 0;
  g_fake.slow_ms = 0;
  g_fake.running = 0;
  return m;
}

static void model_free(wk_model_t *m) {
  wk__pool_stop(m);
  assert_true(wk__pool_all_exited(m));
  free(m->name);
  free(m->version);
  free(m);
}

/* Queues a job with batching key `key` for req, due within timeout_us (0: the model's). */
static void submit_due(wk_model_t *m, cap_t *req, int64_t key, int64_t timeout_us) {
  wk__job_t *j = calloc(1, sizeof *j);
  j->sink = &req->sink;
  j->target = key;
  j->envelope = WK__ENV_TS;
  j->enqueued_us = wk_now_us();
  j->deadline_us =
      j->enqueued_us + (timeout_us > 0 ? timeout_us : (int64_t)m->response_timeout_s * 1000000);
  wk__pool_submit(m, j);
}

static void submit(wk_model_t *m, cap_t *req, int64_t key) { submit_due(m, req, key, 0); }

static void hold(int on) {
  pthread_mutex_lock(&g_fake.mu);
  g_fake.hold = on;
  pthread_mutex_unlock(&g_fake.mu);
}

static int running(void) {
  pthread_mutex_lock(&g_fake.mu);
  int r = g_fake.running;
  pthread_mutex_unlock(&g_fake.mu);
  return r;
}

static void wait_running(int n) {
  for (int i = 0; i < 2000 && running() != n; i++) usleep(1000);
  assert_int_equal(running(), n);
}

/* ---- tests ---- */

static void test_a_dying_worker_rests_longer_each_time_then_the_model_fails(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 30, 100);
  m->h = &crashing;
  wk_err_t err = {{0}};
  atomic_store(&g_crash_runs, 0);
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  /* three deaths, each followed by a rest (1 s, then 2 s) before the next batch */
  cap_t r[8];
  for (int i = 0; i < 3; i++) {
    req_init(&r[i]);
    submit(m, &r[i], 99);
  }
  for (int i = 0; i < 3; i++) assert_int_equal(req_wait(&r[i], 10000), 503);
  int64_t gap1 = atomic_load(&g_crash_runs_us[1]) - atomic_load(&g_crash_runs_us[0]);
  int64_t gap2 = atomic_load(&g_crash_runs_us[2]) - atomic_load(&g_crash_runs_us[1]);
  assert_true(gap1 >= 950000 && gap2 >= 1950000); /* rests, not a hot restart loop */
  /* the third answer goes out before the worker reports its death: wait for the report */
  for (int i = 0; i < 2000 && atomic_load(&m->crash_streak) < 3; i++) usleep(1000);
  assert_int_equal(atomic_load(&m->crash_streak), 3);
  char why[512];
  assert_false(wk__pool_failed(m, why, sizeof why));
  /* a request answered between deaths: no crash loop, and the next rest is 1 s again */
  req_init(&r[3]);
  submit(m, &r[3], 1);
  assert_int_equal(req_wait(&r[3], 10000), 200);
  assert_int_equal(atomic_load(&m->crash_streak), 0);
  cap_t again;
  req_init(&again);
  submit(m, &again, 99);
  assert_int_equal(req_wait(&again, 10000), 503);
  /* the answer goes out before the worker reports its death: wait for the report */
  int crashes = 0, backoff = 0;
  for (int i = 0; i < 2000 && crashes < 4; i++) {
    pthread_mutex_lock(&m->lock);
    crashes = m->worker_list->crashes;
    backoff = m->worker_list->backoff_ms;
    pthread_mutex_unlock(&m->lock);
    if (crashes < 4) usleep(1000);
  }
  assert_int_equal(crashes, 4);
  assert_int_equal(backoff, 1000);
  /* WK_CRASH_LOOP_MAX deaths in a row: failed, every request 503 at once with the reason */
  for (int i = 0; i < WK_CRASH_LOOP_MAX; i++) wk__pool_worker_crashed(m, 0, "it did not start");
  assert_true(wk__pool_failed(m, why, sizeof why));
  assert_non_null(strstr(why, "died 5 times in a row"));
  assert_non_null(strstr(why, "it did not start"));
  req_init(&r[4]);
  int64_t t0 = wk_now_us();
  submit(m, &r[4], 1);
  assert_int_equal(req_wait(&r[4], 1000), 503);
  assert_true(r[4].answered_us - t0 < 500000);
  assert_non_null(strstr(r[4].body, "failed"));
  /* scaling is the way back: the worker serves again at once */
  assert_int_equal(wk_model_scale(m, 1, 1, 1, &err), 0);
  assert_false(wk__pool_failed(m, NULL, 0));
  req_init(&r[5]);
  submit(m, &r[5], 1);
  assert_int_equal(req_wait(&r[5], 3000), 200);
  model_free(m);
}

static void test_batches_hold_one_key_and_at_most_batch_size(void **state) {
  (void)state;
  wk_model_t *m = model_new(4, 200, 30, 100);
  wk_err_t err = {{0}};
  m->target_workers = 1; /* accept jobs before the worker starts: all are queued at once */
  cap_t req[8];
  const int64_t keys[8] = {1, 1, 2, 1, 1, 2, 1, 1};
  for (int i = 0; i < 8; i++) {
    req_init(&req[i]);
    submit(m, &req[i], keys[i]);
  }
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  for (int i = 0; i < 8; i++) assert_int_equal(req_wait(&req[i], 5000), 200);
  assert_false(g_fake.mixed);
  assert_int_equal(g_fake.batches, 3); /* key 1: 4 then 2; key 2: 2 */
  size_t total = 0;
  for (int b = 0; b < g_fake.batches; b++) {
    assert_true(g_fake.sizes[b] <= 4);
    total += g_fake.sizes[b];
  }
  assert_int_equal(total, 8);
  assert_int_equal(g_fake.sizes[0], 4);
  for (int i = 0; i < 8; i++) assert_int_equal(req[i].replies, 1);
  model_free(m);
}

static void test_a_lone_job_waits_max_batch_delay_then_runs(void **state) {
  (void)state;
  wk_model_t *m = model_new(8, 150, 30, 100);
  wk_err_t err = {{0}};
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  usleep(50000); /* the worker is idle */
  cap_t r;
  req_init(&r);
  int64_t t0 = wk_now_us();
  submit(m, &r, 1);
  assert_int_equal(req_wait(&r, 5000), 200);
  int64_t took = r.answered_us - t0;
  assert_true(took >= 140000);  /* it waited for company... */
  assert_true(took < 3000000);  /* ...a bounded time (a wide bound: not a speed check) */
  assert_string_equal(r.body, "{\"batch\": 1}");
  model_free(m);
}

static void test_full_queue_is_503_with_retry_after(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 30, 2);
  wk_err_t err = {{0}};
  hold(1);
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  cap_t r[4];
  for (int i = 0; i < 4; i++) req_init(&r[i]);
  submit(m, &r[0], 1);
  wait_running(1); /* r[0] runs, the queue is empty */
  submit(m, &r[1], 1);
  submit(m, &r[2], 1);
  submit(m, &r[3], 1); /* the queue holds 2 */
  assert_int_equal(req_wait(&r[3], 1000), 503);
  assert_string_equal(r[3].retry_after, "1");
  assert_non_null(strstr(r[3].body, "job queue is full"));
  hold(0);
  for (int i = 0; i < 3; i++) assert_int_equal(req_wait(&r[i], 5000), 200);
  model_free(m);
}

static void test_timeout_is_504_and_the_stuck_worker_is_replaced(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 1, 10);
  wk_err_t err = {{0}};
  hold(1);
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  cap_t stuck, next;
  req_init(&stuck);
  req_init(&next);
  int64_t t0 = wk_now_us();
  submit(m, &stuck, 1);
  wait_running(1);
  assert_int_equal(req_wait(&stuck, 5000), 504);
  assert_true(stuck.answered_us - t0 >= 900000 && stuck.answered_us - t0 < 4000000);
  assert_non_null(strstr(stuck.body, "response timeout"));
  pthread_mutex_lock(&m->lock);
  assert_int_equal(m->abandoned, 1);
  assert_int_equal(m->workers, 1); /* a replacement took its place */
  pthread_mutex_unlock(&m->lock);
  /* the replacement is held too; let both go: the stuck one's late result is dropped */
  hold(0);
  submit(m, &next, 1);
  assert_int_equal(req_wait(&next, 5000), 200);
  for (int i = 0; i < 500; i++) {
    pthread_mutex_lock(&m->lock);
    int left = m->abandoned;
    pthread_mutex_unlock(&m->lock);
    if (left == 0) break;
    usleep(10000);
  }
  assert_int_equal(m->abandoned, 0);
  assert_int_equal(stuck.replies, 1); /* answered once: 504, never 200 */
  model_free(m);
}

static void test_scaling_up_and_down(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 5, 10);
  wk_err_t err = {{0}};
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  assert_int_equal(wk_model_scale(m, 3, 3, 1, &err), 0);
  assert_int_equal(m->workers, 3);
  assert_int_equal(wk_model_scale(m, 1, 2, 1, &err), 0);
  assert_int_equal(m->workers, 1);
  assert_int_equal(wk_model_scale(m, 2, 1, 1, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "min_worker"));
  cap_t r;
  req_init(&r);
  submit(m, &r, 1);
  assert_int_equal(req_wait(&r, 5000), 200);
  /* no worker: answered 503 at once, not queued */
  assert_int_equal(wk_model_scale(m, 0, 0, 1, &err), 0);
  cap_t none;
  req_init(&none);
  submit(m, &none, 1);
  assert_int_equal(req_wait(&none, 1000), 503);
  assert_non_null(strstr(none.body, "no worker"));
  model_free(m);
}

static void test_drain_waits_for_queued_jobs(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 30, 10);
  wk_err_t err = {{0}};
  g_fake.slow_ms = 50;
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  cap_t r[4];
  for (int i = 0; i < 4; i++) {
    req_init(&r[i]);
    submit(m, &r[i], 1);
  }
  assert_int_equal(wk_model_drain(m, wk_now_us() + 10 * 1000000), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(r[i].status, 200);
  model_free(m);
}

static void test_stop_answers_queued_jobs_503_and_running_ones_finish(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 30, 10);
  wk_err_t err = {{0}};
  g_fake.slow_ms = 300;
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  cap_t run, queued;
  req_init(&run);
  req_init(&queued);
  submit(m, &run, 1);
  wait_running(1);
  submit(m, &queued, 1);
  model_free(m); /* stops: the queued job is refused, the running one completes */
  assert_int_equal(queued.status, 503);
  assert_non_null(strstr(queued.body, "unloaded"));
  assert_int_equal(run.status, 200);
}

static void test_python_workers_warm_up_each_and_run_batches(void **state) {
  (void)state;
  wk_model_t *m = model_new(2, 0, 30, 10);
  m->h = &fake_python;
  atomic_store(&g_py_runs, 0);
  atomic_store(&g_py_warm_mask, 0);
  atomic_store(&g_py_exits, 0);
  wk_err_t err = {{0}};
  assert_int_equal(wk__pool_start(m, 3, &err), 0);
  for (int i = 0; i < 500 && atomic_load(&g_py_warm_mask) != 7; i++) usleep(1000);
  assert_int_equal(atomic_load(&g_py_warm_mask), 7); /* workers 0, 1, 2, before any job */
  cap_t r;
  req_init(&r);
  submit(m, &r, 1);
  assert_int_equal(req_wait(&r, 5000), 200);
  assert_int_equal(atomic_load(&g_py_runs), 1);
  model_free(m);
  assert_int_equal(atomic_load(&g_py_exits), 3); /* each worker handed its state back */
}

/* An explanation runs alone, never batched with predictions; a kind without explanations
 * answers 501 without running anything. */
static void test_explanations_run_alone_or_get_501(void **state) {
  (void)state;
  wk_model_t *m = model_new(8, 100, 30, 100);
  m->h = &fake_python;
  wk_err_t err = {{0}};
  m->target_workers = 1;
  cap_t r[3];
  for (int i = 0; i < 3; i++) req_init(&r[i]);
  submit(m, &r[0], 1);
  wk__job_t *x = calloc(1, sizeof *x);
  x->sink = &r[1].sink;
  x->explain = 1;
  x->target = 1;
  wk__job_enqueue(m, x);
  submit(m, &r[2], 1);
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  for (int i = 0; i < 3; i++) assert_int_equal(req_wait(&r[i], 5000), 200);
  assert_string_equal(r[1].body, "{\"batch\": 1}");
  assert_string_equal(r[0].body, "{\"batch\": 2}");
  model_free(m);

  m = model_new(1, 0, 30, 10);
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  cap_t e;
  req_init(&e);
  x = calloc(1, sizeof *x);
  x->sink = &e.sink;
  x->explain = 1;
  wk__job_enqueue(m, x);
  assert_int_equal(req_wait(&e, 5000), 501);
  assert_string_equal(e.type, "NotImplementedException");
  assert_non_null(strstr(e.body, "fake models have no explanations"));
  assert_int_equal(g_fake.batches, 0);
  model_free(m);
}

/* The worker loop records every kind's queue time, run time and batch size. */
static void test_metrics_are_recorded_around_each_batch(void **state) {
  (void)state;
  wk_model_t *m = model_new(4, 200, 30, 100);
  m->h = &fake_python;
  wk_err_t err = {{0}};
  g_fake.slow_ms = 20;
  m->target_workers = 1;
  cap_t r[4];
  for (int i = 0; i < 4; i++) {
    req_init(&r[i]);
    submit(m, &r[i], 1);
  }
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  for (int i = 0; i < 4; i++) assert_int_equal(req_wait(&r[i], 5000), 200);
  /* The handler answers inside run(); the worker records the batch after run() returns,
   * so the answers can arrive first (the ASan build showed it): wait for the record. */
  for (int i = 0; i < 5000 && atomic_load(&m->batch_hist.n) == 0; i++) usleep(1000);
  assert_int_equal(atomic_load(&m->queue_hist.n), 4);
  assert_int_equal(atomic_load(&m->inference_hist.n), 4);
  assert_int_equal(atomic_load(&m->batch_hist.n), 1);
  assert_int_equal(atomic_load(&m->batch_hist.sum), 4);
  assert_true(atomic_load(&m->inference_us_total) >= 4 * 20000); /* each counts the run */
  assert_int_equal(atomic_load(&m->req_ok), 4);
  wk_buf_t b = WK_BUF_INIT;
  wk_models_metrics(&m, 1, &b);
  assert_non_null(strstr(b.data, "wick_queue_seconds_count{model_name=\"m\",model_version=\"1.0\"} 4"));
  assert_non_null(strstr(b.data, "wick_batch_size_bucket{model_name=\"m\",model_version=\"1.0\",le=\"4\"} 1"));
  wk_buf_destroy(&b);
  model_free(m);
}

static void test_a_job_that_times_out_in_the_queue_never_runs(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 2, 10);
  wk_err_t err = {{0}};
  g_fake.slow_ms = 1000; /* the only worker is busy past the next job's deadline */
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  cap_t first, waiting;
  req_init(&first);
  req_init(&waiting);
  submit(m, &first, 1);
  wait_running(1);
  submit_due(m, &waiting, 1, 300000); /* due in 0.3 s, while `first` runs for 1 s */
  assert_int_equal(req_wait(&waiting, 5000), 504);
  assert_non_null(strstr(waiting.body, "response timeout"));
  assert_int_equal(req_wait(&first, 5000), 200); /* within its own 2 s */
  assert_int_equal(g_fake.batches, 1); /* the queued job was answered, not run */
  assert_int_equal(waiting.replies, 1);
  model_free(m);
}

static void test_queued_jobs_whose_client_went_never_run(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 10, 10);
  wk_err_t err = {{0}};
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  hold(1);
  cap_t first, r[6];
  req_init(&first);
  submit(m, &first, 1);
  wait_running(1);
  for (int i = 0; i < 6; i++) {
    req_init(&r[i]);
    submit(m, &r[i], 1);
  }
  for (int i = 0; i < 6; i += 2) atomic_store(&r[i].gone, 1); /* 0, 2, 4 leave */
  hold(0);
  assert_int_equal(req_wait(&first, 5000), 200);
  for (int i = 0; i < 6; i++) {
    assert_int_equal(req_wait(&r[i], 5000), i % 2 ? 200 : 499);
    assert_int_equal(r[i].replies, 1);
  }
  assert_non_null(strstr(r[0].body, "closed the connection"));
  assert_int_equal(g_fake.batches, 1 + 3); /* batch size 1: the first and the three kept */
  assert_int_equal(atomic_load(&m->req_cancelled), 3);
  assert_int_equal(atomic_load(&m->req_client_err), 0);

  /* while a batch runs, the monitor takes a gone job out of the queue within its sweep */
  hold(1);
  cap_t busy, left;
  req_init(&busy);
  req_init(&left);
  submit(m, &busy, 1);
  wait_running(1);
  submit(m, &left, 1);
  atomic_store(&left.gone, 1);
  assert_int_equal(req_wait(&left, 3000), 499);
  assert_int_equal(busy.status, 0); /* still running */
  hold(0);
  assert_int_equal(req_wait(&busy, 5000), 200);
  assert_int_equal(atomic_load(&m->req_cancelled), 4);
  model_free(m);
}

/* [11] part 1: a batch holds at most max_batch_elements input elements (a job past it waits
 * for the next batch; a lone job bigger than the bound still runs, alone). */
static void test_batches_stop_at_max_batch_elements(void **state) {
  (void)state;
  wk_model_t *m = model_new(8, 200, 10, 20);
  m->max_batch_elements = 10;
  wk_err_t err = {{0}};
  assert_int_equal(wk__pool_start(m, 1, &err), 0);
  hold(1);
  cap_t first, r[5];
  req_init(&first);
  submit(m, &first, 1);
  wait_running(1);
  int64_t elems[5] = {4, 4, 4, 4, 30};
  for (int i = 0; i < 5; i++) {
    req_init(&r[i]);
    wk__job_t *j = calloc(1, sizeof *j);
    j->sink = &r[i].sink;
    j->target = 1;
    j->elements = elems[i];
    j->enqueued_us = wk_now_us();
    j->deadline_us = j->enqueued_us + 10 * 1000000LL;
    wk__pool_submit(m, j);
  }
  hold(0);
  for (int i = 0; i < 5; i++) assert_int_equal(req_wait(&r[i], 5000), 200);
  assert_int_equal(g_fake.batches, 4); /* first; 4+4; 4+4; 30 alone */
  assert_int_equal(g_fake.sizes[1], 2);
  assert_int_equal(g_fake.sizes[2], 2);
  assert_int_equal(g_fake.sizes[3], 1);
  model_free(m);
}

static void test_synchronous_scale_down_waits_for_the_running_batch(void **state) {
  (void)state;
  wk_model_t *m = model_new(1, 0, 30, 10);
  wk_err_t err = {{0}};
  g_fake.slow_ms = 300;
  assert_int_equal(wk__pool_start(m, 2, &err), 0);
  cap_t r;
  req_init(&r);
  submit(m, &r, 1);
  wait_running(1);
  assert_int_equal(wk_model_scale(m, 0, 0, 1, &err), 0);
  assert_int_equal(r.status, 200); /* answered before the worker retired */
  assert_int_equal(m->workers, 0);
  model_free(m);
}

int main(void) {
  wk_log_set_level(WK_LOG_ERROR);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batches_hold_one_key_and_at_most_batch_size),
      cmocka_unit_test(test_a_lone_job_waits_max_batch_delay_then_runs),
      cmocka_unit_test(test_full_queue_is_503_with_retry_after),
      cmocka_unit_test(test_timeout_is_504_and_the_stuck_worker_is_replaced),
      cmocka_unit_test(test_scaling_up_and_down),
      cmocka_unit_test(test_drain_waits_for_queued_jobs),
      cmocka_unit_test(test_stop_answers_queued_jobs_503_and_running_ones_finish),
      cmocka_unit_test(test_python_workers_warm_up_each_and_run_batches),
      cmocka_unit_test(test_a_job_that_times_out_in_the_queue_never_runs),
      cmocka_unit_test(test_synchronous_scale_down_waits_for_the_running_batch),
      cmocka_unit_test(test_queued_jobs_whose_client_went_never_run),
      cmocka_unit_test(test_batches_stop_at_max_batch_elements),
      cmocka_unit_test(test_explanations_run_alone_or_get_501),
      cmocka_unit_test(test_metrics_are_recorded_around_each_batch),
      cmocka_unit_test(test_a_dying_worker_rests_longer_each_time_then_the_model_fails),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
