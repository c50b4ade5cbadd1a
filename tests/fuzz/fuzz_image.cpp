// libFuzzer harness: the image loader (OpenCV's decoders behind cnnvis's checks), from memory
// through decode_image. The pixel limit is lowered to 4 megapixels so that legitimate large
// images stay far below -malloc_limit_mb; a decoder asked for more than the limit allows must
// have been refused from the header. Seeds: make_corpus.py.
#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <sanitizer/common_interface_defs.h>
#include <unistd.h>

#include <cstdint>

#include "cnnvis/image.hpp"
#include "fuzz_common.hpp"

namespace {
constexpr int64_t kPixelLimit = 4'000'000;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cnnvis::fuzz::init_single_thread();
  cv::setNumThreads(0);  // OpenCV's own pool: decode and convert on the fuzzer's thread
  cnnvis::set_image_pixel_limit(kPixelLimit);
  // decode_image points stderr (fd 2) at a temporary file while OpenCV decodes, to keep the
  // decoders' own lines out of cnnvis's messages; a sanitizer report from inside a decoder must
  // still reach the real stderr.
  const int fd = ::dup(2);
  if (fd >= 0) __sanitizer_set_report_fd(reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = cnnvis::fuzz::as_string(data, size);
  at::Tensor t;
  if (!cnnvis::fuzz::accepts([&] { t = cnnvis::decode_image(bytes, "fuzz.img"); })) return 0;
  CNNVIS_FUZZ_CHECK(t.defined() && t.dim() == 3 && t.size(0) == 3 && t.size(1) > 0 &&
                    t.size(2) > 0 && t.scalar_type() == at::kFloat);
  CNNVIS_FUZZ_CHECK(t.size(1) * t.size(2) <= kPixelLimit);
  CNNVIS_FUZZ_CHECK(t.min().item<float>() >= 0 && t.max().item<float>() <= 1);
  return 0;
}
