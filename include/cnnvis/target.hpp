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

// How a layer unit's activation map becomes one score per image.
enum class Reduction { kMean, kSum, kAbsSum };
// "mean", "sum", "abs-sum"; parse_reduction throws cnnvis::Error (invalid argument) otherwise.
Reduction parse_reduction(const std::string& name);
const char* to_string(Reduction reduction);

class Target {
 public:
  using ScoreFn = std::function<at::Tensor(const ForwardResult&)>;

  // The pre-softmax logit of class `index` for every image (the default target).
  static Target class_logit(int64_t index);
  // Per-image classes: image i explains class indices[i].
  static Target class_logits(std::vector<int64_t> indices);
  // For a dense output [N, C, H, W] (a segmentation model): the logits of class `index` summed
  // over a region, `mask` [H, W] of weights (1 inside, 0 outside) at the output's resolution,
  // the same for every image (pytorch-grad-cam's SemanticSegmentationTarget). The usual region
  // is the pixels predicted as that class: predicted_region. Throws cnnvis::Error at scoring
  // for an output that is not [N, C, H, W] or a mask of another size.
  static Target region_logit(int64_t index, at::Tensor mask);
  // Per-image regions: image i explains the logits of class indices[i] summed over masks[i]
  // (masks [N, H, W] at the output's resolution). `cnnvis evaluate` explains each image's class
  // over its object this way.
  static Target region_logits(std::vector<int64_t> indices, at::Tensor masks);
  // One filter (channel) of a named layer, its activation reduced per image (the classic
  // collection's "layer activation with guided backprop" is guided backprop of
  // layer_unit(layer, filter, kAbsSum)). Throws cnnvis::Error at scoring for a filter index
  // outside the layer's channels.
  static Target layer_unit(const std::string& layer, int64_t filter,
                           Reduction reduction = Reduction::kMean);
  // Any callable from the output and the taps it names to a score [N]. The score of image i
  // must depend on row i of the output and taps only (methods batch copies of an image and
  // may score slices of a batch). With a model whose concurrent_forward() is true, it may be
  // called from several threads at once. Synthesis treats a target that names taps as reading
  // those layers only: it stops the forward pass after them, so ForwardResult::output is then
  // undefined (a score that needs the output names no taps, or reads the logits as a tap).
  static Target custom(ScoreFn score, std::vector<std::string> taps, std::string description);
  // The same target for a batch in which every image is repeated k times in a row (the order
  // of input.repeat_interleave(k, 0)), as integrated gradients and SmoothGrad evaluate.
  Target repeat_interleave(int64_t k) const;
  // The target of image i alone, for a batch made of copies of image i (per-image class
  // targets give their i-th class; other targets are row-wise and returned as they are).
  Target select(int64_t i) const;
  // The target of rows [begin, end) of a batch, for scoring that slice alone (per-image class
  // targets give their classes begin..end-1; row-wise targets are returned as they are).
  // Methods that split a batch over threads score each slice with it.
  Target rows(int64_t begin, int64_t end) const;

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
  std::vector<int64_t> per_image_;  // class_logits' indices; empty for row-wise scores
  at::Tensor per_image_masks_;      // region_logits' masks [N, H, W], with per_image_
  ScoreFn score_;
  std::vector<std::string> taps_;
  std::string description_;
};

// The pixels of a dense output [1, C, H, W] predicted as class `index` (where it is the
// argmax over the classes): a float mask [H, W] of 0 and 1, for Target::region_logit.
at::Tensor predicted_region(const at::Tensor& output, int64_t index);

// The class that the output of one image predicts: logits [1, C] their argmax; a dense output
// [1, C, H, W] the class predicted (argmax over the classes) at most pixels, counting only the
// pixels of `region` [H, W] (non-zero) when it is given. Ties: the smallest index.
int64_t top_class(const at::Tensor& output, const at::Tensor& region = {});

// The softmax probability of class `index` per image, [N] float64 on the CPU: logits [N, C]
// its probability; a dense output [N, C, H, W] the mean of its per-pixel probability over
// `region` [H, W] (non-zero pixels, weighted by the mask), or over every pixel without one.
// The score that `cnnvis evaluate`'s deletion and insertion curves follow.
at::Tensor class_probability(const at::Tensor& output, int64_t index,
                             const at::Tensor& region = {});

}  // namespace cnnvis
