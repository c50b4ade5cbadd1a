#pragma once
// File input and output: whole regular files in, atomic writes out ("<path>.tmp-<pid>", then
// rename onto `path`).
#include <string>

namespace cnnvis {

// Writes `bytes` to `path` atomically; throws cnnvis::Error naming the file on failure and
// leaves no temporary file behind.
void write_file_atomic(const std::string& path, const std::string& bytes);

// Throws cnnvis::Error naming `path` unless it is an existing regular file (or a link to one):
// a folder, a FIFO, a device such as /dev/zero or a socket is refused at once, where reading it
// could block forever or never end. `what` names the expected content for the message
// ("weights file", "image", ".npy file").
void check_regular_file(const std::string& path, const std::string& what);

// check_regular_file, then the whole file's bytes. Never blocks on a FIFO (opened with
// O_NONBLOCK, checked again after opening).
std::string read_regular_file(const std::string& path, const std::string& what);

}  // namespace cnnvis
