#include "cnnvis/methods/noise_tunnel.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include "cnnvis/error.hpp"
#include "methods/common.hpp"

namespace cnnvis {

NoiseTunnel::NoiseTunnel(std::unique_ptr<Method> base, std::string base_name,
                         NoiseTunnelOptions options)
    : base_(std::move(base)), base_name_(std::move(base_name)), options_(options) {
  if (options_.samples < 1) throw usage_error("smoothgrad: samples must be >= 1");
  if (!(options_.noise_level >= 0)) throw usage_error("smoothgrad: noise-level must be >= 0");
  if (options_.batch < 1) throw usage_error("smoothgrad: batch must be >= 1");
}

at::Tensor NoiseTunnel::attribute(Model& model, const at::Tensor& input_in,
                                  const Target& target) {
  const auto input = input_in.detach();
  const int64_t n = input.size(0), s = options_.samples;
  std::vector<int64_t> shape = {n, s};
  for (int64_t d = 1; d < input.dim(); ++d) shape.push_back(input.size(d));
  auto gen = at::make_generator<at::CPUGeneratorImpl>(options_.seed);
  const auto noise = torch::randn(shape, gen, torch::kFloat).to(input.options());
  const auto flat = input.reshape({n, -1});
  auto sigma = (flat.amax(1) - flat.amin(1)) * options_.noise_level;
  std::vector<int64_t> sigma_shape(input.dim() + 1, 1);
  sigma_shape[0] = n;
  sigma = sigma.view(sigma_shape);

  at::Tensor sum, sum_sq;
  const int64_t k_max = std::max<int64_t>(1, options_.batch / n);
  for (int64_t first = 0; first < s; first += k_max) {
    const int64_t k = std::min(k_max, s - first);
    std::vector<int64_t> rows = {n * k};
    for (int64_t d = 1; d < input.dim(); ++d) rows.push_back(input.size(d));
    const auto noisy = (input.unsqueeze(1) + sigma * noise.slice(1, first, first + k)).reshape(rows);
    const auto raw = base_->attribute(model, noisy, target.repeat_interleave(k)).detach();
    if (raw.size(0) != n * k) {
      throw Error("smoothgrad: base method " + base_name_ + " returned " +
                  std::to_string(raw.size(0)) + " results for " + std::to_string(n * k) +
                  " images");
    }
    std::vector<int64_t> grouped = {n, k};
    for (int64_t d = 1; d < raw.dim(); ++d) grouped.push_back(raw.size(d));
    const auto g = raw.reshape(grouped);
    const auto gs = g.sum(1);
    sum = sum.defined() ? sum + gs : gs;
    if (options_.type != NoiseTunnelType::kSmoothGrad) {
      const auto gq = g.pow(2).sum(1);
      sum_sq = sum_sq.defined() ? sum_sq + gq : gq;
    }
  }
  const double count = static_cast<double>(s);
  switch (options_.type) {
    case NoiseTunnelType::kSmoothGrad: return sum / count;
    case NoiseTunnelType::kSmoothGradSquared: return sum_sq / count;
    case NoiseTunnelType::kVarGrad: return sum_sq / count - (sum / count).pow(2);
  }
  return sum / count;
}

MethodInfo noise_tunnel_method_info() {
  MethodInfo info;
  info.name = "smoothgrad";
  info.summary = "SmoothGrad: any method's attribution averaged over noisy copies of the input "
                 "(also SmoothGrad-squared and VarGrad)";
  info.paper = "Smilkov, Thorat, Kim, Viegas, Wattenberg 2017, SmoothGrad: removing noise by "
               "adding noise; VarGrad: Adebayo et al. 2018";
  info.options = {
      {"base", "vanilla", "the method to smooth (any registered method)"},
      {"type", "smoothgrad", "smoothgrad (mean), smoothgrad-sq (mean of squares) or vargrad"},
      {"samples", "50", "noisy copies per image"},
      {"noise-level", "0.15", "sigma as a share of the image's value range (max - min)"},
      {"seed", "0", "seed of the noise"},
      {"batch", "10",
       "noisy images per call of the base method (bounds memory); gradient bases split "
       "them over the CPU threads"},
  };
  info.views = detail::gradient_views(/*with_signs=*/true);
  info.views_for = [](const MethodParams& params) {
    const auto canonical = params.count("base") ? params.at("base") : std::string("vanilla");
    auto views = method_views(find_method(canonical), {});
    for (auto& v : views) v.description = "smoothed " + v.description;
    return views;
  };
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader r(params, "smoothgrad");
    const std::string base = r.text("base", "vanilla");
    NoiseTunnelOptions o;
    const auto type = r.choice("type", "smoothgrad", {"smoothgrad", "smoothgrad-sq", "vargrad"});
    o.type = type == "smoothgrad"      ? NoiseTunnelType::kSmoothGrad
             : type == "smoothgrad-sq" ? NoiseTunnelType::kSmoothGradSquared
                                       : NoiseTunnelType::kVarGrad;
    o.samples = r.integer("samples", o.samples, 1);
    o.noise_level = r.real("noise-level", o.noise_level, 0.0);
    o.seed = static_cast<uint64_t>(r.integer("seed", 0, 0));
    o.batch = r.integer("batch", o.batch, 1);
    r.finish();
    if (base == "smoothgrad") {
      throw usage_error("smoothgrad option base=smoothgrad: a method cannot wrap itself; name "
                        "another base");
    }
    return std::make_unique<NoiseTunnel>(make_method(base), base, o);
  };
  return info;
}

}  // namespace cnnvis
