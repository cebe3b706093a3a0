/* Unit tests for backend/pyworker with real workers (the venv's python) (python/ of this
 * repository on PYTHONPATH) and handlers written by the test: a batch of 3, a handler
 * that raises (503), a worker killed mid-batch, a handler with a syntax error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/pyworker.h"

static char g_pythonpath[1024];
static char g_root[1024];

static void write_file(const char *dir, const char *name, const char *text) {
  char path[1200];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

/* Makes <root>/<name> with a manifest and handler.py holding src; returns the dir. */
static const char *make_model(const char *name, const char *src) {
  static char dir[1100];
  char sub[1200];
  snprintf(dir, sizeof dir, "%s/%s", g_root, name);
  mkdir(dir, 0755);
  snprintf(sub, sizeof sub, "%s/MAR-INF", dir);
  mkdir(sub, 0755);
  write_file(dir, "MAR-INF/MANIFEST.json",
             "{\"runtime\": \"python\", \"model\": {\"modelName\": \"m\", \"handler\": "
             "\"handler:handle\"}}\n");
  write_file(dir, "handler.py", src);
  return dir;
}

static int setup(void **state) {
  (void)state;
  /* __FILE__ is <repo>/tests/unit/backend/test_pyworker.c */
  char cwd[512] = ".";
  if (__FILE__[0] != '/' && getcwd(cwd, sizeof cwd) == NULL) return -1;
  snprintf(g_pythonpath, sizeof g_pythonpath, "%s%s%s", __FILE__[0] == '/' ? "" : cwd,
           __FILE__[0] == '/' ? "" : "/", __FILE__);
  char *cut = strstr(g_pythonpath, "tests/unit/backend/");
  if (cut == NULL) return -1;
  snprintf(cut, sizeof g_pythonpath - (size_t)(cut - g_pythonpath), "python");
  snprintf(g_root, sizeof g_root, "%s", WK_TEST_DATA_DIR);
  mkdir(g_root, 0755);
  snprintf(g_root, sizeof g_root, "%s/pyworker-%d", WK_TEST_DATA_DIR, (int)getpid());
  mkdir(g_root, 0755);
  return 0;
}

static wk_pyworker_opts_t opts_for(const char *dir) {
  wk_pyworker_opts_t o = {0};
  o.pythonpath = g_pythonpath;
  o.model_name = "m";
  o.model_dir = dir;
  o.batch_size = 4;
  o.gpu_id = -1;
  o.startup_timeout_ms = 30000;
  return o;
}

static const char LEN_HANDLER[] =
    "def handle(data, context):\n"
    "    if data is None:\n"
    "        return None\n"
    "    print('batch of', len(data))\n"
    "    out = []\n"
    "    for d in data:\n"
    "        b = d.get('body') or b''\n"
    "        if b == b'boom':\n"
    "            raise ValueError('boom')\n"
    "        if b == b'die':\n"
    "            import os\n"
    "            os._exit(7)\n"
    "        out.append(len(b))\n"
    "    return out\n";

static void test_batch_and_errors(void **state) {
  (void)state;
  const char *dir = make_model("len", LEN_HANDLER);
  wk_pyworker_opts_t o = opts_for(dir);
  wk_pyworker_t *w = NULL;
  wk_err_t err = {{0}};
  int rc = wk_pyworker_start(&o, &w, &err);
  if (rc != 0) fail_msg("start: %s", err.msg);
  assert_true(wk_pyworker_pid(w) > 0);

  wk_otf_param_t p[3] = {{"body", "application/octet-stream", "a", 1},
                         {"body", "application/octet-stream", "bbbb", 4},
                         {"body", NULL, NULL, 0}};
  wk_otf_kv_t h = {"x-test", "1"};
  wk_otf_request_t r[3] = {{"r0", &h, 1, &p[0], 1}, {"r1", NULL, 0, &p[1], 1},
                           {"r2", NULL, 0, &p[2], 1}};
  wk_otf_response_t resp;
  rc = wk_pyworker_infer(w, r, 3, &resp, 20000, &err);
  if (rc != 0) fail_msg("infer: %s", err.msg);
  assert_int_equal(resp.code, 200);
  assert_int_equal(resp.n_preds, 3);
  const char *want[3] = {"1", "4", "0"};
  for (int i = 0; i < 3; i++) {
    char id[16];
    snprintf(id, sizeof id, "r%d", i);
    assert_string_equal(resp.preds[i].id, id);
    assert_int_equal(resp.preds[i].status, 200);
    assert_string_equal(resp.preds[i].content_type, "application/json");
    assert_int_equal(resp.preds[i].body_len, strlen(want[i]));
    assert_memory_equal(resp.preds[i].body, want[i], strlen(want[i]));
  }
  wk_otf_response_destroy(&resp);

  /* the handler raises: 503 for the whole batch, the worker keeps serving */
  wk_otf_param_t boom = {"body", NULL, "boom", 4};
  wk_otf_request_t rb = {"rb", NULL, 0, &boom, 1};
  assert_int_equal(wk_pyworker_infer(w, &rb, 1, &resp, 20000, &err), 0);
  assert_int_equal(resp.code, 503);
  assert_string_equal(resp.message, "Prediction failed");
  assert_int_equal(resp.n_preds, 1);
  assert_int_equal(resp.preds[0].status, 503);
  wk_otf_response_destroy(&resp);
  assert_int_equal(wk_pyworker_infer(w, r, 1, &resp, 20000, &err), 0);
  assert_int_equal(resp.code, 200);
  wk_otf_response_destroy(&resp);

  /* the worker dies mid-batch: an error at once, not at the timeout */
  wk_otf_param_t die = {"body", NULL, "die", 3};
  wk_otf_request_t rd = {"rd", NULL, 0, &die, 1};
  rc = wk_pyworker_infer(w, &rd, 1, &resp, 60000, &err);
  assert_int_equal(rc, WK_EIO);
  assert_non_null(strstr(err.msg, "exited with status 7 while running a batch"));
  assert_int_equal(wk_pyworker_alive(w), 0);
  wk_buf_t tail = WK_BUF_INIT;
  wk_pyworker_log_tail(w, &tail);
  assert_non_null(tail.data);
  assert_non_null(strstr(tail.data, "batch of 3"));
  wk_buf_destroy(&tail);
  wk_pyworker_stop(w);
}

static void test_clean_stop(void **state) {
  (void)state;
  const char *dir = make_model("stop", LEN_HANDLER);
  wk_pyworker_opts_t o = opts_for(dir);
  wk_pyworker_t *w = NULL;
  wk_err_t err = {{0}};
  if (wk_pyworker_start(&o, &w, &err) != 0) fail_msg("start: %s", err.msg);
  int st = wk_pyworker_stop(w);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_syntax_error_fails_load(void **state) {
  (void)state;
  const char *dir = make_model("syntax", "def handle(data, context)\n    return data\n");
  wk_pyworker_opts_t o = opts_for(dir);
  wk_buf_t log = WK_BUF_INIT;
  o.failure_log = &log;
  wk_pyworker_t *w = NULL;
  wk_err_t err = {{0}};
  int rc = wk_pyworker_start(&o, &w, &err);
  assert_int_equal(rc, WK_EMODEL);
  assert_null(w);
  assert_non_null(strstr(err.msg, "failed to load (500)"));
  assert_non_null(strstr(err.msg, "SyntaxError"));
  assert_non_null(log.data);
  assert_non_null(strstr(log.data, "Traceback"));
  assert_non_null(strstr(log.data, "handler.py"));
  wk_buf_destroy(&log);
}

static void test_bad_python_fails(void **state) {
  (void)state;
  const char *dir = make_model("nopy", LEN_HANDLER);
  wk_pyworker_opts_t o = opts_for(dir);
  o.pythonpath = "/nonexistent"; /* python starts but has no wick_worker */
  wk_pyworker_t *w = NULL;
  wk_err_t err = {{0}};
  int rc = wk_pyworker_start(&o, &w, &err);
  assert_int_equal(rc, WK_EIO);
  assert_non_null(strstr(err.msg, "exited with status 1"));
  assert_non_null(strstr(err.msg, "No module named"));
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_and_errors),
      cmocka_unit_test(test_clean_stop),
      cmocka_unit_test(test_syntax_error_fails_load),
      cmocka_unit_test(test_bad_python_fails),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
