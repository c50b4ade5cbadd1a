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
  Target target(
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
  target.per_image_ = std::move(indices);
  return target;
}

Reduction parse_reduction(const std::string& name) {
  if (name == "mean") return Reduction::kMean;
  if (name == "sum") return Reduction::kSum;
  if (name == "abs-sum") return Reduction::kAbsSum;
  throw usage_error("unknown reduction '" + name + "'; expected mean, sum or abs-sum");
}

const char* to_string(Reduction reduction) {
  switch (reduction) {
    case Reduction::kMean: return "mean";
    case Reduction::kSum: return "sum";
    case Reduction::kAbsSum: return "abs-sum";
  }
  return "?";
}

Target Target::layer_unit(const std::string& layer, int64_t filter, Reduction reduction) {
  if (filter < 0) throw usage_error("filter index " + std::to_string(filter) + " is negative");
  return Target(
      [layer, filter, reduction](const ForwardResult& r) {
        const auto& a = r.taps.at(layer);
        if (a.dim() < 2 || filter >= a.size(1)) {
          throw usage_error("filter " + std::to_string(filter) + " of layer " + layer +
                            ": the layer has " + std::to_string(a.dim() < 2 ? 0 : a.size(1)) +
                            " channels (0.." + std::to_string(a.dim() < 2 ? 0 : a.size(1) - 1) +
                            ")");
        }
        auto unit = a.select(1, filter).reshape({a.size(0), -1});
        switch (reduction) {
          case Reduction::kMean: return unit.mean(1);
          case Reduction::kSum: return unit.sum(1);
          case Reduction::kAbsSum: return unit.abs().sum(1);
        }
        return unit.mean(1);
      },
      {layer},
      std::string(to_string(reduction)) + " of filter " + std::to_string(filter) + " at " + layer);
}

Target Target::select(int64_t i) const {
  if (per_image_.empty()) return *this;
  if (i < 0 || i >= static_cast<int64_t>(per_image_.size())) {
    throw usage_error("target select: image " + std::to_string(i) + " of " +
                      std::to_string(per_image_.size()));
  }
  return class_logit(per_image_[i]);
}

Target Target::rows(int64_t begin, int64_t end) const {
  if (per_image_.empty()) return *this;
  if (begin < 0 || end > static_cast<int64_t>(per_image_.size()) || begin >= end) {
    throw usage_error("target rows: [" + std::to_string(begin) + ", " + std::to_string(end) +
                      ") of " + std::to_string(per_image_.size()) + " images");
  }
  return class_logits(std::vector<int64_t>(per_image_.begin() + begin, per_image_.begin() + end));
}

Target Target::repeat_interleave(int64_t k) const {
  if (k < 1) throw usage_error("repeat_interleave: k must be >= 1");
  if (per_image_.empty() || k == 1) return *this;
  std::vector<int64_t> repeated;
  for (auto index : per_image_) repeated.insert(repeated.end(), k, index);
  return class_logits(std::move(repeated));
}

Target Target::custom(ScoreFn score, std::vector<std::string> taps, std::string description) {
  return Target(std::move(score), std::move(taps), std::move(description));
}

at::Tensor Target::score(const ForwardResult& result) const { return score_(result); }

}  // namespace cnnvis
