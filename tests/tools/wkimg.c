/* wkimg: runs wick's vision code on one image file for the end-to-end tests and benches.
 * Writes a text header line, then raw little-endian binary, to stdout; on failure prints
 * "wkimg: <error name>: <message>" to stderr and exits with the negated WK_E* code.
 *   wkimg decode FILE CHANNELS [MAX_PIXELS]        -> "W H C\n" + uint8 pixels (HWC)
 *   wkimg resize FILE CHANNELS DW DH               -> "DW DH C\n" + uint8 pixels (HWC)
 *   wkimg preprocess FILE CHANNELS RESIZE CROP_H CROP_W M0 M1 M2 S0 S1 S2
 *                                                  -> "C H W\n" + float32 (CHW)
 *     RESIZE is the shorter side ("256", 0 = none) or an exact "H,W"
 *   wkimg bench FILE CHANNELS N   -> decode and default preprocessing N times, times in us
 * WKIMG_SCALAR=1 in the environment turns the SIMD kernels off (same bytes expected). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vision/image.h"
#include "vision/preprocess.h"

static int fail(int code, const wk_err_t *err) {
  fprintf(stderr, "wkimg: %s: %s\n", wk_strerror(code), err ? err->msg : "");
  return -code;
}

static unsigned char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  unsigned char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      unsigned char *nb = realloc(buf, cap *= 2);
      if (nb == NULL) free(buf);
      buf = nb;
    }
  }
  fclose(f);
  *len = n;
  return buf;
}

static double now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: wkimg decode|resize|preprocess|bench FILE CHANNELS ...\n");
    return 64;
  }
  const char *cmd = argv[1];
  const char *scalar = getenv("WKIMG_SCALAR");
  if (scalar != NULL && strcmp(scalar, "1") == 0) wk__preprocess_set_simd(0);
  size_t len;
  unsigned char *data = read_file(argv[2], &len);
  if (data == NULL) {
    perror(argv[2]);
    return 66;
  }
  int channels = atoi(argv[3]);
  long max_pixels = WK_IMAGE_DEFAULT_MAX_PIXELS;
  if (strcmp(cmd, "decode") == 0 && argc > 4) max_pixels = atol(argv[4]);
  wk_err_t err = {{0}};
  wk_image_t img;
  int rc;

  if (strcmp(cmd, "bench") == 0) {
    int n = argc > 4 ? atoi(argv[4]) : 100;
    wk_preprocess_opts_t o;
    wk_preprocess_opts_default(&o);
    o.channels = channels;
    double t_dec = 0, t_pre = 0;
    for (int i = 0; i < n; i++) {
      double t0 = now_us();
      if ((rc = wk_image_decode(data, len, channels, max_pixels, &img, &err)) != 0)
        return fail(rc, &err);
      double t1 = now_us();
      int c, h, w;
      if ((rc = wk_preprocess_shape(&o, img.width, img.height, &c, &h, &w, &err)) != 0)
        return fail(rc, &err);
      float *out = malloc(sizeof(float) * (size_t)c * (size_t)h * (size_t)w);
      if ((rc = wk_preprocess(&img, &o, out, (size_t)c * h * w, &err)) != 0) return fail(rc, &err);
      double t2 = now_us();
      t_dec += t1 - t0;
      t_pre += t2 - t1;
      free(out);
      wk_image_destroy(&img);
    }
    printf("decode_us %.1f preprocess_us %.1f total_us %.1f\n", t_dec / n, t_pre / n,
           (t_dec + t_pre) / n);
    free(data);
    return 0;
  }

  if ((rc = wk_image_decode(data, len, channels, max_pixels, &img, &err)) != 0)
    return fail(rc, &err);
  free(data);
  if (strcmp(cmd, "decode") == 0) {
    printf("%d %d %d\n", img.width, img.height, img.channels);
    fwrite(img.pixels, 1, (size_t)img.width * img.height * img.channels, stdout);
  } else if (strcmp(cmd, "resize") == 0 && argc >= 6) {
    int dw = atoi(argv[4]), dh = atoi(argv[5]);
    size_t n = (size_t)dw * (size_t)dh * (size_t)img.channels;
    unsigned char *dst = malloc(n ? n : 1);
    rc = wk_resize_bilinear(img.pixels, img.width, img.height, img.channels, dst, dw, dh);
    if (rc != 0) return fail(rc, NULL);
    printf("%d %d %d\n", dw, dh, img.channels);
    fwrite(dst, 1, n, stdout);
    free(dst);
  } else if (strcmp(cmd, "preprocess") == 0 && argc >= 13) {
    wk_preprocess_opts_t o;
    memset(&o, 0, sizeof o);
    if (strchr(argv[4], ',') != NULL)
      sscanf(argv[4], "%d,%d", &o.resize_h, &o.resize_w);
    else
      o.resize = atoi(argv[4]);
    o.crop_h = atoi(argv[5]);
    o.crop_w = atoi(argv[6]);
    o.channels = channels;
    for (int i = 0; i < 3; i++) {
      o.mean[i] = strtof(argv[7 + i], NULL);
      o.std[i] = strtof(argv[10 + i], NULL);
    }
    int c, h, w;
    if ((rc = wk_preprocess_shape(&o, img.width, img.height, &c, &h, &w, &err)) != 0)
      return fail(rc, &err);
    size_t n = (size_t)c * (size_t)h * (size_t)w;
    float *out = malloc(sizeof(float) * (n ? n : 1));
    if ((rc = wk_preprocess(&img, &o, out, n, &err)) != 0) return fail(rc, &err);
    printf("%d %d %d\n", c, h, w);
    fwrite(out, sizeof(float), n, stdout);
    free(out);
  } else {
    fprintf(stderr, "wkimg: bad command or arguments\n");
    return 64;
  }
  wk_image_destroy(&img);
  return fflush(stdout) == 0 ? 0 : 74;
}
