#include "cnnvis/methods/vanilla.hpp"

#include <torch/csrc/autograd/autograd.h>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"

namespace cnnvis {

at::Tensor input_gradient(Model& model, const at::Tensor& input, const Target& target) {
  // A leaf copy that requires grad; parameters are frozen, so autograd::grad computes only the
  // path down to the input.
  auto x = input.detach().requires_grad_(true);
  auto result = model.forward(x, target.taps());
  auto score = target.score(result);
  return torch::autograd::grad({score.sum()}, {x})[0];
}

at::Tensor VanillaGradient::attribute(Model& model, const at::Tensor& input,
                                      const Target& target) {
  return input_gradient(model, input, target);
}

MethodInfo vanilla_method_info() {
  MethodInfo info;
  info.name = "vanilla";
  info.summary = "vanilla backprop: gradient of the target logit w.r.t. the input";
  info.paper = "Simonyan, Vedaldi, Zisserman 2014, Deep inside convolutional networks";
  info.views = {
      {"color", "coloured gradient: (g - min) / max, per image",
       [](const at::Tensor& raw, const at::Tensor&) { return gradient_color(raw); }},
      {"gray", "grayscale saliency: sum_c |g|, clipped at the 99th percentile",
       [](const at::Tensor& raw, const at::Tensor&) { return grayscale_saliency(raw); }},
  };
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    if (!params.empty()) {
      throw usage_error("vanilla takes no options, got '" + params.begin()->first + "'");
    }
    return std::make_unique<VanillaGradient>();
  };
  return info;
}

}  // namespace cnnvis
