#pragma once
// Image synthesis: images made by optimizing the input so that a target scores high. One
// engine (start image, objective, regularizers, jitter, optimizer, snapshots) serves
//   - filter visualization (Erhan et al. 2009): the mean activation of one filter at a layer,
//     from a random image; Target::layer_unit(layer, filter) or filter_batch_target for several
//     filters optimized together as one batch;
//   - class model images (Simonyan et al. 2014): S_c(I) - lambda R(I) with R the squared L2
//     norm (or L1), and the regularized variant of Yosinski et al. 2015 (L2 decay, Gaussian blur
//     every few steps, clipping of small-norm pixels and of small contributions).
// The forward pass stops at the layer the objective needs when the model describes its graph
// (Model::graph()); the model's parameters are frozen and get no gradients. Images live in the
// model's normalized input space.
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cnnvis/model.hpp"
#include "cnnvis/target.hpp"

namespace cnnvis {

struct SynthesisOptions {
  int64_t steps = 30;
  double lr = 0.1;
  std::string optimizer = "adam";  // "adam" or "sgd"
  double weight_decay = 0.0;       // the optimizer's decay of the image (Yosinski's L2 decay)
  // Penalties subtracted from the objective, per image: l2 * mean(x^2), l1 * mean(|x|) over
  // the image's values in normalized space (Simonyan et al.'s lambda ||I||^2, size-independent).
  double l2 = 0.0;
  double l1 = 0.0;
  int64_t blur_every = 0;      // Gaussian blur of the image every N steps (0: never)
  double blur_sigma = 0.5;     // in pixels
  double clip_norm = 0.0;      // after each step, pixels whose colour norm is below this
                               // quantile (0..1) of the image are set to the mean colour
  double clip_contribution = 0.0;  // likewise for |sum_c x * grad|, the pixel's contribution
  int64_t jitter = 0;          // roll the image by a random shift in [-jitter, jitter] per step
  bool clamp_pixels = true;    // after each step, keep every pixel in [0, 1] (a valid image)
  int64_t size = 224;          // the image's height and width (when no start image is given)
  uint64_t seed = 0;
  // The start image: "uniform" (pixels uniform in [150, 180] / 255, as the classic collection's
  // filter visualization), "noise" (the mean colour plus N(0, 0.1^2) in pixel space) or "gray"
  // (the mean colour).
  std::string init = "uniform";
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // the input's normalization
  std::array<double, 3> std{0.229, 0.224, 0.225};
  int64_t every = 0;  // keep a snapshot of the images every N steps (0: none)
  // Called after every step with the step (1-based), the number of steps and the batch's mean
  // objective; return false to stop early.
  std::function<bool(int64_t step, int64_t steps, double objective)> progress;
};

struct SynthesisResult {
  at::Tensor image;  // [N, 3, H, W], normalized space
  // The batch's mean objective (the target's score, before penalties) after k steps, k = 0 ..
  // steps (steps + 1 entries; the score each step's forward pass saw, then the final image's).
  std::vector<double> objective;
  // Per image: the score on the start image and on the result.
  at::Tensor initial_score, final_score;
  std::vector<std::pair<int64_t, at::Tensor>> snapshots;  // (step, images) every `every` steps
};

// Maximizes target.score(...) of a batch of `count` images made from options.init, or of
// `start` ([N, 3, H, W], normalized) if defined. Throws cnnvis::Error (invalid argument) for
// steps < 1, a size the network cannot take, a bad option value, or a target layer/filter that
// does not exist.
SynthesisResult synthesize(Model& model, const Target& target, int64_t count,
                           const SynthesisOptions& options, const at::Tensor& start = {});

// Image i maximizes the mean activation of filters[i] at `layer` (a batch of filters in one
// pass).
Target filter_batch_target(const std::string& layer, std::vector<int64_t> filters);

// Image i maximizes log p(classes[i] | x) = logit - logsumexp(logits): the class score that
// also pushes the other classes down. Simonyan et al. maximize the logit alone
// (Target::class_logits), which can raise similar classes more (on the demo model, a hexagon's
// logit image is classified as a circle); `cnnvis synthesize class` uses this by default.
Target class_log_probability_target(std::vector<int64_t> classes);

// "5", "0-15", "3,7,9" -> filter indices; throws cnnvis::Error (invalid argument) naming `text`.
std::vector<int64_t> parse_filter_list(const std::string& text);

// Presets. filter: the classic collection's (Adam lr 0.1, weight decay 1e-6, 30 steps, uniform
// start). class_model(regularize): "none" (Adam lr 0.1, 200 steps, gray start), "l2"
// (+ l2 = 1), "l1" (+ l1 = 1), "yosinski" (+ weight decay 1e-4, blur sigma 0.5 every 4 steps,
// clip_norm 0.1, clip_contribution 0.1).
SynthesisOptions filter_preset();
SynthesisOptions class_model_preset(const std::string& regularize);

}  // namespace cnnvis
