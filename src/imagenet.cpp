#include "cnnvis/imagenet.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

#include "cnnvis/error.hpp"
#include "detail/strings.hpp"

namespace cnnvis {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string range_text(int64_t num_classes) {
  return "0.." + std::to_string(num_classes - 1);
}

}  // namespace

const std::vector<std::string>& imagenet_classes() {
  static const std::vector<std::string> classes = {
#include "imagenet_classes.inc"
  };
  return classes;
}

int64_t resolve_class(const std::string& target, int64_t num_classes) {
  return resolve_class(target, num_classes == 1000 ? imagenet_classes() : std::vector<std::string>{},
                       num_classes);
}

int64_t resolve_class(const std::string& target, const std::vector<std::string>& names,
                      int64_t num_classes) {
  if (num_classes <= 0) {
    throw usage_error("class '" + target + "': the model reports no classes");
  }
  const bool is_number =
      !target.empty() &&
      std::all_of(target.begin() + (target[0] == '-' ? 1 : 0), target.end(),
                  [](unsigned char c) { return std::isdigit(c); }) &&
      target != "-";
  if (is_number) {
    int64_t index = -1;
    try {
      index = std::stoll(target);
    } catch (const std::exception&) {  // out of int64 range: reported as out of range below
    }
    if (index < 0 || index >= num_classes) {
      throw usage_error("class " + target + " is out of range; the model has " +
                        std::to_string(num_classes) + " classes, give an index in " +
                        range_text(num_classes));
    }
    return index;
  }
  if (names.empty()) {
    throw usage_error("class '" + target + "': this model has no class names (" +
                      std::to_string(num_classes) + " classes); give an index in " +
                      range_text(num_classes));
  }
  const std::string wanted = lower(target);
  std::vector<int64_t> matches;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == target) return static_cast<int64_t>(i);  // exact case wins ("Cardigan")
    if (lower(names[i]) == wanted) matches.push_back(static_cast<int64_t>(i));
  }
  if (matches.size() == 1) return matches[0];
  if (matches.size() > 1) {
    std::string list;
    for (int64_t m : matches) list += (list.empty() ? "" : ", ") + std::to_string(m);
    throw usage_error("class '" + target + "' is ambiguous (classes " + list +
                      "); give the index instead");
  }
  std::vector<std::pair<size_t, int64_t>> ranked;
  for (size_t i = 0; i < names.size(); ++i) {
    ranked.emplace_back(detail::edit_distance(wanted, lower(names[i])), static_cast<int64_t>(i));
  }
  const size_t shown = std::min<size_t>(3, ranked.size());
  std::partial_sort(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(shown),
                    ranked.end());
  std::string hint;
  for (size_t k = 0; k < shown; ++k) {
    hint += (k ? ", '" : "'") + names[ranked[k].second] + "' (" +
            std::to_string(ranked[k].second) + ")";
  }
  throw usage_error("unknown class '" + target + "'; did you mean " + hint +
                    "? Give a class name or an index in " + range_text(num_classes));
}

std::string class_name(int64_t index, int64_t num_classes) {
  if (num_classes == 1000 && index >= 0 && index < 1000) return imagenet_classes()[index];
  return "class " + std::to_string(index);
}

std::string class_name(int64_t index, const std::vector<std::string>& names) {
  if (index >= 0 && index < static_cast<int64_t>(names.size())) return names[index];
  return "class " + std::to_string(index);
}

}  // namespace cnnvis
