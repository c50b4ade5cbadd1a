#pragma once
// Ablation-CAM (Desai and Ramaswamy 2020, "Ablation-CAM: visual explanations for deep
// convolutional network via gradient-free localization", eq. 3): the weight of channel k is the
// relative drop of the target score when the channel is set to zero, w_k = (y - y_k) / y;
// map = ReLU(sum_k w_k A_k). The ablated activations run only the layers after the tap
// (Model::forward_from), in batches of `batch`, under InferenceMode, so the layer must be
// resumable (see `cnnvis layers`) and the target a class.
#include "cnnvis/methods/cam.hpp"

namespace cnnvis {

struct AblationCamOptions {
  CamOptions cam;
  int64_t batch = 32;
};

class AblationCam : public CamMethod {
 public:
  explicit AblationCam(AblationCamOptions options);

 protected:
  bool needs_gradients() const override { return false; }
  at::Tensor layer_map(Model& model, const at::Tensor& input, const Target& target,
                       const Layer& layer) override;

 private:
  AblationCamOptions options_;
};

// Options: layer, batch, colormap, alpha.
MethodInfo ablation_cam_method_info();

}  // namespace cnnvis
