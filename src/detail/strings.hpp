#pragma once
// Small string helpers for messages (no torch here).
#include <string>
#include <vector>

namespace cnnvis::detail {

// Levenshtein distance.
size_t edit_distance(const std::string& a, const std::string& b);
// Up to `n` candidates closest to `query` (by edit distance, ties in candidate order).
std::vector<std::string> closest_matches(const std::string& query,
                                         const std::vector<std::string>& candidates, size_t n);
// "a, b, c"
std::string join(const std::vector<std::string>& items, const std::string& separator = ", ");

}  // namespace cnnvis::detail
