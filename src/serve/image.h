/* What the native kinds that take one image per request (image_classifier,
 * object_detector) share: reading the image out of a request body, TorchServe's
 * preprocessing settings (wick.image, wick.topk) and labels (index_to_name.json), and
 * turning a job's image into a [1, C, H, W] float tensor. Their state (m->hstate) starts
 * with a wk__image_t, which starts with the native runtime's. Not an API. */
#ifndef WK_SERVE_IMAGE_H
#define WK_SERVE_IMAGE_H

#include "serve/native.h"
#include "vision/preprocess.h"

typedef struct wk__image_s {
  wk__native_t native; /* first: WK__NATIVE */
  wk_preprocess_opts_t pre;
  long max_pixels;
  int topk;
  char **labels; /* index_to_name.json, by class index; NULL entries: no name */
  size_t n_labels;
} wk__image_t;

#define WK__IMAGE(m) ((wk__image_t *)(m)->hstate)

/* Allocates m->hstate (state_size bytes, zeroed, starting with a wk__image_t), reads the
 * settings over dflt and the labels, then loads the module. Loading thread. */
int wk__image_init(wk_model_t *m, const wk_model_load_opts_t *o, const wk_preprocess_opts_t *dflt,
                   size_t state_size, wk_err_t *err);
void wk__image_free(wk_model_t *m);
/* The parse op: the image bytes out of a raw body, a multipart field, or JSON base64. */
int wk__image_parse(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err);
/* Decodes and preprocesses j's image into a new [1,C,H,W] float tensor; on failure answers
 * j (400/413) and returns the error. Worker thread. */
int wk__image_prepare(wk_model_t *m, wk__job_t *j, wk_tensor_t *t);
/* Appends f as the shortest JSON number that reads back to the same float32. */
void wk__print_float(wk_buf_t *b, float f);

#endif
