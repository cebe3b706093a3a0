/* Unit tests for weights/pt: checkpoints written here with wick's zip writer are read
 * without copies (tensors point into the 64-byte aligned mapping), every view is checked
 * against its storage, and bad files of every kind fail with a clear message. */
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

#include "archive/zip.h"
#include "core/fs.h"
#include "pk.h"
#include "weights/pt.h"

static char g_path[1024];
static pk_t g_pk;
static float g_data[12];

static int setup(void **state) {
  (void)state;
  mkdir(WK_TEST_DATA_DIR, 0755);
  snprintf(g_path, sizeof g_path, "%s/weights_test.pt", WK_TEST_DATA_DIR);
  for (int i = 0; i < 12; i++)
    g_data[i] = (float)i * 1.5f;
  return 0;
}

/* Writes record/data.pkl (g_pk), record/data/0 (nbytes of g_data) and record/version. */
static void write_pt(const char *record, size_t nbytes) {
  wk_zip_writer_t *w;
  wk_err_t err;
  char name[256];
  assert_int_equal(wk_zip_writer_open(g_path, &w, &err), 0);
  snprintf(name, sizeof name, "%s/data.pkl", record);
  assert_int_equal(wk_zip_writer_add(w, name, g_pk.b, g_pk.n, WK_ZIP_STORED, &err), 0);
  snprintf(name, sizeof name, "%s/data/0", record);
  assert_int_equal(wk_zip_writer_add(w, name, g_data, nbytes, WK_ZIP_STORED, &err), 0);
  snprintf(name, sizeof name, "%s/version", record);
  assert_int_equal(wk_zip_writer_add(w, name, "3\n", 2, WK_ZIP_STORED, &err), 0);
  assert_int_equal(wk_zip_writer_close(w, &err), 0);
}

static void one_tensor(int64_t numel, int64_t offset, const int64_t *size, const int64_t *stride,
                       int ndim) {
  pk_begin_dict(&g_pk);
  pk_str(&g_pk, "layer.weight");
  pk_tensor(&g_pk, "FloatStorage", "0", numel, offset, size, stride, ndim);
  pk_end_dict(&g_pk);
}

static void test_view_points_into_the_mapping(void **state) {
  (void)state;
  const int64_t size[2] = {2, 3}, stride[2] = {1, 2}; /* a transposed view at offset 2 */
  one_tensor(12, 2, size, stride, 2);
  write_pt("mymodel", sizeof g_data);
  wk_pt_t *pt;
  wk_err_t err;
  assert_int_equal(wk_pt_open(g_path, WK_PT_STRICT, &pt, &err), 0);
  assert_string_equal(wk_pt_record(pt), "mymodel");
  assert_int_equal(wk_pt_version(pt), 3);
  assert_int_equal(wk_pt_kind(pt), WK_PT_CHECKPOINT);
  assert_string_equal(wk_pt_state_dict_path(pt), "");
  assert_int_equal(wk_pt_count(pt), 1);
  const wk_pt_tensor_t *t = wk_pt_find(pt, "layer.weight");
  assert_non_null(t);
  assert_int_equal(t->dtype, WK_DT_FLOAT32);
  assert_int_equal(t->numel, 6);
  assert_false(t->contiguous);
  /* no copy: the pointer is inside the file's mapping, at offset 2 of a 64-aligned entry */
  wk_zip_t *z;
  assert_int_equal(wk_zip_open(g_path, &z, &err), 0);
  int i = wk_zip_find(z, "mymodel/data/0");
  assert_true(i >= 0);
  assert_int_equal(wk_zip_data_offset(z, (size_t)i) % 64, 0);
  wk_zip_close(z);
  assert_int_equal(((uintptr_t)t->data - 2 * sizeof(float)) % 64, 0);
  assert_memory_equal(t->data, &g_data[2], sizeof(float));
  float out[6];
  wk_pt_tensor_copy(t, out);
  const float want[6] = {g_data[2], g_data[4], g_data[6], g_data[3], g_data[5], g_data[7]};
  assert_memory_equal(out, want, sizeof want);
  wk_pt_close(pt);
}

static void expect_open_fails(int code, const char *needle) {
  wk_pt_t *pt = (wk_pt_t *)0x1;
  wk_err_t err = {{0}};
  assert_int_equal(wk_pt_open(g_path, 0, &pt, &err), code);
  assert_ptr_equal(pt, (wk_pt_t *)0x1);
  if (strstr(err.msg, needle) == NULL) fail_msg("'%s' not in: %s", needle, err.msg);
}

static void test_storage_bounds(void **state) {
  (void)state;
  const int64_t size[2] = {3, 4}, stride[2] = {4, 1};
  one_tensor(12, 1, size, stride, 2); /* reaches element 12 of 12 */
  write_pt("archive", sizeof g_data);
  expect_open_fails(WK_EFORMAT, "the storage is shorter than the tensor it backs");
  one_tensor(12, 0, size, stride, 2); /* declares 12 floats, the entry holds 11 */
  write_pt("archive", sizeof g_data - 4);
  expect_open_fails(WK_EFORMAT, "declares 12 float32 elements but holds 44 bytes");
  const int64_t huge[2] = {INT64_C(1) << 40, INT64_C(1) << 40}, s2[2] = {1, 1};
  one_tensor(12, 0, huge, s2, 2); /* numel overflows */
  write_pt("archive", sizeof g_data);
  expect_open_fails(WK_ETOOBIG, "overflow");
  const int64_t one[1] = {3}, bigstride[1] = {INT64_MAX / 2 + 1}; /* 2 * 2^62 */
  one_tensor(12, 0, one, bigstride, 1);                           /* extent overflows */
  write_pt("archive", sizeof g_data);
  expect_open_fails(WK_ETOOBIG, "overflow");
  const int64_t empty[1] = {0}, s1[1] = {1};
  one_tensor(12, 12, empty, s1, 1); /* an empty tensor at the end is fine */
  write_pt("archive", sizeof g_data);
  wk_pt_t *pt;
  wk_err_t err;
  assert_int_equal(wk_pt_open(g_path, 0, &pt, &err), 0);
  assert_int_equal(wk_pt_tensor(pt, 0)->numel, 0);
  wk_pt_close(pt);
}

static void test_every_truncation_fails(void **state) {
  (void)state;
  const int64_t size[1] = {12}, stride[1] = {1};
  one_tensor(12, 0, size, stride, 1);
  write_pt("archive", sizeof g_data);
  char *file;
  size_t len;
  assert_int_equal(wk_fs_read_file(g_path, 1 << 20, &file, &len, NULL), 0);
  for (size_t n = 0; n < len; n++) {
    wk_pt_t *pt;
    wk_err_t err;
    if (wk_pt_open_mem(file, n, 0, &pt, &err) == 0) fail_msg("a %zu-byte prefix was read", n);
    assert_true(err.msg[0] != '\0');
  }
  free(file);
}

static void test_wrong_formats(void **state) {
  (void)state;
  static const unsigned char legacy[] = {0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9,
                                         0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e, 0,    0,    0,
                                         0,    0,    0,    0,    0,    0,    0,    0,    0};
  wk_pt_t *pt;
  wk_err_t err;
  assert_int_equal(wk_pt_open_mem(legacy, sizeof legacy, 0, &pt, &err), WK_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "legacy torch.save format"));
  static const char junk[64] = "GIF89a this is not a checkpoint at all";
  assert_int_equal(wk_pt_open_mem(junk, sizeof junk, 0, &pt, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "not a PyTorch checkpoint"));
  /* a pickle opens with PROTO and a version from 2 to 5; 0x80 alone is junk */
  static const unsigned char pickled[] = {0x80, 0x04, 0x95, 0, 0, 0, 0, 0, 0, 0, 0, 0x7d, 0x2e};
  assert_int_equal(wk_pt_open_mem(pickled, sizeof pickled, 0, &pt, &err), WK_EUNSUPPORTED);
  assert_non_null(strstr(err.msg, "bare pickle"));
  static const unsigned char high[] = {0x80, 0xf3, 0x11, 0x42, 0x00, 0x9c, 0x21, 0x07};
  assert_int_equal(wk_pt_open_mem(high, sizeof high, 0, &pt, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "not a PyTorch checkpoint"));
  /* a zip without a record folder */
  wk_zip_writer_t *w;
  assert_int_equal(wk_zip_writer_open(g_path, &w, &err), 0);
  assert_int_equal(wk_zip_writer_add(w, "data.pkl", "\x80\x02}.", 4, WK_ZIP_STORED, &err), 0);
  assert_int_equal(wk_zip_writer_close(w, &err), 0);
  expect_open_fails(WK_EFORMAT, "record folder");
}

static void test_refused_global_is_named_with_its_file(void **state) {
  (void)state;
  pk_begin_dict(&g_pk);
  pk_str(&g_pk, "x");
  pk_global(&g_pk, "subprocess", "Popen");
  pk_op(&g_pk, ')');
  pk_op(&g_pk, 'R');
  pk_end_dict(&g_pk);
  write_pt("archive", sizeof g_data);
  expect_open_fails(WK_EUNSAFE, "archive/data.pkl: pickle byte");
  expect_open_fails(WK_EUNSAFE, "refused global 'subprocess.Popen'");
}

static void test_nested_state_dict_and_opaque(void **state) {
  (void)state;
  const int64_t size[1] = {4}, stride[1] = {1};
  pk_begin_dict(&g_pk);
  pk_str(&g_pk, "epoch");
  pk_int(&g_pk, 7);
  pk_str(&g_pk, "hyper_parameters");
  pk_global(&g_pk, "__main__", "HParams");
  pk_op(&g_pk, ')');
  pk_op(&g_pk, 0x81);
  pk_str(&g_pk, "state_dict");
  pk_op(&g_pk, '}');
  pk_op(&g_pk, '(');
  pk_str(&g_pk, "a");
  pk_tensor(&g_pk, "FloatStorage", "0", 12, 0, size, stride, 1);
  pk_str(&g_pk, "b");
  pk_tensor(&g_pk, "FloatStorage", "0", 12, 4, size, stride, 1);
  pk_str(&g_pk, "a"); /* a later duplicate key wins, as in a dict */
  pk_tensor(&g_pk, "FloatStorage", "0", 12, 8, size, stride, 1);
  pk_op(&g_pk, 'u');
  pk_end_dict(&g_pk);
  write_pt("archive", sizeof g_data);
  wk_pt_t *pt;
  wk_err_t err;
  assert_int_equal(wk_pt_open(g_path, 0, &pt, &err), 0);
  assert_string_equal(wk_pt_state_dict_path(pt), "state_dict");
  assert_int_equal(wk_pt_count(pt), 2);
  assert_string_equal(wk_pt_tensor(pt, 0)->name, "a");
  assert_int_equal(wk_pt_tensor(pt, 0)->offset, 8);
  assert_int_equal(wk_pt_opaque_count(pt), 1);
  assert_string_equal(wk_pt_opaque(pt, 0)->path, "hyper_parameters");
  assert_string_equal(wk_pt_opaque(pt, 0)->global, "__main__.HParams");
  assert_int_equal(wk_pt_all_count(pt), 3);
  assert_string_equal(wk_pt_all_tensor(pt, 1)->name, "state_dict.b");
  wk_pt_close(pt);
  assert_int_equal(wk_pt_open(g_path, WK_PT_STRICT, &pt, &err), WK_EUNSAFE);
  assert_non_null(strstr(err.msg, "refused global '__main__.HParams'"));
}

static void test_writer_round_trip(void **state) {
  (void)state;
  const int64_t size[2] = {2, 3}, stride[2] = {1, 2};
  one_tensor(12, 2, size, stride, 2); /* a strided view: the writer gathers it */
  write_pt("archive", sizeof g_data);
  wk_pt_t *pt;
  wk_err_t err;
  assert_int_equal(wk_pt_open(g_path, 0, &pt, &err), 0);
  int16_t ints[4] = {-3, 0, 7, 32767};
  wk_pt_tensor_t ts[3] = {*wk_pt_tensor(pt, 0)};
  ts[1] = (wk_pt_tensor_t){.name = "b",
                           .dtype = WK_DT_INT16,
                           .ndim = 1,
                           .shape = {4},
                           .strides = {1},
                           .data = ints,
                           .requires_grad = true};
  ts[2] = (wk_pt_tensor_t){.name = "scalar", .dtype = WK_DT_INT16, .ndim = 0, .data = ints};
  char out[1100];
  snprintf(out, sizeof out, "%s/written.pt", WK_TEST_DATA_DIR);
  assert_int_equal(wk_pt_write(out, ts, 3, &err), 0);
  wk_pt_close(pt);
  assert_int_equal(wk_pt_open(out, WK_PT_STRICT, &pt, &err), 0);
  assert_int_equal(wk_pt_count(pt), 3);
  const wk_pt_tensor_t *a = wk_pt_find(pt, "layer.weight");
  assert_true(a->contiguous && a->offset == 0 && a->strides[0] == 3 && a->strides[1] == 1);
  const float want[6] = {g_data[2], g_data[4], g_data[6], g_data[3], g_data[5], g_data[7]};
  assert_memory_equal(a->data, want, sizeof want);
  const wk_pt_tensor_t *b = wk_pt_find(pt, "b");
  assert_true(b->dtype == WK_DT_INT16 && b->requires_grad);
  assert_memory_equal(b->data, ints, sizeof ints);
  assert_int_equal(wk_pt_find(pt, "scalar")->numel, 1);
  assert_int_equal(wk_pt_find(pt, "scalar")->ndim, 0);
  assert_int_equal(((uintptr_t)b->data) % 64, 0);
  wk_pt_close(pt);
  /* refusals leave no file behind */
  unlink(out);
  ts[2].name = "b";
  assert_int_equal(wk_pt_write(out, ts + 1, 2, &err), WK_EINVAL);
  assert_non_null(strstr(err.msg, "given twice"));
  ts[2].name = "c";
  ts[2].dtype = WK_DT_COUNT;
  assert_int_equal(wk_pt_write(out, ts + 1, 2, &err), WK_EINVAL);
  assert_false(wk_fs_exists(out));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_view_points_into_the_mapping),
      cmocka_unit_test(test_storage_bounds),
      cmocka_unit_test(test_every_truncation_fails),
      cmocka_unit_test(test_wrong_formats),
      cmocka_unit_test(test_refused_global_is_named_with_its_file),
      cmocka_unit_test(test_nested_state_dict_and_opaque),
      cmocka_unit_test(test_writer_round_trip),
  };
  return cmocka_run_group_tests(tests, setup, NULL);
}
