#pragma once
// A check of a PyTorch zip archive (torch.save's zip format, torch.jit.save's archives) before
// LibTorch's caffe2::serialize::PyTorchStreamReader opens it (no torch here).
//
// PyTorchStreamReader's constructor opens the zip with miniz and then checks the archive's
// layout; when one of those checks throws, its destructor never runs and miniz's state leaks
// (found by tests/fuzz/fuzz_weights). Its checks are therefore made here first, on the same
// bytes and the same way miniz finds them, so that the constructor only throws where miniz
// itself failed to open the zip (and cleaned up after itself):
//  - the archive holds at least one record, and the first one is in a folder ("archive/...");
//  - a version record (<folder>/version or <folder>/.data/version) exists, is stored (not
//    compressed or encrypted), lies inside the file, matches its CRC-32, and holds a number in
//    the range that this build's LibTorch reads; every such record present is checked, so that
//    which one the reader picks does not matter; the same for .data/serialization_id (2.x).
// Errors are cnnvis::Error, one line that names `source`.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

namespace cnnvis::detail {

// Reads up to `n` bytes at `pos` into `buf`; returns how many were read.
using ReadAt = std::function<size_t(uint64_t pos, void* buf, size_t n)>;
// ReadAt over an open binary stream, or over bytes in memory (both must outlive it).
ReadAt stream_read_at(std::istream& in);
ReadAt memory_read_at(const std::string& bytes);

// `size` is the archive's size in bytes; `min_version` and `max_version` the format versions
// that the reader accepts (caffe2::serialize::kMin/kMaxSupportedFileFormatVersion).
void check_torch_zip(const ReadAt& read, uint64_t size, const std::string& source,
                     uint64_t min_version, uint64_t max_version);

// True if an archive's record names are a TorchScript archive's (torch.jit.save): a
// constants.pkl or a code/ record, named with or without the archive's folder (LibTorch 1.13's
// getAllRecords keeps the folder, 2.x drops it).
bool is_torchscript_archive(const std::vector<std::string>& records);

// CRC-32 (ISO-HDLC, as zip uses it).
uint32_t crc32(const void* data, size_t n);

}  // namespace cnnvis::detail
