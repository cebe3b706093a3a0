/* libFuzzer target for vision/image (and the resize behind vision/preprocess): decodes
 * arbitrary bytes as a JPEG or PNG with a small pixel limit, to RGB and to gray; whatever
 * decodes is resized, cropped and normalized. Every failure must say why. */
#include <stdint.h>
#include <stdlib.h>

#include "vision/image.h"
#include "vision/preprocess.h"

#define FUZZ_MAX_PIXELS (2048L * 2048L)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  for (int channels = 1; channels <= 3; channels += 2) {
    wk_image_t img;
    wk_err_t err;
    err.msg[0] = '\0';
    if (wk_image_decode(data, size, channels, FUZZ_MAX_PIXELS, &img, &err) != 0) {
      if (err.msg[0] == '\0') abort();
      continue;
    }
    if (img.width <= 0 || img.height <= 0 || img.channels != channels ||
        (long)img.width * img.height > FUZZ_MAX_PIXELS)
      abort();
    wk_preprocess_opts_t o;
    wk_preprocess_opts_default(&o);
    o.channels = channels;
    o.resize = 1 + (size > 0 ? data[size - 1] % 24 : 0);
    o.crop_h = 12;
    o.crop_w = 9;
    int c, h, w;
    if (wk_preprocess_shape(&o, img.width, img.height, &c, &h, &w, &err) == 0) {
      float *out = malloc(sizeof(float) * (size_t)c * (size_t)h * (size_t)w);
      if (out == NULL || wk_preprocess(&img, &o, out, (size_t)c * h * w, &err) != 0) abort();
      free(out);
    }
    wk_image_destroy(&img);
  }
  return 0;
}
