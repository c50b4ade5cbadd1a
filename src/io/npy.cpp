#include "cnnvis/io/npy.hpp"

#include <ATen/ATen.h>

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
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open (no such file or no permission)");
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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
  if (bytes.size() < start + header_len) throw bad_npy(path, "the header is truncated");
  const std::string header = bytes.substr(start, header_len);
  if (!little_endian()) throw Error(path + ": .npy input needs a little-endian machine");

  const std::string descr = after_key(header, "descr", path);
  static const std::pair<const char*, at::ScalarType> kTypes[] = {
      {"'<f4'", at::kFloat}, {"'<f8'", at::kDouble}, {"'<i8'", at::kLong},
      {"'<i4'", at::kInt},   {"'|u1'", at::kByte},   {"'|b1'", at::kBool}};
  at::ScalarType type = at::kFloat;
  bool known = false;
  for (const auto& [name, t] : kTypes) {
    if (descr.compare(0, std::strlen(name), name) == 0) {
      type = t;
      known = true;
    }
  }
  if (!known) {
    throw bad_npy(path, "dtype " + descr.substr(0, descr.find(',')) + " is not supported");
  }
  if (after_key(header, "fortran_order", path).compare(0, 5, "False") != 0) {
    throw bad_npy(path, "Fortran order is not supported; save np.ascontiguousarray(a)");
  }
  const std::string shape_text = after_key(header, "shape", path);
  const size_t close = shape_text.find(')');
  if (shape_text.empty() || shape_text[0] != '(' || close == std::string::npos) {
    throw bad_npy(path, "cannot parse the shape");
  }
  std::vector<int64_t> shape;
  std::istringstream dims(shape_text.substr(1, close - 1));
  std::string item;
  while (std::getline(dims, item, ',')) {
    if (item.find_first_not_of(' ') == std::string::npos) continue;
    try {
      shape.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw bad_npy(path, "cannot parse the shape");
    }
    if (shape.back() < 0) throw bad_npy(path, "negative dimension");
  }
  at::Tensor out = at::empty(shape, at::TensorOptions().dtype(type));
  const size_t data_bytes = out.numel() * out.element_size();
  if (bytes.size() - start - header_len < data_bytes) {
    throw bad_npy(path, "the data is truncated: expected " + std::to_string(data_bytes) +
                            " bytes after the header");
  }
  std::memcpy(out.data_ptr(), bytes.data() + start + header_len, data_bytes);
  return out.to(at::kFloat);
}

}  // namespace cnnvis
