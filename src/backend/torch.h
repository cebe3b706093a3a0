/* The libtorch backend behind a C API: load a TorchScript file once, run forward from
 * any number of threads at once (the module is shared), under InferenceMode, and
 * integrated gradients with autograd on an unfrozen copy of the same module.
 * No C++ exception crosses this boundary: every failure is a WK_E* code and a message. */
#ifndef WK_BACKEND_TORCH_H
#define WK_BACKEND_TORCH_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/limits.h"
#include "tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_torch_model_s wk_torch_model_t;

/* Called by wk_torch_load once the module is loaded (eval mode), before it is frozen: the
 * place to copy a checkpoint into it (wk_torch_state_*). A non-zero return fails the load
 * with the message the function put in err. It is called again, with the same arg, on the
 * unfrozen copy that the first explanation loads (from that explanation's thread, under
 * the model's explanation lock): arg must live as long as the model. */
typedef int (*wk_torch_prepare_fn)(wk_torch_model_t *m, void *arg, wk_err_t *err);

typedef struct wk_torch_opts_s {
  int freeze;   /* torch.jit.freeze + optimize_for_inference at load (eval mode models) */
  int device;   /* -1: CPU; >= 0: CUDA device index */
  int aoti;     /* 1: path is an AOTInductor package (.pt2), not TorchScript: native code
                   compiled by torch._inductor that this call loads and runs (the package's
                   shared library); freeze and prepare do not apply */
  int runners;  /* AOTInductor: how many forwards may run at once (the workers); they share
                   one set of constants. <= 0: 1 */
  int aoti_inputs; /* AOTInductor: its flat inputs (INPUT__0...); 0: count the call spec's */
  long long aoti_batch_min; /* AOTInductor: the range of dimension 0 its inputs share (the */
  long long aoti_batch_max; /* batch; max -1: unbounded): fewer rows are padded, more are
                   split into runs. min 0: no shared batch dimension, inputs run as given */
  const char *explain_path; /* the TorchScript file explanations differentiate instead of
                   path: an AOTInductor package has no autograd. NULL: path itself (a
                   package without it answers explanations with WK_EUNSUPPORTED) */
  wk_torch_prepare_fn prepare; /* NULL: none */
  void *prepare_arg;
} wk_torch_opts_t;

/* One parameter or buffer of a module, named as its state_dict names it. dtype is
 * WK_DT_COUNT for a dtype wick does not read (complex, quantized). */
typedef struct wk_torch_state_s {
  char *name;
  wk_dtype_t dtype;
  int ndim;
  int64_t shape[WK_MAX_PT_DIMS];
} wk_torch_state_t;

/* 1 if libtorch is compiled in. */
int wk_torch_available(void);
/* The libtorch version wick was built with ("2.14.1"), or "none"; static storage. */
const char *wk_torch_version(void);
/* The torchvision operators wick registers itself (backend/torchvision_ops.cc): scripted
 * models that call them run natively. "" without libtorch. */
const char *wk_torch_builtin_ops(void);
/* Sets the intra-op thread count of this process (torch's pool is process-wide). */
void wk_torch_set_threads(int n);
/* Loads a TorchScript file. The caller frees the model with wk_torch_free. */
int wk_torch_load(const char *path, const wk_torch_opts_t *opts, wk_torch_model_t **out,
                  wk_err_t *err);
/* 1 if the module was frozen at load; 0 if not (not asked, or it failed: then *why, when
 * why is given, is libtorch's reason, else NULL). Any thread. */
int wk_torch_frozen(const wk_torch_model_t *m, const char **why);
void wk_torch_free(wk_torch_model_t *m);
/* The module's parameters and buffers in state_dict order (each module's parameters, its
 * buffers, then its submodules'). On success *out is an array of *n entries that the caller
 * frees with wk_torch_state_free. Only from a prepare function (before freezing: a frozen
 * module has no parameters left). */
int wk_torch_state_list(wk_torch_model_t *m, wk_torch_state_t **out, size_t *n, wk_err_t *err);
void wk_torch_state_free(wk_torch_state_t *s, size_t n);
/* Copies a tensor (dtype, ndim, shape, element strides, data at its first element) into the
 * module's parameter or buffer called name, under NoGradGuard: the overlapping block when
 * the shapes differ (equal ranks only), converted to the target's dtype and device. Only
 * from a prepare function. */
int wk_torch_state_copy(wk_torch_model_t *m, const char *name, wk_dtype_t dtype, int ndim,
                        const int64_t *shape, const int64_t *strides, const void *data,
                        wk_err_t *err);
/* Names of forward()'s arguments after self, in order; valid while m lives. */
size_t wk_torch_arg_count(const wk_torch_model_t *m);
const char *wk_torch_arg_name(const wk_torch_model_t *m, size_t i);
/* "INT64" when forward uses argument i as the indices of an embedding, else NULL (the
 * v2 metadata's datatype when nothing is declared). */
const char *wk_torch_arg_dtype(const wk_torch_model_t *m, size_t i);
/* Runs forward(args...). Tensors in args are read, not kept. On success *out is a new
 * value tree (caller frees with wk_value_free). A libtorch rejection (shape, dtype) is
 * WK_EMODEL with "model rejected the input: <first line of libtorch's message>".
 * Any thread. */
int wk_torch_forward(wk_torch_model_t *m, const wk_value_t *const *args, size_t nargs,
                     wk_value_t **out, wk_err_t *err);
/* Integrated gradients of forward(x)[0][target] with respect to x, for one input x of
 * shape [1, ...] (float32): baseline zeros of x's shape, n_steps points of Gauss-Legendre
 * quadrature on [0, 1] (Captum's default method "gausslegendre"; n_steps in
 * [1, WK_MAX_IG_STEPS]), gradients computed in chunks of at most internal_batch scaled
 * inputs per backward pass (0: all at once).
 * target < 0 means the argmax of forward(x)[0]. On success *attr is a new float32 tensor
 * of x's shape (the caller destroys it with wk_tensor_destroy), *target_used the class,
 * *f_x = forward(x)[0][target] and *f_base = forward(baseline)[0][target] (for a
 * completeness check: sum(attr) ~= f_x - f_base). The first call loads a second,
 * unfrozen copy of the model from its path for autograd (kept until wk_torch_free).
 * Bad arguments are WK_EINVAL with a message; a model that cannot be differentiated or
 * rejects the input is WK_EMODEL. Any thread; may run while other threads run forward
 * (or explanations) on the same model. */
int wk_torch_integrated_gradients(wk_torch_model_t *m, const wk_tensor_t *x, int64_t target,
                                  int n_steps, int internal_batch, wk_tensor_t *attr,
                                  int64_t *target_used, double *f_x, double *f_base,
                                  wk_err_t *err);

#ifdef __cplusplus
}
#endif

#endif
