#include "cnnvis/io/npy.hpp"

#include <ATen/ATen.h>

#include <cctype>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "cnnvis/error.hpp"
#include "cnnvis/io/file.hpp"

namespace cnnvis {
namespace {

constexpr char kMagic[] = "\x93NUMPY";  // 6 bytes, then the version

bool little_endian() {
  const uint16_t one = 1;
  unsigned char first;
  std::memcpy(&first, &one, 1);
  return first == 1;
}

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

Error bad_npy(const std::string& path, const std::string& what) {
  return Error(path + ": not a readable .npy file (" + what +
               "); expected a C-order float32/float64/int64 array saved by numpy.save");
}

// The text after 'key': in the header dict, e.g. "'<f4', 'fortran_order': ...".
std::string after_key(const std::string& header, const std::string& key, const std::string& path) {
  const size_t at = header.find("'" + key + "':");
  if (at == std::string::npos) throw bad_npy(path, "no '" + key + "' in the header");
  size_t i = at + key.size() + 3;
  while (i < header.size() && header[i] == ' ') ++i;
  return header.substr(i);
}

}  // namespace

void save_npy(const std::string& path, const at::Tensor& tensor) {
  if (!little_endian()) throw Error(path + ": .npy output needs a little-endian machine");
  const at::Tensor t = tensor.detach().to(at::kCPU, at::kFloat).contiguous();
  std::string shape = "(";
  for (int64_t d = 0; d < t.dim(); ++d) {
    shape += std::to_string(t.size(d)) + (d + 1 < t.dim() || t.dim() == 1 ? "," : "");
    if (d + 1 < t.dim()) shape += " ";
  }
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  // Format 1.0: magic (6) + version (2) + length (2) + header, padded to a multiple of 64.
  const size_t total = (10 + header.size() + 1 + 63) / 64 * 64;
  header.append(total - 10 - header.size() - 1, ' ');
  header += '\n';
  std::string bytes(kMagic, 6);
  bytes += '\x01';
  bytes += '\x00';
  bytes += static_cast<char>(header.size() & 0xff);
  bytes += static_cast<char>(header.size() >> 8);
  bytes += header;
  bytes.append(static_cast<const char*>(t.data_ptr()), t.numel() * sizeof(float));
  write_file_atomic(path, bytes);
}

at::Tensor load_npy(const std::string& path) {
  return load_npy_bytes(read_regular_file(path, ".npy file"), path);
}

at::Tensor load_npy_bytes(const std::string& bytes, const std::string& path) {
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0) {
    throw bad_npy(path, "no NUMPY magic bytes");
  }
  const int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len = 0, start = 0;
  auto byte = [&](size_t i) { return static_cast<size_t>(static_cast<unsigned char>(bytes[i])); };
  if (major == 1) {
    header_len = byte(8) | byte(9) << 8;
    start = 10;
  } else if ((major == 2 || major == 3) && bytes.size() >= 12) {
    header_len = byte(8) | byte(9) << 8 | byte(10) << 16 | byte(11) << 24;
    start = 12;
  } else {
    throw bad_npy(path, "format version " + std::to_string(major) + " is not supported");
  }
  if (bytes.size() - start < header_len) throw bad_npy(path, "the header is truncated");
  const std::string header = bytes.substr(start, header_len);
  if (!little_endian()) throw Error(path + ": .npy input needs a little-endian machine");

  const std::string descr = after_key(header, "descr", path);
  static const std::pair<const char*, at::ScalarType> kTypes[] = {
      {"'<f4'", at::kFloat}, {"'<f8'", at::kDouble}, {"'<i8'", at::kLong},
      {"'<i4'", at::kInt},   {"'|u1'", at::kByte},   {"'|b1'", at::kBool}};
  at::ScalarType type = at::kFloat;
  size_t element = 0;
  for (const auto& [name, t] : kTypes) {
    if (descr.compare(0, std::strlen(name), name) == 0) {
      type = t;
      element = at::elementSize(t);
    }
  }
  if (element == 0) {
    throw bad_npy(path, "dtype " + descr.substr(0, descr.find(',')) + " is not supported");
  }
  if (after_key(header, "fortran_order", path).compare(0, 5, "False") != 0) {
    throw bad_npy(path, "Fortran order is not supported; save np.ascontiguousarray(a)");
  }
  // The shape is a Python tuple of non-negative integers: "()", "(5,)", "(2, 3)".
  const std::string shape_text = after_key(header, "shape", path);
  const size_t close = shape_text.find(')');
  if (shape_text.empty() || shape_text[0] != '(' || close == std::string::npos) {
    throw bad_npy(path, "cannot parse the shape");
  }
  std::vector<int64_t> shape;
  const std::string inside = shape_text.substr(1, close - 1);
  size_t k = 0;
  auto skip_spaces = [&] {
    while (k < inside.size() && inside[k] == ' ') ++k;
  };
  uint64_t numel = 1;
  // LibTorch multiplies the non-zero dimensions of an empty array too (for its strides), and
  // fails deep inside once they pass 2^63: such a shape is refused here.
  uint64_t nonzero = 1;
  for (skip_spaces(); k < inside.size();) {
    if (!std::isdigit(static_cast<unsigned char>(inside[k]))) {
      throw bad_npy(path, "cannot parse the shape '(" + inside + ")'");
    }
    uint64_t dim = 0;
    for (; k < inside.size() && std::isdigit(static_cast<unsigned char>(inside[k])); ++k) {
      if (__builtin_mul_overflow(dim, 10, &dim) ||
          __builtin_add_overflow(dim, static_cast<uint64_t>(inside[k] - '0'), &dim) ||
          dim > (uint64_t{1} << 40)) {  // no real array; LibTorch reserves huge values
        throw bad_npy(path, "a dimension of the shape '(" + inside + ")' is too large");
      }
    }
    if (shape.size() == 64) throw bad_npy(path, "more than 64 dimensions");
    shape.push_back(static_cast<int64_t>(dim));
    numel *= dim;  // cannot overflow: the non-zero dimensions' product is below 2^63
    if (dim != 0 && (__builtin_mul_overflow(nonzero, dim, &nonzero) ||
                     nonzero > static_cast<uint64_t>(INT64_MAX))) {
      throw bad_npy(path, "the dimensions of the shape '(" + inside + ")' multiply beyond 2^63");
    }
    skip_spaces();
    if (k < inside.size() && inside[k] != ',') {
      throw bad_npy(path, "cannot parse the shape '(" + inside + ")'");
    }
    if (k < inside.size()) ++k;  // the comma
    skip_spaces();
  }
  // Check that the file holds the data before allocating anything for it.
  const uint64_t available = bytes.size() - start - header_len;
  if (numel > available / element) {
    throw bad_npy(path, "the data is truncated: the header's shape needs " +
                            std::to_string(numel) +
                            " elements of " + std::to_string(element) + " bytes but " +
                            std::to_string(available) + " bytes follow the header");
  }
  try {
    at::Tensor out = at::empty(shape, at::TensorOptions().dtype(type));
    if (numel > 0) {
      std::memcpy(out.data_ptr(), bytes.data() + start + header_len, numel * element);
    }
    return out.to(at::kFloat);
  } catch (const c10::Error& e) {
    throw bad_npy(path, "cannot allocate the array: " + first_line(e.what_without_backtrace()));
  }
}

}  // namespace cnnvis
