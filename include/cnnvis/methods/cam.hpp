#pragma once
// The class activation map family on any addressable layer. One template (CamMethod) owns the
// pipeline: one forward pass with the layers tapped, the gradients of the target score with
// respect to the tapped activations only (when the variant needs them; parameters never get
// gradients), a per-variant map at each layer's resolution, the final ReLU, and for the
// picture a bilinear upsampling (half-pixel centres, align_corners = false) to the input and a
// per-image min-max scaling. A variant overrides only layer_map() (and fuse() for LayerCAM).
//
// Results: raw = the map at the layer's resolution after the final ReLU, before normalization
// and upsampling, [N, h, w]; with several layers, their fusion at the input's resolution
// [N, H, W]. Extra "upsampled": the upsampled, min-max normalized map [N, H, W] in [0, 1].
//
// Variants (A: activations [N,K,h,w], G = dy/dA):
//   grad-cam     (Selvaraju et al. 2017)  w_k = mean_ij G_k; map = sum_k w_k A_k. The classic
//                collection starts the sum at ones; cnnvis follows the paper (zeros).
//   grad-cam++   (Chattopadhay et al. 2018, eq. 19) a = G^2 / (2 G^2 + sum_ab A_ab G^3 + 1e-6), zero
//                where G = 0; w_k = sum_ij a_ij relu(G_ij).
//   xgrad-cam    (Fu et al. 2020) w_k = sum_ij A_ij G_ij / (sum_ij A_ij + 1e-7).
//   hires-cam    (Draelos and Carin 2020) map = sum_k G_k * A_k (element-wise).
//   layer-cam    (Jiang et al. 2021) map = sum_k relu(G_k) * A_k; several layers: each map
//                upsampled, scaled by tanh(2 M / max M) and fused by element-wise maximum.
//   eigen-cam    (Muhammad and Yeasin 2020) the projection of the centred activations
//                [hw, K] on their first principal component; its sign is chosen so that the
//                projection correlates positively with the channel-mean activation (an SVD's
//                sign is arbitrary; pytorch-grad-cam leaves it so). No gradients.
//   score-cam    (Wang et al. 2020) see score_cam.hpp.  ablation-cam: see ablation_cam.hpp.
// Several layers (all variants but LayerCAM): per-layer maps upsampled, min-max normalized and
// averaged (as pytorch-grad-cam).
#include <string>
#include <vector>

#include "cnnvis/image.hpp"
#include "cnnvis/method.hpp"

namespace cnnvis {

struct CamOptions {
  std::vector<std::string> layers;  // empty: the model's default_cam_layer()
};

class CamMethod : public Method {
 public:
  explicit CamMethod(CamOptions options);
  Attribution explain(Model& model, const at::Tensor& input, const Target& target) override;
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;

  // What a variant sees of one layer: its name, activation [N,K,h,w] and, if
  // needs_gradients(), the gradient of the target score with respect to it.
  struct Layer {
    std::string name;
    at::Tensor activation;
    at::Tensor gradient;
  };

 protected:
  virtual bool needs_gradients() const { return true; }
  // The map of one layer before the final ReLU, [N, h, w].
  virtual at::Tensor layer_map(Model& model, const at::Tensor& input, const Target& target,
                               const Layer& layer) = 0;
  // Fuses the layers' upsampled maps (after ReLU) [N, H, W] each into one [N, H, W]; the
  // default min-max normalizes each and averages them.
  virtual at::Tensor fuse(const std::vector<at::Tensor>& maps) const;

 private:
  CamOptions options_;
};

// Bilinear upsampling (align_corners = false) of maps [N, h, w] to [N, H, W].
at::Tensor upsample_maps(const at::Tensor& maps, int64_t height, int64_t width);
// Per-image min-max scaling of maps [N, ...] to [0, 1] (0 where an image's map is constant).
at::Tensor minmax_per_image(const at::Tensor& maps);

// Guided Grad-CAM (Selvaraju et al. 2017): guided backprop times the Grad-CAM map upsampled
// bilinearly to the input (not normalized), [N, 3, H, W].
class GuidedGradCam : public Method {
 public:
  explicit GuidedGradCam(CamOptions options);
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;

 private:
  CamOptions options_;
};

// Factories (by name: grad-cam, grad-cam++, xgrad-cam, hires-cam, layer-cam, eigen-cam).
std::unique_ptr<CamMethod> make_cam(const std::string& variant, CamOptions options);

MethodInfo grad_cam_method_info();
MethodInfo grad_cam_plus_plus_method_info();
MethodInfo xgrad_cam_method_info();
MethodInfo hires_cam_method_info();
MethodInfo layer_cam_method_info();
MethodInfo eigen_cam_method_info();
MethodInfo guided_grad_cam_method_info();

namespace detail {
// The CAM views (gray map, coloured heatmap, overlay) with a colormap and an overlay alpha;
// shared by every CAM-style method.
std::vector<View> cam_views(Colormap colormap, double alpha);
// Reads the options every CAM method has (layer, colormap, alpha) and the views they give.
std::vector<View> cam_views_for(const MethodParams& params);
}  // namespace detail

}  // namespace cnnvis
