#include "detail/strings.hpp"

#include "cnnvis/error.hpp"

#include <algorithm>
#include <numeric>
#include <utility>

namespace cnnvis::detail {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  std::iota(row.begin(), row.end(), 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

std::vector<std::string> closest_matches(const std::string& query,
                                         const std::vector<std::string>& candidates, size_t n) {
  std::vector<std::pair<size_t, size_t>> scored;  // (distance, index)
  for (size_t i = 0; i < candidates.size(); ++i) {
    scored.emplace_back(edit_distance(query, candidates[i]), i);
  }
  std::stable_sort(scored.begin(), scored.end());
  std::vector<std::string> result;
  for (size_t i = 0; i < scored.size() && i < n; ++i) result.push_back(candidates[scored[i].second]);
  return result;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) out += (i ? separator : "") + items[i];
  return out;
}

}  // namespace cnnvis::detail

namespace cnnvis {

namespace {
// The first line with text (TorchScript's compiler starts its messages with a newline).
std::string first_line(const std::string& s) {
  size_t begin = 0;
  while (begin < s.size()) {
    const size_t end = std::min(s.find('\n', begin), s.size());
    const std::string line = s.substr(begin, end - begin);
    if (line.find_first_not_of(" \t\r") != std::string::npos) return line;
    begin = end + 1;
  }
  return "";
}
}  // namespace

std::string error_line(const std::string& what) {
  const std::string wrapped = "The following operation failed in the TorchScript interpreter.";
  if (what.compare(0, wrapped.size(), wrapped) != 0) return first_line(what);
  std::string line;
  size_t end = what.size();
  while (end > 0) {
    const size_t begin = what.rfind('\n', end - 1);
    const size_t from = begin == std::string::npos ? 0 : begin + 1;
    line = what.substr(from, end - from);
    if (line.find_first_not_of(" \t\r") != std::string::npos) break;
    if (begin == std::string::npos) break;
    end = begin;
  }
  const size_t colon = line.find("Error: ");
  if (colon != std::string::npos && line.find(' ') > colon) line = line.substr(colon + 7);
  return line.empty() ? first_line(what) : line;
}

}  // namespace cnnvis
