// libFuzzer harness: the .npy reader, from memory through load_npy_bytes. Seeds: make_corpus.py.
#include <ATen/ATen.h>

#include "cnnvis/io/npy.hpp"
#include "fuzz_common.hpp"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cnnvis::fuzz::init_single_thread();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = cnnvis::fuzz::as_string(data, size);
  at::Tensor t;
  if (!cnnvis::fuzz::accepts([&] { t = cnnvis::load_npy_bytes(bytes, "fuzz.npy"); })) return 0;
  CNNVIS_FUZZ_CHECK(t.defined() && t.scalar_type() == at::kFloat && t.is_contiguous());
  // Every element comes from at least one byte of the file (u1 and b1 are the smallest types).
  CNNVIS_FUZZ_CHECK(static_cast<size_t>(t.numel()) <= size);
  return 0;
}
