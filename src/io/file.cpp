#include "cnnvis/io/file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "cnnvis/error.hpp"

namespace cnnvis {
namespace {

// Explains a failed open/write/rename of `path`, naming the missing folder when that is why.
Error write_error(const std::string& path, int err) {
  namespace fs = std::filesystem;
  fs::path folder = fs::path(path).parent_path();
  if (folder.empty()) folder = ".";
  std::error_code ec;
  if (err == ENOENT && !fs::is_directory(folder, ec)) {
    return Error(path + ": cannot write (folder '" + folder.string() +
                 "' does not exist); create it first or choose another output path");
  }
  if (fs::is_directory(path, ec)) {
    return Error(path + ": cannot write (it is a folder); give a file name");
  }
  return Error(path + ": cannot write (" + std::strerror(err) +
               "); check the folder's permissions and free space");
}

}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  // Same folder as the target so that rename() is atomic (never crosses file systems).
  const std::string tmp = path + ".tmp-" + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) throw write_error(path, errno);
  const char* p = bytes.data();
  size_t left = bytes.size();
  int err = 0;
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      err = n < 0 ? errno : EIO;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  // No fsync: outputs are reproducible, so atomicity (no half-written file) is what matters.
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err == 0 && ::rename(tmp.c_str(), path.c_str()) != 0) err = errno;
  if (err != 0) {
    ::unlink(tmp.c_str());
    throw write_error(path, err);
  }
}

}  // namespace cnnvis
