/* Unit tests for vision/preprocess: torchvision's output sizes, the crop's rounding and
 * padding, normalization, and that the cropped-region resize, the full resize and the
 * portable and SIMD code paths all give the same bytes. Byte equality with PIL itself is
 * checked by tests/e2e/test_vision_pipeline.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vision/preprocess.h"

static void fill(uint8_t *p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1103515245u + 12345u;
    p[i] = (uint8_t)(seed >> 16);
  }
}

static void test_shapes(void **state) {
  (void)state;
  wk_preprocess_opts_t o;
  wk_preprocess_opts_default(&o);
  int c, h, w;
  assert_int_equal(wk_preprocess_shape(&o, 640, 480, &c, &h, &w, NULL), 0);
  assert_int_equal(c, 3);
  assert_int_equal(h, 224);
  assert_int_equal(w, 224);
  o.crop_h = o.crop_w = 0;
  /* torchvision: shorter side 256, longer int(256 * long / short) */
  assert_int_equal(wk_preprocess_shape(&o, 640, 480, &c, &h, &w, NULL), 0);
  assert_int_equal(w, 341);
  assert_int_equal(h, 256);
  assert_int_equal(wk_preprocess_shape(&o, 7, 1000, &c, &h, &w, NULL), 0);
  assert_int_equal(w, 256);
  assert_int_equal(h, 36571);
  o.resize = 0;
  o.resize_h = 20;
  o.resize_w = 30;
  o.crop_w = 25;
  assert_int_equal(wk_preprocess_shape(&o, 1, 1, &c, &h, &w, NULL), 0);
  assert_int_equal(h, 20);
  assert_int_equal(w, 25);
  /* bad options and oversized results */
  wk_err_t err;
  o.std[1] = 0;
  assert_int_equal(wk_preprocess_shape(&o, 5, 5, &c, &h, &w, &err), WK_EINVAL);
  wk_preprocess_opts_default(&o);
  o.crop_h = o.crop_w = 0;
  assert_int_equal(wk_preprocess_shape(&o, 1, 89478485, &c, &h, &w, &err), WK_ETOOBIG);
  o.channels = 2;
  assert_int_equal(wk_preprocess_shape(&o, 5, 5, &c, &h, &w, &err), WK_EINVAL);
}

static void test_constant_image_normalizes_exactly(void **state) {
  (void)state;
  /* resizing a constant image keeps it constant: every output is (v/255 - mean) / std */
  enum { W = 37, H = 23 };
  uint8_t px[W * H * 3];
  for (int i = 0; i < W * H; i++) {
    px[3 * i] = 0;
    px[3 * i + 1] = 128;
    px[3 * i + 2] = 255;
  }
  wk_image_t img = {W, H, 3, px};
  wk_preprocess_opts_t o;
  wk_preprocess_opts_default(&o);
  float *out = malloc(sizeof(float) * 3 * 224 * 224);
  assert_int_equal(wk_preprocess(&img, &o, out, 3 * 224 * 224, NULL), 0);
  const uint8_t v[3] = {0, 128, 255};
  for (int c = 0; c < 3; c++) {
    float want = ((float)v[c] / 255.0f - o.mean[c]) / o.std[c];
    for (int i = 0; i < 224 * 224; i++)
      assert_true(out[c * 224 * 224 + i] == want);
  }
  /* a too-small output buffer and a channel mismatch are refused */
  wk_err_t err;
  assert_int_equal(wk_preprocess(&img, &o, out, 3 * 224 * 224 - 1, &err), WK_EINVAL);
  o.channels = 1;
  assert_int_equal(wk_preprocess(&img, &o, out, 3 * 224 * 224, &err), WK_EINVAL);
  free(out);
}

static void test_crop_rounding_and_padding(void **state) {
  (void)state;
  /* no resize: the crop alone. 7 wide into 4: margin 3, round(1.5) = 2 (half to even);
   * 9 wide into 4: margin 5, round(2.5) = 2. 3 high into 6: pad 1 above, 2 below. */
  uint8_t px[3 * 9];
  for (int i = 0; i < 27; i++)
    px[i] = (uint8_t)(i * 9);
  wk_preprocess_opts_t o;
  memset(&o, 0, sizeof o);
  o.channels = 1;
  o.std[0] = 1.0f;
  o.crop_w = 4;
  o.crop_h = 6;
  float out[24];
  for (int wd = 7; wd <= 9; wd += 2) {
    wk_image_t img = {wd, 3, 1, px};
    int c, h, w;
    assert_int_equal(wk_preprocess_shape(&o, wd, 3, &c, &h, &w, NULL), 0);
    assert_int_equal(h, 6);
    assert_int_equal(w, 4);
    assert_int_equal(wk_preprocess(&img, &o, out, 24, NULL), 0);
    for (int y = 0; y < 6; y++)
      for (int x = 0; x < 4; x++) {
        int sy = y - 1;
        float want = sy < 0 || sy >= 3 ? 0.0f : (float)px[sy * wd + x + 2] / 255.0f;
        assert_true(out[y * 4 + x] == want);
      }
  }
}

static void test_region_equals_full_resize(void **state) {
  (void)state;
  /* the pipeline computes only the cropped part: compare with a full resize + crop, and
   * the SIMD kernels with the portable ones */
  const int sizes[][2] = {{640, 480}, {1, 1}, {3, 2}, {1000, 7}, {31, 257}, {300, 300}};
  for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
    for (int nc = 1; nc <= 3; nc += 2) {
      int w = sizes[k][0], h = sizes[k][1];
      uint8_t *px = malloc((size_t)w * h * nc);
      fill(px, (size_t)w * h * nc, (unsigned)(w * 7 + h));
      wk_image_t img = {w, h, nc, px};
      wk_preprocess_opts_t o;
      wk_preprocess_opts_default(&o);
      o.channels = nc;
      o.crop_h = o.crop_w = 0;
      int c, rh, rw;
      assert_int_equal(wk_preprocess_shape(&o, w, h, &c, &rh, &rw, NULL), 0);
      uint8_t *full = malloc((size_t)rw * rh * nc), *full2 = malloc((size_t)rw * rh * nc);
      assert_int_equal(wk_resize_bilinear(px, w, h, nc, full, rw, rh), 0);
      wk__preprocess_set_simd(0);
      assert_int_equal(wk_resize_bilinear(px, w, h, nc, full2, rw, rh), 0);
      wk__preprocess_set_simd(1);
      assert_memory_equal(full, full2, (size_t)rw * rh * nc);

      wk_preprocess_opts_default(&o);
      o.channels = nc;
      float *out = malloc(sizeof(float) * nc * 224 * 224);
      assert_int_equal(wk_preprocess(&img, &o, out, (size_t)nc * 224 * 224, NULL), 0);
      int top = (rh - 224) / 2, left = (rw - 224) / 2; /* even margins here, or one odd */
      if ((rh - 224) % 2 && top % 2) top++;
      if ((rw - 224) % 2 && left % 2) left++;
      for (int ch = 0; ch < nc; ch++)
        for (int y = 0; y < 224; y++)
          for (int x = 0; x < 224; x++) {
            uint8_t v = full[((size_t)(y + top) * rw + x + left) * nc + ch];
            float want = ((float)v / 255.0f - o.mean[ch]) / o.std[ch];
            assert_true(out[((size_t)ch * 224 + y) * 224 + x] == want);
          }
      free(out);
      free(full);
      free(full2);
      free(px);
    }
  }
}

static void test_resize_identity_and_bad_args(void **state) {
  (void)state;
  uint8_t px[5 * 4 * 3], out[5 * 4 * 3];
  fill(px, sizeof px, 3);
  assert_int_equal(wk_resize_bilinear(px, 5, 4, 3, out, 5, 4), 0);
  assert_memory_equal(px, out, sizeof px);
  assert_int_equal(wk_resize_bilinear(px, 5, 4, 3, out, 0, 4), WK_EINVAL);
  assert_int_equal(wk_resize_bilinear(px, 5, 4, 5, out, 5, 4), WK_EINVAL);
  assert_int_equal(wk_resize_bilinear(NULL, 5, 4, 3, out, 5, 4), WK_EINVAL);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shapes),
      cmocka_unit_test(test_constant_image_normalizes_exactly),
      cmocka_unit_test(test_crop_rounding_and_padding),
      cmocka_unit_test(test_region_equals_full_resize),
      cmocka_unit_test(test_resize_identity_and_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
