/* Image decoding: JPEG through libturbojpeg, PNG through libpng, from memory, with the size
 * checked from the header first. Colour conversions reproduce PIL 9.4's Image.convert
 * ("RGB"/"L") for every mode PIL opens these files in; nothing is resized here. */
#include "vision/image.h"

#include <limits.h>
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <turbojpeg.h>

/* PIL's ITU-R 601-2 luma in 16-bit fixed point (Convert.c's L24), exact for all 2^24 RGB. */
static inline uint8_t luma(unsigned r, unsigned g, unsigned b) {
  return (uint8_t)((r * 19595u + g * 38470u + b * 7471u + 0x8000u) >> 16);
}

static long effective_limit(long max_pixels) {
  return (max_pixels <= 0 || max_pixels > WK_IMAGE_HARD_MAX_PIXELS) ? WK_IMAGE_HARD_MAX_PIXELS
                                                                    : max_pixels;
}

static int check_size(unsigned long w, unsigned long h, long max_pixels, wk_err_t *err) {
  if (w == 0 || h == 0) return wk_err(err, WK_EFORMAT, "image has no pixels (%lux%lu)", w, h);
  unsigned long long n = (unsigned long long)w * h;
  long limit = effective_limit(max_pixels);
  if (n > (unsigned long long)limit) {
    if (max_pixels <= 0 || max_pixels > WK_IMAGE_HARD_MAX_PIXELS)
      return wk_err(err, WK_ETOOBIG, "image is %lux%lu = %llu pixels, over wick's limit of %ld", w,
                    h, n, limit);
    return wk_err(err, WK_ETOOBIG,
                  "image is %lux%lu = %llu pixels, over the limit of %ld "
                  "(limit_max_image_pixels)",
                  w, h, n, limit);
  }
  return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* PNG */

/* Lives on the heap so that nothing libpng's longjmp skips over is an automatic variable
 * changed after setjmp. */
typedef struct png_ctx_s {
  jmp_buf jb;
  const uint8_t *data;
  size_t len, pos;
  char msg[256];
  uint8_t *raw;    /* one row, or the whole image when interlaced */
  uint8_t *pixels; /* the result */
  uint8_t pal[256][3];
} png_ctx_t;

static void png_on_error(png_structp png, png_const_charp msg) {
  png_ctx_t *c = png_get_error_ptr(png);
  snprintf(c->msg, sizeof c->msg, "%s", msg);
  longjmp(c->jb, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) {
  (void)png;
  (void)msg; /* benign problems (bad ancillary chunk CRC, ...) are ignored, as PIL does */
}

static void png_read_mem(png_structp png, png_bytep out, size_t n) {
  png_ctx_t *c = png_get_io_ptr(png);
  if (n > c->len - c->pos) png_error(png, "truncated PNG data");
  memcpy(out, c->data + c->pos, n);
  c->pos += n;
}

/* Converts one row as PIL does: 16-bit gray opens as mode "I" and clips to 0..255;
 * every other 16-bit mode keeps the high byte; palette indices past PLTE read black, as
 * in Pillow 13 (Pillow 9 read a gray ramp there); alpha is dropped. */
static void png_convert_row(const png_ctx_t *c, int ct, int depth, const uint8_t *s, int w,
                            uint8_t *d, int channels) {
  int hi = depth == 16;
  for (int x = 0; x < w; x++) {
    unsigned r = 0, g = 0, b = 0;
    int gray = 1;
    switch (ct) {
    case PNG_COLOR_TYPE_GRAY:
      if (hi) {
        unsigned v = ((unsigned)s[2 * x] << 8) | s[2 * x + 1];
        r = v > 255 ? 255 : v;
      } else {
        r = s[x];
      }
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: r = s[(2 * x) << hi]; break;
    case PNG_COLOR_TYPE_RGB:
      r = s[(3 * x) << hi];
      g = s[(3 * x + 1) << hi];
      b = s[(3 * x + 2) << hi];
      gray = 0;
      break;
    case PNG_COLOR_TYPE_RGB_ALPHA:
      r = s[(4 * x) << hi];
      g = s[(4 * x + 1) << hi];
      b = s[(4 * x + 2) << hi];
      gray = 0;
      break;
    default: /* palette, one byte per index after png_set_packing */
      r = c->pal[s[x]][0];
      g = c->pal[s[x]][1];
      b = c->pal[s[x]][2];
      gray = 0;
      break;
    }
    if (gray) {
      if (channels == 1) {
        d[x] = (uint8_t)r;
      } else {
        d[3 * x] = d[3 * x + 1] = d[3 * x + 2] = (uint8_t)r;
      }
    } else if (channels == 1) {
      d[x] = luma(r, g, b);
    } else {
      d[3 * x] = (uint8_t)r;
      d[3 * x + 1] = (uint8_t)g;
      d[3 * x + 2] = (uint8_t)b;
    }
  }
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int decode_png(const uint8_t *data, size_t len, int channels, long max_pixels,
                      wk_image_t *out, wk_err_t *err) {
  /* IHDR comes first: check the size before libpng reads on to the first IDAT */
  if (len >= 24 && memcmp(data + 12, "IHDR", 4) == 0) {
    int rc = check_size(be32(data + 16), be32(data + 20), max_pixels, err);
    if (rc != 0) return rc;
  }
  png_ctx_t *c = calloc(1, sizeof *c);
  if (c == NULL) return wk_err(err, WK_ENOMEM, "out of memory decoding a PNG image");
  c->data = data;
  c->len = len;
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, png_on_error, png_on_warning);
  png_infop info = png ? png_create_info_struct(png) : NULL;
  if (info == NULL) {
    if (png) png_destroy_read_struct(&png, NULL, NULL);
    free(c);
    return wk_err(err, WK_ENOMEM, "out of memory decoding a PNG image");
  }
  int rc;
  if (setjmp(c->jb)) {
    rc = wk_err(err, WK_EFORMAT, "truncated or corrupt PNG image: %s", c->msg);
    goto done;
  }
  png_set_read_fn(png, c, png_read_mem);
  /* our own pixel limit applies; libpng's default 1,000,000-pixel side limit would refuse
   * images that PIL opens */
  png_set_user_limits(png, 0x7fffffff, 0x7fffffff);
  png_read_info(png, info);

  png_uint_32 w, h;
  int depth, ct, interlace;
  png_get_IHDR(png, info, &w, &h, &depth, &ct, &interlace, NULL, NULL);
  rc = check_size(w, h, max_pixels, err);
  if (rc != 0) goto done;

  if (ct == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (ct == PNG_COLOR_TYPE_PALETTE) {
    if (depth < 8) png_set_packing(png);
    memset(c->pal, 0, sizeof c->pal);
    png_colorp plte;
    int n = 0;
    if (png_get_PLTE(png, info, &plte, &n) != 0) {
      for (int i = 0; i < n && i < 256; i++) {
        c->pal[i][0] = plte[i].red;
        c->pal[i][1] = plte[i].green;
        c->pal[i][2] = plte[i].blue;
      }
    }
  }
  int passes = png_set_interlace_handling(png);
  png_read_update_info(png, info);
  size_t rowbytes = png_get_rowbytes(png, info);
  depth = png_get_bit_depth(png, info);
  if (rowbytes < (size_t)w || (ct != PNG_COLOR_TYPE_PALETTE && depth != 8 && depth != 16)) {
    rc = wk_err(err, WK_EINTERNAL, "unexpected PNG row layout (%zu bytes, depth %d)", rowbytes,
                depth);
    goto done;
  }
  c->pixels = malloc((size_t)w * h * (size_t)channels);
  c->raw = malloc(passes > 1 ? rowbytes * h : rowbytes);
  if (c->pixels == NULL || c->raw == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory decoding a %ux%u PNG image", (unsigned)w,
                (unsigned)h);
    goto done;
  }
  size_t stride = (size_t)w * (size_t)channels;
  if (passes > 1) {
    memset(c->raw, 0, rowbytes * h);
    for (int p = 0; p < passes; p++)
      for (png_uint_32 y = 0; y < h; y++)
        png_read_row(png, c->raw + y * rowbytes, NULL);
    for (png_uint_32 y = 0; y < h; y++)
      png_convert_row(c, ct, depth, c->raw + y * rowbytes, (int)w, c->pixels + y * stride,
                      channels);
  } else {
    for (png_uint_32 y = 0; y < h; y++) {
      png_read_row(png, c->raw, NULL);
      png_convert_row(c, ct, depth, c->raw, (int)w, c->pixels + y * stride, channels);
    }
  }
  png_read_end(png, NULL);

  out->width = (int)w;
  out->height = (int)h;
  out->channels = channels;
  out->pixels = c->pixels;
  c->pixels = NULL;
  rc = 0;
done:
  png_destroy_read_struct(&png, &info, NULL);
  free(c->raw);
  free(c->pixels);
  free(c);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* JPEG */

/* PIL opens 4-component JPEGs as "CMYK" with Adobe's inverted convention and converts to
 * RGB with nk = 255 - k, out = nk - nk * c / 255 (its rounded MULDIV255). */
static void cmyk_to_out(const uint8_t *s, size_t n, uint8_t *d, int channels) {
  for (size_t i = 0; i < n; i++, s += 4) {
    unsigned nk = s[3]; /* the raw value is already 255 - k */
    unsigned rgb[3];
    for (int j = 0; j < 3; j++) {
      unsigned t = (255u - s[j]) * nk + 128u;
      rgb[j] = nk - (((t >> 8) + t) >> 8);
    }
    if (channels == 1) {
      d[i] = luma(rgb[0], rgb[1], rgb[2]);
    } else {
      d[3 * i] = (uint8_t)rgb[0];
      d[3 * i + 1] = (uint8_t)rgb[1];
      d[3 * i + 2] = (uint8_t)rgb[2];
    }
  }
}

static int decode_jpeg(const uint8_t *data, size_t len, int channels, long max_pixels,
                       wk_image_t *out, wk_err_t *err) {
  if (len > ULONG_MAX) return wk_err(err, WK_ETOOBIG, "JPEG data too large");
  tjhandle tj = tjInitDecompress();
  if (tj == NULL) return wk_err(err, WK_ENOMEM, "cannot start the JPEG decoder");
  uint8_t *buf = NULL;
  int rc, w, h, subsamp, cs;
  if (tjDecompressHeader3(tj, data, (unsigned long)len, &w, &h, &subsamp, &cs) != 0) {
    rc = wk_err(err, WK_EFORMAT, "truncated or corrupt JPEG image: %s", tjGetErrorStr2(tj));
    goto done;
  }
  rc = check_size((unsigned long)w, (unsigned long)h, max_pixels, err);
  if (rc != 0) goto done;

  int pf = TJPF_RGB;
  if (cs == TJCS_GRAY && channels == 1) pf = TJPF_GRAY;
  if (cs == TJCS_CMYK || cs == TJCS_YCCK) pf = TJPF_CMYK;
  size_t npix = (size_t)w * (size_t)h;
  buf = malloc(npix * (size_t)tjPixelSize[pf]);
  if (buf == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory decoding a %dx%d JPEG image", w, h);
    goto done;
  }
  /* PIL's defaults: ISLOW DCT, fancy upsampling, so the bytes are the same as PIL's */
  if (tjDecompress2(tj, data, (unsigned long)len, buf, w, 0, h, pf, TJFLAG_ACCURATEDCT) != 0) {
    const char *msg = tjGetErrorStr2(tj);
    /* a truncated stream is only a warning to libjpeg (it pads with gray); PIL refuses it,
     * and so do we. Other warnings (extraneous bytes, ...) are accepted as PIL does. */
    if (tjGetErrorCode(tj) != TJERR_WARNING || strstr(msg, "remature end") != NULL) {
      rc = wk_err(err, WK_EFORMAT, "truncated or corrupt JPEG image: %s", msg);
      goto done;
    }
  }
  if (pf == TJPF_CMYK) {
    uint8_t *conv = malloc(npix * (size_t)channels);
    if (conv == NULL) {
      rc = wk_err(err, WK_ENOMEM, "out of memory decoding a %dx%d JPEG image", w, h);
      goto done;
    }
    cmyk_to_out(buf, npix, conv, channels);
    free(buf);
    buf = conv;
  } else if (pf == TJPF_RGB && channels == 1) {
    for (size_t i = 0; i < npix; i++)
      buf[i] = luma(buf[3 * i], buf[3 * i + 1], buf[3 * i + 2]);
    uint8_t *shrunk = realloc(buf, npix);
    if (shrunk != NULL) buf = shrunk;
  }
  out->width = w;
  out->height = h;
  out->channels = channels;
  out->pixels = buf;
  buf = NULL;
  rc = 0;
done:
  free(buf);
  tjDestroy(tj);
  return rc;
}

/* ---------------------------------------------------------------------------------------- */

int wk_image_decode(const void *data, size_t len, int channels, long max_pixels, wk_image_t *out,
                    wk_err_t *err) {
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const uint8_t *p = data;
  if (channels != 1 && channels != 3)
    return wk_err(err, WK_EINVAL, "an image can be decoded to 1 or 3 channels, not %d", channels);
  if (p != NULL && len >= 8 && memcmp(p, png_magic, 8) == 0)
    return decode_png(p, len, channels, max_pixels, out, err);
  if (p != NULL && len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
    return decode_jpeg(p, len, channels, max_pixels, out, err);
  return wk_err(err, WK_EFORMAT, "expected a JPEG or PNG image");
}

int wk_image_size(const void *data, size_t len, int *width, int *height, wk_err_t *err) {
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  const uint8_t *p = data;
  if (p != NULL && len >= 8 && memcmp(p, png_magic, 8) == 0) {
    if (len < 24 || memcmp(p + 12, "IHDR", 4) != 0)
      return wk_err(err, WK_EFORMAT, "truncated or corrupt PNG image: no IHDR header");
    uint32_t w = be32(p + 16), h = be32(p + 20);
    if (w == 0 || h == 0 || w > 0x7fffffff || h > 0x7fffffff)
      return wk_err(err, WK_EFORMAT, "PNG image with an impossible size %ux%u", w, h);
    *width = (int)w;
    *height = (int)h;
    return 0;
  }
  if (p != NULL && len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) {
    if (len > ULONG_MAX) return wk_err(err, WK_ETOOBIG, "JPEG data too large");
    tjhandle tj = tjInitDecompress();
    if (tj == NULL) return wk_err(err, WK_ENOMEM, "cannot start the JPEG decoder");
    int subsamp, cs, rc = 0;
    *width = *height = 0;
    if (tjDecompressHeader3(tj, p, (unsigned long)len, width, height, &subsamp, &cs) != 0)
      rc = wk_err(err, WK_EFORMAT, "truncated or corrupt JPEG image: %s", tjGetErrorStr2(tj));
    else if (*width <= 0 || *height <= 0) /* libjpeg ends a cut stream with a fake EOI */
      rc = wk_err(err, WK_EFORMAT, "truncated or corrupt JPEG image: no frame header");
    tjDestroy(tj);
    return rc;
  }
  return wk_err(err, WK_EFORMAT, "expected a JPEG or PNG image");
}

void wk_image_destroy(wk_image_t *img) {
  if (img == NULL) return;
  free(img->pixels);
  memset(img, 0, sizeof *img);
}
