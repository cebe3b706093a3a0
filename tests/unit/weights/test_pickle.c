/* Unit tests for weights/pickle: the restricted machine builds torch's state_dict pickles,
 * names the globals and opcodes it refuses, turns unknown classes into opaque values, and
 * ends cleanly on truncation, bombs, cycles and limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "pk.h"
#include "weights/pickle.h"

static pk_t g_pk;

static void build_state_dict(pk_t *p) {
  const int64_t size[2] = {2, 3}, stride[2] = {1, 2};
  pk_begin_dict(p);
  pk_str(p, "w");
  pk_tensor(p, "FloatStorage", "0", 12, 2, size, stride, 2);
  pk_str(p, "lr");
  pk_op(p, 'G');
  pk_raw(p, "\x3f\xb9\x99\x99\x99\x99\x99\x9a", 8); /* 0.1 */
  pk_str(p, "neg");
  pk_op(p, 0x8a);
  pk_raw(p, "\x02\x01\xff", 3); /* LONG1, 2 bytes: 0xff01 = -255 */
  pk_end_dict(p);
}

static void test_state_dict(void **state) {
  (void)state;
  build_state_dict(&g_pk);
  wk_pickle_t *p;
  wk_err_t err;
  assert_int_equal(wk_pickle_load(g_pk.b, g_pk.n, WK_PICKLE_STRICT, &p, &err), 0);
  const wk_pv_t *root = wk_pickle_root(p);
  assert_int_equal(root->kind, WK_PV_DICT);
  assert_int_equal(root->count, 3);
  const wk_pv_t *t = root->items[1];
  assert_int_equal(t->kind, WK_PV_TENSOR);
  assert_int_equal(t->tensor->ndim, 2);
  assert_int_equal(t->tensor->shape[1], 3);
  assert_int_equal(t->tensor->strides[1], 2);
  assert_int_equal(t->tensor->offset, 2);
  assert_string_equal(t->tensor->storage->s, "0");
  assert_int_equal(t->tensor->storage->numel, 12);
  assert_string_equal(t->tensor->dtype_name, "float32");
  assert_true(root->items[3]->kind == WK_PV_FLOAT && root->items[3]->f == 0.1);
  assert_true(root->items[5]->kind == WK_PV_INT && root->items[5]->i == -255);
  assert_int_equal(wk_pickle_tensor_count(p), 1);
  wk_pickle_free(p);
}

static void expect_refused(const pk_t *pk, unsigned flags, int code, const char *needle) {
  wk_pickle_t *p = (wk_pickle_t *)0x1;
  wk_err_t err = {{0}};
  assert_int_equal(wk_pickle_load(pk->b, pk->n, flags, &p, &err), code);
  assert_ptr_equal(p, (wk_pickle_t *)0x1); /* unchanged on failure */
  if (strstr(err.msg, needle) == NULL) fail_msg("'%s' not in: %s", needle, err.msg);
}

static void reduce_call(pk_t *pk, const char *mod, const char *name) {
  pk_begin_dict(pk);
  pk_str(pk, "x");
  pk_global(pk, mod, name);
  pk_op(pk, '(');
  pk_str(pk, "touch /tmp/wick-pwned");
  pk_op(pk, 't');
  pk_op(pk, 'R');
  pk_end_dict(pk);
}

static void test_code_globals_refused_in_both_modes(void **state) {
  (void)state;
  const char *g[][2] = {{"posix", "system"},     {"os", "system"},
                        {"builtins", "eval"},    {"__builtin__", "exec"},
                        {"subprocess", "Popen"}, {"torch", "load"},
                        {"torch.hub", "load"},   {"importlib", "import_module"}};
  for (size_t i = 0; i < sizeof g / sizeof g[0]; i++) {
    char needle[128];
    snprintf(needle, sizeof needle, "refused global '%s.%s'", g[i][0], g[i][1]);
    reduce_call(&g_pk, g[i][0], g[i][1]);
    expect_refused(&g_pk, 0, WK_EUNSAFE, needle);
    expect_refused(&g_pk, WK_PICKLE_STRICT, WK_EUNSAFE, needle);
  }
}

static void test_unknown_class_is_opaque_unless_strict(void **state) {
  (void)state;
  pk_begin_dict(&g_pk);
  pk_str(&g_pk, "hp");
  pk_global(&g_pk, "__main__", "HParams");
  pk_op(&g_pk, ')');
  pk_op(&g_pk, 0x81); /* NEWOBJ */
  pk_op(&g_pk, '}');
  pk_str(&g_pk, "lr");
  pk_int(&g_pk, 3);
  pk_op(&g_pk, 's');
  pk_op(&g_pk, 'b'); /* BUILD */
  pk_str(&g_pk, "d");
  pk_global(&g_pk, "mylib", "AttrDict"); /* a dict subclass: SETITEMS go into it */
  pk_op(&g_pk, ')');
  pk_op(&g_pk, 0x81);
  pk_str(&g_pk, "k");
  pk_int(&g_pk, 1);
  pk_op(&g_pk, 's');
  pk_end_dict(&g_pk);
  wk_pickle_t *p;
  wk_err_t err;
  assert_int_equal(wk_pickle_load(g_pk.b, g_pk.n, 0, &p, &err), 0);
  const wk_pv_t *root = wk_pickle_root(p);
  assert_int_equal(root->items[1]->kind, WK_PV_OPAQUE);
  assert_string_equal(root->items[1]->s, "__main__.HParams");
  assert_false(root->items[1]->opaque_is_class);
  assert_int_equal(root->items[1]->state->kind, WK_PV_DICT);
  assert_int_equal(root->items[3]->contents->count, 1);
  wk_pickle_free(p);
  expect_refused(&g_pk, WK_PICKLE_STRICT, WK_EUNSAFE, "refused global '__main__.HParams'");
}

static void test_harmless_builtins_are_opaque(void **state) {
  (void)state;
  reduce_call(&g_pk, "__builtin__", "set");
  wk_pickle_t *p;
  wk_err_t err;
  assert_int_equal(wk_pickle_load(g_pk.b, g_pk.n, 0, &p, &err), 0);
  assert_int_equal(wk_pickle_root(p)->items[1]->kind, WK_PV_OPAQUE);
  assert_string_equal(wk_pickle_root(p)->items[1]->s, "__builtin__.set");
  wk_pickle_free(p);
  expect_refused(&g_pk, WK_PICKLE_STRICT, WK_EUNSAFE, "refused global '__builtin__.set'");
  reduce_call(&g_pk, "builtins", "getattr");
  expect_refused(&g_pk, 0, WK_EUNSAFE, "refused global 'builtins.getattr': it can run code");
}

static void test_opcodes_outside_the_set_refused(void **state) {
  (void)state;
  static const struct {
    const char *bytes;
    size_t n;
    const char *needle;
  } cases[] = {
      {"\x80\x02\x93.", 4, "0x93 (STACK_GLOBAL)"},
      {"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.", 12, "0x95 (FRAME)"},
      {"\x80\x02(i__main__\nX\n.", 17, "(INST)"},
      {"\x80\x02]N\x90.", 6, "(ADDITEMS)"},
      {"\x80\x02\xff.", 4, "opcode 0xff is not allowed"},
      {"\x80\x02N0.", 5, "(POP)"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    g_pk.n = 0;
    pk_raw(&g_pk, cases[i].bytes, cases[i].n);
    expect_refused(&g_pk, 0, WK_EUNSAFE, cases[i].needle);
  }
}

static void test_every_prefix_fails_cleanly(void **state) {
  (void)state;
  build_state_dict(&g_pk);
  for (size_t n = 0; n < g_pk.n; n++) {
    wk_pickle_t *p;
    wk_err_t err;
    int rc = wk_pickle_load(g_pk.b, n, 0, &p, &err);
    if (rc == 0) fail_msg("a %zu-byte prefix of %zu was accepted", n, g_pk.n);
    assert_true(err.msg[0] != '\0');
  }
}

static void test_bombs_and_limits(void **state) {
  (void)state;
  /* MARK bomb */
  g_pk.n = 0;
  pk_raw(&g_pk, "\x80\x02", 2);
  for (int i = 0; i < 10000; i++)
    pk_op(&g_pk, '(');
  pk_op(&g_pk, '.');
  expect_refused(&g_pk, 0, WK_ETOOBIG, "nested MARKs");
  /* memo index past the limit */
  g_pk.n = 0;
  pk_raw(&g_pk, "\x80\x02Nr\xff\xff\xff\xff.", 9);
  expect_refused(&g_pk, 0, WK_ETOOBIG, "memo index");
  /* string longer than the data */
  g_pk.n = 0;
  pk_raw(&g_pk,
         "\x80\x02X\x00\x00\x00\x10"
         "ab.",
         11);
  expect_refused(&g_pk, 0, WK_EFORMAT, "truncated");
  /* 9-byte integer */
  g_pk.n = 0;
  pk_raw(&g_pk, "\x80\x02\x8a\x09\x01\x02\x03\x04\x05\x06\x07\x08\x09.", 14);
  expect_refused(&g_pk, 0, WK_EUNSUPPORTED, "64 bits");
  /* a tensor rank past WK_MAX_PT_DIMS */
  int64_t size[WK_MAX_PT_DIMS + 1], stride[WK_MAX_PT_DIMS + 1];
  for (int i = 0; i <= WK_MAX_PT_DIMS; i++)
    size[i] = stride[i] = 1;
  pk_begin_dict(&g_pk);
  pk_str(&g_pk, "t");
  pk_tensor(&g_pk, "FloatStorage", "0", 1, 0, size, stride, WK_MAX_PT_DIMS + 1);
  pk_end_dict(&g_pk);
  expect_refused(&g_pk, 0, WK_ETOOBIG, "dimensions");
  /* a storage id that is not a storage */
  g_pk.n = 0;
  pk_raw(&g_pk,
         "\x80\x02X\x03\x00\x00\x00"
         "abc\x85Q.",
         14);
  expect_refused(&g_pk, 0, WK_EUNSAFE, "persistent ids of storages");
  /* BUILD on a plain list */
  g_pk.n = 0;
  pk_raw(&g_pk, "\x80\x02]}b.", 6);
  expect_refused(&g_pk, 0, WK_EUNSUPPORTED, "BUILD on a list");
  /* a sparse tensor rebuild is allowlisted by torch but not read by wick */
  g_pk.n = 0;
  pk_raw(&g_pk, "\x80\x02", 2);
  pk_global(&g_pk, "torch._utils", "_rebuild_sparse_tensor");
  pk_op(&g_pk, ')');
  pk_op(&g_pk, 'R');
  pk_op(&g_pk, '.');
  expect_refused(&g_pk, 0, WK_EUNSUPPORTED, "dense (strided) tensors only");
}

static void test_cycles_build(void **state) {
  (void)state;
  g_pk.n = 0;
  pk_raw(&g_pk,
         "\x80\x02]q\x00h\x00"
         "a.",
         9); /* l = []; l.append(l) */
  wk_pickle_t *p;
  wk_err_t err;
  assert_int_equal(wk_pickle_load(g_pk.b, g_pk.n, 0, &p, &err), 0);
  const wk_pv_t *root = wk_pickle_root(p);
  assert_int_equal(root->kind, WK_PV_LIST);
  assert_ptr_equal(root->items[0], root);
  wk_pickle_free(p);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_state_dict),
      cmocka_unit_test(test_code_globals_refused_in_both_modes),
      cmocka_unit_test(test_unknown_class_is_opaque_unless_strict),
      cmocka_unit_test(test_harmless_builtins_are_opaque),
      cmocka_unit_test(test_opcodes_outside_the_set_refused),
      cmocka_unit_test(test_every_prefix_fails_cleanly),
      cmocka_unit_test(test_bombs_and_limits),
      cmocka_unit_test(test_cycles_build),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
