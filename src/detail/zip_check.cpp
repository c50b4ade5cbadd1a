#include "detail/zip_check.hpp"

#include <cnnvis/error.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstring>
#include <istream>
#include <stdexcept>
#include <vector>

namespace cnnvis::detail {
namespace {

// Record layouts (APPNOTE.TXT 4.3): the end of central directory record, the zip64 locator and
// record, a central directory header, a local file header.
constexpr uint32_t kEocdSig = 0x06054b50, kZip64LocatorSig = 0x07064b50,
                   kZip64EocdSig = 0x06064b50, kCentralSig = 0x02014b50, kLocalSig = 0x04034b50;
constexpr uint64_t kEocdSize = 22, kZip64LocatorSize = 20, kZip64EocdSize = 56,
                   kCentralSize = 46, kLocalSize = 30;
// A version record is a few ASCII digits and a newline; a serialization id a few dozen bytes.
constexpr uint64_t kMaxSmallRecord = 4096;

uint16_t le16(const unsigned char* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const unsigned char* p) {
  return static_cast<uint32_t>(le16(p)) | static_cast<uint32_t>(le16(p + 2)) << 16;
}
uint64_t le64(const unsigned char* p) {
  return static_cast<uint64_t>(le32(p)) | static_cast<uint64_t>(le32(p + 4)) << 32;
}

struct Entry {
  std::string name;
  uint16_t flags = 0, method = 0;
  uint32_t crc = 0, external = 0;
  uint64_t compressed = 0, uncompressed = 0, local_offset = 0;
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class Checker {
 public:
  Checker(const ReadAt& read, uint64_t size, const std::string& source)
      : read_(read), size_(size), source_(source) {}

  [[noreturn]] void fail(const std::string& why) const {
    throw Error(source_ + ": damaged PyTorch zip archive (" + why +
                "); download or save the file again");
  }

  std::string read(uint64_t pos, uint64_t n, const char* what) const {
    if (pos > size_ || n > size_ - pos) {
      fail(std::string(what) + " lies beyond the end of the file");
    }
    std::string out(static_cast<size_t>(n), '\0');
    if (n > 0 && read_(pos, out.data(), out.size()) != out.size()) {
      fail(std::string("cannot read ") + what);
    }
    return out;
  }

  // The central directory, found the way miniz finds it: the last end-of-central-directory
  // signature with a whole record after it, and the zip64 record when a locator precedes it.
  std::vector<Entry> entries() const {
    if (size_ < kEocdSize) fail("shorter than an end of central directory record");
    const uint64_t window = std::min<uint64_t>(size_, 0xffff + kEocdSize);
    const std::string tail = read(size_ - window, window, "the end of the file");
    const auto* t = reinterpret_cast<const unsigned char*>(tail.data());
    uint64_t eocd = UINT64_MAX;
    for (uint64_t i = window - kEocdSize + 1; i-- > 0;) {
      if (le32(t + i) == kEocdSig) {
        eocd = size_ - window + i;
        break;
      }
    }
    if (eocd == UINT64_MAX) fail("no end of central directory record");
    const auto* e = t + (eocd - (size_ - window));
    uint64_t total = le16(e + 10), cdir_size = le32(e + 12), cdir_offset = le32(e + 16);
    if (eocd >= kZip64LocatorSize + kZip64EocdSize) {
      const std::string locator =
          read(eocd - kZip64LocatorSize, kZip64LocatorSize, "the zip64 locator");
      const auto* l = reinterpret_cast<const unsigned char*>(locator.data());
      if (le32(l) == kZip64LocatorSig) {
        const uint64_t at = le64(l + 8);
        if (at > size_ - kZip64EocdSize) fail("the zip64 record lies beyond the end of the file");
        const std::string record = read(at, kZip64EocdSize, "the zip64 record");
        const auto* r = reinterpret_cast<const unsigned char*>(record.data());
        if (le32(r) == kZip64EocdSig) {
          total = le64(r + 32);
          cdir_size = le64(r + 40);
          cdir_offset = le64(r + 48);
        }
      }
    }
    if (total == 0) fail("the archive holds no records");
    if (total > cdir_size / kCentralSize) {
      fail("the central directory is too small for its records");
    }
    const std::string dir = read(cdir_offset, cdir_size, "the central directory");
    const auto* d = reinterpret_cast<const unsigned char*>(dir.data());
    std::vector<Entry> out;
    uint64_t p = 0;
    for (uint64_t k = 0; k < total; ++k) {
      if (dir.size() - p < kCentralSize || le32(d + p) != kCentralSig) {
        fail("central directory entry " + std::to_string(k) + " is damaged");
      }
      Entry entry;
      entry.flags = le16(d + p + 8);
      entry.method = le16(d + p + 10);
      entry.crc = le32(d + p + 16);
      entry.compressed = le32(d + p + 20);
      entry.uncompressed = le32(d + p + 24);
      const uint64_t name_len = le16(d + p + 28), extra_len = le16(d + p + 30),
                     comment_len = le16(d + p + 32);
      entry.external = le32(d + p + 38);
      entry.local_offset = le32(d + p + 42);
      if (dir.size() - p - kCentralSize < name_len + extra_len + comment_len) {
        fail("central directory entry " + std::to_string(k) + " is truncated");
      }
      entry.name = dir.substr(static_cast<size_t>(p + kCentralSize), static_cast<size_t>(name_len));
      zip64_fields(d + p + kCentralSize + name_len, extra_len, entry);
      out.push_back(std::move(entry));
      p += kCentralSize + name_len + extra_len + comment_len;
    }
    return out;
  }

  // Sizes and offsets of 0xffffffff are in the zip64 extra field (id 1), in this order.
  void zip64_fields(const unsigned char* extra, uint64_t n, Entry& entry) const {
    uint64_t* fields[] = {&entry.uncompressed, &entry.compressed, &entry.local_offset};
    const bool any = std::any_of(std::begin(fields), std::end(fields),
                                 [](const uint64_t* f) { return *f == 0xffffffff; });
    if (!any) return;
    for (uint64_t p = 0; p + 4 <= n;) {
      const uint16_t id = le16(extra + p), len = le16(extra + p + 2);
      if (p + 4 + len > n) break;
      if (id == 1) {
        uint64_t q = p + 4;
        for (uint64_t* f : fields) {
          if (*f != 0xffffffff) continue;
          if (q + 8 > p + 4 + len) fail("record '" + entry.name + "' has a short zip64 field");
          *f = le64(extra + q);
          q += 8;
        }
        return;
      }
      p += 4 + len;
    }
    fail("record '" + entry.name + "' lacks its zip64 field");
  }

  // A small record's bytes, as miniz's reader would extract them, or a one-line error.
  std::string small_record(const Entry& entry) const {
    const std::string& name = entry.name;
    // miniz takes a record as a folder (and extracts nothing into the buffer) if its name ends
    // with '/' or its MS-DOS attributes say so.
    if ((!name.empty() && name.back() == '/') || (entry.external & 0x10) != 0) {
      fail("record '" + name + "' is marked as a folder");
    }
    // Encrypted, compressed patch data, strong encryption (general purpose flags 0, 5, 6).
    if (entry.method != 0 || (entry.flags & 0x61) != 0) {
      fail("record '" + name + "' is compressed or encrypted; torch.save stores it as is");
    }
    if (entry.compressed != entry.uncompressed || entry.uncompressed > kMaxSmallRecord) {
      fail("record '" + name + "' has the size " + std::to_string(entry.uncompressed));
    }
    const std::string local = read(entry.local_offset, kLocalSize, "a local file header");
    const auto* h = reinterpret_cast<const unsigned char*>(local.data());
    if (le32(h) != kLocalSig) fail("record '" + name + "' has no local file header");
    const uint64_t data = entry.local_offset + kLocalSize + le16(h + 26) + le16(h + 28);
    std::string bytes = read(data, entry.uncompressed, "a record");
    if (crc32(bytes.data(), bytes.size()) != entry.crc) {
      fail("record '" + name + "' does not match its CRC-32");
    }
    return bytes;
  }

 private:
  const ReadAt& read_;
  uint64_t size_;
  const std::string& source_;
};

}  // namespace

ReadAt stream_read_at(std::istream& in) {
  return [&in](uint64_t pos, void* buf, size_t n) -> size_t {
    in.clear();
    in.seekg(static_cast<std::streamoff>(pos));
    in.read(static_cast<char*>(buf), static_cast<std::streamsize>(n));
    return static_cast<size_t>(in.gcount());
  };
}

ReadAt memory_read_at(const std::string& bytes) {
  return [&bytes](uint64_t pos, void* buf, size_t n) -> size_t {
    if (pos >= bytes.size()) return 0;
    n = std::min<size_t>(n, bytes.size() - static_cast<size_t>(pos));
    std::memcpy(buf, bytes.data() + pos, n);
    return n;
  };
}

bool is_torchscript_archive(const std::vector<std::string>& records) {
  auto code = [](const std::string& name) {
    return name == "constants.pkl" || name.compare(0, 5, "code/") == 0;
  };
  return std::any_of(records.begin(), records.end(), [&](const std::string& r) {
    const size_t slash = r.find('/');
    return code(r) || (slash != std::string::npos && code(r.substr(slash + 1)));
  });
}

uint32_t crc32(const void* data, size_t n) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xffffffffu;
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
  return c ^ 0xffffffffu;
}

void check_torch_zip(const ReadAt& read, uint64_t size, const std::string& source,
                     uint64_t min_version, uint64_t max_version) {
  const Checker checker(read, size, source);
  const std::vector<Entry> entries = checker.entries();
  const std::string& first = entries.front().name;
  const size_t slash = first.find('/');
  if (slash == std::string::npos) {
    checker.fail("its first record, '" + first.substr(0, 64) + "', is not in a folder");
  }
  const std::string folder = first.substr(0, slash + 1);
  // LibTorch looks records up by C string: a NUL in the folder's name would cut it short.
  if (folder.find('\0') != std::string::npos) {
    checker.fail("the name of its folder holds a NUL byte");
  }
  // miniz looks names up without regard to case; two candidates would make the pick arbitrary.
  auto find = [&](const std::string& record) -> const Entry* {
    const std::string wanted = lower(folder + record);
    const Entry* found = nullptr;
    for (const Entry& e : entries) {
      if (lower(e.name) != wanted) continue;
      if (found) checker.fail("it holds two records named '" + folder + record + "'");
      found = &e;
    }
    return found;
  };
  bool has_version = false;
  for (const char* record : {"version", ".data/version"}) {
    const Entry* entry = find(record);
    if (!entry) continue;
    has_version = true;
    const std::string text = checker.small_record(*entry);
    uint64_t version = 0;
    try {
      size_t used = 0;
      version = std::stoull(text, &used);  // as LibTorch reads it: digits, then anything
    } catch (const std::exception&) {
      checker.fail("its version record holds '" + text.substr(0, 32) + "', not a number");
    }
    if (version < min_version || version > max_version) {
      throw Error(source + ": PyTorch file format version " + std::to_string(version) +
                  ", but this LibTorch reads versions " + std::to_string(min_version) + " to " +
                  std::to_string(max_version) +
                  (version > max_version
                       ? "; it was saved by a newer PyTorch: build cnnvis against a newer "
                         "LibTorch, or save the file again with this version's PyTorch"
                       : "; load it with PyTorch and save it again"));
    }
  }
  if (!has_version) checker.fail("no version record in '" + folder + "'");
  if (const Entry* id = find(".data/serialization_id")) checker.small_record(*id);
}

}  // namespace cnnvis::detail
