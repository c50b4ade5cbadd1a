#pragma once
// A minimal, safe reader of the pickles torch.save writes. It builds plain values (no code runs)
// and accepts only the globals a state_dict needs: OrderedDict, torch's tensor rebuild functions
// and storage types, set/frozenset. Tensors come out as descriptions (storage key, dtype, offset,
// sizes, strides); the caller attaches the storage bytes. Kept free of LibTorch so it compiles
// fast.
#include <cstddef>
#include <cstdint>
#include <deque>
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
// Containers know how deeply they nest (1 for a container of scalars), so that a hostile file
// cannot build structures deeper than kMaxPickleDepth.
struct PickleList : std::vector<PickleValue> {
  using std::vector<PickleValue>::vector;
  uint32_t depth = 1;
};
struct PickleDict : std::vector<std::pair<PickleValue, PickleValue>> {  // insertion order
  uint32_t depth = 1;
};

struct PickleValue {
  enum class Kind { kNone, kBool, kInt, kBigInt, kFloat, kString, kBytes, kTuple, kList, kDict,
                    kGlobal, kStorage, kTensor };

  Kind kind = Kind::kNone;
  int64_t i = 0;   // kBool, kInt
  double f = 0;    // kFloat
  std::string s;   // kString, kBytes, kGlobal ("module.name"), kBigInt (little-endian bytes)
  PickleList* list = nullptr;  // kTuple, kList: owned by the PickleArena
  PickleDict* dict = nullptr;  // kDict: owned by the PickleArena
  std::shared_ptr<TensorRef> tensor;  // kStorage (sizes empty), kTensor

  bool is_string() const { return kind == Kind::kString; }
};

// Owns every container an unpickle call builds. Values point into it, so memoized containers
// filled later (SETITEMS after BINPUT) stay the same object, as in Python, and a value never owns
// another: freeing is flat (no recursion, whatever the nesting) and reference cycles (a list
// appended to itself) cannot leak. The arena must outlive the values.
class PickleArena {
 public:
  PickleList* new_list() { return &lists_.emplace_back(); }
  PickleDict* new_dict() { return &dicts_.emplace_back(); }

 private:
  std::deque<PickleList> lists_;
  std::deque<PickleDict> dicts_;
};

// Limits on what one pickle may build. A state_dict nests a few levels and its values take about
// as many bytes as the pickle's text; these are far above that and keep hostile files (a memo
// entry copied a million times, a tuple nested 200 000 deep) from taking unbounded time and
// memory.
constexpr uint32_t kMaxPickleDepth = 1000;
// Bytes of values (strings included) one unpickle call may build: 16 x the input + 16 MiB, at
// most 1 GiB.
size_t pickle_budget(size_t input_size);

// Unpickles one object from data[*pos, size), advancing *pos past its STOP. Its containers live
// in `arena`. `source` (the file name) starts every error message. Throws cnnvis::Error for
// unknown opcodes, truncated data, globals outside the allow-list and pickles beyond the limits
// above. If `storages` is given, every storage the pickle references is recorded there (key ->
// element type), which the legacy format needs to read its data section.
PickleValue unpickle(const char* data, size_t size, size_t* pos, const std::string& source,
                     PickleArena& arena, std::map<std::string, DType>* storages = nullptr);

// "float32", "int64", ... for messages.
const char* dtype_name(DType dtype);

}  // namespace cnnvis::detail
