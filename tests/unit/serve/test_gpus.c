/* Unit tests for serve/gpus: deviceType and deviceIds to the workers' devices. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "serve/gpus.h"
#include "serve/model_internal.h"

static wk_model_t model(const char *device_type, const int *ids, int n) {
  wk_model_t m;
  memset(&m, 0, sizeof m);
  m.name = "m";
  m.config.device_type = (char *)device_type;
  for (int i = 0; i < n; i++) m.config.device_ids[i] = ids[i];
  m.config.n_device_ids = n;
  return m;
}

static void test_cpu_and_unknown_types(void **state) {
  (void)state;
  wk__gpus_t g;
  wk_err_t err;
  wk_model_t m = model("cpu", (int[]){0, 1}, 2);
  assert_int_equal(wk__gpus_assign(&m, &g, &err), 0);
  assert_int_equal(g.n, 0); /* deviceType cpu wins over deviceIds */
  assert_int_equal(wk__gpus_of(&g, 3), -1);
  m = model("tpu", NULL, 0);
  assert_int_equal(wk__gpus_assign(&m, &g, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "expected cpu or gpu, got 'tpu'"));
}

static void test_device_ids_round_robin(void **state) {
  (void)state;
  if (wk__gpus_count() > 0) skip(); /* ids are checked against a real machine's GPUs there */
  wk__gpus_t g;
  wk_err_t err;
  wk_model_t m = model("gpu", (int[]){1, 0, 1}, 3);
  assert_int_equal(wk__gpus_assign(&m, &g, &err), 0);
  assert_int_equal(g.n, 3);
  int want[] = {1, 0, 1, 1, 0, 1};
  for (int i = 0; i < 6; i++) assert_int_equal(wk__gpus_of(&g, i), want[i]);
  /* gpu with no GPU found and no ids: the CPU */
  m = model("gpu", NULL, 0);
  assert_int_equal(wk__gpus_assign(&m, &g, &err), 0);
  assert_int_equal(g.n, 0);
  /* no deviceType and no GPU: the CPU, even with ids */
  m = model(NULL, (int[]){0}, 1);
  assert_int_equal(wk__gpus_assign(&m, &g, &err), 0);
  assert_int_equal(g.n, 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_cpu_and_unknown_types),
      cmocka_unit_test(test_device_ids_round_robin),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
