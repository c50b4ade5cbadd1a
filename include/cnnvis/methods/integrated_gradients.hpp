#pragma once
// Integrated gradients (Sundararajan, Taly, Yan 2017, "Axiomatic attribution for deep
// networks", eq. 1 and 3): IG(x) = (x - x') * integral_0^1 dF(x' + a (x - x'))/dx da, with the
// integral by a quadrature rule over `steps` points of the straight path, the path points of all
// images evaluated in batches of at most `batch` images per forward/backward pass.
//
// Extras: "path_gradient" [N,3,H,W], the weighted mean gradient along the path (the classic
// collection's "integrated gradients without image multiplication"), and "delta" [N], the
// completeness gap sum(IG) - (F(x) - F(x')), which tends to 0 as the quadrature converges.
#include <array>
#include <string>

#include "cnnvis/method.hpp"

namespace cnnvis {

enum class Quadrature { kGaussLegendre, kRiemannLeft, kRiemannRight, kRiemannMiddle,
                        kRiemannTrapezoid };

// Points a in [0, 1] and weights of the rule with n points; the weights sum to 1.
// Gauss-Legendre: the Legendre nodes mapped to [0, 1] (Captum's default). Riemann left, right,
// middle: a = k/n, (k+1)/n, (k+1/2)/n with weights 1/n. Trapezoid: a = k/(n-1), weights
// 1/(n-1) halved at both ends (Captum uses 1/n there, so its weights sum to (n-1)/n; cnnvis
// uses the true trapezoid rule). Throws cnnvis::Error for n < 1 (n < 2 for the trapezoid).
void quadrature(Quadrature rule, int64_t n, std::vector<double>& points,
                std::vector<double>& weights);
Quadrature parse_quadrature(const std::string& name);  // "gauss-legendre", "riemann-left", ...

struct IntegratedGradientsOptions {
  int64_t steps = 50;
  Quadrature rule = Quadrature::kGaussLegendre;
  // "zeros" (0 in normalized space, the dataset's mean colour; the default), "black" (pixel
  // value 0), "blur" (the input blurred with a Gaussian of sigma `blur_sigma` pixels),
  // "uniform" (uniform noise in [0, 1] pixel space, seeded), or an image file's path (resized
  // to the input).
  std::string baseline = "zeros";
  at::Tensor baseline_tensor;  // C++ API: if defined, the baseline itself (broadcast to the input)
  double blur_sigma = 10.0;
  uint64_t seed = 0;
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // the input's normalization, for "black",
  std::array<double, 3> std{0.229, 0.224, 0.225};   // "uniform" and image baselines
  int64_t batch = 10;  // path points (images) per forward/backward pass; bounds memory
};

class IntegratedGradients : public Method {
 public:
  explicit IntegratedGradients(IntegratedGradientsOptions options = {});
  // The attribution alone (no completeness gap: that costs two more forward passes).
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;
  // The attribution plus extras "path_gradient" and "delta" (the completeness gap).
  Attribution explain(Model& model, const at::Tensor& input, const Target& target) override;
  // The baseline x' for `input` [N,3,H,W] as the options say.
  at::Tensor baseline(const at::Tensor& input) const;

 private:
  // The path-averaged gradient, sum_i w_i grad F(x' + a_i (x - x')), [N,3,H,W].
  at::Tensor path_gradient(Model& model, const at::Tensor& input, const at::Tensor& x0,
                           const Target& target) const;
  IntegratedGradientsOptions options_;
};

// Options: steps, rule, baseline, blur-sigma, seed, mean, std, batch.
MethodInfo integrated_gradients_method_info();

}  // namespace cnnvis
