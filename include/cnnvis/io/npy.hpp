#pragma once
// NumPy .npy files: what --raw writes, readable by numpy.load.
#include <ATen/core/Tensor.h>

#include <string>

namespace cnnvis {

// Writes `tensor` as float32, C order (format version 1.0). Atomic: temporary name, then rename.
void save_npy(const std::string& path, const at::Tensor& tensor);
// Reads a float32/float64/int64 .npy (C order, little-endian) into a float32 CPU tensor.
at::Tensor load_npy(const std::string& path);

}  // namespace cnnvis
