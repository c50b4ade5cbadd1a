#pragma once
// NumPy .npy files: what --raw writes, readable by numpy.load.
#include <ATen/core/Tensor.h>

#include <string>

namespace cnnvis {

// Writes `tensor` as float32, C order (format version 1.0). Atomic: temporary name, then rename.
void save_npy(const std::string& path, const at::Tensor& tensor);
// Reads a float32/float64/int64/int32/uint8/bool .npy (C order, little-endian) into a float32
// CPU tensor. Throws cnnvis::Error naming the file for anything else, a shape that is not a
// tuple of integers, or a file that holds less data than its shape needs (checked before
// allocating).
at::Tensor load_npy(const std::string& path);
// The same from a file's bytes in memory; `source` names it in messages.
at::Tensor load_npy_bytes(const std::string& bytes, const std::string& source);

}  // namespace cnnvis
