/* The native `object_detector` handler: an image per request (bodies as image_classifier
 * takes them), turned into RGB floats in [0, 1] as TorchServe's ToTensor does (the
 * detection model's own transform resizes and normalizes), a batch as one list of images
 * of any sizes through forward(List[Tensor]), and TorchServe's object_detector reply: per
 * image a list of {"<label>": [x1, y1, x2, y2], "score": s} for every detection scoring at
 * least the threshold (wick.threshold, default 0.5), labels from index_to_name.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/log.h"
#include "serve/image.h"

typedef struct {
  wk__image_t image; /* first: WK__IMAGE */
  float threshold;   /* the lowest score reported */
} state_t;

static int init(wk_model_t *m, const wk_model_load_opts_t *o, wk_err_t *err) {
  wk_preprocess_opts_t dflt;
  memset(&dflt, 0, sizeof dflt);
  dflt.channels = 3;
  for (int c = 0; c < 3; c++) dflt.std[c] = 1.0f; /* ToTensor only: x / 255 */
  int rc = wk__image_init(m, o, &dflt, sizeof(state_t), err);
  if (rc != 0) return rc;
  state_t *st = m->hstate;
  st->threshold = 0.5f;
  const wk_yaml_t *wick = m->config.root ? wk_yaml_get(m->config.root, "wick") : NULL;
  const wk_yaml_t *t = wick ? wk_yaml_get(wick, "threshold") : NULL;
  if (t != NULL) {
    double d;
    if (wk_yaml_as_double(t, &d) != 0 || !(d >= 0.0 && d <= 1.0))
      return wk_err(err, WK_EINVAL, "model '%s': wick.threshold: expected a score between 0 and 1",
                    m->name);
    st->threshold = (float)d;
  }
  return 0;
}

/* The detections of a forward: a scripted torchvision detector returns (losses,
 * detections); a model may also return the list of per-image dicts itself. */
static const wk_value_t *detections_of(const wk_value_t *out, size_t n) {
  if (out == NULL || out->kind != WK_V_LIST) return NULL;
  if (out->count == 2 && out->items[0]->kind == WK_V_DICT && out->items[1]->kind == WK_V_LIST)
    out = out->items[1];
  if (out->count != n) return NULL;
  for (size_t i = 0; i < n; i++)
    if (out->items[i]->kind != WK_V_DICT) return NULL;
  return out;
}

static const wk_tensor_t *field(const wk_value_t *d, const char *key) {
  for (size_t i = 0; i < d->count; i++)
    if (strcmp(d->keys[i], key) == 0 && d->items[i]->kind == WK_V_TENSOR) return &d->items[i]->tensor;
  return NULL;
}

/* One image's reply from its {boxes [K,4] float32, labels [K] int64, scores [K] float32};
 * NULL with msg set when the dict is not shaped so. */
static char *format_detections(const state_t *st, const wk_value_t *d, size_t *len, char *msg,
                               size_t msglen) {
  const wk_tensor_t *boxes = field(d, "boxes"), *labels = field(d, "labels"), *scores = field(d, "scores");
  if (boxes == NULL || labels == NULL || scores == NULL || boxes->dtype != WK_DT_FLOAT32 ||
      scores->dtype != WK_DT_FLOAT32 || labels->dtype != WK_DT_INT64 || boxes->ndim != 2 ||
      boxes->shape[1] != 4 || labels->ndim != 1 || scores->ndim != 1 ||
      labels->shape[0] != boxes->shape[0] || scores->shape[0] != boxes->shape[0]) {
    snprintf(msg, msglen,
             "object_detector expects the model to return, per image, a dict with boxes "
             "(float32 [K, 4]), labels (int64 [K]) and scores (float32 [K]), as torchvision's "
             "detection models do");
    return NULL;
  }
  const float *b = boxes->data, *s = scores->data;
  const int64_t *l = labels->data;
  wk_buf_t out = WK_BUF_INIT;
  int bad = wk_buf_putc(&out, '[');
  int first = 1;
  for (int64_t k = 0; k < boxes->shape[0]; k++) {
    if (!(s[k] >= st->threshold)) continue;
    if (!first) bad |= wk_buf_puts(&out, ", ");
    first = 0;
    char idx[32];
    const char *name = NULL;
    if (l[k] >= 0 && (uint64_t)l[k] < st->image.n_labels) name = st->image.labels[l[k]];
    if (name == NULL) {
      snprintf(idx, sizeof idx, "%lld", (long long)l[k]);
      name = idx;
    }
    bad |= wk_buf_puts(&out, "{");
    bad |= wk_buf_json_str(&out, name);
    bad |= wk_buf_puts(&out, ": [");
    for (int c = 0; c < 4; c++) {
      if (c) bad |= wk_buf_puts(&out, ", ");
      wk__print_float(&out, b[4 * k + c]);
    }
    bad |= wk_buf_puts(&out, "], \"score\": ");
    wk__print_float(&out, s[k]);
    bad |= wk_buf_putc(&out, '}');
  }
  bad |= wk_buf_puts(&out, "]");
  if (bad) {
    wk_buf_destroy(&out);
    snprintf(msg, msglen, "out of memory");
    return NULL;
  }
  return wk_buf_steal(&out, len);
}

static void run(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate;
  wk_value_t *list = wk_value_new(WK_V_LIST);
  size_t *member = calloc(n, sizeof *member); /* jobs[member[k]] is image k of the list */
  size_t g = 0;
  if (list == NULL || member == NULL) {
    for (size_t i = 0; i < n; i++) wk__job_fail(m, jobs[i], WK_ENOMEM, "out of memory");
    wk_value_free(list);
    free(member);
    return;
  }
  for (size_t i = 0; i < n; i++) {
    wk_tensor_t t;
    if (wk__image_prepare(m, jobs[i], &t) != 0) continue; /* answered */
    /* [1, C, H, W] -> [C, H, W]: the model takes a list of images */
    memmove(t.shape, t.shape + 1, sizeof(int64_t) * 3);
    t.ndim = 3;
    wk_value_t *item = wk_value_new(WK_V_TENSOR);
    if (item == NULL || wk_value_append(list, NULL, item) != 0) {
      wk_value_free(item);
      wk_tensor_destroy(&t);
      wk__job_fail(m, jobs[i], WK_ENOMEM, "out of memory");
      continue;
    }
    item->tensor = t;
    member[g++] = i;
  }
  if (g > 0) {
    const wk_value_t *args[1] = {list};
    wk_value_t *out = NULL;
    wk_err_t err = {{0}};
    int rc = wk__forward_values(m, index, args, 1, &out, &err);
    const wk_value_t *dets = rc == 0 ? detections_of(out, g) : NULL;
    if (rc == 0 && dets == NULL) {
      rc = WK_EINTERNAL;
      wk_err(&err, rc,
             "object_detector expects forward(List[Tensor]) to return a list of one dict per "
             "image (or torchvision's (losses, detections) tuple)");
    }
    for (size_t k = 0; k < g; k++) {
      wk__job_t *j = jobs[member[k]];
      if (rc != 0) {
        wk__job_fail(m, j, rc, err.msg);
        continue;
      }
      size_t len;
      char msg[256];
      char *body = format_detections(m->hstate, dets->items[k], &len, msg, sizeof msg);
      if (body == NULL) wk__job_reply_error(m, j, 500, "InternalServerException", msg);
      else wk__job_reply(m, j, 200, body, len);
    }
    wk_value_free(out);
  }
  wk_value_free(list);
  free(member);
}

static void explain(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate, (void)index;
  for (size_t i = 0; i < n; i++)
    wk__job_reply_error(m, jobs[i], 501, "NotImplementedException",
                        "object_detector models have no explanations (integrated gradients "
                        "need one score per class; a detector gives a list of boxes)");
}

const wk_handler_t wk__handler_detect = {
    .name = "object_detector",
    .flags = WK__HF_NATIVE | WK__HF_IMAGES,
    .platform = "pytorch_libtorch",
    .output_datatype = "BYTES",
    .init = init,
    .free = wk__image_free,
    .parse = wk__image_parse,
    .run = run,
    .explain = explain,
    .device = wk__native_device,
};
