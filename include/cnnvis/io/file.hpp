#pragma once
// Atomic file output: write to "<path>.tmp-<pid>", then rename onto `path`.
#include <string>

namespace cnnvis {

// Writes `bytes` to `path` atomically; throws cnnvis::Error naming the file on failure and
// leaves no temporary file behind.
void write_file_atomic(const std::string& path, const std::string& bytes);

}  // namespace cnnvis
