#include "cnnvis/methods/occlusion.hpp"

#include <torch/torch.h>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/strategy.hpp"
#include "methods/common.hpp"

namespace cnnvis {
namespace {

// Window starts along one axis of `size` pixels (Captum: ceil((size - window) / stride) + 1).
std::vector<int64_t> starts(int64_t size, int64_t window, int64_t stride) {
  const int64_t count = (size - window + stride - 1) / stride + 1;
  std::vector<int64_t> out;
  for (int64_t k = 0; k < count; ++k) out.push_back(k * stride);
  return out;
}

}  // namespace

Occlusion::Occlusion(OcclusionOptions options) : options_(options) {
  if (options_.window < 1) throw usage_error("occlusion: window must be >= 1 pixel");
  if (options_.stride < 1) throw usage_error("occlusion: stride must be >= 1 pixel");
  if (options_.batch < 1) throw usage_error("occlusion: batch must be >= 1");
}

at::Tensor Occlusion::attribute(Model& model, const at::Tensor& input_in, const Target& target) {
  const auto input = input_in.detach();
  const int64_t n = input.size(0), h = input.size(2), w = input.size(3);
  const int64_t win = options_.window;
  if (win > h || win > w) {
    throw usage_error("occlusion option window=" + std::to_string(win) + ": larger than the " +
                      std::to_string(h) + "x" + std::to_string(w) +
                      " image; use a window of at most " + std::to_string(std::min(h, w)));
  }
  torch::InferenceMode guard;
  struct Window {
    int64_t y, x;
  };
  std::vector<Window> windows;
  for (auto y : starts(h, win, options_.stride)) {
    for (auto x : starts(w, win, options_.stride)) windows.push_back({y, x});
  }
  const auto base_scores = target.score(model.forward(input, target.taps()));  // [N]
  auto total = torch::zeros({n, h, w}, input.options());
  auto count = torch::zeros({h, w}, input.options());
  const int64_t k_max = std::max<int64_t>(1, options_.batch / n);
  const int64_t nw = static_cast<int64_t>(windows.size());
  // The occluded copies of every pass are written into one buffer (no allocation per pass).
  const int64_t c = input.size(1);
  auto buffer = torch::empty({n * std::min(k_max, nw) * c * h * w}, input.options());
  // Windows per pass: at most k_max, measured (cnnvis/strategy.hpp).
  const auto pass = [&](int64_t first, int64_t k) {
    auto copies = buffer.narrow(0, 0, n * k * c * h * w).view({n, k, c, h, w});
    copies.copy_(input.unsqueeze(1).expand({n, k, c, h, w}));
    for (int64_t j = 0; j < k; ++j) {
      const auto& win_j = windows[first + j];
      copies.select(1, j)
          .slice(2, win_j.y, std::min(win_j.y + win, h))
          .slice(3, win_j.x, std::min(win_j.x + win, w))
          .fill_(options_.baseline);
    }
    const auto scores =
        target.repeat_interleave(k)
            .score(model.forward(copies.view({n * k, c, h, w}), target.taps()))
            .view({n, k});
    const auto drop = base_scores.view({n, 1}) - scores;  // [N, k]
    for (int64_t j = 0; j < k; ++j) {
      const auto& win_j = windows[first + j];
      const int64_t y1 = std::min(win_j.y + win, h), x1 = std::min(win_j.x + win, w);
      total.slice(1, win_j.y, y1).slice(2, win_j.x, x1) += drop.select(1, j).view({n, 1, 1});
      count.slice(0, win_j.y, y1).slice(1, win_j.x, x1) += 1;
    }
  };
  detail::run_in_passes(detail::pass_key(model, "forward", input), nw, k_max,
                        detail::pass_measured(input), pass);
  return (total / count).unsqueeze(1).expand({n, input.size(1), h, w}).contiguous();
}

MethodInfo occlusion_method_info() {
  MethodInfo info;
  info.name = "occlusion";
  info.summary = "occlusion: the drop of the target score when a sliding window is set to a "
                 "baseline, averaged per pixel";
  info.paper = "Zeiler, Fergus 2014, Visualizing and understanding convolutional networks";
  info.options = {
      {"window", "16", "side of the square window in pixels"},
      {"stride", "8", "step of the window in pixels"},
      {"baseline", "0", "value of the occluded pixels in normalized space (0: the mean colour)"},
      {"batch", "32",
       "occluded images per forward pass at most (bounds memory); --pass-size auto measures "
       "passes of batch, batch/2 and batch/4 on the CPU and keeps the fastest"},
  };
  info.views = {
      {"map", "occlusion map: score drop, min-max scaled, jet colormap", "",
       [](const at::Tensor& raw, const at::Tensor&) {
         return apply_colormap(minmax(raw[0]), Colormap::kJet);
       }},
      {"overlay", "occlusion map on the image: jet heatmap, alpha 0.5", "",
       [](const at::Tensor& raw, const at::Tensor& image) {
         return overlay(image, apply_colormap(minmax(raw[0]), Colormap::kJet), 0.5);
       }},
  };
  // Evidence is a positive drop; a negative drop (occluding helps) is not importance.
  info.importance = [](const at::Tensor& raw, int64_t height, int64_t width) {
    return importance_map(raw[0].unsqueeze(0), height, width);
  };
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader r(params, "occlusion");
    OcclusionOptions o;
    o.window = r.integer("window", o.window, 1);
    o.stride = r.integer("stride", o.stride, 1);
    o.baseline = r.real("baseline", o.baseline, -1e300);
    o.batch = r.integer("batch", o.batch, 1);
    r.finish();
    return std::make_unique<Occlusion>(o);
  };
  return info;
}

}  // namespace cnnvis
