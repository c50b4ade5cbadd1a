#pragma once
// Guided backpropagation (Springenberg et al. 2015, "Striving for simplicity: the all
// convolutional net", section 3.4) and the deconvnet (Zeiler and Fergus 2014, "Visualizing and
// understanding convolutional networks"): the input gradient with every ReLU of the model
// back-propagating as R_in = 1[x > 0] * max(R_out, 0) (guided) or R_in = max(R_out, 0)
// (deconvnet), classifier and residual-block ReLUs included (the classic collection changes
// only the ReLUs of `features`). With a layer-unit target (Target::layer_unit) guided backprop
// is the classic collection's "layer activation with guided backprop".
#include "cnnvis/method.hpp"

namespace cnnvis {

// The input gradient of `target` with the model's ReLUs in `mode`, [N, 3, H, W]; the previous
// ReLU mode is restored afterwards, also on exceptions.
at::Tensor relu_mode_gradient(Model& model, const at::Tensor& input, const Target& target,
                              ReluMode mode);

class GuidedBackprop : public Method {
 public:
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;
};

class Deconvnet : public Method {
 public:
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;
};

MethodInfo guided_backprop_method_info();
MethodInfo deconvnet_method_info();

}  // namespace cnnvis
