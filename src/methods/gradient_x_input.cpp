#include "cnnvis/methods/gradient_x_input.hpp"

#include <ATen/ATen.h>

#include "cnnvis/error.hpp"
#include "methods/common.hpp"

namespace cnnvis {

GradientXInput::GradientXInput(std::unique_ptr<Method> base, std::string base_name)
    : base_(std::move(base)), base_name_(std::move(base_name)) {}

at::Tensor GradientXInput::attribute(Model& model, const at::Tensor& input,
                                     const Target& target) {
  const auto raw = base_->attribute(model, input, target);
  detail::check_input_space(raw, input, "gradient-x-input", base_name_);
  return input.detach() * raw;
}

MethodInfo gradient_x_input_method_info() {
  MethodInfo info;
  info.name = "gradient-x-input";
  info.summary = "gradient x input: the normalized input times an input-space attribution "
                 "(vanilla gradient by default)";
  info.paper = "Shrikumar, Greenside, Shcherbina, Kundaje 2016, Not just a black box "
               "(gradient * input); the classic collection's gradient x image";
  info.options = {{"base", "vanilla", "the attribution to multiply: any input-space method"}};
  info.views = detail::gradient_views(/*with_signs=*/true);
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader options(params, "gradient-x-input");
    const std::string base = options.text("base", "vanilla");
    options.finish();
    if (base == "gradient-x-input") {
      throw usage_error("gradient-x-input option base=gradient-x-input: a method cannot wrap "
                        "itself; name another base");
    }
    return std::make_unique<GradientXInput>(make_method(base), base);
  };
  return info;
}

}  // namespace cnnvis
