/* Unit tests for weights/transfer: each association on small key sets whose right answer
 * is known (torch_liberator's docstring examples among them), the per-key decisions
 * (copy, mangle, skip), the overlapping-block copy, the report and the size limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/limits.h"
#include "weights/transfer.h"

/* Keys are "name" or "name:d0xd1" (shape); float32 unless the name ends in "#i64". */
static char *shape_colon(char *spec) {
  char *c = strrchr(spec, ':');
  return c && c[1] >= '0' && c[1] <= '9' ? c : NULL;
}

typedef struct {
  wk_xfer_key_t k[64];
  int64_t shapes[64][4];
  char names[64][128];
  size_t n;
} keys_t;

static void keys(keys_t *ks, const char *const *spec) {
  memset(ks, 0, sizeof *ks);
  for (; *spec; spec++) {
    size_t i = ks->n++;
    snprintf(ks->names[i], sizeof ks->names[i], "%s", *spec);
    char *colon = shape_colon(ks->names[i]);
    ks->k[i].ndim = 1;
    ks->shapes[i][0] = 3;
    if (colon) {
      *colon = 0;
      ks->k[i].ndim = 0;
      for (char *p = colon + 1; *p;) {
        ks->shapes[i][ks->k[i].ndim++] = strtol(p, &p, 10);
        if (*p == 'x') p++;
      }
    }
    char *hash = strchr(ks->names[i], '#');
    ks->k[i].dtype = WK_DT_FLOAT32;
    if (hash) {
      *hash = 0;
      ks->k[i].dtype = WK_DT_INT64;
    }
    ks->k[i].name = ks->names[i];
    ks->k[i].shape = ks->shapes[i];
  }
}

static wk_xfer_t *plan(const char *const *other, const char *const *self, wk_assoc_t a,
                       bool mangle) {
  static keys_t ko, ks;
  keys(&ko, other);
  keys(&ks, self);
  wk_xfer_t *x;
  wk_err_t err;
  assert_int_equal(wk_xfer_plan(ko.k, ko.n, ks.k, ks.n, a, mangle, &x, &err), 0);
  return x;
}

/* The other key copied into self key i ("" when unset), through the report. */
static void expect_source(wk_xfer_t *x, size_t i, const char *const *other, const char *name) {
  long src;
  wk_xfer_action_t act = wk_xfer_action(x, i, &src);
  if (!name) {
    assert_int_equal(act, WK_XFER_UNSET);
    assert_int_equal(src, -1);
    return;
  }
  assert_true(src >= 0);
  char buf[128];
  snprintf(buf, sizeof buf, "%s", other[src]);
  char *c = shape_colon(buf);
  if (c) *c = 0;
  assert_string_equal(buf, name);
}

static void expect_counts(wk_xfer_t *x, size_t full, size_t skipped, size_t unset, size_t unused) {
  wk_xfer_counts_t c;
  wk_xfer_counts(x, &c);
  assert_int_equal(c.full_add, full);
  assert_int_equal(c.skipped, skipped);
  assert_int_equal(c.self_unset, unset);
  assert_int_equal(c.other_unused, unused);
}

static void test_association_names(void **state) {
  (void)state;
  wk_assoc_t a;
  wk_err_t err;
  assert_int_equal(wk_assoc_parse("embedding", &a, &err), 0);
  assert_int_equal(a, WK_ASSOC_EMBEDDING);
  assert_int_equal(wk_assoc_parse("module-hack", &a, &err), 0);
  assert_int_equal(a, WK_ASSOC_MODULE_HACK);
  assert_int_equal(wk_assoc_parse("isomorphic", &a, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "unknown association 'isomorphic'"));
  assert_non_null(strstr(err.msg, "prefix-hack"));
}

static void test_strict_and_subset(void **state) {
  (void)state;
  const char *other[] = {"a.weight", "b.weight", NULL};
  const char *self[] = {"b.weight", "a.weight", "c.weight", NULL};
  /* every other key is a self key: used as they are, whatever the association */
  for (int a = WK_ASSOC_STRICT; a <= WK_ASSOC_EMBEDDING; a++) {
    wk_xfer_t *x = plan(other, self, (wk_assoc_t)a, false);
    expect_source(x, 0, other, "b.weight");
    expect_source(x, 1, other, "a.weight");
    expect_source(x, 2, other, NULL);
    expect_counts(x, 2, 0, 1, 0);
    assert_false(wk_xfer_perfect(x));
    wk_xfer_free(x);
  }
  const char *renamed[] = {"module.a.weight", "b.weight", NULL};
  wk_xfer_t *x = plan(renamed, self, WK_ASSOC_STRICT, false);
  expect_counts(x, 1, 1, 2, 1);
  wk_xfer_free(x);
}

static void test_module_hack(void **state) {
  (void)state;
  const char *plain[] = {"conv.weight", "fc.weight", NULL};
  const char *wrapped[] = {"module.conv.weight", "module.fc.weight", NULL};
  wk_xfer_t *x = plan(plain, wrapped, WK_ASSOC_MODULE_HACK, false);
  expect_source(x, 0, plain, "conv.weight");
  expect_source(x, 1, plain, "fc.weight");
  assert_true(wk_xfer_perfect(x));
  wk_xfer_free(x);
  x = plan(wrapped, plain, WK_ASSOC_MODULE_HACK, false);
  expect_source(x, 0, wrapped, "module.conv.weight");
  assert_true(wk_xfer_perfect(x));
  wk_xfer_free(x);
  /* strict does not rename */
  x = plan(wrapped, plain, WK_ASSOC_STRICT, false);
  expect_counts(x, 0, 2, 2, 2);
  wk_xfer_free(x);
}

static void test_prefix_hack(void **state) {
  (void)state;
  /* torch_liberator's _best_prefix_transform example: remove "mod.", add
   * "bar.foo.extra." lands f.1.b and f.1.n */
  const char *other[] = {"mod.f.0.w", "mod.f.1.b", "mod.f.1.n", "mod.f.1.rm", "mod.f.1.rv", NULL};
  const char *self[] = {"bar.foo.extra.f.1.b", "bar.foo.extra.f.1.n", "bar.foo.extra.f.1.w",
                        "bar.foo.extra.f.3.w", NULL};
  wk_xfer_t *x = plan(other, self, WK_ASSOC_PREFIX_HACK, false);
  expect_source(x, 0, other, "mod.f.1.b");
  expect_source(x, 1, other, "mod.f.1.n");
  expect_source(x, 2, other, NULL);
  expect_counts(x, 2, 3, 2, 3);
  wk_xfer_free(x);
  /* one spoiler key in self: the most frequent prefix is added */
  const char *plain[] = {"conv.weight", "layer.0.weight", "layer.1.weight", NULL};
  const char *wrapped[] = {"backbone.conv.weight", "backbone.layer.0.weight",
                           "backbone.layer.1.weight", "extra.weight", NULL};
  x = plan(plain, wrapped, WK_ASSOC_PREFIX_HACK, false);
  expect_counts(x, 3, 0, 1, 0);
  expect_source(x, 1, plain, "layer.0.weight");
  wk_xfer_free(x);
}

static void test_subtree_associations(void **state) {
  (void)state;
  /* a network inside a bigger one, under another name, with its own extra layer sorted
   * before it: the ordered search keeps the order, so the two extra layers cannot both
   * be matched with the network (torch_liberator's README case) */
  const char *other[] = {"backbone.conv1.weight",
                         "backbone.bn1.weight",
                         "backbone.bn1.running_mean",
                         "backbone.layer1.0.conv1.weight",
                         "backbone.layer1.0.bn1.weight",
                         "backbone.layer1.1.conv1.weight",
                         "backbone.fc.weight:10x4",
                         "backbone.fc.bias:10",
                         "zhead.weight:1x1",
                         "zhead.bias:1",
                         NULL};
  const char *self[] = {"ahead.weight:1x1",
                        "ahead.bias:1",
                        "module.conv1.weight",
                        "module.bn1.weight",
                        "module.bn1.running_mean",
                        "module.layer1.0.conv1.weight",
                        "module.layer1.0.bn1.weight",
                        "module.layer1.1.conv1.weight",
                        "module.fc.weight:10x4",
                        "module.fc.bias:10",
                        NULL};
  for (int a = WK_ASSOC_ISOMORPHISM; a <= WK_ASSOC_EMBEDDING; a++) {
    wk_xfer_t *x = plan(other, self, (wk_assoc_t)a, false);
    expect_counts(x, 8, 2, 2, 2);
    expect_source(x, 0, other, NULL);
    expect_source(x, 2, other, "backbone.conv1.weight");
    expect_source(x, 5, other, "backbone.layer1.0.conv1.weight");
    expect_source(x, 7, other, "backbone.layer1.1.conv1.weight");
    expect_source(x, 9, other, "backbone.fc.bias");
    wk_xfer_free(x);
  }
  /* a ':' in a key is kept (torch_liberator would turn it into '.') */
  const char *colon[] = {"enc.a:b.weight", "enc.c.weight", NULL};
  const char *colon_into[] = {"model.enc.a:b.weight", "model.enc.c.weight", NULL};
  wk_xfer_t *xc = plan(colon, colon_into, WK_ASSOC_ISOMORPHISM, false);
  expect_source(xc, 0, colon, "enc.a:b.weight");
  assert_true(wk_xfer_perfect(xc));
  wk_xfer_free(xc);

  /* embedded deeper, with an extra level: backbone.body.* */
  const char *flat[] = {"conv1.weight",        "layer1.0.conv1.weight",
                        "layer1.0.bn1.weight", "layer2.0.conv1.weight",
                        "fc.weight",           NULL};
  const char *deep[] = {"backbone.body.conv1.weight",
                        "backbone.body.layer1.0.conv1.weight",
                        "backbone.body.layer1.0.bn1.weight",
                        "backbone.body.layer2.0.conv1.weight",
                        "backbone.fpn.inner.0.weight",
                        "head.cls.weight",
                        NULL};
  for (int a = WK_ASSOC_ISOMORPHISM; a <= WK_ASSOC_EMBEDDING; a++) {
    wk_xfer_t *x = plan(flat, deep, (wk_assoc_t)a, false);
    expect_counts(x, 4, 1, 2, 1);
    expect_source(x, 2, flat, "layer1.0.bn1.weight");
    expect_source(x, 3, flat, "layer2.0.conv1.weight");
    wk_xfer_free(x);
  }
}

static void test_shapes_dtypes_and_mangle(void **state) {
  (void)state;
  const char *other[] = {
      "fc.weight:4x3", "fc.bias:4", "conv.weight:2x2x3", "emb.weight:2x3", "steps#i64",
      "same.weight:5", NULL};
  const char *self[] = {
      "fc.weight:2x5", "fc.bias:2", "conv.weight:4x3", "emb.weight:3x4", "steps:3",
      "same.weight:5", NULL};
  wk_xfer_t *x = plan(other, self, WK_ASSOC_STRICT, false);
  wk_xfer_counts_t c;
  wk_xfer_counts(x, &c);
  assert_int_equal(c.full_add, 1);
  assert_int_equal(c.skipped, 5); /* no mangling, a rank change, a dtype change */
  wk_xfer_free(x);

  x = plan(other, self, WK_ASSOC_STRICT, true);
  wk_xfer_counts(x, &c);
  long src;
  assert_int_equal(wk_xfer_action(x, 0, &src), WK_XFER_PARTIAL_SOME); /* 10 < 12 */
  assert_int_equal(wk_xfer_action(x, 1, &src), WK_XFER_UNSET);        /* biases are not */
  assert_int_equal(wk_xfer_action(x, 2, &src), WK_XFER_UNSET);        /* other rank */
  assert_int_equal(wk_xfer_action(x, 3, &src), WK_XFER_PARTIAL_ALL);  /* 12 >= 6 */
  assert_int_equal(wk_xfer_action(x, 4, &src), WK_XFER_UNSET);        /* int64 into float */
  assert_int_equal(wk_xfer_action(x, 5, &src), WK_XFER_FULL);
  assert_int_equal(c.partial_add_some, 1);
  assert_int_equal(c.partial_add_all, 1);
  assert_int_equal(c.skipped, 3);
  assert_int_equal(c.self_unset, 3);
  char sum[128];
  wk_xfer_summary(x, sum, sizeof sum);
  assert_string_equal(sum, "3 added (2 partially), 3 skipped, 3 unset, 3 unused");
  wk_xfer_free(x);
}

static void test_copy_block(void **state) {
  (void)state;
  /* other: a 4x3 transposed view of a 3x4 storage; self: 2x5 filled with -1 */
  float storage[12], dst[10];
  for (int i = 0; i < 12; i++)
    storage[i] = (float)i;
  for (int i = 0; i < 10; i++)
    dst[i] = -1;
  wk_pt_tensor_t src = {.name = "w", .dtype = WK_DT_FLOAT32, .ndim = 2, .data = storage};
  src.shape[0] = 4, src.shape[1] = 3, src.strides[0] = 1, src.strides[1] = 4;
  const int64_t shape[2] = {2, 5};
  wk_xfer_copy_block(&src, dst, shape);
  /* src[i][j] = storage[i + 4j]; block 2x3 */
  const float want[10] = {0, 4, 8, -1, -1, 1, 5, 9, -1, -1};
  assert_memory_equal(dst, want, sizeof want);
}

static void test_report_json(void **state) {
  (void)state;
  const char *other[] = {"module.a.weight", "module.b.weight", "x.weight", NULL};
  const char *self[] = {"a.weight", "b.weight", "c.weight", NULL};
  wk_xfer_t *x = plan(other, self, WK_ASSOC_ISOMORPHISM, false);
  char *s = wk_xfer_report_json(x, 0);
  assert_non_null(s);
  json_error_t je;
  json_t *r = json_loads(s, 0, &je);
  assert_non_null(r);
  json_t *map = json_object_get(r, "mapping");
  assert_true(json_is_object(map));
  assert_string_equal(json_string_value(json_object_get(map, "module.a.weight")), "a.weight");
  json_t *seen = json_object_get(r, "seen");
  assert_int_equal(json_array_size(json_object_get(seen, "full_add")), 2);
  assert_true(json_is_array(json_object_get(seen, "partial_add_some")));
  assert_true(json_is_array(json_object_get(seen, "partial_add_all")));
  assert_int_equal(json_array_size(json_object_get(seen, "skipped")), 1);
  assert_string_equal(json_string_value(json_array_get(json_object_get(r, "self_unset"), 0)),
                      "c.weight");
  assert_string_equal(json_string_value(json_array_get(json_object_get(r, "other_unused"), 0)),
                      "x.weight");
  json_decref(r);
  free(s);
  wk_xfer_free(x);
  /* the hacks report no mapping, as torch_liberator */
  x = plan(other, self, WK_ASSOC_MODULE_HACK, false);
  s = wk_xfer_report_json(x, 0);
  r = json_loads(s, 0, &je);
  assert_true(json_is_null(json_object_get(r, "mapping")));
  json_decref(r);
  free(s);
  wk_xfer_free(x);
}

static void test_renamed_alike_later_wins(void **state) {
  (void)state;
  const char *other[] = {"module.w", "w", NULL};
  const char *self[] = {"w", "v", NULL};
  /* stripping "module." makes both "w": the later one is the one copied */
  wk_xfer_t *x = plan(other, self, WK_ASSOC_MODULE_HACK, false);
  expect_source(x, 0, other, "w");
  wk_xfer_free(x);
}

static void test_search_size_limit(void **state) {
  (void)state;
  size_t n = 6000; /* 6001 x 6001 nodes > WK_MAX_XFER_CELLS */
  wk_xfer_key_t *a = calloc(n, sizeof *a), *b = calloc(n, sizeof *b);
  char(*na)[32] = calloc(n, 32), (*nb)[32] = calloc(n, 32);
  static const int64_t shape[1] = {1};
  for (size_t i = 0; i < n; i++) {
    snprintf(na[i], 32, "a.k%zu", i);
    snprintf(nb[i], 32, "b.k%zu", i);
    a[i] = (wk_xfer_key_t){na[i], WK_DT_FLOAT32, 1, shape};
    b[i] = (wk_xfer_key_t){nb[i], WK_DT_FLOAT32, 1, shape};
  }
  assert_true((size_t)6001 * 6001 > (size_t)WK_MAX_XFER_CELLS);
  wk_xfer_t *x = NULL;
  wk_err_t err;
  assert_int_equal(wk_xfer_plan(a, n, b, n, WK_ASSOC_ISOMORPHISM, false, &x, &err), WK_ETOOBIG);
  assert_null(x);
  assert_non_null(strstr(err.msg, "WK_MAX_XFER_CELLS"));
  /* the prefix hack has no table */
  assert_int_equal(wk_xfer_plan(a, n, b, n, WK_ASSOC_PREFIX_HACK, false, &x, &err), 0);
  wk_xfer_counts_t c;
  wk_xfer_counts(x, &c);
  assert_int_equal(c.full_add, n);
  wk_xfer_free(x);
  free(a);
  free(b);
  free(na);
  free(nb);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_association_names),
      cmocka_unit_test(test_strict_and_subset),
      cmocka_unit_test(test_module_hack),
      cmocka_unit_test(test_prefix_hack),
      cmocka_unit_test(test_subtree_associations),
      cmocka_unit_test(test_shapes_dtypes_and_mangle),
      cmocka_unit_test(test_copy_block),
      cmocka_unit_test(test_report_json),
      cmocka_unit_test(test_renamed_alike_later_wins),
      cmocka_unit_test(test_search_size_limit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
