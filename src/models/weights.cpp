#include <cnnvis/models/weights.hpp>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/versions.h>
#include <cnnvis/error.hpp>
#include <cnnvis/io/file.hpp>
#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/utils.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "detail/pickle.hpp"
#include "detail/zip_check.hpp"

namespace cnnvis {

using detail::DType;
using detail::PickleValue;
using detail::TensorRef;

namespace {

using Kind = PickleValue::Kind;

// pickle.dumps(0x1950a86a20f9469cfc6c) payload: the legacy format's magic number, little-endian.
const char kLegacyMagic[] = "\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19";

const char kFormatsHint[] =
    "expected a PyTorch file (torch.save), a legacy PyTorch file or a .safetensors file";

at::ScalarType scalar_type(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return at::kFloat;
    case DType::kFloat64: return at::kDouble;
    case DType::kFloat16: return at::kHalf;
    case DType::kBFloat16: return at::kBFloat16;
    case DType::kInt64: return at::kLong;
    case DType::kInt32: return at::kInt;
    case DType::kInt16: return at::kShort;
    case DType::kInt8: return at::kChar;
    case DType::kUInt8: return at::kByte;
    case DType::kBool: return at::kBool;
  }
  return at::kFloat;
}

std::string shape_string(at::IntArrayRef shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? ", " : "") + std::to_string(shape[k]);
  return s + "]";
}

// What the tensors of one file may take in memory: 4 x the file + 64 MiB. A state_dict's tensors
// take about the file's size; zero strides or many tensors over one storage could otherwise
// expand a small file into terabytes.
class TensorBudget {
 public:
  TensorBudget(uint64_t file_size, const std::string& source)
      : left_(file_size > (UINT64_MAX >> 3) ? UINT64_MAX : 4 * file_size + (uint64_t{64} << 20)),
        total_(left_), source_(source) {}
  void spend(uint64_t bytes, const std::string& name) {
    if (bytes > left_) {
      throw Error(source_ + ": refusing to load: tensor '" + name + "' and those before it " +
                  "would take more than " + std::to_string(total_ >> 20) + " MiB, 4 x the " +
                  "file's size; the file is damaged or crafted");
    }
    left_ -= bytes;
  }

 private:
  uint64_t left_, total_;
  const std::string& source_;
};

// Builds a contiguous tensor from its description and the bytes of its storage, checking that
// every element it addresses lies inside the storage (a corrupt file must not read past it) and
// that the copies fit the file's budget.
at::Tensor make_tensor(const TensorRef& ref, const char* bytes, size_t nbytes,
                       const std::string& source, const std::string& name,
                       TensorBudget& budget) {
  const size_t elem = detail::element_size(ref.dtype);
  const auto numel = static_cast<int64_t>(nbytes / elem);
  auto bad = [&](const std::string& what) {
    return Error(source + ": tensor '" + name + "' " + what +
                 "; the file is damaged or truncated, download or save it again");
  };
  int64_t last = ref.storage_offset, count = 1;
  if (last < 0) throw bad("has a negative storage offset");
  for (size_t d = 0; d < ref.sizes.size(); ++d) {
    int64_t size = ref.sizes[d], stride = ref.strides[d];
    if (size < 0 || stride < 0) throw bad("has a negative size or stride");
    if (size == 0) count = 0;
    if (count && (__builtin_mul_overflow(size - 1, stride, &stride) ||
                  __builtin_add_overflow(last, stride, &last) ||
                  __builtin_mul_overflow(count, size, &count))) {
      throw bad("has an impossible shape " + shape_string(ref.sizes));
    }
  }
  const auto options = at::TensorOptions().dtype(scalar_type(ref.dtype));
  if (count == 0) return at::empty(ref.sizes, options);
  if (last >= numel) {
    throw bad("needs " + std::to_string(last + 1) + " elements of its storage but the file has " +
              std::to_string(numel));
  }
  budget.spend((static_cast<uint64_t>(last) + 1 + static_cast<uint64_t>(count)) * elem, name);
  // Copy into an aligned buffer first: legacy files store data at arbitrary byte offsets.
  at::Tensor storage = at::empty({last + 1}, options);
  std::memcpy(storage.data_ptr(), bytes, static_cast<size_t>(last + 1) * elem);
  return storage.as_strided(ref.sizes, ref.strides, ref.storage_offset).contiguous();
}

bool has_tensor(const PickleValue& dict) {
  return std::any_of(dict.dict->begin(), dict.dict->end(),
                     [](const auto& item) { return item.second.kind == Kind::kTensor; });
}

// The (name, tensor description) pairs of the state_dict: the top-level dict, or the dict under
// "state_dict" or "model" of a training checkpoint. Non-tensor entries are skipped.
std::vector<std::pair<std::string, TensorRef>> state_entries(const PickleValue& root,
                                                              const std::string& source) {
  if (root.kind != Kind::kDict) {
    throw Error(source + ": holds no dict of tensors; " + kFormatsHint +
                " holding a state_dict (torch.save(model.state_dict(), path))");
  }
  const PickleValue* dict = &root;
  for (const auto& [key, value] : *root.dict) {
    if (key.is_string() && (key.s == "state_dict" || key.s == "model") &&
        value.kind == Kind::kDict && has_tensor(value)) {
      dict = &value;
      break;
    }
  }
  std::vector<std::pair<std::string, TensorRef>> entries;
  for (const auto& [key, value] : *dict->dict) {
    if (key.is_string() && value.kind == Kind::kTensor) entries.emplace_back(key.s, *value.tensor);
  }
  if (entries.empty()) {
    throw Error(source + ": contains no tensors; expected a state_dict, or a checkpoint holding "
                "one under \"state_dict\" or \"model\"");
  }
  return entries;
}

std::string first_line(const char* text) {
  std::string s(text);
  return s.substr(0, s.find('\n'));
}

// A zip archive in memory, for PyTorchStreamReader.
class MemoryReadAdapter : public caffe2::serialize::ReadAdapterInterface {
 public:
  explicit MemoryReadAdapter(const std::string& bytes) : bytes_(bytes) {}
  size_t size() const override { return bytes_.size(); }
  size_t read(uint64_t pos, void* buf, size_t n, const char* /*what*/) const override {
    if (pos >= bytes_.size()) return 0;
    n = std::min<size_t>(n, bytes_.size() - static_cast<size_t>(pos));
    std::memcpy(buf, bytes_.data() + pos, n);
    return n;
  }

 private:
  const std::string& bytes_;
};

// `make_reader` opens the archive (from a file or from memory) inside the try block, so that
// LibTorch's errors become cnnvis's.
template <typename MakeReader>
StateDict read_torch_zip(const std::string& path, uint64_t file_size, const detail::ReadAt& read_at,
                         MakeReader make_reader) {
  // What PyTorchStreamReader's constructor would refuse is refused first: when it throws, it
  // leaks miniz's state (detail/zip_check.hpp).
  detail::check_torch_zip(read_at, file_size, path,
                          caffe2::serialize::kMinSupportedFileFormatVersion,
                          caffe2::serialize::kMaxSupportedFileFormatVersion);
  try {
    auto reader_ptr = make_reader();
    caffe2::serialize::PyTorchStreamReader& reader = *reader_ptr;
    // TorchScript archives hold a data.pkl too (the module's attributes), so this comes first.
    if (detail::is_torchscript_archive(reader.getAllRecords())) {
      throw Error(path + ": is a TorchScript archive (torch.jit.save), not a state_dict; "
                  "pass it as --model " + path + " (it carries its weights), or save a "
                  "state_dict with torch.save(model.state_dict(), path) for --weights");
    }
    if (!reader.hasRecord("data.pkl")) {
      throw Error(path + ": zip archive without data.pkl; " + kFormatsHint);
    }
    auto [pkl, pkl_size] = reader.getRecord("data.pkl");
    size_t pos = 0;
    detail::PickleArena arena;
    PickleValue root =
        detail::unpickle(static_cast<const char*>(pkl.get()), pkl_size, &pos, path, arena);
    std::map<std::string, std::tuple<at::DataPtr, size_t>> records;
    TensorBudget budget(file_size, path);
    StateDict out;
    for (const auto& [name, ref] : state_entries(root, path)) {
      auto it = records.find(ref.storage_key);
      if (it == records.end()) {
        const std::string record = "data/" + ref.storage_key;
        if (!reader.hasRecord(record)) {
          throw Error(path + ": tensor '" + name + "' refers to the missing record " + record +
                      "; the file is damaged, download or save it again");
        }
        it = records.emplace(ref.storage_key, reader.getRecord(record)).first;
      }
      const auto& [data, size] = it->second;
      out.emplace_back(name, make_tensor(ref, static_cast<const char*>(data.get()), size, path,
                                         name, budget));
    }
    return out;
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot read the PyTorch zip archive (" +
                first_line(e.what_without_backtrace()) +
                "); the file is truncated or damaged, download or save it again");
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // LibTorch's own std::stoull, std::bad_alloc, ...
    throw Error(path + ": cannot read the PyTorch zip archive (" + first_line(e.what()) +
                "); the file is truncated or damaged, download or save it again");
  }
}

StateDict read_torch_legacy(const std::string& file, const std::string& path) {
  size_t pos = 0;
  detail::PickleArena arena;
  auto next = [&](std::map<std::string, DType>* storages = nullptr) {
    return detail::unpickle(file.data(), file.size(), &pos, path, arena, storages);
  };
  PickleValue magic = next();
  if (magic.kind != Kind::kBigInt || magic.s != std::string(kLegacyMagic, 10)) {
    throw Error(path + ": bad magic number for a legacy PyTorch file; " + kFormatsHint);
  }
  PickleValue version = next();
  if (version.kind != Kind::kInt || version.i != 1001) {
    throw Error(path + ": legacy PyTorch protocol version " + std::to_string(version.i) +
                ", expected 1001; re-save the file with a current torch.save");
  }
  next();  // sys_info: little-endian and type sizes, true of every file torch.save writes today
  std::map<std::string, DType> storages;
  PickleValue root = next(&storages);
  PickleValue keys = next();
  if (keys.kind != Kind::kList) throw Error(path + ": legacy storage key list is missing");

  // The data section: for each key, an int64 element count and the raw bytes.
  std::map<std::string, std::pair<const char*, size_t>> data;
  for (const auto& key : *keys.list) {
    auto it = key.is_string() ? storages.find(key.s) : storages.end();
    if (it == storages.end()) {
      throw Error(path + ": legacy storage list names a storage the pickle never uses; the "
                  "file is damaged, download or save it again");
    }
    uint64_t count = 0;
    const size_t elem = detail::element_size(it->second);
    const bool has_count = file.size() - pos >= 8;
    if (has_count) {
      std::memcpy(&count, file.data() + pos, 8);  // little-endian, as is the host
      pos += 8;
    }
    if (!has_count || count > (file.size() - pos) / elem) {
      throw Error(path + ": truncated: storage '" + key.s + "' extends past the end of the "
                  "file; the file is incomplete, download or save it again");
    }
    data[key.s] = {file.data() + pos, count * elem};
    pos += count * elem;
  }
  TensorBudget budget(file.size(), path);
  StateDict out;
  for (const auto& [name, ref] : state_entries(root, path)) {
    auto it = data.find(ref.storage_key);
    if (it == data.end()) {
      throw Error(path + ": tensor '" + name + "' has no data in the file; the file is damaged");
    }
    out.emplace_back(name, make_tensor(ref, it->second.first, it->second.second, path, name,
                                       budget));
  }
  return out;
}

StateDict read_safetensors(const std::string& file, const std::string& path) {
  uint64_t header_size = 0;
  std::memcpy(&header_size, file.data(), 8);  // detect_format checked the size
  const size_t data_start = 8 + static_cast<size_t>(header_size);
  auto corrupt = [&](const std::string& what) {
    return Error(path + ": corrupt safetensors file: " + what +
                 "; the file is damaged or truncated, download or save it again");
  };
  nlohmann::ordered_json header;
  try {
    header = nlohmann::ordered_json::parse(file.begin() + 8, file.begin() + data_start);
  } catch (const nlohmann::json::exception& e) {
    throw corrupt(std::string("bad JSON header (") + e.what() + ")");
  }
  if (!header.is_object()) throw corrupt("the header is not a JSON object");
  static const std::map<std::string, DType> kDTypes = {
      {"F32", DType::kFloat32}, {"F64", DType::kFloat64}, {"F16", DType::kFloat16},
      {"BF16", DType::kBFloat16}, {"I64", DType::kInt64}, {"I32", DType::kInt32},
      {"I16", DType::kInt16}, {"I8", DType::kInt8}, {"U8", DType::kUInt8},
      {"BOOL", DType::kBool}};
  const size_t data_size = file.size() - data_start;
  struct Entry {
    std::string name;
    TensorRef ref;
    uint64_t begin, bytes;
  };
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == "__metadata__") continue;
    try {
      Entry e{name, {}, 0, 0};
      auto dtype = kDTypes.find(info.at("dtype").get<std::string>());
      if (dtype == kDTypes.end()) {
        throw corrupt("tensor '" + name + "' has the unsupported dtype " +
                      info.at("dtype").get<std::string>());
      }
      e.ref.dtype = dtype->second;
      e.ref.sizes = info.at("shape").get<std::vector<int64_t>>();
      int64_t stride = 1;
      e.ref.strides.assign(e.ref.sizes.size(), 0);
      for (size_t d = e.ref.sizes.size(); d-- > 0;) {
        e.ref.strides[d] = stride;
        if (e.ref.sizes[d] < 0 || __builtin_mul_overflow(stride, e.ref.sizes[d], &stride)) {
          throw corrupt("tensor '" + name + "' has an impossible shape");
        }
      }
      auto offsets = info.at("data_offsets").get<std::vector<uint64_t>>();
      if (offsets.size() != 2 || offsets[0] > offsets[1] || offsets[1] > data_size ||
          offsets[1] - offsets[0] != static_cast<uint64_t>(stride) *
                                          detail::element_size(e.ref.dtype)) {
        throw corrupt("tensor '" + name + "' has data offsets outside its " +
                      std::to_string(data_size) + " data bytes or not matching its shape");
      }
      e.begin = offsets[0];
      e.bytes = offsets[1] - offsets[0];
      entries.push_back(std::move(e));
    } catch (const nlohmann::json::exception& ex) {
      throw corrupt("bad entry for '" + name + "' (" + ex.what() + ")");
    }
  }
  if (entries.empty()) throw corrupt("no tensors in the header");
  // File order is data order (the header is often sorted by name). The format forbids tensors
  // that share bytes.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.begin < b.begin; });
  for (size_t k = 1; k < entries.size(); ++k) {
    const Entry& prev = entries[k - 1];
    const uint64_t prev_end = prev.begin + prev.bytes;
    if (entries[k].begin < prev_end) {
      throw corrupt("tensors '" + prev.name + "' and '" + entries[k].name +
                    "' overlap in the data (bytes " + std::to_string(entries[k].begin) + " to " +
                    std::to_string(prev_end) + "), which the format forbids");
    }
  }
  TensorBudget budget(file.size(), path);
  StateDict out;
  for (const auto& e : entries) {
    const char* bytes = file.data() + data_start + e.begin;
    out.emplace_back(e.name, make_tensor(e.ref, bytes, file.size() - data_start - e.begin, path,
                                         e.name, budget));
  }
  return out;
}

// "a, b, c, d, e and 7 more"
std::string list_keys(const std::vector<std::string>& keys, const std::string& sep = ", ") {
  std::string s;
  const size_t shown = std::min<size_t>(keys.size(), 5);
  for (size_t k = 0; k < shown; ++k) s += (k ? sep : "") + keys[k];
  if (keys.size() > shown) s += " and " + std::to_string(keys.size() - shown) + " more";
  return s;
}

std::string count_of(size_t n, const std::string& one, const std::string& many) {
  return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

void save_safetensors(const std::string& path, const StateDict& state) {
  static const std::map<at::ScalarType, std::string> kNames = {
      {at::kFloat, "F32"}, {at::kDouble, "F64"}, {at::kLong, "I64"}};
  nlohmann::ordered_json header;
  std::string data;
  for (const auto& [name, tensor] : state) {
    const auto t = tensor.detach().to(at::kCPU).contiguous();
    auto it = kNames.find(t.scalar_type());
    if (it == kNames.end()) {
      throw Error(path + ": cannot write tensor '" + name + "' of dtype " +
                  std::string(c10::toString(t.scalar_type())) + " (float32, float64, int64 only)");
    }
    const size_t begin = data.size();
    data.append(static_cast<const char*>(t.data_ptr()), t.nbytes());
    header[name] = {{"dtype", it->second}, {"shape", t.sizes().vec()},
                    {"data_offsets", {begin, data.size()}}};
  }
  header["__metadata__"] = {{"format", "pt"}, {"writer", "cnnvis"}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const uint64_t n = text.size();
  std::string bytes(reinterpret_cast<const char*>(&n), 8);  // little-endian machines only
  write_file_atomic(path, bytes + text + data);
}

StateDict state_dict_of(torch::nn::Module& module) {
  StateDict out;
  for (const auto& p : module.named_parameters()) out.emplace_back(p.key(), p.value().detach());
  for (const auto& b : module.named_buffers()) out.emplace_back(b.key(), b.value().detach());
  return out;
}

const char* to_string(WeightFormat format) {
  switch (format) {
    case WeightFormat::kTorchZip: return "PyTorch zip";
    case WeightFormat::kTorchLegacy: return "PyTorch legacy";
    case WeightFormat::kSafetensors: return "safetensors";
  }
  return "?";
}

namespace {

// The format from the first bytes of a file of `file_size` bytes.
WeightFormat detect_format(const std::string& head, uint64_t file_size, const std::string& path) {
  if (head.empty()) throw Error(path + ": the file is empty; " + kFormatsHint);
  if (head.compare(0, 4, "PK\x03\x04", 4) == 0) return WeightFormat::kTorchZip;
  // Legacy: PROTO, maybe a FRAME (protocol 4+), then LONG1 of 10 bytes holding the magic number.
  if (head[0] == '\x80' &&
      head.find("\x8a\x0a" + std::string(kLegacyMagic, 10)) <= 2 + 9) {
    return WeightFormat::kTorchLegacy;
  }
  if (head.size() >= 9 && head[8] == '{') {
    uint64_t header_size = 0;
    std::memcpy(&header_size, head.data(), 8);
    if (header_size > file_size - 8) {
      throw Error(path + ": truncated safetensors file: the header claims " +
                  std::to_string(header_size) + " bytes but the file has " +
                  std::to_string(file_size) + "; download or save it again");
    }
    return WeightFormat::kSafetensors;
  }
  char hex[64] = "";
  for (size_t k = 0; k < std::min<size_t>(head.size(), 8); ++k) {
    std::snprintf(hex + 3 * k, 4, "%02x ", static_cast<unsigned char>(head[k]));
  }
  throw Error(path + ": not a weights file cnnvis can read: " + kFormatsHint +
              ", found the bytes " + std::string(hex).substr(0, std::strlen(hex) - 1));
}

std::string read_head(const std::string& path, size_t n, uint64_t* file_size) {
  check_regular_file(path, "weights file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) {
    throw Error(path + ": cannot open the weights file (" + std::strerror(errno) +
                "); check the path and its permissions");
  }
  *file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  std::string bytes(n, '\0');
  in.read(bytes.data(), static_cast<std::streamsize>(n));
  bytes.resize(static_cast<size_t>(in.gcount()));
  return bytes;
}

}  // namespace

WeightFormat detect_weight_format(const std::string& path) {
  uint64_t file_size = 0;
  const std::string head = read_head(path, 32, &file_size);
  return detect_format(head, file_size, path);
}

StateDict read_state_dict(const std::string& path) {
  switch (detect_weight_format(path)) {
    case WeightFormat::kTorchZip: {
      std::ifstream in(path, std::ios::binary);
      if (!in) throw Error(path + ": cannot open the weights file: " + std::strerror(errno));
      const uint64_t size = std::filesystem::file_size(path);
      return read_torch_zip(path, size, detail::stream_read_at(in), [&] {
        return std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
      });
    }
    case WeightFormat::kTorchLegacy:
      return read_torch_legacy(read_regular_file(path, "weights file"), path);
    case WeightFormat::kSafetensors:
      return read_safetensors(read_regular_file(path, "weights file"), path);
  }
  return {};
}

StateDict read_state_dict_bytes(const std::string& bytes, const std::string& source) {
  switch (detect_format(bytes.substr(0, 32), bytes.size(), source)) {
    case WeightFormat::kTorchZip:
      return read_torch_zip(source, bytes.size(), detail::memory_read_at(bytes), [&] {
        return std::make_unique<caffe2::serialize::PyTorchStreamReader>(
            std::make_shared<MemoryReadAdapter>(bytes));
      });
    case WeightFormat::kTorchLegacy: return read_torch_legacy(bytes, source);
    case WeightFormat::kSafetensors: return read_safetensors(bytes, source);
  }
  return {};
}

void assign_state_dict(torch::nn::Module& module, const StateDict& state,
                       const std::string& source) {
  // DataParallel checkpoints prefix every key with "module.".
  const std::string prefix = "module.";
  const bool strip = !state.empty() && std::all_of(state.begin(), state.end(), [&](auto& e) {
    return e.first.compare(0, prefix.size(), prefix) == 0;
  });
  std::map<std::string, const at::Tensor*> file;
  std::vector<std::string> file_order;
  for (const auto& [key, tensor] : state) {
    std::string name = strip ? key.substr(prefix.size()) : key;
    if (file.emplace(name, &tensor).second) file_order.push_back(name);
  }

  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& item : module.named_parameters(true)) {
    targets.emplace_back(item.key(), item.value());
  }
  for (const auto& item : module.named_buffers(true)) {
    targets.emplace_back(item.key(), item.value());
  }

  std::vector<std::string> missing, unexpected, mismatched;
  std::set<std::string> known;
  for (const auto& [name, target] : targets) {
    known.insert(name);
    if (!target.defined()) continue;
    auto it = file.find(name);
    if (it == file.end()) {
      missing.push_back(name);
    } else if (it->second->sizes() != target.sizes()) {
      mismatched.push_back(name + ": file has " + shape_string(it->second->sizes()) +
                           ", model expects " + shape_string(target.sizes()));
    }
  }
  for (const auto& name : file_order) {
    if (!known.count(name)) unexpected.push_back(name);
  }
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::string msg = source + ": does not fit this model:";
    std::string sep = " ";
    if (!missing.empty()) {
      msg += sep + count_of(missing.size(), "missing key", "missing keys") + " (" +
             list_keys(missing) + ")";
      sep = " and ";
    }
    if (!unexpected.empty()) {
      msg += sep + count_of(unexpected.size(), "unexpected key", "unexpected keys") + " (" +
             list_keys(unexpected) + ")";
      sep = " and ";
    }
    if (!mismatched.empty()) {
      msg += sep + count_of(mismatched.size(), "shape mismatch", "shape mismatches") + " (" +
             list_keys(mismatched, "; ") + ")";
    }
    msg += !missing.empty() && !unexpected.empty()
               ? "; is it a weights file for another architecture?"
               : "; was it saved from a model with the same layers and sizes?";
    throw Error(msg);
  }
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : targets) {
    if (!target.defined()) continue;
    try {
      target.copy_(*file.at(name));  // converts dtype and device, keeps requires_grad
    } catch (const c10::Error& e) {
      throw Error(source + ": cannot copy '" + name + "' into the model (" +
                  first_line(e.what_without_backtrace()) + ")");
    }
  }
}

}  // namespace cnnvis
