/* Unit tests for serve/registry: ordering, default versions, set-default, TorchServe's
 * messages, and removal that waits for the references requests hold. The models are
 * fakes defined here, so the test does not link model.c or libtorch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "serve/registry.h"

/* ---- a fake model: only what the registry uses ---- */

struct wk_model_s {
  char name[64];
  char version[16];
};

static atomic_int freed;

const char *wk_model_name(const wk_model_t *m) {
  return m->name;
}
const char *wk_model_version(const wk_model_t *m) {
  return m->version;
}
void wk_model_free(wk_model_t *m) {
  atomic_fetch_add(&freed, 1);
  free(m);
}

static wk_model_t *fake(const char *name, const char *version) {
  wk_model_t *m = calloc(1, sizeof *m);
  snprintf(m->name, sizeof m->name, "%s", name);
  snprintf(m->version, sizeof m->version, "%s", version);
  return m;
}

static void add(wk_registry_t *r, const char *name, const char *version) {
  wk_err_t err = {{0}};
  if (wk_registry_add(r, fake(name, version), &err) != 0) fail_msg("add: %s", err.msg);
}

/* The default version of name, or "" (releases the reference at once). */
static const char *default_of(wk_registry_t *r, const char *name) {
  static char v[16];
  wk_model_t *m = wk_registry_acquire(r, name, NULL);
  if (m == NULL) return "";
  snprintf(v, sizeof v, "%s", wk_model_version(m));
  wk_registry_release(r, m);
  return v;
}

typedef struct listing_s {
  char text[512];
} listing_t;

static void collect(wk_model_t *const *models, const int *is_default, size_t n, void *ud) {
  listing_t *l = ud;
  l->text[0] = '\0';
  for (size_t i = 0; i < n; i++) {
    size_t len = strlen(l->text);
    snprintf(l->text + len, sizeof l->text - len, "%s%s/%s%s", i ? " " : "", models[i]->name,
             models[i]->version, is_default[i] ? "*" : "");
  }
}

static void test_order_and_defaults(void **state) {
  (void)state;
  wk_registry_t *r = wk_registry_new();
  add(r, "b", "1.0");
  add(r, "a", "2.0");
  add(r, "a", "1.0");
  add(r, "c", "1.0");
  listing_t l;
  wk_registry_visit(r, collect, &l);
  assert_string_equal(l.text, "a/1.0 a/2.0* b/1.0* c/1.0*"); /* first version added is default */
  assert_string_equal(default_of(r, "a"), "2.0");

  wk_err_t err = {{0}};
  wk_model_t *dup = fake("a", "1.0");
  assert_int_equal(wk_registry_add(r, dup, &err), WK_EEXIST);
  assert_string_equal(err.msg, "Model version 1.0 is already registered for model a");
  free(dup);

  assert_int_equal(wk_registry_set_default(r, "a", "1.0", &err), 0);
  assert_string_equal(default_of(r, "a"), "1.0");
  wk_registry_visit(r, collect, &l);
  assert_string_equal(l.text, "a/1.0* a/2.0 b/1.0* c/1.0*");
  assert_int_equal(wk_registry_set_default(r, "a", "3.0", &err), WK_ENOTFOUND);
  assert_string_equal(err.msg, "Model version 3.0 does not exist for model a");
  assert_int_equal(wk_registry_set_default(r, "zz", "1.0", &err), WK_ENOTFOUND);
  assert_string_equal(err.msg, "Model not found: zz");

  assert_non_null(wk_registry_acquire(r, "a", "2.0"));
  wk_registry_release(r, wk_registry_acquire(r, "a", "2.0"));
  wk_model_t *a2 = wk_registry_acquire(r, "a", "2.0");
  wk_registry_release(r, a2);
  wk_registry_release(r, a2); /* the first acquire above */
  assert_null(wk_registry_acquire(r, "a", "9.9"));
  assert_null(wk_registry_acquire(r, "ab", NULL));
  assert_int_equal(wk_registry_has_name(r, "b"), 1);
  assert_int_equal(wk_registry_has_name(r, "ab"), 0);
  atomic_store(&freed, 0);
  wk_registry_free(r);
  assert_int_equal(atomic_load(&freed), 4);
}

static void test_remove_rules(void **state) {
  (void)state;
  wk_registry_t *r = wk_registry_new();
  add(r, "m", "1.0");
  add(r, "m", "2.0");
  add(r, "n", "1.0");
  wk_err_t err = {{0}};
  wk_model_t *out = NULL;
  assert_int_equal(wk_registry_remove(r, "x", NULL, &out, &err), WK_ENOTFOUND);
  assert_string_equal(err.msg, "Model not found: x");
  assert_int_equal(wk_registry_remove(r, "m", "3.0", &out, &err), WK_ENOTFOUND);
  assert_string_equal(err.msg, "Model version: 3.0 does not exist for model: m");
  /* the default version goes last, as in TorchServe */
  assert_int_equal(wk_registry_remove(r, "m", NULL, &out, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "Cannot remove default version for model m"));
  assert_int_equal(wk_registry_remove(r, "m", "1.0", &out, &err), WK_EINVAL);
  assert_null(out);

  assert_int_equal(wk_registry_remove(r, "m", "2.0", &out, &err), 0);
  assert_string_equal(out->version, "2.0");
  wk_model_free(out);
  assert_null(wk_registry_acquire(r, "m", "2.0"));
  assert_string_equal(default_of(r, "m"), "1.0");
  assert_int_equal(wk_registry_remove(r, "m", NULL, &out, &err), 0);
  assert_string_equal(out->version, "1.0");
  wk_model_free(out);
  assert_int_equal(wk_registry_has_name(r, "m"), 0);

  /* a name registered again after removal starts with a new default */
  add(r, "m", "5.0");
  assert_string_equal(default_of(r, "m"), "5.0");
  wk_registry_free(r);
}

typedef struct remover_s {
  wk_registry_t *r;
  atomic_int done;
  wk_model_t *out;
} remover_t;

static void *remove_thread(void *arg) {
  remover_t *rm = arg;
  wk_err_t err = {{0}};
  if (wk_registry_remove(rm->r, "m", NULL, &rm->out, &err) != 0) fail_msg("remove: %s", err.msg);
  atomic_store(&rm->done, 1);
  return NULL;
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

static void test_remove_waits_for_references(void **state) {
  (void)state;
  wk_registry_t *r = wk_registry_new();
  add(r, "m", "1.0");
  wk_model_t *held = wk_registry_acquire(r, "m", NULL);
  assert_non_null(held);
  remover_t rm = {.r = r};
  atomic_init(&rm.done, 0);
  pthread_t t;
  pthread_create(&t, NULL, remove_thread, &rm);
  /* the entry disappears at once, but removal waits for the reference */
  for (int i = 0; i < 500 && wk_registry_has_name(r, "m"); i++)
    sleep_ms(2);
  assert_int_equal(wk_registry_has_name(r, "m"), 0);
  assert_null(wk_registry_acquire(r, "m", NULL));
  sleep_ms(50);
  assert_int_equal(atomic_load(&rm.done), 0);
  assert_string_equal(held->name, "m"); /* still valid */
  wk_registry_release(r, held);
  pthread_join(t, NULL);
  assert_int_equal(atomic_load(&rm.done), 1);
  assert_ptr_equal(rm.out, held);
  wk_model_free(rm.out);
  wk_registry_free(r);
}

/* Readers acquire and release in a loop while the model is removed and added again. */
typedef struct hammer_s {
  wk_registry_t *r;
  atomic_int stop;
  atomic_long hits;
} hammer_t;

static void *hammer_thread(void *arg) {
  hammer_t *h = arg;
  while (!atomic_load(&h->stop)) {
    wk_model_t *m = wk_registry_acquire(h->r, "m", NULL);
    if (m == NULL) continue;
    if (strcmp(m->name, "m") != 0) abort();
    atomic_fetch_add(&h->hits, 1);
    wk_registry_release(h->r, m);
  }
  return NULL;
}

static void test_remove_under_load(void **state) {
  (void)state;
  hammer_t h = {.r = wk_registry_new()};
  atomic_init(&h.stop, 0);
  atomic_init(&h.hits, 0);
  pthread_t t[4];
  for (int i = 0; i < 4; i++)
    pthread_create(&t[i], NULL, hammer_thread, &h);
  for (int round = 0; round < 200; round++) {
    add(h.r, "m", "1.0");
    wk_model_t *out = NULL;
    wk_err_t err = {{0}};
    if (wk_registry_remove(h.r, "m", NULL, &out, &err) != 0) fail_msg("remove: %s", err.msg);
    wk_model_free(out);
  }
  atomic_store(&h.stop, 1);
  for (int i = 0; i < 4; i++)
    pthread_join(t[i], NULL);
  wk_registry_free(h.r);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_order_and_defaults),
      cmocka_unit_test(test_remove_rules),
      cmocka_unit_test(test_remove_waits_for_references),
      cmocka_unit_test(test_remove_under_load),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
