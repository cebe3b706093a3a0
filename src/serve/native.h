/* What the native handler kinds (tensor, image_classifier, object_detector) share: the
 * TorchScript module, loaded once per model version and run by every worker, with
 * wick.weights copied in at load, and integrated gradients. Each native kind's state
 * (m->hstate) starts with a wk__native_t, so WK__NATIVE(m) finds it. Not an API: only
 * src/serve/ includes it. */
#ifndef WK_SERVE_NATIVE_H
#define WK_SERVE_NATIVE_H

#include "backend/torch.h"
#include "serve/gpus.h"
#include "serve/model_internal.h"

typedef struct wk__native_s {
  wk_torch_model_t *torch; /* the model (on the CPU, or the first GPU's copy) */
  wk__gpus_t gpus;         /* the workers' devices: worker i uses on_gpu[i % gpus.n] */
  wk_torch_model_t *on_gpu[WK__MAX_GPUS]; /* one copy per device (a device listed twice
                                              shares it); empty on the CPU */
  int explain_batch;       /* scaled inputs per backward pass in integrated gradients; 0: all */
  char weights_path[4096]; /* wick.weights: the checkpoint in the model dir; "" when none */
  int weights_copied;      /* it went into the module once (logged once) */
  struct wk_pt2_spec_s *pt2; /* an AOTInductor package's input specs; NULL for TorchScript */
  char explain_path[4096];   /* a package's TorchScript copy for explanations; "" when none */
} wk__native_t;

#define WK__NATIVE(m) ((wk__native_t *)(m)->hstate)

/* Loads m's serialized file into n (torch threads, freezing, wick.weights, as the model
 * config says) and logs it. err says why not, prefixed with the model's name. Loading
 * thread. */
int wk__native_load(wk_model_t *m, const wk_model_load_opts_t *o, wk__native_t *n, wk_err_t *err);
void wk__native_unload(wk__native_t *n);

/* The CUDA device of worker index (-1: CPU): the handler tables' device. */
int wk__native_device(const wk_model_t *m, int index);

/* Fills io's datatype and shape from an AOTInductor package's spec of input i (a dynamic
 * dimension is -1); leaves io as it is for TorchScript. */
void wk__native_io(const wk_model_t *m, size_t i, wk__io_t *io);

/* forward() on tensors (the caller keeps them), or on any argument values, with the copy
 * of the model on worker index's device. Worker thread. */
int wk__forward(wk_model_t *m, int index, const wk_tensor_t *tensors, size_t count,
                wk_value_t **out, wk_err_t *err);
int wk__forward_values(wk_model_t *m, int index, const wk_value_t *const *args, size_t count,
                       wk_value_t **out, wk_err_t *err);

/* Integrated gradients of the model's output at x (a [1, ...] float32 input) for j's
 * target and n_steps; answers j with the attributions without the batch dimension, and
 * X-Wick-Target / X-Wick-Output-Delta headers. Worker thread. */
void wk__native_explain(wk_model_t *m, int index, wk__job_t *j, const wk_tensor_t *x);

#endif
