#include "cnnvis/precision.hpp"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <fstream>
#include <sstream>

#include "cnnvis/error.hpp"
#include "cnnvis/model.hpp"

namespace cnnvis {
namespace {

// The autocast state of one device type on this thread. LibTorch 2.4 replaced the per-backend
// calls (deprecated since) by ones taking the device type.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocast_enabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
void set_autocast_enabled(c10::DeviceType d, bool on) { at::autocast::set_autocast_enabled(d, on); }
at::ScalarType autocast_dtype(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void set_autocast_dtype(c10::DeviceType d, at::ScalarType t) { at::autocast::set_autocast_dtype(d, t); }
#else
constexpr bool on_cpu(c10::DeviceType d) { return d == c10::DeviceType::CPU; }
bool autocast_enabled(c10::DeviceType d) {
  return on_cpu(d) ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
void set_autocast_enabled(c10::DeviceType d, bool on) {
  on_cpu(d) ? at::autocast::set_cpu_enabled(on) : at::autocast::set_enabled(on);
}
at::ScalarType autocast_dtype(c10::DeviceType d) {
  return on_cpu(d) ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void set_autocast_dtype(c10::DeviceType d, at::ScalarType t) {
  on_cpu(d) ? at::autocast::set_autocast_cpu_dtype(t) : at::autocast::set_autocast_gpu_dtype(t);
}
#endif

at::ScalarType dtype_of(Precision precision) {
  return precision == Precision::kFloat16 ? at::kHalf : at::kBFloat16;
}

}  // namespace

Precision parse_precision(const std::string& name) {
  if (name == "float32" || name == "fp32") return Precision::kFloat32;
  if (name == "bf16" || name == "bfloat16") return Precision::kBFloat16;
  if (name == "fp16" || name == "float16") return Precision::kFloat16;
  throw usage_error("--precision: expected float32, bf16 or fp16, got '" + name + "'");
}

const char* to_string(Precision precision) {
  switch (precision) {
    case Precision::kFloat32: return "float32";
    case Precision::kBFloat16: return "bf16";
    case Precision::kFloat16: return "fp16";
  }
  return "?";
}

namespace detail {

bool cpuinfo_has_native_bf16(const std::string& cpuinfo) {
  std::istringstream lines(cpuinfo);
  std::string line;
  while (std::getline(lines, line)) {
    // x86: "flags : ... avx512_bf16 ... amx_bf16"; the first processor's line is enough.
    if (line.rfind("flags", 0) != 0) continue;
    std::istringstream words(line);
    std::string word;
    while (words >> word) {
      if (word == "avx512_bf16" || word == "amx_bf16") return true;
    }
    return false;
  }
  return false;
}

}  // namespace detail

bool cpu_has_native_bf16() {
  static const bool native = [] {
    std::ifstream in("/proc/cpuinfo");
    std::stringstream text;
    text << in.rdbuf();
    return detail::cpuinfo_has_native_bf16(text.str());
  }();
  return native;
}

std::string cpu_bf16_error() {
  // Measured, not assumed: a bfloat16 convolution forward and backward on a few pixels (under
  // a millisecond). oneDNN needs AVX-512 for it, and a LibTorch may lack the kernels.
  static const std::string error = []() -> std::string {
    try {
      c10::InferenceMode off(false);
      torch::AutoGradMode grad(true);
      const auto x = torch::ones({1, 2, 5, 5}, torch::kBFloat16).requires_grad_(true);
      const auto w = torch::ones({2, 2, 3, 3}, torch::kBFloat16);
      const auto y = torch::conv2d(x, w);
      const auto z = torch::linear(y.flatten(1), torch::ones({3, 18}, torch::kBFloat16));
      torch::autograd::grad({z.sum()}, {x});
      return "";
    } catch (const c10::Error& e) {
      const std::string what = e.what_without_backtrace();
      return what.substr(0, what.find('\n'));
    } catch (const std::exception& e) {  // oneDNN's own (dnnl::error)
      const std::string what = e.what();
      return what.substr(0, what.find('\n'));
    }
  }();
  return error;
}

void check_precision(Precision precision, c10::DeviceType device) {
  if (precision == Precision::kFloat16 && device == c10::DeviceType::CPU) {
    throw usage_error("--precision fp16: needs a CUDA device (LibTorch's CPU autocast has "
                      "bfloat16 only); on the CPU use --precision bf16");
  }
  if (precision == Precision::kBFloat16 && device == c10::DeviceType::CPU) {
    const auto error = cpu_bf16_error();
    if (!error.empty()) {
      throw usage_error("--precision bf16: this CPU cannot run bfloat16 convolutions with this "
                        "LibTorch (" + error + "); run in float32");
    }
  }
}

std::string precision_warning(Precision precision, c10::DeviceType device) {
  if (precision == Precision::kBFloat16 && device == c10::DeviceType::CPU &&
      !cpu_has_native_bf16()) {
    return "--precision bf16: this CPU has no native bfloat16 (AVX512-BF16 or AMX), so "
           "LibTorch emulates it and it is likely slower than float32; omit --precision here";
  }
  return "";
}

std::string autocast_suffix(c10::DeviceType device) {
  if (!autocast_enabled(device)) return "";
  return autocast_dtype(device) == at::kHalf ? " under fp16 autocast" : " under bf16 autocast";
}

PrecisionGuard::PrecisionGuard(Model& model, Precision precision) : precision_(precision) {
  if (precision_ == Precision::kFloat32) return;
  for (const auto& p : model.module().parameters()) {
    device_ = p.device().type();
    break;
  }
  check_precision(precision_, device_);
  if (device_ != c10::DeviceType::CPU && device_ != c10::DeviceType::CUDA) {
    throw usage_error(std::string("--precision ") + to_string(precision_) +
                      ": autocast runs on the CPU and CUDA only, the model is on " +
                      c10::DeviceTypeName(device_));
  }
  weights_ = std::make_unique<WeightLayoutGuard>(model, dtype_of(precision_));
  was_enabled_ = autocast_enabled(device_);
  previous_dtype_ = static_cast<int>(autocast_dtype(device_));
  set_autocast_enabled(device_, true);
  set_autocast_dtype(device_, dtype_of(precision_));
  at::autocast::increment_nesting();
}

PrecisionGuard::~PrecisionGuard() {
  if (precision_ == Precision::kFloat32) return;
  // As torch.autocast's exit: the cast cache lives as long as the outermost region.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast_enabled(device_, was_enabled_);
  set_autocast_dtype(device_, static_cast<at::ScalarType>(previous_dtype_));
  weights_.reset();
}

}  // namespace cnnvis
