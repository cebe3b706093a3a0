/* Partial state transfer: decides which tensor of one state_dict ("other", the checkpoint)
 * goes into which tensor of another ("self", the model), as torch_liberator's
 * load_partial_state does, and copies the overlapping block of mangled tensors. It reads
 * names and shapes only; it never opens files (weights/pt.h does). */
#ifndef WK_WEIGHTS_TRANSFER_H
#define WK_WEIGHTS_TRANSFER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "tensor/tensor.h"
#include "weights/pt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WK_ASSOC_STRICT = 0,  /* keys as they are */
  WK_ASSOC_MODULE_HACK, /* add or strip "module." (DataParallel) */
  WK_ASSOC_PREFIX_HACK, /* the best prefix removal and/or addition */
  WK_ASSOC_ISOMORPHISM, /* maximum common ordered subtree (edges kept) */
  WK_ASSOC_EMBEDDING    /* maximum common ordered embedded subtree (edges contracted) */
} wk_assoc_t;

/* Parses "strict", "module-hack", "prefix-hack", "isomorphism" or "embedding". */
int wk_assoc_parse(const char *name, wk_assoc_t *out, wk_err_t *err);
const char *wk_assoc_name(wk_assoc_t a);

/* One tensor as the planner sees it. name and shape are the caller's, read during
 * wk_xfer_plan only. */
typedef struct wk_xfer_key_s {
  const char *name;
  wk_dtype_t dtype;
  int ndim;
  const int64_t *shape;
} wk_xfer_key_t;

typedef enum {
  WK_XFER_UNSET = 0,    /* self tensor keeps its value */
  WK_XFER_FULL,         /* same shape: copied whole */
  WK_XFER_PARTIAL_SOME, /* mangled: self is smaller, some of other is copied */
  WK_XFER_PARTIAL_ALL   /* mangled: self is not smaller, all that fits is copied */
} wk_xfer_action_t;

typedef struct wk_xfer_s wk_xfer_t;

/* Plans the transfer of other[0..nother) into self[0..nself) with association assoc.
 * mangle: tensors of equal rank and other shapes get the overlapping block (keys ending
 * in "bias" never do). The isomorphism and embedding searches need a table of
 * (tree nodes x tree nodes) cells, at most WK_MAX_XFER_CELLS. On success *out is a plan
 * the caller frees with wk_xfer_free. Any thread. */
int wk_xfer_plan(const wk_xfer_key_t *other, size_t nother, const wk_xfer_key_t *self, size_t nself,
                 wk_assoc_t assoc, bool mangle, wk_xfer_t **out, wk_err_t *err);
void wk_xfer_free(wk_xfer_t *x);

/* What happens to self[i]; *src is the index into other, or -1 when unset. */
wk_xfer_action_t wk_xfer_action(const wk_xfer_t *x, size_t i, long *src);

/* Counts: added whole, partially (some/all), skipped, self unset, other unused. */
typedef struct wk_xfer_counts_s {
  size_t full_add, partial_add_some, partial_add_all, skipped, self_unset, other_unused;
  size_t mapping; /* pairs in the mapping */
} wk_xfer_counts_t;
void wk_xfer_counts(const wk_xfer_t *x, wk_xfer_counts_t *c);

/* True when every self tensor is set whole and every other tensor is used. */
bool wk_xfer_perfect(const wk_xfer_t *x);

/* The report as JSON text: {association, mangle, mapping, seen: {full_add,
 * partial_add_some, partial_add_all, skipped}, self_unset, other_unused, counts}.
 * The caller frees it with free(); NULL when out of memory. */
char *wk_xfer_report_json(const wk_xfer_t *x, int indent);

/* One line: "320 added (0 partially), 2 skipped, 2 unset, 0 unused". */
void wk_xfer_summary(const wk_xfer_t *x, char *buf, size_t size);

/* Copies the overlapping block of src (any strides) into dst, a contiguous row-major
 * tensor of src's rank and dtype with shape dst_shape; the rest of dst is unchanged. */
void wk_xfer_copy_block(const wk_pt_tensor_t *src, void *dst, const int64_t *dst_shape);

#ifdef __cplusplus
}
#endif

#endif
