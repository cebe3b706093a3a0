// Integrated gradients (Sundararajan et al., 2017) on a TorchScript model, with autograd:
// the attributions of one input for one class score, by Gauss-Legendre quadrature along
// the straight path from a zero baseline, in batches of scaled inputs.
#include <torch/csrc/autograd/autograd.h>

#include <cmath>
#include <cstring>

#include "backend/torch_internal.hh"

using namespace wk_torch;

namespace {

// Nodes (ascending) and weights of n-point Gauss-Legendre quadrature on [-1, 1]: the
// nodes are the roots of the Legendre polynomial P_n, found by Newton's method from
// Chebyshev-like guesses; the weights are 2 / ((1 - z^2) P_n'(z)^2).
void gauss_legendre(int n, std::vector<double> *nodes, std::vector<double> *weights) {
  const double pi = 3.14159265358979323846;
  nodes->assign(n, 0.0);
  weights->assign(n, 0.0);
  for (int i = 0; i < (n + 1) / 2; i++) {
    double z = std::cos(pi * (i + 0.75) / (n + 0.5));
    double dp = 1.0;
    for (int iter = 0; iter < 100; iter++) {
      double p_prev = 1.0, p = z; // P_0, P_1; then the three-term recurrence up to P_n
      for (int k = 2; k <= n; k++) {
        double p_next = ((2.0 * k - 1.0) * z * p - (k - 1.0) * p_prev) / k;
        p_prev = p;
        p = p_next;
      }
      dp = n * (z * p - p_prev) / (z * z - 1.0);
      double dz = p / dp;
      z -= dz;
      if (std::fabs(dz) <= 1e-16) break;
    }
    double w = 2.0 / ((1.0 - z * z) * dp * dp);
    (*nodes)[i] = -z;
    (*nodes)[n - 1 - i] = z;
    (*weights)[i] = w;
    (*weights)[n - 1 - i] = w;
  }
}

// The module that explanations differentiate, loaded on the first call: eval mode, not
// frozen, parameters without requires_grad (only the input's gradient is needed).
int grad_module(wk_torch_model_s *m, torch::jit::Module *out, wk_err_t *err) {
  std::lock_guard<std::mutex> lock(m->grad_mu);
  if (!m->grad_loaded) {
    torch::jit::Module g;
    int rc = guard(err, "loading the model for explanations", WK_EFORMAT,
                   prefixed("cannot load the model for explanations"), [&] {
                     g = torch::jit::load(m->grad_path, m->device);
                     return 0;
                   });
    if (rc != 0) return rc;
    g.eval();
    for (at::Tensor p : g.parameters()) p.requires_grad_(false);
    if (m->prepare) {
      m->target = &g;
      rc = m->prepare(m, m->prepare_arg, err);
      m->target = nullptr;
      if (rc != 0) {
        wk_err_prefix(err, "cannot prepare the model for explanations");
        return rc;
      }
    }
    m->grad_module = g;
    m->grad_loaded = true;
  }
  *out = m->grad_module; // a handle: copies share the module
  return 0;
}

// The scores of forward()'s result as [n, K]: its first element when it returns a tuple
// or list; [K] is accepted for a single input. Sets *msg and returns an undefined tensor
// when the result has another form.
at::Tensor scores_of(const c10::IValue &result, int64_t n, std::string *msg) {
  c10::IValue v = result;
  if (v.isTuple() && !v.toTupleRef().elements().empty())
    v = v.toTupleRef().elements()[0];
  else if (v.isList() && !v.toListRef().empty())
    v = v.toListRef()[0];
  if (!v.isTensor()) {
    *msg = "explanations need a model that returns a tensor of scores; it returned " + v.tagKind();
    return at::Tensor();
  }
  at::Tensor t = v.toTensor();
  if (t.dim() == 1 && n == 1) t = t.unsqueeze(0);
  if (t.dim() != 2 || t.size(0) != n) {
    *msg = "explanations need a model that returns scores of shape [N, K]; for " +
           std::to_string(n) + " input(s) it returned " + c10::str(t.sizes());
    return at::Tensor();
  }
  if (!t.is_floating_point()) {
    *msg = std::string("explanations need floating-point scores; the model returned ") +
           c10::toString(t.scalar_type());
    return at::Tensor();
  }
  return t;
}

int integrated_gradients(wk_torch_model_t *m, const wk_tensor_t *x, int64_t target, int n_steps,
                         int internal_batch, wk_tensor_t *attr, int64_t *target_used, double *f_x,
                         double *f_base, wk_err_t *err) {
  char shape_str[128];
  wk_shape_str(x->shape, x->ndim, shape_str, sizeof shape_str);
  if (x->dtype != WK_DT_FLOAT32)
    return copy_err(err, WK_EINVAL,
                    std::string("explanations take a float32 input, got ") +
                        wk_dtype_name(x->dtype));
  if (x->ndim < 1 || x->shape[0] != 1 || wk_tensor_numel(x) == 0)
    return copy_err(err, WK_EINVAL,
                    std::string("explanations take one input of shape [1, ...], got ") + shape_str);
  if (n_steps < 1 || n_steps > WK_MAX_IG_STEPS)
    return copy_err(err, WK_EINVAL,
                    "n_steps must be between 1 and " + std::to_string(WK_MAX_IG_STEPS) + ", got " +
                        std::to_string(n_steps));
  if (internal_batch < 0)
    return copy_err(err, WK_EINVAL,
                    "internal_batch must be 0 (all steps at once) or positive, got " +
                        std::to_string(internal_batch));
  torch::jit::Module module;
  int rc = grad_module(m, &module, err);
  if (rc != 0) return rc;

  apply_threads_here();
  c10::InferenceMode no_inference(false);
  c10::AutoGradMode grad_on(true);
  std::vector<int64_t> shape(x->shape, x->shape + x->ndim);
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32);
  // A copy, so that a model that writes into its input cannot touch x.
  at::Tensor input = torch::from_blob(x->data, shape, f32).to(m->device, false, /*copy=*/true);
  at::Tensor baseline = torch::zeros_like(input);
  at::Tensor diff = input - baseline;

  // f(x) and f(baseline): the target class and the completeness check.
  std::string msg;
  at::Tensor s_x, s_base;
  {
    torch::NoGradGuard no_grad;
    s_x = scores_of(module.forward({input}), 1, &msg);
    if (!s_x.defined()) return copy_err(err, WK_EMODEL, msg);
    s_base = scores_of(module.forward({baseline}), 1, &msg);
    if (!s_base.defined()) return copy_err(err, WK_EMODEL, msg);
  }
  int64_t classes = s_x.size(1);
  if (target < 0) target = s_x[0].argmax().item<int64_t>();
  if (target >= classes)
    return copy_err(err, WK_EINVAL,
                    "target " + std::to_string(target) + " is out of range: the model has " +
                        std::to_string(classes) + " classes");

  // attr = (x - baseline) * sum_i w_i grad f(baseline + alpha_i (x - baseline)), with
  // alpha_i = (node_i + 1) / 2 and w_i = weight_i / 2; gradients summed in float64.
  std::vector<double> nodes, weights;
  gauss_legendre(n_steps, &nodes, &weights);
  int chunk = internal_batch > 0 ? std::min(internal_batch, n_steps) : n_steps;
  std::vector<int64_t> step_shape(shape.size(), 1); // [b, 1, ...] broadcasts over x
  at::Tensor total =
      torch::zeros(shape, torch::TensorOptions().dtype(torch::kFloat64).device(m->device));
  for (int start = 0; start < n_steps; start += chunk) {
    int b = std::min(chunk, n_steps - start);
    std::vector<float> alphas(b);
    std::vector<double> w(b);
    for (int i = 0; i < b; i++) {
      alphas[i] = (float)((nodes[start + i] + 1.0) / 2.0);
      w[i] = weights[start + i] / 2.0;
    }
    step_shape[0] = b;
    at::Tensor alpha = torch::from_blob(alphas.data(), step_shape, f32).to(m->device);
    at::Tensor scaled = (baseline + alpha * diff).detach().requires_grad_(true);
    at::Tensor s = scores_of(module.forward({scaled}), b, &msg);
    if (!s.defined()) return copy_err(err, WK_EMODEL, msg);
    at::Tensor f = s.select(1, target).sum();
    if (!f.requires_grad())
      return copy_err(err, WK_EMODEL,
                      "the model's scores do not depend differentiably on its input: "
                      "explanations need gradients");
    at::Tensor g = torch::autograd::grad({f}, {scaled}, {}, false, false, true)[0];
    if (!g.defined()) continue; // the scores do not depend on the input: zero gradient
    at::Tensor wt =
        torch::from_blob(w.data(), step_shape, torch::TensorOptions().dtype(torch::kFloat64))
            .to(m->device);
    total += (g.to(torch::kFloat64) * wt).sum(0, true);
  }
  at::Tensor a =
      (diff.to(torch::kFloat64) * total).to(torch::kFloat32).to(torch::kCPU).contiguous();
  double fx = s_x[0][target].item<double>();
  double fb = s_base[0][target].item<double>();

  wk_tensor_t out;
  if (wk_tensor_alloc(&out, WK_DT_FLOAT32, x->ndim, x->shape) != 0)
    return copy_err(err, WK_ENOMEM, "out of memory for the attributions");
  std::memcpy(out.data, a.data_ptr<float>(), out.nbytes);
  *attr = out;
  *target_used = target;
  *f_x = fx;
  *f_base = fb;
  return 0;
}

}  // namespace

extern "C" int wk_torch_integrated_gradients(wk_torch_model_t *m, const wk_tensor_t *x,
                                             int64_t target, int n_steps, int internal_batch,
                                             wk_tensor_t *attr, int64_t *target_used,
                                             double *f_x, double *f_base, wk_err_t *err) {
  return guard(err, "the explanation (use fewer steps per backward pass: wick.explain_batch)",
               WK_EMODEL, prefixed("model rejected the input"), [&] {
                 if (m->grad_path.empty())
                   return copy_err(err, WK_EUNSUPPORTED,
                                   "explanations need autograd, and an AOTInductor package "
                                   "(.pt2) has none: integrated gradients run on TorchScript; "
                                   "name a TorchScript copy of the model in the archive with "
                                   "wick: {explain: {model: FILE}} in its model config");
                 return integrated_gradients(m, x, target, n_steps, internal_batch, attr,
                                             target_used, f_x, f_base, err);
               });
}
