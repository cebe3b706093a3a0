/* Unit tests for archive/liberator: finding a torch_liberator deployment in a zip (the
 * deployer's one-folder layout and wick pack's root layout) and in a directory, and the
 * zips that are not one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "archive/liberator.h"
#include "archive/zip.h"
#include "core/fs.h"

static char g_dir[1024];

static const char *tpath(const char *name) {
  static char p[4][1200];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
  return p[k];
}

static const char liberated_py[] = "import torch\n\nclass TinyNet(torch.nn.Module):\n    pass\n\n"
                                   "def get_initkw():\n    return {}\n\n"
                                   "def get_model_cls():\n    return TinyNet\n";

/* Writes a zip of (name, content) pairs ending with a NULL name. */
static void write_zip(const char *path, const char *const *entries) {
  wk_zip_writer_t *w;
  wk_err_t err;
  assert_int_equal(wk_zip_writer_open(path, &w, &err), 0);
  for (size_t i = 0; entries[i]; i += 2)
    assert_int_equal(wk_zip_writer_add(w, entries[i], entries[i + 1], strlen(entries[i + 1]),
                                       WK_ZIP_STORED, &err),
                     0);
  assert_int_equal(wk_zip_writer_close(w, &err), 0);
}

static void expect_not_found(const char *path, int code, const char *needle) {
  wk_liberator_t d;
  wk_err_t err;
  memset(&d, 0x5a, sizeof d);
  assert_int_equal(wk_liberator_find(path, &d, &err), code);
  if (strstr(err.msg, needle) == NULL) fail_msg("message '%s' lacks '%s'", err.msg, needle);
  assert_int_equal((unsigned char)d.folder[0], 0x5a); /* untouched on failure */
}

static int setup(void **state) {
  (void)state;
  snprintf(g_dir, sizeof g_dir, "%s/liberator", WK_TEST_DATA_DIR);
  wk_fs_rmtree(g_dir);
  return wk_fs_mkdirs(g_dir, NULL);
}

static void test_deployer_layout(void **state) {
  (void)state;
  const char *e[] = {"test-deploy/train_info.json",
                     "{\"name\": \"run\"}",
                     "test-deploy/deploy_snapshot.pt",
                     "weights",
                     "test-deploy/TinyNet_1a2b3c.py",
                     liberated_py,
                     "test-deploy/glance/loss.png",
                     "png",
                     NULL};
  write_zip(tpath("deploy.zip"), e);
  wk_liberator_t d;
  wk_err_t err;
  assert_int_equal(wk_liberator_find(tpath("deploy.zip"), &d, &err), 0);
  assert_string_equal(d.folder, "test-deploy");
  assert_string_equal(d.snapshot, "test-deploy/deploy_snapshot.pt");
  assert_string_equal(d.model_py, "test-deploy/TinyNet_1a2b3c.py");
  assert_string_equal(d.train_info, "test-deploy/train_info.json");
}

static void test_root_layout_and_helper_py(void **state) {
  (void)state;
  /* as wick pack writes it, with a helper .py that is not the model */
  const char *e[] = {"MAR-INF/MANIFEST.json",
                     "{}",
                     "deploy_snapshot.pt",
                     "w",
                     "helpers.py",
                     "x = 1\n",
                     "Net_abc.py",
                     liberated_py,
                     NULL};
  write_zip(tpath("root.mar"), e);
  wk_liberator_t d;
  wk_err_t err;
  assert_int_equal(wk_liberator_find(tpath("root.mar"), &d, &err), 0);
  assert_string_equal(d.folder, "");
  assert_string_equal(d.snapshot, "deploy_snapshot.pt");
  assert_string_equal(d.model_py, "Net_abc.py");
  assert_string_equal(d.train_info, "");
  /* an export before 0.2 has only make(): the one .py is the model */
  const char *old[] = {"old/deploy_snapshot.pt", "w", "old/Net.py", "def make():\n    pass\n",
                       NULL};
  write_zip(tpath("old.zip"), old);
  assert_int_equal(wk_liberator_find(tpath("old.zip"), &d, &err), 0);
  assert_string_equal(d.model_py, "old/Net.py");
}

static void test_directory(void **state) {
  (void)state;
  char dir[1200], p[1300];
  snprintf(dir, sizeof dir, "%s", tpath("unpacked"));
  snprintf(p, sizeof p, "%s/dep/x", dir);
  wk_err_t err;
  assert_int_equal(wk_fs_mkdirs(p, &err), 0);
  const char *files[][2] = {{"dep/deploy_snapshot.pt", "w"}, {"dep/Tiny.py", liberated_py}};
  for (int i = 0; i < 2; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, files[i][0]);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(files[i][1], f);
    fclose(f);
  }
  wk_liberator_t d;
  assert_int_equal(wk_liberator_find(dir, &d, &err), 0);
  assert_string_equal(d.folder, "dep");
  assert_string_equal(d.model_py, "dep/Tiny.py");
}

static void test_not_a_deployment(void **state) {
  (void)state;
  const char *plain[] = {"MAR-INF/MANIFEST.json", "{}", "model.pt", "w", NULL};
  write_zip(tpath("plain.mar"), plain);
  expect_not_found(tpath("plain.mar"), WK_ENOTFOUND, "no deploy_snapshot.pt");
  const char *deep[] = {"a/b/deploy_snapshot.pt", "w", "a/b/M.py", liberated_py, NULL};
  write_zip(tpath("deep.zip"), deep);
  expect_not_found(tpath("deep.zip"), WK_ENOTFOUND, "no deploy_snapshot.pt");
  const char *nopy[] = {"d/deploy_snapshot.pt", "w", "d/README", "x", NULL};
  write_zip(tpath("nopy.zip"), nopy);
  expect_not_found(tpath("nopy.zip"), WK_ENOTFOUND, "no .py file");
  const char *twopy[] = {"d/deploy_snapshot.pt", "w", "d/a.py", "x=1\n", "d/b.py", "y=2\n", NULL};
  write_zip(tpath("twopy.zip"), twopy);
  expect_not_found(tpath("twopy.zip"), WK_ENOTFOUND, "none defines get_model_cls");
  const char *twodef[] = {"d/deploy_snapshot.pt", "w", "d/a.py", liberated_py, "d/b.py",
                          liberated_py,           NULL};
  write_zip(tpath("twodef.zip"), twodef);
  expect_not_found(tpath("twodef.zip"), WK_EINVAL, "2 .py files");
  const char *two[] = {"a/deploy_snapshot.pt", "w", "b/deploy_snapshot.pt", "w", NULL};
  write_zip(tpath("two.zip"), two);
  expect_not_found(tpath("two.zip"), WK_EINVAL, "two deployments");
  expect_not_found(tpath("absent.zip"), WK_ENOTFOUND, "does not exist");
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deployer_layout),
      cmocka_unit_test(test_root_layout_and_helper_py),
      cmocka_unit_test(test_directory),
      cmocka_unit_test(test_not_a_deployment),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
