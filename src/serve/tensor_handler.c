/* The native `tensor` handler (also `base_handler`): JSON tensors in (TorchServe bodies,
 * KServe v1 instances as rows, v2 tensors by forward()'s argument names), the batch's
 * inputs stacked along dim 0 (each request may carry several rows), forward() once on the
 * shared TorchScript module, the output split back by request. Outputs that cannot be split
 * (no batch dimension) make the batch run again one request at a time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/limits.h"
#include "archive/model_config.h"
#include "core/log.h"
#include "core/multipart.h"
#include "serve/native.h"
#include "serve/v2_encode.h"
#include "tensor/oip.h"

typedef struct {
  wk__native_t native; /* first: WK__NATIVE */
  int64_t max_request_elements; /* wick.max_request_elements */
} state_t;

/* [11] part 1: what one request and one batch may bring, in input elements (all of a
 * request's tensors together), unless wick.max_request_elements / max_batch_elements say:
 * 4 Mi per request (16 MB of float32, more than a default-sized JSON or v2 body holds) and
 * 16 Mi per batch (64 MB), or one request's worth when that is more. */
#define DEFAULT_MAX_REQUEST_ELEMENTS (1LL << 22)
#define DEFAULT_MAX_BATCH_ELEMENTS (1LL << 24)

static int positive(const wk_model_t *m, const char *key, int64_t dflt, int64_t *out, wk_err_t *err) {
  const wk_yaml_t *wick = m->config.root ? wk_yaml_get(m->config.root, "wick") : NULL;
  const wk_yaml_t *v = wick ? wk_yaml_get(wick, key) : NULL;
  long long n = dflt;
  if (v && (wk_yaml_as_int(v, &n) != 0 || n < 1))
    return wk_err(err, WK_EINVAL, "wick.%s: expected a positive integer (input elements)", key);
  *out = n;
  return 0;
}

static int init(wk_model_t *m, const wk_model_load_opts_t *o, wk_err_t *err) {
  state_t *s = calloc(1, sizeof *s);
  if (s == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  m->hstate = s;
  int64_t per_batch;
  int rc = positive(m, "max_request_elements", DEFAULT_MAX_REQUEST_ELEMENTS, &s->max_request_elements, err);
  if (rc == 0) rc = positive(m, "max_batch_elements", DEFAULT_MAX_BATCH_ELEMENTS, &per_batch, err);
  if (rc != 0) return rc;
  m->max_batch_elements = per_batch > s->max_request_elements ? per_batch : s->max_request_elements;
  return wk__native_load(m, o, &s->native, err);
}

/* Counts j's input elements; WK_ETOOBIG (413) past wick.max_request_elements. */
static int count_elements(const wk_model_t *m, wk__job_t *j, wk_err_t *err) {
  const state_t *s = m->hstate;
  j->elements = 0;
  for (size_t i = 0; i < j->inputs.count; i++) j->elements += wk_tensor_numel(&j->inputs.tensors[i]);
  if (j->elements > s->max_request_elements)
    return wk_err(err, WK_ETOOBIG,
                  "the request's inputs hold %lld elements; this model takes at most %lld per "
                  "request (wick.max_request_elements)",
                  (long long)j->elements, (long long)s->max_request_elements);
  return 0;
}

static void free_state(wk_model_t *m) {
  state_t *s = m->hstate;
  if (s == NULL) return;
  wk__native_unload(&s->native);
  free(s);
  m->hstate = NULL;
}

/* ---- requests ---- */

/* Moves inputs named after forward()'s arguments into argument order. */
static int order_named_inputs(wk_model_t *m, wk_json_inputs_t *in, char *msg, size_t msglen) {
  if (in->count == 0 || in->names[0] == NULL) return 0;
  size_t nargs = wk_torch_arg_count(WK__NATIVE(m)->torch);
  wk_json_inputs_t sorted;
  memset(&sorted, 0, sizeof sorted);
  size_t used = 0;
  for (size_t a = 0; a < nargs && a < WK_MAX_NAMED_INPUTS; a++) {
    const char *arg = wk_torch_arg_name(WK__NATIVE(m)->torch, a);
    size_t k = 0;
    while (k < in->count && (in->names[k] == NULL || strcmp(in->names[k], arg) != 0)) k++;
    if (k == in->count) break; /* later arguments may have defaults */
    sorted.tensors[sorted.count] = in->tensors[k];
    sorted.names[sorted.count] = in->names[k];
    in->names[k] = NULL;
    memset(&in->tensors[k], 0, sizeof in->tensors[k]);
    sorted.count++;
    used++;
  }
  if (used != in->count) {
    wk_buf_t b = WK_BUF_INIT;
    for (size_t a = 0; a < nargs; a++) wk_buf_printf(&b, "%s%s", a ? ", " : "", wk_torch_arg_name(WK__NATIVE(m)->torch, a));
    const char *bad = "?";
    for (size_t k = 0; k < in->count; k++)
      if (in->names[k] != NULL) bad = in->names[k];
    snprintf(msg, msglen,
             "input '%s' does not match forward(%s): name the inputs after forward()'s "
             "arguments, in order, without gaps",
             bad, b.data ? b.data : "");
    wk_buf_destroy(&b);
    wk_json_inputs_destroy(&sorted);
    return WK_EINVAL;
  }
  wk_json_inputs_destroy(in);
  *in = sorted;
  return 0;
}

/* The JSON of a multipart body: the field named data, else body, else the first non-empty
 * one (TorchServe's handlers read data or body; gRPC's Predictions arrive this way). */
static int multipart_json(const wk_request_t *r, const char **json, size_t *len, wk_err_t *err) {
  wk_multipart_part_t parts[WK_MULTIPART_MAX_PARTS];
  int n = wk_multipart_parse(r->content_type, r->body, r->body_len, parts, WK_MULTIPART_MAX_PARTS, err);
  if (n < 0) return n;
  int pick = -1;
  for (int i = 0; i < n && pick < 0; i++)
    if (strcmp(parts[i].name, "data") == 0) pick = i;
  for (int i = 0; i < n && pick < 0; i++)
    if (strcmp(parts[i].name, "body") == 0) pick = i;
  for (int i = 0; i < n && pick < 0; i++)
    if (parts[i].len) pick = i;
  if (pick < 0) return wk_err(err, WK_EINVAL, "multipart body without a field: expected the JSON tensors in a field named data");
  *json = parts[pick].data;
  *len = parts[pick].len;
  return 0;
}

static int parse(wk_model_t *m, wk__job_t *j, const wk_request_t *r, wk_err_t *err) {
  const char *body = r->body;
  size_t len = r->body_len;
  if (wk_multipart_is(r->content_type)) {
    int rc = multipart_json(r, &body, &len, err);
    if (rc != 0) return rc;
  }
  int rc = wk_json_parse_inputs(body, len, &j->inputs, err);
  if (rc == 0) rc = order_named_inputs(m, &j->inputs, err->msg, sizeof err->msg);
  if (rc == 0) rc = count_elements(m, j, err);
  return rc;
}

/* forward()'s argument index for an input name: the TorchScript argument name, a name
 * declared in wick.inputs, or INPUT__k. -1 if none. */
static int arg_index(const wk_model_t *m, const char *name) {
  size_t nargs = wk_torch_arg_count(WK__NATIVE(m)->torch);
  for (size_t a = 0; a < nargs; a++) {
    const char *d = wk__declared_name(m, "inputs", a);
    if (strcmp(wk_torch_arg_name(WK__NATIVE(m)->torch, a), name) == 0 || (d && strcmp(d, name) == 0)) return (int)a;
  }
  unsigned k;
  char tail;
  if (sscanf(name, "INPUT__%u%c", &k, &tail) == 1 && k < nargs) return (int)k;
  return -1;
}

static void arg_names(const wk_model_t *m, char *out, size_t cap) {
  size_t n = 0;
  out[0] = '\0';
  for (size_t a = 0; a < wk_torch_arg_count(WK__NATIVE(m)->torch) && n < cap; a++)
    n += (size_t)snprintf(out + n, cap - n, "%s'%s' (INPUT__%zu)", a ? ", " : "", wk_torch_arg_name(WK__NATIVE(m)->torch, a), a);
}

/* v2 inputs matched to forward()'s arguments by name (or INPUT__k). */
static int parse_v2(wk_model_t *m, wk__job_t *j, wk_oip_request_t *r, wk_err_t *err) {
  int rc = 0;
  size_t nargs = wk_torch_arg_count(WK__NATIVE(m)->torch);
  char given[WK_MAX_NAMED_INPUTS] = {0};
  if (nargs > WK_MAX_NAMED_INPUTS)
    rc = wk_err(err, WK_EUNSUPPORTED, "forward() takes %zu tensors; wick passes at most %d", nargs,
                WK_MAX_NAMED_INPUTS);
  for (size_t i = 0; i < r->n_inputs && rc == 0; i++) {
    wk_oip_input_t *in = &r->inputs[i];
    int a = arg_index(m, in->name);
    char names[300];
    if (a < 0) {
      arg_names(m, names, sizeof names);
      rc = wk_err(err, WK_EINVAL, "inputs[%zu] '%.100s': the model has no such input; its inputs are %s", i,
                  in->name, names);
    } else if (in->is_bytes) {
      rc = wk_err(err, WK_EINVAL, "inputs[%zu] '%.100s': BYTES inputs need the image or a Python handler; "
                  "this model takes tensors", i, in->name);
    } else if (given[a]) {
      rc = wk_err(err, WK_EINVAL, "inputs[%zu] '%.100s': forward() argument %d is given twice", i, in->name, a);
    } else {
      j->inputs.tensors[a] = in->tensor;
      memset(&in->tensor, 0, sizeof in->tensor);
      given[a] = 1;
    }
  }
  for (size_t a = 0; a < nargs && rc == 0; a++)
    if (!given[a])
      rc = wk_err(err, WK_EINVAL, "no input for forward() argument '%s' (INPUT__%zu)",
                  wk_torch_arg_name(WK__NATIVE(m)->torch, a), a);
  j->inputs.count = nargs <= WK_MAX_NAMED_INPUTS ? nargs : 0; /* freed with the job */
  if (rc == 0) rc = count_elements(m, j, err);
  return rc;
}

static size_t inputs(const wk_model_t *m, wk__io_t *out, size_t cap) {
  wk_torch_model_t *t = WK__NATIVE(m)->torch;
  size_t n = wk_torch_arg_count(t);
  for (size_t a = 0; a < n && a < cap; a++) {
    const char *dt = wk_torch_arg_dtype(t, a);
    out[a] = (wk__io_t){.name = wk_torch_arg_name(t, a), .datatype = dt ? dt : "FP32"};
    wk__native_io(m, a, &out[a]); /* an AOTInductor package's recorded spec */
  }
  return n < cap ? n : cap;
}

/* ---- batches ---- */

/* Jobs share a batch when their inputs have the same count, dtypes and trailing shapes. */
static int batchable(const wk__job_t *a, const wk__job_t *b) {
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
    wk__job_fail(m, j, rc, what);
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

static void run_one(wk_model_t *m, int index, wk__job_t *j) {
  wk_value_t *out = NULL;
  wk_err_t err = {{0}};
  int rc = wk__forward(m, index, j->inputs.tensors, j->inputs.count, &out, &err);
  if (rc != 0) reply_failure(m, j, rc, err.msg);
  else wk__job_reply_value(m, j, out);
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

static void run(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate;
  if (n == 1) {
    run_one(m, index, jobs[0]);
    return;
  }
  size_t count = jobs[0]->inputs.count;
  wk_tensor_t stacked[WK_MAX_NAMED_INPUTS];
  memset(stacked, 0, sizeof stacked);
  int rc = 0;
  for (size_t k = 0; k < count && rc == 0; k++) rc = stack(jobs, n, k, &stacked[k]);
  wk_value_t *out = NULL;
  wk_err_t err = {{0}};
  if (rc == 0) rc = wk__forward(m, index, stacked, count, &out, &err);
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
    wk__job_reply_value(m, jobs[i], part);
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
    for (; i < n; i++) run_one(m, index, jobs[i]);
  }
}

/* Integrated gradients for one request whose one input is [1, ...] float32. */
static void explain_one(wk_model_t *m, int index, wk__job_t *j) {
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
  wk__native_explain(m, index, j, in);
}

static void explain(wk_model_t *m, void **wstate, int index, wk__job_t **jobs, size_t n) {
  (void)wstate;
  for (size_t i = 0; i < n; i++) explain_one(m, index, jobs[i]);
}

const wk_handler_t wk__handler_tensor = {
    .name = "tensor",
    .aliases = (const char *const[]){"base_handler", NULL},
    .flags = WK__HF_NATIVE | WK__HF_ROWS,
    .platform = "pytorch_libtorch",
    .output_datatype = "FP32",
    .init = init,
    .free = free_state,
    .parse = parse,
    .parse_v2 = parse_v2,
    .batchable = batchable,
    .run = run,
    .explain = explain,
    .inputs = inputs,
    .device = wk__native_device,
};
