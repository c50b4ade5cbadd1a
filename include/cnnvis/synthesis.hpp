#pragma once
// Image synthesis: images made by optimizing the input so that a target scores high. One
// engine (start image, objective, regularizers, jitter, optimizer, snapshots) serves
//   - filter visualization (Erhan et al. 2009): the mean activation of one filter at a layer,
//     from a random image; Target::layer_unit(layer, filter) or filter_batch_target for several
//     filters optimized together as one batch;
//   - class model images (Simonyan et al. 2014): S_c(I) - lambda R(I) with R the squared L2
//     norm (or L1), and the regularized variant of Yosinski et al. 2015 (L2 decay, Gaussian blur
//     every few steps, clipping of small-norm pixels and of small contributions);
//   - inverted representations (Mahendran & Vedaldi 2015): invert();
//   - Deep Dream (Mordvintsev et al. 2015): deep_dream(), octaves of normalized gradient ascent;
//   - lucid's options: a Fourier-domain parameterization with 1/f scaling and decorrelated
//     colour, transformation robustness (pad, jitter, scale, rotate), neuron / direction
//     objectives and a diversity term over the batch.
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
  // "adam", "sgd" (with `momentum`), or "normalized": gradient ascent with steps of
  // lr * g / mean|g| per image (Mordvintsev et al.'s Deep Dream step).
  std::string optimizer = "adam";
  double momentum = 0.0;           // sgd only
  double weight_decay = 0.0;       // the optimizer's decay of the image (Yosinski's L2 decay)
  // Multiply the learning rate by lr_decay after every lr_decay_every steps (0: constant).
  int64_t lr_decay_every = 0;
  double lr_decay = 0.1;
  // The image's parameterization: "pixel" (the image itself in normalized space) or "fft"
  // (lucid: per-channel Fourier coefficients scaled by 1 / max(f, 1/size)^fft_decay, started
  // at N(0, 0.01^2), the colours decorrelated with lucid's ImageNet colour matrix when
  // `decorrelate`, and a sigmoid to pixels in [0, 1]). Blur and clipping need "pixel".
  std::string param = "pixel";
  double fft_decay = 1.0;
  bool decorrelate = true;
  // Lucid's redirected ReLU for the first N steps: where a ReLU passes no gradient at all for an
  // image (every unit the objective reads is off), its gradient flows through anyway, except
  // where it would push an already negative input lower. Lets a neuron that starts at 0 move.
  // Needs Model::graph().
  int64_t redirected_relu_steps = 0;
  // Penalties subtracted from the objective, per image: l2 * mean(x^2), l1 * mean(|x|) over
  // the image's values in normalized space (Simonyan et al.'s lambda ||I||^2, size-independent).
  double l2 = 0.0;
  double l1 = 0.0;
  int64_t blur_every = 0;      // Gaussian blur of the image every N steps (0: never)
  double blur_sigma = 0.5;     // in pixels
  double clip_norm = 0.0;      // after each step, pixels whose colour norm is below this
                               // quantile (0..1) of the image are set to the mean colour
  double clip_contribution = 0.0;  // likewise for |sum_c x * grad|, the pixel's contribution
  // Transformation robustness, drawn per step from the seed and applied to the image the
  // network sees, in this order (lucid's `standard_transforms` are pad 12, jitter 8, scale 0.1,
  // rotate 10):
  int64_t pad = 0;     // pad by N pixels of grey (pixel value 0.5)
  int64_t jitter = 0;  // roll the image by a random shift in [-jitter, jitter]
  double scale = 0.0;  // resize by a factor from {1 + k * scale / 5 : k = -5..5} (bilinear)
  int64_t rotate = 0;  // rotate by an integer number of degrees in [-rotate, rotate]
  // Mahendran & Vedaldi's regularizers, per image, on u = the image in their units (pixels
  // 0..255 minus the mean): alpha_weight * sum|u|^alpha / (H W alpha_bound^alpha) and
  // tv_weight * sum((u[i+1,j]-u[i,j])^2 + (u[i,j+1]-u[i,j])^2)^(beta/2) / (H W V^beta) with
  // V = tv_bound (0: alpha_bound / 6.5). With raw_sums (the classic collection), u is the
  // normalized image and the sums are not divided.
  double alpha_weight = 0.0;
  double alpha = 6.0;
  double alpha_bound = 80.0;
  double tv_weight = 0.0;
  double beta = 2.0;
  double tv_bound = 0.0;
  bool raw_sums = false;
  // Lucid's diversity term: a penalty of diversity * (1/N) sum_i sum_(j != i) <G_i, G_j> with
  // G_i the Frobenius-normalized Gram matrix of image i's activations at diversity_layer
  // (default: the target's layer). Makes the images of a batch differ.
  double diversity = 0.0;
  std::string diversity_layer;
  bool clamp_pixels = true;    // after each step, keep every pixel in [0, 1] (a valid image)
  int64_t size = 224;  // the image's height and width (when no start image is given)
  uint64_t seed = 0;
  // The start image: "uniform" (pixels uniform in [150, 180] / 255, as the classic collection's
  // filter visualization), "noise" (the mean colour plus N(0, 0.1^2) in pixel space) or "gray"
  // (the mean colour: exactly 0 in normalized space; on a network with zero biases a critical
  // point, see synthesize()).
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
// does not exist; and, without transforms, when the first step finds an image's gradient
// exactly zero and leaves the image unchanged (a critical point, e.g. the gray start on a
// network with zero biases: no later step could move it either).
SynthesisResult synthesize(Model& model, const Target& target, int64_t count,
                           const SynthesisOptions& options, const at::Tensor& start = {});

// The per-image penalty [N] that synthesize subtracts from the objective for images x
// ([N, 3, H, W], normalized): the l2, l1, alpha-norm and total-variation terms of `options`.
at::Tensor synthesis_penalty(const at::Tensor& x, const SynthesisOptions& options);

// ---- objectives ----

// Image i maximizes the mean activation of filters[i] at `layer` (a batch of filters in one
// pass).
Target filter_batch_target(const std::string& layer, std::vector<int64_t> filters);

// Image i maximizes the activation of channel channels[i] at one position of `layer`: (y, x),
// or the centre (H/2, W/2; lucid's neuron) when y or x is negative.
Target neuron_target(const std::string& layer, std::vector<int64_t> channels, int64_t y = -1,
                     int64_t x = -1);

// Maximizes the cosine similarity between `direction` ([C]) and the activation vector at each
// position of `layer`, averaged over positions (lucid's direction).
Target direction_target(const std::string& layer, const at::Tensor& direction);

// The mean squared activation of `layer` (Deep Dream's L2 objective).
Target layer_l2_target(const std::string& layer);

// Inversion's data term: -weight * ||Phi(x) - Phi0||^2 / ||Phi0||^2 per image, with Phi the
// activations at `layer` and Phi0 = `reference` ([1, ...] or one per image).
Target inversion_target(const std::string& layer, const at::Tensor& reference,
                        double weight = 1.0);

// ---- inverted representations (Mahendran & Vedaldi 2015) ----

struct InversionOptions {
  SynthesisOptions synthesis;  // start image, optimizer and the alpha-norm / TV regularizers
  double data_weight = 1.0;    // C, the weight of the normalized distance
};

// Reconstructs an image whose representation at `layer` matches that of `image` ([1, 3, H, W],
// normalized; the result has its size) by minimizing C ||Phi(x) - Phi0||^2 / ||Phi0||^2 +
// R_alpha(x) + R_TV(x). The result's scores are -C times the normalized distance.
SynthesisResult invert(Model& model, const std::string& layer, const at::Tensor& image,
                       const InversionOptions& options);

// "paper": Mahendran & Vedaldi's normalized regularizers (alpha 6, B 80, beta 2, V = B/6.5)
// with weights 1, C = 100, a noise start and Adam lr 0.05 for 200 steps; "classic": the classic
// collection's (data term x0.1, raw sums with lambda_alpha 1e-7 and lambda_TV 1e-8, SGD
// momentum 0.9, lr 1e3 divided by 10 every 40 steps, 200 steps).
InversionOptions inversion_preset(const std::string& name);

// ---- Deep Dream (Mordvintsev et al. 2015) ----

struct DeepDreamOptions {
  SynthesisOptions synthesis;  // the steps of each octave (steps, lr, optimizer, jitter, ...)
  int64_t octaves = 4;         // image pyramid levels; 1: the image's own size only
  double octave_scale = 1.4;   // the size ratio between levels
};

// Dreams on `image` ([1, 3, H, W], normalized): from the smallest octave up, runs the steps on
// the octave's base image plus the detail found so far (upsampled), as Mordvintsev's notebook.
// objective holds every step's score (octave after octave) and then the final image's;
// initial_score and final_score are taken at the image's size.
SynthesisResult deep_dream(Model& model, const Target& target, const at::Tensor& image,
                           const DeepDreamOptions& options);

// "mordvintsev": 4 octaves of ratio 1.4, 10 normalized steps each of 1.5/255 in pixel units
// (lr 0.026 in normalized space), jitter 32; "classic": the classic collection's single
// scale, SGD lr 12, weight decay 1e-4, 250 steps, no jitter.
DeepDreamOptions deep_dream_preset(const std::string& name);

// Image i maximizes log p(classes[i] | x) = logit - logsumexp(logits): the class score that
// also pushes the other classes down. Simonyan et al. maximize the logit alone
// (Target::class_logits), which can raise similar classes more (on the demo model, a hexagon's
// logit image is classified as a circle); `cnnvis synthesize class` uses this by default.
// A segmentation model (an output [N, C, H, W]): the mean over the output's pixels of the
// per-pixel log-probability (the whole image painted as the class; its size changes with the
// transforms, so no fixed region would fit).
Target class_log_probability_target(std::vector<int64_t> classes);
// Image i maximizes the logit of classes[i] (Simonyan et al.; `--score logit`); a dense output
// its mean over the pixels.
Target class_logit_target(std::vector<int64_t> classes);

// "5", "0-15", "3,7,9" -> filter indices; throws cnnvis::Error (invalid argument) naming `text`.
std::vector<int64_t> parse_filter_list(const std::string& text);

// Presets. filter: the classic collection's (Adam lr 0.1, weight decay 1e-6, 30 steps, uniform
// start). class_model(regularize): "none" (Adam lr 0.1, 200 steps, gray start), "l2"
// (+ l2 = 1), "l1" (+ l1 = 1), "yosinski" (+ weight decay 1e-4, blur sigma 0.5 every 4 steps,
// clip_norm 0.1, clip_contribution 0.1). lucid: lucent's render_vis defaults (fft
// parameterization with decorrelated colour, Adam lr 0.05, 512 steps, pad 12, jitter 8, scale
// 0.1, rotate 10) plus TF lucid's redirected ReLU for the first 16 steps (lucent lacks it).
SynthesisOptions filter_preset();
SynthesisOptions class_model_preset(const std::string& regularize);
SynthesisOptions lucid_preset();

}  // namespace cnnvis
