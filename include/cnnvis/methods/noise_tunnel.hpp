#pragma once
// NoiseTunnel: SmoothGrad (Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise"),
// SmoothGrad-squared and VarGrad (Adebayo et al. 2018) around any registered method: the base
// method's attribution averaged over `samples` noisy copies x + N(0, sigma^2) of each image,
// with sigma = noise_level * (max(x) - min(x)) per image, as the paper defines it. (The classic
// collection inverts this, sigma = level / (max - min), and passes sigma^2 as the standard
// deviation; Captum's stdevs are absolute.) Noise: one CPU generator seeded with `seed` draws
// randn([N, samples, 3, H, W]) in float32 for the batch, so results do not depend on the device
// or the batch size; noisy copies run `batch` images per pass of the base method.
#include <memory>
#include <string>

#include "cnnvis/method.hpp"

namespace cnnvis {

enum class NoiseTunnelType { kSmoothGrad, kSmoothGradSquared, kVarGrad };

struct NoiseTunnelOptions {
  NoiseTunnelType type = NoiseTunnelType::kSmoothGrad;
  int64_t samples = 50;
  double noise_level = 0.15;
  uint64_t seed = 0;
  int64_t batch = 10;  // noisy images per call of the base method
};

class NoiseTunnel : public Method {
 public:
  NoiseTunnel(std::unique_ptr<Method> base, std::string base_name, NoiseTunnelOptions options);
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;

 private:
  std::unique_ptr<Method> base_;
  std::string base_name_;
  NoiseTunnelOptions options_;
};

// Registered as "smoothgrad"; options: base, type, samples, noise-level, seed, batch.
MethodInfo noise_tunnel_method_info();

}  // namespace cnnvis
