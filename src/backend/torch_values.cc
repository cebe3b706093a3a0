// What the libtorch backend's files share (torch_internal.hh): wick's value trees to and
// from IValues, dtypes, error messages, and the one exception guard of every C entry point.
#include <cstring>
#include <string>

#include "backend/torch_internal.hh"

namespace {

// 1 if a libtorch error says an allocation failed (CUDA's OutOfMemoryError, or the CPU
// allocator's "not enough memory" / "can't allocate memory").
// The TorchScript interpreter rethrows an operator's error as its own exception, so the
// message is what tells.
bool is_oom_message(const std::string &w) {
  return w.find("can't allocate memory") != std::string::npos ||
         w.find("not enough memory") != std::string::npos ||
         w.find("out of memory") != std::string::npos;
}

bool is_oom(const c10::Error &e) {
  return dynamic_cast<const c10::OutOfMemoryError *>(&e) != nullptr ||
         is_oom_message(e.what_without_backtrace());
}

}  // namespace

namespace wk_torch {

int copy_err(wk_err_t *err, int code, const std::string &what) {
  if (err != nullptr) {
    std::snprintf(err->msg, sizeof err->msg, "%s", what.c_str());
  }
  return code;
}

// libtorch messages are long: a TorchScript traceback, then the error. Keep the line a
// user can act on: the last "...Error: " line when there is one, else the first line.
std::string summarize(const char *what) {
  std::string s(what ? what : "");
  size_t best = std::string::npos;
  for (const char *tag : {"RuntimeError: ", "ValueError: ", "TypeError: ", "IndexError: "}) {
    size_t p = s.rfind(tag);
    if (p != std::string::npos && (best == std::string::npos || p > best)) best = p;
  }
  if (best != std::string::npos) {
    size_t colon = s.find(": ", best);
    s = s.substr(colon + 2);
  }
  size_t nl = s.find('\n');
  if (nl != std::string::npos) s = s.substr(0, nl);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\r')) s.pop_back();
  return s;
}

c10::ScalarType to_torch(wk_dtype_t dt) {
  switch (dt) {
  case WK_DT_FLOAT32: return torch::kFloat32;
  case WK_DT_FLOAT64: return torch::kFloat64;
  case WK_DT_FLOAT16: return torch::kFloat16;
  case WK_DT_BFLOAT16: return torch::kBFloat16;
  case WK_DT_INT8: return torch::kInt8;
  case WK_DT_INT16: return torch::kInt16;
  case WK_DT_INT32: return torch::kInt32;
  case WK_DT_INT64: return torch::kInt64;
  case WK_DT_UINT8: return torch::kUInt8;
  case WK_DT_BOOL: return torch::kBool;
  default: break;
  }
  // A dtype wick's tensors can hold but libtorch cannot be told: never guess one.
  throw std::invalid_argument(std::string("dtype ") + wk_dtype_name(dt) +
                              " has no libtorch equivalent here");
}

bool from_torch(c10::ScalarType st, wk_dtype_t *out) {
  switch (st) {
  case torch::kFloat32: *out = WK_DT_FLOAT32; return true;
  case torch::kFloat64: *out = WK_DT_FLOAT64; return true;
  case torch::kFloat16: *out = WK_DT_FLOAT16; return true;
  case torch::kBFloat16: *out = WK_DT_BFLOAT16; return true;
  case torch::kInt8: *out = WK_DT_INT8; return true;
  case torch::kInt16: *out = WK_DT_INT16; return true;
  case torch::kInt32: *out = WK_DT_INT32; return true;
  case torch::kInt64: *out = WK_DT_INT64; return true;
  case torch::kUInt8: *out = WK_DT_UINT8; return true;
  case torch::kBool: *out = WK_DT_BOOL; return true;
  default: return false;
  }
}

// Wraps a wick value as an IValue. Tensors are views of the caller's memory (from_blob):
// they must not outlive the forward call.
c10::IValue to_ivalue(const wk_value_t *v, const torch::Device &dev) {
  switch (v->kind) {
  case WK_V_TENSOR: {
    const wk_tensor_t &t = v->tensor;
    std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
    at::Tensor x = torch::from_blob(t.data, shape, torch::TensorOptions().dtype(to_torch(t.dtype)));
    if (!dev.is_cpu()) x = x.to(dev);
    return x;
  }
  case WK_V_LIST: {
    // Lists of tensors are the common case (List[Tensor] arguments); other lists become
    // generic lists that TorchScript will type-check.
    bool all_tensors = v->count > 0;
    for (size_t i = 0; i < v->count; i++) all_tensors &= v->items[i]->kind == WK_V_TENSOR;
    if (all_tensors) {
      c10::List<at::Tensor> l;
      for (size_t i = 0; i < v->count; i++) l.push_back(to_ivalue(v->items[i], dev).toTensor());
      return l;
    }
    std::vector<c10::IValue> elems;
    for (size_t i = 0; i < v->count; i++) elems.push_back(to_ivalue(v->items[i], dev));
    return c10::ivalue::Tuple::create(std::move(elems));
  }
  case WK_V_DICT: {
    c10::Dict<std::string, at::Tensor> d;
    for (size_t i = 0; i < v->count; i++) d.insert(v->keys[i], to_ivalue(v->items[i], dev).toTensor());
    return d;
  }
  case WK_V_INT: return c10::IValue(static_cast<int64_t>(v->i));
  case WK_V_DOUBLE: return c10::IValue(v->d);
  case WK_V_BOOL: return c10::IValue(v->i != 0);
  case WK_V_STRING: return c10::IValue(std::string(v->s ? v->s : ""));
  case WK_V_NONE:
  default: return c10::IValue();
  }
}

// Converts a forward() result into a new wick value tree; NULL on an unsupported type
// (msg says which).
wk_value_t *from_ivalue(const c10::IValue &iv, std::string *msg) {
  if (iv.isTensor()) {
    at::Tensor t = iv.toTensor().to(torch::kCPU).contiguous();
    wk_dtype_t dt;
    if (!from_torch(t.scalar_type(), &dt)) {
      *msg = std::string("the model returned a tensor of unsupported dtype ") +
             c10::toString(t.scalar_type());
      return nullptr;
    }
    if (t.dim() > WK_MAX_DIMS) {
      *msg = "the model returned a tensor of rank " + std::to_string(t.dim()) +
             ", more than wick supports (" + std::to_string(WK_MAX_DIMS) + ")";
      return nullptr;
    }
    wk_value_t *v = wk_value_new(WK_V_TENSOR);
    if (v == nullptr) return nullptr;
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    if (wk_tensor_alloc(&v->tensor, dt, (int)t.dim(), shape.data()) != 0) {
      wk_value_free(v);
      *msg = "the model's output is too large";
      return nullptr;
    }
    if (v->tensor.nbytes) std::memcpy(v->tensor.data, t.data_ptr(), v->tensor.nbytes);
    return v;
  }
  if (iv.isTuple() || iv.isList() || iv.isTensorList()) {
    wk_value_t *v = wk_value_new(WK_V_LIST);
    if (v == nullptr) return nullptr;
    std::vector<c10::IValue> elems;
    if (iv.isTuple()) {
      for (const auto &e : iv.toTupleRef().elements()) elems.push_back(e);
    } else {
      for (const auto &e : iv.toListRef()) elems.push_back(e);
    }
    for (const auto &e : elems) {
      wk_value_t *item = from_ivalue(e, msg);
      if (item == nullptr || wk_value_append(v, nullptr, item) != 0) {
        wk_value_free(item);
        wk_value_free(v);
        return nullptr;
      }
    }
    return v;
  }
  if (iv.isGenericDict()) {
    wk_value_t *v = wk_value_new(WK_V_DICT);
    if (v == nullptr) return nullptr;
    for (const auto &kv : iv.toGenericDict()) {
      std::string key = kv.key().isString() ? kv.key().toStringRef() : kv.key().isInt() ? std::to_string(kv.key().toInt()) : "?";
      wk_value_t *item = from_ivalue(kv.value(), msg);
      if (item == nullptr || wk_value_append(v, key.c_str(), item) != 0) {
        wk_value_free(item);
        wk_value_free(v);
        return nullptr;
      }
    }
    return v;
  }
  wk_value_t *v = nullptr;
  if (iv.isNone()) v = wk_value_new(WK_V_NONE);
  else if (iv.isInt()) {
    v = wk_value_new(WK_V_INT);
    if (v) v->i = iv.toInt();
  } else if (iv.isDouble()) {
    v = wk_value_new(WK_V_DOUBLE);
    if (v) v->d = iv.toDouble();
  } else if (iv.isBool()) {
    v = wk_value_new(WK_V_BOOL);
    if (v) v->i = iv.toBool();
  } else if (iv.isString()) {
    v = wk_value_new(WK_V_STRING);
    if (v) v->s = strdup(iv.toStringRef().c_str());
  } else {
    *msg = "the model returned a value of unsupported type " + iv.tagKind();
  }
  return v;
}

int guard(wk_err_t *err, const std::string &where, int code,
          const std::function<std::string(const std::string &)> &describe,
          const std::function<int()> &body) {
  try {
    return body();
  } catch (const c10::Error &e) {
    std::string what = e.what_without_backtrace();
    if (is_oom(e)) return copy_err(err, WK_ENOMEM, "out of memory in " + where + ": " + summarize(what.c_str()));
    return copy_err(err, code, describe(what));
  } catch (const std::bad_alloc &) {
    return copy_err(err, WK_ENOMEM, "out of memory in " + where);
  } catch (const std::invalid_argument &e) {
    return copy_err(err, WK_EUNSUPPORTED, e.what());
  } catch (const std::exception &e) {
    if (is_oom_message(e.what()))
      return copy_err(err, WK_ENOMEM, "out of memory in " + where + ": " + summarize(e.what()));
    return copy_err(err, code, describe(e.what()));
  }
}

std::function<std::string(const std::string &)> prefixed(const std::string &prefix) {
  return [prefix](const std::string &what) { return prefix + ": " + summarize(what.c_str()); };
}

}  // namespace wk_torch
