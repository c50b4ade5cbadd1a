#include "cnnvis/methods/ablation_cam.hpp"

#include <torch/torch.h>

#include "cnnvis/error.hpp"
#include "cnnvis/strategy.hpp"
#include "methods/cam_common.hpp"

namespace cnnvis {

AblationCam::AblationCam(AblationCamOptions options)
    : CamMethod(options.cam), options_(options) {
  if (options_.batch < 1) throw usage_error("ablation-cam: batch must be >= 1");
}

at::Tensor AblationCam::layer_map(Model& model, const at::Tensor&, const Target& target,
                                  const Layer& layer) {
  if (!target.taps().empty()) {
    throw usage_error("ablation-cam: the target (" + target.description() +
                      ") reads a layer, but ablated activations only run the layers after " +
                      layer.name + "; explain a class");
  }
  torch::InferenceMode guard;
  const auto& a = layer.activation;
  const int64_t n = a.size(0), k = a.size(1);
  std::vector<at::Tensor> maps;
  for (int64_t i = 0; i < n; ++i) {
    const auto t = target.select(i);
    const auto ai = a[i].unsqueeze(0);  // [1, K, h, w]
    const double y = t.score({model.forward_from(layer.name, ai), {}})[0].item<double>();
    std::vector<at::Tensor> scores;
    // Ablated copies per pass: at most `batch`, measured (cnnvis/strategy.hpp).
    const auto pass = [&](int64_t first, int64_t b) {
      auto ablated = ai.repeat({b, 1, 1, 1});
      for (int64_t j = 0; j < b; ++j) ablated[j][first + j].zero_();
      scores.push_back(t.score({model.forward_from(layer.name, ablated), {}}));
    };
    detail::run_in_passes(detail::pass_key(model, "forward from " + layer.name, ai), k,
                          options_.batch, detail::pass_measured(ai), pass);
    const auto drops = (y - torch::cat(scores)) / y;  // [K]
    maps.push_back((drops.to(a.scalar_type()).view({k, 1, 1}) * a[i]).sum(0));
  }
  return torch::stack(maps);
}

MethodInfo ablation_cam_method_info() {
  MethodInfo info;
  info.name = "ablation-cam";
  info.summary = "Ablation-CAM: activations weighted by the relative score drop when each "
                 "channel is zeroed (no gradients)";
  info.paper = "Desai, Ramaswamy 2020, Ablation-CAM";
  info.options = detail::cam_option_infos();
  info.options.push_back({"batch", "32",
                          "ablated activations per forward pass at most (bounds memory); "
                          "--pass-size auto measures passes of batch, batch/2 and batch/4"});
  info.views = detail::cam_views(Colormap::kJet, 0.5);
  info.views_for = detail::cam_views_for;
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader r(params, "ablation-cam");
    AblationCamOptions o;
    o.cam = detail::read_cam_options(r).options;
    o.batch = r.integer("batch", o.batch, 1);
    r.finish();
    return std::make_unique<AblationCam>(o);
  };
  return info;
}

}  // namespace cnnvis
