/* Unit tests for tensor/tensor: dtype names and sizes, allocation limits, shape strings and
 * value trees. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/error.h"
#include "core/limits.h"
#include "tensor/tensor.h"

static void test_dtype_names(void **state) {
  (void)state;
  static const struct {
    wk_dtype_t dt;
    const char *name;
    size_t size;
  } all[] = {{WK_DT_FLOAT32, "float32", 4}, {WK_DT_FLOAT64, "float64", 8},
             {WK_DT_FLOAT16, "float16", 2}, {WK_DT_BFLOAT16, "bfloat16", 2},
             {WK_DT_INT8, "int8", 1},       {WK_DT_INT16, "int16", 2},
             {WK_DT_INT32, "int32", 4},     {WK_DT_INT64, "int64", 8},
             {WK_DT_UINT8, "uint8", 1},     {WK_DT_BOOL, "bool", 1}};
  assert_int_equal(sizeof all / sizeof all[0], WK_DT_COUNT);
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    assert_string_equal(wk_dtype_name(all[i].dt), all[i].name);
    assert_int_equal(wk_dtype_size(all[i].dt), all[i].size);
    wk_dtype_t dt = WK_DT_COUNT;
    assert_int_equal(wk_dtype_parse(all[i].name, &dt), 0);
    assert_int_equal(dt, all[i].dt);
    char torch_name[32];
    strcpy(torch_name, "torch.");
    strcat(torch_name, all[i].name);
    assert_int_equal(wk_dtype_parse(torch_name, &dt), 0);
    assert_int_equal(dt, all[i].dt);
  }
  assert_null(wk_dtype_name(WK_DT_COUNT));
  assert_null(wk_dtype_name((wk_dtype_t)-1));
  assert_int_equal(wk_dtype_size(WK_DT_COUNT), 0);

  static const struct {
    const char *alias;
    wk_dtype_t dt;
  } aliases[] = {{"float", WK_DT_FLOAT32},   {"double", WK_DT_FLOAT64}, {"half", WK_DT_FLOAT16},
                 {"long", WK_DT_INT64},      {"int", WK_DT_INT32},      {"short", WK_DT_INT16},
                 {"torch.long", WK_DT_INT64}};
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
    wk_dtype_t dt = WK_DT_COUNT;
    assert_int_equal(wk_dtype_parse(aliases[i].alias, &dt), 0);
    assert_int_equal(dt, aliases[i].dt);
  }
  const char *bad[] = {"", "Float32", "float128", "torch.", "torch.torch.float32", "int 64"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    wk_dtype_t dt = WK_DT_BOOL;
    assert_int_equal(wk_dtype_parse(bad[i], &dt), WK_EINVAL);
    assert_int_equal(dt, WK_DT_BOOL); /* untouched */
  }
}

static void test_alloc_limits(void **state) {
  (void)state;
  wk_tensor_t t;
  int64_t shape[WK_MAX_DIMS + 1] = {2, 3, 4};
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_FLOAT64, 3, shape), 0);
  assert_int_equal(t.ndim, 3);
  assert_int_equal(wk_tensor_numel(&t), 24);
  assert_int_equal(t.nbytes, 24 * 8);
  assert_true(t.owns_data);
  for (size_t i = 0; i < 24; i++)
    assert_true(((double *)t.data)[i] == 0.0); /* zeroed */
  wk_tensor_destroy(&t);
  assert_null(t.data);
  assert_int_equal(t.ndim, 0);

  /* 0-d (one element) and empty tensors */
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_INT64, 0, NULL), 0);
  assert_int_equal(wk_tensor_numel(&t), 1);
  assert_int_equal(t.nbytes, 8);
  wk_tensor_destroy(&t);
  int64_t empty[] = {5, 0, 7};
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_FLOAT32, 3, empty), 0);
  assert_int_equal(wk_tensor_numel(&t), 0);
  assert_int_equal(t.nbytes, 0);
  assert_non_null(t.data);
  wk_tensor_destroy(&t);

  /* limits: nothing is allocated and t is untouched */
  memset(&t, 0x5a, sizeof t);
  int64_t huge[] = {INT64_C(1) << 40, INT64_C(1) << 40, INT64_C(1) << 40}; /* product overflows */
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_FLOAT32, 3, huge), WK_ETOOBIG);
  int64_t over[] = {WK_MAX_TENSOR_ELEMS + 1};
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_UINT8, 1, over), WK_ETOOBIG);
  int64_t neg[] = {3, -1};
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_FLOAT32, 2, neg), WK_EINVAL);
  for (int i = 0; i <= WK_MAX_DIMS; i++)
    shape[i] = 1;
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_FLOAT32, WK_MAX_DIMS + 1, shape), WK_ETOOBIG);
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_FLOAT32, -1, shape), WK_ETOOBIG);
  assert_int_equal(((unsigned char *)&t)[0], 0x5a);
  assert_int_equal(wk_tensor_alloc(&t, WK_DT_FLOAT32, WK_MAX_DIMS, shape), 0);
  assert_int_equal(wk_tensor_numel(&t), 1);
  wk_tensor_destroy(&t);

  /* a tensor that does not own its data leaves it alone */
  float mine[2] = {1, 2};
  t = (wk_tensor_t){.dtype = WK_DT_FLOAT32,
                    .ndim = 1,
                    .shape = {2},
                    .data = mine,
                    .nbytes = sizeof mine,
                    .owns_data = 0};
  wk_tensor_destroy(&t);
  assert_true(mine[1] == 2.0f);
}

static void test_shape_str(void **state) {
  (void)state;
  char out[64];
  int64_t s[] = {2, 3, 4};
  wk_shape_str(s, 3, out, sizeof out);
  assert_string_equal(out, "[2,3,4]");
  wk_shape_str(s, 0, out, sizeof out);
  assert_string_equal(out, "[]");
  int64_t big[] = {INT64_MAX, -1};
  wk_shape_str(big, 2, out, sizeof out);
  assert_string_equal(out, "[9223372036854775807,-1]");
  /* truncation: always NUL-terminated, never past outlen */
  for (size_t len = 1; len <= 8; len++) {
    char small[16];
    memset(small, 'Z', sizeof small);
    wk_shape_str(s, 3, small, len);
    assert_true(strlen(small) < len);
    assert_int_equal(strncmp(small, "[2,3,4]", strlen(small)), 0);
    for (size_t k = len; k < sizeof small; k++)
      assert_int_equal(small[k], 'Z');
  }
  out[0] = 'Z';
  wk_shape_str(s, 3, out, 0);
  assert_int_equal(out[0], 'Z');
}

static void test_value_trees(void **state) {
  (void)state;
  wk_value_t *root = wk_value_new(WK_V_DICT);
  assert_non_null(root);
  assert_int_equal(root->kind, WK_V_DICT);
  assert_int_equal(root->count, 0);

  wk_value_t *list = wk_value_new(WK_V_LIST);
  for (int i = 0; i < 10; i++) {
    wk_value_t *v = wk_value_new(WK_V_INT);
    v->i = i;
    assert_int_equal(wk_value_append(list, NULL, v), 0);
  }
  assert_int_equal(list->count, 10);
  assert_null(list->keys);
  assert_int_equal(list->items[7]->i, 7);

  char key[8] = "scores";
  assert_int_equal(wk_value_append(root, key, list), 0);
  key[0] = 'X'; /* the dict keeps its own copy */
  assert_string_equal(root->keys[0], "scores");

  wk_value_t *tv = wk_value_new(WK_V_TENSOR);
  int64_t shape[] = {4};
  assert_int_equal(wk_tensor_alloc(&tv->tensor, WK_DT_FLOAT32, 1, shape), 0);
  assert_int_equal(wk_value_append(root, "logits", tv), 0);
  wk_value_t *sv = wk_value_new(WK_V_STRING);
  sv->s = strdup("label");
  assert_int_equal(wk_value_append(root, NULL, sv), 0); /* NULL key is stored as "" */
  assert_string_equal(root->keys[2], "");
  assert_int_equal(wk_value_append(root, "none", wk_value_new(WK_V_NONE)), 0);
  assert_int_equal(root->count, 4);
  assert_ptr_equal(root->items[1], tv);
  wk_value_free(root); /* frees everything: ASan reports a leak otherwise */
  wk_value_free(NULL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dtype_names),
      cmocka_unit_test(test_alloc_limits),
      cmocka_unit_test(test_shape_str),
      cmocka_unit_test(test_value_trees),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
