#pragma once
// Layer-wise relevance propagation (Bach et al. 2015; the rules and composites of Montavon,
// Binder, Lapuschkin, Samek, Mueller 2019, "Layer-wise relevance propagation: an overview", as
// zennit names them). The relevance of the target score is propagated from the output down to
// the input, layer by layer, each layer with its rule. The walk follows Model::graph() (no
// hooks): the forward pass is re-run node by node to keep every layer's input, then each node
// maps the relevance at its output to its input:
//   Conv2d / Linear   the composite's rule (below), with a following BatchNorm2d merged into
//                     the layer's weights first (canonizer; the model itself is not changed)
//   ReLU, Dropout     relevance passes unchanged
//   MaxPool2d         winner-take-all (the gradient), or as average pooling (`maxpool=average`)
//   AvgPool2d, AdaptiveAvgPool2d   R_i = a_i * d/da_i [pool(a) . R / stab(pool(a))] (zennit's
//                     Norm rule; an adaptive pool whose output size equals its input is the
//                     identity and passes relevance)
//   AdaptiveMaxPool2d winner-take-all
//   residual block    after(branch(x) + shortcut(x)): relevance split between the two terms in
//                     proportion to their values, R_b = b R / stab(b + s), R_s = s R / stab(b + s)
// stab(z) = z + eps * sign(z), with sign(0) = +1 (zennit's convention).
//
// Rules for a layer z = W a + b (a+ = max(a, 0), a- = min(a, 0), W+/W- likewise, T = transpose):
//   zero        R_a = a (W^T s), s = R / z (0 where z = 0)                        LRP-0
//   epsilon     s = R / stab_eps(z)                                               LRP-eps
//   gamma       generalized gamma rule (zennit's Gamma): positive outputs get
//               z+ = (W + g W+) a+ + (W + g W-) a- + (b + g b+), negative outputs
//               z- = (W + g W-) a+ + (W + g W+) a- + (b + g b-), each redistributed by its
//               own contributions
//   alpha-beta  alpha * positive contributions - beta * negative ones (alpha - beta = 1);
//               z-plus is alpha 1, beta 0 (only positive contributions, bias b+)
//   flat        every input gets an equal share: weights 1, inputs 1, no bias
//   w-square    R_i proportional to w_ij^2 (inputs 1; no bias, as in the paper)
//   z-box       z^B for a bounded input l <= x <= h: contributions x W - l W+ - h W-, with
//               l, h the normalization of pixels 0 and 1 (`mean`, `std` options), or
//               given in normalized space (`low`, `high`: zennit's EpsilonGammaBox bounds)
//   classic     the classic collection's single rule: W + g W+ and b + g b+ with g = gamma
//               (0.05), z + eps with eps added without sign (1e-9); on max pools too
// Composites (zennit's names): epsilon-plus (Conv2d z-plus, Linear epsilon),
// epsilon-plus-flat (also the first Conv2d/Linear flat), epsilon-gamma-box (Conv2d gamma,
// Linear epsilon, first layer z-box), epsilon-alpha2-beta1 (Conv2d alpha 2 beta 1, Linear
// epsilon), epsilon-alpha2-beta1-flat, and classic (the classic collection's LRP.py: classic
// rule with gamma 0.05 and epsilon 1e-9 on every Conv2d, Linear and MaxPool2d).
#include <ATen/core/Tensor.h>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cnnvis/method.hpp"

namespace cnnvis {

enum class LrpRuleKind {
  kZero, kEpsilon, kGamma, kAlphaBeta, kZPlus, kFlat, kWSquare, kZBox, kClassic,
  kPass,    // relevance unchanged (element-wise layers)
  kNorm,    // R_i = a_i * d/da_i [f(a) . R / stab(f(a))] for parameter-free layers (pools)
  kWinner,  // the gradient: winner-take-all for max pooling
};

struct LrpRule {
  LrpRuleKind kind = LrpRuleKind::kEpsilon;
  double epsilon = 1e-6;  // epsilon of epsilon/classic, the stabilizer of the others
  double gamma = 0.25;    // gamma, classic
  double alpha = 1.0;     // alpha-beta
  double beta = 0.0;
};

// "zero", "epsilon[:EPS]", "gamma[:GAMMA]", "alpha-beta[:ALPHA:BETA]" (default 2:1),
// "alpha1-beta0", "alpha2-beta1", "z-plus", "flat", "w-square", "z-box", "classic[:GAMMA[:EPS]]",
// "pass", "norm", "winner"; stabilizers default to 1e-6. Throws cnnvis::Error (invalid
// argument) naming the text and the known rules.
LrpRule parse_lrp_rule(const std::string& text);
std::string to_string(const LrpRule& rule);

// The composites by name, for help texts and errors.
const std::vector<std::string>& lrp_composites();

struct LrpOptions {
  std::string composite = "epsilon-plus-flat";
  // Overrides, applied after the composite: key = a layer name ("features.0", "layer1.0.conv1"),
  // a layer type ("Conv2d", "Linear", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
  // "AdaptiveMaxPool2d") or "first" (the first Conv2d/Linear); names win over "first", which
  // wins over types.
  std::vector<std::pair<std::string, LrpRule>> rules;
  // The composite's epsilon (epsilon rule; classic: its additive epsilon) and gamma (gamma
  // rule; classic: its gamma); unset: 1e-6 and 0.25, classic 1e-9 and 0.05.
  std::optional<double> epsilon;
  std::optional<double> gamma;
  double stabilizer = 1e-6;  // every other rule's stabilizer
  bool maxpool_average = false;  // max pools redistribute as average pools (the overview's
                                 // recommendation) instead of winner-take-all
  // Where relevance is read: "" (the input, [N,3,H,W]) or a layer name (its output's relevance).
  std::string layer;
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // the input's normalization: z-box bounds
  std::array<double, 3> std{0.229, 0.224, 0.225};
  // z-box's bounds per channel in normalized space (zennit's EpsilonGammaBox(low, high));
  // unset: the normalized pixels 0 and 1, (0 - mean) / std and (1 - mean) / std. Every bound
  // must be finite with low < high (else cnnvis::Error, invalid argument).
  std::optional<std::array<double, 3>> low;
  std::optional<std::array<double, 3>> high;
};

// Which rule each Conv2d/Linear/pooling layer of `model` gets under `options`, in forward
// order, as (layer name, rule text). Throws cnnvis::Error for a layer with no rule.
std::vector<std::pair<std::string, std::string>> lrp_rule_table(const Model& model,
                                                                const LrpOptions& options);

struct LrpCache;

// Keeps parameter-derived tensors (merged BatchNorm, clamped weights) between calls; they are
// recomputed when the model's parameters change (in place or replaced).
class Lrp : public Method {
 public:
  explicit Lrp(LrpOptions options = {});
  // The relevance at options.layer (the input by default); the walk stops there.
  at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) override;
  // raw as attribute(); if a layer is set, the extra "input" holds the input relevance too.
  Attribution explain(Model& model, const at::Tensor& input, const Target& target) override;
  // The relevance at each named layer ("" or "input" for the input), in one walk. The start:
  // R = y * d score / dy at the output (for a class logit: the logit at that class, 0 at the
  // others), or A * d score / dA at the target's tapped layer (a layer unit target).
  std::map<std::string, at::Tensor> relevances(Model& model, const at::Tensor& input,
                                               const Target& target,
                                               const std::vector<std::string>& layers);

 private:
  LrpOptions options_;
  std::shared_ptr<LrpCache> cache_;
};

// LrpOptions from method options (the keys of lrp_method_info(), colormap included); throws
// cnnvis::Error (invalid argument) naming the option.
LrpOptions parse_lrp_options(const MethodParams& params);

// Options: composite, rule (NAME_OR_TYPE=RULE, comma-separated), epsilon, gamma, stabilizer,
// maxpool (winner|average), layer, mean, std, low, high (z-box bounds: a number or R,G,B),
// colormap.
MethodInfo lrp_method_info();

// The classic collection's symmetric range for a signed relevance map: 10 * (mean |R|^3)^(1/3).
double lrp_symmetric_range(const at::Tensor& map);

}  // namespace cnnvis
