// The one list of methods. A new method adds one line to methods().
#include "cnnvis/error.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/methods/vanilla.hpp"
#include "detail/strings.hpp"

namespace cnnvis {

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> registry = {
      vanilla_method_info(),
  };
  return registry;
}

const MethodInfo& find_method(const std::string& name) {
  std::vector<std::string> names;
  for (const auto& info : methods()) {
    if (info.name == name) return info;
    names.push_back(info.name);
  }
  throw usage_error("unknown method '" + name + "'; closest: " +
                    detail::join(detail::closest_matches(name, names, 3)) +
                    " (run `cnnvis list` for all methods)");
}

std::unique_ptr<Method> make_method(const std::string& name, const MethodParams& params) {
  return find_method(name).make(params);
}

}  // namespace cnnvis
