// libFuzzer harness: cnnvis's pickle VM (src/detail/pickle.*). The input is the data.pkl of a
// torch.save file. Each input runs
//   1. straight through detail::unpickle (no LibTorch: the fast path that finds most bugs),
//   2. wrapped into a valid PyTorch zip archive (PyTorchStreamWriter, in memory) with a data/<key>
//      record for every storage the pickle names, through read_state_dict_bytes, and
//   3. if it unpickled, as the root pickle of a legacy torch.save file (magic, protocol, sys_info
//      pickles, then the input, the storage key list and the storages), the same way,
// so tensors described by fuzzed pickles meet real storage bytes in both PyTorch formats.
// Seeds: the data.pkl of make_corpus.py's state_dicts; pickle.dict lists the opcodes.
#include <caffe2/serialize/inline_container.h>

#include <map>
#include <string>

#include "cnnvis/models/weights.hpp"
#include "detail/pickle.hpp"
#include "fuzz_common.hpp"

namespace {

using cnnvis::detail::DType;

constexpr size_t kMaxStorages = 16;
constexpr size_t kStorageBytes = 512;  // every storage: 512 bytes (64 float64, 128 float32...)

std::string storage_bytes() {
  std::string s(kStorageBytes, '\0');
  for (size_t k = 0; k < s.size(); ++k) s[k] = static_cast<char>(k * 37 + 11);
  return s;
}

std::string torch_zip(const std::string& pkl, const std::map<std::string, DType>& storages) {
  std::string out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* p, size_t n) {
    out.append(static_cast<const char*>(p), n);
    return n;
  });
  writer.writeRecord("data.pkl", pkl.data(), pkl.size());
  static const std::string bytes = storage_bytes();
  size_t count = 0;
  for (const auto& [key, dtype] : storages) {
    // Record names come from the pickle; PyTorch's writer would refuse odd ones loudly.
    if (key.empty() || key.size() > 64 || key.find_first_of(std::string("/\\\0", 3)) !=
                                              std::string::npos || ++count > kMaxStorages) {
      continue;
    }
    writer.writeRecord("data/" + key, bytes.data(), bytes.size());
  }
  writer.writeEndOfFile();
  return out;
}

// Protocol-2 pickles, as torch.save's legacy format writes them.
std::string legacy_file(const std::string& pkl, const std::map<std::string, DType>& storages) {
  static const std::string header =
      std::string("\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", 15) +  // magic
      std::string("\x80\x02M\xe9\x03.", 6) +                                          // 1001
      std::string("\x80\x02}q\x00.", 6);                                              // sys_info
  static const std::string bytes = storage_bytes();
  std::string keys = "\x80\x02](", data;
  size_t count = 0;
  for (const auto& [key, dtype] : storages) {
    if (++count > kMaxStorages) break;
    const uint32_t n = static_cast<uint32_t>(key.size());
    keys += 'X';
    keys.append(reinterpret_cast<const char*>(&n), 4);  // little-endian host
    keys += key;
    const uint64_t numel = kStorageBytes / cnnvis::detail::element_size(dtype);
    data.append(reinterpret_cast<const char*>(&numel), 8);
    data.append(bytes.data(), numel * cnnvis::detail::element_size(dtype));
  }
  keys += "e.";
  return header + pkl + keys + data;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  cnnvis::fuzz::init_single_thread();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string pkl = cnnvis::fuzz::as_string(data, size);
  std::map<std::string, DType> storages;
  const bool unpickled = cnnvis::fuzz::accepts([&] {
    cnnvis::detail::PickleArena arena;
    size_t pos = 0;
    cnnvis::detail::unpickle(pkl.data(), pkl.size(), &pos, "fuzz.pkl", arena, &storages);
    CNNVIS_FUZZ_CHECK(pos <= pkl.size());
  });
  cnnvis::fuzz::accepts(
      [&] { cnnvis::read_state_dict_bytes(torch_zip(pkl, storages), "fuzz.pth"); });
  if (unpickled) {
    cnnvis::fuzz::accepts(
        [&] { cnnvis::read_state_dict_bytes(legacy_file(pkl, storages), "fuzz_legacy.pth"); });
  }
  return 0;
}
