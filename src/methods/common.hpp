#pragma once
// Private helpers shared by the method implementations: option parsing and the views of
// input-space (gradient-like) attributions.
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "cnnvis/method.hpp"
#include "cnnvis/model.hpp"

namespace cnnvis::detail {

// Reads a method's options from MethodParams by name ("noise-level"; "noise_level" is the
// same key), with defaults and range checks; finish() rejects unknown keys. Every error names
// the method and the option and says what was expected.
class OptionReader {
 public:
  OptionReader(const MethodParams& params, std::string method);
  int64_t integer(const std::string& key, int64_t fallback, int64_t min, int64_t max = INT64_MAX);
  double real(const std::string& key, double fallback, double min, double max = 1e300);
  std::string text(const std::string& key, const std::string& fallback);
  std::string choice(const std::string& key, const std::string& fallback,
                     const std::vector<std::string>& allowed);
  // "R,G,B" as three numbers.
  std::array<double, 3> triple(const std::string& key, const std::array<double, 3>& fallback);
  // Throws for any key not read, listing the method's options.
  void finish() const;

 private:
  const std::string* find(const std::string& key);
  [[noreturn]] void fail(const std::string& key, const std::string& value,
                         const std::string& expected) const;
  MethodParams params_;
  std::string method_;
  std::set<std::string> read_;
};

// The classic collection's pictures of an input-space attribution [3, H, W]: coloured,
// grayscale, and (with_signs) positive and negative saliency. `source` picks an extra.
std::vector<View> gradient_views(bool with_signs, const std::string& source = "",
                                 const std::string& prefix = "");

// Throws cnnvis::Error unless `raw` has the input's shape (an input-space attribution).
void check_input_space(const at::Tensor& raw, const at::Tensor& input, const std::string& who,
                       const std::string& base);

// The key under which run_in_passes (cnnvis/strategy.hpp) measures the rows per pass of a
// perturbation method: "resnet18 forward [3, 224, 224] Float, 2 threads" for passes into
// `entry` of rows shaped like `row` (one image, or one layer's activation). Measured only on the
// CPU: pass_measured().
std::string pass_key(const Model& model, const std::string& entry, const at::Tensor& row);
bool pass_measured(const at::Tensor& row);

}  // namespace cnnvis::detail
