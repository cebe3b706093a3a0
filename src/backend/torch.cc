// The libtorch backend: TorchScript load, forward under InferenceMode, a module's parameters
// and buffers. Conversion between wick's value trees and IValues and the exception guard
// are in torch_values.cc, integrated gradients in torch_ig.cc, AOTInductor packages in
// torch_aoti.cc. Every C entry point runs its body in wk_torch::guard, so no
// exception leaves this file.
#include "backend/torch.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cstdlib>
#include <cstring>

#include "backend/torch_internal.hh"

using namespace wk_torch;

extern "C" const char *wk__torchvision_ops(void); /* torchvision_ops.cc */


/* ---- this file's own helpers ---- */

// at::set_num_threads records the count but sets OpenMP's only for the calling thread;
// OpenMP keeps that setting per thread, so each thread that runs forward() re-applies
// the count when it changed since its last forward.
namespace {
std::atomic<int> g_threads_gen{0};
thread_local int t_threads_gen = -1;

}  // namespace

void wk_torch::apply_threads_here() {
  int gen = g_threads_gen.load(std::memory_order_acquire);
  if (t_threads_gen != gen) {
    at::init_num_threads();
    t_threads_gen = gen;
  }
}
namespace {

// The parameter or buffer at a dotted state_dict path, as a tensor sharing its storage.
bool find_state(const torch::jit::Module &root, const std::string &name, at::Tensor *out) {
  torch::jit::Module mod = root;
  size_t start = 0;
  for (;;) {
    size_t dot = name.find('.', start);
    std::string part =
        name.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!mod.hasattr(part)) return false;
    c10::IValue v = mod.attr(part);
    if (dot == std::string::npos) {
      if (!v.isTensor()) return false;
      *out = v.toTensor();
      return true;
    }
    if (!v.isModule()) return false;
    mod = v.toModule();
    start = dot + 1;
  }
}

void list_state(const torch::jit::Module &mod, const std::string &prefix,
                std::vector<std::pair<std::string, at::Tensor>> *out) {
  for (const auto &p : mod.named_parameters(false))
    out->emplace_back(prefix + p.name, p.value);
  for (const auto &b : mod.named_buffers(false))
    out->emplace_back(prefix + b.name, b.value);
  for (const auto &c : mod.named_children())
    list_state(c.value, prefix + c.name + ".", out);
}

// wick links libtorch's CPU libraries only (cmake/WickTorch.cmake). A CUDA build of
// libtorch keeps its CUDA kernels in libtorch_cuda.so beside libtorch_cpu.so; loading it
// registers them (and the CUDA hooks torch::cuda asks). Done once, on the first model that
// asks for a GPU; a CPU-only libtorch has no such file and sees no GPU, as before.
std::once_flag g_cuda_once;

void load_cuda_kernels() {
  std::call_once(g_cuda_once, [] {
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&at::set_num_threads), &info) == 0 || !info.dli_fname)
      return;
    std::string dir(info.dli_fname);
    size_t slash = dir.rfind('/');
    if (slash == std::string::npos) return;
    std::string lib = dir.substr(0, slash) + "/libtorch_cuda.so";
    // RTLD_GLOBAL: its registrations and symbols serve the whole process; never closed.
    (void)dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL);
  });
}

// The message for a TorchScript file this libtorch cannot load. The usual causes get a
// sentence that names what was found and what this wick has: an operator this libtorch
// lacks (a newer torch's, or a library's such as torchvision::nms), a file written by a
// newer torch.
std::string load_error(const char *what) {
  std::string s(what ? what : "");
  const std::string lib = std::string("libtorch ") + TORCH_VERSION;
  const char *unknown = "Unknown builtin op: ";
  size_t p = s.find(unknown);
  if (p != std::string::npos) {
    size_t b = p + std::strlen(unknown), e = b;
    while (e < s.size() && (std::isalnum((unsigned char)s[e]) || s[e] == '_' || s[e] == ':' ||
                            s[e] == '.'))
      e++;
    std::string op = s.substr(b, e - b);
    while (!op.empty() && op.back() == '.') op.pop_back();
    std::string msg = "cannot load TorchScript: the model calls operator " + op + ", which " +
                      lib + " does not have";
    if (op.rfind("torchvision::", 0) == 0)
      msg += std::string(" (torchvision's operators are not part of libtorch; wick has its "
                         "own ") + wk__torchvision_ops() + ")";
    else
      msg += " (was the model saved by a newer torch, or does it need an operator library?)";
    return msg;
  }
  // e.g. "... file with version 99, but the maximum supported version for reading is 11"
  if (s.find("maximum supported version") != std::string::npos)
    return "cannot load TorchScript: the file was written by a newer torch than " + lib +
           " reads: " + summarize(what);
  return "cannot load TorchScript with " + lib + ": " + summarize(what);
}
}  // namespace

/* ---- the C API (torch.h) ---- */

extern "C" {

int wk_torch_available(void) { return 1; }

const char *wk_torch_version(void) { return TORCH_VERSION; }

const char *wk_torch_builtin_ops(void) { return wk__torchvision_ops(); }

void wk_torch_set_threads(int n) {
  if (n > 0) {
    at::set_num_threads(n);
    g_threads_gen.fetch_add(1, std::memory_order_release);
  }
}

/* The dtype an argument of forward must have, from how forward uses it: the indices of
 * an embedding are int64 (an Embed model's metadata said FP32 before). "" when nothing
 * says. The graph is inlined on a copy, so submodules' uses count too. */
static std::vector<std::string> index_inputs(torch::jit::Module &mod, size_t nargs) {
  std::vector<std::string> out(nargs);
  try {
    auto g = mod.get_method("forward").graph()->copy();
    torch::jit::Inline(*g);
    static const c10::Symbol embedding = c10::Symbol::fromQualString("aten::embedding");
    static const c10::Symbol embedding_bag = c10::Symbol::fromQualString("aten::embedding_bag");
    for (size_t i = 0; i < nargs && i + 1 < g->inputs().size(); i++)
      for (const auto &use : g->inputs()[i + 1]->uses()) {
        auto k = use.user->kind();
        if ((k == embedding && use.offset == 1) || (k == embedding_bag && use.offset == 1))
          out[i] = "INT64";
      }
  } catch (const std::exception &) {
    // a model whose graph cannot be read this way says nothing
  }
  return out;
}

int wk_torch_load(const char *path, const wk_torch_opts_t *opts, wk_torch_model_t **out,
                  wk_err_t *err) {
  bool aoti = opts && opts->aoti;
  auto describe = [aoti](const std::string &what) {
    return aoti ? "cannot load the AOTInductor package with libtorch " TORCH_VERSION ": " +
                      summarize(what.c_str())
                : load_error(what.c_str());
  };
  return guard(err, aoti ? "loading the AOTInductor package" : "loading TorchScript", WK_EFORMAT, describe, [&] {
    auto m = std::make_unique<wk_torch_model_s>();
    if (opts && opts->aoti) {
      if (opts->device >= 0) load_cuda_kernels();
      int rc = aoti_load(m.get(), path, opts, err);
      if (rc == 0) *out = m.release();
      return rc;
    }
    if (opts && opts->device >= 0) {
      load_cuda_kernels();
      if (!torch::cuda::is_available())
        return copy_err(err, WK_EUNSUPPORTED, "CUDA device " + std::to_string(opts->device) +
                                                  " requested but this libtorch sees no GPU");
      m->device = torch::Device(torch::kCUDA, (c10::DeviceIndex)opts->device);
    }
    m->path = path;
    m->grad_path = opts && opts->explain_path ? opts->explain_path : path;
    m->module = torch::jit::load(path, m->device);
    m->module.eval();
    if (opts && opts->prepare) {
      int rc = opts->prepare(m.get(), opts->prepare_arg, err);
      if (rc != 0) return rc;
      m->prepare = opts->prepare;
      m->prepare_arg = opts->prepare_arg;
    }
    if (opts && opts->freeze) {
      // Not an entry point's failure: a module that cannot be frozen (it mutates
      // attributes, say) is served as it is, and wk_torch_frozen says why.
      wk_err_t ferr = {{0}};
      if (guard(&ferr, "freezing", WK_EMODEL, prefixed("freezing failed"), [&] {
            torch::jit::Module frozen = torch::jit::freeze(m->module);
            m->module = torch::jit::optimize_for_inference(frozen);
            return 0;
          }) == 0)
        m->frozen = true;
      else
        m->freeze_error = ferr.msg;
    }
    const auto &schema = m->module.get_method("forward").function().getSchema();
    const auto &args = schema.arguments();
    for (size_t i = 1; i < args.size(); i++) m->arg_names.push_back(args[i].name());
    m->arg_dtypes = index_inputs(m->module, m->arg_names.size());
    *out = m.release();
    return 0;
  });
}

void wk_torch_free(wk_torch_model_t *m) { delete m; }

const char *wk_torch_arg_dtype(const wk_torch_model_t *m, size_t i) {
  return i < m->arg_dtypes.size() && !m->arg_dtypes[i].empty() ? m->arg_dtypes[i].c_str() : nullptr;
}

int wk_torch_frozen(const wk_torch_model_t *m, const char **why) {
  if (why) *why = m->freeze_error.empty() ? nullptr : m->freeze_error.c_str();
  return m->frozen ? 1 : 0;
}

int wk_torch_state_list(wk_torch_model_t *m, wk_torch_state_t **out, size_t *n, wk_err_t *err) {
  return guard(err, "listing the model's tensors", WK_EINTERNAL,
               prefixed("cannot list the model's tensors"), [&] {
    std::vector<std::pair<std::string, at::Tensor>> all;
    list_state(m->target ? *m->target : m->module, "", &all);
    auto *s =
        static_cast<wk_torch_state_t *>(std::calloc(all.size() + 1, sizeof(wk_torch_state_t)));
    if (s == nullptr) return copy_err(err, WK_ENOMEM, "out of memory");
    for (size_t i = 0; i < all.size(); i++) {
      const at::Tensor &t = all[i].second;
      if (t.dim() > WK_MAX_PT_DIMS) {
        wk_torch_state_free(s, i);
        return copy_err(err, WK_EUNSUPPORTED,
                        "tensor '" + all[i].first + "' has more than " +
                            std::to_string(WK_MAX_PT_DIMS) + " dimensions");
      }
      s[i].name = strdup(all[i].first.c_str());
      if (s[i].name == nullptr) {
        wk_torch_state_free(s, i);
        return copy_err(err, WK_ENOMEM, "out of memory");
      }
      if (!from_torch(t.scalar_type(), &s[i].dtype)) s[i].dtype = WK_DT_COUNT;
      s[i].ndim = (int)t.dim();
      for (int d = 0; d < s[i].ndim; d++)
        s[i].shape[d] = t.size(d);
    }
    *out = s;
    *n = all.size();
    return 0;
  });
}

void wk_torch_state_free(wk_torch_state_t *s, size_t n) {
  if (s == nullptr) return;
  for (size_t i = 0; i < n; i++)
    std::free(s[i].name);
  std::free(s);
}

int wk_torch_state_copy(wk_torch_model_t *m, const char *name, wk_dtype_t dtype, int ndim,
                        const int64_t *shape, const int64_t *strides, const void *data,
                        wk_err_t *err) {
  std::string where = std::string("copying into '") + name + "'";
  return guard(err, where, WK_EMODEL, prefixed(std::string("cannot copy into '") + name + "'"), [&] {
    at::Tensor dst;
    if (!find_state(m->target ? *m->target : m->module, name, &dst))
      return copy_err(err, WK_ENOTFOUND, std::string("the model has no tensor '") + name + "'");
    if (dst.dim() != ndim)
      return copy_err(err, WK_EINVAL,
                      std::string("tensor '") + name + "' has rank " + std::to_string(dst.dim()) +
                          ", the checkpoint's " + std::to_string(ndim));
    std::vector<int64_t> sz(shape, shape + ndim), st(strides, strides + ndim);
    at::Tensor src = torch::from_blob(const_cast<void *>(data), sz, st,
                                      torch::TensorOptions().dtype(to_torch(dtype)));
    torch::NoGradGuard no_grad;
    at::Tensor d = dst, s = src;
    for (int i = 0; i < ndim; i++) {
      int64_t k = std::min(d.size(i), s.size(i));
      d = d.narrow(i, 0, k);
      s = s.narrow(i, 0, k);
    }
    d.copy_(s);
    return 0;
  });
}

size_t wk_torch_arg_count(const wk_torch_model_t *m) { return m->arg_names.size(); }

const char *wk_torch_arg_name(const wk_torch_model_t *m, size_t i) {
  return i < m->arg_names.size() ? m->arg_names[i].c_str() : nullptr;
}

int wk_torch_forward(wk_torch_model_t *m, const wk_value_t *const *args, size_t nargs,
                     wk_value_t **out, wk_err_t *err) {
  return guard(err, "forward()", WK_EMODEL, prefixed("model rejected the input"), [&] {
    apply_threads_here();
    if (m->aoti) return aoti_forward(m, args, nargs, out, err);
    c10::InferenceMode guard_mode;
    std::vector<c10::IValue> inputs;
    inputs.reserve(nargs);
    for (size_t i = 0; i < nargs; i++) inputs.push_back(to_ivalue(args[i], m->device));
    c10::IValue result = m->module.forward(inputs);
    std::string msg;
    wk_value_t *v = from_ivalue(result, &msg);
    if (v == nullptr) return copy_err(err, WK_EINTERNAL, msg.empty() ? "out of memory" : msg);
    *out = v;
    return 0;
  });
}

}  // extern "C"
