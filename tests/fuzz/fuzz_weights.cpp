// libFuzzer harness: the weights reader, all three formats (PyTorch zip, PyTorch legacy,
// safetensors), from memory through read_state_dict_bytes. Seeds: make_corpus.py.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "cnnvis/models/weights.hpp"
#include "fuzz_common.hpp"

namespace {

// The safetensors format forbids tensors that share bytes: if the reader accepted a
// safetensors input, no two non-empty data ranges of its header may overlap.
void check_safetensors_ranges(const std::string& bytes) {
  if (bytes.size() < 9 || bytes[8] != '{') return;
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  if (n > bytes.size() - 8) return;
  const auto header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + n, nullptr,
                                            /*allow_exceptions=*/false);
  if (!header.is_object()) return;
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__" || !info.is_object() || !info.contains("data_offsets")) continue;
    const auto& off = info["data_offsets"];
    if (off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
        off[1].is_number_unsigned() && off[0].get<uint64_t>() < off[1].get<uint64_t>()) {
      ranges.emplace_back(off[0].get<uint64_t>(), off[1].get<uint64_t>());
    }
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t k = 1; k < ranges.size(); ++k) {
    CNNVIS_FUZZ_CHECK(ranges[k].first >= ranges[k - 1].second);  // no overlapping tensors
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cnnvis::fuzz::init_single_thread();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes = cnnvis::fuzz::as_string(data, size);
  cnnvis::StateDict state;
  if (!cnnvis::fuzz::accepts([&] { state = cnnvis::read_state_dict_bytes(bytes, "fuzz.pth"); })) {
    return 0;
  }
  for (const auto& [name, tensor] : state) {
    CNNVIS_FUZZ_CHECK(tensor.defined() && tensor.device().is_cpu() && tensor.is_contiguous());
  }
  check_safetensors_ranges(bytes);
  return 0;
}
