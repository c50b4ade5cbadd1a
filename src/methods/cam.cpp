#include "cnnvis/methods/cam.hpp"

#include <torch/torch.h>

#include <sstream>

#include "cnnvis/error.hpp"
#include "cnnvis/methods/guided_backprop.hpp"
#include "methods/cam_common.hpp"
#include "methods/common.hpp"

namespace cnnvis {

namespace F = torch::nn::functional;

at::Tensor upsample_maps(const at::Tensor& maps, int64_t height, int64_t width) {
  if (maps.size(1) == height && maps.size(2) == width) return maps;
  return F::interpolate(maps.unsqueeze(1), F::InterpolateFuncOptions()
                                               .size(std::vector<int64_t>{height, width})
                                               .mode(torch::kBilinear)
                                               .align_corners(false))
      .squeeze(1);
}

at::Tensor minmax_per_image(const at::Tensor& maps) {
  const auto flat = maps.reshape({maps.size(0), -1});
  const auto lo = std::get<0>(flat.min(1, true));
  const auto range = std::get<0>(flat.max(1, true)) - lo;
  const auto safe = torch::where(range > 0, range, torch::ones_like(range));
  return torch::where(range > 0, (flat - lo) / safe, torch::zeros_like(flat)).view_as(maps);
}

namespace detail {

std::vector<std::string> split_layers(const std::string& text) {
  std::vector<std::string> layers;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) layers.push_back(item);
  }
  return layers;
}

const at::Tensor& spatial_activation(const std::string& method, const std::string& layer,
                                     const at::Tensor& a) {
  if (a.dim() != 4) {
    throw usage_error(method + ": layer " + layer + " has output " + c10::str(a.sizes()) +
                      " with no spatial extent; CAM methods need a convolutional layer (see "
                      "`cnnvis layers`)");
  }
  if (a.size(1) == 0) throw usage_error(method + ": layer " + layer + " has no channels");
  return a;
}

std::vector<std::string> cam_layers(const CamOptions& options, Model& model) {
  auto layers = options.layers.empty() ? std::vector<std::string>{model.default_cam_layer()}
                                       : options.layers;
  for (const auto& l : layers) model.check_layer(l);
  return layers;
}

CamCommon read_cam_options(OptionReader& r) {
  CamCommon c;
  c.options.layers = split_layers(r.text("layer", ""));
  c.colormap = parse_colormap(r.text("colormap", "jet"));
  c.alpha = r.real("alpha", 0.5, 0.0, 1.0);
  return c;
}

std::vector<OptionInfo> cam_option_infos() {
  return {{"layer", "the model's default CAM layer",
           "layer(s) to explain at, comma-separated (see cnnvis layers)"},
          {"colormap", "jet", "heatmap colours: jet, turbo, viridis, hsv (the classic look), gray"},
          {"alpha", "0.5", "heatmap opacity over the image"}};
}

std::vector<View> cam_views(Colormap colormap, double alpha) {
  return {
      {"gray", "grayscale map: the upsampled map, min-max scaled", "upsampled",
       [](const at::Tensor& up, const at::Tensor&) { return up; }},
      {"heatmap", std::string("coloured heatmap: the map through the ") + to_string(colormap) +
                      " colormap",
       "upsampled",
       [colormap](const at::Tensor& up, const at::Tensor&) {
         return apply_colormap(up, colormap);
       }},
      {"overlay", "heatmap on the image: (1 - alpha) image + alpha heatmap", "upsampled",
       [colormap, alpha](const at::Tensor& up, const at::Tensor& image) {
         return overlay(image, apply_colormap(up, colormap), alpha);
       }},
  };
}

std::vector<View> cam_views_for(const MethodParams& params) {
  MethodParams view_params;
  for (const auto& key : {"colormap", "alpha"}) {
    if (params.count(key)) view_params[key] = params.at(key);
  }
  OptionReader r(view_params, "cam");
  const auto colormap = parse_colormap(r.text("colormap", "jet"));
  const double alpha = r.real("alpha", 0.5, 0.0, 1.0);
  return cam_views(colormap, alpha);
}

}  // namespace detail

CamMethod::CamMethod(CamOptions options) : options_(std::move(options)) {}

at::Tensor CamMethod::fuse(const std::vector<at::Tensor>& maps) const {
  auto sum = torch::zeros_like(maps[0]);
  for (const auto& m : maps) sum += minmax_per_image(m);
  return sum / static_cast<double>(maps.size());
}

Attribution CamMethod::explain(Model& model, const at::Tensor& input, const Target& target) {
  const auto layers = detail::cam_layers(options_, model);
  std::vector<std::string> taps = layers;
  for (const auto& t : target.taps()) taps.push_back(t);
  std::vector<Layer> data;
  if (needs_gradients()) {
    // The autograd graph starts at the taps (the layers before them record nothing), and
    // autograd::grad asks for the tapped activations, so the backward pass stops there.
    const auto result = model.forward_for_tap_gradients(input, taps);
    const auto score = target.score(result);
    std::vector<at::Tensor> acts;
    for (const auto& l : layers) {
      acts.push_back(detail::spatial_activation("cam", l, result.taps.at(l)));
    }
    const auto grads = torch::autograd::grad({score.sum()}, acts);
    for (size_t i = 0; i < layers.size(); ++i) {
      data.push_back({layers[i], acts[i].detach(), grads[i].detach()});
    }
  } else {
    torch::InferenceMode guard;
    const auto result = model.forward(input.detach(), taps);
    for (const auto& l : layers) {
      data.push_back({l, detail::spatial_activation("cam", l, result.taps.at(l)), {}});
    }
  }
  const int64_t h = input.size(2), w = input.size(3);
  Attribution out;
  if (data.size() == 1) {
    out.raw = torch::relu(layer_map(model, input, target, data[0])).detach();
    out.extras["upsampled"] = minmax_per_image(upsample_maps(out.raw, h, w));
  } else {
    std::vector<at::Tensor> maps;
    for (const auto& layer : data) {
      maps.push_back(upsample_maps(torch::relu(layer_map(model, input, target, layer)).detach(),
                                   h, w));
    }
    out.raw = fuse(maps);
    out.extras["upsampled"] = minmax_per_image(out.raw);
  }
  return out;
}

at::Tensor CamMethod::attribute(Model& model, const at::Tensor& input, const Target& target) {
  return explain(model, input, target).raw;
}

namespace {

class GradCam : public CamMethod {
 public:
  using CamMethod::CamMethod;

 protected:
  at::Tensor layer_map(Model&, const at::Tensor&, const Target&, const Layer& l) override {
    const auto w = l.gradient.mean({2, 3}, /*keepdim=*/true);
    return (w * l.activation).sum(1);
  }
};

class GradCamPlusPlus : public CamMethod {
 public:
  using CamMethod::CamMethod;

 protected:
  at::Tensor layer_map(Model&, const at::Tensor&, const Target&, const Layer& l) override {
    const auto& g = l.gradient;
    const auto g2 = g.pow(2);
    const auto g3 = g2 * g;
    const auto sum_a = l.activation.sum({2, 3}, /*keepdim=*/true);
    auto alpha = g2 / (2 * g2 + sum_a * g3 + 1e-6);
    alpha = torch::where(g != 0, alpha, torch::zeros_like(alpha));
    const auto w = (alpha * torch::relu(g)).sum({2, 3}, /*keepdim=*/true);
    return (w * l.activation).sum(1);
  }
};

class XGradCam : public CamMethod {
 public:
  using CamMethod::CamMethod;

 protected:
  at::Tensor layer_map(Model&, const at::Tensor&, const Target&, const Layer& l) override {
    const auto sum_a = l.activation.sum({2, 3}, /*keepdim=*/true);
    const auto w = (l.gradient * l.activation).sum({2, 3}, /*keepdim=*/true) / (sum_a + 1e-7);
    return (w * l.activation).sum(1);
  }
};

class HiResCam : public CamMethod {
 public:
  using CamMethod::CamMethod;

 protected:
  at::Tensor layer_map(Model&, const at::Tensor&, const Target&, const Layer& l) override {
    return (l.gradient * l.activation).sum(1);
  }
};

class LayerCam : public CamMethod {
 public:
  using CamMethod::CamMethod;

 protected:
  at::Tensor layer_map(Model&, const at::Tensor&, const Target&, const Layer& l) override {
    return (torch::relu(l.gradient) * l.activation).sum(1);
  }
  at::Tensor fuse(const std::vector<at::Tensor>& maps) const override {
    at::Tensor fused;
    for (const auto& m : maps) {
      const auto peak = m.reshape({m.size(0), -1}).amax(1).view({-1, 1, 1});
      const auto scaled =
          torch::where(peak > 0, torch::tanh(2.0 * m / torch::where(peak > 0, peak,
                                                                    torch::ones_like(peak))),
                       torch::zeros_like(m));
      fused = fused.defined() ? torch::maximum(fused, scaled) : scaled;
    }
    return fused;
  }
};

class EigenCam : public CamMethod {
 public:
  using CamMethod::CamMethod;

 protected:
  bool needs_gradients() const override { return false; }
  at::Tensor layer_map(Model&, const at::Tensor&, const Target&, const Layer& l) override {
    torch::NoGradGuard no_grad;
    const auto& a = l.activation;
    const int64_t n = a.size(0), k = a.size(1), h = a.size(2), w = a.size(3);
    std::vector<at::Tensor> maps;
    for (int64_t i = 0; i < n; ++i) {
      auto x = a[i].reshape({k, h * w}).t();  // [hw, K]
      x = x - x.mean(0, /*keepdim=*/true);
      const auto svd = torch::linalg_svd(x, /*full_matrices=*/false);
      const auto v = std::get<2>(svd)[0];  // first right singular vector [K]
      auto projection = x.matmul(v);        // [hw]
      // Fix the arbitrary sign: positive correlation with the channel-mean activation.
      const auto mean_map = a[i].mean(0).reshape({h * w});
      const auto centred = mean_map - mean_map.mean();
      if ((projection * centred).sum().item<double>() < 0) projection = -projection;
      maps.push_back(projection.reshape({h, w}));
    }
    return torch::stack(maps);
  }
};

}  // namespace

std::unique_ptr<CamMethod> make_cam(const std::string& variant, CamOptions options) {
  if (variant == "grad-cam") return std::make_unique<GradCam>(std::move(options));
  if (variant == "grad-cam++") return std::make_unique<GradCamPlusPlus>(std::move(options));
  if (variant == "xgrad-cam") return std::make_unique<XGradCam>(std::move(options));
  if (variant == "hires-cam") return std::make_unique<HiResCam>(std::move(options));
  if (variant == "layer-cam") return std::make_unique<LayerCam>(std::move(options));
  if (variant == "eigen-cam") return std::make_unique<EigenCam>(std::move(options));
  throw usage_error("unknown CAM variant '" + variant + "'");
}

GuidedGradCam::GuidedGradCam(CamOptions options) : options_(std::move(options)) {}

at::Tensor GuidedGradCam::attribute(Model& model, const at::Tensor& input, const Target& target) {
  const auto cam = GradCam(options_).explain(model, input, target).raw;
  const auto up = upsample_maps(cam, input.size(2), input.size(3));
  return GuidedBackprop().attribute(model, input, target) * up.unsqueeze(1);
}

namespace {

MethodInfo cam_info(const std::string& name, const std::string& summary,
                    const std::string& paper) {
  MethodInfo info;
  info.name = name;
  info.summary = summary;
  info.paper = paper;
  info.options = detail::cam_option_infos();
  info.views = detail::cam_views(Colormap::kJet, 0.5);
  info.views_for = detail::cam_views_for;
  info.make = [name](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader r(params, name);
    auto common = detail::read_cam_options(r);
    r.finish();
    return make_cam(name, common.options);
  };
  return info;
}

}  // namespace

MethodInfo grad_cam_method_info() {
  return cam_info("grad-cam",
                  "Grad-CAM: activations weighted by the spatial mean of their gradient, ReLU",
                  "Selvaraju et al. 2017, Grad-CAM: visual explanations from deep networks via "
                  "gradient-based localization");
}
MethodInfo grad_cam_plus_plus_method_info() {
  return cam_info("grad-cam++",
                  "Grad-CAM++: channel weights from positive gradients with pixel-wise "
                  "coefficients (eq. 19)",
                  "Chattopadhay, Sarkar, Howlader, Balasubramanian 2018, Grad-CAM++");
}
MethodInfo xgrad_cam_method_info() {
  return cam_info("xgrad-cam",
                  "XGrad-CAM: channel weights sum(A * G) / sum(A), activations weighted, ReLU",
                  "Fu et al. 2020, Axiom-based Grad-CAM");
}
MethodInfo hires_cam_method_info() {
  return cam_info("hires-cam", "HiResCAM: element-wise gradient times activation, summed over "
                               "channels, ReLU",
                  "Draelos, Carin 2020, Use HiResCAM instead of Grad-CAM");
}
MethodInfo layer_cam_method_info() {
  return cam_info("layer-cam",
                  "LayerCAM: positive gradients times activations per position; several layers "
                  "fused by maximum",
                  "Jiang, Zhang, Hou, Cheng, Wei 2021, LayerCAM");
}
MethodInfo eigen_cam_method_info() {
  return cam_info("eigen-cam",
                  "Eigen-CAM: first principal component of the activations (no gradients, "
                  "class-agnostic)",
                  "Muhammad, Yeasin 2020, Eigen-CAM");
}

MethodInfo guided_grad_cam_method_info() {
  MethodInfo info;
  info.name = "guided-grad-cam";
  info.summary = "Guided Grad-CAM: guided backprop times the bilinearly upsampled Grad-CAM map";
  info.paper = "Selvaraju et al. 2017, Grad-CAM";
  info.options = {detail::cam_option_infos()[0]};
  info.views = detail::gradient_views(/*with_signs=*/true);
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader r(params, "guided-grad-cam");
    CamOptions o;
    o.layers = detail::split_layers(r.text("layer", ""));
    r.finish();
    return std::make_unique<GuidedGradCam>(o);
  };
  return info;
}

}  // namespace cnnvis
