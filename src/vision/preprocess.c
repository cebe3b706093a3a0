/* torchvision's Resize/CenterCrop/ToTensor/Normalize on 8-bit images. The resize is PIL's
 * separable bilinear convolution (triangle filter widened by the downscale factor, 22-bit
 * fixed-point weights, horizontal pass then vertical unless Pillow 13 would take the
 * vertical first, 8-bit rounding between), computed
 * only over the region the crop keeps. No other filters, no decoding. */
#include "vision/preprocess.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/limits.h"

#define PRECISION_BITS 22 /* PIL's 32 - 8 - 2 for 8-bit images */
/* The most weights or intermediate bytes one resize may use: only options far from any
 * model's input size (a few output pixels from a huge image, or the reverse) come near. */
#define WK_PREPROCESS_MAX_WORK (1 << 30)

/* The fixed-point weights of a run of outputs [o0, o0+n) of one axis resized in -> out. */
typedef struct axis_s {
  int n, ksize;
  int *lo;    /* first input index per output */
  int *cnt;   /* taps per output */
  int32_t *k; /* n * ksize weights */
} axis_t;

static void axis_destroy(axis_t *a) {
  free(a->lo);
  free(a->cnt);
  free(a->k);
}

static double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

/* Same arithmetic, in the same order, as PIL's coefficient computation, so that every
 * rounding to the 22-bit integers falls the same way. PIL passes the box as C floats. */
static int axis_init(axis_t *a, int in, int out, int o0, int n) {
  memset(a, 0, sizeof *a);
  double scale = (double)(float)in / out;
  double filterscale = scale < 1.0 ? 1.0 : scale;
  double support = 1.0 * filterscale;
  int ksize = (int)ceil(support) * 2 + 1;
  double ss = 1.0 / filterscale;
  if ((double)n * ksize > WK_PREPROCESS_MAX_WORK) return WK_ETOOBIG;
  double *kd = malloc(sizeof(double) * (size_t)ksize);
  a->n = n;
  a->ksize = ksize;
  a->lo = malloc(sizeof(int) * (size_t)n);
  a->cnt = malloc(sizeof(int) * (size_t)n);
  a->k = calloc((size_t)n * (size_t)ksize, sizeof(int32_t));
  if (kd == NULL || a->lo == NULL || a->cnt == NULL || a->k == NULL) {
    free(kd);
    axis_destroy(a);
    return WK_ENOMEM;
  }
  for (int i = 0; i < n; i++) {
    int xx = o0 + i;
    double center = (xx + 0.5) * scale;
    int xmin = (int)(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = (int)(center + support + 0.5);
    if (xmax > in) xmax = in;
    xmax -= xmin;
    if (xmax > ksize) xmax = ksize; /* cannot happen; keeps the table in bounds */
    double ww = 0.0;
    for (int x = 0; x < xmax; x++) {
      double w = triangle((x + xmin - center + 0.5) * ss);
      kd[x] = w;
      ww += w;
    }
    int32_t *k = a->k + (size_t)i * (size_t)ksize;
    for (int x = 0; x < xmax; x++) {
      double v = ww != 0.0 ? kd[x] / ww : kd[x];
      v *= (1 << PRECISION_BITS);
      k[x] = (int32_t)(v < 0 ? -0.5 + v : 0.5 + v);
    }
    /* taps of weight 0 add nothing: drop them from both ends */
    int first = 0, last = xmax - 1;
    while (first <= last && k[first] == 0)
      first++;
    while (last >= first && k[last] == 0)
      last--;
    if (first > 0)
      for (int x = first; x <= last; x++)
        k[x - first] = k[x];
    a->lo[i] = xmin + first;
    a->cnt[i] = last >= first ? last - first + 1 : 0;
  }
  free(kd);
  return 0;
}

static inline uint8_t clip8(int32_t acc) {
  int32_t v = acc >> PRECISION_BITS;
  return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* x86-64 kernels, chosen at run time: the same integer arithmetic, 4 or 8 lanes at once.
 * _mm_packs_epi32 + _mm_packus_epi16 clamp to 0..255 exactly as clip8 does. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WK_VISION_X86 1

/* RGB: one pixel (3 bytes + 1 ignored) per 32-bit lane group; avail is how many bytes may
 * be read from s, so the 4-byte load never passes the end of the image. */
__attribute__((target("sse4.1"))) static void hpass_rgb_sse41(const axis_t *a, const uint8_t *s,
                                                              size_t avail, uint8_t *d) {
  const __m128i half = _mm_set1_epi32(1 << (PRECISION_BITS - 1));
  for (int i = 0; i < a->n; i++, d += 3) {
    const int32_t *k = a->k + (size_t)i * (size_t)a->ksize;
    size_t off = (size_t)a->lo[i] * 3;
    int cnt = a->cnt[i];
    if (off + (size_t)cnt * 3 + 1 > avail) { /* the last pixel of the image: no 4-byte load */
      int32_t s0 = _mm_cvtsi128_si32(half), s1 = s0, s2 = s0;
      for (int t = 0; t < cnt; t++) {
        s0 += s[off + 3 * (size_t)t] * k[t];
        s1 += s[off + 3 * (size_t)t + 1] * k[t];
        s2 += s[off + 3 * (size_t)t + 2] * k[t];
      }
      d[0] = clip8(s0);
      d[1] = clip8(s1);
      d[2] = clip8(s2);
      continue;
    }
    __m128i acc = half;
    const uint8_t *p = s + off;
    for (int t = 0; t < cnt; t++, p += 3) {
      int32_t px;
      memcpy(&px, p, 4);
      __m128i v = _mm_cvtepu8_epi32(_mm_cvtsi32_si128(px));
      acc = _mm_add_epi32(acc, _mm_mullo_epi32(v, _mm_set1_epi32(k[t])));
    }
    acc = _mm_srai_epi32(acc, PRECISION_BITS);
    __m128i b = _mm_packus_epi16(_mm_packs_epi32(acc, acc), acc);
    int32_t out = _mm_cvtsi128_si32(b);
    d[0] = (uint8_t)out;
    d[1] = (uint8_t)(out >> 8);
    d[2] = (uint8_t)(out >> 16);
  }
}

/* d[i] = clip8(half + sum_t rows[t*stride + i] * k[t]) for i < n, 16 bytes at a time. */
__attribute__((target("avx2"))) static size_t
vpass_avx2(const uint8_t *rows, size_t stride, const int32_t *k, int cnt, size_t n, uint8_t *d) {
  const __m256i half = _mm256_set1_epi32(1 << (PRECISION_BITS - 1));
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i a0 = half, a1 = half;
    const uint8_t *r = rows + i;
    for (int t = 0; t < cnt; t++, r += stride) {
      __m256i kv = _mm256_set1_epi32(k[t]);
      __m128i px = _mm_loadu_si128((const __m128i *)r);
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(px), kv));
      a1 =
          _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(px, 8)), kv));
    }
    a0 = _mm256_srai_epi32(a0, PRECISION_BITS);
    a1 = _mm256_srai_epi32(a1, PRECISION_BITS);
    __m256i w = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xd8); /* 16 x int16 */
    __m128i b = _mm_packus_epi16(_mm256_castsi256_si128(w), _mm256_extracti128_si256(w, 1));
    _mm_storeu_si128((__m128i *)(d + i), b);
  }
  return i;
}
#endif

/* 0: portable C only (tests); 1: use the CPU's vector units when it has them. */
static int use_simd = 1;

void wk__preprocess_set_simd(int on) {
  use_simd = on;
}

#ifdef WK_VISION_X86
static int have(int avx2) {
  return use_simd && (avx2 ? __builtin_cpu_supports("avx2") : __builtin_cpu_supports("sse4.1"));
}
#endif

/* One source row (c channels) through the horizontal weights into a.n output pixels;
 * avail is how many bytes may be read from s. */
static void hpass_row(const axis_t *a, const uint8_t *s, size_t avail, int c, uint8_t *d) {
  const int32_t half = 1 << (PRECISION_BITS - 1);
#ifdef WK_VISION_X86
  if (c == 3 && have(0)) {
    hpass_rgb_sse41(a, s, avail, d);
    return;
  }
#else
  (void)avail;
#endif
  for (int i = 0; i < a->n; i++) {
    const int32_t *k = a->k + (size_t)i * (size_t)a->ksize;
    const uint8_t *p = s + (size_t)a->lo[i] * (size_t)c;
    int cnt = a->cnt[i];
    if (c == 3) {
      int32_t s0 = half, s1 = half, s2 = half;
      for (int t = 0; t < cnt; t++, p += 3) {
        s0 += p[0] * k[t];
        s1 += p[1] * k[t];
        s2 += p[2] * k[t];
      }
      d[0] = clip8(s0);
      d[1] = clip8(s1);
      d[2] = clip8(s2);
      d += 3;
    } else if (c == 1) {
      int32_t s0 = half;
      for (int t = 0; t < cnt; t++)
        s0 += p[t] * k[t];
      *d++ = clip8(s0);
    } else {
      for (int ch = 0; ch < c; ch++) {
        int32_t s0 = half;
        for (int t = 0; t < cnt; t++)
          s0 += p[t * c + ch] * k[t];
        *d++ = clip8(s0);
      }
    }
  }
}

/* One output row of the vertical pass: rowlen bytes of d from the ay.cnt[j] rows that start
 * at r (the row ay.lo[j]), stride bytes apart; acc has room for rowlen sums. */
static void vpass_row(const axis_t *ay, int j, const uint8_t *r, size_t stride, size_t rowlen,
                      int32_t *acc, uint8_t *d) {
  const int32_t *k = ay->k + (size_t)j * (size_t)ay->ksize;
  size_t i0 = 0;
#ifdef WK_VISION_X86
  if (have(1)) i0 = vpass_avx2(r, stride, k, ay->cnt[j], rowlen, d);
#endif
  for (size_t i = i0; i < rowlen; i++)
    acc[i] = 1 << (PRECISION_BITS - 1);
  for (int t = 0; t < ay->cnt[j]; t++, r += stride) {
    int32_t kv = k[t];
    for (size_t i = i0; i < rowlen; i++)
      acc[i] += r[i] * kv;
  }
  for (size_t i = i0; i < rowlen; i++)
    d[i] = clip8(acc[i]);
}

/* Pillow (from 13.0) runs the vertical pass first when the height shrinks by more than
 * twice as many pixels as the width does; the 8-bit rounding between the passes makes the
 * order visible in the result, so wick takes the same decision. */
static int vertical_first(int w, int h, int dw, int dh) {
  return h - dh > 0 && h - dh > (w - dw) * 2;
}

/* Computes rows [y0, y0+ny) x columns [x0, x0+nx) of src (w x h, c channels) resized to
 * dw x dh, into dst (ny rows of nx*c bytes). Each output pixel depends only on its own
 * weights, so the region equals the same region of the full resize. */
static int resize_region(const uint8_t *src, int w, int h, int c, int dw, int dh, int x0, int nx,
                         int y0, int ny, uint8_t *dst) {
  int need_h = dw != w, need_v = dh != h;
  axis_t ax, ay;
  memset(&ax, 0, sizeof ax);
  memset(&ay, 0, sizeof ay);
  uint8_t *tmp = NULL;
  int32_t *acc = NULL;
  int rc = 0;
  if (need_h && (rc = axis_init(&ax, w, dw, x0, nx)) != 0) goto done;
  if (need_v && (rc = axis_init(&ay, h, dh, y0, ny)) != 0) goto done;
  rc = WK_ENOMEM;
  size_t rowlen = (size_t)nx * (size_t)c;
  size_t srcstride = (size_t)w * (size_t)c;
  if (need_h && need_v && vertical_first(w, h, dw, dh)) {
    /* the source columns the horizontal pass reads: its windows only move forward */
    int xlo = ax.lo[0], xhi = ax.lo[nx - 1] + ax.cnt[nx - 1];
    size_t vlen = (size_t)(xhi - xlo) * (size_t)c;
    if ((double)vlen * ny > WK_PREPROCESS_MAX_WORK) {
      rc = WK_ETOOBIG;
      goto done;
    }
    tmp = malloc(vlen * (size_t)ny);
    acc = malloc(sizeof(int32_t) * vlen);
    if (tmp == NULL || acc == NULL) goto done;
    for (int j = 0; j < ny; j++)
      vpass_row(&ay, j, src + (size_t)ay.lo[j] * srcstride + (size_t)xlo * (size_t)c, srcstride,
                vlen, acc, tmp + (size_t)j * vlen);
    for (int i = 0; i < nx; i++)
      ax.lo[i] -= xlo; /* the intermediate rows start at column xlo */
    for (int j = 0; j < ny; j++)
      hpass_row(&ax, tmp + (size_t)j * vlen, vlen, c, dst + (size_t)j * rowlen);
    rc = 0;
    goto done;
  }
  /* the source rows the vertical pass reads: its windows only move forward */
  int ylo = need_v ? ay.lo[0] : y0;
  int yhi = need_v ? ay.lo[ny - 1] + ay.cnt[ny - 1] : y0 + ny;
  if ((double)rowlen * (yhi - ylo) > WK_PREPROCESS_MAX_WORK) {
    rc = WK_ETOOBIG;
    goto done;
  }
  const uint8_t *rows;
  size_t stride;
  if (need_h) {
    tmp = malloc(rowlen * (size_t)(yhi - ylo > 0 ? yhi - ylo : 1));
    if (tmp == NULL) goto done;
    size_t srclen = (size_t)w * (size_t)h * (size_t)c;
    for (int y = ylo; y < yhi; y++) {
      size_t off = (size_t)y * srcstride;
      hpass_row(&ax, src + off, srclen - off, c, tmp + (size_t)(y - ylo) * rowlen);
    }
    rows = tmp;
    stride = rowlen;
  } else {
    rows = src + (size_t)ylo * srcstride + (size_t)x0 * (size_t)c;
    stride = srcstride;
  }
  if (!need_v) {
    for (int j = 0; j < ny; j++)
      memcpy(dst + (size_t)j * rowlen, rows + (size_t)j * stride, rowlen);
    rc = 0;
    goto done;
  }
  acc = malloc(sizeof(int32_t) * (rowlen > 0 ? rowlen : 1));
  if (acc == NULL) goto done;
  for (int j = 0; j < ny; j++)
    vpass_row(&ay, j, rows + (size_t)(ay.lo[j] - ylo) * stride, stride, rowlen, acc,
              dst + (size_t)j * rowlen);
  rc = 0;
done:
  axis_destroy(&ax);
  axis_destroy(&ay);
  free(tmp);
  free(acc);
  return rc;
}

int wk_resize_bilinear(const uint8_t *src, int w, int h, int c, uint8_t *dst, int dw, int dh) {
  if (src == NULL || dst == NULL || w <= 0 || h <= 0 || dw <= 0 || dh <= 0 || c < 1 || c > 4 ||
      dw > WK_PREPROCESS_MAX_SIDE || dh > WK_PREPROCESS_MAX_SIDE)
    return WK_EINVAL;
  return resize_region(src, w, h, c, dw, dh, 0, dw, 0, dh, dst);
}

/* ---------------------------------------------------------------------------------------- */

void wk_preprocess_opts_default(wk_preprocess_opts_t *o) {
  static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  memset(o, 0, sizeof *o);
  o->resize = 256;
  o->crop_h = o->crop_w = 224;
  o->channels = 3;
  memcpy(o->mean, mean, sizeof mean);
  memcpy(o->std, std, sizeof std);
}

/* Where one axis of the output comes from: n resized pixels starting at src0 land at dst0;
 * the rest of the side (when the crop is larger than the image) is zero padding. */
typedef struct span_s {
  long resized; /* the side after resize */
  int out;      /* the side after crop */
  int src0, n, dst0;
} span_t;

/* torchvision's CenterCrop on one side: pad (crop - r) // 2 before when the image is
 * smaller, else start at int(round((r - crop) / 2.0)) with Python's half-to-even round. */
static void span_crop(span_t *s, int crop) {
  int r = (int)s->resized;
  s->out = crop > 0 ? crop : r;
  if (s->out >= r) {
    s->src0 = 0;
    s->n = r;
    s->dst0 = (s->out - r) / 2;
  } else {
    int d = r - s->out, half = d / 2;
    s->src0 = (d % 2 == 0 || half % 2 == 0) ? half : half + 1;
    s->n = s->out;
    s->dst0 = 0;
  }
}

static int plan(const wk_preprocess_opts_t *o, int width, int height, span_t *sx, span_t *sy,
                wk_err_t *err) {
  if (o == NULL) return wk_err(err, WK_EINVAL, "no preprocessing options");
  if (o->channels != 1 && o->channels != 3)
    return wk_err(err, WK_EINVAL, "preprocessing takes 1 or 3 channels, not %d", o->channels);
  if (o->resize < 0 || o->resize_h < 0 || o->resize_w < 0 || o->crop_h < 0 || o->crop_w < 0)
    return wk_err(err, WK_EINVAL, "resize and crop sizes must not be negative");
  for (int c = 0; c < o->channels; c++)
    if (!(o->std[c] != 0.0f) || !isfinite(o->std[c]) || !isfinite(o->mean[c]))
      return wk_err(err, WK_EINVAL, "normalize needs a finite mean and a non-zero std");
  if (width <= 0 || height <= 0)
    return wk_err(err, WK_EINVAL, "image has no pixels (%dx%d)", width, height);
  long rw = width, rh = height;
  if (o->resize_h > 0 && o->resize_w > 0) {
    rw = o->resize_w;
    rh = o->resize_h;
  } else if (o->resize > 0) {
    /* torchvision: the shorter side becomes size, the longer int(size * long / short) */
    long shrt = width <= height ? width : height, lng = width <= height ? height : width;
    long nl = (long)((double)((long long)o->resize * lng) / (double)shrt);
    rw = width <= height ? o->resize : nl;
    rh = width <= height ? nl : o->resize;
  }
  if (rw > WK_PREPROCESS_MAX_SIDE || rh > WK_PREPROCESS_MAX_SIDE)
    return wk_err(err, WK_ETOOBIG, "resizing a %dx%d image gives %ldx%ld, over the limit of %d",
                  width, height, rw, rh, WK_PREPROCESS_MAX_SIDE);
  sx->resized = rw;
  sy->resized = rh;
  span_crop(sx, o->crop_w);
  span_crop(sy, o->crop_h);
  long long elems = (long long)o->channels * sx->out * sy->out;
  if (elems > WK_MAX_TENSOR_ELEMS)
    return wk_err(err, WK_ETOOBIG,
                  "preprocessing a %dx%d image gives [%d,%d,%d] = %lld values, over the limit "
                  "of %ld",
                  width, height, o->channels, sy->out, sx->out, elems, (long)WK_MAX_TENSOR_ELEMS);
  return 0;
}

int wk_preprocess_shape(const wk_preprocess_opts_t *o, int width, int height, int *c, int *h,
                        int *w, wk_err_t *err) {
  span_t sx, sy;
  int rc = plan(o, width, height, &sx, &sy, err);
  if (rc != 0) return rc;
  *c = o->channels;
  *h = sy.out;
  *w = sx.out;
  return 0;
}

int wk_preprocess(const wk_image_t *img, const wk_preprocess_opts_t *o, float *out, size_t out_len,
                  wk_err_t *err) {
  if (img == NULL || img->pixels == NULL) return wk_err(err, WK_EINVAL, "no image");
  span_t sx, sy;
  int rc = plan(o, img->width, img->height, &sx, &sy, err);
  if (rc != 0) return rc;
  int nc = o->channels;
  if (img->channels != nc)
    return wk_err(err, WK_EINVAL, "image has %d channels, preprocessing expects %d", img->channels,
                  nc);
  size_t plane = (size_t)sx.out * (size_t)sy.out;
  if (out == NULL || out_len < plane * (size_t)nc)
    return wk_err(err, WK_EINVAL, "output holds %zu floats, [%d,%d,%d] needs %zu", out_len, nc,
                  sy.out, sx.out, plane * (size_t)nc);

  size_t rowlen = (size_t)sx.n * (size_t)nc;
  uint8_t *px = malloc(rowlen * (size_t)sy.n > 0 ? rowlen * (size_t)sy.n : 1);
  if (px == NULL) return wk_err(err, WK_ENOMEM, "out of memory preprocessing an image");
  rc = resize_region(img->pixels, img->width, img->height, nc, (int)sx.resized, (int)sy.resized,
                     sx.src0, sx.n, sy.src0, sy.n, px);
  if (rc != 0) {
    free(px);
    if (rc == WK_ETOOBIG)
      return wk_err(err, rc, "resizing a %dx%d image to %ldx%ld needs too much memory", img->width,
                    img->height, sx.resized, sy.resized);
    return wk_err(err, rc, "out of memory resizing an image");
  }
  /* ToTensor then Normalize, in float32 as torch computes them: (v / 255 - mean) / std */
  float lut[3][256];
  for (int c = 0; c < nc; c++)
    for (int v = 0; v < 256; v++)
      lut[c][v] = ((float)v / 255.0f - o->mean[c]) / o->std[c];
  int padded = sx.n < sx.out || sy.n < sy.out;
  for (int c = 0; c < nc; c++) {
    float *pl = out + (size_t)c * plane;
    if (padded)
      for (size_t i = 0; i < plane; i++)
        pl[i] = lut[c][0];
    for (int y = 0; y < sy.n; y++) {
      float *d = pl + (size_t)(y + sy.dst0) * (size_t)sx.out + (size_t)sx.dst0;
      const uint8_t *s = px + (size_t)y * rowlen + (size_t)c;
      const float *l = lut[c];
      for (int x = 0; x < sx.n; x++)
        d[x] = l[s[(size_t)x * (size_t)nc]];
    }
  }
  free(px);
  return 0;
}
