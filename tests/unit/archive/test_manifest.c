/* Unit tests for archive/manifest: torch-model-archiver's MANIFEST.json read and written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "archive/manifest.h"
#include "core/limits.h"

/* As torch-model-archiver 0.9 writes it for an eager model. */
static const char real_manifest[] = "{\n"
                                    "  \"createdOn\": \"12/03/2024 10:41:07\",\n"
                                    "  \"runtime\": \"python\",\n"
                                    "  \"model\": {\n"
                                    "    \"modelName\": \"mnist\",\n"
                                    "    \"serializedFile\": \"mnist_cnn.pt\",\n"
                                    "    \"handler\": \"mnist_handler.py\",\n"
                                    "    \"modelFile\": \"mnist.py\",\n"
                                    "    \"modelVersion\": \"1.0\",\n"
                                    "    \"extraFiles\": \"index_to_name.json,labels.txt\",\n"
                                    "    \"configFile\": \"model-config.yaml\"\n"
                                    "  },\n"
                                    "  \"archiverVersion\": \"0.9.0\"\n"
                                    "}\n";

static void test_parse_real_manifest(void **state) {
  (void)state;
  wk_manifest_t m;
  wk_err_t err;
  wk_manifest_init(&m);
  assert_int_equal(wk_manifest_parse(real_manifest, strlen(real_manifest), &m, &err), 0);
  assert_string_equal(m.model_name, "mnist");
  assert_string_equal(m.serialized_file, "mnist_cnn.pt");
  assert_string_equal(m.handler, "mnist_handler.py");
  assert_string_equal(m.model_file, "mnist.py");
  assert_string_equal(m.model_version, "1.0");
  assert_string_equal(m.extra_files, "index_to_name.json,labels.txt");
  assert_string_equal(m.config_file, "model-config.yaml");
  assert_string_equal(m.runtime, "python");
  assert_string_equal(m.archiver_version, "0.9.0");
  assert_string_equal(m.created_on, "12/03/2024 10:41:07");
  assert_null(m.requirements_file);
  wk_manifest_destroy(&m);
  assert_null(m.model_name);
}

static void test_round_trip(void **state) {
  (void)state;
  wk_manifest_t m, back;
  wk_err_t err;
  wk_manifest_init(&m);
  wk_manifest_init(&back);
  m.model_name = strdup("fashion");
  m.model_version = strdup("2.0");
  m.serialized_file = strdup("fashion.pt");
  m.handler = strdup("image_classifier");
  m.runtime = strdup("python");
  m.requirements_file = strdup("req \"quoted\".txt");
  m.model_class = strdup("autoencoder.AutoEncoder");
  wk_buf_t out = WK_BUF_INIT;
  assert_int_equal(wk_manifest_write(&m, &out), 0);
  /* pretty, 2-space indent, absent fields left out, archiver's order */
  assert_non_null(strstr(out.data, "\n  \"model\": {\n    \"modelName\": \"fashion\""));
  assert_null(strstr(out.data, "modelFile"));
  assert_null(strstr(out.data, "archiverVersion"));
  assert_true(strstr(out.data, "\"runtime\"") < strstr(out.data, "\"model\""));
  assert_true(strstr(out.data, "\"serializedFile\"") < strstr(out.data, "\"modelVersion\""));
  assert_int_equal(wk_manifest_parse(out.data, out.len, &back, &err), 0);
  assert_string_equal(back.model_name, "fashion");
  assert_string_equal(back.model_version, "2.0");
  assert_string_equal(back.serialized_file, "fashion.pt");
  assert_string_equal(back.handler, "image_classifier");
  assert_string_equal(back.requirements_file, "req \"quoted\".txt");
  assert_string_equal(back.model_class, "autoencoder.AutoEncoder");
  assert_null(back.model_file);
  assert_null(back.created_on);
  wk_buf_destroy(&out);
  wk_manifest_destroy(&m);
  wk_manifest_destroy(&back);
}

static void expect_error(const char *json, int code, const char *needle) {
  wk_manifest_t m;
  wk_err_t err;
  wk_manifest_init(&m);
  assert_int_equal(wk_manifest_parse(json, strlen(json), &m, &err), code);
  if (strstr(err.msg, needle) == NULL) fail_msg("message '%s' lacks '%s'", err.msg, needle);
  assert_null(m.model_name); /* nothing left behind */
  assert_null(m.runtime);
}

static void test_wrong_type(void **state) {
  (void)state;
  expect_error("{\"runtime\":\"python\",\"model\":{\"modelName\":\"a\",\"modelVersion\":1.0}}",
               WK_EINVAL, "model.modelVersion: expected a string, got a number");
  expect_error("{\"runtime\":[],\"model\":{\"modelName\":\"a\"}}", WK_EINVAL,
               "runtime: expected a string, got an array");
  expect_error("{\"model\":\"a\"}", WK_EINVAL, "model: expected an object, got a string");
  expect_error("[1,2]", WK_EINVAL, "expected a JSON object");
}

static void test_missing_model_name(void **state) {
  (void)state;
  expect_error("{\"model\":{\"handler\":\"h.py\"}}", WK_EINVAL, "model.modelName: missing");
  expect_error("{\"model\":{\"modelName\":\"\"}}", WK_EINVAL, "model.modelName: missing");
  expect_error("{\"runtime\":\"python\"}", WK_EINVAL, "model: missing");
}

static void test_malformed_json_names_line(void **state) {
  (void)state;
  expect_error("{\n  \"model\": {\n    \"modelName\": \"a\",\n  }\n}", WK_EFORMAT, "line 4");
  expect_error("", WK_EFORMAT, "not valid JSON");
  expect_error("{\"model\":{\"modelName\":\"a\",\"modelName\":\"b\"}}", WK_EFORMAT, "duplicate");
}

static void test_parse_failure_keeps_output(void **state) {
  (void)state;
  wk_manifest_t m;
  wk_err_t err;
  wk_manifest_init(&m);
  assert_int_equal(wk_manifest_parse(real_manifest, strlen(real_manifest), &m, &err), 0);
  const char *bad = "{\"model\":{}}";
  assert_int_equal(wk_manifest_parse(bad, strlen(bad), &m, &err), WK_EINVAL);
  assert_string_equal(m.model_name, "mnist");
  wk_manifest_destroy(&m);
}

static void test_size_limit(void **state) {
  (void)state;
  size_t n = WK_MAX_MANIFEST_SIZE + 1;
  char *big = malloc(n);
  assert_non_null(big);
  memset(big, ' ', n);
  wk_manifest_t m;
  wk_err_t err;
  wk_manifest_init(&m);
  assert_int_equal(wk_manifest_parse(big, n, &m, &err), WK_ETOOBIG);
  assert_non_null(strstr(err.msg, "limit"));
  free(big);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parse_real_manifest),
      cmocka_unit_test(test_round_trip),
      cmocka_unit_test(test_wrong_type),
      cmocka_unit_test(test_missing_model_name),
      cmocka_unit_test(test_malformed_json_names_line),
      cmocka_unit_test(test_parse_failure_keeps_output),
      cmocka_unit_test(test_size_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
