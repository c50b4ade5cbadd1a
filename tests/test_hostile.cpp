// Hostile and malformed files against every reader (issue 15): each case is a regression test of
// a defect found by hand or by the fuzzers (tests/fuzz/), built here byte by byte so that nothing
// large is committed. Before its fix, each of these crashed (stack overflow while freeing deep
// pickles), ran for minutes or took gigabytes (memo + set() copies, a 20000x20000 PNG, a 4 TB
// .npy shape), hung (a FIFO, /dev/zero) or accepted a file that means nothing.
#include <caffe2/serialize/inline_container.h>
#include <cnnvis/error.hpp>
#include <cnnvis/image.hpp>
#include <cnnvis/io/npy.hpp>
#include <cnnvis/models/weights.hpp>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <torch/torch.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "detail/pickle.hpp"
#include "detail/zip_check.hpp"
#include "expect_error.hpp"

namespace cnnvis {
namespace {

using testing::expect_error;
namespace fs = std::filesystem;

// pickle.dumps(0x1950a86a20f9469cfc6c)'s payload, as in weights.cpp.
const std::string kLegacyMagic("\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19", 10);

// A legacy torch.save file whose fourth pickle (the object) is `object_ops` (opcodes, without
// PROTO and STOP), followed by an empty storage-key list.
std::string legacy_file(const std::string& object_ops) {
  std::string f;
  f += "\x80\x02\x8a\x0a" + kLegacyMagic + ".";      // magic number
  f += std::string("\x80\x02M\xe9\x03.", 6);           // protocol version 1001
  f += "\x80\x02}.";                                   // sys_info
  f += "\x80\x02" + object_ops + ".";                  // the object
  f += "\x80\x02].";                                   // storage keys
  return f;
}

// A PyTorch zip archive ("archive/<name>" records) in memory.
std::string zip_file(const std::vector<std::pair<std::string, std::string>>& records) {
  std::string out;
  {
    caffe2::serialize::PyTorchStreamWriter writer([&](const void* data, size_t n) {
      out.append(static_cast<const char*>(data), n);
      return n;
    });
    for (const auto& [name, bytes] : records) writer.writeRecord(name, bytes.data(), bytes.size());
    writer.writeEndOfFile();
  }
  return out;
}

std::string repeat(const std::string& s, size_t n) {
  std::string out;
  out.reserve(s.size() * n);
  for (size_t k = 0; k < n; ++k) out += s;
  return out;
}

detail::PickleValue unpickle(const std::string& ops, detail::PickleArena& arena) {
  const std::string data = "\x80\x02" + ops + ".";
  size_t pos = 0;
  return detail::unpickle(data.data(), data.size(), &pos, "test.pkl", arena);
}

// The committed fuzzer findings of a harness (tests/fuzz/regressions/<harness>/): name, bytes.
std::vector<std::pair<std::string, std::string>> regression_inputs(const std::string& harness) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& entry :
       fs::directory_iterator(fs::path(CNNVIS_SOURCE_DIR) / "tests/fuzz/regressions" / harness)) {
    std::ifstream in(entry.path(), std::ios::binary);
    out.emplace_back(entry.path().filename().string(),
                     std::string((std::istreambuf_iterator<char>(in)), {}));
  }
  EXPECT_FALSE(out.empty()) << harness;
  return out;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class HostileFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("cnnvis_hostile_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << bytes;
    return path;
  }
  fs::path dir_;
};

// ---- the pickle VM ----

TEST(Hostile, DeeplyNestedTuplesAreRefusedNotFreedRecursively) {
  // ) then TUPLE1 x 200 000: a tuple nested 200 000 deep in a 200 KB legacy file. Freeing it
  // recursively overflowed the stack (SIGSEGV) in every command that loads weights.
  const std::string file = legacy_file(")" + std::string(200000, '\x85'));
  expect_error([&] { read_state_dict_bytes(file, "deep.pth"); },
               "deep.pth: refusing to load: the pickle nests containers more than 1000 levels");
  // Exactly at the limit is fine for the VM (the weights reader then finds no state_dict).
  detail::PickleArena arena;
  const auto v = unpickle(")" + std::string(detail::kMaxPickleDepth - 1, '\x85'), arena);
  EXPECT_EQ(v.list->depth, detail::kMaxPickleDepth);
}

TEST(Hostile, DeeplyNestedListsInAZipAreRefused) {
  // 200 000 empty lists, then APPEND each into the one below: nested lists in a 400 KB zip .pth.
  const size_t n = 200000;
  const std::string pkl = "\x80\x02" + std::string(n, ']') + std::string(n - 1, 'a') + ".";
  const std::string file = zip_file({{"data.pkl", pkl}});
  expect_error([&] { read_state_dict_bytes(file, "lists.pth"); },
               "lists.pth: refusing to load: the pickle nests containers more than 1000 levels");
}

TEST(Hostile, RepeatedSetCopiesAreBounded) {
  // A 10 000-element list in the memo, then set(memo[1]) 100 000 times (7 bytes each): every
  // call copied the list, 10^9 element copies from a 710 KB file.
  std::string ops = std::string("c__builtin__\nset\nq\x00]q\x01(", 23) + std::string(10000, 'N') + "e0";
  ops += repeat(std::string("h\x00h\x01\x85R0", 7), 100000);
  ops += "N";
  const std::string file = legacy_file(ops);
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { read_state_dict_bytes(file, "sets.pth"); },
               "sets.pth: refusing to load: the pickle builds more than");
  EXPECT_LT(seconds_since(start), 10.0);
}

TEST(Hostile, RepeatedStringCopiesAreBounded) {
  // DUP of a 1 MB string 1 000 000 times would build a terabyte from a 2 MB file.
  std::string ops = "X" + std::string("\x00\x00\x10\x00", 4) + std::string(1 << 20, 's');
  ops += std::string(1000000, '2');
  expect_error([&] { read_state_dict_bytes(legacy_file(ops), "dups.pth"); },
               "dups.pth: refusing to load: the pickle builds more than");
}

TEST(Hostile, SelfContainingContainersLoadAndAreOwnedByTheArena) {
  // A list appended into itself (the 21-byte legacy file) and a dict holding itself: reference
  // cycles that shared ownership never freed (LeakSanitizer: scripts/leak-check.sh).
  detail::PickleArena arena;
  const auto list = unpickle(std::string("]q\x00h\x00" "a", 6), arena);
  ASSERT_EQ(list.kind, detail::PickleValue::Kind::kList);
  ASSERT_EQ(list.list->size(), 1u);
  EXPECT_EQ((*list.list)[0].list, list.list);  // the same object, as in Python
  const auto dict = unpickle(std::string("}q\x00K\x01h\x00s", 8), arena);
  ASSERT_EQ(dict.dict->size(), 1u);
  EXPECT_EQ((*dict.dict)[0].second.dict, dict.dict);
  // Through the weights reader: no tensors, one line.
  expect_error([&] { read_state_dict_bytes(legacy_file(std::string("}q\x00K\x01h\x00s", 8)),
                                           "cycle.pth"); },
               "cycle.pth: contains no tensors");
}

std::string binunicode(const std::string& s) {
  std::string out = "X";
  const uint32_t n = s.size();
  out.append(reinterpret_cast<const char*>(&n), 4);
  return out + s;
}

TEST(Hostile, ZeroStridesCannotExpandASmallFile) {
  // {'w': tensor of 10^9 elements with stride 0 over a 1-element storage}: every element lies
  // inside the storage, but .contiguous() would materialize 4 GB from a 200-byte file.
  std::string ops = "}" + binunicode("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" +
                    binunicode("storage") + "ctorch\nFloatStorage\n" + binunicode("0") +
                    binunicode("cpu") + "K\x01tQK";
  ops += std::string("\x00J\x00\xca\x9a\x3b\x85K\x00\x85\x89tRs", 14);
  std::string file = legacy_file(ops);
  file.resize(file.size() - 4);  // drop the empty key list; list the storage '0' instead
  file += "\x80\x02(" + binunicode("0") + "l.";
  const uint64_t count = 1;
  file.append(reinterpret_cast<const char*>(&count), 8);
  file += std::string(4, '\0');
  expect_error([&] { read_state_dict_bytes(file, "stride0.pth"); },
               "stride0.pth: refusing to load: tensor 'w' and those before it would take more "
               "than");
}

// ---- weights files: what they are and what they are not ----

TEST_F(HostileFiles, WeightsThatAreNotRegularFilesAreNamedForWhatTheyAre) {
  expect_error([&] { read_state_dict(dir_.string()); },
               dir_.string() + ": is a folder, not a weights file");
  const std::string fifo = (dir_ / "fifo.pth").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { read_state_dict(fifo); }, "fifo.pth: is a FIFO (named pipe), not a weights");
  expect_error([&] { read_state_dict("/dev/zero"); }, "/dev/zero: is a character device");
  expect_error([&] { read_state_dict((dir_ / "none.pth").string()); },
               "none.pth: cannot open the weights file (no such file)");
}

TEST(Hostile, TorchScriptArchivesAsWeightsSayWhatTheyAre) {
  // torch.jit.save also writes data.pkl (the module's attributes, pickled with __torch__
  // globals): its other records must be recognized first.
  const std::string pkl("\x80\x02" "c__torch__\nNet\n)\x81.", 20);
  const std::string file = zip_file(
      {{"data.pkl", pkl}, {"constants.pkl", "\x80\x02)."}, {"code/__torch__.py", "x"}});
  expect_error([&] { read_state_dict_bytes(file, "net.pt"); },
               "net.pt: is a TorchScript archive (torch.jit.save), not a state_dict");
}

// A zip archive written field by field (stored records, APPNOTE 4.3), for layouts that
// PyTorchStreamWriter never writes. `method` and `crc_delta` damage the first record.
struct RawRecord {
  std::string name, data;
  uint16_t method = 0;
  uint32_t crc_delta = 0;
  uint32_t external = 0;  // external attributes (0x10: an MS-DOS folder)
};
std::string raw_zip(const std::vector<RawRecord>& records) {
  auto put16 = [](std::string& s, uint32_t v) { s += char(v & 0xff); s += char(v >> 8 & 0xff); };
  auto put32 = [&](std::string& s, uint32_t v) { put16(s, v & 0xffff); put16(s, v >> 16); };
  std::string out, dir;
  for (const auto& r : records) {
    const uint32_t crc = detail::crc32(r.data.data(), r.data.size()) + r.crc_delta;
    const uint32_t offset = static_cast<uint32_t>(out.size());
    put32(out, 0x04034b50); put16(out, 20); put16(out, 0); put16(out, r.method);
    put32(out, 0); put32(out, crc); put32(out, r.data.size()); put32(out, r.data.size());
    put16(out, r.name.size()); put16(out, 0);
    out += r.name + r.data;
    put32(dir, 0x02014b50); put16(dir, 20); put16(dir, 20); put16(dir, 0); put16(dir, r.method);
    put32(dir, 0); put32(dir, crc); put32(dir, r.data.size()); put32(dir, r.data.size());
    put16(dir, r.name.size()); put16(dir, 0); put16(dir, 0); put16(dir, 0); put16(dir, 0);
    put32(dir, r.external); put32(dir, offset);
    dir += r.name;
  }
  const uint32_t dir_offset = static_cast<uint32_t>(out.size());
  out += dir;
  put32(out, 0x06054b50); put16(out, 0); put16(out, 0);
  put16(out, records.size()); put16(out, records.size());
  put32(out, dir.size()); put32(out, dir_offset); put16(out, 0);
  return out;
}

// LibTorch's PyTorchStreamReader leaked miniz's state whenever its constructor threw after
// opening the zip (a missing or bad version record, a record outside a folder: LeakSanitizer
// in tests/fuzz/fuzz_weights), and let std::out_of_range from its std::stoull escape. These
// layouts are now refused before the reader is made, each with its own line.
TEST(Hostile, ZipLayoutsThatLibTorchsReaderLeaksOnAreRefusedFirst) {
  const std::string pkl("\x80\x02}q\x00.", 6);  // an empty dict
  // The writer's own archive passes the zip checks, and so does a hand-made one: both reach
  // the pickle (an empty dict, refused as holding no tensors).
  expect_error([&] { read_state_dict_bytes(zip_file({{"data.pkl", pkl}}), "ok.pth"); },
               "ok.pth: contains no tensors");
  expect_error([&] {
    read_state_dict_bytes(raw_zip({{"a/version", "3\n"}, {"a/data.pkl", pkl}}), "raw.pth");
  }, "raw.pth: contains no tensors");
  const std::pair<std::vector<RawRecord>, std::string> cases[] = {
      {{{"a/version", "0\n"}, {"a/data.pkl", pkl}},
       "x.pth: PyTorch file format version 0, but this LibTorch reads versions 1 to "},
      {{{"a/version", "99999999999999999999999\n"}, {"a/data.pkl", pkl}},
       "x.pth: damaged PyTorch zip archive (its version record holds '99999999999999999999999"},
      {{{"a/version", "11\n"}, {"a/data.pkl", pkl}},
       "it was saved by a newer PyTorch: build cnnvis against a newer LibTorch"},
      {{{"a/version", "three\n"}, {"a/data.pkl", pkl}}, "'three\n', not a number"},
      {{{"version", "3\n"}, {"a/data.pkl", pkl}},
       "its first record, 'version', is not in a folder"},
      {{{"a/data.pkl", pkl}}, "no version record in 'a/'"},
      {{{std::string("a\0b/version", 11), "3\n"}, {std::string("a\0b/data.pkl", 12), pkl}},
       "the name of its folder holds a NUL byte"},
      {{{"a/version", "3\n", 0, 1}, {"a/data.pkl", pkl}},
       "record 'a/version' does not match its CRC-32"},
      {{{"a/version", "3\n", 8}, {"a/data.pkl", pkl}},
       "record 'a/version' is compressed or encrypted"},
      // A fuzzer finding: miniz extracts nothing from a "folder", and LibTorch parsed the
      // uninitialized buffer (then leaked).
      {{{"a/version", "3\n", 0, 0, 0x10}, {"a/data.pkl", pkl}},
       "record 'a/version' is marked as a folder"},
      {{{"a/version", "3\n"}, {"a/VERSION", "3\n"}, {"a/data.pkl", pkl}},
       "it holds two records named 'a/version'"},
      {{{"a/version", "3\n"}, {"a/.data/version", "x"}, {"a/data.pkl", pkl}},
       "its version record holds 'x', not a number"},
  };
  for (const auto& [records, message] : cases) {
    expect_error([&] { read_state_dict_bytes(raw_zip(records), "x.pth"); }, message);
  }
  // An archive cut short, and one with no records at all.
  const std::string whole = raw_zip({{"a/version", "3\n"}, {"a/data.pkl", pkl}});
  expect_error([&] { read_state_dict_bytes(whole.substr(0, whole.size() - 30), "cut.pth"); },
               "cut.pth: damaged PyTorch zip archive (");
  // (4 bytes that start like a local header, so that it is read as a zip, then the end record)
  const std::string empty = std::string("PK\x03\x04", 4) + raw_zip({});
  expect_error([&] { read_state_dict_bytes(empty, "none.pth"); },
               "none.pth: damaged PyTorch zip archive (the archive holds no records");
  // The committed fuzzer findings (tests/fuzz/regressions/weights/) give one line too.
  for (const auto& [name, bytes] : regression_inputs("weights")) {
    expect_error([&] { read_state_dict_bytes(bytes, name); }, name + ": ");
  }
}

TEST(Hostile, Crc32MatchesTheStandardCheckValue) {
  EXPECT_EQ(detail::crc32("123456789", 9), 0xcbf43926u);
  EXPECT_EQ(detail::crc32("", 0), 0u);
}

std::string safetensors(const std::string& header_json, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header_json.size();
  std::memcpy(out.data(), &n, 8);
  return out + header_json + std::string(data_bytes, '\0');
}

TEST(Hostile, SafetensorsWithOverlappingTensorsAreRefused) {
  const std::string ok = safetensors(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", 16);
  EXPECT_EQ(read_state_dict_bytes(ok, "ok.safetensors").size(), 2u);
  const std::string overlapping = safetensors(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 16);
  expect_error([&] { read_state_dict_bytes(overlapping, "x.safetensors"); },
               "x.safetensors: corrupt safetensors file: tensors 'a' and 'b' overlap");
}

// ---- .npy ----

std::string npy(const std::string& header_dict, const std::string& data) {
  std::string header = header_dict;
  header.append((64 - (10 + header.size() + 1) % 64) % 64, ' ');
  header += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

TEST(Hostile, NpyShapesAreCheckedAgainstTheDataBeforeAllocating) {
  // 128 bytes asking for 4 TB: refused from the sizes, nothing allocated.
  const std::string huge =
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000, 1000), }", "");
  ASSERT_LE(huge.size(), 128u);
  expect_error([&] { load_npy_bytes(huge, "huge.npy"); },
               "huge.npy: not a readable .npy file (the data is truncated: the header's shape "
               "needs 1000000000000000 elements");
  // More elements than 2^63: refused before the product can overflow.
  expect_error([&] {
    load_npy_bytes(npy("{'descr': '<f8', 'fortran_order': False, 'shape': "
                       "(4294967296, 4294967296, 4294967296), }", "12345678"), "over.npy");
  }, "over.npy: not a readable .npy file (the dimensions of the shape "
     "'(4294967296, 4294967296, 4294967296)' multiply beyond 2^63)");
  // Shapes that are not tuples of integers.
  for (const char* shape : {"(2x, 3junk)", "(2, -3)", "(2,, 3)", "(1e3,)", "(99999999999999999999,)"}) {
    expect_error([&] {
      load_npy_bytes(npy(std::string("{'descr': '<f4', 'fortran_order': False, 'shape': ") +
                         shape + ", }", std::string(1024, '\0')), "bad.npy");
    }, "bad.npy: not a readable .npy file");
  }
}

// Fuzzer finding: an empty array (a 0 in its shape) whose other dimensions multiply beyond 2^63
// made LibTorch throw from deep inside (a SymInt overflow in .to()), past the reader's errors.
TEST(Hostile, NpyEmptyArraysWithHugeOtherDimensionsAreRefused) {
  expect_error([&] {
    load_npy_bytes(npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                       "(0, 63, 2, 33333333333, 3322222222, 333333333, 7, 2, 12), }", ""),
                   "empty.npy");
  }, "empty.npy: not a readable .npy file (the dimensions of the shape");
  for (const auto& [name, bytes] : regression_inputs("npy")) {
    expect_error([&] { load_npy_bytes(bytes, name); }, name + ": ");
  }
  // Large but representable: read.
  EXPECT_EQ(load_npy_bytes(npy("{'descr': '<f4', 'fortran_order': False, 'shape': "
                               "(0, 1099511627776, 1000), }", ""), "ok.npy").numel(), 0);
}

TEST(Hostile, NpyEmptyAndScalarArraysRead) {
  // An empty array used to reach memcpy with a null pointer (UBSan).
  const auto empty =
      load_npy_bytes(npy("{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", ""), "e");
  EXPECT_EQ(empty.sizes(), (std::vector<int64_t>{0, 3}));
  float v = 2.5f;
  const auto scalar = load_npy_bytes(
      npy("{'descr': '<f4', 'fortran_order': False, 'shape': (), }", std::string(
          reinterpret_cast<const char*>(&v), 4)), "s");
  EXPECT_EQ(scalar.dim(), 0);
  EXPECT_EQ(scalar.item<float>(), 2.5f);
  const auto vec = load_npy_bytes(
      npy("{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0')),
      "v");
  EXPECT_EQ(vec.sizes(), (std::vector<int64_t>{2}));
}

// ---- images ----

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8),
          static_cast<char>(v)};
}

// A PNG signature and IHDR claiming width x height (the decoder never gets that far).
std::string png_header(uint32_t width, uint32_t height) {
  return std::string("\x89PNG\r\n\x1a\n", 8) + be32(13) + "IHDR" + be32(width) + be32(height) +
         std::string("\x08\x02\x00\x00\x00", 5) + be32(0) + be32(0) + "IDAT" + be32(0) +
         be32(0) + "IEND" + be32(0);
}

TEST(Hostile, ImagesOverThePixelLimitAreRefusedFromTheHeader) {
  const auto start = std::chrono::steady_clock::now();
  expect_error([&] { decode_image(png_header(20000, 20000), "bomb.png"); },
               "bomb.png: the PNG image is 20000x20000 pixels (400.0 megapixels), more than the "
               "limit of 100 megapixels");
  EXPECT_LT(seconds_since(start), 1.0);
  // A BMP claiming 2^31-1 x 2^31-1, and a JPEG frame header claiming 65535 x 65535.
  std::string bmp = "BM" + std::string(12, '\0') + std::string("\x28\0\0\0", 4) +
                    std::string("\xff\xff\xff\x7f\xff\xff\xff\x7f", 8) + std::string(40, '\0');
  expect_error([&] { decode_image(bmp, "bomb.bmp"); }, "bomb.bmp: the BMP image is 2147483647x");
  std::string jpeg("\xff\xd8\xff\xc0\x00\x11\x08\xff\xff\xff\xff\x03", 12);
  jpeg += std::string(20, '\0') + "\xff\xd9";
  expect_error([&] { decode_image(jpeg, "bomb.jpg"); }, "bomb.jpg: the JPEG image is 65535x65535");
  // Zero-size.
  expect_error([&] { decode_image(png_header(0, 0), "zero.png"); },
               "zero.png: not a readable image (PNG header says 0x0 pixels)");
  // The limit is the caller's to raise or lower.
  EXPECT_EQ(image_pixel_limit(), kDefaultImagePixelLimit);
  set_image_pixel_limit(100);
  expect_error([&] { decode_image(png_header(11, 10), "small.png"); },
               "more than the limit of 0.0001 megapixels");
  set_image_pixel_limit(kDefaultImagePixelLimit);
  expect_error([] { set_image_pixel_limit(0); }, "expected a positive number of pixels");
}

TEST_F(HostileFiles, ImageFilesThatAreNotRegularFilesAreRefusedAtOnce) {
  expect_error([&] { load_image("/dev/zero"); }, "/dev/zero: is a character device, not an image file");
  const std::string fifo = (dir_ / "fifo.png").string();
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_error([&] { load_image(fifo); }, "fifo.png: is a FIFO (named pipe)");
}

TEST_F(HostileFiles, DecoderMessagesStayOffStderrAndJoinTheError) {
  const std::string good = (dir_ / "good.png").string();
  save_png(good, torch::rand({3, 8, 8}));
  std::string bytes;
  {
    std::ifstream in(good, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  ASSERT_GT(bytes.size(), 33u);
  std::string bad_crc = bytes;
  bad_crc[29] = static_cast<char>(bad_crc[29] ^ 0x55);  // IHDR's CRC
  ::testing::internal::CaptureStderr();
  std::string message;
  try {
    decode_image(bad_crc, "crc.png");
  } catch (const Error& e) {
    message = e.what();
  }
  const std::string printed = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(printed, "");  // libpng printed "libpng error: IHDR: CRC error" here
  EXPECT_NE(message.find("crc.png: not a readable image (corrupt PNG"), std::string::npos)
      << message;
  EXPECT_NE(message.find("CRC"), std::string::npos) << message;
  // A good image still decodes, and nothing is printed.
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(decode_image(bytes, "good.png").sizes(), (std::vector<int64_t>{3, 8, 8}));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  // Other formats OpenCV could decode are not offered to it.
  expect_error([&] { decode_image("#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 8 +X 8\n", "x.hdr"); },
               "x.hdr: not a readable image (unknown format)");
}

}  // namespace
}  // namespace cnnvis
