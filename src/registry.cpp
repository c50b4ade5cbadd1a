// The one list of methods. A new method adds one line to methods().
#include "cnnvis/error.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/methods/ablation_cam.hpp"
#include "cnnvis/methods/cam.hpp"
#include "cnnvis/methods/gradient_x_input.hpp"
#include "cnnvis/methods/guided_backprop.hpp"
#include "cnnvis/methods/integrated_gradients.hpp"
#include "cnnvis/methods/lrp.hpp"
#include "cnnvis/methods/noise_tunnel.hpp"
#include "cnnvis/methods/occlusion.hpp"
#include "cnnvis/methods/score_cam.hpp"
#include "cnnvis/methods/vanilla.hpp"
#include "detail/strings.hpp"

namespace cnnvis {
namespace {

// A floating result in the input's dtype: under autocast (PrecisionGuard) the activations a CAM
// or LRP result is computed from are bfloat16 or float16, but results are float32 whatever the
// precision. A no-op when the dtypes agree.
at::Tensor in_dtype_of(const at::Tensor& result, const at::Tensor& input) {
  if (!result.defined() || !result.is_floating_point() || !input.is_floating_point() ||
      result.scalar_type() == input.scalar_type()) {
    return result;
  }
  return result.to(input.scalar_type());
}

class InputDtypeResults : public Method {
 public:
  explicit InputDtypeResults(std::unique_ptr<Method> method) : method_(std::move(method)) {}
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override {
    return in_dtype_of(method_->attribute(model, input, target), input);
  }
  Attribution explain(Model& model, const at::Tensor& input, const Target& target) override {
    Attribution a = method_->explain(model, input, target);
    a.raw = in_dtype_of(a.raw, input);
    for (auto& [name, extra] : a.extras) extra = in_dtype_of(extra, input);
    return a;
  }

 private:
  std::unique_ptr<Method> method_;
};

std::vector<MethodInfo> with_input_dtype_results(std::vector<MethodInfo> infos) {
  for (auto& info : infos) {
    info.make = [make = info.make](const MethodParams& params) -> std::unique_ptr<Method> {
      return std::make_unique<InputDtypeResults>(make(params));
    };
  }
  return infos;
}

}  // namespace

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> registry = with_input_dtype_results({
      vanilla_method_info(),
      guided_backprop_method_info(),
      deconvnet_method_info(),
      gradient_x_input_method_info(),
      integrated_gradients_method_info(),
      noise_tunnel_method_info(),
      occlusion_method_info(),
      grad_cam_method_info(),
      guided_grad_cam_method_info(),
      grad_cam_plus_plus_method_info(),
      xgrad_cam_method_info(),
      hires_cam_method_info(),
      layer_cam_method_info(),
      eigen_cam_method_info(),
      score_cam_method_info(),
      ablation_cam_method_info(),
      lrp_method_info(),
  });
  return registry;
}

const MethodInfo& find_method(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& info : methods()) {
    if (info.name == name) return info;
    names.push_back(info.name);
  }
  throw usage_error("unknown method '" + name + "'; closest: " +
                    detail::join(detail::closest_matches(name, names, 3)) +
                    " (run `cnnvis list` for all methods)");
}

std::vector<View> method_views(const MethodInfo& info, const MethodParams& params) {
  return info.views_for ? info.views_for(params) : info.views;
}

at::Tensor render_view(const View& view, const Attribution& result, int64_t i,
                       const at::Tensor& image) {
  if (view.source.empty()) return view.render(result.raw[i], image);
  const auto it = result.extras.find(view.source);
  if (it == result.extras.end()) {
    throw Error("view " + view.name + " needs the method's extra result '" + view.source +
                "', which it did not return");
  }
  return view.render(it->second[i], image);
}

std::unique_ptr<Method> make_method(const std::string& name, const MethodParams& params) {
  return find_method(name).make(params);
}

}  // namespace cnnvis
