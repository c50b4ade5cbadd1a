#include "cnnvis/methods/integrated_gradients.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/methods/vanilla.hpp"
#include "methods/blur.hpp"
#include "methods/common.hpp"

namespace cnnvis {
namespace {

// Gauss-Legendre nodes and weights on [-1, 1] by Newton's method on P_n (Numerical Recipes'
// gauleg); accurate to ~1e-15.
void gauss_legendre(int64_t n, std::vector<double>& x, std::vector<double>& w) {
  x.assign(n, 0.0);
  w.assign(n, 0.0);
  const int64_t m = (n + 1) / 2;
  for (int64_t i = 0; i < m; ++i) {
    double z = std::cos(M_PI * (static_cast<double>(i) + 0.75) / (static_cast<double>(n) + 0.5));
    double pp = 0;
    for (int iter = 0; iter < 100; ++iter) {
      double p1 = 1.0, p2 = 0.0;
      for (int64_t j = 0; j < n; ++j) {
        const double p3 = p2;
        p2 = p1;
        p1 = ((2.0 * j + 1.0) * z * p2 - j * p3) / (j + 1.0);
      }
      pp = n * (z * p1 - p2) / (z * z - 1.0);
      const double z1 = z;
      z = z1 - p1 / pp;
      if (std::abs(z - z1) < 1e-15) break;
    }
    x[i] = -z;
    x[n - 1 - i] = z;
    w[i] = w[n - 1 - i] = 2.0 / ((1.0 - z * z) * pp * pp);
  }
}

}  // namespace

void quadrature(Quadrature rule, int64_t n, std::vector<double>& points,
                std::vector<double>& weights) {
  if (n < 1) throw usage_error("integrated gradients: steps must be >= 1");
  points.assign(n, 0.0);
  weights.assign(n, 1.0 / static_cast<double>(n));
  const double dn = static_cast<double>(n);
  switch (rule) {
    case Quadrature::kGaussLegendre: {
      std::vector<double> x, w;
      gauss_legendre(n, x, w);
      for (int64_t k = 0; k < n; ++k) {
        points[k] = 0.5 * (x[k] + 1.0);
        weights[k] = 0.5 * w[k];
      }
      break;
    }
    case Quadrature::kRiemannLeft:
      for (int64_t k = 0; k < n; ++k) points[k] = k / dn;
      break;
    case Quadrature::kRiemannRight:
      for (int64_t k = 0; k < n; ++k) points[k] = (k + 1) / dn;
      break;
    case Quadrature::kRiemannMiddle:
      for (int64_t k = 0; k < n; ++k) points[k] = (k + 0.5) / dn;
      break;
    case Quadrature::kRiemannTrapezoid:
      if (n < 2) throw usage_error("integrated gradients: the trapezoid rule needs steps >= 2");
      for (int64_t k = 0; k < n; ++k) {
        points[k] = k / (dn - 1);
        weights[k] = (k == 0 || k == n - 1 ? 0.5 : 1.0) / (dn - 1);
      }
      break;
  }
}

Quadrature parse_quadrature(const std::string& name) {
  if (name == "gauss-legendre") return Quadrature::kGaussLegendre;
  if (name == "riemann-left") return Quadrature::kRiemannLeft;
  if (name == "riemann-right") return Quadrature::kRiemannRight;
  if (name == "riemann-middle") return Quadrature::kRiemannMiddle;
  if (name == "riemann-trapezoid") return Quadrature::kRiemannTrapezoid;
  throw usage_error("unknown quadrature '" + name + "'; expected gauss-legendre, riemann-left, "
                    "riemann-right, riemann-middle or riemann-trapezoid");
}

IntegratedGradients::IntegratedGradients(IntegratedGradientsOptions options)
    : options_(std::move(options)) {
  if (options_.steps < 1) throw usage_error("integrated gradients: steps must be >= 1");
  if (options_.batch < 1) throw usage_error("integrated gradients: batch must be >= 1");
  if (!(options_.blur_sigma > 0)) throw usage_error("integrated gradients: blur-sigma must be > 0");
}

at::Tensor IntegratedGradients::baseline(const at::Tensor& input) const {
  torch::NoGradGuard no_grad;
  const auto& b = options_.baseline;
  const auto opts = input.options();
  if (options_.baseline_tensor.defined()) {
    return options_.baseline_tensor.to(opts).expand_as(input).contiguous();
  }
  auto mean = torch::tensor(std::vector<double>(options_.mean.begin(), options_.mean.end()), opts)
                  .view({1, 3, 1, 1});
  auto stdev = torch::tensor(std::vector<double>(options_.std.begin(), options_.std.end()), opts)
                   .view({1, 3, 1, 1});
  if (b == "zeros") return torch::zeros_like(input);
  if (b == "black") return ((torch::zeros_like(input) - mean) / stdev);
  if (b == "blur") return detail::gaussian_blur(input.detach(), options_.blur_sigma);
  if (b == "uniform") {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed);
    const auto noise = torch::rand(input.sizes(), gen, torch::kFloat).to(opts);
    return (noise - mean) / stdev;
  }
  if (!std::filesystem::exists(b)) {
    throw usage_error("integrated-gradients option baseline=" + b +
                      ": expected zeros, black, blur, uniform or an image file (no such file)");
  }
  auto rgb = load_image(b).unsqueeze(0).to(opts);
  rgb = torch::nn::functional::interpolate(
      rgb, torch::nn::functional::InterpolateFuncOptions()
               .size(std::vector<int64_t>{input.size(2), input.size(3)})
               .mode(torch::kBilinear)
               .align_corners(false)
               .antialias(true));
  return ((rgb - mean) / stdev).expand_as(input).contiguous();
}

at::Tensor IntegratedGradients::path_gradient(Model& model, const at::Tensor& input,
                                              const at::Tensor& x0, const Target& target) const {
  std::vector<double> points, weights;
  quadrature(options_.rule, options_.steps, points, weights);
  const int64_t n = input.size(0);
  const auto diff = input - x0;
  auto path = torch::zeros_like(input);
  // Chunks of k path points for all n images: rows image-major (repeat_interleave order).
  const int64_t k_max = std::max<int64_t>(1, options_.batch / n);
  for (int64_t first = 0; first < options_.steps; first += k_max) {
    const int64_t k = std::min(k_max, options_.steps - first);
    const auto alphas = torch::tensor(std::vector<double>(points.begin() + first,
                                                          points.begin() + first + k),
                                      input.options())
                            .view({1, k, 1, 1, 1});
    const auto w = torch::tensor(std::vector<double>(weights.begin() + first,
                                                     weights.begin() + first + k),
                                 input.options())
                       .view({1, k, 1, 1, 1});
    const auto xs = (x0.unsqueeze(1) + alphas * diff.unsqueeze(1))
                        .reshape({n * k, input.size(1), input.size(2), input.size(3)});
    const auto g = input_gradient(model, xs, target.repeat_interleave(k));
    path += (g.view({n, k, input.size(1), input.size(2), input.size(3)}) * w).sum(1);
  }
  return path;
}

Attribution IntegratedGradients::explain(Model& model, const at::Tensor& input_in,
                                         const Target& target) {
  const auto input = input_in.detach();
  const auto x0 = baseline(input);
  const auto path = path_gradient(model, input, x0, target);
  Attribution out;
  out.raw = (input - x0) * path;
  out.extras["path_gradient"] = path;
  // The completeness gap needs F(x) - F(x'): one forward pass of both.
  at::Tensor fx, fx0;
  {
    torch::InferenceMode guard;
    // Rows x_0, x'_0, x_1, x'_1, ...: the order of repeat_interleave(2).
    const auto both = torch::stack({input, x0}, 1).flatten(0, 1);
    const auto scores =
        target.repeat_interleave(2).score(model.forward(both, target.taps())).view({-1, 2});
    fx = scores.select(1, 0);
    fx0 = scores.select(1, 1);
  }
  out.extras["delta"] = out.raw.sum({1, 2, 3}) - (fx - fx0);
  return out;
}

at::Tensor IntegratedGradients::attribute(Model& model, const at::Tensor& input_in,
                                          const Target& target) {
  const auto input = input_in.detach();
  const auto x0 = baseline(input);
  return (input - x0) * path_gradient(model, input, x0, target);
}

MethodInfo integrated_gradients_method_info() {
  MethodInfo info;
  info.name = "integrated-gradients";
  info.summary = "integrated gradients: (x - x') times the gradient integrated along the "
                 "straight path from a baseline x'";
  info.paper = "Sundararajan, Taly, Yan 2017, Axiomatic attribution for deep networks";
  info.options = {
      {"steps", "50", "quadrature points along the path"},
      {"rule", "gauss-legendre",
       "gauss-legendre, riemann-left, riemann-right, riemann-middle or riemann-trapezoid"},
      {"baseline", "zeros",
       "zeros (the mean colour), black, blur, uniform (seeded noise) or an image file"},
      {"blur-sigma", "10", "Gaussian sigma in pixels of the blur baseline"},
      {"seed", "0", "seed of the uniform baseline"},
      {"mean", "0.485,0.456,0.406", "the input's normalization mean (black/uniform/image)"},
      {"std", "0.229,0.224,0.225", "the input's normalization std (black/uniform/image)"},
      {"batch", "10",
       "path points per forward/backward pass (bounds memory); on a CPU split over the "
       "threads, two points per thread and pass"},
  };
  info.views = detail::gradient_views(/*with_signs=*/false);
  auto path_views = detail::gradient_views(false, "path_gradient", "path-");
  for (auto& v : path_views) {
    v.description = "path-averaged (no image multiplication) " + v.description;
    info.views.push_back(v);
  }
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader r(params, "integrated-gradients");
    IntegratedGradientsOptions o;
    o.steps = r.integer("steps", o.steps, 1);
    o.rule = parse_quadrature(r.choice("rule", "gauss-legendre",
                                       {"gauss-legendre", "riemann-left", "riemann-right",
                                        "riemann-middle", "riemann-trapezoid"}));
    o.baseline = r.text("baseline", o.baseline);
    o.blur_sigma = r.real("blur-sigma", o.blur_sigma, 1e-6);
    o.seed = static_cast<uint64_t>(r.integer("seed", 0, 0));
    o.mean = r.triple("mean", o.mean);
    o.std = r.triple("std", o.std);
    o.batch = r.integer("batch", o.batch, 1);
    r.finish();
    if (o.rule == Quadrature::kRiemannTrapezoid && o.steps < 2) {
      throw usage_error("integrated-gradients option steps=1: the riemann-trapezoid rule needs "
                        "steps >= 2");
    }
    return std::make_unique<IntegratedGradients>(o);
  };
  return info;
}

}  // namespace cnnvis
