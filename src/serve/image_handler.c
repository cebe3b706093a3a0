/* The native `image_classifier` handler: image bytes in (raw body, multipart field, or
 * JSON {"data": base64}), decode + TorchServe's preprocessing in C, a batched forward,
 * softmax and top-k out as {"label": probability}, labels from index_to_name.json. */
#include <jansson.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/base64.h"
#include "core/fs.h"
#include "core/limits.h"
#include "core/log.h"
#include "core/multipart.h"
#include "serve/image.h"

/* ---- configuration ---- */

static int yaml_int(const wk_yaml_t *map, const char *key, int *out, wk_err_t *err) {
  const wk_yaml_t *n = map ? wk_yaml_get(map, key) : NULL;
  if (n == NULL) return 0;
  long long v;
  if (wk_yaml_as_int(n, &v) != 0 || v < 0 || v > (1 << 20))
    return wk_err(err, WK_EINVAL, "wick.image.%s: expected a non-negative integer", key);
  *out = (int)v;
  return 0;
}

/* Reads a number or a list of 1 or 3 numbers into v[3]. */
static int yaml_triple(const wk_yaml_t *map, const char *key, float *v, wk_err_t *err) {
  const wk_yaml_t *n = map ? wk_yaml_get(map, key) : NULL;
  if (n == NULL) return 0;
  double d;
  if (n->kind == WK_YAML_SCALAR) {
    if (wk_yaml_as_double(n, &d) != 0) goto bad;
    v[0] = v[1] = v[2] = (float)d;
    return 0;
  }
  if (n->kind != WK_YAML_SEQ || (n->count != 1 && n->count != 3)) goto bad;
  for (size_t i = 0; i < 3; i++) {
    if (wk_yaml_as_double(n->items[n->count == 1 ? 0 : i], &d) != 0) goto bad;
    v[i] = (float)d;
  }
  return 0;
bad:
  return wk_err(err, WK_EINVAL, "wick.image.%s: expected a number or a list of 1 or 3 numbers", key);
}

/* index_to_name.json: {"0": "name"} or {"0": ["n01440764", "name"]} (the last element). */
static int load_labels(wk_model_t *m, wk__image_t *st, wk_err_t *err) {
  char path[4200];
  wk_fs_join(path, sizeof path, m->model_dir, "index_to_name.json");
  if (!wk_fs_exists(path)) return 0;
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  if (root == NULL || !json_is_object(root)) {
    json_decref(root);
    return wk_err(err, WK_EINVAL, "index_to_name.json: line %d: %s", je.line,
                  root ? "expected an object" : je.text);
  }
  size_t max = 0;
  const char *key;
  json_t *val;
  json_object_foreach(root, key, val) {
    char *end;
    long idx = strtol(key, &end, 10);
    if (*end || idx < 0 || idx > 1000000) {
      json_decref(root);
      return wk_err(err, WK_EINVAL, "index_to_name.json: key '%s' is not a class index", key);
    }
    if ((size_t)idx + 1 > max) max = (size_t)idx + 1;
  }
  st->labels = calloc(max ? max : 1, sizeof *st->labels);
  if (st->labels == NULL) {
    json_decref(root);
    return wk_err(err, WK_ENOMEM, "out of memory");
  }
  st->n_labels = max;
  json_object_foreach(root, key, val) {
    size_t idx = (size_t)strtol(key, NULL, 10);
    json_t *name = json_is_array(val) ? json_array_get(val, json_array_size(val) - 1) : val;
    if (!json_is_string(name)) {
      json_decref(root);
      return wk_err(err, WK_EINVAL,
                    "index_to_name.json: the value of '%s' must be a string or a list ending in one",
                    key);
    }
    st->labels[idx] = strdup(json_string_value(name));
  }
  json_decref(root);
  return 0;
}

/* The most input elements one request may bring when nothing says more (1 Mi: a
 * 1024x1024 gray image, 590x590 RGB); wick.max_request_elements raises it. */
#define DEFAULT_MAX_REQUEST_ELEMENTS (1L << 20)

/* [H, W] of a list node, or 0 when n is not a list of two positive integers. */
static int hw_of(const wk_yaml_t *n, size_t from, int *h, int *w) {
  long long a, b;
  if (n == NULL || n->kind != WK_YAML_SEQ || n->count < from + 2 ||
      wk_yaml_as_int(n->items[from], &a) != 0 || wk_yaml_as_int(n->items[from + 1], &b) != 0 ||
      a < 1 || b < 1 || a > (1 << 20) || b > (1 << 20))
    return 0;
  *h = (int)a;
  *w = (int)b;
  return 1;
}

/* [11] part 1: the size the model takes, and the bound on one request's elements. */
static int configure_bounds(const wk_yaml_t *wick, const wk_yaml_t *img, wk__image_t *st,
                            wk_err_t *err) {
  const wk_yaml_t *size = img ? wk_yaml_get(img, "size") : NULL;
  if (size && size->kind == WK_YAML_SCALAR && size->scalar && strcmp(size->scalar, "any") == 0)
    st->want_h = st->want_w = -1; /* takes any size (a fully convolutional model) */
  else if (size && !hw_of(size, 0, &st->want_h, &st->want_w))
    return wk_err(err, WK_EINVAL, "wick.image.size: expected [height, width] in pixels, or any");
  if (size == NULL) { /* wick.inputs: [{shape: [-1, C, H, W]}] */
    const wk_yaml_t *ins = wick ? wk_yaml_get(wick, "inputs") : NULL;
    const wk_yaml_t *first = ins && ins->kind == WK_YAML_SEQ && ins->count ? ins->items[0] : NULL;
    const wk_yaml_t *shape = first ? wk_yaml_get(first, "shape") : NULL;
    if (shape && shape->kind == WK_YAML_SEQ && shape->count == 4) hw_of(shape, 2, &st->want_h, &st->want_w);
  }
  const wk_yaml_t *mx = wick ? wk_yaml_get(wick, "max_request_elements") : NULL;
  long long v = 0;
  if (mx && (wk_yaml_as_int(mx, &v) != 0 || v < 1))
    return wk_err(err, WK_EINVAL, "wick.max_request_elements: expected a positive integer");
  int resizes = st->pre.resize > 0 || st->pre.crop_h > 0;
  if (v > 0) st->max_elements = (long)v;
  else if (st->pre.crop_h > 0) st->max_elements = (long)st->pre.channels * st->pre.crop_h * st->pre.crop_w;
  else if (!resizes && st->want_h > 0) st->max_elements = (long)st->pre.channels * st->want_h * st->want_w;
  else st->max_elements = DEFAULT_MAX_REQUEST_ELEMENTS * (resizes ? 4 : 1);
  return 0;
}

/* Reads wick.image and wick.topk over dflt, and the labels. */
static int configure(wk_model_t *m, wk__image_t *st, const wk_preprocess_opts_t *dflt,
                     long max_pixels, wk_err_t *err) {
  st->pre = *dflt;
  st->topk = 5;
  st->max_pixels = max_pixels;
  const wk_yaml_t *wick = m->config.root ? wk_yaml_get(m->config.root, "wick") : NULL;
  const wk_yaml_t *img = wick ? wk_yaml_get(wick, "image") : NULL;
  int rc;
  int max_px = 0;
  if ((rc = yaml_int(img, "resize", &st->pre.resize, err)) != 0 ||
      (rc = yaml_int(img, "crop", &st->pre.crop_h, err)) != 0 ||
      (rc = yaml_int(img, "channels", &st->pre.channels, err)) != 0 ||
      (rc = yaml_int(img, "max_pixels", &max_px, err)) != 0 ||
      (rc = yaml_triple(img, "mean", st->pre.mean, err)) != 0 ||
      (rc = yaml_triple(img, "std", st->pre.std, err)) != 0 ||
      (rc = yaml_int(wick, "topk", &st->topk, err)) != 0 ||
      0)
    return rc;
  st->pre.crop_w = st->pre.crop_h;
  if (st->pre.channels != 1 && st->pre.channels != 3)
    return wk_err(err, WK_EINVAL, "wick.image.channels: expected 1 (gray) or 3 (RGB), got %d",
                  st->pre.channels);
  for (int c = 0; c < 3; c++)
    if (st->pre.std[c] == 0.0f) return wk_err(err, WK_EINVAL, "wick.image.std: must not be 0");
  if (max_px > 0 && (st->max_pixels <= 0 || max_px < st->max_pixels)) st->max_pixels = max_px;
  if (st->topk < 1) st->topk = 1;
  if ((rc = configure_bounds(wick, img, st, err)) != 0) return rc;
  return load_labels(m, st, err);
}

int wk__image_init(wk_model_t *m, const wk_model_load_opts_t *o, const wk_preprocess_opts_t *dflt,
                   size_t state_size, wk_err_t *err) {
  wk__image_t *st = calloc(1, state_size);
  if (st == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  m->hstate = st;
  int rc = configure(m, st, dflt, o->max_image_pixels, err);
  if (rc != 0) {
    wk_err_prefix(err, "model '%s'", m->name);
    return rc;
  }
  return wk__native_load(m, o, &st->native, err);
}

void wk__image_free(wk_model_t *m) {
  wk__image_t *st = m->hstate;
  if (st == NULL) return;
  wk__native_unload(&st->native);
  for (size_t i = 0; i < st->n_labels; i++) free(st->labels[i]);
  free(st->labels);
  free(st);
  m->hstate = NULL;
}


/* ---- request bodies ---- */

static int take_bytes(wk__job_t *j, const void *p, size_t len) {
  j->data = malloc(len ? len : 1);
  if (j->data == NULL) return WK_ENOMEM;
  memcpy(j->data, p, len);
  j->data_len = len;
  return 0;
}

int wk__image_admit(wk_model_t *m, const wk__job_t *j, wk_err_t *err) {
  wk__image_t *st = WK__IMAGE(m);
  int w, h;
  int rc = wk_image_size(j->data, j->data_len, &w, &h, err);
  if (rc != 0) return rc;
  if (st->max_pixels > 0 && (long long)w * h > st->max_pixels)
    return wk_err(err, WK_ETOOBIG,
                  "the image is %dx%d, %lld pixels; the limit (limit_max_image_pixels or "
                  "wick.image.max_pixels) is %ld",
                  w, h, (long long)w * h, st->max_pixels);
  if (st->pre.resize == 0 && st->pre.crop_h == 0) {
    int ww = st->want_w, wh = st->want_h, declared = ww > 0;
    if (ww == 0) {
      ww = atomic_load(&st->seen_w);
      wh = atomic_load(&st->seen_h);
    }
    if (ww > 0 && (w != ww || h != wh))
      return wk_err(err, WK_EINVAL,
                    "the image is %dx%d (width x height); model '%s' takes %dx%d images (%s) and "
                    "does not resize them (wick.image.resize and crop would)",
                    w, h, m->name, ww, wh,
                    declared ? "its declared size" : "the size of the images it has answered");
  }
  int c, oh, ow;
  wk_err_t ignored;
  if (wk_preprocess_shape(&st->pre, w, h, &c, &oh, &ow, &ignored) != 0) return 0; /* run says */
  long long n = (long long)c * oh * ow;
  if (n > st->max_elements)
    return wk_err(err, WK_ETOOBIG,
                  "the image is %dx%d: %lld input elements after preprocessing; model '%s' takes "
                  "at most %ld per request (wick.max_request_elements, or wick.image.size)",
                  w, h, n, m->name, st->max_elements);
  return 0;
}

static int parse_body(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err);

int wk__image_parse(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err) {
  int rc = parse_body(m, j, r, err);
  return rc == 0 ? wk__image_admit(m, j, err) : rc;
}

static int parse_body(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err) {
  (void)m;
  size_t len = r->body_len;
  const char *body = r->body, *ct = r->content_type;
  if (len == 0) return wk_err(err, WK_EINVAL, "empty body: expected a JPEG or PNG image");
  if (wk_multipart_is(ct)) {
    wk_multipart_part_t parts[WK_MULTIPART_MAX_PARTS];
    int n = wk_multipart_parse(ct, body, len, parts, WK_MULTIPART_MAX_PARTS, err);
    if (n < 0) return n;
    /* TorchServe takes any field: prefer a file part, else the first non-empty one */
    int pick = -1;
    for (int i = 0; i < n && pick < 0; i++)
      if (parts[i].filename[0] && parts[i].len) pick = i;
    for (int i = 0; i < n && pick < 0; i++)
      if (parts[i].len) pick = i;
    for (int i = 0; i < n; i++) {
      if (i == pick || parts[i].filename[0]) continue;
      int rc = wk__job_explain_param(j, parts[i].name, parts[i].data, parts[i].len, err);
      if (rc != 0) return rc;
    }
    if (pick < 0)
      return wk_err(err, WK_EINVAL, "multipart body without a file: expected an image field (curl -F data=@image.png)");
    return take_bytes(j, parts[pick].data, parts[pick].len);
  }
  size_t i = 0;
  while (i < len && (body[i] == ' ' || body[i] == '\n' || body[i] == '\r' || body[i] == '\t')) i++;
  if (i < len && body[i] == '{') {
    json_error_t je;
    json_t *root = json_loadb(body, len, 0, &je);
    if (root == NULL)
      return wk_err(err, WK_EINVAL, "malformed JSON at line %d, column %d: %s", je.line, je.column, je.text);
    json_t *data = json_object_get(root, "data");
    if (data == NULL) data = json_object_get(root, "body");
    if (json_is_object(data)) data = json_object_get(data, "b64");
    if (!json_is_string(data)) {
      json_decref(root);
      return wk_err(err, WK_EINVAL, "JSON body without an image: expected {\"data\": \"<base64 of a JPEG or PNG>\"}");
    }
    int rc = 0;
    const char *names[2] = {"target", "n_steps"};
    for (int k = 0; k < 2 && rc == 0; k++) {
      json_t *v = json_object_get(root, names[k]);
      if (v == NULL) continue;
      char text[32];
      if (json_is_integer(v)) snprintf(text, sizeof text, "%lld", (long long)json_integer_value(v));
      else if (json_is_string(v)) snprintf(text, sizeof text, "%s", json_string_value(v));
      else snprintf(text, sizeof text, "?");
      rc = wk__job_explain_param(j, names[k], text, strlen(text), err);
    }
    unsigned char *bytes = NULL;
    size_t n = 0;
    if (rc == 0) rc = wk_base64_decode(json_string_value(data), json_string_length(data), &bytes, &n, err);
    json_decref(root);
    if (rc != 0) return rc;
    j->data = bytes;
    j->data_len = n;
    return 0;
  }
  return take_bytes(j, body, len);
}

/* ---- running a batch ---- */

void wk__print_float(wk_buf_t *b, float f) {
  wk_tensor_t t;
  memset(&t, 0, sizeof t);
  t.dtype = WK_DT_FLOAT32;
  t.ndim = 0;
  t.data = &f;
  t.nbytes = sizeof f;
  wk_json_print_tensor(b, &t);
}

/* Softmax over one row of logits, then the top k as {"label": p, ...}, best first. */
static char *classify_row(const wk__image_t *st, const float *logits, size_t k_classes, size_t *len) {
  float *p = malloc(sizeof(float) * k_classes);
  size_t *order = malloc(sizeof(size_t) * k_classes);
  if (p == NULL || order == NULL) {
    free(p);
    free(order);
    return NULL;
  }
  float mx = logits[0];
  for (size_t i = 1; i < k_classes; i++) mx = logits[i] > mx ? logits[i] : mx;
  double sum = 0;
  for (size_t i = 0; i < k_classes; i++) sum += exp((double)(logits[i] - mx));
  for (size_t i = 0; i < k_classes; i++) p[i] = (float)(exp((double)(logits[i] - mx)) / sum);
  size_t k = (size_t)st->topk < k_classes ? (size_t)st->topk : k_classes;
  for (size_t i = 0; i < k_classes; i++) order[i] = i;
  for (size_t i = 0; i < k; i++) { /* partial selection sort: k is small */
    size_t best = i;
    for (size_t j = i + 1; j < k_classes; j++)
      if (p[order[j]] > p[order[best]]) best = j;
    size_t t = order[i];
    order[i] = order[best];
    order[best] = t;
  }
  wk_buf_t b = WK_BUF_INIT;
  wk_buf_puts(&b, "{");
  for (size_t i = 0; i < k; i++) {
    size_t c = order[i];
    char idx[32];
    snprintf(idx, sizeof idx, "%zu", c);
    wk_buf_puts(&b, i ? ", " : "");
    wk_buf_json_str(&b, c < st->n_labels && st->labels[c] ? st->labels[c] : idx);
    wk_buf_puts(&b, ": ");
    wk__print_float(&b, p[c]);
  }
  wk_buf_puts(&b, "}");
  free(p);
  free(order);
  return wk_buf_steal(&b, len);
}

int wk__image_prepare(wk_model_t *m, wk__job_t *j, wk_tensor_t *t) {
  const wk__image_t *st = WK__IMAGE(m);
  wk_image_t img;
  wk_err_t err = {{0}};
  int rc = wk_image_decode(j->data, j->data_len, st->pre.channels, st->max_pixels, &img, &err);
  int decoded = rc == 0;
  int c = 0, h = 0, w = 0;
  if (rc == 0) rc = wk_preprocess_shape(&st->pre, img.width, img.height, &c, &h, &w, &err);
  if (rc == 0) {
    int64_t shape[4] = {1, c, h, w};
    rc = wk_tensor_alloc(t, WK_DT_FLOAT32, 4, shape);
    if (rc == 0) rc = wk_preprocess(&img, &st->pre, t->data, (size_t)c * h * w, &err);
    if (rc != 0) wk_tensor_destroy(t);
  }
  if (decoded) wk_image_destroy(&img);
  if (rc != 0) {
    wk__job_fail(m, j, rc, err.msg);
  }
  return rc;
}

static void run(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate;
  wk_tensor_t *in = calloc(n, sizeof *in);
  int *ok = calloc(n, sizeof *ok);
  if (in == NULL || ok == NULL) {
    for (size_t i = 0; i < n; i++) wk__job_fail(m, jobs[i], WK_ENOMEM, "out of memory");
    free(in);
    free(ok);
    return;
  }
  for (size_t i = 0; i < n; i++) ok[i] = wk__image_prepare(m, jobs[i], &in[i]) == 0;
  /* Images that preprocess to the same shape share one forward; usually all do. */
  for (size_t first = 0; first < n; first++) {
    if (!ok[first]) continue;
    size_t group[512], g = 0;
    for (size_t i = first; i < n && g < 512; i++) {
      if (!ok[i] || memcmp(in[i].shape, in[first].shape, sizeof in[i].shape) != 0) continue;
      group[g++] = i;
      ok[i] = 0; /* handled */
    }
    int64_t shape[4] = {(int64_t)g, in[first].shape[1], in[first].shape[2], in[first].shape[3]};
    wk_tensor_t batch;
    int rc = wk_tensor_alloc(&batch, WK_DT_FLOAT32, 4, shape);
    wk_value_t *out = NULL;
    wk_err_t err = {{0}};
    if (rc == 0) {
      for (size_t k = 0; k < g; k++)
        memcpy((char *)batch.data + k * in[group[k]].nbytes, in[group[k]].data, in[group[k]].nbytes);
      rc = wk__forward(m, index, &batch, 1, &out, &err);
      wk_tensor_destroy(&batch);
      wk__image_t *st = WK__IMAGE(m);
      if (rc == 0 && st->want_w == 0 && st->pre.resize == 0 && st->pre.crop_h == 0 &&
          atomic_load(&st->seen_w) == 0) { /* the size it was measured with */
        atomic_store(&st->seen_h, (int)shape[2]);
        atomic_store(&st->seen_w, (int)shape[3]);
      }
    } else {
      wk_err(&err, rc, "cannot allocate the batch");
    }
    const wk_tensor_t *logits = out && out->kind == WK_V_TENSOR ? &out->tensor : NULL;
    if (rc == 0 && (logits == NULL || logits->dtype != WK_DT_FLOAT32 || logits->ndim != 2 ||
                    logits->shape[0] != (int64_t)g || logits->shape[1] < 1)) {
      rc = WK_EINTERNAL;
      wk_err(&err, rc,
             "image_classifier expects the model to return logits of shape [N, classes] as "
             "float32");
    }
    for (size_t k = 0; k < g; k++) {
      wk__job_t *j = jobs[group[k]];
      if (rc != 0) {
        wk__job_fail(m, j, rc, err.msg);
        continue;
      }
      size_t classes = (size_t)logits->shape[1], len;
      char *body = classify_row(WK__IMAGE(m), (const float *)logits->data + k * classes, classes, &len);
      if (body == NULL) wk__job_fail(m, j, WK_ENOMEM, "out of memory");
      else wk__job_reply(m, j, 200, body, len);
    }
    wk_value_free(out);
  }
  for (size_t i = 0; i < n; i++) wk_tensor_destroy(&in[i]);
  free(in);
  free(ok);
}

/* Integrated gradients of the class score with respect to the preprocessed image. */
static void explain(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate;
  for (size_t i = 0; i < n; i++) {
    wk_tensor_t x;
    memset(&x, 0, sizeof x);
    if (wk__image_prepare(m, jobs[i], &x) != 0) continue; /* answered */
    wk__native_explain(m, index, jobs[i], &x);
    wk_tensor_destroy(&x);
  }
}

static int init(wk_model_t *m, const wk_model_load_opts_t *o, wk_err_t *err) {
  wk_preprocess_opts_t dflt;
  wk_preprocess_opts_default(&dflt);
  return wk__image_init(m, o, &dflt, sizeof(wk__image_t), err);
}

const wk_handler_t wk__handler_image = {
    .name = "image_classifier",
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
