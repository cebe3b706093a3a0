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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/forkserver.h"
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
  /* as wick serve does (cli/serve.c): numpy's OpenBLAS starts no pool at import */
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
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

/* Field k (1-based, after the command name) of /proc/pid/stat, and the name in *comm. */
static long stat_field(int pid, int k, char *comm, size_t n) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t got = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[got] = '\0';
  char *open = strchr(buf, '('), *close = strrchr(buf, ')');
  if (open == NULL || close == NULL) return -1;
  if (comm) snprintf(comm, n, "%.*s", (int)(close - open - 1), open + 1);
  char *p = close + 2;
  for (int i = 1; i < k && p; i++) {
    p = strchr(p, ' ');
    if (p) p++;
  }
  return p ? strtol(p, NULL, 10) : -1;
}

static void run_len(wk_pyworker_t *w) {
  wk_otf_param_t p = {"body", NULL, "xyz", 3};
  wk_otf_request_t r = {"a", NULL, 0, &p, 1};
  wk_otf_response_t resp = {0};
  wk_err_t err = {{0}};
  if (wk_pyworker_infer(w, &r, 1, &resp, 30000, &err) != 0) fail_msg("infer: %s", err.msg);
  assert_int_equal(resp.code, 200);
  wk_otf_response_destroy(&resp);
}

/* Workers forked from the template: children of this process (it is their subreaper),
 * named wick_worker, serving; a template killed is replaced by the start after next. */
static void test_forked_workers(void **state) {
  (void)state;
  const char *dir = make_model("forked", LEN_HANDLER);
  wk_pyworker_opts_t o = opts_for(dir);
  o.fork_server = 1;
  wk_pyworker_t *w[3] = {NULL, NULL, NULL};
  wk_err_t err = {{0}};
  for (int i = 0; i < 2; i++)
    if (wk_pyworker_start(&o, &w[i], &err) != 0) fail_msg("start: %s", err.msg);
  int reaper = -1; /* only while a fork is asked for: what handlers leave goes to init */
  assert_int_equal(prctl(PR_GET_CHILD_SUBREAPER, &reaper, 0, 0, 0), 0);
  assert_int_equal(reaper, 0);
  pid_t tpl = -1;
  assert_int_equal(wk_forkserver_pids(&tpl, 1), 1);
  assert_true(tpl > 0);
  char comm[64];
  assert_int_equal(stat_field(tpl, 2, comm, sizeof comm), getpid());
  assert_string_equal(comm, "wick-template");
  for (int i = 0; i < 2; i++) {
    int pid = wk_pyworker_pid(w[i]);
    assert_true(pid != tpl);
    assert_int_equal(stat_field(pid, 2, comm, sizeof comm), getpid()); /* its parent: us */
    assert_string_equal(comm, "wick_worker");
    run_len(w[i]);
  }
  /* a worker killed is reaped by us, as a spawned one */
  kill(wk_pyworker_pid(w[1]), SIGKILL);
  char why[64];
  for (int i = 0; i < 500 && !wk_pyworker_exited(w[1], why, sizeof why); i++) usleep(10000);
  assert_string_equal(why, "was killed by signal 9");
  wk_pyworker_stop(w[1]);
  /* the template killed: the next start is spawned, the one after forked again */
  kill(tpl, SIGKILL);
  usleep(100000);
  if (wk_pyworker_start(&o, &w[1], &err) != 0) fail_msg("start after the kill: %s", err.msg);
  run_len(w[1]);
  if (wk_pyworker_start(&o, &w[2], &err) != 0) fail_msg("start: %s", err.msg);
  pid_t tpl2 = -1;
  assert_int_equal(wk_forkserver_pids(&tpl2, 1), 1);
  assert_true(tpl2 > 0 && tpl2 != tpl);
  assert_int_equal(stat_field(wk_pyworker_pid(w[2]), 2, comm, sizeof comm), getpid());
  assert_string_equal(comm, "wick_worker");
  run_len(w[2]);
  for (int i = 0; i < 3; i++) {
    int st = wk_pyworker_stop(w[i]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
  }
  wk_forkserver_stop_all();
  assert_int_equal(wk_forkserver_pids(NULL, 0), 0);
  assert_int_equal(kill(tpl2, 0), -1); /* ended and reaped */
}

/* A template that cannot start (no wick_worker on its path): workers are spawned, and
 * fail as spawned workers do. */
static void test_template_that_cannot_start(void **state) {
  (void)state;
  const char *dir = make_model("notpl", LEN_HANDLER);
  wk_pyworker_opts_t o = opts_for(dir);
  o.fork_server = 1;
  o.pythonpath = "/nonexistent";
  wk_pyworker_t *w = NULL;
  wk_err_t err = {{0}};
  assert_int_equal(wk_pyworker_start(&o, &w, &err), WK_EIO);
  assert_non_null(strstr(err.msg, "No module named"));
  assert_int_equal(wk_forkserver_pids(NULL, 0), 0);
  wk_forkserver_stop_all();
}

/* A template with a second thread after its imports (OpenBLAS's pool when not capped) is
 * not forked from: a fork copies one thread, and the workers are spawned instead. */
static void test_template_with_threads(void **state) {
  (void)state;
  if (sysconf(_SC_NPROCESSORS_ONLN) < 2) skip(); /* OpenBLAS starts no pool on one CPU */
  const char *dir = make_model("threads", LEN_HANDLER);
  wk_pyworker_opts_t o = opts_for(dir);
  o.fork_server = 1;
  const char *env[] = {"OPENBLAS_NUM_THREADS=2", NULL};
  o.env = env;
  wk_pyworker_t *w = NULL;
  wk_err_t err = {{0}};
  if (wk_pyworker_start(&o, &w, &err) != 0) fail_msg("start: %s", err.msg);
  run_len(w);
  assert_int_equal(wk_forkserver_pids(NULL, 0), 0);
  char comm[64];
  assert_int_equal(stat_field(wk_pyworker_pid(w), 2, comm, sizeof comm), getpid());
  assert_true(strcmp(comm, "wick_worker") != 0); /* spawned: the interpreter's own name */
  wk_pyworker_stop(w);
  wk_forkserver_stop_all();
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_batch_and_errors),
      cmocka_unit_test(test_clean_stop),
      cmocka_unit_test(test_syntax_error_fails_load),
      cmocka_unit_test(test_bad_python_fails),
      cmocka_unit_test(test_forked_workers),
      cmocka_unit_test(test_template_that_cannot_start),
      cmocka_unit_test(test_template_with_threads),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
