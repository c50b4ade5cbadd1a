#include "cnnvis/methods/guided_backprop.hpp"

#include "cnnvis/methods/vanilla.hpp"
#include "methods/common.hpp"

namespace cnnvis {

at::Tensor relu_mode_gradient(Model& model, const at::Tensor& input, const Target& target,
                              ReluMode mode) {
  ReluModeGuard guard(model, mode);
  return input_gradient(model, input, target);
}

at::Tensor GuidedBackprop::attribute(Model& model, const at::Tensor& input,
                                     const Target& target) {
  return relu_mode_gradient(model, input, target, ReluMode::kGuided);
}

at::Tensor Deconvnet::attribute(Model& model, const at::Tensor& input, const Target& target) {
  return relu_mode_gradient(model, input, target, ReluMode::kDeconv);
}

MethodInfo guided_backprop_method_info() {
  MethodInfo info;
  info.name = "guided-backprop";
  info.summary = "guided backprop: input gradient, every ReLU passing only positive gradients "
                 "where its input was positive";
  info.paper = "Springenberg, Dosovitskiy, Brox, Riedmiller 2015, Striving for simplicity: "
               "the all convolutional net";
  info.views = detail::gradient_views(/*with_signs=*/true);
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader(params, "guided-backprop").finish();
    return std::make_unique<GuidedBackprop>();
  };
  return info;
}

MethodInfo deconvnet_method_info() {
  MethodInfo info;
  info.name = "deconvnet";
  info.summary = "deconvnet: input gradient, every ReLU passing only positive gradients "
                 "(no forward mask)";
  info.paper = "Zeiler, Fergus 2014, Visualizing and understanding convolutional networks";
  info.views = detail::gradient_views(/*with_signs=*/true);
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader(params, "deconvnet").finish();
    return std::make_unique<Deconvnet>();
  };
  return info;
}

}  // namespace cnnvis
