/* The safe reader of PyTorch .pt files (torch.save's zip format, and the tensors of
 * TorchScript archives): tensors point into the mapped file, nothing from the file is run.
 * And the writer of state_dicts that torch.load(weights_only=True) reads back. */
#ifndef WK_WEIGHTS_PT_H
#define WK_WEIGHTS_PT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/limits.h"
#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  WK_PT_CHECKPOINT = 0, /* torch.save */
  WK_PT_TORCHSCRIPT     /* torch.jit.save: code/ and constants.pkl beside data.pkl */
} wk_pt_kind_t;

/* One tensor, valid until wk_pt_close. Element (i0, i1, ...) is at
 * data + (i0*strides[0] + i1*strides[1] + ...) * wk_dtype_size(dtype). */
typedef struct wk_pt_tensor_s {
  const char *name; /* key in the state_dict, or dotted path from the root (see below) */
  wk_dtype_t dtype;
  int ndim;
  int64_t shape[WK_MAX_PT_DIMS];
  int64_t strides[WK_MAX_PT_DIMS]; /* in elements; torch's strides are never negative */
  int64_t offset;                  /* storage offset, in elements */
  int64_t numel;
  size_t nbytes;           /* numel * element size (the bytes a contiguous copy takes) */
  const void *data;        /* first element, inside the mapping; NULL for meta tensors */
  const char *storage_key; /* "0" for data/0; NULL for meta tensors */
  const char *device;      /* saved location: "cpu", "cuda:0" */
  bool contiguous;         /* row-major with no gaps: data..data+nbytes is the tensor */
  bool requires_grad;
  bool is_parameter;
} wk_pt_tensor_t;

/* An entry of the pickle that is outside the allowlist: never built, only named. */
typedef struct wk_pt_opaque_s {
  const char *path;   /* dotted path from the root ("hyper_parameters", "callbacks.x") */
  const char *global; /* "module.name" of the class or function */
} wk_pt_opaque_t;

/* An entry of a checkpoint's root dict beside the state_dict, described, never run. */
typedef struct wk_pt_entry_s {
  const char *key;     /* "epoch", "callbacks", "hyper_parameters", ... */
  const char *summary; /* "200", "dict of 1: ModelCheckpoint{...}", "opaque mod.Class" */
} wk_pt_entry_t;

typedef struct wk_pt_s wk_pt_t;

enum {
  /* Refuse any global outside torch.load(weights_only=True)'s allowlist, instead of
   * reading around it (opaque entries). Not applied to TorchScript archives, whose module
   * objects are classes by nature. */
  WK_PT_STRICT = 1u << 0
};

/* Maps path and reads its pickle with the restricted machine: every tensor is checked
 * against its storage's bytes. On success *out is a reader the caller frees with
 * wk_pt_close. Legacy (pre-1.6) files, wrong magic, truncation, refused globals and
 * opcodes, bad bounds and sizes fail with a message in err; *out is then unchanged.
 * The reader is read-only after open: any thread may use it. */
int wk_pt_open(const char *path, unsigned flags, wk_pt_t **out, wk_err_t *err);

/* As wk_pt_open over a caller's buffer, which must outlive the reader. */
int wk_pt_open_mem(const void *data, size_t len, unsigned flags, wk_pt_t **out, wk_err_t *err);

/* Frees pt and unmaps its file (NULL is fine). */
void wk_pt_close(wk_pt_t *pt);

wk_pt_kind_t wk_pt_kind(const wk_pt_t *pt);
/* The archive's record folder ("archive", "resnet") and the content of its version entry
 * (0 when absent). */
const char *wk_pt_record(const wk_pt_t *pt);
int wk_pt_version(const wk_pt_t *pt);

/* The state_dict's path: "" for the root, "state_dict", "model", ... NULL when the file
 * holds no dict of tensors (TorchScript archives, a lone tensor). */
const char *wk_pt_state_dict_path(const wk_pt_t *pt);

/* The tensors of the state_dict, named by their keys, in file order; without a state_dict,
 * all tensors, named by their dotted paths (TorchScript: "conv1.weight", and the tensors
 * of constants.pkl as "constants.<i>"; a pickled nn.Module: its state_dict names). A later
 * duplicate key replaces an earlier one, as in Python. Owned by pt. */
size_t wk_pt_count(const wk_pt_t *pt);
const wk_pt_tensor_t *wk_pt_tensor(const wk_pt_t *pt, size_t i);
/* The tensor named name in that list, or NULL. */
const wk_pt_tensor_t *wk_pt_find(const wk_pt_t *pt, const char *name);

/* Every tensor reachable from the root (optimizer states too), named by dotted paths. A
 * container reached twice (shared, or a cycle) is listed at its first path only. */
size_t wk_pt_all_count(const wk_pt_t *pt);
const wk_pt_tensor_t *wk_pt_all_tensor(const wk_pt_t *pt, size_t i);

/* The opaque entries, outermost first. */
size_t wk_pt_opaque_count(const wk_pt_t *pt);
const wk_pt_opaque_t *wk_pt_opaque(const wk_pt_t *pt, size_t i);

/* The entries of a checkpoint whose root is a dict holding the state_dict (a Lightning
 * checkpoint's epoch, callbacks, hyper_parameters, ...), in file order; none otherwise. */
size_t wk_pt_entry_count(const wk_pt_t *pt);
const wk_pt_entry_t *wk_pt_entry(const wk_pt_t *pt, size_t i);

/* Copies t's elements into dst (row-major, t->nbytes bytes), following its strides. */
void wk_pt_tensor_copy(const wk_pt_tensor_t *t, void *dst);

/* ---- writer ---- */

/* Writes tensors[0..n) as a state_dict (an OrderedDict in this order, keyed by name) in
 * torch.save's zip format, one contiguous storage per tensor, so that
 * torch.load(path, weights_only=True) reads it back bit-exactly. Each tensor is read
 * through its shape and strides (views from a reader are fine: they are gathered); name,
 * dtype, ndim, shape, strides, data and requires_grad are used. Names must be distinct.
 * The file is replaced only when complete (written under a temporary name, renamed).
 * 0 or an error in err. Any thread. */
int wk_pt_write(const char *path, const wk_pt_tensor_t *tensors, size_t n, wk_err_t *err);

#ifdef __cplusplus
}
#endif

#endif
