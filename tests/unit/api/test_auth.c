/* Unit tests for api/auth: the key file (layout, mode, removal), Bearer parsing, key
 * matching, expiry and which paths are public. HTTP replies are covered end to end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "api/auth.h"
#include "core/clock.h"
#include "core/fs.h"

typedef struct {
  char dir[512];
  char path[600];
  wk_auth_t *auth;
  char inference[64], management[64], api[64];
} fixture_t;

static void read_key(json_t *root, const char *name, char *out, size_t len) {
  json_t *k = json_object_get(json_object_get(root, name), "key");
  assert_non_null(k);
  snprintf(out, len, "%s", json_string_value(k));
}

static void load_keys(fixture_t *f) {
  json_error_t je;
  json_t *root = json_load_file(f->path, 0, &je);
  assert_non_null(root);
  read_key(root, "inference", f->inference, sizeof f->inference);
  read_key(root, "management", f->management, sizeof f->management);
  read_key(root, "API", f->api, sizeof f->api);
  json_decref(root);
}

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  wk_err_t err;
  assert_int_equal(wk_fs_mkdtemp("auth", f->dir, sizeof f->dir, &err), 0);
  snprintf(f->path, sizeof f->path, "%s/key_file.json", f->dir);
  wk_auth_opts_t o = {.key_file = f->path, .expiration_min = 60};
  assert_int_equal(wk_auth_new(&o, &f->auth, &err), 0);
  load_keys(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  wk_auth_free(f->auth);
  wk_fs_rmtree(f->dir);
  free(f);
  return 0;
}

static void test_key_file(void **state) {
  fixture_t *f = *state;
  struct stat st;
  assert_int_equal(stat(f->path, &st), 0);
  assert_int_equal(st.st_mode & 0777, 0600);
  assert_string_equal(wk_auth_key_file(f->auth), f->path);
  json_error_t je;
  json_t *root = json_load_file(f->path, 0, &je);
  assert_int_equal(json_object_size(root), 3);
  assert_true(
      json_is_string(json_object_get(json_object_get(root, "inference"), "expiration time")));
  assert_true(
      json_is_string(json_object_get(json_object_get(root, "management"), "expiration time")));
  assert_null(json_object_get(json_object_get(root, "API"), "expiration time"));
  json_decref(root);
  assert_int_equal(strlen(f->inference), 32);
  assert_string_not_equal(f->inference, f->management);
  assert_string_not_equal(f->inference, f->api);
}

static int verify(fixture_t *f, const char *header, wk_auth_kind_t kind, wk_err_t *err) {
  return wk_auth_verify(f->auth, header, kind, 0, err);
}

static void test_verify(void **state) {
  fixture_t *f = *state;
  wk_err_t err;
  char h[128];
  snprintf(h, sizeof h, "Bearer %s", f->inference);
  assert_int_equal(verify(f, h, WK_AUTH_INFERENCE, &err), 0);
  snprintf(h, sizeof h, "  bearer \t%s  ", f->inference); /* scheme in any case, blanks */
  assert_int_equal(verify(f, h, WK_AUTH_INFERENCE, &err), 0);
  /* each key works only for its own API */
  assert_int_not_equal(verify(f, h, WK_AUTH_MANAGEMENT, &err), 0);
  assert_null(strstr(err.msg, f->inference));
  assert_null(strstr(err.msg, f->management));
  snprintf(h, sizeof h, "Bearer %s", f->management);
  assert_int_not_equal(verify(f, h, WK_AUTH_INFERENCE, &err), 0);
  assert_int_equal(verify(f, h, WK_AUTH_MANAGEMENT, &err), 0);
  snprintf(h, sizeof h, "Bearer %s", f->api);
  assert_int_equal(verify(f, h, WK_AUTH_TOKEN_API, &err), 0);
  /* missing, malformed, a prefix or an extension of the key */
  assert_int_not_equal(verify(f, NULL, WK_AUTH_INFERENCE, &err), 0);
  assert_non_null(strstr(err.msg, "no Authorization header"));
  assert_int_not_equal(verify(f, f->inference, WK_AUTH_INFERENCE, &err), 0);
  assert_non_null(strstr(err.msg, "Bearer"));
  snprintf(h, sizeof h, "Bearer %s x", f->inference);
  assert_int_not_equal(verify(f, h, WK_AUTH_INFERENCE, &err), 0);
  snprintf(h, sizeof h, "Bearer %.31s", f->inference);
  assert_int_not_equal(verify(f, h, WK_AUTH_INFERENCE, &err), 0);
  snprintf(h, sizeof h, "Bearer %sA", f->inference);
  assert_int_not_equal(verify(f, h, WK_AUTH_INFERENCE, &err), 0);
  assert_int_not_equal(verify(f, "Bearer ", WK_AUTH_INFERENCE, &err), 0);
  assert_int_not_equal(verify(f, "Basic abc", WK_AUTH_INFERENCE, &err), 0);
}

static void test_expiry(void **state) {
  fixture_t *f = *state;
  wk_err_t err;
  char h[128];
  int64_t later = wk_now_us() + 61LL * 60 * 1000000;
  snprintf(h, sizeof h, "Bearer %s", f->inference);
  assert_int_equal(wk_auth_verify(f->auth, h, WK_AUTH_INFERENCE, wk_now_us(), &err), 0);
  assert_int_equal(wk_auth_verify(f->auth, h, WK_AUTH_INFERENCE, later, &err), WK_ETIMEDOUT);
  assert_non_null(strstr(err.msg, "expired"));
  snprintf(h, sizeof h, "Bearer %s", f->api); /* the API key never expires */
  assert_int_equal(wk_auth_verify(f->auth, h, WK_AUTH_TOKEN_API, later * 1000, &err), 0);
}

static void test_free_removes_key_file(void **state) {
  (void)state;
  char dir[512], path[600];
  wk_err_t err;
  assert_int_equal(wk_fs_mkdtemp("auth", dir, sizeof dir, &err), 0);
  snprintf(path, sizeof path, "%s/keys.json", dir);
  wk_auth_t *a;
  wk_auth_opts_t o = {.key_file = path, .expiration_min = 0.5};
  assert_int_equal(wk_auth_new(&o, &a, &err), 0);
  assert_true(wk_fs_exists(path));
  wk_auth_free(a);
  assert_false(wk_fs_exists(path));
  /* a directory that cannot be written fails with the path in the message */
  snprintf(path, sizeof path, "%s/missing/keys.json", dir);
  o.key_file = path;
  assert_int_equal(wk_auth_new(&o, &a, &err), WK_EIO);
  assert_non_null(strstr(err.msg, path));
  o.expiration_min = 0;
  assert_int_equal(wk_auth_new(&o, &a, &err), WK_EINVAL);
  wk_fs_rmtree(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_key_file, setup, teardown),
      cmocka_unit_test_setup_teardown(test_verify, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry, setup, teardown),
      cmocka_unit_test(test_free_removes_key_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
