// wick's own CPU kernels for the torchvision operators that scripted detection models call
// (torchvision::nms, torchvision::roi_align), registered under torchvision's schemas so that
// a TorchScript file which calls them loads and runs natively. torchvision's own operator
// library is not loaded: the pip wheel's links libtorch_python and expects a Python
// interpreter in the process. box_iou_rotated is declared (TorchScript resolves every
// operator a graph names, even in branches that never run) and answers with an error.
// Checked against torchvision's results in tests/e2e/test_torchvision_ops.py.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backend/torch.h"

namespace {

// Non-maximum suppression: the indices of the boxes kept, by decreasing score; a box is
// dropped when its IoU with a kept box is above iou_threshold. Boxes are (x1, y1, x2, y2).
template <typename T>
at::Tensor nms_kernel(const at::Tensor &dets, const at::Tensor &scores, double iou_threshold) {
  const int64_t n = dets.size(0);
  // stable: among equal scores the earlier box comes first, as in torchvision
  at::Tensor order = std::get<1>(scores.sort(/*stable=*/true, 0, /*descending=*/true));
  const T *b = dets.data_ptr<T>();
  const int64_t *ord = order.data_ptr<int64_t>();
  std::vector<T> area(n);
  for (int64_t i = 0; i < n; i++) area[i] = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
  std::vector<char> dropped(n, 0);
  std::vector<int64_t> keep;
  keep.reserve(n);
  for (int64_t a = 0; a < n; a++) {
    int64_t i = ord[a];
    if (dropped[i]) continue;
    keep.push_back(i);
    const T *bi = b + 4 * i;
    for (int64_t c = a + 1; c < n; c++) {
      int64_t j = ord[c];
      if (dropped[j]) continue;
      const T *bj = b + 4 * j;
      T w = std::max(T(0), std::min(bi[2], bj[2]) - std::max(bi[0], bj[0]));
      T h = std::max(T(0), std::min(bi[3], bj[3]) - std::max(bi[1], bj[1]));
      T inter = w * h;
      T iou = inter / (area[i] + area[j] - inter);
      if (iou > iou_threshold) dropped[j] = 1;
    }
  }
  at::Tensor out = at::empty({(int64_t)keep.size()}, dets.options().dtype(at::kLong));
  std::copy(keep.begin(), keep.end(), out.data_ptr<int64_t>());
  return out;
}

at::Tensor nms_cpu(const at::Tensor &dets, const at::Tensor &scores, double iou_threshold) {
  TORCH_CHECK(dets.dim() == 2 && dets.size(1) == 4, "torchvision::nms: boxes should be [N, 4], got ",
              dets.sizes());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == dets.size(0),
              "torchvision::nms: scores should be [N] with N = ", dets.size(0), ", got ", scores.sizes());
  TORCH_CHECK(dets.scalar_type() == scores.scalar_type(),
              "torchvision::nms: boxes and scores should have the same dtype");
  if (dets.numel() == 0) return at::empty({0}, dets.options().dtype(at::kLong));
  at::Tensor d = dets.contiguous(), s = scores.contiguous();
  at::Tensor out;
  AT_DISPATCH_FLOATING_TYPES(d.scalar_type(), "wick_nms", [&] { out = nms_kernel<scalar_t>(d, s, iou_threshold); });
  return out;
}

// The value of plane (height x width) at (y, x) by bilinear interpolation, as Mask R-CNN's
// RoIAlign samples it: 0 outside [-1, size], coordinates clamped to the border inside.
template <typename T>
T bilinear(const T *plane, int64_t height, int64_t width, T y, T x) {
  if (y < -1.0 || y > height || x < -1.0 || x > width) return 0;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int64_t y0 = (int64_t)y, x0 = (int64_t)x, y1, x1;
  if (y0 >= height - 1) {
    y1 = y0 = height - 1;
    y = (T)y0;
  } else {
    y1 = y0 + 1;
  }
  if (x0 >= width - 1) {
    x1 = x0 = width - 1;
    x = (T)x0;
  } else {
    x1 = x0 + 1;
  }
  T ly = y - y0, lx = x - x0, hy = 1 - ly, hx = 1 - lx;
  return hy * hx * plane[y0 * width + x0] + hy * lx * plane[y0 * width + x1] +
         ly * hx * plane[y1 * width + x0] + ly * lx * plane[y1 * width + x1];
}

// RoIAlign: for each box (batch index, x1, y1, x2, y2) in input coordinates times
// spatial_scale, the average of sampling_ratio^2 (or adaptive) bilinear samples in each of
// pooled_h x pooled_w bins, per channel. aligned shifts boxes by half a pixel.
template <typename T>
void roi_align_kernel(const at::Tensor &input, const at::Tensor &rois, double spatial_scale,
                      int64_t ph_n, int64_t pw_n, int64_t sampling_ratio, bool aligned,
                      at::Tensor &out) {
  const int64_t channels = input.size(1), height = input.size(2), width = input.size(3);
  const T *in = input.data_ptr<T>();
  const T *r = rois.data_ptr<T>();
  T *o = out.data_ptr<T>();
  const int64_t n_rois = rois.size(0);
  for (int64_t n = 0; n < n_rois; n++) {
    T idx = r[5 * n];
    TORCH_CHECK(idx >= 0 && idx < (T)input.size(0), "torchvision::roi_align: box ", n,
                " names image ", (double)idx, " of a batch of ", input.size(0));
  }
  at::parallel_for(0, n_rois, 1, [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; n++) {
      const T *box = r + 5 * n;
      int64_t batch = (int64_t)box[0];
      T offset = aligned ? (T)0.5 : (T)0.0;
      T x1 = box[1] * (T)spatial_scale - offset, y1 = box[2] * (T)spatial_scale - offset;
      T x2 = box[3] * (T)spatial_scale - offset, y2 = box[4] * (T)spatial_scale - offset;
      T roi_w = x2 - x1, roi_h = y2 - y1;
      if (!aligned) {
        roi_w = std::max(roi_w, (T)1.0);
        roi_h = std::max(roi_h, (T)1.0);
      }
      T bin_h = roi_h / (T)ph_n, bin_w = roi_w / (T)pw_n;
      int64_t grid_h = sampling_ratio > 0 ? sampling_ratio : (int64_t)std::ceil(roi_h / ph_n);
      int64_t grid_w = sampling_ratio > 0 ? sampling_ratio : (int64_t)std::ceil(roi_w / pw_n);
      T count = (T)std::max<int64_t>(grid_h * grid_w, 1);
      for (int64_t c = 0; c < channels; c++) {
        const T *plane = in + (batch * channels + c) * height * width;
        T *dst = o + ((n * channels + c) * ph_n) * pw_n;
        for (int64_t ph = 0; ph < ph_n; ph++) {
          for (int64_t pw = 0; pw < pw_n; pw++) {
            T sum = 0;
            for (int64_t iy = 0; iy < grid_h; iy++) {
              T y = y1 + ph * bin_h + ((T)iy + (T)0.5) * bin_h / (T)grid_h;
              for (int64_t ix = 0; ix < grid_w; ix++) {
                T x = x1 + pw * bin_w + ((T)ix + (T)0.5) * bin_w / (T)grid_w;
                sum += bilinear(plane, height, width, y, x);
              }
            }
            dst[ph * pw_n + pw] = sum / count;
          }
        }
      }
    }
  });
}

at::Tensor roi_align_cpu(const at::Tensor &input, const at::Tensor &rois, double spatial_scale,
                         c10::SymInt pooled_height, c10::SymInt pooled_width,
                         int64_t sampling_ratio, bool aligned) {
  TORCH_CHECK(input.dim() == 4, "torchvision::roi_align: input should be [N, C, H, W], got ",
              input.sizes());
  TORCH_CHECK(rois.dim() == 2 && rois.size(1) == 5,
              "torchvision::roi_align: rois should be [K, 5], got ", rois.sizes());
  TORCH_CHECK(input.scalar_type() == rois.scalar_type(),
              "torchvision::roi_align: input and rois should have the same dtype");
  int64_t ph = pooled_height.expect_int(), pw = pooled_width.expect_int();
  TORCH_CHECK(ph > 0 && pw > 0, "torchvision::roi_align: the output size must be positive");
  at::Tensor x = input.contiguous(), b = rois.contiguous();
  at::Tensor out = at::zeros({b.size(0), x.size(1), ph, pw}, x.options());
  if (b.size(0) == 0 || x.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "wick_roi_align", [&] {
    roi_align_kernel<scalar_t>(x, b, spatial_scale, ph, pw, sampling_ratio, aligned, out);
  });
  return out;
}

at::Tensor box_iou_rotated_cpu(const at::Tensor &, const at::Tensor &) {
  TORCH_CHECK(false, "torchvision::box_iou_rotated (IoU of rotated boxes) is not among the "
                     "torchvision operators wick implements (nms, roi_align)");
}

}  // namespace

// The schemas are torchvision's own (torchvision/csrc/ops/*.cpp), so that files scripted
// with torchvision resolve their calls here.
TORCH_LIBRARY(torchvision, m) {
  m.def("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor");
  m.def("roi_align(Tensor input, Tensor rois, float spatial_scale, SymInt pooled_height, "
        "SymInt pooled_width, int sampling_ratio, bool aligned) -> Tensor");
  m.def("box_iou_rotated(Tensor boxes1, Tensor boxes2) -> Tensor");
}

TORCH_LIBRARY_IMPL(torchvision, CPU, m) {
  m.impl("nms", TORCH_FN(nms_cpu));
  m.impl("roi_align", TORCH_FN(roi_align_cpu));
  m.impl("box_iou_rotated", TORCH_FN(box_iou_rotated_cpu));
}

// Referenced from torch.cc so that the linker keeps this object (and its registrations)
// when it takes the backend from a static library.
extern "C" const char *wk__torchvision_ops(void) { return "nms, roi_align"; }
