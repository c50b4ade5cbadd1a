#pragma once
// Gradient x input (Shrikumar et al. 2016; Captum's InputXGradient): the element-wise product
// of the normalized input and an input-space attribution, by default the vanilla gradient
// (the classic collection's "gradient x image"); any input-space method can be the base
// (guided-backprop, deconvnet, integrated-gradients, smoothgrad, ...).
#include <memory>
#include <string>

#include "cnnvis/method.hpp"

namespace cnnvis {

class GradientXInput : public Method {
 public:
  // base: the method whose attribution is multiplied (name for messages).
  GradientXInput(std::unique_ptr<Method> base, std::string base_name);
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;

 private:
  std::unique_ptr<Method> base_;
  std::string base_name_;
};

// Options: base (default vanilla).
MethodInfo gradient_x_input_method_info();

}  // namespace cnnvis
