#pragma once
// A minimal, safe reader of the pickles torch.save writes. It builds plain values (no code runs)
// and accepts only the globals a state_dict needs: OrderedDict, torch's tensor rebuild functions
// and storage types, set/frozenset. Tensors come out as descriptions (storage key, dtype, offset,
// sizes, strides); the caller attaches the storage bytes. Kept free of LibTorch so it compiles
// fast.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cnnvis::detail {

// Element types of torch storages and safetensors.
enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16, kInt64, kInt32, kInt16, kInt8,
                   kUInt8, kBool };

size_t element_size(DType dtype);

// A tensor as described by the pickle. Offsets and strides count elements; `view_offset` is
// the element offset of a legacy storage view into its root storage.
struct TensorRef {
  std::string storage_key;
  DType dtype = DType::kFloat32;
  int64_t storage_numel = 0;  // as declared in the persistent id
  int64_t storage_offset = 0;
  std::vector<int64_t> sizes, strides;
};

struct PickleValue;
using PickleList = std::vector<PickleValue>;
using PickleDict = std::vector<std::pair<PickleValue, PickleValue>>;  // insertion order

struct PickleValue {
  enum class Kind { kNone, kBool, kInt, kBigInt, kFloat, kString, kBytes, kTuple, kList, kDict,
                    kGlobal, kStorage, kTensor };
  Kind kind = Kind::kNone;
  int64_t i = 0;   // kBool, kInt
  double f = 0;    // kFloat
  std::string s;   // kString, kBytes, kGlobal ("module.name"), kBigInt (little-endian bytes)
  // Containers are shared so that memoized objects filled later (SETITEMS after BINPUT) stay
  // the same object, as in Python.
  std::shared_ptr<PickleList> list;  // kTuple, kList
  std::shared_ptr<PickleDict> dict;  // kDict
  std::shared_ptr<TensorRef> tensor;  // kStorage (sizes empty), kTensor

  bool is_string() const { return kind == Kind::kString; }
};

// Unpickles one object from data[*pos, size), advancing *pos past its STOP. `source` (the file
// name) starts every error message. Throws cnnvis::Error for unknown opcodes, truncated data and
// globals outside the allow-list. If `storages` is given, every storage the pickle references is
// recorded there (key -> element type), which the legacy format needs to read its data section.
PickleValue unpickle(const char* data, size_t size, size_t* pos, const std::string& source,
                     std::map<std::string, DType>* storages = nullptr);

// "float32", "int64", ... for messages.
const char* dtype_name(DType dtype);

}  // namespace cnnvis::detail
