#include "cnnvis/methods/score_cam.hpp"

#include <torch/torch.h>

#include "cnnvis/error.hpp"
#include "cnnvis/strategy.hpp"
#include "methods/cam_common.hpp"

namespace cnnvis {

ScoreCam::ScoreCam(ScoreCamOptions options) : CamMethod(options.cam), options_(options) {
  if (options_.batch < 1) throw usage_error("score-cam: batch must be >= 1");
  if (options_.weighting != "probability" && options_.weighting != "softmax-logit") {
    throw usage_error("score-cam: weighting must be probability or softmax-logit");
  }
}

Attribution ScoreCam::explain(Model& model, const at::Tensor& input, const Target& target) {
  auto out = CamMethod::explain(model, input, target);
  out.extras["channels_skipped"] = torch::tensor(skipped_, torch::kDouble);
  return out;
}

at::Tensor ScoreCam::layer_map(Model& model, const at::Tensor& input, const Target& target,
                               const Layer& layer) {
  torch::InferenceMode guard;
  const auto& a = layer.activation;
  const int64_t n = a.size(0), k = a.size(1), h = input.size(2), w = input.size(3);
  skipped_.assign(n, 0.0);
  std::vector<at::Tensor> maps;
  const bool pgc = options_.weighting == "softmax-logit";
  for (int64_t i = 0; i < n; ++i) {
    // The paper's masks: bilinear (align_corners = false), min-max per channel, constant
    // channels skipped. pytorch-grad-cam's: align_corners = true, (m - min) / (max - min + 1e-8),
    // every channel scored (its softmax couples the channels, so none can be skipped).
    at::Tensor up;
    if (pgc) {
      up = torch::nn::functional::interpolate(
               a[i].unsqueeze(0), torch::nn::functional::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{h, w})
                                      .mode(torch::kBilinear)
                                      .align_corners(true))[0];
    } else {
      up = upsample_maps(a[i], h, w);
    }
    const auto flat = up.reshape({k, -1});  // [K, HW]
    const auto lo = std::get<0>(flat.min(1, true));
    const auto range = std::get<0>(flat.max(1, true)) - lo;
    const auto kept = pgc ? torch::arange(k, torch::TensorOptions().dtype(torch::kLong).device(a.device()))
                          : (range.squeeze(1) > 0).nonzero().squeeze(1);  // channels with a mask
    const int64_t kk = kept.size(0);
    skipped_[i] = static_cast<double>(k - kk);
    if (kk == 0) {
      throw usage_error("score-cam: every channel of layer " + layer.name +
                        " is constant for image " + std::to_string(i) +
                        ", so no channel gives a mask; choose another --layer");
    }
    const auto masks = ((flat.index_select(0, kept) - lo.index_select(0, kept)) /
                        (range.index_select(0, kept) + (pgc ? 1e-8 : 0.0)))
                           .view({kk, 1, h, w});
    const auto t = target.select(i);
    const auto xi = input[i].detach().unsqueeze(0);
    std::vector<at::Tensor> scores;
    // The masked images of every pass are written into one buffer (no allocation per pass);
    // masks per pass: at most `batch`, measured (cnnvis/strategy.hpp).
    const int64_t b_max = std::min(options_.batch, kk);
    auto buffer = torch::empty({b_max * xi.size(1) * h * w}, xi.options());
    const auto pass = [&](int64_t first, int64_t b) {
      auto masked = buffer.narrow(0, 0, b * xi.size(1) * h * w).view({b, xi.size(1), h, w});
      torch::mul_out(masked, xi, masks.slice(0, first, first + b));  // [b, 3, H, W]
      const auto result = model.forward(masked, t.taps());
      auto s = t.score(result);
      if (options_.weighting == "probability") {
        s = torch::exp(s - torch::logsumexp(result.output, 1));
      }
      scores.push_back(s);
    };
    detail::run_in_passes(detail::pass_key(model, "forward", xi), kk, options_.batch,
                          detail::pass_measured(xi), pass);
    auto weights_kept = torch::cat(scores);
    if (options_.weighting == "softmax-logit") weights_kept = torch::softmax(weights_kept, 0);
    auto weights = torch::zeros({k}, a.options());
    weights.index_copy_(0, kept, weights_kept.to(a.scalar_type()));
    maps.push_back((weights.view({k, 1, 1}) * a[i]).sum(0));
  }
  return torch::stack(maps);
}

MethodInfo score_cam_method_info() {
  MethodInfo info;
  info.name = "score-cam";
  info.summary = "Score-CAM: activations weighted by the class probability of the input masked "
                 "by each upsampled channel (no gradients)";
  info.paper = "Wang et al. 2020, Score-CAM: score-weighted visual explanations for CNNs";
  info.options = detail::cam_option_infos();
  info.options.push_back({"weighting", "probability",
                          "probability (the paper's) or softmax-logit (pytorch-grad-cam's: a "
                          "softmax over channels of the target logit)"});
  info.options.push_back({"batch", "32",
                          "masked images per forward pass at most (bounds memory); --pass-size "
                          "auto measures passes of batch, batch/2 and batch/4 on the CPU"});
  info.views = detail::cam_views(Colormap::kJet, 0.5);
  info.views_for = detail::cam_views_for;
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader r(params, "score-cam");
    ScoreCamOptions o;
    o.cam = detail::read_cam_options(r).options;
    o.weighting = r.choice("weighting", o.weighting, {"probability", "softmax-logit"});
    o.batch = r.integer("batch", o.batch, 1);
    r.finish();
    return std::make_unique<ScoreCam>(o);
  };
  return info;
}

}  // namespace cnnvis
