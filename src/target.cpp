#include "cnnvis/target.hpp"

#include <ATen/ATen.h>

#include "cnnvis/error.hpp"

namespace cnnvis {
namespace {

void check_classes(const std::vector<int64_t>& indices, const at::Tensor& logits) {
  const int64_t classes = logits.size(1);
  for (auto index : indices) {
    if (index < 0 || index >= classes) {
      throw usage_error("target class " + std::to_string(index) + " is outside the model's " +
                        std::to_string(classes) + " classes; use --target 0.." +
                        std::to_string(classes - 1) + " or a class name");
    }
  }
}

}  // namespace

Target Target::class_logit(int64_t index) {
  return Target(
      [index](const ForwardResult& r) {
        check_classes({index}, r.output);
        return r.output.select(1, index);
      },
      {}, "class " + std::to_string(index));
}

Target Target::class_logits(std::vector<int64_t> indices) {
  std::string description = "classes";
  for (auto i : indices) description += " " + std::to_string(i);
  return Target(
      [indices](const ForwardResult& r) {
        if (static_cast<int64_t>(indices.size()) != r.output.size(0)) {
          throw usage_error("the target names " + std::to_string(indices.size()) +
                            " classes for a batch of " + std::to_string(r.output.size(0)) +
                            " images; give one class per image");
        }
        check_classes(indices, r.output);
        auto index = at::tensor(indices, at::TensorOptions().dtype(at::kLong))
                         .to(r.output.device())
                         .unsqueeze(1);
        return r.output.gather(1, index).squeeze(1);
      },
      {}, description);
}

Target Target::custom(ScoreFn score, std::vector<std::string> taps, std::string description) {
  return Target(std::move(score), std::move(taps), std::move(description));
}

at::Tensor Target::score(const ForwardResult& result) const { return score_(result); }

}  // namespace cnnvis
