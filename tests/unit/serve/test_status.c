/* Unit tests for serve/status.c: the latency quantiles of a window, the ring of samples
 * (bounded, oldest first), answers by status, the recent errors (newest first, bounded,
 * cut) and a worker's crash, on a model struct with a fake handler table: no workers, no
 * HTTP, no libtorch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/clock.h"
#include "serve/model_internal.h"
#include "serve/status.h"

static int fake_device(const wk_model_t *m, int index) {
  (void)m;
  return index == 1 ? 3 : -1; /* worker 1 on cuda:3, the rest on the CPU */
}

static const wk_handler_t fake = {.name = "fake", .flags = WK__HF_NATIVE, .device = fake_device};

static wk_model_t *model_new(void) {
  wk_model_t *m = calloc(1, sizeof *m);
  m->h = &fake;
  m->name = strdup("m<1>");
  m->version = strdup("2.0");
  m->url = strdup("m.mar");
  m->handler = strdup("fake");
  m->queue_cap = 7;
  m->batch_size = 4;
  pthread_mutex_init(&m->lock, NULL);
  assert_int_equal(wk__status_init(m, 1000), 0);
  return m;
}

static void model_free(wk_model_t *m) {
  wk__status_free(m);
  pthread_mutex_destroy(&m->lock);
  free(m->name);
  free(m->version);
  free(m->url);
  free(m->handler);
  free(m);
}

/* Counts an answer of status for a job that arrived us ago, as the reply path does. */
static void answer(wk_model_t *m, int status, int64_t us) {
  wk__job_t j = {0};
  j.enqueued_us = wk_now_us() - us;
  if (status < 400) atomic_fetch_add(&m->req_ok, 1);
  else if (status < 500) atomic_fetch_add(&m->req_client_err, 1);
  else atomic_fetch_add(&m->req_server_err, 1);
  wk__status_answered(m, &j, status);
}

static json_t *status_of(wk_model_t *m) {
  json_t *o = wk_status_model(m, 1);
  assert_non_null(o);
  return o;
}

static double num(json_t *o, const char *key) {
  json_t *v = json_object_get(o, key);
  assert_true(json_is_number(v));
  return json_number_value(v);
}

static void test_window_quantiles_and_statuses(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  int64_t t0 = wk_now_us(); /* just after the window started */
  /* 98 answers around 2 ms and 2 around 400 ms: p50 ~2 ms, p99 in the slow ones */
  for (int i = 0; i < 98; i++) answer(m, 200, 2000);
  answer(m, 503, 400000);
  answer(m, 400, 400000);
  atomic_fetch_add(&m->batch_hist.n, 25);
  atomic_fetch_add(&m->batch_hist.sum, 100);
  pthread_mutex_lock(&m->lock);
  wk__status_tick(m, t0 + 500000); /* not due yet: no sample */
  wk__status_tick(m, t0 + 2000000);
  pthread_mutex_unlock(&m->lock);
  json_t *o = status_of(m);
  json_t *samples = json_object_get(o, "samples");
  assert_int_equal(json_array_size(samples), 1);
  json_t *s = json_array_get(samples, 0);
  assert_int_equal((int)num(s, "requests"), 100);
  assert_int_equal((int)num(s, "ok"), 98);
  assert_int_equal((int)num(s, "client_errors"), 1);
  assert_int_equal((int)num(s, "server_errors"), 1);
  assert_true(num(s, "rps") > 49.9 && num(s, "rps") < 50.1); /* 100 over 2 s */
  double p50 = num(s, "p50_ms"), p99 = num(s, "p99_ms");
  assert_true(p50 > 1.6 && p50 < 2.6);     /* within its bucket (~19% wide) */
  assert_true(p99 > 250 && p99 < 520);
  assert_true(num(s, "batch_mean") == 4.0);
  assert_int_equal((int)num(s, "queue"), 0);
  json_t *by = json_object_get(o, "answers_by_status");
  assert_int_equal((int)num(by, "200"), 98);
  assert_int_equal((int)num(by, "400"), 1);
  assert_int_equal((int)num(by, "503"), 1);
  /* nothing since: the sample in progress is empty, its quantiles null */
  json_t *cur = json_object_get(o, "current");
  assert_int_equal((int)num(cur, "requests"), 0);
  assert_true(json_is_null(json_object_get(cur, "p50_ms")));
  assert_string_equal(json_string_value(json_object_get(o, "name")), "m<1>");
  assert_true(json_is_true(json_object_get(o, "default")));
  assert_int_equal((int)num(json_object_get(o, "queue"), "capacity"), 7);
  json_decref(o);
  model_free(m);
}

static void test_ring_keeps_the_newest_samples_in_order(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  int64_t t = wk_now_us();
  for (int i = 0; i < WK_STATUS_SAMPLES + 25; i++) {
    for (int k = 0; k < i % 5; k++) answer(m, 200, 100);
    t += 1000000;
    pthread_mutex_lock(&m->lock);
    m->queued = i; /* each sample records the queue at its end */
    wk__status_tick(m, t);
    pthread_mutex_unlock(&m->lock);
  }
  json_t *o = status_of(m);
  json_t *samples = json_object_get(o, "samples");
  assert_int_equal(json_array_size(samples), WK_STATUS_SAMPLES);
  for (size_t k = 0; k < WK_STATUS_SAMPLES; k++) {
    int i = (int)k + 25; /* the 25 oldest fell out */
    json_t *s = json_array_get(samples, k);
    assert_int_equal((int)num(s, "queue"), i);
    assert_int_equal((int)num(s, "requests"), i % 5);
  }
  json_decref(o);
  m->queued = 0;
  model_free(m);
}

static void test_recent_errors_newest_first_bounded_and_cut(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  char msg[64];
  for (int i = 0; i < WK_STATUS_RECENT_ERRORS + 10; i++) {
    snprintf(msg, sizeof msg, "error %d", i);
    wk__status_error(m, 400 + i % 100, msg);
  }
  wk__status_error(m, 200, "not an error");
  wk__status_error(m, 499, "a client that went is not an error");
  char big[2 * WK_STATUS_MESSAGE_MAX];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  wk_status_note_error("reg", NULL, 500, big);
  json_t *list = wk_status_recent_errors();
  assert_int_equal(json_array_size(list), WK_STATUS_RECENT_ERRORS);
  json_t *first = json_array_get(list, 0);
  assert_string_equal(json_string_value(json_object_get(first, "model")), "reg");
  assert_string_equal(json_string_value(json_object_get(first, "version")), "");
  assert_int_equal(strlen(json_string_value(json_object_get(first, "message"))), WK_STATUS_MESSAGE_MAX - 1);
  json_t *second = json_array_get(list, 1);
  snprintf(msg, sizeof msg, "error %d", WK_STATUS_RECENT_ERRORS + 9);
  assert_string_equal(json_string_value(json_object_get(second, "message")), msg);
  assert_string_equal(json_string_value(json_object_get(second, "model")), "m<1>");
  assert_string_equal(json_string_value(json_object_get(second, "version")), "2.0");
  json_decref(list);
  model_free(m);
}

static void test_worker_crash_is_counted_and_listed(void **state) {
  (void)state;
  wk_model_t *m = model_new();
  wk__worker_t w0 = {.id = WK__WORKER_ID_BASE, .model = m};
  wk__worker_t w1 = {.id = WK__WORKER_ID_BASE + 1, .model = m, .state = WK__W_BUSY, .batch_n = 3};
  w1.next = &w0;
  m->worker_list = &w1;
  m->workers = 2;
  wk__status_worker_crashed(m, 1, "its process was killed by signal 9");
  wk__status_worker_crashed(m, 1, "its process was killed by signal 9 again");
  json_t *o = status_of(m);
  json_t *workers = json_object_get(o, "workers");
  assert_int_equal(json_array_size(workers), 2);
  json_t *a = json_array_get(workers, 0), *b = json_array_get(workers, 1);
  assert_int_equal((int)num(a, "id"), WK__WORKER_ID_BASE); /* in order of id */
  assert_int_equal((int)num(a, "restarts"), 0);
  assert_string_equal(json_string_value(json_object_get(a, "device")), "cpu");
  assert_int_equal((int)num(b, "restarts"), 2);
  assert_string_equal(json_string_value(json_object_get(b, "state")), "busy");
  assert_string_equal(json_string_value(json_object_get(b, "device")), "cuda:3");
  assert_int_equal((int)num(b, "batch"), 3);
  assert_string_equal(json_string_value(json_object_get(b, "last_crash_reason")),
                      "its process was killed by signal 9 again");
  json_decref(o);
  json_t *list = wk_status_recent_errors();
  json_t *e = json_array_get(list, 0);
  assert_true(json_is_null(json_object_get(e, "status")));
  assert_non_null(strstr(json_string_value(json_object_get(e, "message")), "worker 9001"));
  json_decref(list);
  m->worker_list = NULL;
  model_free(m);
}

static void test_process(void **state) {
  (void)state;
  json_t *p = wk_status_process();
  assert_non_null(p);
  assert_true(num(p, "rss_bytes") > 0);
  assert_int_equal((int)num(p, "pid"), (int)getpid());
  assert_true(json_is_array(json_object_get(p, "gpus")));
  json_decref(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_window_quantiles_and_statuses),
      cmocka_unit_test(test_ring_keeps_the_newest_samples_in_order),
      cmocka_unit_test(test_recent_errors_newest_first_bounded_and_cut),
      cmocka_unit_test(test_worker_crash_is_counted_and_listed),
      cmocka_unit_test(test_process),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
