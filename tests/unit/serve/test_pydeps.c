/* Unit tests for serve/pydeps: the pip command line, pip's failure reaching the error
 * with its last lines, and the time limit. A shell script stands in for the
 * interpreter, so no pip or network is needed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "core/fs.h"
#include "serve/pydeps.h"

static char g_dir[1024];

static void fake_python(const char *path, const char *body) {
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fprintf(f, "#!/bin/sh\n%s\n", body);
  fclose(f);
  chmod(path, 0755);
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "%s/pydeps", WK_TEST_DATA_DIR);
  wk_fs_rmtree(g_dir);
  return wk_fs_mkdirs(g_dir, NULL);
}

static void test_command_line_and_cwd(void **state) {
  (void)state;
  char py[1100], target[1100], args[1100];
  snprintf(py, sizeof py, "%s/ok.sh", g_dir);
  snprintf(target, sizeof target, "%s/target", g_dir);
  snprintf(args, sizeof args, "%s/args.txt", g_dir);
  fake_python(py, "echo \"$@\" > args.txt; echo installing");
  wk_err_t err = {{0}};
  assert_int_equal(wk_pydeps_install(py, "req.txt", target, g_dir, 10, &err), 0);
  assert_true(wk_fs_is_dir(target));
  char *text;
  size_t len;
  assert_int_equal(wk_fs_read_file(args, 4096, &text, &len, NULL), 0); /* ran in cwd */
  char want[2048];
  snprintf(want, sizeof want,
           "-m pip install --no-input --disable-pip-version-check --no-warn-script-location -r "
           "req.txt --target %s\n",
           target);
  assert_string_equal(text, want);
  free(text);
}

static void test_failure_keeps_the_tail(void **state) {
  (void)state;
  char py[1100], target[1100];
  snprintf(py, sizeof py, "%s/fail.sh", g_dir);
  snprintf(target, sizeof target, "%s/target2", g_dir);
  fake_python(py, "i=0; while [ $i -lt 200 ]; do echo noise line $i; i=$((i+1)); done\n"
                  "echo 'ERROR: No matching distribution found for nopkg==9' >&2; exit 1");
  wk_err_t err = {{0}};
  assert_int_equal(wk_pydeps_install(py, "req.txt", target, g_dir, 10, &err), WK_EMODEL);
  if (strstr(err.msg, "exited with status 1") == NULL ||
      strstr(err.msg, "ERROR: No matching distribution found for nopkg==9") == NULL ||
      strstr(err.msg, "noise line 3\n") != NULL)
    fail_msg("message: %s", err.msg);
}

static void test_time_limit(void **state) {
  (void)state;
  char py[1100], target[1100];
  snprintf(py, sizeof py, "%s/slow.sh", g_dir);
  snprintf(target, sizeof target, "%s/target3", g_dir);
  fake_python(py, "echo starting; sleep 30");
  wk_err_t err = {{0}};
  time_t t0 = time(NULL);
  assert_int_equal(wk_pydeps_install(py, "req.txt", target, g_dir, 1, &err), WK_ETIMEDOUT);
  assert_true(time(NULL) - t0 < 10); /* killed, not waited for */
  assert_non_null(strstr(err.msg, "did not finish within 1 s"));
  assert_non_null(strstr(err.msg, "starting"));
}

static void test_missing_interpreter(void **state) {
  (void)state;
  char target[1100];
  snprintf(target, sizeof target, "%s/target4", g_dir);
  wk_err_t err = {{0}};
  assert_int_equal(wk_pydeps_install("/nonexistent/python3", "req.txt", target, g_dir, 5, &err),
                   WK_EIO);
  assert_non_null(strstr(err.msg, "cannot start /nonexistent/python3"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_command_line_and_cwd),
      cmocka_unit_test(test_failure_keeps_the_tail),
      cmocka_unit_test(test_time_limit),
      cmocka_unit_test(test_missing_interpreter),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
