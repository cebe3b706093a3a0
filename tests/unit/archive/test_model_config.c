/* Unit tests for archive/model_config: model-config.yaml's typed keys, the generic tree,
 * alias limits and the YAML-to-JSON conversion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "archive/model_config.h"
#include "core/buf.h"

/* TorchServe's documented example, plus a custom handler section and wick's own. */
static const char example[] = "# TorchServe frontend parameters\n"
                              "minWorkers: 1\n"
                              "maxWorkers: 4\n"
                              "batchSize: 8\n"
                              "maxBatchDelay: 50\n"
                              "responseTimeout: 120\n"
                              "startupTimeout: 300\n"
                              "deviceType: \"gpu\"\n"
                              "deviceIds: [2, 3]\n"
                              "jobQueueSize: 1000\n"
                              "parallelType: \"pp\"\n"
                              "handler:\n"
                              "  model_path: \"model/weights\"\n"
                              "  top_k: 5\n"
                              "  labels:\n"
                              "    - cat\n"
                              "    - dog\n"
                              "wick: {runtime: native, threads: 2}\n";

static void test_torchserve_example(void **state) {
  (void)state;
  wk_model_config_t c;
  wk_err_t err;
  wk_model_config_init(&c);
  assert_int_equal(wk_model_config_parse(example, strlen(example), &c, &err), 0);
  assert_int_equal(c.min_workers, 1);
  assert_int_equal(c.max_workers, 4);
  assert_int_equal(c.batch_size, 8);
  assert_int_equal(c.max_batch_delay_ms, 50);
  assert_int_equal(c.response_timeout_s, 120);
  assert_int_equal(c.startup_timeout_s, 300);
  assert_int_equal(c.job_queue_size, 1000);
  assert_string_equal(c.device_type, "gpu");
  assert_int_equal(c.n_device_ids, 2);
  assert_int_equal(c.device_ids[0], 2);
  assert_int_equal(c.device_ids[1], 3);
  assert_string_equal(c.wick_runtime, "native");
  assert_int_equal(c.wick_threads, 2);
  /* unknown keys stay in the tree */
  const wk_yaml_t *h = wk_yaml_get(c.root, "handler");
  assert_non_null(h);
  assert_int_equal(h->kind, WK_YAML_MAP);
  assert_string_equal(wk_yaml_get(h, "model_path")->scalar, "model/weights");
  const wk_yaml_t *labels = wk_yaml_get(h, "labels");
  assert_int_equal(labels->kind, WK_YAML_SEQ);
  assert_int_equal(labels->count, 2);
  assert_string_equal(labels->items[1]->scalar, "dog");
  assert_string_equal(wk_yaml_get(c.root, "parallelType")->scalar, "pp");
  char *json = wk_yaml_to_json(h);
  assert_string_equal(
      json, "{\"model_path\":\"model/weights\",\"top_k\":5,\"labels\":[\"cat\",\"dog\"]}");
  free(json);
  wk_model_config_destroy(&c);
}

static void test_unset_keys_are_minus_one(void **state) {
  (void)state;
  wk_model_config_t c;
  wk_err_t err;
  wk_model_config_init(&c);
  const char *text = "batchSize: 4\nmaxWorkers: ~\n";
  assert_int_equal(wk_model_config_parse(text, strlen(text), &c, &err), 0);
  assert_int_equal(c.batch_size, 4);
  assert_int_equal(c.max_workers, -1);
  assert_int_equal(c.min_workers, -1);
  assert_int_equal(c.wick_threads, -1);
  assert_null(c.wick_runtime);
  assert_null(c.device_type);
  assert_int_equal(c.n_device_ids, 0);
  wk_model_config_destroy(&c);
  /* empty input and comments only: nothing set, an empty map */
  wk_model_config_init(&c);
  assert_int_equal(wk_model_config_parse("# nothing\n", 10, &c, &err), 0);
  assert_int_equal(c.root->kind, WK_YAML_MAP);
  assert_int_equal(c.root->count, 0);
  wk_model_config_destroy(&c);
}

static void expect_error(const char *text, int code, const char *needle) {
  wk_model_config_t c;
  wk_err_t err;
  wk_model_config_init(&c);
  assert_int_equal(wk_model_config_parse(text, strlen(text), &c, &err), code);
  if (strstr(err.msg, needle) == NULL) fail_msg("message '%s' lacks '%s'", err.msg, needle);
  assert_null(c.root);
  assert_int_equal(c.batch_size, -1);
}

static void test_wrong_types(void **state) {
  (void)state;
  expect_error("batchSize: big\n", WK_EINVAL, "batchSize: expected a positive integer (at most 1024), got 'big'");
  expect_error("minWorkers: 1\nbatchSize: \"8\"\n", WK_EINVAL,
               "batchSize: expected a positive integer (at most 1024), got '8' (quoted");
  expect_error("maxBatchDelay: 1.5\n", WK_EINVAL, "maxBatchDelay: expected a non-negative integer");
  expect_error("batchSize: 0\n", WK_EINVAL,
               "batchSize: expected a positive integer (at most 1024), got '0' (line 1)");
  expect_error("deviceIds: 0\n", WK_EINVAL, "deviceIds: expected a list of integers");
  expect_error("deviceIds: [0, gpu1]\n", WK_EINVAL,
               "deviceIds[1]: expected a non-negative integer");
  expect_error("deviceType: [cpu]\n", WK_EINVAL,
               "deviceType: expected a non-empty string, got a list");
  expect_error("wick: native\n", WK_EINVAL, "wick: expected a mapping");
  expect_error("wick:\n  runtime: java\n", WK_EINVAL,
               "wick.runtime: expected 'native' or 'python', got 'java' (line 2)");
  expect_error("wick:\n  threads: many\n", WK_EINVAL,
               "wick.threads: expected a non-negative integer");
  expect_error("minWorkers: 4\nmaxWorkers: 2\n", WK_EINVAL,
               "minWorkers (4) is greater than maxWorkers (2)");
  expect_error("- a\n- b\n", WK_EINVAL, "expected a mapping of settings, got a list");
  /* a file that is not a config at all is not quoted back */
  expect_error("root:x:0:0:root:/root:/bin/bash\n", WK_EINVAL, "got a single value");
  expect_error("a: [1, 2\n", WK_EFORMAT, "line ");
  expect_error("a: 1\n---\nb: 2\n", WK_EUNSUPPORTED, "one YAML document");
}

/* wick.weights: a checkpoint copied into the native module at load. */
static void test_wick_weights(void **state) {
  (void)state;
  wk_model_config_t c;
  wk_err_t err;
  wk_model_config_init(&c);
  const char *s1 = "wick:\n  weights:\n    file: ckpt/best.pt\n    association: module-hack\n"
                   "    mangle: true\n    strict: false\n";
  assert_int_equal(wk_model_config_parse(s1, strlen(s1), &c, &err), 0);
  assert_string_equal(c.wick_weights_file, "ckpt/best.pt");
  assert_string_equal(c.wick_weights_association, "module-hack");
  assert_int_equal(c.wick_weights_mangle, 1);
  assert_int_equal(c.wick_weights_strict, 0);
  wk_model_config_destroy(&c);
  const char *s2 = "wick:\n  weights: {file: w.pt}\n";
  assert_int_equal(wk_model_config_parse(s2, strlen(s2), &c, &err), 0);
  assert_string_equal(c.wick_weights_file, "w.pt");
  assert_null(c.wick_weights_association);
  assert_int_equal(c.wick_weights_mangle, -1);
  assert_int_equal(c.wick_weights_strict, -1);
  wk_model_config_destroy(&c);

  expect_error("wick:\n  weights: w.pt\n", WK_EINVAL, "wick.weights: expected a mapping");
  expect_error("wick:\n  weights:\n    strict: true\n", WK_EINVAL, "wick.weights: expected a file");
  expect_error("wick:\n  weights:\n    file: w.pt\n    mangle: maybe\n", WK_EINVAL,
               "wick.weights.mangle: expected true or false");
  expect_error("wick:\n  weights:\n    file: ../../etc/w.pt\n", WK_EUNSAFE,
               "leaves the model directory");
  expect_error("wick:\n  weights:\n    file: /etc/w.pt\n", WK_EUNSAFE,
               "leaves the model directory");
  expect_error("wick:\n  weights:\n    file: a/../../w.pt\n", WK_EUNSAFE,
               "leaves the model directory");
}

/* system: the handler_factory section (extraFiles as a string or a list, maxGPUMemory). */
static void test_system_section(void **state) {
  (void)state;
  wk_model_config_t c;
  wk_model_config_init(&c);
  wk_err_t err = {{0}};
  const char *s1 = "system:\n  extraFiles: \"src.tar.gz, more.zip,,\"\n  maxGPUMemory: 500\n";
  assert_int_equal(wk_model_config_parse(s1, strlen(s1), &c, &err), 0);
  assert_int_equal(c.n_extra_files, 2);
  assert_string_equal(c.extra_files[0], "src.tar.gz");
  assert_string_equal(c.extra_files[1], "more.zip");
  assert_true(c.max_gpu_memory_mb == 500.0);
  const char *s2 = "system:\n  extraFiles: [a.tar, b.tgz]\n  maxGPUMemory: 1.5\n";
  assert_int_equal(wk_model_config_parse(s2, strlen(s2), &c, &err), 0);
  assert_int_equal(c.n_extra_files, 2);
  assert_string_equal(c.extra_files[1], "b.tgz");
  assert_true(c.max_gpu_memory_mb == 1.5);
  const char *s3 = "minWorkers: 1\n";
  assert_int_equal(wk_model_config_parse(s3, strlen(s3), &c, &err), 0);
  assert_int_equal(c.n_extra_files, 0);
  assert_true(c.max_gpu_memory_mb == -1);
  wk_model_config_destroy(&c);
  expect_error("system: on\n", WK_EINVAL, "system: expected a mapping");
  expect_error(
      "system:\n  extraFiles: {a: 1}\n", WK_EINVAL,
      "system.extraFiles: expected a file name, a comma-separated list of names or a list, "
      "got a mapping (line 2)");
  expect_error("system:\n  extraFiles: [a.zip, [b]]\n", WK_EINVAL,
               "system.extraFiles[1]: expected a file name, got a list");
  expect_error("system:\n  maxGPUMemory: lots\n", WK_EINVAL,
               "system.maxGPUMemory: expected a positive number of megabytes, got 'lots' (line 2)");
  expect_error("system:\n  maxGPUMemory: -5\n", WK_EINVAL, "system.maxGPUMemory: expected");
  expect_error("system:\n  maxGPUMemory: 0\n", WK_EINVAL, "system.maxGPUMemory: expected");
}

static void test_alias_bomb_refused(void **state) {
  (void)state;
  const char *bomb =
      "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
      "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
      "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
      "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
      "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
      "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
      "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n"
      "h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n"
      "i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
  expect_error(bomb, WK_ETOOBIG, "more than 200000 nodes");
}

static void test_aliases_within_limits(void **state) {
  (void)state;
  const char *text = "base: &base {batchSize: 4, top_k: 3}\n"
                     "&k key: value\n"
                     "copy: *base\n"
                     "again: *k\n";
  wk_yaml_t *y = NULL;
  wk_err_t err;
  assert_int_equal(wk_yaml_parse(text, strlen(text), &y, &err), 0);
  const wk_yaml_t *copy = wk_yaml_get(y, "copy");
  assert_non_null(copy);
  assert_int_equal(copy->kind, WK_YAML_MAP);
  assert_string_equal(wk_yaml_get(copy, "top_k")->scalar, "3");
  assert_string_equal(wk_yaml_get(y, "again")->scalar, "key");
  wk_yaml_free(y);
  const char *undefined = "a: *nope\n";
  assert_int_not_equal(wk_yaml_parse(undefined, strlen(undefined), &y, &err), 0);
  assert_non_null(strstr(err.msg, "*nope"));
}

static void test_depth_limit(void **state) {
  (void)state;
  wk_buf_t b = WK_BUF_INIT;
  for (int i = 0; i < 100; i++)
    wk_buf_putc(&b, '[');
  for (int i = 0; i < 100; i++)
    wk_buf_putc(&b, ']');
  wk_yaml_t *y = NULL;
  wk_err_t err;
  assert_int_equal(wk_yaml_parse(b.data, b.len, &y, &err), WK_ETOOBIG);
  assert_non_null(strstr(err.msg, "deeper than"));
  wk_buf_destroy(&b);
}

static void expect_json(const char *yaml, const char *json) {
  wk_yaml_t *y = NULL;
  wk_err_t err;
  if (wk_yaml_parse(yaml, strlen(yaml), &y, &err) != 0) fail_msg("%s: %s", yaml, err.msg);
  char *got = wk_yaml_to_json(y);
  assert_non_null(got);
  if (strcmp(got, json) != 0) fail_msg("%s gave %s, expected %s", yaml, got, json);
  free(got);
  wk_yaml_free(y);
}

static void test_to_json_plain_vs_quoted(void **state) {
  (void)state;
  expect_json("a: 1\nb: '1'\nc: \"1\"\n", "{\"a\":1,\"b\":\"1\",\"c\":\"1\"}");
  expect_json("[yes, No, ON, off, true, 'yes', \"false\"]",
              "[true,false,true,false,true,\"yes\",\"false\"]");
  expect_json("[~, null, NULL, 'null', \"~\"]", "[null,null,null,\"null\",\"~\"]");
  expect_json("a:\nb: \"\"\n", "{\"a\":null,\"b\":\"\"}");
  /* YAML 1.1 ints: hex, octal, binary, underscores, sexagesimal */
  expect_json("[0x1F, 017, 0b101, 1_000, -42, +7, 1:30, 09]", "[31,15,5,1000,-42,7,90,\"09\"]");
  /* floats as PyYAML reads them: 1e3 has no sign in its exponent and stays a string */
  expect_json("[1.5, -0.25, 1.0e+3, .5, 1e3, .inf, 1.]",
              "[1.5,-0.25,1000.0,0.5,\"1e3\",\".inf\",1.0]");
  expect_json("- !!str 5\n- !!int \"6\"\n- |\n  7\n", "[\"5\",6,\"7\\n\"]");
  expect_json("big: 123456789012345678901234567890", "{\"big\":123456789012345678901234567890}");
  expect_json("s: \"tab\\there \\\"q\\\"\"", "{\"s\":\"tab\\there \\\"q\\\"\"}");
  /* a repeated key: the last value wins, as in PyYAML */
  expect_json("k: 1\nj: 2\nk: 3\n", "{\"j\":2,\"k\":3}");
}

static void test_scalar_readers(void **state) {
  (void)state;
  wk_yaml_t *y = NULL;
  wk_err_t err;
  const char *text = "i: 0x10\nf: 2.5\nb: Off\nq: '3'\nh: 99999999999999999999\n";
  assert_int_equal(wk_yaml_parse(text, strlen(text), &y, &err), 0);
  long long i = 0;
  double d = 0;
  int flag = 1;
  assert_int_equal(wk_yaml_as_int(wk_yaml_get(y, "i"), &i), 0);
  assert_int_equal(i, 16);
  assert_int_equal(wk_yaml_as_double(wk_yaml_get(y, "f"), &d), 0);
  assert_true(d == 2.5);
  assert_int_equal(wk_yaml_as_bool(wk_yaml_get(y, "b"), &flag), 0);
  assert_int_equal(flag, 0);
  assert_int_equal(wk_yaml_as_int(wk_yaml_get(y, "q"), &i), WK_EINVAL);
  assert_int_equal(wk_yaml_as_int(wk_yaml_get(y, "h"), &i), WK_ETOOBIG);
  assert_true(wk_yaml_is_null(wk_yaml_get(y, "absent")));
  assert_int_equal(wk_yaml_get(y, "q")->plain, 0);
  assert_int_equal(wk_yaml_get(y, "f")->line, 2);
  wk_yaml_free(y);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_torchserve_example),
      cmocka_unit_test(test_unset_keys_are_minus_one),
      cmocka_unit_test(test_wrong_types),
      cmocka_unit_test(test_system_section),
      cmocka_unit_test(test_wick_weights),
      cmocka_unit_test(test_alias_bomb_refused),
      cmocka_unit_test(test_aliases_within_limits),
      cmocka_unit_test(test_depth_limit),
      cmocka_unit_test(test_to_json_plain_vs_quoted),
      cmocka_unit_test(test_scalar_readers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
