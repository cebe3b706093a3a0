// AOTInductor packages (.pt2 from torch._inductor.aoti_compile_and_package): loaded with
// libtorch's AOTIModelPackageLoader, which unpacks the package into a temporary folder and
// dlopens the model's compiled shared library. That library is native code: wick runs it
// as it runs a TorchScript module's operators, with no sandbox. serve/native.c checks the
// package with wick's own zip reader before it gets here.
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <string>
#include <vector>

#include "backend/torch_internal.hh"

namespace wk_torch {

namespace {

// A package's library needs libtorch.so's symbols, and records no RUNPATH: load it (from
// the folder libtorch_cpu.so came from) into the global namespace first, once. On a CUDA
// build of libtorch this also brings in the CUDA libraries.
std::once_flag g_libtorch_once;
bool g_libtorch_ok = false;
std::string g_libtorch_error;

void load_libtorch() {
  std::call_once(g_libtorch_once, [] {
    // The compiled model checks each input's dtype, rank, sizes and strides against what
    // it was exported with (the dynamic dimensions' range included) when this is set; a
    // mismatch then throws instead of running kernels over memory of another shape. The
    // generated code reads it once, at its first run.
    setenv("AOTI_RUNTIME_CHECK_INPUTS", "1", 1);
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&at::set_num_threads), &info) == 0 || !info.dli_fname) {
      g_libtorch_error = "cannot find libtorch's folder";
      return;
    }
    std::string dir(info.dli_fname);
    dir = dir.substr(0, dir.rfind('/'));
    std::string lib = dir + "/libtorch.so";
    if (dlopen(lib.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char *e = dlerror();
      g_libtorch_error = "cannot load " + lib + ": " + (e ? e : "?");
      return;
    }
    g_libtorch_ok = true;
  });
}

std::string describe_shape(const wk_tensor_t &t) {
  std::string s = "[";
  for (int d = 0; d < t.ndim; d++) s += (d ? ", " : "") + std::to_string(t.shape[d]);
  return s + "]";
}

// Runs inputs of `rows` rows (dimension 0), at most the package's maximum. Fewer rows than
// its minimum lo are padded with copies of the last row, and the padding's output rows are
// dropped: torch.export gives a dynamic dimension a minimum of 2 (sizes 0 and 1 are
// specialised) even when the exporter asked for 1, so a single request needs this.
std::vector<at::Tensor> run_rows(wk_torch_model_s *m, const std::vector<at::Tensor> &in,
                                 int64_t rows, int64_t lo) {
  if (rows >= lo) return m->aoti->run(in);
  std::vector<at::Tensor> padded;
  for (const at::Tensor &t : in) {
    std::vector<int64_t> sizes = t.sizes().vec();
    sizes[0] = lo - rows;
    padded.push_back(at::cat({t, t.narrow(0, rows - 1, 1).expand(sizes)}, 0).contiguous());
  }
  std::vector<at::Tensor> out = m->aoti->run(padded);
  for (at::Tensor &t : out) {
    if (t.dim() < 1 || t.size(0) != lo)
      throw std::runtime_error("an output has no batch dimension of " + std::to_string(lo) +
                               " rows, so a batch of " + std::to_string(rows) +
                               " cannot be padded to the package's minimum of " +
                               std::to_string(lo));
    t = t.narrow(0, 0, rows).contiguous();
  }
  return out;
}

}  // namespace

int aoti_load(wk_torch_model_s *m, const char *path, const wk_torch_opts_t *opts, wk_err_t *err) {
  if (opts->prepare)
    return copy_err(err, WK_EUNSUPPORTED,
                    "wick.weights copies a checkpoint into a TorchScript module; an AOTInductor "
                    "package holds its weights compiled in");
  load_libtorch();
  if (!g_libtorch_ok)
    return copy_err(err, WK_EUNSUPPORTED,
                    "AOTInductor packages need libtorch.so (" + g_libtorch_error + ")");
  m->aoti_batch_min = opts->aoti_batch_min;
  m->aoti_batch_max = opts->aoti_batch_max;
  auto meta = torch::inductor::AOTIModelPackageLoader::load_metadata_from_package(path, "model");
  m->aoti_device = meta.count("AOTI_DEVICE_KEY") ? meta["AOTI_DEVICE_KEY"] : "cpu";
  bool on_gpu = opts->device >= 0;
  if (m->aoti_device != (on_gpu ? "cuda" : "cpu"))
    return copy_err(err, WK_EUNSUPPORTED,
                    "the package was compiled for " + m->aoti_device + ", but this model runs on " +
                        (on_gpu ? "CUDA device " + std::to_string(opts->device) : "the CPU") +
                        ": compile it for that device (aoti_compile_and_package on a " +
                        (on_gpu ? "cuda" : "cpu") + " model)");
  if (meta.count("AOTI_PLATFORM") && meta["AOTI_PLATFORM"] != "linux")
    return copy_err(err, WK_EUNSUPPORTED,
                    "the package was compiled for " + meta["AOTI_PLATFORM"] + ", not linux");
  size_t runners = opts->runners > 0 ? (size_t)opts->runners : 1;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 7)
  // Several runners share one set of constants; runs beyond their number wait.
  m->aoti = std::make_unique<torch::inductor::AOTIModelPackageLoader>(
      path, "model", false, runners, on_gpu ? (c10::DeviceIndex)opts->device : -1);
#else
  // This libtorch's loader has one runner: concurrent forwards take turns.
  (void)runners;
  m->aoti = std::make_unique<torch::inductor::AOTIModelPackageLoader>(path, "model");
#endif
  m->device = on_gpu ? torch::Device(torch::kCUDA, (c10::DeviceIndex)opts->device)
                     : torch::Device(torch::kCPU);
  size_t n = opts->aoti_inputs > 0 ? (size_t)opts->aoti_inputs : 0;
  if (n == 0) {
    // The package's sources were not there to read: count the call spec's leaves.
    std::vector<std::string> spec = m->aoti->get_call_spec();
    std::string in = spec.empty() ? "" : spec[0];
    for (size_t p = in.find("\"type\": null"); p != std::string::npos;
         p = in.find("\"type\": null", p + 1))
      n++;
    if (n == 0) n = 1;
  }
  for (size_t i = 0; i < n; i++) m->arg_names.push_back("INPUT__" + std::to_string(i));
  m->path = path;
  m->grad_path = opts->explain_path ? opts->explain_path : "";
  return 0;
}

int aoti_forward(wk_torch_model_s *m, const wk_value_t *const *args, size_t nargs,
                 wk_value_t **out, wk_err_t *err) {
  if (nargs != m->arg_names.size())
    return copy_err(err, WK_EMODEL,
                    "the package takes " + std::to_string(m->arg_names.size()) + " input(s), got " +
                        std::to_string(nargs));
  int64_t lo = m->aoti_batch_min, hi = m->aoti_batch_max;
  bool batched = lo > 0;
  int64_t rows = -1;
  std::vector<at::Tensor> inputs;
  inputs.reserve(nargs);
  for (size_t i = 0; i < nargs; i++) {
    if (args[i]->kind != WK_V_TENSOR)
      return copy_err(err, WK_EMODEL, m->arg_names[i] + " is not a tensor");
    const wk_tensor_t &t = args[i]->tensor;
    if (batched) {
      int64_t r = t.ndim > 0 ? t.shape[0] : -1;
      if (r < 1 || (rows >= 0 && r != rows))
        return copy_err(err, WK_EMODEL,
                        "the package's inputs share dimension 0 (the batch): " +
                            m->arg_names[i] + " is " + describe_shape(t) +
                            (rows >= 0 ? ", the first input has " + std::to_string(rows) + " rows"
                                       : std::string()));
      rows = r;
    }
    inputs.push_back(to_ivalue(args[i], m->device).toTensor().contiguous());
  }
  std::vector<at::Tensor> result;
  if (!batched || ((hi < 0 || rows <= hi) && rows >= lo)) {
    result = m->aoti->run(inputs);
  } else if (hi < 0 || rows <= hi) {
    result = run_rows(m, inputs, rows, lo);
  } else {
    // More rows than the package takes at once: run them in chunks of its maximum and join
    // the outputs along dimension 0.
    std::vector<std::vector<at::Tensor>> parts;
    for (int64_t at = 0; at < rows; at += hi) {
      int64_t n = std::min(hi, rows - at);
      std::vector<at::Tensor> chunk;
      for (const at::Tensor &t : inputs) chunk.push_back(t.narrow(0, at, n).contiguous());
      parts.push_back(run_rows(m, chunk, n, lo));
      for (const at::Tensor &o : parts.back())
        if (o.dim() < 1 || o.size(0) != n)
          return copy_err(err, WK_EMODEL,
                          std::to_string(rows) + " rows are more than the package's maximum of " +
                              std::to_string(hi) +
                              ", and its outputs have no batch dimension to join split runs on");
    }
    for (size_t k = 0; k < parts[0].size(); k++) {
      std::vector<at::Tensor> pieces;
      for (const auto &p : parts) pieces.push_back(p[k]);
      result.push_back(at::cat(pieces, 0));
    }
  }
  std::string msg;
  wk_value_t *v;
  if (result.size() == 1) {
    v = from_ivalue(c10::IValue(result[0]), &msg);
  } else {
    std::vector<c10::IValue> items(result.begin(), result.end());
    v = from_ivalue(c10::IValue(c10::ivalue::Tuple::create(std::move(items))), &msg);
  }
  if (v == nullptr) return copy_err(err, WK_EINTERNAL, msg.empty() ? "out of memory" : msg);
  *out = v;
  return 0;
}

}  // namespace wk_torch
