/* Dense tensors (dtype, shape, contiguous row-major data) and values, the trees of
 * tensors that forward() takes and returns. No math here: libtorch does that. */
#ifndef WK_TENSOR_TENSOR_H
#define WK_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "core/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WK_DT_FLOAT32 = 0,
  WK_DT_FLOAT64,
  WK_DT_FLOAT16,
  WK_DT_BFLOAT16,
  WK_DT_INT8,
  WK_DT_INT16,
  WK_DT_INT32,
  WK_DT_INT64,
  WK_DT_UINT8,
  WK_DT_BOOL,
  WK_DT_COUNT
} wk_dtype_t;

typedef struct wk_tensor_s {
  wk_dtype_t dtype;
  int ndim;
  int64_t shape[WK_MAX_DIMS];
  void *data;    /* contiguous, row-major */
  size_t nbytes; /* numel * element size */
  int owns_data; /* data is freed by wk_tensor_destroy when set */
} wk_tensor_t;

size_t wk_dtype_size(wk_dtype_t dt);
/* Lower-case name as torch spells it ("float32", "int64", "bool"); NULL if out of range. */
const char *wk_dtype_name(wk_dtype_t dt);
/* Parses a dtype name: torch's ("float32", "float", "int64", "long", ...). 0 or WK_EINVAL. */
int wk_dtype_parse(const char *name, wk_dtype_t *out);

int64_t wk_tensor_numel(const wk_tensor_t *t);
/* Allocates zeroed storage for the given shape; t owns it. 0, WK_ETOOBIG or WK_ENOMEM. */
int wk_tensor_alloc(wk_tensor_t *t, wk_dtype_t dt, int ndim, const int64_t *shape);
/* Frees owned data and clears t. */
void wk_tensor_destroy(wk_tensor_t *t);
/* Writes "[2,3,4]" into out. */
void wk_shape_str(const int64_t *shape, int ndim, char *out, size_t outlen);

/* A value of forward()'s signature: a tensor, a list/tuple of values, a dict with
 * string keys, a scalar or None. Heap tree; wk_value_free releases it all. */
typedef enum {
  WK_V_NONE = 0,
  WK_V_TENSOR,
  WK_V_LIST, /* also tuples */
  WK_V_DICT,
  WK_V_INT,
  WK_V_DOUBLE,
  WK_V_BOOL,
  WK_V_STRING
} wk_value_kind_t;

typedef struct wk_value_s {
  wk_value_kind_t kind;
  wk_tensor_t tensor;      /* WK_V_TENSOR */
  struct wk_value_s **items; /* WK_V_LIST, WK_V_DICT values */
  char **keys;             /* WK_V_DICT keys */
  size_t count;            /* items (and keys) */
  int64_t i;               /* WK_V_INT, WK_V_BOOL */
  double d;                /* WK_V_DOUBLE */
  char *s;                 /* WK_V_STRING */
} wk_value_t;

/* Allocates a value of the given kind, zeroed. NULL on allocation failure. */
wk_value_t *wk_value_new(wk_value_kind_t kind);
/* Appends item (taking ownership) to a list, or under key (copied) to a dict. */
int wk_value_append(wk_value_t *v, const char *key, wk_value_t *item);
void wk_value_free(wk_value_t *v);

#ifdef __cplusplus
}
#endif

#endif
