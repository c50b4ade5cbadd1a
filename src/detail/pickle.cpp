#include "detail/pickle.hpp"

#include <cnnvis/error.hpp>

#include <cstdio>
#include <cstring>
#include <unordered_map>

namespace cnnvis::detail {

size_t element_size(DType dtype) {
  switch (dtype) {
    case DType::kFloat64: case DType::kInt64: return 8;
    case DType::kFloat32: case DType::kInt32: return 4;
    case DType::kFloat16: case DType::kBFloat16: case DType::kInt16: return 2;
    default: return 1;
  }
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::kFloat32: return "float32";
    case DType::kFloat64: return "float64";
    case DType::kFloat16: return "float16";
    case DType::kBFloat16: return "bfloat16";
    case DType::kInt64: return "int64";
    case DType::kInt32: return "int32";
    case DType::kInt16: return "int16";
    case DType::kInt8: return "int8";
    case DType::kUInt8: return "uint8";
    case DType::kBool: return "bool";
  }
  return "?";
}

namespace {

using Kind = PickleValue::Kind;
constexpr size_t kMaxDims = 64;

// torch.<Name>Storage -> element type.
bool storage_dtype(const std::string& global, DType* dtype) {
  static const std::pair<const char*, DType> kStorages[] = {
      {"FloatStorage", DType::kFloat32}, {"DoubleStorage", DType::kFloat64},
      {"HalfStorage", DType::kFloat16},  {"BFloat16Storage", DType::kBFloat16},
      {"LongStorage", DType::kInt64},    {"IntStorage", DType::kInt32},
      {"ShortStorage", DType::kInt16},   {"CharStorage", DType::kInt8},
      {"ByteStorage", DType::kUInt8},    {"BoolStorage", DType::kBool}};
  // Old files pickled GPU storages as torch.cuda.<Name>Storage; the bytes are the same.
  for (const char* prefix : {"torch.", "torch.cuda."}) {
    for (const auto& [name, type] : kStorages) {
      if (global == std::string(prefix) + name) {
        *dtype = type;
        return true;
      }
    }
  }
  return false;
}

bool allowed_global(const std::string& name) {
  static const char* const kAllowed[] = {
      "collections.OrderedDict",          "torch._utils._rebuild_tensor_v2",
      "torch._utils._rebuild_tensor",     "torch._utils._rebuild_parameter",
      "torch._utils._rebuild_parameter_with_state",
      "builtins.set",  "builtins.frozenset", "__builtin__.set", "__builtin__.frozenset",
      "_codecs.encode"};  // protocol 2 pickles bytes as _codecs.encode(str, "latin1")
  for (const char* allowed : kAllowed) {
    if (name == allowed) return true;
  }
  DType unused;
  return storage_dtype(name, &unused);
}

uint32_t depth_of(const PickleValue& v) {
  if (v.list) return v.list->depth;
  if (v.dict) return v.dict->depth;
  return 0;
}

}  // namespace

size_t pickle_budget(size_t input_size) {
  constexpr size_t kFloor = size_t{16} << 20, kCeiling = size_t{1} << 30;
  if (input_size > (kCeiling - kFloor) / 16) return kCeiling;
  return 16 * input_size + kFloor;
}

namespace {

class Unpickler {
 public:
  Unpickler(const char* data, size_t size, size_t pos, const std::string& source,
            PickleArena& arena, std::map<std::string, DType>* storages)
      : data_(data), size_(size), pos_(pos), source_(source), arena_(arena),
        storages_(storages), budget_(pickle_budget(size)) {}

  PickleValue run();
  size_t pos() const { return pos_; }

 private:
  PickleValue make(Kind kind) {
    PickleValue v;
    v.kind = kind;
    if (kind == Kind::kTuple || kind == Kind::kList) v.list = arena_.new_list();
    if (kind == Kind::kDict) v.dict = arena_.new_dict();
    charge(v);
    return v;
  }
  // Every value built or copied is paid for from the budget (strings by their length), so that
  // time and memory stay proportional to the file whatever its opcodes repeat.
  void charge(const PickleValue& v, size_t count = 1) {
    const size_t cost = (sizeof(PickleValue) + v.s.size()) * count;
    if (cost > budget_) {
      throw Error(source_ + ": refusing to load: the pickle builds more than " +
                  std::to_string(pickle_budget(size_) >> 20) + " MiB of values from " +
                  std::to_string(size_) + " bytes, which no state_dict does; the file is "
                  "damaged or crafted");
    }
    budget_ -= cost;
  }
  PickleValue copy(const PickleValue& v) {
    charge(v);
    return v;
  }
  // Records that `item` now sits inside a container of depth `*depth`.
  void nest(uint32_t* depth, const PickleValue& item) {
    const uint32_t d = depth_of(item) + 1;
    if (d > kMaxPickleDepth) {
      throw Error(source_ + ": refusing to load: the pickle nests containers more than " +
                  std::to_string(kMaxPickleDepth) + " levels deep, which no state_dict does; "
                  "the file is damaged or crafted");
    }
    if (d > *depth) *depth = d;
  }
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(source_ + ": corrupt pickle at byte " + std::to_string(pos_) + ": " + what +
                "; the file is damaged or not a PyTorch weights file; download or save it again");
  }
  const char* take(size_t n) {
    if (n > size_ - pos_) {
      throw Error(source_ + ": truncated: the pickle at byte " + std::to_string(pos_) +
                  " needs " + std::to_string(n) + " more bytes but the file ends; the file is "
                  "incomplete, download or save it again");
    }
    const char* p = data_ + pos_;
    pos_ += n;
    return p;
  }
  uint64_t uint_le(size_t n) {
    const auto* p = reinterpret_cast<const unsigned char*>(take(n));
    uint64_t v = 0;
    for (size_t k = 0; k < n; ++k) v |= uint64_t{p[k]} << (8 * k);
    return v;
  }
  std::string bytes(uint64_t n) {
    if (n > size_) take(size_ + 1);  // reports truncation without overflowing size_t math
    const char* p = take(static_cast<size_t>(n));
    return std::string(p, static_cast<size_t>(n));
  }
  std::string line() {
    const void* nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
    if (!nl) take(size_ - pos_ + 1);
    size_t n = static_cast<const char*>(nl) - (data_ + pos_);
    std::string s(take(n), n);
    take(1);
    return s;
  }

  PickleValue pop() {
    if (stack_.size() <= mark_floor()) fail("pop from an empty stack");
    PickleValue v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  PickleValue& top() {
    if (stack_.size() <= mark_floor()) fail("empty stack");
    return stack_.back();
  }
  size_t mark_floor() const { return marks_.empty() ? 0 : marks_.back(); }
  PickleList pop_mark() {
    if (marks_.empty()) fail("missing MARK");
    PickleList items(std::make_move_iterator(stack_.begin() + marks_.back()),
                     std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  PickleValue sequence(Kind kind, PickleList items) {
    PickleValue v = make(kind);
    for (const auto& item : items) nest(&v.list->depth, item);
    static_cast<std::vector<PickleValue>&>(*v.list) = std::move(items);
    return v;
  }
  void push_global(const std::string& module, const std::string& name) {
    std::string full = module + "." + name;
    if (!allowed_global(full)) {
      throw Error(source_ + ": refusing to load: the pickle names the global '" + full +
                  "', which a state_dict never needs; only tensors and containers are allowed "
                  "(save the weights with torch.save(model.state_dict(), path))");
    }
    PickleValue v = make(Kind::kGlobal);
    v.s = std::move(full);
    stack_.push_back(std::move(v));
  }
  void set_items(PickleValue& target, PickleList& items) {
    if (target.kind != Kind::kDict) fail("SETITEM on a non-dict");
    if (items.size() % 2) fail("odd number of SETITEMS arguments");
    for (size_t k = 0; k < items.size(); k += 2) {
      nest(&target.dict->depth, items[k]);
      nest(&target.dict->depth, items[k + 1]);
      target.dict->emplace_back(std::move(items[k]), std::move(items[k + 1]));
    }
  }
  void append_items(PickleValue& target, PickleList& items) {
    if (target.kind != Kind::kList) fail("APPEND on a non-list");
    for (auto& item : items) {
      nest(&target.list->depth, item);
      target.list->push_back(std::move(item));
    }
  }
  int64_t as_int(const PickleValue& v, const char* what) {
    if (v.kind != Kind::kInt && v.kind != Kind::kBool) fail(std::string(what) + " not an int");
    return v.i;
  }
  std::vector<int64_t> int_tuple(const PickleValue& v, const char* what) {
    if (v.kind != Kind::kTuple && v.kind != Kind::kList) {
      fail(std::string(what) + " not a tuple");
    }
    std::vector<int64_t> out;
    for (const auto& item : *v.list) out.push_back(as_int(item, what));
    return out;
  }
  PickleValue persistent_load(const PickleValue& pid);
  PickleValue call(const PickleValue& callable, const PickleValue& args);

  const char* data_;
  size_t size_, pos_;
  const std::string& source_;
  PickleArena& arena_;
  std::map<std::string, DType>* storages_;
  size_t budget_;
  std::vector<PickleValue> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue> memo_;
};

// ('storage', storage_type, key, location, numel[, view_metadata]) in both torch formats.
PickleValue Unpickler::persistent_load(const PickleValue& pid) {
  if (pid.kind != Kind::kTuple || pid.list->size() < 5 || !(*pid.list)[0].is_string() ||
      (*pid.list)[0].s != "storage") {
    fail("persistent id is not a ('storage', ...) tuple");
  }
  const PickleList& f = *pid.list;
  PickleValue v = make(Kind::kStorage);
  v.tensor = std::make_shared<TensorRef>();
  if (f[1].kind != Kind::kGlobal || !storage_dtype(f[1].s, &v.tensor->dtype)) {
    fail("persistent id without a storage type");
  }
  if (f[2].is_string()) {
    v.tensor->storage_key = f[2].s;
  } else {
    v.tensor->storage_key = std::to_string(as_int(f[2], "storage key"));
  }
  v.tensor->storage_numel = as_int(f[4], "storage size");
  if (storages_) (*storages_)[v.tensor->storage_key] = v.tensor->dtype;
  if (f.size() > 5 && f[5].kind == Kind::kTuple && f[5].list->size() == 3) {
    v.tensor->storage_offset = as_int((*f[5].list)[1], "view offset");  // legacy storage view
  }
  return v;
}

PickleValue Unpickler::call(const PickleValue& callable, const PickleValue& args) {
  if (callable.kind != Kind::kGlobal) fail("REDUCE of a non-callable");
  if (args.kind != Kind::kTuple) fail("REDUCE arguments are not a tuple");
  const std::string& name = callable.s;
  const PickleList& a = *args.list;
  if (name == "collections.OrderedDict") {
    PickleValue d = make(Kind::kDict);
    if (!a.empty() && a[0].kind == Kind::kList) {  // OrderedDict([(k, v), ...])
      for (const auto& pair : *a[0].list) {
        if (pair.kind != Kind::kTuple || pair.list->size() != 2) fail("bad OrderedDict item");
        for (const auto& item : *pair.list) nest(&d.dict->depth, item);
        d.dict->emplace_back(copy((*pair.list)[0]), copy((*pair.list)[1]));
      }
    }
    return d;
  }
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    if (a.size() < 4 || a[0].kind != Kind::kStorage) fail("bad tensor arguments");
    PickleValue t = make(Kind::kTensor);
    t.tensor = std::make_shared<TensorRef>(*a[0].tensor);
    t.tensor->storage_offset += as_int(a[1], "storage offset");
    t.tensor->sizes = int_tuple(a[2], "tensor size");
    t.tensor->strides = int_tuple(a[3], "tensor stride");
    if (t.tensor->sizes.size() > kMaxDims) fail("a tensor with more than 64 dimensions");
    if (t.tensor->sizes.size() != t.tensor->strides.size()) fail("size and stride differ");
    return t;
  }
  if (name.rfind("torch._utils._rebuild_parameter", 0) == 0) {
    if (a.empty() || a[0].kind != Kind::kTensor) fail("bad parameter arguments");
    return copy(a[0]);
  }
  // set / frozenset: a list suffices here.
  if (name.size() > 3 && name.compare(name.size() - 3, 3, "set") == 0) {
    PickleValue l = make(Kind::kList);
    if (!a.empty() && (a[0].kind == Kind::kList || a[0].kind == Kind::kTuple)) {
      l.list->reserve(a[0].list->size());
      for (const auto& item : *a[0].list) {
        nest(&l.list->depth, item);
        l.list->push_back(copy(item));
      }
    }
    return l;
  }
  if (name == "_codecs.encode") {
    if (a.empty() || !a[0].is_string()) fail("bad _codecs.encode arguments");
    PickleValue b = make(Kind::kBytes);
    const std::string& s = a[0].s;
    charge(a[0]);  // UTF-8 of code points < 256 -> latin-1 bytes
    for (size_t k = 0; k < s.size(); ++k) {
      auto c = static_cast<unsigned char>(s[k]);
      if (c >= 0xc0 && k + 1 < s.size()) {
        b.s.push_back(static_cast<char>(((c & 0x1f) << 6) | (s[++k] & 0x3f)));
      } else {
        b.s.push_back(static_cast<char>(c));
      }
    }
    return b;
  }
  fail("'" + name + "' cannot be called");
}

PickleValue Unpickler::run() {
  for (;;) {
    const auto op = static_cast<unsigned char>(*take(1));
    switch (op) {
      case 0x80: take(1); break;                      // PROTO
      case 0x95: take(8); break;                      // FRAME: frames are read inline
      case '.': {                                     // STOP
        PickleValue v = pop();
        return v;
      }
      case '(': marks_.push_back(stack_.size()); break;  // MARK
      case '0': pop(); break;                         // POP
      case '1': pop_mark(); break;                    // POP_MARK
      case '2': stack_.push_back(copy(top())); break;  // DUP
      case 'N': stack_.push_back(make(Kind::kNone)); break;
      case 0x88: case 0x89: {                         // NEWTRUE, NEWFALSE
        PickleValue v = make(Kind::kBool);
        v.i = op == 0x88;
        stack_.push_back(std::move(v));
        break;
      }
      case 'J': case 'K': case 'M': {                 // BININT, BININT1, BININT2
        PickleValue v = make(Kind::kInt);
        v.i = op == 'J' ? static_cast<int32_t>(uint_le(4)) : static_cast<int64_t>(
                                                                 uint_le(op == 'K' ? 1 : 2));
        stack_.push_back(std::move(v));
        break;
      }
      case 0x8a: case 0x8b: {                         // LONG1, LONG4
        std::string raw = bytes(op == 0x8a ? uint_le(1) : uint_le(4));
        PickleValue v = make(Kind::kInt);
        if (raw.size() > 8) {
          v.kind = Kind::kBigInt;
          v.s = std::move(raw);
        } else if (!raw.empty()) {
          uint64_t u = 0;
          for (size_t k = 0; k < raw.size(); ++k) {
            u |= uint64_t{static_cast<unsigned char>(raw[k])} << (8 * k);
          }
          if (raw.size() < 8 && (raw.back() & 0x80)) u |= ~uint64_t{0} << (8 * raw.size());
          v.i = static_cast<int64_t>(u);
        }
        stack_.push_back(std::move(v));
        break;
      }
      case 'G': {                                     // BINFLOAT, big-endian
        uint64_t u = 0;
        const auto* p = reinterpret_cast<const unsigned char*>(take(8));
        for (int k = 0; k < 8; ++k) u = (u << 8) | p[k];
        PickleValue v = make(Kind::kFloat);
        std::memcpy(&v.f, &u, 8);
        stack_.push_back(std::move(v));
        break;
      }
      case 'X': case 0x8c: case 0x8d:                 // BINUNICODE, SHORT_, 8
      case 'T': case 'U':                             // BINSTRING, SHORT_BINSTRING
      case 'B': case 'C': case 0x8e: case 0x96: {     // BINBYTES, SHORT_, 8, BYTEARRAY8
        size_t n = (op == 0x8c || op == 'U' || op == 'C') ? 1
                   : (op == 0x8d || op == 0x8e || op == 0x96) ? 8 : 4;
        PickleValue v = make(op == 'X' || op == 0x8c || op == 0x8d || op == 'T' || op == 'U'
                                 ? Kind::kString : Kind::kBytes);
        v.s = bytes(uint_le(n));
        charge(v);
        stack_.push_back(std::move(v));
        break;
      }
      case 'c': {                                     // GLOBAL "module\nname\n"
        std::string module = line();
        push_global(module, line());
        break;
      }
      case 0x93: {                                    // STACK_GLOBAL
        PickleValue name = pop(), module = pop();
        if (!name.is_string() || !module.is_string()) fail("STACK_GLOBAL needs two strings");
        push_global(module.s, name.s);
        break;
      }
      case 'q': case 'r': case 0x94: {                // BINPUT, LONG_BINPUT, MEMOIZE
        uint64_t key = op == 'q' ? uint_le(1) : op == 'r' ? uint_le(4) : memo_.size();
        memo_[key] = copy(top());
        break;
      }
      case 'h': case 'j': {                           // BINGET, LONG_BINGET
        auto it = memo_.find(uint_le(op == 'h' ? 1 : 4));
        if (it == memo_.end()) fail("BINGET of an unknown memo entry");
        stack_.push_back(copy(it->second));
        break;
      }
      case '}': stack_.push_back(make(Kind::kDict)); break;   // EMPTY_DICT
      case ']': stack_.push_back(make(Kind::kList)); break;   // EMPTY_LIST
      case 0x8f: stack_.push_back(make(Kind::kList)); break;  // EMPTY_SET, kept as a list
      case ')': stack_.push_back(make(Kind::kTuple)); break;  // EMPTY_TUPLE
      case 't': stack_.push_back(sequence(Kind::kTuple, pop_mark())); break;  // TUPLE
      case 0x85: case 0x86: case 0x87: {              // TUPLE1, TUPLE2, TUPLE3
        PickleList items(op - 0x84);
        for (size_t k = items.size(); k-- > 0;) items[k] = pop();
        stack_.push_back(sequence(Kind::kTuple, std::move(items)));
        break;
      }
      case 'l': case 0x91: {                          // LIST, FROZENSET
        stack_.push_back(sequence(Kind::kList, pop_mark()));
        break;
      }
      case 'd': {                                     // DICT
        PickleList items = pop_mark();
        PickleValue v = make(Kind::kDict);
        set_items(v, items);
        stack_.push_back(std::move(v));
        break;
      }
      case 's': {                                     // SETITEM
        PickleList items(2);
        items[1] = pop();
        items[0] = pop();
        set_items(top(), items);
        break;
      }
      case 'u': {                                     // SETITEMS
        PickleList items = pop_mark();
        set_items(top(), items);
        break;
      }
      case 'a': {                                     // APPEND
        PickleList items{pop()};
        append_items(top(), items);
        break;
      }
      case 'e': case 0x90: {                          // APPENDS, ADDITEMS
        PickleList items = pop_mark();
        append_items(top(), items);
        break;
      }
      case 'Q': {                                     // BINPERSID
        PickleValue pid = pop();
        stack_.push_back(persistent_load(pid));
        break;
      }
      case 'R': case 0x81: {                          // REDUCE, NEWOBJ
        PickleValue args = pop();
        PickleValue callable = pop();
        stack_.push_back(call(callable, args));
        break;
      }
      case 0x92: {                                    // NEWOBJ_EX (kwargs ignored)
        pop();
        PickleValue args = pop();
        PickleValue callable = pop();
        stack_.push_back(call(callable, args));
        break;
      }
      case 'b': pop(); top(); break;  // BUILD: state such as OrderedDict._metadata is not needed
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        --pos_;
        fail(std::string("unsupported opcode ") + hex);
      }
    }
  }
}

}  // namespace

PickleValue unpickle(const char* data, size_t size, size_t* pos, const std::string& source,
                     PickleArena& arena, std::map<std::string, DType>* storages) {
  if (*pos > size) *pos = size;
  Unpickler unpickler(data, size, *pos, source, arena, storages);
  PickleValue v = unpickler.run();
  *pos = unpickler.pos();
  return v;
}

}  // namespace cnnvis::detail
