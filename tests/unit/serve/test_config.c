/* Unit tests for serve/config: Java .properties syntax, TorchServe's keys and defaults,
 * checks of values, address parsing and loading a file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "backend/pyworker.h"
#include "serve/config.h"

static void parse_ok(const char *text, wk_props_t *p) {
  wk_err_t err;
  wk_props_init(p);
  if (wk_props_parse(text, strlen(text), p, &err) != 0) fail_msg("parse failed: %s", err.msg);
}

static void test_separators_and_comments(void **state) {
  (void)state;
  wk_props_t p;
  parse_ok("# a comment\n"
           "! another comment\n"
           "   \n"
           "a=1\n"
           "b : 2\n"
           "c 3\n"
           "  d\t=\t  four words  \n"
           "e\n"
           "f=\n"
           "g==x\n"
           "h:=y\n"
           "key\\ with\\ spaces = v\n"
           "  # indented comment\n"
           "url=http://127.0.0.1:8080\n",
           &p);
  assert_string_equal(wk_props_get(&p, "a"), "1");
  assert_string_equal(wk_props_get(&p, "b"), "2");
  assert_string_equal(wk_props_get(&p, "c"), "3");
  assert_string_equal(wk_props_get(&p, "d"), "four words  "); /* Java keeps trailing blanks */
  assert_string_equal(wk_props_get(&p, "e"), "");
  assert_string_equal(wk_props_get(&p, "f"), "");
  assert_string_equal(wk_props_get(&p, "g"), "=x");
  assert_string_equal(wk_props_get(&p, "h"), "=y");
  assert_string_equal(wk_props_get(&p, "key with spaces"), "v");
  assert_string_equal(wk_props_get(&p, "url"), "http://127.0.0.1:8080");
  assert_null(wk_props_get(&p, "# a comment"));
  assert_int_equal(p.count, 10);
  wk_props_destroy(&p);
}

static void test_continuation_lines(void **state) {
  (void)state;
  wk_props_t p;
  parse_ok("models=a.mar,\\\n"
           "        b.mar,\\\r\n"
           "   c.mar\r\n"
           "even=x\\\\\n"
           "next=1\n"
           "# comment \\\n"
           "after_comment=2\n"
           "empty_follow=z\\\n"
           "\n"
           "last=end\\",
           &p);
  assert_string_equal(wk_props_get(&p, "models"), "a.mar,b.mar,c.mar");
  assert_string_equal(wk_props_get(&p, "even"), "x\\"); /* an even count does not continue */
  assert_string_equal(wk_props_get(&p, "next"), "1");
  assert_string_equal(wk_props_get(&p, "after_comment"), "2"); /* comments never continue */
  assert_string_equal(wk_props_get(&p, "empty_follow"), "z");
  assert_string_equal(wk_props_get(&p, "last"), "end");
  wk_props_destroy(&p);
}

static void test_escapes(void **state) {
  (void)state;
  wk_props_t p;
  parse_ok("t=a\\tb\\nc\\rd\\fe\n"
           "u=caf\\u00e9 \\u20AC \\uD83D\\uDE00\n"
           "other=\\q\\=\\:\\\\\\#\n"
           "cr=value\r\n"
           "lone=\\uD800\n",
           &p);
  assert_string_equal(wk_props_get(&p, "t"), "a\tb\nc\rd\fe");
  assert_string_equal(wk_props_get(&p, "u"), "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
  assert_string_equal(wk_props_get(&p, "other"), "q=:\\#");
  assert_string_equal(wk_props_get(&p, "cr"), "value");
  assert_string_equal(wk_props_get(&p, "lone"), "\xef\xbf\xbd");
  wk_props_destroy(&p);

  wk_err_t err;
  wk_props_init(&p);
  const char *bad = "a=1\nb=\\u12G4\n";
  assert_int_equal(wk_props_parse(bad, strlen(bad), &p, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "line 2"));
  assert_non_null(strstr(err.msg, "\\uXXXX"));
  assert_int_equal(p.count, 0); /* nothing applied */
  const char *nul = "a=\\u0000\n";
  assert_int_equal(wk_props_parse(nul, strlen(nul), &p, &err), WK_EINVAL);
  const char embedded[] = "a=1\nb=x\0y\n";
  assert_int_equal(wk_props_parse(embedded, sizeof embedded - 1, &p, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "line 2"));
  wk_props_destroy(&p);
}

static void test_set_and_later_wins(void **state) {
  (void)state;
  wk_props_t p;
  parse_ok("a=1\nb=2\na=3\n", &p);
  assert_string_equal(wk_props_get(&p, "a"), "3");
  assert_int_equal(wk_props_set(&p, "b", "9"), 0);
  assert_int_equal(wk_props_set(&p, "c", "new"), 0);
  assert_string_equal(wk_props_get(&p, "b"), "9");
  assert_string_equal(wk_props_get(&p, "c"), "new");
  assert_int_equal(p.count, 3);
  wk_props_destroy(&p);
}

static void test_config_defaults(void **state) {
  (void)state;
  wk_config_t c;
  wk_config_init(&c);
  assert_string_equal(c.inference_address, "http://127.0.0.1:8080");
  assert_string_equal(c.management_address, "http://127.0.0.1:8081");
  assert_string_equal(c.metrics_address, "http://127.0.0.1:8082");
  assert_null(c.model_store);
  assert_null(c.load_models);
  assert_int_equal(c.default_workers_per_model, 0);
  assert_int_equal(c.job_queue_size, 100);
  assert_int_equal(c.default_response_timeout, 120);
  assert_int_equal(c.max_request_size, 6553500);
  assert_int_equal(c.max_response_size, 6553500);
  assert_int_equal(c.torch_threads, 0);
  assert_string_equal(c.python, WK_PYWORKER_DEFAULT_PYTHON);
  assert_int_equal(c.props.count, 0);
  assert_true(wk_config_default_workers(&c, 2) == 2);
  assert_true(wk_config_default_workers(&c, 0) >= 1);
  c.default_workers_per_model = 3;
  assert_int_equal(wk_config_default_workers(&c, 2), 3);
  wk_config_destroy(&c);
}

static void test_config_set(void **state) {
  (void)state;
  wk_config_t c;
  wk_err_t err;
  wk_config_init(&c);
  assert_int_equal(wk_config_set(&c, "job_queue_size", "500", &err), 0);
  assert_int_equal(c.job_queue_size, 500);
  assert_int_equal(wk_config_set(&c, "max_request_size", "104857600 ", &err), 0);
  assert_int_equal(c.max_request_size, 104857600L);
  assert_int_equal(wk_config_set(&c, "inference_address", "https://0.0.0.0:8443", &err), 0);
  assert_string_equal(c.inference_address, "https://0.0.0.0:8443");
  assert_int_equal(wk_config_set(&c, "model_store", "/srv/models", &err), 0);
  assert_string_equal(c.model_store, "/srv/models");
  assert_int_equal(wk_config_set(&c, "load_models", "all", &err), 0);
  assert_string_equal(c.load_models, "all");
  assert_int_equal(wk_config_set(&c, "torch_threads", "0", &err), 0);
  assert_int_equal(wk_config_set(&c, "python", "/opt/py/bin/python3", &err), 0);
  assert_string_equal(c.python, "/opt/py/bin/python3");
  /* unknown keys are kept, not refused */
  assert_int_equal(wk_config_set(&c, "enable_envvars_config", "true", &err), 0);
  assert_string_equal(wk_props_get(&c.props, "enable_envvars_config"), "true");
  assert_string_equal(wk_props_get(&c.props, "job_queue_size"), "500");

  /* bad values: an error that names the key; nothing changes */
  assert_int_equal(wk_config_set(&c, "job_queue_size", "x", &err), WK_EINVAL);
  assert_string_equal(err.msg, "job_queue_size: expected a positive integer, got 'x'");
  assert_int_equal(wk_config_set(&c, "job_queue_size", "0", &err), WK_EINVAL);
  assert_int_equal(wk_config_set(&c, "job_queue_size", "-5", &err), WK_EINVAL);
  assert_int_equal(wk_config_set(&c, "job_queue_size", "99999999999", &err), WK_EINVAL);
  assert_int_equal(wk_config_set(&c, "job_queue_size", "12abc", &err), WK_EINVAL);
  assert_int_equal(wk_config_set(&c, "job_queue_size", "", &err), WK_EINVAL);
  assert_int_equal(c.job_queue_size, 500);
  assert_string_equal(wk_props_get(&c.props, "job_queue_size"), "500");
  assert_int_equal(wk_config_set(&c, "default_workers_per_model", "-1", &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "non-negative"));
  assert_int_equal(wk_config_set(&c, "metrics_address", "http://127.0.0.1:99999", &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "metrics_address"));
  assert_non_null(strstr(err.msg, "65535"));
  assert_string_equal(c.metrics_address, "http://127.0.0.1:8082");
  assert_int_equal(wk_config_set(&c, "python", "  ", &err), WK_EINVAL);
  assert_string_equal(c.python, "/opt/py/bin/python3");
  wk_config_destroy(&c);
}

static void expect_address(const char *addr, const char *host, int port, int tls) {
  char h[64];
  int p = -1, t = -1;
  wk_err_t err;
  if (wk_config_parse_address_tls(addr, h, sizeof h, &p, &t, &err) != 0) {
    fail_msg("%s: %s", addr, err.msg);
  }
  assert_string_equal(h, host);
  assert_int_equal(p, port);
  assert_int_equal(t, tls);
}

static void expect_bad_address(const char *addr, const char *needle) {
  char h[64] = "untouched";
  int p = -1;
  wk_err_t err;
  assert_int_not_equal(wk_config_parse_address(addr, h, sizeof h, &p, &err), 0);
  if (strstr(err.msg, needle) == NULL)
    fail_msg("%s: message '%s' lacks '%s'", addr, err.msg, needle);
  assert_string_equal(h, "untouched");
  assert_int_equal(p, -1);
}

static void test_addresses(void **state) {
  (void)state;
  expect_address("http://127.0.0.1:8080", "127.0.0.1", 8080, 0);
  expect_address("https://0.0.0.0:8443", "0.0.0.0", 8443, 1);
  expect_address("HTTP://localhost:0", "localhost", 0, 0);
  expect_address("127.0.0.1:8080", "127.0.0.1", 8080, 0);
  expect_address("[::1]:8080", "::1", 8080, 0);
  expect_address("http://[::]:65535", "::", 65535, 0);
  expect_address("http://example.com", "example.com", 80, 0);
  expect_address("https://example.com/", "example.com", 443, 1);
  expect_address("http://127.0.0.1:8080/", "127.0.0.1", 8080, 0);
  expect_bad_address("http://127.0.0.1:65536", "0 to 65535");
  expect_bad_address("http://127.0.0.1:", "port");
  expect_bad_address("http://127.0.0.1:80x", "port");
  expect_bad_address("127.0.0.1", "expected a port");
  expect_bad_address("ftp://host:21", "http:// or https://");
  expect_bad_address("unix:/tmp/sock", "unix sockets");
  expect_bad_address("::1:8080", "brackets");
  expect_bad_address("[::1:8080", "']'");
  expect_bad_address("[zz]:80", "not an IPv6 address");
  expect_bad_address("http://:8080", "host");
  expect_bad_address("http://a b:80", "after the host");
  expect_bad_address("http://host:80/path", "port");
  char small[4];
  int port;
  wk_err_t err;
  assert_int_equal(wk_config_parse_address("http://longhost:80", small, sizeof small, &port, &err),
                   WK_ETOOBIG);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static void test_load_file(void **state) {
  (void)state;
  mkdir(WK_TEST_DATA_DIR, 0755);
  char path[512];
  snprintf(path, sizeof path, "%s/test_config.properties", WK_TEST_DATA_DIR);
  write_file(path, "# TorchServe config\n"
                   "inference_address=http://0.0.0.0:8080\n"
                   "management_address: http://0.0.0.0:8081\n"
                   "model_store=/models\n"
                   "load_models=fashion=fashion.mar,\\\n"
                   "            mnist.mar\n"
                   "default_workers_per_model 2\n"
                   "enable_envvars_config=true\n");
  wk_config_t c;
  wk_err_t err;
  wk_config_init(&c);
  assert_int_equal(wk_config_load_file(&c, path, &err), 0);
  assert_string_equal(c.inference_address, "http://0.0.0.0:8080");
  assert_string_equal(c.management_address, "http://0.0.0.0:8081");
  assert_string_equal(c.model_store, "/models");
  assert_string_equal(c.load_models, "fashion=fashion.mar,mnist.mar");
  assert_int_equal(c.default_workers_per_model, 2);
  assert_string_equal(wk_props_get(&c.props, "enable_envvars_config"), "true");

  /* a bad value: the message names the file and the line, and nothing is applied */
  write_file(path, "job_queue_size=7\n"
                   "\n"
                   "model_store=/other\n"
                   "default_response_timeout=soon\n");
  assert_int_equal(wk_config_load_file(&c, path, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, path));
  assert_non_null(strstr(err.msg, "line 4"));
  assert_non_null(strstr(err.msg, "default_response_timeout: expected a positive integer"));
  assert_int_equal(c.job_queue_size, 100);
  assert_string_equal(c.model_store, "/models");

  snprintf(path, sizeof path, "%s/does-not-exist.properties", WK_TEST_DATA_DIR);
  assert_int_equal(wk_config_load_file(&c, path, &err), WK_ENOTFOUND);
  assert_non_null(strstr(err.msg, "does-not-exist.properties"));
  wk_config_destroy(&c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_separators_and_comments),
      cmocka_unit_test(test_continuation_lines),
      cmocka_unit_test(test_escapes),
      cmocka_unit_test(test_set_and_later_wins),
      cmocka_unit_test(test_config_defaults),
      cmocka_unit_test(test_config_set),
      cmocka_unit_test(test_addresses),
      cmocka_unit_test(test_load_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
