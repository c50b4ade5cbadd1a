#pragma once
// Vanilla backprop (Simonyan et al. 2014, "Deep inside convolutional networks", eq. 1-2):
// g = dy_c / dx, the gradient of the target's pre-softmax score with respect to the normalized
// input. Views: the coloured gradient and the grayscale saliency of the classic collection.
#include "cnnvis/method.hpp"

namespace cnnvis {

// d target.score / d input, [N, 3, H, W]. Uses the model's current ReLU mode, so inside a
// ReluModeGuard(kGuided) this is guided backprop. Parameters get no gradient. On a CPU, a
// batch of several images runs as one pass or split over the intra-op threads (two images per
// thread and pass, if the model allows it: Model::concurrent_forward), whichever is measured
// faster on this machine for this model, shape and thread count (cnnvis/strategy.hpp).
at::Tensor input_gradient(Model& model, const at::Tensor& input, const Target& target);

class VanillaGradient : public Method {
 public:
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;
};

MethodInfo vanilla_method_info();

}  // namespace cnnvis
