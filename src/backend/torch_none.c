/* The backend when wick is built without libtorch (fuzz builds): every load fails. */
#include "backend/torch.h"

int wk_torch_available(void) { return 0; }
const char *wk_torch_version(void) { return "none"; }
const char *wk_torch_builtin_ops(void) { return ""; }
void wk_torch_set_threads(int n) { (void)n; }
int wk_torch_load(const char *path, const wk_torch_opts_t *opts, wk_torch_model_t **out,
                  wk_err_t *err) {
  (void)opts;
  (void)out;
  return wk_err(err, WK_EUNSUPPORTED, "%s: this wick was built without libtorch", path);
}
void wk_torch_free(wk_torch_model_t *m) { (void)m; }
int wk_torch_frozen(const wk_torch_model_t *m, const char **why) {
  (void)m;
  if (why) *why = NULL;
  return 0;
}
size_t wk_torch_arg_count(const wk_torch_model_t *m) {
  (void)m;
  return 0;
}
const char *wk_torch_arg_name(const wk_torch_model_t *m, size_t i) {
  (void)m;
  (void)i;
  return NULL;
}

const char *wk_torch_arg_dtype(const wk_torch_model_t *m, size_t i) {
  (void)m, (void)i;
  return NULL;
}
int wk_torch_forward(wk_torch_model_t *m, const wk_value_t *const *args, size_t nargs,
                     wk_value_t **out, wk_err_t *err) {
  (void)m;
  (void)args;
  (void)nargs;
  (void)out;
  return wk_err(err, WK_EUNSUPPORTED, "this wick was built without libtorch");
}
int wk_torch_integrated_gradients(wk_torch_model_t *m, const wk_tensor_t *x, int64_t target,
                                  int n_steps, int internal_batch, wk_tensor_t *attr,
                                  int64_t *target_used, double *f_x, double *f_base,
                                  wk_err_t *err) {
  (void)m;
  (void)x;
  (void)target;
  (void)n_steps;
  (void)internal_batch;
  (void)attr;
  (void)target_used;
  (void)f_x;
  (void)f_base;
  return wk_err(err, WK_EUNSUPPORTED, "this wick was built without libtorch");
}
int wk_torch_state_list(wk_torch_model_t *m, wk_torch_state_t **out, size_t *n, wk_err_t *err) {
  (void)m;
  (void)out;
  (void)n;
  return wk_err(err, WK_EUNSUPPORTED, "this wick was built without libtorch");
}
void wk_torch_state_free(wk_torch_state_t *s, size_t n) {
  (void)s;
  (void)n;
}
int wk_torch_state_copy(wk_torch_model_t *m, const char *name, wk_dtype_t dtype, int ndim,
                        const int64_t *shape, const int64_t *strides, const void *data,
                        wk_err_t *err) {
  (void)m;
  (void)dtype;
  (void)ndim;
  (void)shape;
  (void)strides;
  (void)data;
  return wk_err(err, WK_EUNSUPPORTED, "%s: this wick was built without libtorch", name);
}
