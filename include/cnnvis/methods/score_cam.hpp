#pragma once
// Score-CAM (Wang et al. 2020, "Score-CAM: score-weighted visual explanations for convolutional
// neural networks", eq. 5-7): each channel k of the layer, upsampled bilinearly to the input
// and min-max normalized over the image, masks the input (x * M_k); its weight is the target's
// class probability on the masked input (the official code and the classic collection), or
// with weighting=softmax-logit pytorch-grad-cam's variant exactly: a softmax over channels of
// the target logit, masks upsampled with align_corners = true and normalized with +1e-8, and
// no channel skipped (the softmax couples the channels). Map = ReLU(sum_k w_k A_k). Masked inputs run under InferenceMode in batches of
// `batch`. With the paper's weighting, channels whose activation is constant over the image
// (dead ReLU channels) have no mask and are skipped (weight 0, as the classic collection); the
// extra "channels_skipped" [N] counts them.
#include "cnnvis/methods/cam.hpp"

namespace cnnvis {

struct ScoreCamOptions {
  CamOptions cam;
  std::string weighting = "probability";  // or "softmax-logit"
  int64_t batch = 32;
};

class ScoreCam : public CamMethod {
 public:
  explicit ScoreCam(ScoreCamOptions options);
  Attribution explain(Model& model, const at::Tensor& input, const Target& target) override;

 protected:
  bool needs_gradients() const override { return false; }
  at::Tensor layer_map(Model& model, const at::Tensor& input, const Target& target,
                       const Layer& layer) override;

 private:
  ScoreCamOptions options_;
  std::vector<double> skipped_;  // per image, of the last call
};

// Options: layer, weighting, batch, colormap, alpha.
MethodInfo score_cam_method_info();

}  // namespace cnnvis
