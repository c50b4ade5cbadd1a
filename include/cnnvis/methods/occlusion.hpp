#pragma once
// Occlusion (Zeiler and Fergus 2014, "Visualizing and understanding convolutional networks",
// section 4.2), defined as Captum's Occlusion: a window of `window` x `window` pixels (all
// channels) slides with `stride`; at each of the ceil((H - window) / stride) + 1 positions per
// axis (the last one clipped at the border) the window is set to `baseline` (normalized space)
// and the target score drops by d = F(x) - F(x_occluded). A pixel's attribution is the mean of d
// over the windows that cover it (the same value in the three channels), [N, 3, H, W]. No
// gradients: occluded copies run under InferenceMode, `batch` images per forward pass.
#include "cnnvis/method.hpp"

namespace cnnvis {

struct OcclusionOptions {
  int64_t window = 16;
  int64_t stride = 8;
  double baseline = 0.0;
  int64_t batch = 32;
};

class Occlusion : public Method {
 public:
  explicit Occlusion(OcclusionOptions options = {});
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;

 private:
  OcclusionOptions options_;
};

// Options: window, stride, baseline, batch.
MethodInfo occlusion_method_info();

}  // namespace cnnvis
