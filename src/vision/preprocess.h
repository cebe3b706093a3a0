/* Image preprocessing as torchvision does it on PIL images: Resize (PIL's bilinear filter
 * with antialias, byte for byte), CenterCrop (zero padding when the image is smaller),
 * ToTensor and Normalize into planar float32. No decoding here (vision/image.h). */
#ifndef WK_VISION_PREPROCESS_H
#define WK_VISION_PREPROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "vision/image.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The longest side a resize may produce (the crop then picks a part of it).
 * (To move to core/limits.h.) */
#define WK_PREPROCESS_MAX_SIDE (1 << 28)

typedef struct wk_preprocess_opts_s {
  int resize;             /* Resize(int): the shorter side becomes this; 0: no resize */
  int resize_h, resize_w; /* Resize((h, w)) when both > 0; wins over resize */
  int crop_h, crop_w;     /* CenterCrop((h, w)); 0 keeps that side as it is */
  int channels;           /* 1 or 3; the image must have as many */
  float mean[3], std[3];  /* Normalize, per channel (std != 0) */
} wk_preprocess_opts_t;

/* Fills o with TorchServe's image_classifier defaults: Resize(256), CenterCrop(224),
 * ImageNet mean/std, 3 channels. */
void wk_preprocess_opts_default(wk_preprocess_opts_t *o);

/* The shape [c, h, w] that wk_preprocess gives for a width x height image. Returns 0, or
 * WK_EINVAL for bad options, WK_ETOOBIG when the result is over WK_MAX_TENSOR_ELEMS or
 * a side over WK_PREPROCESS_MAX_SIDE. Any thread. */
int wk_preprocess_shape(const wk_preprocess_opts_t *o, int width, int height, int *c, int *h,
                        int *w, wk_err_t *err);

/* Resize, center-crop and normalize img into out (c*h*w floats, planar CHW, shape from
 * wk_preprocess_shape; out_len is its size in floats). Only the part of the resized image
 * that the crop keeps is computed. Returns 0 or a WK_E* code with err set; out is written
 * only on success. Any thread. */
int wk_preprocess(const wk_image_t *img, const wk_preprocess_opts_t *o, float *out, size_t out_len,
                  wk_err_t *err);

/* PIL's Image.resize((dw, dh), Image.BILINEAR) on interleaved 8-bit pixels with c channels
 * (1..4): src is w x h, dst receives dw x dh. Returns 0, WK_EINVAL, WK_ETOOBIG or WK_ENOMEM. */
int wk_resize_bilinear(const uint8_t *src, int w, int h, int c, uint8_t *dst, int dw, int dh);

/* For tests: 0 makes the resize use only its portable C code, 1 (the default) lets it use
 * SSE4.1/AVX2 where the CPU has them. The results are the same bytes. Not thread-safe. */
void wk__preprocess_set_simd(int on);

#ifdef __cplusplus
}
#endif

#endif
