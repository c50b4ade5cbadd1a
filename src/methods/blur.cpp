#include "methods/blur.hpp"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>

namespace cnnvis::detail {

at::Tensor gaussian_blur(const at::Tensor& x, double sigma) {
  const int64_t radius = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(3 * sigma)));
  auto k = torch::arange(-radius, radius + 1, x.options()).pow(2).div(-2 * sigma * sigma).exp();
  k = k / k.sum();
  const int64_t c = x.size(1);
  // Separable, edge-replicating padding: the blurred image keeps the image's colours at the
  // borders.
  auto y = torch::nn::functional::pad(
      x, torch::nn::functional::PadFuncOptions({radius, radius, radius, radius})
             .mode(torch::kReplicate));
  namespace F = torch::nn::functional;
  y = F::conv2d(y, k.view({1, 1, 1, -1}).expand({c, 1, 1, 2 * radius + 1}).contiguous(),
                F::Conv2dFuncOptions().groups(c));
  y = F::conv2d(y, k.view({1, 1, -1, 1}).expand({c, 1, 2 * radius + 1, 1}).contiguous(),
                F::Conv2dFuncOptions().groups(c));
  return y;
}

}  // namespace cnnvis::detail
