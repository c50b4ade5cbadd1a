#pragma once
// The one error type of cnnvis. Messages say what was expected, what was found and how to fix
// it, on one line. The kind decides the CLI's exit code: kInvalidArgument -> 2 (the command
// line or an argument is wrong), kRuntime -> 1 (the input could not be processed).
#include <stdexcept>
#include <string>

namespace cnnvis {

enum class ErrorKind { kInvalidArgument, kRuntime };

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message, ErrorKind kind = ErrorKind::kRuntime)
      : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

// Shorthand for an argument error (exit code 2 in the CLI).
inline Error usage_error(const std::string& message) {
  return Error(message, ErrorKind::kInvalidArgument);
}

// The one line of an exception's what() that says what went wrong: its first line with text,
// except for the TorchScript interpreter's "The following operation failed in the TorchScript
// interpreter." with a traceback, where it is the model's own message (the traceback's last
// line, without its "RuntimeError: ").
std::string error_line(const std::string& what);

}  // namespace cnnvis
