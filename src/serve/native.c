/* The native `tensor` handler: stacks the batch's inputs along dim 0 (each request may
 * carry several rows), runs forward() once on the shared TorchScript module, and splits
 * the output back by request. Outputs that cannot be split (no batch dimension) make
 * the batch run again one request at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/log.h"
#include "serve/model_internal.h"

int wk__native_batchable(const wk__job_t *a, const wk__job_t *b) {
  if (a->explain || b->explain) return 0; /* one explanation per run */
  if (a->id[0] || b->id[0]) return a->id[0] && b->id[0]; /* Python: the handler batches */
  if (a->image || b->image) return a->image && b->image; /* shapes known after decoding */
  const wk_json_inputs_t *x = &a->inputs, *y = &b->inputs;
  if (x->count != y->count || x->count == 0) return 0;
  for (size_t i = 0; i < x->count; i++) {
    const wk_tensor_t *s = &x->tensors[i], *t = &y->tensors[i];
    if (s->dtype != t->dtype || s->ndim != t->ndim || s->ndim < 1) return 0;
    for (int d = 1; d < s->ndim; d++)
      if (s->shape[d] != t->shape[d]) return 0;
  }
  return 1;
}

/* Copies rows [start, start+rows) of v's batch dimension (size total) into a new tree.
 * NULL when some part of v has no such dimension. */
static wk_value_t *slice(const wk_value_t *v, int64_t start, int64_t rows, int64_t total) {
  wk_value_t *out = wk_value_new(v->kind);
  if (out == NULL) return NULL;
  switch (v->kind) {
  case WK_V_TENSOR: {
    const wk_tensor_t *t = &v->tensor;
    if (t->ndim < 1 || t->shape[0] != total) break;
    int64_t shape[WK_MAX_DIMS];
    memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    shape[0] = rows;
    if (wk_tensor_alloc(&out->tensor, t->dtype, t->ndim, shape) != 0) break;
    size_t row_bytes = total ? t->nbytes / (size_t)total : 0;
    if (out->tensor.nbytes)
      memcpy(out->tensor.data, (const char *)t->data + (size_t)start * row_bytes, out->tensor.nbytes);
    return out;
  }
  case WK_V_LIST:
  case WK_V_DICT:
    for (size_t i = 0; i < v->count; i++) {
      wk_value_t *item = slice(v->items[i], start, rows, total);
      if (item == NULL || wk_value_append(out, v->keys ? v->keys[i] : NULL, item) != 0) {
        wk_value_free(item);
        wk_value_free(out);
        return NULL;
      }
    }
    return out;
  default:
    break;
  }
  wk_value_free(out);
  return NULL;
}

static void reply_failure(wk_model_t *m, wk__job_t *j, int rc, const char *what) {
  if (rc != WK_EMODEL) {
    wk__job_reply_error(m, j, 500, "InternalServerException", what);
    return;
  }
  /* Say what was sent: libtorch names the shapes it compared, not always the input's. */
  char msg[1024];
  size_t n = (size_t)snprintf(msg, sizeof msg, "%s (received", what);
  for (size_t i = 0; i < j->inputs.count && n < sizeof msg; i++) {
    char shape[128];
    const wk_tensor_t *t = &j->inputs.tensors[i];
    wk_shape_str(t->shape, t->ndim, shape, sizeof shape);
    n += (size_t)snprintf(msg + n, sizeof msg - n, "%s input %zu: %s %s", i ? "," : "", i,
                          wk_dtype_name(t->dtype), shape);
  }
  if (n < sizeof msg) snprintf(msg + n, sizeof msg - n, ")");
  wk__job_reply_error(m, j, 400, "BadRequestException", msg);
}

static void reply_value(wk_model_t *m, wk__job_t *j, const wk_value_t *v) {
  if (j->envelope == WK__ENV_V2) {
    wk__v2_reply_value(m, j, v);
    return;
  }
  wk_buf_t b = WK_BUF_INIT;
  if (wk_json_print_value(&b, v) != 0) {
    wk_buf_destroy(&b);
    wk__job_reply_error(m, j, 500, "InternalServerException", "cannot encode the model's output");
    return;
  }
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk__job_reply(m, j, 200, body, len);
}

int wk__forward(wk_model_t *m, const wk_tensor_t *tensors, size_t count, size_t requests,
                   wk_value_t **out, wk_err_t *err) {
  wk_value_t storage[WK_MAX_NAMED_INPUTS];
  const wk_value_t *args[WK_MAX_NAMED_INPUTS];
  memset(storage, 0, sizeof storage);
  for (size_t i = 0; i < count; i++) {
    storage[i].kind = WK_V_TENSOR;
    storage[i].tensor = tensors[i];
    storage[i].tensor.owns_data = 0; /* the caller keeps it */
    args[i] = &storage[i];
  }
  return wk__forward_values(m, args, count, requests, out, err);
}

int wk__forward_values(wk_model_t *m, const wk_value_t *const *args, size_t count,
                       size_t requests, wk_value_t **out, wk_err_t *err) {
  int64_t start = wk_now_us();
  int rc = wk_torch_forward(m->torch, args, count, out, err);
  int64_t took = wk_now_us() - start;
  for (size_t r = 0; r < requests; r++) {
    atomic_fetch_add(&m->inference_us_total, (uint64_t)took);
    wk__hist_add(&m->inference_hist, wk__lat_bounds, WK__LAT_BUCKETS, (double)took / 1e6,
                 (uint64_t)took);
  }
  wk__hist_add(&m->batch_hist, wk__batch_bounds, WK__BATCH_BUCKETS, (double)requests,
               (uint64_t)requests);
  return rc;
}

static void run_one(wk_model_t *m, wk__job_t *j) {
  wk_value_t *out = NULL;
  wk_err_t err = {{0}};
  int rc = wk__forward(m, j->inputs.tensors, j->inputs.count, 1, &out, &err);
  if (rc != 0) reply_failure(m, j, rc, err.msg);
  else reply_value(m, j, out);
  wk_value_free(out);
}

/* Concatenates input k of every job along dim 0 into out (which owns the memory). */
static int stack(wk__job_t **jobs, size_t n, size_t k, wk_tensor_t *out) {
  const wk_tensor_t *first = &jobs[0]->inputs.tensors[k];
  int64_t shape[WK_MAX_DIMS];
  memcpy(shape, first->shape, sizeof(int64_t) * (size_t)first->ndim);
  shape[0] = 0;
  for (size_t i = 0; i < n; i++) shape[0] += jobs[i]->inputs.tensors[k].shape[0];
  int rc = wk_tensor_alloc(out, first->dtype, first->ndim, shape);
  if (rc != 0) return rc;
  size_t off = 0;
  for (size_t i = 0; i < n; i++) {
    const wk_tensor_t *t = &jobs[i]->inputs.tensors[k];
    if (t->nbytes) memcpy((char *)out->data + off, t->data, t->nbytes);
    off += t->nbytes;
  }
  return 0;
}

/* Integrated gradients for one request; the reply is the attribution without the batch
 * dimension ([C,H,W] for an image) as nested lists. */
static void run_explain(wk_model_t *m, wk__job_t *j) {
  wk_tensor_t x, attr;
  memset(&x, 0, sizeof x);
  if (m->kind == WK__H_IMAGE) {
    if (wk__image_prepare(m, j, &x) != 0) return; /* answered */
  } else {
    const wk_tensor_t *in = &j->inputs.tensors[0];
    if (j->inputs.count != 1 || in->ndim < 1 || in->shape[0] != 1 || in->dtype != WK_DT_FLOAT32) {
      char shape[128];
      wk_shape_str(in->shape, in->ndim, shape, sizeof shape);
      char msg[256];
      snprintf(msg, sizeof msg,
               "explanations take one float32 input with a first dimension of 1, got %zu "
               "input(s), the first %s %s",
               j->inputs.count, wk_dtype_name(in->dtype), shape);
      wk__job_reply_error(m, j, 400, "BadRequestException", msg);
      return;
    }
    x = *in;
    x.owns_data = 0;
  }
  int64_t target = -1;
  double f_x = 0, f_base = 0;
  wk_err_t err = {{0}};
  int64_t start = wk_now_us();
  int rc = wk_torch_integrated_gradients(m->torch, &x, j->target, j->n_steps, m->explain_batch,
                                         &attr, &target, &f_x, &f_base, &err);
  int64_t took = wk_now_us() - start;
  wk_tensor_destroy(&x);
  if (rc != 0) {
    int status = rc == WK_EINVAL || rc == WK_EMODEL ? 400 : 500;
    wk__job_reply_error(m, j, status, status == 400 ? "BadRequestException" : "InternalServerException",
                        err.msg);
    return;
  }
  wk_log_info("model %s: integrated gradients for class %lld, %d steps, in %lld ms", m->name,
              (long long)target, j->n_steps, (long long)(took / 1000));
  /* drop the batch dimension of one */
  memmove(attr.shape, attr.shape + 1, sizeof(int64_t) * (size_t)(attr.ndim - 1));
  attr.ndim--;
  wk_buf_t b = WK_BUF_INIT;
  int prc = wk_json_print_tensor(&b, &attr);
  wk_tensor_destroy(&attr);
  if (prc != 0) {
    wk_buf_destroy(&b);
    wk__job_reply_error(m, j, 500, "InternalServerException", "cannot encode the attributions");
    return;
  }
  char hdr[64];
  snprintf(hdr, sizeof hdr, "%lld", (long long)target);
  wk__job_header(j, "X-Wick-Target", hdr);
  snprintf(hdr, sizeof hdr, "%.9g", f_x - f_base);
  wk__job_header(j, "X-Wick-Output-Delta", hdr);
  size_t len;
  char *body = wk_buf_steal(&b, &len);
  wk__job_reply(m, j, 200, body, len);
}

void wk__native_run(wk_model_t *m, wk__job_t **jobs, size_t n) {
  int64_t now = wk_now_us();
  for (size_t i = 0; i < n; i++) {
    int64_t waited = now - jobs[i]->enqueued_us;
    atomic_fetch_add(&m->queue_us_total, (uint64_t)waited);
    wk__hist_add(&m->queue_hist, wk__lat_bounds, WK__LAT_BUCKETS, (double)waited / 1e6,
                 (uint64_t)waited);
  }
  if (jobs[0]->explain && m->kind == WK__H_DETECT) {
    for (size_t i = 0; i < n; i++)
      wk__job_reply_error(m, jobs[i], 501, "NotImplementedException",
                          "object_detector models have no explanations (integrated gradients "
                          "need one score per class; a detector gives a list of boxes)");
    return;
  }
  if (jobs[0]->explain) {
    for (size_t i = 0; i < n; i++) run_explain(m, jobs[i]);
    return;
  }
  if (m->kind == WK__H_DETECT) {
    wk__detect_run(m, jobs, n);
    return;
  }
  if (m->kind == WK__H_IMAGE) {
    wk__image_run(m, jobs, n);
    return;
  }
  if (n == 1) {
    run_one(m, jobs[0]);
    return;
  }
  size_t count = jobs[0]->inputs.count;
  wk_tensor_t stacked[WK_MAX_NAMED_INPUTS];
  memset(stacked, 0, sizeof stacked);
  int rc = 0;
  for (size_t k = 0; k < count && rc == 0; k++) rc = stack(jobs, n, k, &stacked[k]);
  wk_value_t *out = NULL;
  wk_err_t err = {{0}};
  if (rc == 0) rc = wk__forward(m, stacked, count, n, &out, &err);
  else wk_err(&err, rc, "cannot stack the batch: %s", wk_strerror(rc));
  int64_t total = stacked[0].shape[0];
  for (size_t k = 0; k < count; k++) wk_tensor_destroy(&stacked[k]);
  if (rc != 0) {
    /* One forward for the batch failed: every request in it gets the error (they share
     * dtype and trailing shape, so the model would reject each one alike). */
    for (size_t i = 0; i < n; i++) reply_failure(m, jobs[i], rc, err.msg);
    return;
  }
  int64_t start = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    int64_t rows = jobs[i]->inputs.tensors[0].shape[0];
    wk_value_t *part = slice(out, start, rows, total);
    if (part == NULL) break;
    reply_value(m, jobs[i], part);
    wk_value_free(part);
    start += rows;
  }
  wk_value_free(out);
  if (i < n) {
    if (i == 0) {
      wk_log_warn("model %s: the output has no batch dimension of size %lld: running its "
                  "batches one request at a time (set batchSize 1 for this model)",
                  m->name, (long long)total);
    }
    for (; i < n; i++) run_one(m, jobs[i]);
  }
}
