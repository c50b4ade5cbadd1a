#include "cnnvis/methods/vanilla.hpp"

#include <torch/csrc/autograd/autograd.h>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "methods/common.hpp"

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
  info.views = detail::gradient_views(/*with_signs=*/false);
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader(params, "vanilla").finish();
    return std::make_unique<VanillaGradient>();
  };
  return info;
}

}  // namespace cnnvis
