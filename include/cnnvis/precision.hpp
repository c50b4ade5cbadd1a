#pragma once
// Reduced-precision runs (opt-in; float32 stays the exact default): LibTorch's autocast with
// bfloat16 (CPU and CUDA) or float16 (CUDA), the model's linear and convolution weights held as
// cached copies in that dtype for the scope so that they are not converted on every call.
#include <c10/core/DeviceType.h>

#include <memory>
#include <string>

namespace cnnvis {

class Model;
class WeightLayoutGuard;

enum class Precision { kFloat32, kBFloat16, kFloat16 };

// "float32" (or "fp32"), "bf16" (or "bfloat16"), "fp16" (or "float16"); throws cnnvis::Error
// (invalid argument) otherwise.
Precision parse_precision(const std::string& name);
const char* to_string(Precision precision);  // "float32", "bf16", "fp16"

// True when this CPU computes in bfloat16 natively (AVX512-BF16 or AMX-BF16, from
// /proc/cpuinfo): elsewhere oneDNN emulates it and bf16 is slower than float32.
bool cpu_has_native_bf16();

// "" when this CPU and LibTorch run a bfloat16 convolution (forward and backward), else
// LibTorch's error: measured once per process on a few pixels. oneDNN's bfloat16 kernels need
// AVX-512 (DNNL_MAX_CPU_ISA=AVX2 makes them fail too).
std::string cpu_bf16_error();
// Throws cnnvis::Error (invalid argument) when `precision` cannot run on `device`: fp16 on
// the CPU (LibTorch's CPU autocast has bfloat16 only), bf16 where cpu_bf16_error() says so.
void check_precision(Precision precision, c10::DeviceType device);
// A one-line warning for a precision that runs but is slow on `device` (bf16 on a CPU without
// native bfloat16), else "".
std::string precision_warning(Precision precision, c10::DeviceType device);

// For a scope on this thread: autocast on the model's device in `precision`'s dtype (matmul and
// convolution in bfloat16/float16, precision-sensitive ops in float32: LibTorch's lists), the
// model's 2-D and 4-D float32 parameters switched to cached copies in that dtype
// (WeightLayoutGuard). The previous autocast state and the parameters come back on exit, also
// on an exception. kFloat32 does nothing. Methods return float32 results whatever the
// precision (the registry casts them back). Inputs stay float32: autocast converts them where
// it computes in the lower precision. Throws as check_precision. Like ReluModeGuard, not for a
// model that another thread is running; worker threads that take the caller's
// at::ThreadLocalState (the split gradient strategy) inherit the autocast state.
class PrecisionGuard {
 public:
  PrecisionGuard(Model& model, Precision precision);
  ~PrecisionGuard();
  PrecisionGuard(const PrecisionGuard&) = delete;
  PrecisionGuard& operator=(const PrecisionGuard&) = delete;
  // The model's device type, where autocast is on (CPU for a model without parameters).
  c10::DeviceType device() const { return device_; }

 private:
  Precision precision_;
  c10::DeviceType device_ = c10::DeviceType::CPU;
  bool was_enabled_ = false;
  int previous_dtype_ = 0;  // at::ScalarType
  std::unique_ptr<WeightLayoutGuard> weights_;
};

// "" when autocast is off on `device` on this thread, else " under bf16 autocast" (or fp16):
// part of the gradient strategy's key, since the two precisions run other kernels.
std::string autocast_suffix(c10::DeviceType device);

namespace detail {
// The test behind cpu_has_native_bf16, on the text of /proc/cpuinfo.
bool cpuinfo_has_native_bf16(const std::string& cpuinfo);
}  // namespace detail

}  // namespace cnnvis
