/* Unit tests for serve/config's TS_<KEY> environment variables: applied only with
 * enable_envvars_config=true, TorchServe's names (TS_TOKEN_EXPIRATION_TIME_MIN), the
 * TS_ALLOWED_URLS guard, and bad values named with their variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "serve/config.h"

static const char *const *g_env; /* NAME, VALUE, ..., NULL */

static char *fake_getenv(const char *name) {
  for (const char *const *e = g_env; e && *e; e += 2)
    if (strcmp(e[0], name) == 0) return (char *)e[1];
  return NULL;
}

static void test_off_by_default(void **state) {
  (void)state;
  static const char *env[] = {"TS_JOB_QUEUE_SIZE", "5", NULL};
  g_env = env;
  wk_config_t c;
  wk_err_t err;
  wk_config_init(&c);
  assert_int_equal(wk_config_apply_env(&c, fake_getenv, &err), 0);
  assert_int_not_equal(c.job_queue_size, 5);
  wk_config_set(&c, "enable_envvars_config", "false", &err);
  assert_int_equal(wk_config_apply_env(&c, fake_getenv, &err), 0);
  assert_int_not_equal(c.job_queue_size, 5);
  wk_config_destroy(&c);
}

static void test_applied_when_enabled(void **state) {
  (void)state;
  static const char *env[] = {"TS_JOB_QUEUE_SIZE",
                              "5",
                              "TS_INFERENCE_ADDRESS",
                              "http://127.0.0.1:9999",
                              "TS_TOKEN_EXPIRATION_TIME_MIN",
                              "5",
                              "TS_DISABLE_TOKEN_AUTHORIZATION",
                              "true",
                              "TS_ALLOWED_URLS",
                              "https://.*",
                              "TS_NOT_A_KEY",
                              "x",
                              NULL};
  g_env = env;
  wk_config_t c;
  wk_err_t err;
  wk_config_init(&c);
  wk_config_set(&c, "enable_envvars_config", "True", &err);
  wk_config_set(&c, "job_queue_size", "7", &err); /* the environment wins */
  assert_int_equal(wk_config_apply_env(&c, fake_getenv, &err), 0);
  assert_int_equal(c.job_queue_size, 5);
  assert_string_equal(c.inference_address, "http://127.0.0.1:9999");
  assert_string_equal(wk_props_get(&c.props, "token_expiration_min"), "5");
  assert_true(wk_config_bool(&c, "disable_token_authorization", 0));
  assert_null(wk_props_get(&c.props, "allowed_urls"));
  assert_null(wk_props_get(&c.props, "not_a_key"));
  wk_config_set(&c, "use_env_allowed_urls", "true", &err);
  assert_int_equal(wk_config_apply_env(&c, fake_getenv, &err), 0);
  assert_string_equal(wk_props_get(&c.props, "allowed_urls"), "https://.*");
  wk_config_destroy(&c);
}

static void test_bad_value_names_the_variable(void **state) {
  (void)state;
  static const char *env[] = {"TS_JOB_QUEUE_SIZE", "-3", NULL};
  g_env = env;
  wk_config_t c;
  wk_err_t err;
  wk_config_init(&c);
  wk_config_set(&c, "enable_envvars_config", "true", &err);
  assert_int_equal(wk_config_apply_env(&c, fake_getenv, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "TS_JOB_QUEUE_SIZE"));
  assert_non_null(strstr(err.msg, "job_queue_size"));
  wk_config_destroy(&c);
}

static void test_bool(void **state) {
  (void)state;
  wk_config_t c;
  wk_err_t err;
  wk_config_init(&c);
  assert_int_equal(wk_config_bool(&c, "x", 1), 1);
  assert_int_equal(wk_config_bool(&c, "x", 0), 0);
  wk_config_set(&c, "x", " TRUE ", &err);
  assert_int_equal(wk_config_bool(&c, "x", 0), 1);
  wk_config_set(&c, "x", "yes", &err);
  assert_int_equal(wk_config_bool(&c, "x", 1), 0);
  wk_config_destroy(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_off_by_default),
      cmocka_unit_test(test_applied_when_enabled),
      cmocka_unit_test(test_bad_value_names_the_variable),
      cmocka_unit_test(test_bool),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
