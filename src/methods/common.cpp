#include "methods/common.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <sstream>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/precision.hpp"

namespace cnnvis::detail {
namespace {

std::string canonical(std::string key) {
  for (char& c : key) {
    if (c == '_') c = '-';
  }
  return key;
}

}  // namespace

OptionReader::OptionReader(const MethodParams& params, std::string method)
    : method_(std::move(method)) {
  for (const auto& [key, value] : params) params_[canonical(key)] = value;
}

const std::string* OptionReader::find(const std::string& key) {
  read_.insert(key);
  const auto it = params_.find(key);
  return it == params_.end() ? nullptr : &it->second;
}

void OptionReader::fail(const std::string& key, const std::string& value,
                        const std::string& expected) const {
  throw usage_error(method_ + " option " + key + "=" + value + ": expected " + expected);
}

int64_t OptionReader::integer(const std::string& key, int64_t fallback, int64_t min,
                              int64_t max) {
  const auto* value = find(key);
  if (value == nullptr) return fallback;
  int64_t n = 0;
  try {
    size_t used = 0;
    n = std::stoll(*value, &used);
    if (used != value->size()) throw std::invalid_argument("junk");
  } catch (const std::exception&) {
    fail(key, *value, "an integer");
  }
  if (n < min || n > max) {
    fail(key, *value,
         max == INT64_MAX ? "an integer >= " + std::to_string(min)
                          : "an integer in " + std::to_string(min) + ".." + std::to_string(max));
  }
  return n;
}

double OptionReader::real(const std::string& key, double fallback, double min, double max) {
  const auto* value = find(key);
  if (value == nullptr) return fallback;
  double x = 0;
  try {
    size_t used = 0;
    x = std::stod(*value, &used);
    if (used != value->size()) throw std::invalid_argument("junk");
  } catch (const std::exception&) {
    fail(key, *value, "a number");
  }
  if (!(x >= min && x <= max)) {
    std::ostringstream range;
    range << "a number >= " << min;
    if (max < 1e300) range << " and <= " << max;
    fail(key, *value, range.str());
  }
  return x;
}

std::string OptionReader::text(const std::string& key, const std::string& fallback) {
  const auto* value = find(key);
  return value == nullptr ? fallback : *value;
}

std::string OptionReader::choice(const std::string& key, const std::string& fallback,
                                 const std::vector<std::string>& allowed) {
  const auto* value = find(key);
  if (value == nullptr) return fallback;
  for (const auto& a : allowed) {
    if (*value == a) return a;
  }
  std::string list;
  for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
  fail(key, *value, "one of " + list);
}

std::array<double, 3> OptionReader::triple(const std::string& key,
                                           const std::array<double, 3>& fallback) {
  const auto* value = find(key);
  if (value == nullptr) return fallback;
  std::array<double, 3> out{};
  if (!parse_rgb(*value, out)) fail(key, *value, "three comma-separated numbers R,G,B");
  return out;
}

void OptionReader::finish() const {
  for (const auto& [key, value] : params_) {
    if (read_.count(key) == 0) {
      std::string list;
      for (const auto& k : read_) list += (list.empty() ? "" : ", ") + k;
      throw usage_error(method_ + ": unknown option '" + key + "'" +
                        (list.empty() ? std::string("; it takes no options")
                                      : "; its options: " + list) +
                        " (see cnnvis list -v)");
    }
  }
}

std::vector<View> gradient_views(bool with_signs, const std::string& source,
                                 const std::string& prefix) {
  std::vector<View> views = {
      {prefix + "color", "coloured gradient: (g - min) / max, per image", source,
       [](const at::Tensor& raw, const at::Tensor&) { return gradient_color(raw); }},
      {prefix + "gray", "grayscale saliency: sum_c |g|, clipped at the 99th percentile", source,
       [](const at::Tensor& raw, const at::Tensor&) { return grayscale_saliency(raw); }},
  };
  if (with_signs) {
    views.push_back({prefix + "pos", "positive saliency: max(0, g) / max(g)", source,
                     [](const at::Tensor& raw, const at::Tensor&) {
                       return positive_saliency(raw);
                     }});
    views.push_back({prefix + "neg", "negative saliency: max(0, -g) / -min(g)", source,
                     [](const at::Tensor& raw, const at::Tensor&) {
                       return negative_saliency(raw);
                     }});
  }
  return views;
}

void check_input_space(const at::Tensor& raw, const at::Tensor& input, const std::string& who,
                       const std::string& base) {
  if (raw.sizes() != input.sizes()) {
    throw usage_error(who + ": base method " + base + " returns " + c10::str(raw.sizes()) +
                      ", not an input-space attribution " + c10::str(input.sizes()) +
                      "; use vanilla, guided-backprop, deconvnet, integrated-gradients, "
                      "gradient-x-input or occlusion as the base");
  }
}

std::string pass_key(const Model& model, const std::string& entry, const at::Tensor& row) {
  return model.name() + " " + entry + " " + c10::str(row.sizes()) + " " +
         c10::toString(row.scalar_type()) + autocast_suffix(row.device().type()) + ", " +
         std::to_string(at::get_num_threads()) + " threads";
}

bool pass_measured(const at::Tensor& row) { return row.device().is_cpu(); }

}  // namespace cnnvis::detail
