/* Image decoding: JPEG (libturbojpeg) and PNG (libpng) from memory into 8-bit interleaved
 * RGB or 1-channel gray, with the pixel values PIL gives for Image.open(f).convert("RGB"/"L").
 * No resizing or normalization here (vision/preprocess.h), no file or network access. */
#ifndef WK_VISION_IMAGE_H
#define WK_VISION_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* PIL's Image.MAX_IMAGE_PIXELS, the default of TorchServe's limit_max_image_pixels.
 * (To move to core/limits.h.) */
#define WK_IMAGE_DEFAULT_MAX_PIXELS 89478485L
/* The most pixels wick decodes even when the caller turns the limit off (max_pixels <= 0):
 * keeps every size computation far from overflow. */
#define WK_IMAGE_HARD_MAX_PIXELS (1L << 30)

/* A decoded image: height rows of width pixels, channels (1 or 3) bytes each, no padding.
 * The caller embeds it and releases the pixels with wk_image_destroy. */
typedef struct wk_image_s {
  int width, height, channels;
  uint8_t *pixels;
} wk_image_t;

/* Decodes a JPEG or PNG held in data[0..len) into out, converted to channels (1: gray as
 * PIL's convert("L"), 3: RGB as PIL's convert("RGB"); alpha is dropped, not composited).
 * An image of more than max_pixels pixels (<= 0: WK_IMAGE_HARD_MAX_PIXELS) is refused from
 * its header before pixels are allocated. Returns 0, or WK_EFORMAT (not a JPEG/PNG,
 * truncated, corrupt), WK_ETOOBIG (over the limit), WK_EUNSUPPORTED, WK_EINVAL (bad
 * channels), WK_ENOMEM; on failure out is untouched and err says why. Any thread. */
int wk_image_decode(const void *data, size_t len, int channels, long max_pixels, wk_image_t *out,
                    wk_err_t *err);

/* The width and height a JPEG or PNG's header states, without decoding it (a few bytes
 * read): what a request will cost can be known before it is queued. WK_EFORMAT for
 * anything else. Any thread. */
int wk_image_size(const void *data, size_t len, int *width, int *height, wk_err_t *err);

/* Frees img's pixels and zeroes it; safe on a zeroed or already destroyed image. */
void wk_image_destroy(wk_image_t *img);

#ifdef __cplusplus
}
#endif

#endif
