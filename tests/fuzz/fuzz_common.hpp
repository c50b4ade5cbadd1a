#pragma once
// Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.cpp). A reader may throw cnnvis::Error
// and nothing else: any other exception escapes LLVMFuzzerTestOneInput, which aborts, and
// libFuzzer reports that input as a crash, as it does for a sanitizer report, a timeout, a
// leak or an allocation above -malloc_limit_mb. `check` turns a broken invariant of an accepted
// input into a crash too.
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "cnnvis/error.hpp"

namespace cnnvis::fuzz {

inline std::string as_string(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// Runs `read`; a cnnvis::Error is the documented answer to a bad input, so it is swallowed
// (and printed if CNNVIS_FUZZ_VERBOSE is set, to see why a seed or regression input is refused).
// Returns whether `read` succeeded.
template <typename Read>
bool accepts(Read&& read) {
  static const bool verbose = std::getenv("CNNVIS_FUZZ_VERBOSE") != nullptr;
  try {
    read();
    if (verbose) std::fprintf(stderr, "accepted\n");
    return true;
  } catch (const cnnvis::Error& e) {
    if (verbose) std::fprintf(stderr, "cnnvis::Error: %s\n", e.what());
    return false;
  }
}

[[noreturn]] inline void invariant_broken(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: invariant broken on an accepted input: %s\n", file, line, what);
  std::abort();
}
#define CNNVIS_FUZZ_CHECK(cond) \
  ((cond) ? (void)0 : ::cnnvis::fuzz::invariant_broken(#cond, __FILE__, __LINE__))

// One thread for LibTorch (the fuzzer is one process on one core; thread pools only add noise
// and time).
inline void init_single_thread() { at::set_num_threads(1); }

}  // namespace cnnvis::fuzz
