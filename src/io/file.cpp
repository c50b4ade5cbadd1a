#include "cnnvis/io/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
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

const char* file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

Error not_regular(const std::string& path, const std::string& what, mode_t mode) {
  const bool vowel = !what.empty() && std::strchr("aeiou", what[0]) != nullptr;
  return Error(path + ": is " + file_kind(mode) + ", not " + (vowel ? "an " : "a ") + what +
               "; give the path of a regular file");
}

Error open_error(const std::string& path, const std::string& what, int err) {
  if (err == ENOENT) {
    return Error(path + ": cannot open the " + what + " (no such file); check the path");
  }
  return Error(path + ": cannot open the " + what + " (" + std::strerror(err) +
               "); check the path and its permissions");
}

}  // namespace

void check_regular_file(const std::string& path, const std::string& what) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) throw open_error(path, what, errno);
  if (!S_ISREG(st.st_mode)) throw not_regular(path, what, st.st_mode);
}

std::string read_regular_file(const std::string& path, const std::string& what) {
  check_regular_file(path, what);
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) throw open_error(path, what, errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw open_error(path, what, errno);
  if (!S_ISREG(st.st_mode)) throw not_regular(path, what, st.st_mode);  // replaced meanwhile
  std::string bytes;
  bytes.resize(static_cast<size_t>(st.st_size));
  size_t got = 0;
  for (;;) {
    if (got == bytes.size()) bytes.resize(bytes.size() + 65536);  // the file grew meanwhile
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      throw Error(path + ": read error (" + std::string(std::strerror(errno)) +
                  "); check the file and the disk");
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  bytes.resize(got);
  return bytes;
}

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
