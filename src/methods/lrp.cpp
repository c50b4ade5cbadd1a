// Layer-wise relevance propagation over Model::graph(). The forward pass is re-run node by node
// (no gradient) to keep each node's input; the backward walk maps relevance through each node
// with its rule. A rule evaluates the layer on modified inputs/parameters with the input as an
// autograd leaf and takes one vector-Jacobian product per term (the "modified gradient" trick:
// d/dx <f(x), s> = W^T s), so no layer is copied and no parameter gets a gradient.
#include "cnnvis/methods/lrp.hpp"

#include <torch/torch.h>

#include <cmath>
#include <set>
#include <sstream>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "detail/strings.hpp"
#include "methods/common.hpp"
#include "methods/graph_forward.hpp"

namespace cnnvis {
namespace {

namespace nn = torch::nn;
namespace F = torch::nn::functional;
using torch::Tensor;

using Op = detail::GraphOp;

Op op_of(const GraphNode& node, const std::string& model) {
  return detail::graph_op(node, model, "lrp");
}

bool has_params(Op op) { return op == Op::kConv || op == Op::kLinear; }
bool is_pool(Op op) {
  return op == Op::kMaxPool || op == Op::kAvgPool || op == Op::kAdaptiveAvgPool ||
         op == Op::kAdaptiveMaxPool;
}

std::string op_type(Op op) {
  switch (op) {
    case Op::kConv: return "Conv2d";
    case Op::kLinear: return "Linear";
    case Op::kMaxPool: return "MaxPool2d";
    case Op::kAvgPool: return "AvgPool2d";
    case Op::kAdaptiveAvgPool: return "AdaptiveAvgPool2d";
    case Op::kAdaptiveMaxPool: return "AdaptiveMaxPool2d";
    default: return "";
  }
}

// z + eps * sign(z), sign(0) = +1.
Tensor stab(const Tensor& z, double eps) {
  return z.ge(0).to(z.scalar_type()).mul_(2 * eps).sub_(eps).add_(z);
}

// R / stab(z); with eps = 0, R / z and 0 where z = 0 (no relevance through a zero output).
Tensor divide(const Tensor& R, const Tensor& z, double eps) {
  if (eps > 0) return R / stab(z, eps);
  return torch::where(z.eq(0), torch::zeros_like(z), R / z);
}

// The layer as a function of its input and (modified) parameters.
using LayerFn = std::function<Tensor(const Tensor& x, const Tensor& w, const Tensor& b)>;

struct Params {
  Tensor weight, bias;  // bias may be undefined
};

// A leaf copy of x and f(leaf, w, b), for one vector-Jacobian product.
struct Term {
  Tensor leaf, z;
};

Term evaluate(const LayerFn& f, const Tensor& x, const Tensor& w = {}, const Tensor& b = {}) {
  Term t;
  t.leaf = x.detach().requires_grad_(true);
  t.z = f(t.leaf, w, b);
  return t;
}

// d/dx <f(x), s> = the transposed layer applied to s.
Tensor vjp(const Term& t, const Tensor& s) {
  return torch::autograd::grad({t.z}, {t.leaf}, {s}, /*retain_graph=*/false)[0];
}

Tensor clamp_min0(const Tensor& t) { return t.defined() ? t.clamp_min(0) : t; }
Tensor clamp_max0(const Tensor& t) { return t.defined() ? t.clamp_max(0) : t; }
Tensor plus(const Tensor& t, double g, const Tensor& part) {
  return t.defined() ? t + g * part : t;
}

// Returns a parameter-derived tensor by tag ("w+", "w-", ...), computing it with `make` unless
// the cache holds it for the same parameters.
using Derive = std::function<Tensor(const std::string& tag, const std::function<Tensor()>& make)>;

Tensor no_cache(const std::string&, const std::function<Tensor()>& make) { return make(); }

// z-box's bounds per channel in normalized space: `low` / `high` if given, else the normalized
// pixels 0 and 1. Throws cnnvis::Error unless every bound is finite and low < high.
std::pair<std::array<double, 3>, std::array<double, 3>> zbox_bounds(const LrpOptions& o) {
  std::array<double, 3> low{}, high{};
  for (int c = 0; c < 3; ++c) {
    low[c] = o.low ? (*o.low)[c] : (0.0 - o.mean[c]) / o.std[c];
    high[c] = o.high ? (*o.high)[c] : (1.0 - o.mean[c]) / o.std[c];
    if (!std::isfinite(low[c]) || !std::isfinite(high[c]) || !(low[c] < high[c])) {
      std::ostringstream m;
      m << "lrp options low/high: channel " << c << " has the z-box bounds low " << low[c]
        << ", high " << high[c] << (o.low || o.high ? "" : " (from mean and std)")
        << "; expected finite bounds with low < high (normalized space, e.g. low=-3 high=3)";
      throw usage_error(m.str());
    }
  }
  return {low, high};
}

// Applies `rule` to a layer with input a and output relevance R.
// z_known: the layer's output f(a; W, b) if the forward pass already has it (else undefined).
Tensor apply_rule(const LrpRule& rule, const LayerFn& f, const Params& p, const Tensor& a,
                  const Tensor& R, const LrpOptions& options, const Derive& derive = no_cache,
                  const Tensor& z_known = {}) {
  torch::AutoGradMode grad_mode(true);
  const double eps = rule.epsilon;
  switch (rule.kind) {
    case LrpRuleKind::kPass:
      return R;
    case LrpRuleKind::kWinner: {
      const auto t = evaluate(f, a);
      return vjp(t, R);
    }
    case LrpRuleKind::kNorm:
    case LrpRuleKind::kZero:
    case LrpRuleKind::kEpsilon: {
      const auto t = evaluate(f, a, p.weight, p.bias);
      const auto z = t.z.detach();
      const auto s = divide(R, z, rule.kind == LrpRuleKind::kZero ? 0.0 : eps);
      return a * vjp(t, s);
    }
    case LrpRuleKind::kClassic: {
      const auto tag = "classic:" + std::to_string(rule.gamma);
      const auto w = p.weight.defined() ? derive(tag + "w", [&] {
        return plus(p.weight, rule.gamma, clamp_min0(p.weight));
      }) : Tensor();
      const auto b = plus(p.bias, rule.gamma, clamp_min0(p.bias));
      const auto t = evaluate(f, a, w, b);
      return a * vjp(t, R / (t.z.detach() + eps));
    }
    case LrpRuleKind::kFlat:
    case LrpRuleKind::kWSquare: {
      const auto w = rule.kind == LrpRuleKind::kFlat
                         ? derive("ones", [&] { return torch::ones_like(p.weight); })
                         : derive("w^2", [&] { return p.weight * p.weight; });
      const auto t = evaluate(f, torch::ones_like(a), w);
      return vjp(t, R / stab(t.z.detach(), eps));
    }
    case LrpRuleKind::kZBox: {
      if (a.dim() != 4 || a.size(1) != 3) {
        throw usage_error("lrp: the z-box rule needs the network's input (3 channels) and "
                          "applies to the first layer only; got an input of shape " +
                          c10::str(a.sizes()) + "; use another rule for this layer");
      }
      const auto [lo, hi] = zbox_bounds(options);
      auto bound = [&](const std::array<double, 3>& v) {
        auto t = torch::empty({1, 3, 1, 1}, a.options());
        for (int c = 0; c < 3; ++c) t[0][c] = v[c];
        return t.expand_as(a).contiguous();
      };
      const auto low = bound(lo), high = bound(hi);
      const auto t0 = evaluate(f, a, p.weight, p.bias);
      const auto t1 = evaluate(f, low, derive("w+", [&] { return p.weight.clamp_min(0); }),
                               clamp_min0(p.bias));
      const auto t2 = evaluate(f, high, derive("w-", [&] { return p.weight.clamp_max(0); }),
                               clamp_max0(p.bias));
      const auto s = R / stab(t0.z.detach() - t1.z.detach() - t2.z.detach(), eps);
      return a * vjp(t0, s) - low * vjp(t1, s) - high * vjp(t2, s);
    }
    case LrpRuleKind::kZPlus:
    case LrpRuleKind::kAlphaBeta:
    case LrpRuleKind::kGamma:
      break;
  }
  // The sign-split rules. Terms whose input part is all zero (a >= 0 after a ReLU) contribute
  // exactly 0 and are skipped, and then a+ is a itself.
  const bool negative = a.lt(0).any().item<bool>();
  const auto ap = negative ? a.clamp_min(0) : a;
  const auto an = negative ? a.clamp_max(0) : Tensor();
  // A group of terms: f(a+; w_pos_in, b) + f(a-; w_neg_in) and its input-side relevance
  // sum_t input_t * vjp_t(s) once s is known. w_neg_in is only evaluated if a has negatives.
  struct Group {
    std::vector<Term> terms;
    std::vector<Tensor> inputs;
    Tensor z;
  };
  auto group = [&](const Tensor& w_pos_in, const Tensor& b_pos_in,
                   const std::function<Tensor()>& w_neg_in) {
    Group g;
    g.terms.push_back(evaluate(f, ap, w_pos_in, b_pos_in));
    g.inputs.push_back(ap);
    g.z = g.terms[0].z.detach();
    if (negative) {
      g.terms.push_back(evaluate(f, an, w_neg_in()));
      g.inputs.push_back(an);
      g.z = g.z + g.terms[1].z.detach();
    }
    return g;
  };
  auto redistribute = [&](const Group& g, const Tensor& s) {
    Tensor r = g.inputs[0] * vjp(g.terms[0], s);
    for (size_t i = 1; i < g.terms.size(); ++i) r = r + g.inputs[i] * vjp(g.terms[i], s);
    return r;
  };
  if (rule.kind == LrpRuleKind::kGamma) {
    const double gm = rule.gamma;
    const auto tag = std::to_string(gm);
    const auto w_up = derive("w+g" + tag, [&] { return p.weight + gm * p.weight.clamp_min(0); });
    const auto w_down =
        derive("w-g" + tag, [&] { return p.weight + gm * p.weight.clamp_max(0); });
    const auto b_up = plus(p.bias, gm, clamp_min0(p.bias));
    const auto b_down = plus(p.bias, gm, clamp_max0(p.bias));
    Tensor z = z_known;
    if (!z.defined()) {
      torch::NoGradGuard no_grad;
      z = f(a, p.weight, p.bias);
    }
    const auto pos = group(w_up, b_up, [&] { return w_down; });
    const auto neg = group(w_down, b_down, [&] { return w_up; });
    const auto sp = torch::where(z.gt(0), R / stab(pos.z, eps), torch::zeros_like(z));
    const auto sn = torch::where(z.lt(0), R / stab(neg.z, eps), torch::zeros_like(z));
    return redistribute(pos, sp) + redistribute(neg, sn);
  }
  const double alpha = rule.kind == LrpRuleKind::kZPlus ? 1.0 : rule.alpha;
  const double beta = rule.kind == LrpRuleKind::kZPlus ? 0.0 : rule.beta;
  const auto wp = derive("w+", [&] { return p.weight.clamp_min(0); });
  Tensor wn;
  auto negative_weights = [&] {
    if (!wn.defined()) wn = derive("w-", [&] { return p.weight.clamp_max(0); });
    return wn;
  };
  const auto pos = group(wp, clamp_min0(p.bias), negative_weights);
  Tensor r = redistribute(pos, R / stab(pos.z, eps));
  if (alpha != 1.0) r = r * alpha;
  if (beta != 0.0) {
    const auto neg = group(negative_weights(), clamp_max0(p.bias), [&] { return wp; });
    r = r - beta * redistribute(neg, R / stab(neg.z, eps));
  }
  return r;
}

}  // namespace

// Parameter-derived tensors (BatchNorm merged into a convolution, clamped weights) kept between
// calls of one Lrp object, keyed by module and tag; an entry is reused only while every source
// tensor is the same tensor at the same version (an in-place change bumps the version).
struct LrpCache {
  using Signature = std::vector<std::pair<const void*, uint32_t>>;
  struct Entry {
    Signature signature;
    Tensor value;
  };
  std::map<std::pair<const void*, std::string>, Entry> entries;
};

namespace {

// Per-node forward state: the node's input and output (residual: the two summands too).
// Every node's input and output in the forward pass, by node (the graph is not modified while
// they live).
struct Trace {
  Tensor input, output;
};
using Traces = std::map<const GraphNode*, Trace>;

// The output of a sequence run on `input` (the input itself for an empty sequence).
const Tensor& sequence_output(const std::vector<GraphNode>& nodes, const Tensor& input,
                              const Traces& traces) {
  return nodes.empty() ? input : traces.at(&nodes.back()).output;
}

void collect_names(const std::vector<GraphNode>& nodes, std::vector<std::string>& out) {
  for (const auto& n : nodes) {
    for (auto& name : detail::graph_names(n)) out.push_back(name);
    collect_names(n.branch, out);
    collect_names(n.shortcut, out);
    collect_names(n.after, out);
  }
}

// The walk: forward, rules, backward.
class Walker {
 public:
  Walker(const Model& model, const LrpOptions& options, LrpCache* cache = nullptr)
      : model_(model.name()), graph_(model.graph()), options_(options), cache_(cache) {
    if (graph_.empty()) {
      const std::string problem = model.graph_problem();
      if (!problem.empty()) {
        throw usage_error("lrp: " + problem + "; explain this model with a gradient method "
                          "(vanilla, integrated-gradients)");
      }
      throw usage_error("lrp: model '" + model_ + "' does not describe its layer graph "
                        "(Model::graph() is empty), which LRP walks; implement graph() as "
                        "docs/ARCHITECTURE.md shows, or explain this model with a gradient "
                        "method (vanilla, integrated-gradients)");
    }
    static const std::set<std::string> composites(lrp_composites().begin(),
                                                  lrp_composites().end());
    if (!composites.count(options_.composite)) {
      throw usage_error("lrp option composite: unknown composite '" + options_.composite +
                        "'; closest: " +
                        detail::join(detail::closest_matches(options_.composite,
                                                             lrp_composites(), 2)) +
                        " (known: " + detail::join(lrp_composites()) + ")");
    }
    if (options_.low || options_.high) zbox_bounds(options_);  // fail before any work
    classic_ = options_.composite == "classic";
    epsilon_ = options_.epsilon.value_or(classic_ ? 1e-9 : 1e-6);
    gamma_ = options_.gamma.value_or(classic_ ? 0.05 : 0.25);
    find_first(graph_);
    std::vector<std::string> names;
    collect_names(graph_, names);
    known_.insert(names.begin(), names.end());
    for (const auto& [key, rule] : options_.rules) {
      static const std::set<std::string> types = {"Conv2d", "Linear", "MaxPool2d", "AvgPool2d",
                                                  "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
                                                  "first"};
      if (!types.count(key) && !known_.count(key)) {
        std::vector<std::string> candidates = names;
        candidates.insert(candidates.end(), types.begin(), types.end());
        throw usage_error("lrp option rule: '" + key + "' is neither a layer of " + model_ +
                          " nor a layer type; closest: " +
                          detail::join(detail::closest_matches(key, candidates, 4)) +
                          " (types: Conv2d, Linear, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, "
                          "AdaptiveMaxPool2d, first)");
      }
    }
  }

  void check_layer(const std::string& layer) const {
    if (layer.empty() || layer == "input" || known_.count(layer)) return;
    std::vector<std::string> names(known_.begin(), known_.end());
    throw usage_error("lrp option layer: '" + layer + "' is not a layer of " + model_ +
                      "; closest: " + detail::join(detail::closest_matches(layer, names, 4)) +
                      " (or 'input'; see cnnvis layers)");
  }

  // The rule of a Conv2d/Linear/pooling node.
  LrpRule rule_for(const GraphNode& node, Op op) const {
    const bool first = &node == first_;
    const std::string type = op_type(op);
    const LrpRule* by_name = nullptr;
    const LrpRule* by_first = nullptr;
    const LrpRule* by_type = nullptr;
    for (const auto& [key, rule] : options_.rules) {
      for (const auto& n : detail::graph_names(node)) {
        if (key == n) by_name = &rule;
      }
      if (first && key == "first") by_first = &rule;
      if (key == type) by_type = &rule;
    }
    const LrpRule* chosen = by_name ? by_name : by_first ? by_first : by_type;
    if (chosen) {
      check_applicable(node, op, *chosen);
      return *chosen;
    }
    LrpRule r;
    r.epsilon = options_.stabilizer;
    const std::string& c = options_.composite;
    if (has_params(op)) {
      if (classic_) return classic();
      if (first && (c == "epsilon-plus-flat" || c == "epsilon-alpha2-beta1-flat")) {
        r.kind = LrpRuleKind::kFlat;
      } else if (first && c == "epsilon-gamma-box") {
        r.kind = LrpRuleKind::kZBox;
      } else if (op == Op::kLinear) {
        r.kind = LrpRuleKind::kEpsilon;
        r.epsilon = epsilon_;
      } else if (c == "epsilon-gamma-box") {
        r.kind = LrpRuleKind::kGamma;
        r.gamma = gamma_;
      } else if (c == "epsilon-plus" || c == "epsilon-plus-flat") {
        r.kind = LrpRuleKind::kZPlus;
      } else {
        r.kind = LrpRuleKind::kAlphaBeta;
        r.alpha = 2;
        r.beta = 1;
      }
      return r;
    }
    if (op == Op::kMaxPool) {
      if (classic_) return classic();
      r.kind = options_.maxpool_average ? LrpRuleKind::kNorm : LrpRuleKind::kWinner;
      return r;
    }
    if (op == Op::kAdaptiveMaxPool) {
      r.kind = LrpRuleKind::kWinner;
      return r;
    }
    r.kind = LrpRuleKind::kNorm;  // average pools
    return r;
  }

  // Backward over nodes [0, end) of a sequence; returns the relevance at its input.
  Tensor backward(const std::vector<GraphNode>& nodes, const Traces& traces, Tensor R,
                  size_t end, bool top) {
    for (size_t i = end; i-- > 0;) {
      const auto& node = nodes[i];
      const auto& t = traces.at(&node);
      record(node, R);
      if (top && done()) return R;
      const Op op = op_of(node, model_);
      switch (op) {
        case Op::kResidual: {
          const auto& b = sequence_output(node.branch, t.input, traces);
          const auto& s = sequence_output(node.shortcut, t.input, traces);
          const auto sum = backward(node.after, traces, R, node.after.size(), false);
          const auto q = divide(sum, b + s, options_.stabilizer);
          const auto rb = backward(node.branch, traces, b * q, node.branch.size(), false);
          const auto rs = backward(node.shortcut, traces, s * q, node.shortcut.size(), false);
          R = rb + rs;
          break;
        }
        case Op::kFlatten:
          R = R.reshape(t.input.sizes());
          break;
        case Op::kRelu:
        case Op::kIdentity:
          break;
        case Op::kBatchNorm: {
          // Merged into the preceding Conv2d/Linear (canonizer), else passed as zennit does.
          break;
        }
        case Op::kConv:
        case Op::kLinear: {
          Params p = params(node);
          const GraphNode* bn = nullptr;
          if (i + 1 < nodes.size() && op_of(nodes[i + 1], model_) == Op::kBatchNorm) {
            bn = &nodes[i + 1];
          }
          const Derive derive = [&](const std::string& tag, const std::function<Tensor()>& make) {
            return cached(node, bn, tag, make);
          };
          if (bn) {
            auto& norm = *std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(bn->module);
            p.weight = derive("merged w", [&] { return merge_batch_norm(p, norm).weight; });
            p.bias = derive("merged b", [&] { return merge_batch_norm(p, norm).bias; });
          }
          const auto rule = rule_for(node, op);
          // The layer's output (after its merged BatchNorm) is already in the forward trace.
          const auto& z = bn ? traces.at(bn).output : t.output;
          R = apply_rule(rule, layer_fn(node, op), p, t.input, R, options_, derive, z);
          if (R.sizes() != t.input.sizes()) {
            throw usage_error("lrp: rule " + to_string(rule) + " cannot map layer '" + node.name +
                              "' (" + c10::str(t.output.sizes()) + " from " +
                              c10::str(t.input.sizes()) + "); give it a rule with weights");
          }
          break;
        }
        default: {  // pools
          const auto rule = rule_for(node, op);
          if (op == Op::kAdaptiveAvgPool && t.input.sizes() == t.output.sizes() &&
              rule.kind == LrpRuleKind::kNorm) {
            break;  // the identity
          }
          R = apply_rule(rule, pool_fn(node, op, rule), {}, t.input, R, options_);
          if (R.sizes() != t.input.sizes()) {
            throw usage_error("lrp: rule pass cannot map layer '" + node.name + "' (" +
                              c10::str(t.output.sizes()) + " from " +
                              c10::str(t.input.sizes()) + "); use winner or norm");
          }
          break;
        }
      }
    }
    return R;
  }

  // Runs forward and backward; the relevance at each of `layers` ("" = the input).
  std::map<std::string, Tensor> run(const Tensor& input, const Target& target,
                                    const std::vector<std::string>& layers) {
    for (const auto& l : layers) check_layer(l);
    wanted_.clear();
    found_.clear();
    want_input_ = false;
    for (const auto& l : layers) {
      if (l.empty() || l == "input") {
        want_input_ = true;
      } else {
        wanted_.insert(l);
      }
    }
    if (target.taps().size() > 1) {
      throw usage_error("lrp: the target scores " + std::to_string(target.taps().size()) +
                        " layers; LRP starts from the output or from one layer");
    }
    Traces traces;
    std::map<std::string, Tensor> taps;
    for (const auto& tap : target.taps()) taps[tap] = Tensor();
    Tensor output;
    {
      torch::NoGradGuard no_grad;
      output = detail::run_graph(graph_, input.detach(), model_, "lrp", taps, "",
                                 [&](const GraphNode& node, const Tensor& in, const Tensor& out) {
                                   traces[&node] = {in, out};
                                 });
    }
    // The starting relevance: y * d score / dy at the output or at the tapped layer.
    ForwardResult leaves;
    leaves.output = output.detach().requires_grad_(true);
    for (auto& [name, act] : taps) {
      if (!act.defined()) {
        throw usage_error("lrp: the target's layer '" + name + "' is not in the graph of " +
                          model_);
      }
      leaves.taps[name] = act.detach().requires_grad_(true);
    }
    Tensor start;
    size_t end = graph_.size();
    {
      torch::AutoGradMode grad_mode(true);
      const auto score = target.score(leaves);
      if (target.taps().empty()) {
        start = leaves.output.detach() *
                torch::autograd::grad({score.sum()}, {leaves.output})[0];
      } else {
        const auto& name = target.taps()[0];
        const auto& leaf = leaves.taps.at(name);
        start = leaf.detach() * torch::autograd::grad({score.sum()}, {leaf})[0];
        end = top_level_index(name) + 1;
      }
    }
    torch::NoGradGuard no_grad;
    auto R = backward(graph_, traces, start, end, /*top=*/true);
    std::map<std::string, Tensor> result;
    for (const auto& l : layers) {
      if (l.empty() || l == "input") {
        result[l] = R;
      } else {
        result[l] = found_.at(l);
      }
    }
    return result;
  }

  // rule_for over every rule-bearing node, in forward order.
  void table(const std::vector<GraphNode>& nodes,
             std::vector<std::pair<std::string, std::string>>& out) const {
    for (size_t i = 0; i < nodes.size(); ++i) {
      const auto& node = nodes[i];
      const Op op = op_of(node, model_);
      if (op == Op::kResidual) {
        table(node.branch, out);
        table(node.shortcut, out);
        out.push_back({node.name, "sum: norm (proportional split)"});
        table(node.after, out);
      } else if (has_params(op) || is_pool(op)) {
        std::string text = to_string(rule_for(node, op));
        if (has_params(op) && i + 1 < nodes.size() &&
            op_of(nodes[i + 1], model_) == Op::kBatchNorm) {
          text += " (with " + nodes[i + 1].name + " merged)";
        }
        out.push_back({node.name, text});
      }
    }
  }

  const std::vector<GraphNode>& graph() const { return graph_; }

 private:
  LrpRule classic() const {
    LrpRule r;
    r.kind = LrpRuleKind::kClassic;
    r.gamma = gamma_;
    r.epsilon = epsilon_;
    return r;
  }

  void check_applicable(const GraphNode& node, Op op, const LrpRule& rule) const {
    const bool param_rule = rule.kind != LrpRuleKind::kPass && rule.kind != LrpRuleKind::kNorm &&
                            rule.kind != LrpRuleKind::kWinner &&
                            rule.kind != LrpRuleKind::kEpsilon &&
                            rule.kind != LrpRuleKind::kZero &&
                            rule.kind != LrpRuleKind::kClassic;
    if (is_pool(op) && param_rule) {
      throw usage_error("lrp option rule: " + to_string(rule) + " needs weights, but layer '" +
                        node.name + "' is a " + op_type(op) +
                        "; pools take winner, norm, epsilon, zero, classic or pass");
    }
    if (has_params(op) &&
        (rule.kind == LrpRuleKind::kNorm || rule.kind == LrpRuleKind::kWinner)) {
      throw usage_error("lrp option rule: " + to_string(rule) + " is for pooling layers, but '" +
                        node.name + "' is a " + op_type(op) +
                        "; use zero, epsilon, gamma, alpha-beta, z-plus, flat, w-square, z-box, "
                        "classic or pass");
    }
  }

  void find_first(const std::vector<GraphNode>& nodes) {
    for (const auto& n : nodes) {
      if (first_) return;
      if (n.kind == GraphNode::Kind::kResidual) {
        find_first(n.branch);
        find_first(n.shortcut);
        find_first(n.after);
      } else if (n.kind == GraphNode::Kind::kLayer && has_params(op_of(n, model_))) {
        first_ = &n;
      }
    }
  }

  size_t top_level_index(const std::string& name) const {
    for (size_t i = 0; i < graph_.size(); ++i) {
      for (const auto& n : detail::graph_names(graph_[i])) {
        if (n == name) return i;
      }
    }
    throw usage_error("lrp: the target's layer '" + name + "' is inside a block of " + model_ +
                      "; LRP can start from a layer between blocks (see cnnvis layers, "
                      "resumable layers)");
  }

  // A parameter-derived tensor of `node` (with `bn` merged), from the cache if still valid.
  Tensor cached(const GraphNode& node, const GraphNode* bn, const std::string& tag,
                const std::function<Tensor()>& make) const {
    if (!cache_) return make();
    LrpCache::Signature signature;
    // The tensors the walk reads (a TorchScript model's nodes hold the script module's
    // tensors in their fields, not among their registered parameters).
    auto add = [&](const Tensor& t) {
      if (t.defined()) signature.emplace_back(t.unsafeGetTensorImpl(), t._version());
    };
    for (const auto* n : {&node, bn}) {
      if (!n) continue;
      if (auto c = std::dynamic_pointer_cast<nn::Conv2dImpl>(n->module)) {
        add(c->weight);
        add(c->bias);
      } else if (auto l = std::dynamic_pointer_cast<nn::LinearImpl>(n->module)) {
        add(l->weight);
        add(l->bias);
      } else if (auto b = std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(n->module)) {
        for (const auto& t : {b->weight, b->bias, b->running_mean, b->running_var}) add(t);
      } else {
        for (const auto& t : n->module->parameters()) add(t);
        for (const auto& t : n->module->buffers()) add(t);
      }
    }
    auto& entry = cache_->entries[{node.module.get(), tag}];
    if (!entry.value.defined() || entry.signature != signature) {
      entry.value = make();
      entry.signature = std::move(signature);
    }
    return entry.value;
  }

  void record(const GraphNode& node, const Tensor& R) {
    for (const auto& n : detail::graph_names(node)) {
      if (wanted_.count(n) && !found_.count(n)) found_[n] = R;
    }
  }
  bool done() const {
    return !want_input_ && !wanted_.empty() && found_.size() == wanted_.size();
  }

  Params params(const GraphNode& node) const {
    if (auto c = std::dynamic_pointer_cast<nn::Conv2dImpl>(node.module)) {
      return {c->weight, c->options.bias() ? c->bias : Tensor()};
    }
    auto l = std::dynamic_pointer_cast<nn::LinearImpl>(node.module);
    return {l->weight, l->options.bias() ? l->bias : Tensor()};
  }

  // zennit's MergeBatchNorm: W' = W * s, b' = (b - mean) * s + beta, s = gamma / sqrt(var + eps).
  static Params merge_batch_norm(const Params& p, nn::BatchNorm2dImpl& bn) {
    const auto scale = bn.weight / torch::sqrt(bn.running_var + bn.options.eps());
    std::vector<int64_t> shape(static_cast<size_t>(p.weight.dim()), 1);
    shape[0] = -1;
    Params merged;
    merged.weight = p.weight * scale.reshape(shape);
    const auto bias = p.bias.defined() ? p.bias : torch::zeros_like(bn.running_mean);
    merged.bias = (bias - bn.running_mean) * scale + bn.bias;
    return merged;
  }

  LayerFn layer_fn(const GraphNode& node, Op op) const {
    if (op == Op::kConv) {
      auto c = std::dynamic_pointer_cast<nn::Conv2dImpl>(node.module);
      if (torch::enumtype::get_enum_name(c->options.padding_mode()) != "kZeros") {
        throw usage_error("lrp: layer '" + node.name + "' pads with " +
                          torch::enumtype::get_enum_name(c->options.padding_mode()) +
                          "; LRP supports zero padding only");
      }
      const auto& o = c->options;
      return [o](const Tensor& x, const Tensor& w, const Tensor& b) {
        auto fo = F::Conv2dFuncOptions().stride(o.stride()).padding(o.padding())
                      .dilation(o.dilation()).groups(o.groups());
        if (b.defined()) fo.bias(b);
        return F::conv2d(x, w, fo);
      };
    }
    return [](const Tensor& x, const Tensor& w, const Tensor& b) { return F::linear(x, w, b); };
  }

  LayerFn pool_fn(const GraphNode& node, Op op, const LrpRule& rule) const {
    const auto& m = node.module;
    if (op == Op::kMaxPool) {
      auto o = std::dynamic_pointer_cast<nn::MaxPool2dImpl>(m)->options;
      if (rule.kind == LrpRuleKind::kNorm && options_.maxpool_average) {
        if ((*o.dilation())[0] != 1 || (*o.dilation())[1] != 1) {
          throw usage_error("lrp option maxpool=average: layer '" + node.name +
                            "' is a dilated max pool, which has no average-pool equivalent; "
                            "use maxpool=winner");
        }
        auto ao = F::AvgPool2dFuncOptions(o.kernel_size()).stride(o.stride())
                      .padding(o.padding()).ceil_mode(o.ceil_mode());
        return [ao](const Tensor& x, const Tensor&, const Tensor&) {
          return F::avg_pool2d(x, ao);
        };
      }
      return [o](const Tensor& x, const Tensor&, const Tensor&) { return F::max_pool2d(x, o); };
    }
    if (op == Op::kAvgPool) {
      auto o = std::dynamic_pointer_cast<nn::AvgPool2dImpl>(m)->options;
      return [o](const Tensor& x, const Tensor&, const Tensor&) { return F::avg_pool2d(x, o); };
    }
    if (op == Op::kAdaptiveAvgPool) {
      auto o = std::dynamic_pointer_cast<nn::AdaptiveAvgPool2dImpl>(m)->options;
      return [o](const Tensor& x, const Tensor&, const Tensor&) {
        return F::adaptive_avg_pool2d(x, o);
      };
    }
    auto o = std::dynamic_pointer_cast<nn::AdaptiveMaxPool2dImpl>(m)->options;
    return [o](const Tensor& x, const Tensor&, const Tensor&) {
      return F::adaptive_max_pool2d(x, o);
    };
  }

  std::string model_;
  std::vector<GraphNode> graph_;
  LrpOptions options_;
  LrpCache* cache_ = nullptr;
  bool classic_ = false;
  double epsilon_ = 1e-6, gamma_ = 0.25;
  const GraphNode* first_ = nullptr;
  std::set<std::string> known_;
  std::set<std::string> wanted_;
  std::map<std::string, Tensor> found_;
  bool want_input_ = false;
};

std::string format_number(double v) {
  std::ostringstream out;
  out << v;
  return out.str();
}

std::vector<View> lrp_views(Colormap colormap, bool with_input) {
  auto render = [colormap](const at::Tensor& raw, const at::Tensor& image) {
    auto map = raw.dim() == 3 ? raw.sum(0) : raw;
    map = map.to(torch::kFloat).cpu();
    double b = lrp_symmetric_range(map);
    if (!(b > 0)) b = 1;
    auto picture = apply_colormap(((map / b + 1) / 2).clamp(0, 1), colormap);
    if (picture.size(1) != image.size(1) || picture.size(2) != image.size(2)) {
      picture = F::interpolate(picture.unsqueeze(0),
                               F::InterpolateFuncOptions()
                                   .size(std::vector<int64_t>{image.size(1), image.size(2)})
                                   .mode(torch::kNearest))
                    .squeeze(0);
    }
    return picture;
  };
  const std::string cm = to_string(colormap);
  std::vector<View> views = {
      {"heatmap",
       "relevance summed over channels, " + cm +
           " colormap centred on 0, range +-10 (mean |R|^3)^(1/3) (the classic collection's)",
       "", render},
      {"overlay", "the heatmap over the image, half and half", "",
       [render](const at::Tensor& raw, const at::Tensor& image) {
         return overlay(image, render(raw, image), 0.5);
       }}};
  if (with_input) {
    views.push_back({"input", "the relevance at the input, as the heatmap", "input", render});
  }
  return views;
}

}  // namespace

const std::vector<std::string>& lrp_composites() {
  static const std::vector<std::string> names = {
      "epsilon-plus-flat",    "epsilon-plus",           "epsilon-gamma-box",
      "epsilon-alpha2-beta1", "epsilon-alpha2-beta1-flat", "classic"};
  return names;
}

LrpRule parse_lrp_rule(const std::string& text) {
  std::vector<std::string> parts;
  {
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, ':')) parts.push_back(part);
  }
  const std::string name = parts.empty() ? "" : parts[0];
  auto number = [&](size_t i, double fallback) {
    if (parts.size() <= i) return fallback;
    try {
      size_t used = 0;
      const double v = std::stod(parts[i], &used);
      if (used != parts[i].size() || !std::isfinite(v) || v < 0) throw std::invalid_argument("");
      return v;
    } catch (const std::exception&) {
      throw usage_error("lrp rule '" + text + "': parameter '" + parts[i] +
                        "' is not a non-negative number");
    }
  };
  auto max_params = [&](size_t n) {
    if (parts.size() > n + 1) {
      throw usage_error("lrp rule '" + text + "': " + name + " takes at most " +
                        std::to_string(n) + " parameter(s)");
    }
  };
  LrpRule r;
  if (name == "zero") {
    max_params(0);
    r.kind = LrpRuleKind::kZero;
  } else if (name == "epsilon") {
    max_params(1);
    r.kind = LrpRuleKind::kEpsilon;
    r.epsilon = number(1, 1e-6);
  } else if (name == "gamma") {
    max_params(2);
    r.kind = LrpRuleKind::kGamma;
    r.gamma = number(1, 0.25);
    r.epsilon = number(2, 1e-6);
  } else if (name == "alpha-beta" || name == "alpha2-beta1" || name == "alpha1-beta0") {
    max_params(name == "alpha-beta" ? 2 : 0);
    r.kind = LrpRuleKind::kAlphaBeta;
    r.alpha = name == "alpha1-beta0" ? 1 : number(1, 2);
    r.beta = name == "alpha1-beta0" ? 0 : number(2, 1);
    if (std::abs(r.alpha - r.beta - 1) > 1e-12) {
      throw usage_error("lrp rule '" + text + "': alpha - beta must be 1 (conservation), got " +
                        format_number(r.alpha) + " - " + format_number(r.beta));
    }
  } else if (name == "z-plus") {
    max_params(1);
    r.kind = LrpRuleKind::kZPlus;
    r.epsilon = number(1, 1e-6);
  } else if (name == "flat" || name == "w-square" || name == "z-box" || name == "norm") {
    max_params(1);
    r.kind = name == "flat"       ? LrpRuleKind::kFlat
             : name == "w-square" ? LrpRuleKind::kWSquare
             : name == "z-box"    ? LrpRuleKind::kZBox
                                  : LrpRuleKind::kNorm;
    r.epsilon = number(1, 1e-6);
  } else if (name == "classic") {
    max_params(2);
    r.kind = LrpRuleKind::kClassic;
    r.gamma = number(1, 0.05);
    r.epsilon = number(2, 1e-9);
  } else if (name == "pass" || name == "winner") {
    max_params(0);
    r.kind = name == "pass" ? LrpRuleKind::kPass : LrpRuleKind::kWinner;
  } else {
    static const std::vector<std::string> known = {
        "zero",   "epsilon", "gamma",    "alpha-beta", "alpha2-beta1", "alpha1-beta0", "z-plus",
        "flat",   "w-square", "z-box",   "classic",    "pass",         "norm",         "winner"};
    throw usage_error("lrp rule '" + text + "': unknown rule '" + name + "'; closest: " +
                      detail::join(detail::closest_matches(name, known, 2)) +
                      " (known: " + detail::join(known) + ")");
  }
  return r;
}

std::string to_string(const LrpRule& r) {
  const std::string e = format_number(r.epsilon);
  switch (r.kind) {
    case LrpRuleKind::kZero: return "zero";
    case LrpRuleKind::kEpsilon: return "epsilon:" + e;
    case LrpRuleKind::kGamma: return "gamma:" + format_number(r.gamma) + ":" + e;
    case LrpRuleKind::kAlphaBeta:
      return "alpha-beta:" + format_number(r.alpha) + ":" + format_number(r.beta);
    case LrpRuleKind::kZPlus: return "z-plus";
    case LrpRuleKind::kFlat: return "flat";
    case LrpRuleKind::kWSquare: return "w-square";
    case LrpRuleKind::kZBox: return "z-box";
    case LrpRuleKind::kClassic: return "classic:" + format_number(r.gamma) + ":" + e;
    case LrpRuleKind::kPass: return "pass";
    case LrpRuleKind::kNorm: return "norm";
    case LrpRuleKind::kWinner: return "winner";
  }
  return "?";
}

double lrp_symmetric_range(const at::Tensor& map) {
  return 10.0 * std::cbrt(map.abs().pow(3).mean().item<double>());
}

std::vector<std::pair<std::string, std::string>> lrp_rule_table(const Model& model,
                                                                const LrpOptions& options) {
  Walker walker(model, options);
  std::vector<std::pair<std::string, std::string>> out;
  walker.table(walker.graph(), out);
  return out;
}

Lrp::Lrp(LrpOptions options)
    : options_(std::move(options)), cache_(std::make_shared<LrpCache>()) {}

std::map<std::string, at::Tensor> Lrp::relevances(Model& model, const at::Tensor& input,
                                                  const Target& target,
                                                  const std::vector<std::string>& layers) {
  Walker walker(model, options_, cache_.get());
  return walker.run(input, target, layers);
}

at::Tensor Lrp::attribute(Model& model, const at::Tensor& input, const Target& target) {
  return relevances(model, input, target, {options_.layer}).at(options_.layer);
}

Attribution Lrp::explain(Model& model, const at::Tensor& input, const Target& target) {
  if (options_.layer.empty() || options_.layer == "input") {
    return {attribute(model, input, target), {}};
  }
  auto r = relevances(model, input, target, {options_.layer, ""});
  Attribution result;
  result.raw = r.at(options_.layer);
  result.extras["input"] = r.at("");
  return result;
}

namespace {

struct ParsedLrp {
  LrpOptions options;
  Colormap colormap = Colormap::kSeismic;
};

ParsedLrp read_lrp_options(const MethodParams& params) {
  detail::OptionReader r(params, "lrp");
  ParsedLrp p;
  p.options.composite = r.choice("composite", "epsilon-plus-flat", lrp_composites());
  const std::string rules = r.text("rule", "");
  std::istringstream in(rules);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == item.size()) {
      throw usage_error("lrp option rule: '" + item +
                        "' is not LAYER_OR_TYPE=RULE (e.g. features.0=z-box, Conv2d=gamma:0.25, "
                        "first=flat)");
    }
    p.options.rules.emplace_back(item.substr(0, eq), parse_lrp_rule(item.substr(eq + 1)));
  }
  if (params.count("epsilon")) p.options.epsilon = r.real("epsilon", 1e-6, 0.0);
  if (params.count("gamma")) p.options.gamma = r.real("gamma", 0.25, 0.0);
  p.options.stabilizer = r.real("stabilizer", 1e-6, 0.0);
  p.options.maxpool_average = r.choice("maxpool", "winner", {"winner", "average"}) == "average";
  p.options.layer = r.text("layer", "");
  p.options.mean = r.triple("mean", p.options.mean);
  p.options.std = r.triple("std", p.options.std);
  // z-box's bounds, normalized space: one number for every channel or R,G,B.
  auto bounds = [&](const std::string& key) -> std::optional<std::array<double, 3>> {
    const std::string text = r.text(key, "");
    if (text.empty()) return std::nullopt;
    std::array<double, 3> v{};
    bool ok = parse_rgb(text, v);
    if (!ok) {
      try {
        size_t used = 0;
        v.fill(std::stod(text, &used));
        ok = used == text.size();
      } catch (const std::exception&) {
        ok = false;
      }
    }
    for (double x : v) ok = ok && std::isfinite(x);
    if (!ok) {
      throw usage_error("lrp option " + key + "=" + text +
                        ": expected a finite number or three comma-separated numbers R,G,B "
                        "(z-box's bound in normalized space, e.g. " + key + "=" +
                        (key == "low" ? "-3" : "3") + ")");
    }
    return v;
  };
  p.options.low = bounds("low");
  p.options.high = bounds("high");
  if (p.options.low || p.options.high) zbox_bounds(p.options);  // low < high per channel
  p.colormap = parse_colormap(r.text("colormap", "seismic"));
  r.finish();
  return p;
}

}  // namespace

MethodInfo lrp_method_info() {
  MethodInfo info;
  info.name = "lrp";
  info.summary = "layer-wise relevance propagation: the target's logit redistributed layer by "
                 "layer with per-layer rules (zennit's composites)";
  info.paper = "Bach et al. 2015, On pixel-wise explanations by layer-wise relevance "
               "propagation; Montavon et al. 2019, Layer-wise relevance propagation: an overview";
  info.options = {
      {"composite", "epsilon-plus-flat",
       "rules per layer type: " + detail::join(lrp_composites()) +
           " (classic = the classic collection's LRP.py)"},
      {"rule", "",
       "overrides, comma-separated LAYER_OR_TYPE=RULE: a layer name, a type (Conv2d, Linear, "
       "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d) or first; rules zero, "
       "epsilon[:E], gamma[:G], alpha-beta[:A:B], alpha2-beta1, alpha1-beta0, z-plus, flat, "
       "w-square, z-box, classic[:G[:E]], pass, norm, winner"},
      {"epsilon", "1e-6 (classic 1e-9)", "the composite's epsilon rule (Linear layers)"},
      {"gamma", "0.25 (classic 0.05)", "the composite's gamma rule (epsilon-gamma-box, classic)"},
      {"stabilizer", "1e-6", "the other rules' stabilizer: z + eps * sign(z)"},
      {"maxpool", "winner", "max pools: winner (winner-take-all) or average (as average pools)"},
      {"layer", "input", "read the relevance at this layer's output (see cnnvis layers)"},
      {"mean", "0.485,0.456,0.406", "the input's normalization (z-box bounds)"},
      {"std", "0.229,0.224,0.225", "the input's normalization (z-box bounds)"},
      {"low", "(0 - mean) / std",
       "z-box's lower bound in normalized space: a number or R,G,B (zennit's low)"},
      {"high", "(1 - mean) / std",
       "z-box's upper bound in normalized space: a number or R,G,B (zennit's high)"},
      {"colormap", "seismic", "heatmap colours (seismic, bwr: centred on zero)"},
  };
  info.views = lrp_views(Colormap::kSeismic, false);
  info.views_for = [](const MethodParams& params) {
    const auto p = read_lrp_options(params);
    return lrp_views(p.colormap, !p.options.layer.empty() && p.options.layer != "input");
  };
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    return std::make_unique<Lrp>(read_lrp_options(params).options);
  };
  // Relevance is signed evidence: the channel sum, resized to the input.
  info.importance = [](const at::Tensor& raw, int64_t height, int64_t width) {
    auto map = raw.dim() == 3 ? raw.sum(0) : raw;
    return importance_map(map.to(torch::kFloat).cpu(), height, width);
  };
  return info;
}

LrpOptions parse_lrp_options(const MethodParams& params) {
  return read_lrp_options(params).options;
}

}  // namespace cnnvis
