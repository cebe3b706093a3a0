/* Open Inference Protocol bodies (see oip.h). The JSON part is read with jansson; numbers
 * are converted with range checks into the input's dtype; binary data is checked against
 * the sizes the shape and datatype imply before anything is copied. */
#include "tensor/oip.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base64.h"
#include "tensor/numjson.h"

typedef struct {
  const char *name; /* protocol name */
  wk_dtype_t dt;    /* what wick stores */
  size_t wire;      /* bytes per element in binary data */
  int kind;         /* 0 float, 1 signed, 2 unsigned, 3 bool */
} dtinfo_t;

static const dtinfo_t DTYPES[] = {
    {"BOOL", WK_DT_BOOL, 1, 3},     {"UINT8", WK_DT_UINT8, 1, 2},   {"UINT16", WK_DT_INT32, 2, 2},
    {"UINT32", WK_DT_INT64, 4, 2},  {"UINT64", WK_DT_INT64, 8, 2},  {"INT8", WK_DT_INT8, 1, 1},
    {"INT16", WK_DT_INT16, 2, 1},   {"INT32", WK_DT_INT32, 4, 1},   {"INT64", WK_DT_INT64, 8, 1},
    {"FP16", WK_DT_FLOAT16, 2, 0},  {"FP32", WK_DT_FLOAT32, 4, 0},  {"FP64", WK_DT_FLOAT64, 8, 0},
    {"BF16", WK_DT_BFLOAT16, 2, 0},
};
#define N_DTYPES (sizeof DTYPES / sizeof DTYPES[0])

const char *wk_oip_datatype(wk_dtype_t dt) {
  switch (dt) {
  case WK_DT_FLOAT32: return "FP32";
  case WK_DT_FLOAT64: return "FP64";
  case WK_DT_FLOAT16: return "FP16";
  case WK_DT_BFLOAT16: return "BF16";
  case WK_DT_INT8: return "INT8";
  case WK_DT_INT16: return "INT16";
  case WK_DT_INT32: return "INT32";
  case WK_DT_INT64: return "INT64";
  case WK_DT_UINT8: return "UINT8";
  case WK_DT_BOOL: return "BOOL";
  default: return "BYTES";
  }
}

static const dtinfo_t *find_dtype(const char *name) {
  for (size_t i = 0; i < N_DTYPES; i++)
    if (strcmp(DTYPES[i].name, name) == 0) return &DTYPES[i];
  return NULL;
}

void wk_oip_request_destroy(wk_oip_request_t *r) {
  for (size_t i = 0; i < r->n_inputs; i++) {
    wk_oip_input_t *in = &r->inputs[i];
    free(in->name);
    wk_tensor_destroy(&in->tensor);
    for (size_t k = 0; k < in->n_elems; k++) free(in->elems[k]);
    free(in->elems);
    free(in->elem_lens);
  }
  for (size_t i = 0; i < r->n_outputs; i++) free(r->outputs[i].name);
  free(r->id);
  free(r->parameters);
  memset(r, 0, sizeof *r);
}

/* ---- numbers ---- */

/* Rounds d to nearest-even in a 16-bit float (float16: 10 mantissa bits, 5 exponent
 * bits; bfloat16: 7, 8) through float32, which is exact for these targets' ranges. */
static uint16_t to_half_bits(double d, int bf16) {
  float f = (float)d;
  uint32_t b;
  memcpy(&b, &f, sizeof b);
  if (bf16) {
    if ((b & 0x7fffffff) > 0x7f800000) return (uint16_t)((b >> 16) | 0x40);
    return (uint16_t)((b + 0x7fff + ((b >> 16) & 1)) >> 16);
  }
  uint32_t sign = (b >> 16) & 0x8000, a = b & 0x7fffffff;
  if (a > 0x7f800000) return (uint16_t)(sign | 0x7e00);
  if (a >= 0x477ff000) return (uint16_t)(sign | 0x7c00); /* rounds to infinity */
  int e = (int)(a >> 23) - 127;
  uint32_t m = (a & 0x7fffff) | 0x800000;
  if (a < 0x33000001) return (uint16_t)sign; /* below half the smallest subnormal */
  int shift = e >= -14 ? 13 : 13 + (-14 - e);
  uint32_t keep = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rest > half || (rest == half && (keep & 1))) keep++;
  uint32_t r = e >= -14 ? ((uint32_t)(e + 14) << 10) + keep : keep;
  return (uint16_t)(sign | r);
}

/* Stores one JSON value as element i of t. */
static int put_json_number(const dtinfo_t *di, json_t *v, wk_tensor_t *t, size_t i, const char *what,
                           wk_err_t *err) {
  unsigned char *dst = (unsigned char *)t->data + i * wk_dtype_size(t->dtype);
  if (di->kind == 3) {
    if (!json_is_boolean(v) && !json_is_integer(v))
      return wk_err(err, WK_EINVAL, "%s: element %zu is not true or false", what, i);
    *dst = json_is_boolean(v) ? json_is_true(v) : json_integer_value(v) != 0;
    return 0;
  }
  if (di->kind == 0) {
    if (!json_is_number(v))
      return wk_err(err, WK_EINVAL, "%s: element %zu is not a number", what, i);
    double d = json_number_value(v);
    switch (t->dtype) {
    case WK_DT_FLOAT32: {
      float f = (float)d;
      memcpy(dst, &f, 4);
      break;
    }
    case WK_DT_FLOAT64: memcpy(dst, &d, 8); break;
    default: {
      uint16_t h = to_half_bits(d, t->dtype == WK_DT_BFLOAT16);
      memcpy(dst, &h, 2);
    }
    }
    return 0;
  }
  json_int_t x;
  if (json_is_integer(v)) {
    x = json_integer_value(v);
  } else if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
             fabs(json_real_value(v)) < 9.2e18) {
    x = (json_int_t)json_real_value(v);
  } else {
    return wk_err(err, WK_EINVAL, "%s: element %zu is not an integer (%s)", what, i, di->name);
  }
  int64_t lo = INT64_MIN, hi = INT64_MAX;
  switch (di->wire * 10 + (size_t)di->kind) {
  case 11: lo = INT8_MIN, hi = INT8_MAX; break;
  case 21: lo = INT16_MIN, hi = INT16_MAX; break;
  case 41: lo = INT32_MIN, hi = INT32_MAX; break;
  case 12: lo = 0, hi = UINT8_MAX; break;
  case 22: lo = 0, hi = UINT16_MAX; break;
  case 42: lo = 0, hi = UINT32_MAX; break;
  case 82: lo = 0; break;
  default: break;
  }
  if (x < lo || x > hi)
    return wk_err(err, WK_EINVAL, "%s: element %zu (%lld) is out of the range of %s", what, i,
                  (long long)x, di->name);
  switch (t->dtype) {
  case WK_DT_INT8: *(int8_t *)dst = (int8_t)x; break;
  case WK_DT_UINT8: *dst = (uint8_t)x; break;
  case WK_DT_INT16: *(int16_t *)dst = (int16_t)x; break;
  case WK_DT_INT32: *(int32_t *)dst = (int32_t)x; break;
  default: *(int64_t *)dst = (int64_t)x; break;
  }
  return 0;
}

/* Visits the leaves of a (possibly nested) JSON array in order. */
typedef int (*leaf_fn)(void *ud, json_t *v, size_t i, wk_err_t *err);

static int walk(json_t *v, int depth, size_t *i, size_t cap, leaf_fn fn, void *ud, const char *what,
                wk_err_t *err) {
  if (json_is_array(v)) {
    if (depth >= WK_MAX_DIMS)
      return wk_err(err, WK_EINVAL, "%s: data is nested deeper than %d levels", what, WK_MAX_DIMS);
    for (size_t k = 0; k < json_array_size(v); k++) {
      int rc = walk(json_array_get(v, k), depth + 1, i, cap, fn, ud, what, err);
      if (rc != 0) return rc;
    }
    return 0;
  }
  if (*i >= cap)
    return wk_err(err, WK_EINVAL, "%s: data has more elements than the shape's %zu", what, cap);
  int rc = fn(ud, v, *i, err);
  (*i)++;
  return rc;
}

typedef struct {
  const dtinfo_t *di;
  wk_oip_input_t *in;
  const char *what;
} fill_t;

static int fill_number(void *ud, json_t *v, size_t i, wk_err_t *err) {
  fill_t *f = ud;
  return put_json_number(f->di, v, &f->in->tensor, i, f->what, err);
}

static int fill_bytes(void *ud, json_t *v, size_t i, wk_err_t *err) {
  fill_t *f = ud;
  if (!json_is_string(v))
    return wk_err(err, WK_EINVAL, "%s: BYTES element %zu is not a string", f->what, i);
  size_t n = json_string_length(v);
  f->in->elems[i] = malloc(n ? n : 1);
  if (f->in->elems[i] == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  memcpy(f->in->elems[i], json_string_value(v), n);
  f->in->elem_lens[i] = n;
  f->in->n_elems = i + 1;
  return 0;
}

/* Copies binary data for a numeric input (little-endian on the wire; this host is too). */
static int take_binary_numbers(const dtinfo_t *di, const unsigned char *p, size_t n, wk_oip_input_t *in,
                               const char *what, wk_err_t *err) {
  size_t count = n / di->wire;
  unsigned char *dst = in->tensor.data;
  if (di->wire == wk_dtype_size(in->tensor.dtype) && di->kind != 2 && di->kind != 3) {
    memcpy(dst, p, n);
    return 0;
  }
  for (size_t i = 0; i < count; i++) {
    const unsigned char *s = p + i * di->wire;
    switch (di->kind * 10 + (int)di->wire) {
    case 31: /* BOOL */
      if (s[0] > 1) return wk_err(err, WK_EINVAL, "%s: BOOL element %zu is %u, not 0 or 1", what, i, s[0]);
      dst[i] = s[0];
      break;
    case 21: dst[i] = s[0]; break; /* UINT8 */
    case 22: { /* UINT16 -> int32 */
      uint16_t u;
      memcpy(&u, s, 2);
      int32_t x = u;
      memcpy(dst + i * 4, &x, 4);
      break;
    }
    case 24: { /* UINT32 -> int64 */
      uint32_t u;
      memcpy(&u, s, 4);
      int64_t x = u;
      memcpy(dst + i * 8, &x, 8);
      break;
    }
    case 28: { /* UINT64 -> int64 when it fits */
      uint64_t u;
      memcpy(&u, s, 8);
      if (u > (uint64_t)INT64_MAX)
        return wk_err(err, WK_EINVAL,
                      "%s: UINT64 element %zu (%llu) does not fit in int64, and torch has no uint64",
                      what, i, (unsigned long long)u);
      memcpy(dst + i * 8, &u, 8);
      break;
    }
    default: return wk_err(err, WK_EINTERNAL, "%s: no conversion for %s", what, di->name);
    }
  }
  return 0;
}

static int take_binary_bytes(const unsigned char *p, size_t n, wk_oip_input_t *in, size_t count,
                             const char *what, wk_err_t *err) {
  size_t off = 0;
  for (size_t i = 0; i < count; i++) {
    if (n - off < 4)
      return wk_err(err, WK_EINVAL, "%s: binary data ends inside the length of BYTES element %zu", what, i);
    uint32_t l = (uint32_t)p[off] | (uint32_t)p[off + 1] << 8 | (uint32_t)p[off + 2] << 16 |
                 (uint32_t)p[off + 3] << 24;
    off += 4;
    if (l > n - off)
      return wk_err(err, WK_EINVAL, "%s: BYTES element %zu says %u bytes, only %zu are left", what, i, l,
                    n - off);
    in->elems[i] = malloc(l ? l : 1);
    if (in->elems[i] == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
    memcpy(in->elems[i], p + off, l);
    in->elem_lens[i] = l;
    in->n_elems = i + 1;
    off += l;
  }
  if (off != n)
    return wk_err(err, WK_EINVAL, "%s: binary_data_size is %zu, the %zu BYTES elements take %zu", what, n,
                  count, off);
  return 0;
}

static int get_binary_flag(json_t *params, const char *key, int *out, const char *what, wk_err_t *err) {
  json_t *v = json_object_get(params, key);
  if (v == NULL) return 0;
  if (!json_is_boolean(v)) return wk_err(err, WK_EINVAL, "%s: parameters.%s must be true or false", what, key);
  *out = json_is_true(v);
  return 0;
}

/* ---- numeric "data" without a JSON tree ----
 * A [64,1,28,28] tensor is 50,176 numbers: building jansson objects for them costs far more
 * than the rest of the request. So before jansson sees the header, the "data" value of each
 * input whose first element is not a string is located with a small skipper, cut out of the
 * copy jansson parses (replaced by []; positions jansson reports after it shift), and read
 * later by the tensor scanner of numjson.c straight into the input's dtype. Anything the skipper does not
 * understand is left for jansson, which then reports it. (Blanking with spaces instead of
 * cutting kept jansson's columns exact but cost ~10 ns a byte: most of a 1 MB request.) */

typedef struct {
  size_t off, len; /* the data value in the body; len 0: none located */
} span_t;

static size_t skip_ws(const char *p, size_t i, size_t n) {
  while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r')) i++;
  return i;
}

#define BAD ((size_t)-1)

static size_t skip_string(const char *p, size_t i, size_t n) {
  for (i++; i < n; i++) {
    if (p[i] == '\\') i++;
    else if (p[i] == '"') return i + 1;
  }
  return BAD;
}

/* The index just after the JSON value at p[i], or BAD. */
static size_t skip_value(const char *p, size_t i, size_t n, int depth) {
  i = skip_ws(p, i, n);
  if (i >= n || depth > WK_MAX_JSON_DEPTH) return BAD;
  if (p[i] == '"') return skip_string(p, i, n);
  if (p[i] == '[' || p[i] == '{') {
    char close = p[i] == '[' ? ']' : '}';
    i = skip_ws(p, i + 1, n);
    if (i < n && p[i] == close) return i + 1;
    for (;;) {
      if (close == '}') {
        if (i >= n || p[i] != '"' || (i = skip_string(p, i, n)) == BAD) return BAD;
        i = skip_ws(p, i, n);
        if (i >= n || p[i] != ':') return BAD;
        i++;
      }
      if ((i = skip_value(p, i, n, depth + 1)) == BAD) return BAD;
      i = skip_ws(p, i, n);
      if (i < n && p[i] == ',') {
        i = skip_ws(p, i + 1, n);
        continue;
      }
      return i < n && p[i] == close ? i + 1 : BAD;
    }
  }
  size_t start = i;
  while (i < n && p[i] != ',' && p[i] != ']' && p[i] != '}' && p[i] != ' ' && p[i] != '\n' &&
         p[i] != '\t' && p[i] != '\r')
    i++;
  return i > start ? i : BAD;
}

static int key_is(const char *p, size_t start, size_t end, const char *key) {
  size_t n = strlen(key);
  return end - start == n + 2 && memcmp(p + start + 1, key, n) == 0;
}

/* Calls fn for each "key": value of the object at p[i]; returns the index after it, or BAD. */
typedef void (*member_fn)(void *ud, const char *p, size_t kstart, size_t kend, size_t vstart, size_t vend);

static size_t each_member(const char *p, size_t i, size_t n, member_fn fn, void *ud) {
  i = skip_ws(p, i, n);
  if (i >= n || p[i] != '{') return BAD;
  i = skip_ws(p, i + 1, n);
  if (i < n && p[i] == '}') return i + 1;
  for (;;) {
    size_t ks = i;
    if (i >= n || p[i] != '"' || (i = skip_string(p, i, n)) == BAD) return BAD;
    size_t ke = i;
    i = skip_ws(p, i, n);
    if (i >= n || p[i] != ':') return BAD;
    size_t vs = skip_ws(p, i + 1, n);
    if ((i = skip_value(p, vs, n, 1)) == BAD) return BAD;
    fn(ud, p, ks, ke, vs, i);
    i = skip_ws(p, i, n);
    if (i < n && p[i] == ',') {
      i = skip_ws(p, i + 1, n);
      continue;
    }
    return i < n && p[i] == '}' ? i + 1 : BAD;
  }
}

static void input_member(void *ud, const char *p, size_t ks, size_t ke, size_t vs, size_t ve) {
  span_t *sp = ud;
  if (!key_is(p, ks, ke, "data")) return;
  size_t i = vs;
  while (i < ve && (p[i] == '[' || p[i] == ' ' || p[i] == '\n' || p[i] == '\t' || p[i] == '\r')) i++;
  if (p[vs] == '[' && i < ve && p[i] != '"') *sp = (span_t){vs, ve - vs}; /* numbers or booleans */
}

static void top_member(void *ud, const char *p, size_t ks, size_t ke, size_t vs, size_t ve) {
  span_t *spans = ud;
  if (!key_is(p, ks, ke, "inputs") || p[vs] != '[') return;
  size_t i = skip_ws(p, vs + 1, ve);
  for (size_t k = 0; k < WK_OIP_MAX_TENSORS && i < ve && p[i] == '{'; k++) {
    if ((i = each_member(p, i, ve, input_member, &spans[k])) == BAD) return;
    i = skip_ws(p, i, ve);
    if (i >= ve || p[i] != ',') return;
    i = skip_ws(p, i + 1, ve);
  }
}

/* Reads numeric data with the tensor scanner into in->tensor (allocated, of in's shape). */
static int scan_numeric(const dtinfo_t *di, const char *text, size_t len, wk_oip_input_t *in, uint64_t numel,
                        const char *what, const char *shape_txt, wk_err_t *err) {
  wk_tensor_t t;
  int rc = wk_json_parse_tensor_max(text, len, di->dt, (size_t)numel, &t, err);
  if (rc != 0) {
    if (rc == WK_ETOOBIG)
      return wk_err(err, WK_EINVAL, "%s: data has more elements than shape %s holds (%llu)", what, shape_txt,
                    (unsigned long long)numel);
    wk_err_prefix(err, "%s: data", what);
    if (di->kind == 2 && di->wire == 8) {
      size_t n = strlen(err->msg);
      snprintf(err->msg + n, sizeof err->msg - n, " (UINT64 is stored as int64: torch has no uint64)");
    }
    return rc;
  }
  if ((uint64_t)wk_tensor_numel(&t) != numel) {
    rc = wk_err(err, WK_EINVAL, "%s: shape %s holds %llu elements, data has %lld", what, shape_txt,
                (unsigned long long)numel, (long long)wk_tensor_numel(&t));
    wk_tensor_destroy(&t);
    return rc;
  }
  if (di->kind == 2 && di->dt != WK_DT_UINT8) { /* widened unsigned: no negatives */
    for (int64_t i = 0; i < (int64_t)numel; i++) {
      int64_t v = di->dt == WK_DT_INT32 ? ((int32_t *)t.data)[i] : ((int64_t *)t.data)[i];
      int64_t hi = di->wire == 2 ? UINT16_MAX : di->wire == 4 ? (int64_t)UINT32_MAX : INT64_MAX;
      if (v < 0 || v > hi) {
        rc = wk_err(err, WK_EINVAL, "%s: element %lld (%lld) is out of the range of %s", what, (long long)i,
                    (long long)v, di->name);
        wk_tensor_destroy(&t);
        return rc;
      }
    }
  }
  memcpy(in->tensor.data, t.data, t.nbytes);
  wk_tensor_destroy(&t);
  return 0;
}

static int unknown_dtype(const char *what, const char *dn, wk_err_t *err) {
  return wk_err(err, WK_EINVAL,
                "%s: unknown datatype \"%.20s\"; expected BOOL, UINT8, UINT16, UINT32, UINT64, INT8, "
                "INT16, INT32, INT64, FP16, FP32, FP64, BF16 or BYTES",
                what, dn);
}

/* What every input declares, however it came: its datatype (in->datatype, is_bytes, *dip,
 * NULL for BYTES) and shape (in->ndim, shape, *numel, shape_txt), checked, and its storage
 * allocated (a tensor, or BYTES element slots). what names the input in messages. */
static int begin_input(wk_oip_input_t *in, const char *what, const char *dn, const int64_t *shape, size_t ndim,
                       const dtinfo_t **dip, uint64_t *numel, char *shape_txt, size_t shape_txt_len,
                       wk_err_t *err) {
  const dtinfo_t *di = find_dtype(dn);
  int is_bytes = strcmp(dn, "BYTES") == 0;
  if (di == NULL && !is_bytes) return unknown_dtype(what, dn, err);
  snprintf(in->datatype, sizeof in->datatype, "%s", dn);
  in->is_bytes = is_bytes;
  if (ndim > WK_MAX_DIMS)
    return wk_err(err, WK_EINVAL, "%s: \"shape\" must be a list of at most %d sizes", what, WK_MAX_DIMS);
  in->ndim = (int)ndim;
  *numel = 1;
  for (int d = 0; d < in->ndim; d++) {
    if (shape[d] < 0) return wk_err(err, WK_EINVAL, "%s: shape[%d] must be a non-negative integer", what, d);
    in->shape[d] = shape[d];
    if ((uint64_t)in->shape[d] > (uint64_t)WK_MAX_TENSOR_ELEMS ||
        (in->shape[d] && *numel > (uint64_t)WK_MAX_TENSOR_ELEMS / (uint64_t)in->shape[d]))
      return wk_err(err, WK_ETOOBIG, "%s: shape holds more than %lld elements", what,
                    (long long)WK_MAX_TENSOR_ELEMS);
    *numel *= (uint64_t)in->shape[d];
  }
  wk_shape_str(in->shape, in->ndim, shape_txt, shape_txt_len);
  *dip = di;
  if (is_bytes) {
    in->elems = calloc(*numel ? *numel : 1, sizeof *in->elems);
    in->elem_lens = calloc(*numel ? *numel : 1, sizeof *in->elem_lens);
    if (in->elems == NULL || in->elem_lens == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
    return 0;
  }
  int rc = wk_tensor_alloc(&in->tensor, di->dt, in->ndim, in->shape);
  if (rc != 0) return wk_err(err, rc, "%s: cannot allocate a tensor of shape %s", what, shape_txt);
  return 0;
}

/* An input's binary tensor data, n bytes at p, into the storage begin_input made. */
static int take_binary(const dtinfo_t *di, const unsigned char *p, size_t n, wk_oip_input_t *in, uint64_t numel,
                       const char *what, const char *shape_txt, wk_err_t *err) {
  in->binary = 1;
  if (in->is_bytes) return take_binary_bytes(p, n, in, (size_t)numel, what, err);
  if (n != numel * di->wire)
    return wk_err(err, WK_EINVAL, "%s: shape %s of %s needs %llu bytes, binary_data_size is %llu", what,
                  shape_txt, di->name, (unsigned long long)(numel * di->wire), (unsigned long long)n);
  return take_binary_numbers(di, p, n, in, what, err);
}

static int parse_input(json_t *o, const char *list, size_t idx, const char *bin, size_t bin_len,
                       size_t *bin_off, const char *body, span_t span, wk_oip_input_t *in, wk_err_t *err) {
  char what[160];
  snprintf(what, sizeof what, "%s[%zu]", list, idx);
  if (!json_is_object(o)) return wk_err(err, WK_EINVAL, "%s: expected an object with name, shape, datatype and data", what);
  json_t *name = json_object_get(o, "name"), *shape = json_object_get(o, "shape");
  json_t *dtype = json_object_get(o, "datatype"), *data = json_object_get(o, "data");
  json_t *params = json_object_get(o, "parameters");
  if (!json_is_string(name)) return wk_err(err, WK_EINVAL, "%s: \"name\" must be a string", what);
  in->name = strdup(json_string_value(name));
  if (in->name == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  snprintf(what, sizeof what, "%s[%zu] '%.100s'", list, idx, in->name);
  if (!json_is_string(dtype)) return wk_err(err, WK_EINVAL, "%s: \"datatype\" must be a string such as \"FP32\"", what);
  const char *dn = json_string_value(dtype);
  if (find_dtype(dn) == NULL && strcmp(dn, "BYTES") != 0)
    return unknown_dtype(what, dn, err);
  if (!json_is_array(shape) || json_array_size(shape) > WK_MAX_DIMS)
    return wk_err(err, WK_EINVAL, "%s: \"shape\" must be a list of at most %d sizes", what, WK_MAX_DIMS);
  int64_t dims[WK_MAX_DIMS];
  size_t ndim = json_array_size(shape);
  for (size_t d = 0; d < ndim; d++) {
    json_t *sz = json_array_get(shape, d);
    if (!json_is_integer(sz) || json_integer_value(sz) < 0)
      return wk_err(err, WK_EINVAL, "%s: shape[%zu] must be a non-negative integer", what, d);
    dims[d] = json_integer_value(sz);
  }
  if (params != NULL && !json_is_object(params))
    return wk_err(err, WK_EINVAL, "%s: \"parameters\" must be an object", what);
  json_t *bsize = json_object_get(params, "binary_data_size");
  if (bsize != NULL && (!json_is_integer(bsize) || json_integer_value(bsize) < 0))
    return wk_err(err, WK_EINVAL, "%s: parameters.binary_data_size must be a non-negative integer", what);
  if (bsize != NULL && data != NULL)
    return wk_err(err, WK_EINVAL, "%s: has both \"data\" and parameters.binary_data_size; send one", what);
  if (span.len && strcmp(dn, "BYTES") == 0)
    return wk_err(err, WK_EINVAL, "%s: BYTES data must be a list of strings", what);
  if (bsize == NULL && data == NULL)
    return wk_err(err, WK_EINVAL, "%s: no \"data\" (and no parameters.binary_data_size)", what);
  const dtinfo_t *di;
  uint64_t numel;
  char shape_txt[128];
  int rc = begin_input(in, what, dn, dims, ndim, &di, &numel, shape_txt, sizeof shape_txt, err);
  if (rc != 0) return rc;
  if (bsize != NULL) {
    uint64_t n = (uint64_t)json_integer_value(bsize);
    if (n > bin_len - *bin_off)
      return wk_err(err, WK_EINVAL,
                    "%s: parameters.binary_data_size is %llu, but only %zu bytes of binary data are left "
                    "after the JSON header",
                    what, (unsigned long long)n, bin_len - *bin_off);
    const unsigned char *p = (const unsigned char *)bin + *bin_off;
    *bin_off += (size_t)n;
    return take_binary(di, p, (size_t)n, in, numel, what, shape_txt, err);
  }
  if (span.len) return scan_numeric(di, body + span.off, span.len, in, numel, what, shape_txt, err);
  size_t count = 0;
  fill_t f = {di, in, what};
  rc = walk(data, 0, &count, (size_t)numel, in->is_bytes ? fill_bytes : fill_number, &f, what, err);
  if (rc != 0) return rc;
  if (count != numel)
    return wk_err(err, WK_EINVAL, "%s: shape %s holds %llu elements, data has %zu", what, shape_txt,
                  (unsigned long long)numel, count);
  return 0;
}

/* inputs[i]'s name against the earlier ones'. */
static int unique_name(const wk_oip_request_t *r, size_t i, wk_err_t *err) {
  for (size_t k = 0; k < i; k++)
    if (strcmp(r->inputs[k].name, r->inputs[i].name) == 0)
      return wk_err(err, WK_EINVAL, "inputs[%zu]: the name '%.100s' is used twice (also inputs[%zu])", i,
                    r->inputs[i].name, k);
  return 0;
}

int wk_oip_add_input(wk_oip_request_t *r, const char *name, const char *datatype, const int64_t *shape,
                     size_t ndim, const void *data, size_t len, wk_err_t *err) {
  size_t i = r->n_inputs;
  if (i >= WK_OIP_MAX_TENSORS)
    return wk_err(err, WK_EINVAL, "\"inputs\" must be a list of 1 to %d tensors", WK_OIP_MAX_TENSORS);
  wk_oip_input_t *in = &r->inputs[i];
  memset(in, 0, sizeof *in);
  r->n_inputs = i + 1; /* from here on wk_oip_request_destroy frees what it holds */
  if ((in->name = strdup(name)) == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  char what[160];
  snprintf(what, sizeof what, "inputs[%zu] '%.100s'", i, name);
  const dtinfo_t *di;
  uint64_t numel;
  char shape_txt[128];
  int rc = begin_input(in, what, datatype, shape, ndim, &di, &numel, shape_txt, sizeof shape_txt, err);
  if (rc == 0) rc = take_binary(di, data, len, in, numel, what, shape_txt, err);
  if (rc == 0) rc = unique_name(r, i, err);
  return rc;
}

int wk_oip_add_output(wk_oip_request_t *r, const char *name, int binary, wk_err_t *err) {
  if (r->n_outputs >= WK_OIP_MAX_TENSORS)
    return wk_err(err, WK_EINVAL, "\"outputs\" must be a list of at most %d requested outputs", WK_OIP_MAX_TENSORS);
  wk_oip_output_req_t *o = &r->outputs[r->n_outputs];
  if ((o->name = strdup(name)) == NULL) return wk_err(err, WK_ENOMEM, "out of memory");
  o->binary = binary;
  r->n_outputs++;
  return 0;
}

int wk_oip_parse_request(const char *body, size_t len, size_t json_len, wk_oip_request_t *out,
                         wk_err_t *err) {
  memset(out, 0, sizeof *out);
  if (json_len > len)
    return wk_err(err, WK_EINVAL,
                  "Inference-Header-Content-Length is %zu, larger than the body's %zu bytes", json_len, len);
  span_t spans[WK_OIP_MAX_TENSORS];
  memset(spans, 0, sizeof spans);
  each_member(body, 0, json_len, top_member, spans);
  /* the copy jansson reads: the body with each located data value replaced by [] */
  char *copy = NULL;
  size_t copy_len = 0;
  for (size_t k = 0; k < WK_OIP_MAX_TENSORS; k++)
    if (spans[k].len && copy == NULL && (copy = malloc(json_len)) == NULL)
      return wk_err(err, WK_ENOMEM, "out of memory");
  if (copy) {
    size_t from = 0;
    for (size_t k = 0; k < WK_OIP_MAX_TENSORS; k++) { /* spans are in body order */
      if (!spans[k].len) continue;
      memcpy(copy + copy_len, body + from, spans[k].off - from);
      copy_len += spans[k].off - from;
      memcpy(copy + copy_len, "[]", 2);
      copy_len += 2;
      from = spans[k].off + spans[k].len;
    }
    memcpy(copy + copy_len, body + from, json_len - from);
    copy_len += json_len - from;
  }
  json_error_t je;
  json_t *root = json_loadb(copy ? copy : body, copy ? copy_len : json_len, 0, &je);
  free(copy);
  if (root == NULL)
    return wk_err(err, WK_EINVAL, "malformed JSON at line %d, column %d: %s%s", je.line, je.column, je.text,
                  strstr(je.text, "too big integer")
                      ? " (integers must fit in int64: torch has no uint64, so UINT64 values above "
                        "2^63-1 cannot be sent)"
                      : "");
  int rc = 0;
  const char *bin = body + json_len;
  size_t bin_len = len - json_len, bin_off = 0;
  json_t *id = json_object_get(root, "id"), *inputs = json_object_get(root, "inputs");
  json_t *outputs = json_object_get(root, "outputs"), *params = json_object_get(root, "parameters");
  if (!json_is_object(root)) {
    rc = wk_err(err, WK_EINVAL, "expected a JSON object with \"inputs\"");
    goto done;
  }
  if (id != NULL && !json_is_string(id)) {
    rc = wk_err(err, WK_EINVAL, "\"id\" must be a string");
    goto done;
  }
  if (id != NULL && (out->id = strdup(json_string_value(id))) == NULL) {
    rc = wk_err(err, WK_ENOMEM, "out of memory");
    goto done;
  }
  if (params != NULL) {
    if (!json_is_object(params)) {
      rc = wk_err(err, WK_EINVAL, "\"parameters\" must be an object");
      goto done;
    }
    if ((rc = get_binary_flag(params, "binary_data_output", &out->binary_output, "request", err)) != 0)
      goto done;
    out->parameters = json_dumps(params, JSON_COMPACT);
  }
  if (!json_is_array(inputs) || json_array_size(inputs) == 0 || json_array_size(inputs) > WK_OIP_MAX_TENSORS) {
    rc = wk_err(err, WK_EINVAL, "\"inputs\" must be a list of 1 to %d tensors", WK_OIP_MAX_TENSORS);
    goto done;
  }
  for (size_t i = 0; i < json_array_size(inputs); i++) {
    out->n_inputs = i + 1;
    span_t sp = i < WK_OIP_MAX_TENSORS ? spans[i] : (span_t){0, 0};
    if ((rc = parse_input(json_array_get(inputs, i), "inputs", i, bin, bin_len, &bin_off, body, sp, &out->inputs[i], err)) != 0)
      goto done;
    if ((rc = unique_name(out, i, err)) != 0) goto done;
  }
  if (bin_off != bin_len) {
    rc = wk_err(err, WK_EINVAL,
                "%zu bytes of binary data after the JSON header, the inputs' binary_data_size add up to %zu",
                bin_len, bin_off);
    goto done;
  }
  if (outputs != NULL) {
    if (!json_is_array(outputs) || json_array_size(outputs) > WK_OIP_MAX_TENSORS) {
      rc = wk_err(err, WK_EINVAL, "\"outputs\" must be a list of at most %d requested outputs", WK_OIP_MAX_TENSORS);
      goto done;
    }
    for (size_t i = 0; i < json_array_size(outputs); i++) {
      json_t *o = json_array_get(outputs, i), *nm = json_object_get(o, "name");
      if (!json_is_string(nm)) {
        rc = wk_err(err, WK_EINVAL, "outputs[%zu]: \"name\" must be a string", i);
        goto done;
      }
      out->n_outputs = i + 1;
      out->outputs[i].binary = -1;
      if ((out->outputs[i].name = strdup(json_string_value(nm))) == NULL) {
        rc = wk_err(err, WK_ENOMEM, "out of memory");
        goto done;
      }
      json_t *op = json_object_get(o, "parameters");
      if (op != NULL) {
        char what[64];
        snprintf(what, sizeof what, "outputs[%zu]", i);
        int b = -1;
        if ((rc = get_binary_flag(op, "binary_data", &b, what, err)) != 0) goto done;
        out->outputs[i].binary = b;
      }
    }
  }
done:
  json_decref(root);
  if (rc != 0) wk_oip_request_destroy(out);
  return rc;
}

/* ---- responses ---- */

static void put_shape(wk_buf_t *b, const int64_t *shape, int ndim) {
  wk_buf_putc(b, '[');
  for (int d = 0; d < ndim; d++) wk_buf_printf(b, "%s%lld", d ? "," : "", (long long)shape[d]);
  wk_buf_putc(b, ']');
}

/* ---- a request as JSON only ---- */

static int put_bytes_data(wk_buf_t *out, const wk_oip_input_t *in, int *b64) {
  *b64 = 0;
  for (size_t k = 0; k < in->n_elems && !*b64; k++) {
    json_t *s = json_stringn((const char *)in->elems[k], in->elem_lens[k]); /* NULL: not UTF-8 */
    *b64 = s == NULL;
    json_decref(s);
  }
  int rc = wk_buf_putc(out, '[');
  for (size_t k = 0; k < in->n_elems && rc == 0; k++) {
    if (k) rc |= wk_buf_putc(out, ',');
    if (*b64) {
      rc |= wk_buf_putc(out, '"');
      rc |= wk_base64_encode(out, in->elems[k], in->elem_lens[k]);
      rc |= wk_buf_putc(out, '"');
    } else {
      json_t *s = json_stringn((const char *)in->elems[k], in->elem_lens[k]);
      char *text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
      rc |= text ? wk_buf_puts(out, text) : WK_ENOMEM;
      free(text);
      json_decref(s);
    }
  }
  return rc | wk_buf_putc(out, ']');
}

int wk_oip_request_json(const wk_oip_request_t *r, wk_buf_t *out) {
  int rc = wk_buf_putc(out, '{');
  if (r->id) {
    rc |= wk_buf_puts(out, "\"id\":");
    rc |= wk_buf_json_str(out, r->id);
    rc |= wk_buf_putc(out, ',');
  }
  if (r->parameters) rc |= wk_buf_printf(out, "\"parameters\":%s,", r->parameters);
  rc |= wk_buf_puts(out, "\"inputs\":[");
  for (size_t i = 0; i < r->n_inputs && rc == 0; i++) {
    const wk_oip_input_t *in = &r->inputs[i];
    if (i) rc |= wk_buf_putc(out, ',');
    rc |= wk_buf_puts(out, "{\"name\":");
    rc |= wk_buf_json_str(out, in->name);
    rc |= wk_buf_puts(out, ",\"datatype\":");
    rc |= wk_buf_json_str(out, in->datatype);
    rc |= wk_buf_puts(out, ",\"shape\":");
    put_shape(out, in->shape, in->ndim);
    rc |= wk_buf_puts(out, ",\"data\":");
    int b64 = 0;
    if (in->is_bytes) {
      rc |= put_bytes_data(out, in, &b64);
    } else {
      wk_tensor_t flat = in->tensor;
      flat.ndim = 1;
      flat.shape[0] = in->tensor.ndim == 0 ? 1 : wk_tensor_numel(&in->tensor);
      flat.owns_data = 0;
      rc |= wk_json_print_tensor(out, &flat);
    }
    if (b64) rc |= wk_buf_puts(out, ",\"parameters\":{\"content_encoding\":\"base64\"}");
    rc |= wk_buf_putc(out, '}');
  }
  rc |= wk_buf_putc(out, ']');
  if (r->n_outputs) {
    rc |= wk_buf_puts(out, ",\"outputs\":[");
    for (size_t i = 0; i < r->n_outputs; i++) {
      rc |= wk_buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
      rc |= wk_buf_json_str(out, r->outputs[i].name);
      rc |= wk_buf_putc(out, '}');
    }
    rc |= wk_buf_putc(out, ']');
  }
  rc |= wk_buf_putc(out, '}');
  return rc ? WK_ENOMEM : 0;
}

int wk_oip_output_binary(const struct json_t *output, size_t idx, wk_buf_t *out, wk_err_t *err) {
  wk_oip_input_t t = {0};
  size_t off = 0;
  /* read as a request's input is, so the same checks apply (shape vs data, ranges) */
  int rc = parse_input((json_t *)output, "outputs", idx, NULL, 0, &off, NULL, (span_t){0, 0}, &t, err);
  if (rc == 0 && t.is_bytes) {
    for (size_t k = 0; k < t.n_elems && rc == 0; k++) {
      uint32_t l = (uint32_t)t.elem_lens[k];
      unsigned char le[4] = {(unsigned char)l, (unsigned char)(l >> 8), (unsigned char)(l >> 16),
                             (unsigned char)(l >> 24)};
      rc = wk_buf_append(out, le, 4) | wk_buf_append(out, t.elems[k], t.elem_lens[k]);
    }
  } else if (rc == 0) {
    const dtinfo_t *di = find_dtype(t.datatype);
    size_t stored = wk_dtype_size(t.tensor.dtype), n = wk_tensor_numel(&t.tensor);
    if (di->wire == stored) {
      rc = wk_buf_append(out, t.tensor.data, t.tensor.nbytes);
    } else { /* UINT16 kept in int32, UINT32 in int64: the low bytes (little-endian) */
      const unsigned char *p = t.tensor.data;
      for (size_t k = 0; k < n && rc == 0; k++) rc = wk_buf_append(out, p + k * stored, di->wire);
    }
  }
  if (rc != 0 && err->msg[0] == '\0') rc = wk_err(err, WK_ENOMEM, "out of memory"); /* an append */
  wk_tensor_destroy(&t.tensor);
  for (size_t k = 0; k < t.n_elems; k++) free(t.elems[k]);
  free(t.elems);
  free(t.elem_lens);
  free(t.name);
  return rc;
}

int wk_oip_write_response(wk_buf_t *out, const char *model, const char *version, const char *id,
                          const wk_oip_output_t *outs, size_t n, size_t *json_len) {
  size_t start = out->len;
  int rc = wk_buf_puts(out, "{\"model_name\":");
  rc |= wk_buf_json_str(out, model);
  rc |= wk_buf_puts(out, ",\"model_version\":");
  rc |= wk_buf_json_str(out, version ? version : "");
  if (id) {
    rc |= wk_buf_puts(out, ",\"id\":");
    rc |= wk_buf_json_str(out, id);
  }
  rc |= wk_buf_puts(out, ",\"outputs\":[");
  for (size_t i = 0; i < n && rc == 0; i++) {
    const wk_oip_output_t *o = &outs[i];
    if (i) rc |= wk_buf_putc(out, ',');
    rc |= wk_buf_puts(out, "{\"name\":");
    rc |= wk_buf_json_str(out, o->name);
    if (o->tensor) {
      rc |= wk_buf_printf(out, ",\"datatype\":\"%s\",\"shape\":", wk_oip_datatype(o->tensor->dtype));
      put_shape(out, o->tensor->shape, o->tensor->ndim);
    } else {
      int64_t s = (int64_t)o->n_elems;
      rc |= wk_buf_puts(out, ",\"datatype\":\"BYTES\",\"shape\":");
      put_shape(out, &s, 1);
    }
    if (o->binary) {
      size_t size = 0;
      if (o->tensor) size = o->tensor->nbytes;
      else
        for (size_t k = 0; k < o->n_elems; k++) size += 4 + o->elem_lens[k];
      rc |= wk_buf_printf(out, ",\"parameters\":{\"binary_data_size\":%zu}}", size);
      continue;
    }
    rc |= wk_buf_puts(out, ",\"data\":");
    if (o->tensor) {
      wk_tensor_t flat = *o->tensor; /* the protocol's data is flat, row-major */
      flat.ndim = 1;
      flat.shape[0] = wk_tensor_numel(o->tensor);
      flat.owns_data = 0;
      if (o->tensor->ndim == 0) flat.shape[0] = 1;
      rc |= wk_json_print_tensor(out, &flat);
    } else {
      rc |= wk_buf_putc(out, '[');
      for (size_t k = 0; k < o->n_elems; k++) {
        if (k) rc |= wk_buf_putc(out, ',');
        char *s = strndup(o->elems[k], o->elem_lens[k]);
        rc |= s ? wk_buf_json_str(out, s) : WK_ENOMEM;
        free(s);
      }
      rc |= wk_buf_putc(out, ']');
    }
    rc |= wk_buf_putc(out, '}');
  }
  rc |= wk_buf_puts(out, "]}");
  *json_len = out->len - start;
  for (size_t i = 0; i < n && rc == 0; i++) {
    const wk_oip_output_t *o = &outs[i];
    if (!o->binary) continue;
    if (o->tensor) {
      rc |= wk_buf_append(out, o->tensor->data, o->tensor->nbytes);
    } else {
      for (size_t k = 0; k < o->n_elems; k++) {
        uint32_t l = (uint32_t)o->elem_lens[k];
        unsigned char le[4] = {(unsigned char)l, (unsigned char)(l >> 8), (unsigned char)(l >> 16),
                               (unsigned char)(l >> 24)};
        rc |= wk_buf_append(out, le, 4);
        rc |= wk_buf_append(out, o->elems[k], o->elem_lens[k]);
      }
    }
  }
  return rc ? WK_ENOMEM : 0;
}
