// ROAD, confidence, complexity, robustness and random-logit metrics; see
// include/cnnvis/evaluate.hpp. The imputation's sparse system is solved with Eigen.
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <Eigen/SparseCholesky>
#include <Eigen/SparseCore>
#include <algorithm>
#include <cmath>
#include <vector>

#include "cnnvis/error.hpp"
#include "cnnvis/evaluate.hpp"

namespace cnnvis::eval {
namespace {

at::Generator generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }


void check_input_and_map(const at::Tensor& input, const at::Tensor& map, const char* what) {
  if (input.dim() != 4 || input.size(0) != 1) {
    throw usage_error(std::string(what) + ": expected one input [1, 3, H, W], got " +
                      c10::str(input.sizes()));
  }
  if (map.dim() != 2 || map.size(0) != input.size(2) || map.size(1) != input.size(3)) {
    throw usage_error(std::string(what) + ": the map " + c10::str(map.sizes()) +
                      " does not match the input's " + std::to_string(input.size(2)) + "x" +
                      std::to_string(input.size(3)));
  }
}

// The target's probability for a batch of images, `batch` per forward pass.
std::vector<double> probabilities(Model& model, const at::Tensor& images, int64_t target,
                                  const at::Tensor& region, int64_t batch) {
  torch::InferenceMode guard;
  std::vector<double> out;
  for (int64_t first = 0; first < images.size(0); first += batch) {
    const int64_t last = std::min(images.size(0), first + batch);
    const auto p = class_probability(model.forward(images.slice(0, first, last)).output, target,
                                     region)
                       .to(torch::kCPU, torch::kDouble);
    for (int64_t i = 0; i < last - first; ++i) out.push_back(p[i].item<double>());
  }
  return out;
}

// |map| / max|map| in float64 (Quantus's abs and normalise_by_max; an all-zero map stays).
at::Tensor abs_normalized(const at::Tensor& map) {
  auto a = map.detach().to(torch::kCPU, torch::kDouble).abs().reshape({-1});
  const double top = a.max().item<double>();
  return top > 0 ? a / top : a;
}

}  // namespace

at::Tensor noisy_linear_imputation(const at::Tensor& image, const at::Tensor& removed,
                                   double noise, uint64_t seed) {
  if (image.dim() != 3 || removed.dim() != 2 || removed.size(0) != image.size(1) ||
      removed.size(1) != image.size(2)) {
    throw usage_error("noisy linear imputation: expected an image [C, H, W] and a mask [H, W] of "
                      "its size, got " + c10::str(image.sizes()) + " and " +
                      c10::str(removed.sizes()));
  }
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2), n = h * w;
  const auto img = image.detach().to(torch::kCPU, torch::kDouble).reshape({c, n}).contiguous();
  const auto gone = removed.detach().to(torch::kCPU, torch::kFloat).gt(0.5).reshape({n}).contiguous();
  const bool* g = gone.data_ptr<bool>();
  std::vector<int64_t> var(static_cast<size_t>(n), -1);
  std::vector<int64_t> pixels;
  for (int64_t p = 0; p < n; ++p) {
    if (g[p]) {
      var[p] = static_cast<int64_t>(pixels.size());
      pixels.push_back(p);
    }
  }
  auto out = img.clone();
  if (pixels.empty()) return out.reshape({c, h, w}).to(image.device(), torch::kFloat);
  if (static_cast<int64_t>(pixels.size()) == n) {
    throw usage_error("noisy linear imputation: the mask removes every pixel; nothing is left to "
                      "impute from (remove a fraction below 1)");
  }
  // Each removed pixel: (sum of its in-image neighbours' weights) x_p - sum over removed
  // neighbours w x_q = sum over kept neighbours w v_q. Symmetric and positive definite (every
  // group of removed pixels borders a kept one), so a sparse Cholesky factorization solves it.
  struct Offset {
    int dy, dx;
    double weight;
  };
  static const Offset kOffsets[] = {{1, 1, 1.0 / 12}, {0, 1, 1.0 / 6},  {-1, 1, 1.0 / 12},
                                    {1, -1, 1.0 / 12}, {0, -1, 1.0 / 6}, {-1, -1, 1.0 / 12},
                                    {1, 0, 1.0 / 6},  {-1, 0, 1.0 / 6}};
  const int64_t m = static_cast<int64_t>(pixels.size());
  const double* v = img.data_ptr<double>();
  std::vector<Eigen::Triplet<double>> entries;
  entries.reserve(static_cast<size_t>(m) * 9);
  Eigen::MatrixXd rhs = Eigen::MatrixXd::Zero(m, c);
  for (int64_t i = 0; i < m; ++i) {
    const int64_t p = pixels[i], y = p / w, x = p % w;
    double sum = 0;
    for (const auto& o : kOffsets) {
      const int64_t ny = y + o.dy, nx = x + o.dx;
      if (ny < 0 || nx < 0 || ny >= h || nx >= w) continue;
      sum += o.weight;
      const int64_t q = ny * w + nx;
      if (g[q]) {
        entries.emplace_back(i, var[q], -o.weight);
      } else {
        for (int64_t ch = 0; ch < c; ++ch) rhs(i, ch) += o.weight * v[ch * n + q];
      }
    }
    entries.emplace_back(i, i, sum);
  }
  Eigen::SparseMatrix<double> a(m, m);
  a.setFromTriplets(entries.begin(), entries.end());
  Eigen::SimplicialLDLT<Eigen::SparseMatrix<double>> solver(a);
  if (solver.info() != Eigen::Success) {
    throw Error("noisy linear imputation: the system could not be factorized");
  }
  const Eigen::MatrixXd solution = solver.solve(rhs);
  const auto noise_values =
      noise > 0 ? torch::randn({c, m}, generator(seed), torch::kDouble) * noise
                : torch::zeros({c, m}, torch::kDouble);
  const double* z = noise_values.data_ptr<double>();
  double* o = out.data_ptr<double>();
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t ch = 0; ch < c; ++ch) o[ch * n + pixels[i]] = solution(i, ch) + z[ch * m + i];
  }
  return out.reshape({c, h, w}).to(image.device(), torch::kFloat);
}

RoadCurves road(Model& model, const at::Tensor& input, int64_t target, const at::Tensor& map,
                const RoadOptions& o, const at::Tensor& region) {
  check_input_and_map(input, map, "ROAD");
  if (o.fractions.empty()) throw usage_error("ROAD: give at least one removal fraction");
  for (double f : o.fractions) {
    if (!(f > 0 && f < 1)) {
      throw usage_error("ROAD: removal fractions must lie in (0, 1), got " + std::to_string(f));
    }
  }
  if (o.batch < 1 || o.noise < 0) throw usage_error("ROAD: batch >= 1 and noise >= 0 expected");
  const int64_t h = input.size(2), w = input.size(3), n = h * w;
  const auto order = std::get<1>(map.detach().reshape({n}).to(torch::kCPU, torch::kFloat)
                                     .sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto rank = torch::empty({n}, torch::kLong);
  rank.index_put_({order}, torch::arange(n, torch::kLong));
  rank = rank.reshape({h, w});
  const auto x = input[0].detach().to(torch::kCPU, torch::kFloat);
  std::vector<at::Tensor> images;  // MoRF at each fraction, then LeRF at each
  for (int pass = 0; pass < 2; ++pass) {
    for (size_t i = 0; i < o.fractions.size(); ++i) {
      const int64_t k = std::llround(o.fractions[i] * static_cast<double>(n));
      const auto removed = pass == 0 ? rank.lt(k) : rank.ge(n - k);
      images.push_back(noisy_linear_imputation(x, removed, o.noise, o.seed + i));
    }
  }
  const auto p = probabilities(model, torch::stack(images).to(input.device()), target, region,
                               o.batch);
  const size_t k = o.fractions.size();
  RoadCurves r;
  r.morf = torch::tensor(std::vector<double>(p.begin(), p.begin() + k), torch::kDouble);
  r.lerf = torch::tensor(std::vector<double>(p.begin() + k, p.end()), torch::kDouble);
  r.morf_auc = r.morf.mean().item<double>();
  r.lerf_auc = r.lerf.mean().item<double>();
  return r;
}

ConfidenceChange confidence_change(Model& model, const at::Tensor& input, int64_t target,
                                   const at::Tensor& map, const at::Tensor& region) {
  check_input_and_map(input, map, "confidence");
  auto m = map.detach().to(torch::kCPU, torch::kDouble);
  const double low = m.min().item<double>(), high = m.max().item<double>();
  m = high > low ? (m - low) / (high - low) : torch::zeros_like(m);
  const auto masked = input * m.to(input.device(), input.scalar_type()).view({1, 1, m.size(0), m.size(1)});
  const auto p = probabilities(model, torch::cat({input, masked}), target, region, 2);
  ConfidenceChange c;
  c.drop = p[0] > 0 ? std::max(0.0, p[0] - p[1]) / p[0] : 0.0;
  c.increase = p[1] > p[0];
  return c;
}

double sparseness(const at::Tensor& map) {
  auto a = std::get<0>((abs_normalized(map) + 1e-7).sort());
  const int64_t n = a.numel();
  const auto k = torch::arange(1, n + 1, torch::kDouble);
  return ((2 * k - n - 1) * a).sum().item<double>() / (static_cast<double>(n) * a.sum().item<double>());
}

double complexity(const at::Tensor& map) {
  auto a = abs_normalized(map);
  const double total = a.sum().item<double>();
  if (total == 0) return 0;  // Quantus would divide by zero
  a = a / total;
  return -(a * torch::log(a + 1e-12)).sum().item<double>();
}

double max_sensitivity(Model& model, const MapFn& maps, const at::Tensor& input,
                       const Target& target, const at::Tensor& map, const SensitivityOptions& o) {
  check_input_and_map(input, map, "max-sensitivity");
  if (o.samples < 1 || o.radius < 0) throw usage_error("max-sensitivity: samples >= 1, radius >= 0");
  const auto delta = (torch::rand({o.samples, input.size(1), input.size(2), input.size(3)},
                                  generator(o.seed), torch::kFloat) * 2 - 1) * o.radius;
  const auto perturbed = input.expand({o.samples, -1, -1, -1}) + delta.to(input.device());
  const auto m = maps(model, perturbed, target.repeat_interleave(o.samples))
                     .to(torch::kCPU, torch::kDouble);
  const auto base = map.detach().to(torch::kCPU, torch::kDouble);
  double norm = base.norm().item<double>();
  if (norm == 0) norm = 1;
  return ((m - base.unsqueeze(0)).reshape({o.samples, -1}).norm(2, 1) / norm).max().item<double>();
}

double infidelity(Model& model, const at::Tensor& input, int64_t target, const at::Tensor& map,
                  const InfidelityOptions& o, const at::Tensor& region) {
  check_input_and_map(input, map, "infidelity");
  if (o.samples < 1 || o.sigma < 0) throw usage_error("infidelity: samples >= 1, sigma >= 0");
  const auto noise = torch::randn({o.samples, input.size(1), input.size(2), input.size(3)},
                                  generator(o.seed), torch::kFloat) * o.sigma;
  const auto perturbed = input.expand({o.samples, -1, -1, -1}) - noise.to(input.device());
  const auto p = probabilities(model, torch::cat({input, perturbed}), target, region, 64);
  const auto m = map.detach().to(torch::kCPU, torch::kDouble);
  const auto a = (noise.to(torch::kDouble) * m.view({1, 1, m.size(0), m.size(1)}))
                     .reshape({o.samples, -1})
                     .sum(1);
  double aa = 0, ab = 0, bb = 0;
  for (int64_t k = 0; k < o.samples; ++k) {
    const double ak = a[k].item<double>(), bk = p[0] - p[static_cast<size_t>(k) + 1];
    aa += ak * ak;
    ab += ak * bk;
    bb += bk * bk;
  }
  const double beta = ab / (aa == 0 ? 1.0 : aa);
  return (beta * beta * aa - 2 * beta * ab + bb) / static_cast<double>(o.samples);
}

double ssim(const at::Tensor& a_in, const at::Tensor& b_in) {
  if (a_in.dim() != 2 || a_in.sizes() != b_in.sizes() || a_in.size(0) < 7 || a_in.size(1) < 7) {
    throw usage_error("ssim: expected two maps [H, W] of one size, at least 7 x 7, got " +
                      c10::str(a_in.sizes()) + " and " + c10::str(b_in.sizes()));
  }
  const auto scale = [](const at::Tensor& t) {
    auto d = t.detach().to(torch::kCPU, torch::kDouble);
    const double top = d.abs().max().item<double>();
    return top > 0 ? d / top : d;
  };
  const auto a = scale(a_in), b = scale(b_in);
  const double range = std::max(a.max().item<double>(), b.max().item<double>()) -
                       std::min(a.min().item<double>(), b.min().item<double>());
  if (range == 0) return 1;  // two equal constants
  const auto mean7 = [](const at::Tensor& t) {
    return torch::avg_pool2d(t.unsqueeze(0).unsqueeze(0), 7, 1)[0][0];  // the valid windows
  };
  const double np = 49, cov = np / (np - 1);
  const auto ux = mean7(a), uy = mean7(b);
  const auto vx = cov * (mean7(a * a) - ux * ux);
  const auto vy = cov * (mean7(b * b) - uy * uy);
  const auto vxy = cov * (mean7(a * b) - ux * uy);
  const double c1 = std::pow(0.01 * range, 2), c2 = std::pow(0.03 * range, 2);
  const auto s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2));
  return s.mean().item<double>();
}

}  // namespace cnnvis::eval
