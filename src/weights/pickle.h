/* A restricted pickle machine for PyTorch checkpoints: it accepts the opcodes and globals of
 * torch.load(weights_only=True) and produces a tree of inert values (containers, scalars,
 * storages, tensors). It never calls anything; it knows nothing of zip files (see pt.c). */
#ifndef WK_WEIGHTS_PICKLE_H
#define WK_WEIGHTS_PICKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/limits.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WK_PV_NONE = 0,
  WK_PV_BOOL,    /* i */
  WK_PV_INT,     /* i */
  WK_PV_FLOAT,   /* f */
  WK_PV_STR,     /* s, len: UTF-8 as stored, NUL-terminated copy */
  WK_PV_BYTES,   /* s, len: SHORT_BINSTRING */
  WK_PV_TUPLE,   /* items, count */
  WK_PV_LIST,    /* items, count */
  WK_PV_DICT,    /* items: key0, value0, key1, value1, ...; count pairs; OrderedDict too */
  WK_PV_SET,     /* always empty (EMPTY_SET; ADDITEMS is not allowed) */
  WK_PV_GLOBAL,  /* an allowlisted global (s: "module.name", global: WK_PG_*) */
  WK_PV_STORAGE, /* a persistent id ('storage', class, key, location, numel) */
  WK_PV_TENSOR,  /* tensor */
  WK_PV_OPAQUE   /* a global outside the allowlist, or an object made from one: never built */
} wk_pv_kind_t;

/* The allowlisted globals (torch 1.13's torch/_weights_only_unpickler.py). */
typedef enum {
  WK_PG_ORDERED_DICT = 0,
  WK_PG_PARAMETER,
  WK_PG_GET_LAYOUT,
  WK_PG_SIZE,
  WK_PG_TENSOR,        /* torch.Tensor */
  WK_PG_DTYPE,         /* torch.float32, ...; dtype_name */
  WK_PG_TENSOR_CLASS,  /* torch.FloatTensor, ... */
  WK_PG_STORAGE_CLASS, /* torch.FloatStorage, ...; dtype, dtype_name */
  WK_PG_REBUILD_PARAMETER,
  WK_PG_REBUILD_TENSOR,
  WK_PG_REBUILD_TENSOR_V2,
  WK_PG_REBUILD_SPARSE,
  WK_PG_REBUILD_META,
  WK_PG_REBUILD_SPARSE_CSR
} wk_pg_t;

typedef struct wk_pv_s wk_pv_t;

typedef struct wk_pv_tensor_s {
  const wk_pv_t *storage; /* WK_PV_STORAGE, or NULL for a meta tensor (no data) */
  int dtype;              /* wk_dtype_t, or -1 when wick does not read it */
  const char *dtype_name; /* torch's name ("float32", "complex64", "qint8") */
  int ndim;
  int64_t shape[WK_MAX_PT_DIMS];
  int64_t strides[WK_MAX_PT_DIMS]; /* in elements */
  int64_t offset;                  /* storage offset, in elements */
  bool requires_grad;
  bool is_parameter;
  size_t index; /* position in wk_pickle_tensor order */
} wk_pv_tensor_t;

struct wk_pv_s {
  wk_pv_kind_t kind;
  unsigned walk; /* for walkers: the last walk that visited this value */
  int64_t i;
  double f;
  char *s;         /* STR, BYTES, STORAGE (key), GLOBAL and OPAQUE ("module.name") */
  size_t len;      /* STR/BYTES: bytes; containers: item pointers */
  wk_pv_t **items; /* TUPLE, LIST, DICT (pairs) */
  size_t count;    /* items; pairs for DICT */
  size_t cap;
  bool ordered;         /* DICT made by collections.OrderedDict */
  bool opaque_is_class; /* OPAQUE: the global itself, not an object made from it */
  int global;           /* GLOBAL: wk_pg_t */
  int dtype;            /* GLOBAL storage class/dtype, STORAGE: wk_dtype_t or -1 */
  const char *dtype_name;
  char *location;         /* STORAGE: "cpu", "cuda:0" */
  int64_t numel;          /* STORAGE: elements of its dtype */
  wk_pv_t *args;          /* OPAQUE: arguments of REDUCE/NEWOBJ (never used to call) */
  wk_pv_t *state;         /* OPAQUE: the last BUILD state */
  wk_pv_t *contents;      /* OPAQUE: a LIST (APPEND) or DICT (SETITEM) of what was put in it */
  wk_pv_tensor_t *tensor; /* TENSOR */
};

enum {
  /* Refuse every global outside the allowlist, as torch.load(weights_only=True) does.
   * Without it, globals outside the allowlist become WK_PV_OPAQUE values (never called)
   * unless they belong to a module that runs code (os, subprocess, builtins, ...). */
  WK_PICKLE_STRICT = 1u << 0
};

typedef struct wk_pickle_s wk_pickle_t;

/* Runs the restricted machine over len bytes of a pickle. On success *out holds the value
 * tree; the caller frees it with wk_pickle_free. On failure err names what was refused
 * (the global, the opcode and its offset) and *out is unchanged. Any thread. */
int wk_pickle_load(const void *data, size_t len, unsigned flags, wk_pickle_t **out, wk_err_t *err);
void wk_pickle_free(wk_pickle_t *p);

/* The value STOP returned. Owned by p (walkers may set its walk marks). */
wk_pv_t *wk_pickle_root(wk_pickle_t *p);

/* Every tensor value the pickle made, in order (a Parameter and the tensor it wraps are
 * two values). Owned by p. */
size_t wk_pickle_tensor_count(const wk_pickle_t *p);
const wk_pv_t *wk_pickle_tensor(const wk_pickle_t *p, size_t i);

/* A fresh walk mark: a walker sets v->walk to it on values it visits, so that shared and
 * cyclic containers (memo references) are visited once. */
unsigned wk_pickle_new_walk(wk_pickle_t *p);

/* "dict", "tensor", ... for messages. */
const char *wk_pv_kind_name(wk_pv_kind_t k);

#ifdef __cplusplus
}
#endif

#endif
