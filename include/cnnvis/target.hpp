#pragma once
// What to explain, separate from how: a target turns a forward pass into one scalar score per
// image, whose gradient (or perturbation response) the methods explain.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cnnvis/model.hpp"

namespace cnnvis {

class Target {
 public:
  using ScoreFn = std::function<at::Tensor(const ForwardResult&)>;

  // The pre-softmax logit of class `index` for every image (the default target).
  static Target class_logit(int64_t index);
  // Per-image classes: image i explains class indices[i].
  static Target class_logits(std::vector<int64_t> indices);
  // Any callable from the output and the taps it names to a score [N].
  static Target custom(ScoreFn score, std::vector<std::string> taps, std::string description);

  // Score [N] of a forward pass run with taps(). Throws cnnvis::Error for a class index outside
  // [0, num_classes).
  at::Tensor score(const ForwardResult& result) const;
  // Layers the score needs tapped.
  const std::vector<std::string>& taps() const { return taps_; }
  // "class 281", or the custom description.
  const std::string& description() const { return description_; }

 private:
  Target(ScoreFn score, std::vector<std::string> taps, std::string description)
      : score_(std::move(score)), taps_(std::move(taps)), description_(std::move(description)) {}
  ScoreFn score_;
  std::vector<std::string> taps_;
  std::string description_;
};

}  // namespace cnnvis
