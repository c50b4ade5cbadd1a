#pragma once
// Gaussian blur of image batches (integrated gradients' blurred baseline, the Yosinski
// regularizer of image synthesis).
#include <ATen/core/Tensor.h>

namespace cnnvis::detail {

// x [N, C, H, W] blurred with a Gaussian of `sigma` pixels (radius ceil(3 sigma), at least 1),
// separable, edge-replicating padding: the borders keep the image's colours.
at::Tensor gaussian_blur(const at::Tensor& x, double sigma);

}  // namespace cnnvis::detail
