/* Tensor and value bookkeeping: sizes, names, allocation, trees. */
#include "tensor/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

static const struct {
  const char *name;
  size_t size;
} g_dtypes[WK_DT_COUNT] = {
    [WK_DT_FLOAT32] = {"float32", 4}, [WK_DT_FLOAT64] = {"float64", 8},
    [WK_DT_FLOAT16] = {"float16", 2}, [WK_DT_BFLOAT16] = {"bfloat16", 2},
    [WK_DT_INT8] = {"int8", 1},       [WK_DT_INT16] = {"int16", 2},
    [WK_DT_INT32] = {"int32", 4},     [WK_DT_INT64] = {"int64", 8},
    [WK_DT_UINT8] = {"uint8", 1},     [WK_DT_BOOL] = {"bool", 1},
};

size_t wk_dtype_size(wk_dtype_t dt) {
  return (unsigned)dt < WK_DT_COUNT ? g_dtypes[dt].size : 0;
}

const char *wk_dtype_name(wk_dtype_t dt) {
  return (unsigned)dt < WK_DT_COUNT ? g_dtypes[dt].name : NULL;
}

int wk_dtype_parse(const char *name, wk_dtype_t *out) {
  static const struct {
    const char *alias;
    wk_dtype_t dt;
  } aliases[] = {{"float", WK_DT_FLOAT32}, {"double", WK_DT_FLOAT64}, {"half", WK_DT_FLOAT16},
                 {"long", WK_DT_INT64},    {"int", WK_DT_INT32},      {"short", WK_DT_INT16}};
  const char *n = strncmp(name, "torch.", 6) == 0 ? name + 6 : name;
  for (int i = 0; i < WK_DT_COUNT; i++) {
    if (strcmp(n, g_dtypes[i].name) == 0) {
      *out = (wk_dtype_t)i;
      return 0;
    }
  }
  for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
    if (strcmp(n, aliases[i].alias) == 0) {
      *out = aliases[i].dt;
      return 0;
    }
  }
  return WK_EINVAL;
}

int64_t wk_tensor_numel(const wk_tensor_t *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

int wk_tensor_alloc(wk_tensor_t *t, wk_dtype_t dt, int ndim, const int64_t *shape) {
  if (ndim < 0 || ndim > WK_MAX_DIMS) return WK_ETOOBIG;
  int64_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return WK_EINVAL;
    if (shape[i] > 0 && n > WK_MAX_TENSOR_ELEMS / shape[i]) return WK_ETOOBIG;
    n *= shape[i];
  }
  if (n > WK_MAX_TENSOR_ELEMS) return WK_ETOOBIG;
  size_t nbytes = (size_t)n * wk_dtype_size(dt);
  void *data = calloc(1, nbytes ? nbytes : 1);
  if (data == NULL) return WK_ENOMEM;
  memset(t, 0, sizeof *t);
  t->dtype = dt;
  t->ndim = ndim;
  if (ndim) memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
  t->data = data;
  t->nbytes = nbytes;
  t->owns_data = 1;
  return 0;
}

void wk_tensor_destroy(wk_tensor_t *t) {
  if (t->owns_data) free(t->data);
  memset(t, 0, sizeof *t);
}

void wk_shape_str(const int64_t *shape, int ndim, char *out, size_t outlen) {
  size_t n = 0;
  if (outlen == 0) return;
  out[0] = '\0';
  n += (size_t)snprintf(out + n, outlen - n, "[");
  for (int i = 0; i < ndim && n < outlen; i++)
    n += (size_t)snprintf(out + n, outlen - n, i ? ",%lld" : "%lld", (long long)shape[i]);
  if (n < outlen) snprintf(out + n, outlen - n, "]");
}

wk_value_t *wk_value_new(wk_value_kind_t kind) {
  wk_value_t *v = calloc(1, sizeof *v);
  if (v) v->kind = kind;
  return v;
}

int wk_value_append(wk_value_t *v, const char *key, wk_value_t *item) {
  wk_value_t **items = realloc(v->items, sizeof *items * (v->count + 1));
  if (items == NULL) return WK_ENOMEM;
  v->items = items;
  if (v->kind == WK_V_DICT) {
    char **keys = realloc(v->keys, sizeof *keys * (v->count + 1));
    if (keys == NULL) return WK_ENOMEM;
    v->keys = keys;
    keys[v->count] = strdup(key ? key : "");
    if (keys[v->count] == NULL) return WK_ENOMEM;
  }
  items[v->count++] = item;
  return 0;
}

void wk_value_free(wk_value_t *v) {
  if (v == NULL) return;
  for (size_t i = 0; i < v->count; i++) {
    wk_value_free(v->items[i]);
    if (v->keys) free(v->keys[i]);
  }
  free(v->items);
  free(v->keys);
  free(v->s);
  wk_tensor_destroy(&v->tensor);
  free(v);
}
