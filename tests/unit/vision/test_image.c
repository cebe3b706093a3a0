/* Unit tests for vision/image: PNGs of every color type and JPEGs, made here with libpng's
 * and turbojpeg's encoders, decoded to RGB and gray with PIL's conversion rules; bad input
 * (not an image, truncated, over the pixel limit) refused without touching the output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <png.h>
#include <turbojpeg.h>

#include "core/buf.h"
#include "vision/image.h"

/* ---- encoders ---------------------------------------------------------------------- */

static void png_write_buf(png_structp png, png_bytep p, size_t n) {
  wk_buf_t *b = png_get_io_ptr(png);
  if (wk_buf_append(b, p, n) != 0) png_error(png, "out of memory");
}

static void png_flush_buf(png_structp png) {
  (void)png;
}

typedef struct png_spec_s {
  int w, h, color_type, depth, interlace;
  const png_color *palette;
  int npalette;
  const uint8_t *trans; /* palette alpha */
  int ntrans;
} png_spec_t;

/* Encodes rows (h rows of packed samples, rowbytes each) as a PNG into b. */
static void make_png(const png_spec_t *s, const uint8_t *pixels, size_t rowbytes, wk_buf_t *b) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  assert_non_null(info);
  if (setjmp(png_jmpbuf(png))) fail_msg("libpng could not write the test image");
  png_set_write_fn(png, b, png_write_buf, png_flush_buf);
  png_set_IHDR(png, info, (png_uint_32)s->w, (png_uint_32)s->h, s->depth, s->color_type,
               s->interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (s->palette) png_set_PLTE(png, info, s->palette, s->npalette);
  if (s->trans) png_set_tRNS(png, info, s->trans, s->ntrans, NULL);
  png_bytep *rows = malloc(sizeof(png_bytep) * (size_t)s->h);
  for (int y = 0; y < s->h; y++)
    rows[y] = (png_bytep)pixels + (size_t)y * rowbytes;
  png_write_info(png, info);
  png_write_image(png, rows);
  png_write_end(png, NULL);
  png_destroy_write_struct(&png, &info);
  free(rows);
}

static void make_jpeg(const uint8_t *pixels, int w, int h, int pf, int subsamp, wk_buf_t *b) {
  tjhandle tj = tjInitCompress();
  unsigned char *jpg = NULL;
  unsigned long len = 0;
  assert_int_equal(tjCompress2(tj, pixels, w, 0, h, pf, &jpg, &len, subsamp, 95, 0), 0);
  assert_int_equal(wk_buf_append(b, jpg, len), 0);
  tjFree(jpg);
  tjDestroy(tj);
}

static uint8_t luma(int r, int g, int b) {
  return (uint8_t)((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
}

/* Decodes b to RGB and to gray and checks both against want_rgb (w*h pixels). */
static void check_decode(const wk_buf_t *b, int w, int h, const uint8_t *want_rgb) {
  wk_image_t img;
  wk_err_t err = {{0}};
  assert_int_equal(wk_image_decode(b->data, b->len, 3, WK_IMAGE_DEFAULT_MAX_PIXELS, &img, &err), 0);
  assert_int_equal(img.width, w);
  assert_int_equal(img.height, h);
  assert_int_equal(img.channels, 3);
  assert_memory_equal(img.pixels, want_rgb, (size_t)w * h * 3);
  wk_image_destroy(&img);
  assert_null(img.pixels);
  assert_int_equal(wk_image_decode(b->data, b->len, 1, 0, &img, &err), 0);
  assert_int_equal(img.channels, 1);
  for (int i = 0; i < w * h; i++) {
    const uint8_t *p = want_rgb + 3 * i;
    int gray = p[0] == p[1] && p[1] == p[2];
    assert_int_equal(img.pixels[i], gray ? p[0] : luma(p[0], p[1], p[2]));
  }
  wk_image_destroy(&img);
}

/* ---- PNG color types ---------------------------------------------------------------- */

static void test_png_gray_8_and_low_depths(void **state) {
  (void)state;
  for (int interlace = 0; interlace < 2; interlace++) {
    /* 8-bit gray, 9x5 so that every Adam7 pass has pixels or is empty */
    uint8_t px[5 * 9], want[5 * 9 * 3];
    for (int i = 0; i < 45; i++) {
      px[i] = (uint8_t)(i * 37 + 11);
      memset(want + 3 * i, px[i], 3);
    }
    wk_buf_t b = WK_BUF_INIT;
    png_spec_t s = {9, 5, PNG_COLOR_TYPE_GRAY, 8, interlace, NULL, 0, NULL, 0};
    make_png(&s, px, 9, &b);
    check_decode(&b, 9, 5, want);
    wk_buf_destroy(&b);
  }
  /* 2-bit gray scales 0..3 to 0, 85, 170, 255 as PIL's "L;2" does */
  uint8_t packed[2] = {0x1b, 0xe4}; /* 0 1 2 3 | 3 2 1 0 */
  uint8_t want[8 * 3];
  const uint8_t v[8] = {0, 85, 170, 255, 255, 170, 85, 0};
  for (int i = 0; i < 8; i++)
    memset(want + 3 * i, v[i], 3);
  wk_buf_t b = WK_BUF_INIT;
  png_spec_t s = {4, 2, PNG_COLOR_TYPE_GRAY, 2, 0, NULL, 0, NULL, 0};
  make_png(&s, packed, 1, &b);
  check_decode(&b, 4, 2, want);
  wk_buf_destroy(&b);
}

static void test_png_gray_16_clips_like_pil(void **state) {
  (void)state;
  /* PIL opens 16-bit gray as mode "I" and convert() clips it to 0..255 */
  const uint16_t v[6] = {0, 1, 255, 256, 1000, 65535};
  const uint8_t expect[6] = {0, 1, 255, 255, 255, 255};
  uint8_t px[12], want[18];
  for (int i = 0; i < 6; i++) {
    px[2 * i] = (uint8_t)(v[i] >> 8);
    px[2 * i + 1] = (uint8_t)v[i];
    memset(want + 3 * i, expect[i], 3);
  }
  wk_buf_t b = WK_BUF_INIT;
  png_spec_t s = {3, 2, PNG_COLOR_TYPE_GRAY, 16, 1, NULL, 0, NULL, 0};
  make_png(&s, px, 6, &b);
  check_decode(&b, 3, 2, want);
  wk_buf_destroy(&b);
}

static void test_png_alpha_and_rgb(void **state) {
  (void)state;
  /* gray+alpha, RGB, RGBA (8 and 16 bits): alpha dropped, 16-bit keeps the high byte */
  const uint8_t rgb[4][3] = {{10, 200, 30}, {255, 0, 128}, {7, 7, 7}, {0, 0, 255}};
  uint8_t want[12], ga[8], rgb8[12], rgba8[16], rgb16[24], rgba16[32], want_ga[12];
  for (int i = 0; i < 4; i++) {
    memcpy(want + 3 * i, rgb[i], 3);
    ga[2 * i] = rgb[i][0];
    ga[2 * i + 1] = (uint8_t)(60 * i);
    memset(want_ga + 3 * i, rgb[i][0], 3);
    for (int c = 0; c < 3; c++) {
      rgb8[3 * i + c] = rgb[i][c];
      rgba8[4 * i + c] = rgb[i][c];
      rgb16[6 * i + 2 * c] = rgb16[6 * i + 2 * c + 1] = rgb[i][c];
      rgba16[8 * i + 2 * c] = rgb[i][c];
      rgba16[8 * i + 2 * c + 1] = 0xff; /* low byte ignored */
    }
    rgba8[4 * i + 3] = (uint8_t)(i * 80);
    rgba16[8 * i + 6] = rgba16[8 * i + 7] = 0;
  }
  struct {
    int ct, depth;
    const uint8_t *px;
    size_t rowbytes;
    const uint8_t *want;
  } cases[] = {
      {PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga, 4, want_ga},   {PNG_COLOR_TYPE_RGB, 8, rgb8, 6, want},
      {PNG_COLOR_TYPE_RGB_ALPHA, 8, rgba8, 8, want},    {PNG_COLOR_TYPE_RGB, 16, rgb16, 12, want},
      {PNG_COLOR_TYPE_RGB_ALPHA, 16, rgba16, 16, want},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    for (int interlace = 0; interlace < 2; interlace++) {
      wk_buf_t b = WK_BUF_INIT;
      png_spec_t s = {2, 2, cases[k].ct, cases[k].depth, interlace, NULL, 0, NULL, 0};
      make_png(&s, cases[k].px, cases[k].rowbytes, &b);
      check_decode(&b, 2, 2, cases[k].want);
      wk_buf_destroy(&b);
    }
  }
}

static void test_png_palette_with_trns(void **state) {
  (void)state;
  const png_color pal[3] = {{255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
  const uint8_t trans[2] = {0, 128};
  /* index 7 is past the palette: Pillow 13 reads black (Pillow 9 read its gray ramp) */
  const uint8_t idx[4] = {0, 1, 2, 7};
  const uint8_t want[12] = {255, 0, 0, 0, 255, 0, 10, 20, 30, 0, 0, 0};
  wk_buf_t b = WK_BUF_INIT;
  png_spec_t s = {2, 2, PNG_COLOR_TYPE_PALETTE, 8, 0, pal, 3, trans, 2};
  make_png(&s, idx, 2, &b);
  check_decode(&b, 2, 2, want);
  wk_buf_destroy(&b);
  /* 4-bit palette, interlaced */
  const uint8_t packed[2] = {0x01, 0x20};
  const uint8_t want4[12] = {255, 0, 0, 0, 255, 0, 10, 20, 30, 255, 0, 0};
  png_spec_t s4 = {2, 2, PNG_COLOR_TYPE_PALETTE, 4, 1, pal, 3, trans, 2};
  make_png(&s4, packed, 1, &b);
  check_decode(&b, 2, 2, want4);
  wk_buf_destroy(&b);
}

/* ---- JPEG ----------------------------------------------------------------------------- */

static void test_jpeg_rgb_and_gray(void **state) {
  (void)state;
  enum { W = 16, H = 16 };
  static uint8_t px[W * H * 3], want[W * H * 3];
  for (int i = 0; i < W * H; i++) {
    px[3 * i] = 200;
    px[3 * i + 1] = 100;
    px[3 * i + 2] = 50;
  }
  const int subs[] = {TJSAMP_444, TJSAMP_420};
  for (int k = 0; k < 2; k++) {
    wk_buf_t b = WK_BUF_INIT;
    make_jpeg(px, W, H, TJPF_RGB, subs[k], &b);
    wk_image_t img;
    assert_int_equal(wk_image_decode(b.data, b.len, 3, 0, &img, NULL), 0);
    assert_int_equal(img.width, W);
    assert_int_equal(img.height, H);
    for (int i = 0; i < W * H * 3; i++)
      assert_true(abs(img.pixels[i] - px[i]) <= 2);
    wk_image_destroy(&img);
    /* gray output is PIL's luma of the decoded RGB, not the JPEG's Y channel */
    wk_image_t rgb, gray;
    assert_int_equal(wk_image_decode(b.data, b.len, 3, 0, &rgb, NULL), 0);
    assert_int_equal(wk_image_decode(b.data, b.len, 1, 0, &gray, NULL), 0);
    for (int i = 0; i < W * H; i++)
      assert_int_equal(gray.pixels[i],
                       luma(rgb.pixels[3 * i], rgb.pixels[3 * i + 1], rgb.pixels[3 * i + 2]));
    wk_image_destroy(&rgb);
    wk_image_destroy(&gray);
    wk_buf_destroy(&b);
  }
  /* a gray JPEG decodes to three equal channels */
  uint8_t g[W * H];
  for (int i = 0; i < W * H; i++)
    g[i] = (uint8_t)(i % W * 16);
  wk_buf_t b = WK_BUF_INIT;
  make_jpeg(g, W, H, TJPF_GRAY, TJSAMP_GRAY, &b);
  wk_image_t img;
  assert_int_equal(wk_image_decode(b.data, b.len, 3, 0, &img, NULL), 0);
  for (int i = 0; i < W * H; i++) {
    assert_int_equal(img.pixels[3 * i], img.pixels[3 * i + 1]);
    assert_int_equal(img.pixels[3 * i], img.pixels[3 * i + 2]);
    want[i] = img.pixels[3 * i];
  }
  wk_image_destroy(&img);
  assert_int_equal(wk_image_decode(b.data, b.len, 1, 0, &img, NULL), 0);
  assert_memory_equal(img.pixels, want, W * H);
  wk_image_destroy(&img);
  wk_buf_destroy(&b);
}

/* ---- bad input ------------------------------------------------------------------------ */

static void assert_refused(const void *data, size_t len, long limit, int code, const char *msg) {
  wk_image_t img = {7, 7, 7, (uint8_t *)&img};
  wk_err_t err = {{0}};
  assert_int_equal(wk_image_decode(data, len, 3, limit, &img, &err), code);
  if (strstr(err.msg, msg) == NULL) fail_msg("message \"%s\" lacks \"%s\"", err.msg, msg);
  /* on failure the output is untouched */
  assert_int_equal(img.width, 7);
  assert_ptr_equal(img.pixels, (uint8_t *)&img);
}

static void test_not_an_image(void **state) {
  (void)state;
  assert_refused("", 0, 0, WK_EFORMAT, "expected a JPEG or PNG image");
  assert_refused(NULL, 0, 0, WK_EFORMAT, "expected a JPEG or PNG image");
  assert_refused("GIF89a......", 12, 0, WK_EFORMAT, "expected a JPEG or PNG image");
  assert_refused("\x89PNG\r\n\x1a", 7, 0, WK_EFORMAT, "expected a JPEG or PNG image");
  wk_image_t img;
  wk_err_t err;
  uint8_t one[1] = {0};
  assert_int_equal(wk_image_decode(one, 1, 2, 0, &img, &err), WK_EINVAL);
}

static void test_truncated_refused(void **state) {
  (void)state;
  enum { W = 40, H = 30 };
  static uint8_t px[W * H * 3];
  for (int i = 0; i < W * H * 3; i++)
    px[i] = (uint8_t)(i * 7919 >> 3);
  wk_buf_t png = WK_BUF_INIT, jpg = WK_BUF_INIT;
  png_spec_t s = {W, H, PNG_COLOR_TYPE_RGB, 8, 0, NULL, 0, NULL, 0};
  make_png(&s, px, W * 3, &png);
  make_jpeg(px, W, H, TJPF_RGB, TJSAMP_420, &jpg);
  const wk_buf_t *bufs[2] = {&png, &jpg};
  for (int k = 0; k < 2; k++) {
    size_t n = bufs[k]->len;
    size_t cuts[] = {n / 4, n / 2, n - 30, n - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++)
      assert_refused(bufs[k]->data, cuts[c], 0, WK_EFORMAT, "truncated or corrupt");
  }
  /* a flipped bit in the PNG's image data fails its CRC */
  char *bad = malloc(png.len);
  memcpy(bad, png.data, png.len);
  bad[png.len / 2] ^= 0x10;
  assert_refused(bad, png.len, 0, WK_EFORMAT, "truncated or corrupt");
  free(bad);
  wk_buf_destroy(&png);
  wk_buf_destroy(&jpg);
}

static void test_pixel_limit_from_header(void **state) {
  (void)state;
  /* a PNG signature and IHDR promising 10000x10000 RGB pixels, and nothing after it */
  static const uint8_t head[] = {0x89, 'P',  'N', 'G', '\r', '\n', 0x1a, '\n', 0,    0,    0,
                                 13,   'I',  'H', 'D', 'R',  0,    0,    0x27, 0x10, 0,    0,
                                 0x27, 0x10, 8,   2,   0,    0,    0,    0x00, 0x00, 0x00, 0x00};
  assert_refused(head, sizeof head, WK_IMAGE_DEFAULT_MAX_PIXELS, WK_ETOOBIG,
                 "image is 10000x10000 = 100000000 pixels, over the limit of 89478485 "
                 "(limit_max_image_pixels)");
  /* a JPEG whose frame header says 10000x10000 */
  uint8_t px[8 * 8 * 3] = {0};
  wk_buf_t jpg = WK_BUF_INIT;
  make_jpeg(px, 8, 8, TJPF_RGB, TJSAMP_444, &jpg);
  uint8_t *j = (uint8_t *)jpg.data;
  size_t sof = 0;
  for (size_t i = 2; i + 9 < jpg.len; i++)
    if (j[i] == 0xff && j[i + 1] == 0xc0) {
      sof = i;
      break;
    }
  assert_true(sof > 0);
  j[sof + 5] = j[sof + 7] = 0x27;
  j[sof + 6] = j[sof + 8] = 0x10;
  assert_refused(jpg.data, jpg.len, WK_IMAGE_DEFAULT_MAX_PIXELS, WK_ETOOBIG,
                 "over the limit of 89478485");
  wk_buf_destroy(&jpg);
  /* a lower per-model limit, exactly at and just under the image's size */
  make_jpeg(px, 8, 8, TJPF_RGB, TJSAMP_444, &jpg);
  assert_refused(jpg.data, jpg.len, 63, WK_ETOOBIG,
                 "image is 8x8 = 64 pixels, over the limit of 63");
  wk_image_t img;
  assert_int_equal(wk_image_decode(jpg.data, jpg.len, 3, 64, &img, NULL), 0);
  wk_image_destroy(&img);
  wk_buf_destroy(&jpg);
}

/* The size from the header alone: a PNG whose IHDR promises 10000x7 and a JPEG whose frame
 * header says 16x12, neither decoded. */
static void test_size_from_the_header(void **state) {
  (void)state;
  static const uint8_t head[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n', 0, 0, 0, 13,
                                 'I', 'H', 'D', 'R', 0, 0, 0x27, 0x10, 0, 0, 0, 7, 8, 0};
  int w = 0, h = 0;
  wk_err_t err = {{0}};
  assert_int_equal(wk_image_size(head, sizeof head, &w, &h, &err), 0);
  assert_int_equal(w, 10000);
  assert_int_equal(h, 7);
  uint8_t px[16 * 12 * 3] = {0};
  wk_buf_t jpg = WK_BUF_INIT;
  make_jpeg(px, 16, 12, TJPF_RGB, TJSAMP_444, &jpg);
  assert_int_equal(wk_image_size(jpg.data, jpg.len, &w, &h, &err), 0);
  assert_int_equal(w, 16);
  assert_int_equal(h, 12);
  assert_int_equal(wk_image_size("\xff\xd8\xff", 3, &w, &h, &err), WK_EFORMAT); /* no header */
  wk_buf_destroy(&jpg);
  assert_int_equal(wk_image_size(head, 20, &w, &h, &err), WK_EFORMAT);
  assert_int_equal(wk_image_size("GIF89a", 6, &w, &h, &err), WK_EFORMAT);
  assert_non_null(strstr(err.msg, "JPEG or PNG"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_size_from_the_header),
      cmocka_unit_test(test_png_gray_8_and_low_depths),
      cmocka_unit_test(test_png_gray_16_clips_like_pil),
      cmocka_unit_test(test_png_alpha_and_rgb),
      cmocka_unit_test(test_png_palette_with_trns),
      cmocka_unit_test(test_jpeg_rgb_and_gray),
      cmocka_unit_test(test_not_an_image),
      cmocka_unit_test(test_truncated_refused),
      cmocka_unit_test(test_pixel_limit_from_header),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
