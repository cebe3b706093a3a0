// What the libtorch backend's C++ files share (torch.cc: load, forward, state; torch_ig.cc:
// integrated gradients): the model struct, the conversions between wick's values and
// libtorch's, and the one exception guard every C entry point runs its body in. Not an
// API: only src/backend/*.cc include it.
#ifndef WK_BACKEND_TORCH_INTERNAL_HH
#define WK_BACKEND_TORCH_INTERNAL_HH

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "backend/torch.h"

struct wk_torch_model_s {
  torch::jit::Module module;
  std::vector<std::string> arg_names;
  std::vector<std::string> arg_dtypes; // "INT64" when forward indexes with it, else ""
  torch::Device device{torch::kCPU};
  // Explanations differentiate a second copy of the module, loaded from path on the
  // first one: the frozen, optimized module may hold ops that have no gradient.
  std::string path;
  std::string grad_path; // what explanations load: path, or the TorchScript copy named for a
                         // .pt2 (wk_torch_opts_t.explain_path); "" for a .pt2 without one
  std::mutex grad_mu; // guards grad_loaded and grad_module
  bool grad_loaded = false;
  torch::jit::Module grad_module;
  // The load's prepare function (a checkpoint copied in), run again on the explanations'
  // copy, which is loaded from path; while it runs there, target points at that copy.
  wk_torch_prepare_fn prepare = nullptr;
  void *prepare_arg = nullptr;
  torch::jit::Module *target = nullptr;
  // An AOTInductor package instead of a TorchScript module (torch_aoti.cc); its flat
  // inputs are named INPUT__k in arg_names.
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> aoti;
  std::string aoti_device; // the package's AOTI_DEVICE_KEY: "cpu", "cuda"
  int64_t aoti_batch_min = 0, aoti_batch_max = -1; // see wk_torch_opts_t
  // Whether freezing was asked for and done; why not, when it failed.
  bool frozen = false;
  std::string freeze_error;
};

namespace wk_torch {

// Sets err's message (when err is given) and returns code.
int copy_err(wk_err_t *err, int code, const std::string &what);
// libtorch's message cut to its first meaningful line.
std::string summarize(const char *what);
// Throws std::invalid_argument for a dtype libtorch cannot be told.
c10::ScalarType to_torch(wk_dtype_t dt);
bool from_torch(c10::ScalarType st, wk_dtype_t *out);
c10::IValue to_ivalue(const wk_value_t *v, const torch::Device &dev);
wk_value_t *from_ivalue(const c10::IValue &iv, std::string *msg);
// Applies the thread count of wk_torch_set_threads to the calling thread (OpenMP keeps it
// per thread); call before running the module.
void apply_threads_here();

// The one exception guard of every C entry point: runs body and turns whatever it throws
// into a WK_E* return with err set. An allocation failure (c10::OutOfMemoryError,
// std::bad_alloc, or an allocator's "can't allocate memory", which the TorchScript
// interpreter rethrows as its own error) is WK_ENOMEM, "out of memory in <where>: ...";
// a dtype libtorch lacks (std::invalid_argument) is WK_EUNSUPPORTED; anything else is code,
// with describe(libtorch's message) as the message.
int guard(wk_err_t *err, const std::string &where, int code,
          const std::function<std::string(const std::string &)> &describe,
          const std::function<int()> &body);

// torch_aoti.cc: loads path as an AOTInductor package into m (inside wk_torch_load's
// guard), and runs it on flat tensor arguments.
int aoti_load(wk_torch_model_s *m, const char *path, const wk_torch_opts_t *opts, wk_err_t *err);
int aoti_forward(wk_torch_model_s *m, const wk_value_t *const *args, size_t nargs,
                 wk_value_t **out, wk_err_t *err);

// describe for guard: "<prefix>: <libtorch's message, summarized>".
std::function<std::string(const std::string &)> prefixed(const std::string &prefix);

}  // namespace wk_torch

#endif
