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
  /* [11] part 1: what one request may cost, checked from the image's header before it is
   * queued. A model that does not resize takes images of one size: declared
   * (wick.image.size [H, W], or wick.inputs' [-1, C, H, W]) or measured (the first image
   * it answered); max_elements bounds the preprocessed tensor (wick.max_request_elements) */
  int want_h, want_w;
  _Atomic int seen_h, seen_w;
  long max_elements;
} wk__image_t;

#define WK__IMAGE(m) ((wk__image_t *)(m)->hstate)

/* Allocates m->hstate (state_size bytes, zeroed, starting with a wk__image_t), reads the
 * settings over dflt and the labels, then loads the module. Loading thread. */
int wk__image_init(wk_model_t *m, const wk_model_load_opts_t *o, const wk_preprocess_opts_t *dflt,
                   size_t state_size, wk_err_t *err);
void wk__image_free(wk_model_t *m);
/* Admits j's image (j->data) into the queue or says why not, from its header alone:
 * WK_EINVAL when a model that does not resize gets another size than it takes, WK_ETOOBIG
 * past max_elements, WK_EFORMAT for a file that is no JPEG or PNG. Transport thread. */
int wk__image_admit(wk_model_t *m, const wk__job_t *j, wk_err_t *err);
/* The parse op: the image bytes out of a raw body, a multipart field, or JSON base64. */
int wk__image_parse(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err);
/* Decodes and preprocesses j's image into a new [1,C,H,W] float tensor; on failure answers
 * j (400/413) and returns the error. Worker thread. */
int wk__image_prepare(wk_model_t *m, wk__job_t *j, wk_tensor_t *t);
/* Appends f as the shortest JSON number that reads back to the same float32. */
void wk__print_float(wk_buf_t *b, float f);

#endif
