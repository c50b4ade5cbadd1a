#include "cnnvis/synthesis.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <torch/fft.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>

#include "cnnvis/error.hpp"
#include "methods/blur.hpp"
#include "methods/graph_forward.hpp"

namespace cnnvis {
namespace {

using torch::Tensor;

Tensor channel_view(const std::array<double, 3>& v, const torch::TensorOptions& options) {
  return torch::tensor({v[0], v[1], v[2]}, torch::kDouble).to(options).view({1, 3, 1, 1});
}

// The start images in normalized space, drawn on the CPU from `gen` (device-independent).
Tensor start_images(int64_t count, const SynthesisOptions& o, at::Generator& gen,
                    const torch::TensorOptions& options) {
  const auto cpu = torch::TensorOptions().dtype(torch::kFloat);
  Tensor pixels;
  if (o.init == "uniform") {
    // np.uint8(np.random.uniform(150, 180, ...)) / 255
    pixels = (torch::rand({count, 3, o.size, o.size}, gen, cpu) * 30 + 150).floor_() / 255;
  } else if (o.init == "noise") {
    pixels = torch::randn({count, 3, o.size, o.size}, gen, cpu) * 0.1 +
             channel_view(o.mean, cpu);
  } else if (o.init == "gray") {
    // The mean colour is exactly 0 in normalized space, whatever the dtype.
    return torch::zeros({count, 3, o.size, o.size}, options);
  } else {
    throw usage_error("synthesis option init: '" + o.init +
                      "' is not a start image; expected uniform, noise or gray");
  }
  pixels = pixels.to(options);
  return (pixels - channel_view(o.mean, options)) / channel_view(o.std, options);
}

// Sets the pixels (over all channels) whose `value` [N, H, W] is below the q-quantile of their
// image to 0 (the mean colour in normalized space).
void clip_below_quantile(Tensor& x, const Tensor& value, double q) {
  const auto flat = value.reshape({value.size(0), -1});
  const auto threshold = std::get<0>(
      flat.kthvalue(std::max<int64_t>(1, static_cast<int64_t>(q * flat.size(1))), 1, true));
  const auto keep = flat.ge(threshold).reshape(value.sizes()).unsqueeze(1).to(x.scalar_type());
  x.mul_(keep);
}

void check_options(const SynthesisOptions& o, bool has_start) {
  auto bad = [](const std::string& option, const std::string& value,
                const std::string& expected) {
    throw usage_error("synthesis option " + option + "=" + value + ": expected " + expected);
  };
  auto num = [](double v) {
    std::ostringstream s;
    s << v;
    return s.str();
  };
  if (o.steps < 1) bad("steps", std::to_string(o.steps), "an integer >= 1");
  if (!(o.lr > 0)) bad("lr", num(o.lr), "a number > 0");
  if (o.optimizer != "adam" && o.optimizer != "sgd" && o.optimizer != "normalized") {
    bad("optimizer", o.optimizer, "adam, sgd or normalized");
  }
  if (o.momentum < 0 || o.momentum >= 1) bad("momentum", num(o.momentum), "a number in [0, 1)");
  if (o.momentum > 0 && o.optimizer != "sgd") {
    bad("momentum", num(o.momentum), "0 unless the optimizer is sgd");
  }
  if (o.weight_decay < 0) bad("weight-decay", num(o.weight_decay), "a number >= 0");
  if (o.lr_decay_every < 0) bad("lr-decay-every", std::to_string(o.lr_decay_every), "an integer >= 0");
  if (!(o.lr_decay > 0)) bad("lr-decay", num(o.lr_decay), "a number > 0");
  if (o.param != "pixel" && o.param != "fft") bad("param", o.param, "pixel or fft");
  if (o.param == "fft") {
    if (has_start) bad("param", o.param, "pixel when starting from an image");
    if (o.blur_every > 0 || o.clip_norm > 0 || o.clip_contribution > 0) {
      bad("param", o.param, "pixel with blur or clipping (they act on pixels)");
    }
  }
  if (o.fft_decay < 0) bad("fft-decay", num(o.fft_decay), "a number >= 0");
  if (o.l1 < 0) bad("l1", num(o.l1), "a number >= 0");
  if (o.l2 < 0) bad("l2", num(o.l2), "a number >= 0");
  if (o.blur_every < 0) bad("blur-every", std::to_string(o.blur_every), "an integer >= 0");
  if (o.blur_every > 0 && !(o.blur_sigma > 0)) bad("blur-sigma", num(o.blur_sigma), "a number > 0");
  if (o.clip_norm < 0 || o.clip_norm >= 1) bad("clip-norm", num(o.clip_norm), "a quantile in [0, 1)");
  if (o.clip_contribution < 0 || o.clip_contribution >= 1) {
    bad("clip-contribution", num(o.clip_contribution), "a quantile in [0, 1)");
  }
  if (o.pad < 0) bad("pad", std::to_string(o.pad), "an integer >= 0");
  if (o.jitter < 0) bad("jitter", std::to_string(o.jitter), "an integer >= 0");
  if (o.scale < 0 || o.scale >= 1) bad("scale", num(o.scale), "a number in [0, 1)");
  if (o.rotate < 0 || o.rotate > 180) bad("rotate", std::to_string(o.rotate), "degrees in [0, 180]");
  if (o.alpha_weight < 0) bad("alpha-weight", num(o.alpha_weight), "a number >= 0");
  if (!(o.alpha >= 1)) bad("alpha", num(o.alpha), "a number >= 1");
  if (!(o.alpha_bound > 0)) bad("alpha-bound", num(o.alpha_bound), "a number > 0");
  if (o.tv_weight < 0) bad("tv-weight", num(o.tv_weight), "a number >= 0");
  if (!(o.beta >= 1)) bad("beta", num(o.beta), "a number >= 1");
  if (o.tv_bound < 0) bad("tv-bound", num(o.tv_bound), "a number >= 0 (0: alpha-bound / 6.5)");
  if (o.diversity < 0) bad("diversity", num(o.diversity), "a number >= 0");
  if (o.redirected_relu_steps < 0) {
    bad("redirected-relu", std::to_string(o.redirected_relu_steps), "an integer >= 0");
  }
  if (o.every < 0) bad("every", std::to_string(o.every), "an integer >= 0");
  if (o.size < 1) bad("size", std::to_string(o.size), "an integer >= 1");
}

// The image as a function of the optimized tensor: the tensor itself ("pixel"), or lucid's
// Fourier parameterization.
class Parameterization {
 public:
  Parameterization(const SynthesisOptions& o, const torch::TensorOptions& options)
      : o_(o), mean_(channel_view(o.mean, options)), std_(channel_view(o.std, options)) {}

  // The tensor to optimize for a batch of `count` images (ignored for a start image).
  Tensor init(int64_t count, const at::Tensor& start, at::Generator& gen,
              const torch::TensorOptions& options) {
    if (o_.param == "pixel") {
      return start.defined() ? start.detach().to(options).clone()
                             : start_images(count, o_, gen, options);
    }
    h_ = w_ = o_.size;
    // |frequency| of each rfft2 coefficient, numpy's fftfreq convention.
    auto freq = [](int64_t k, int64_t n) {
      return static_cast<double>(k <= (n - 1) / 2 ? k : k - n) / static_cast<double>(n);
    };
    const int64_t wf = w_ / 2 + 1;
    auto scale = torch::empty({h_, wf}, torch::kDouble);
    auto acc = scale.accessor<double, 2>();
    const double floor = 1.0 / static_cast<double>(std::max(h_, w_));
    for (int64_t i = 0; i < h_; ++i) {
      for (int64_t j = 0; j < wf; ++j) {
        const double f = std::hypot(freq(i, h_), freq(j, w_));
        acc[i][j] = 1.0 / std::pow(std::max(f, floor), o_.fft_decay);
      }
    }
    scale_ = scale.to(options).view({1, 1, h_, wf, 1});
    // lucid's color_correlation_svd_sqrt, divided by its largest column norm.
    auto c = torch::tensor({0.26, 0.09, 0.02, 0.27, 0.00, -0.05, 0.27, -0.09, 0.03},
                           torch::kDouble).view({3, 3});
    c = c / c.norm(2, 0).max();
    color_ = c.to(options);
    const auto cpu = torch::TensorOptions().dtype(torch::kFloat);
    return (torch::randn({count, 3, h_, wf, 2}, gen, cpu) * 0.01).to(options);
  }

  // The image in normalized space.
  Tensor image(const Tensor& p) const {
    if (o_.param == "pixel") return p;
    auto spectrum = torch::view_as_complex((scale_ * p).contiguous());
    auto img = torch::fft::irfftn(spectrum, c10::IntArrayRef{h_, w_}, c10::IntArrayRef{2, 3},
                                  "ortho") / 4.0;  // lucid's "magic" 4
    if (o_.decorrelate) img = torch::einsum("dc,nchw->ndhw", {color_, img});
    return (torch::sigmoid(img) - mean_) / std_;
  }

  bool pixel() const { return o_.param == "pixel"; }

 private:
  const SynthesisOptions& o_;
  Tensor mean_, std_, scale_, color_;
  int64_t h_ = 0, w_ = 0;
};

// Pad, jitter, scale and rotate, drawn from `gen` (the order of lucid's standard transforms).
Tensor robustness(Tensor x, const SynthesisOptions& o, at::Generator& gen, const Tensor& grey) {
  namespace F = torch::nn::functional;
  auto draw = [&](int64_t lo, int64_t hi) {  // uniform integer in [lo, hi]
    return torch::randint(lo, hi + 1, {1}, gen).item<int64_t>();
  };
  if (o.pad > 0) x = torch::constant_pad_nd(x - grey, {o.pad, o.pad, o.pad, o.pad}, 0) + grey;
  if (o.jitter > 0) {
    const int64_t dy = draw(-o.jitter, o.jitter), dx = draw(-o.jitter, o.jitter);
    x = torch::roll(x, {dy, dx}, {2, 3});
  }
  if (o.scale > 0) {
    const double s = 1.0 + static_cast<double>(draw(-5, 5)) * o.scale / 5.0;
    if (s != 1.0) {
      const auto h = static_cast<int64_t>(std::ceil(s * static_cast<double>(x.size(2))));
      const auto w = static_cast<int64_t>(std::ceil(s * static_cast<double>(x.size(3))));
      x = F::interpolate(x, F::InterpolateFuncOptions()
                                .size(std::vector<int64_t>{h, w})
                                .mode(torch::kBilinear)
                                .align_corners(true));
    }
  }
  if (o.rotate > 0) {
    const int64_t degrees = draw(-o.rotate, o.rotate);
    if (degrees != 0) {
      const double a = static_cast<double>(degrees) * M_PI / 180.0;
      const auto theta = torch::tensor({std::cos(a), -std::sin(a), 0.0, std::sin(a),
                                        std::cos(a), 0.0}, torch::kDouble)
                             .to(x.options()).view({1, 2, 3}).expand({x.size(0), 2, 3});
      const auto grid = F::affine_grid(theta, x.sizes(), false);
      x = F::grid_sample(x, grid, F::GridSampleFuncOptions()
                                      .mode(torch::kBilinear)
                                      .padding_mode(torch::kZeros)
                                      .align_corners(false));
    }
  }
  return x;
}

// Mahendran & Vedaldi's alpha-norm and total variation, per image.
Tensor mv_penalty(const Tensor& x, const SynthesisOptions& o) {
  const auto u = o.raw_sums ? x : x * channel_view(o.std, x.options()) * 255.0;
  const double hw = static_cast<double>(x.size(2) * x.size(3));
  auto penalty = torch::zeros({x.size(0)}, x.options());
  if (o.alpha_weight > 0) {
    auto r = u.abs().pow(o.alpha).sum({1, 2, 3});
    if (!o.raw_sums) r = r / (hw * std::pow(o.alpha_bound, o.alpha));
    penalty = penalty + o.alpha_weight * r;
  }
  if (o.tv_weight > 0) {
    using torch::indexing::None;
    using torch::indexing::Slice;
    const auto base = u.index({Slice(), Slice(), Slice(0, -1), Slice(0, -1)});
    const auto down = u.index({Slice(), Slice(), Slice(1, None), Slice(0, -1)}) - base;
    const auto right = u.index({Slice(), Slice(), Slice(0, -1), Slice(1, None)}) - base;
    auto t = down.pow(2) + right.pow(2);
    if (o.beta != 2.0) t = (t + 1e-8).pow(o.beta / 2.0);
    auto r = t.sum({1, 2, 3});
    const double v = o.tv_bound > 0 ? o.tv_bound : o.alpha_bound / 6.5;
    if (!o.raw_sums) r = r / (hw * std::pow(v, o.beta));
    penalty = penalty + o.tv_weight * r;
  }
  return penalty;
}

// Lucid's diversity: (1/N) sum_i sum_(j != i) <G_i, G_j> of Frobenius-normalized Gram matrices.
Tensor diversity_penalty(const Tensor& a) {
  const int64_t n = a.size(0);
  const auto f = a.reshape({n, a.size(1), -1});
  auto g = torch::bmm(f, f.transpose(1, 2)).reshape({n, -1});
  g = g / g.norm(2, 1, true).clamp_min(1e-12);
  const auto s = torch::mm(g, g.t());
  return (s.sum() - s.diagonal().sum()) / static_cast<double>(n);
}

void set_lr(torch::optim::Optimizer& opt, const std::string& kind, double lr) {
  for (auto& group : opt.param_groups()) {
    if (kind == "adam") {
      static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
    } else {
      static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    }
  }
}

// Lucid's redirected ReLU (lucid/optvis/overrides/redirected_relu_grad.py, ReluMode::kRedirected)
// in place of the graph's ReLUs: for an image whose ReLU gradient is zero everywhere, the
// incoming gradient passes except where the input is negative and the gradient (of the
// minimized loss) would push it lower.
Tensor redirected_layer(const GraphNode& node, detail::GraphOp op, const Tensor& x) {
  return op == detail::GraphOp::kRelu ? relu(x, ReluMode::kRedirected)
                                      : detail::apply_graph_layer(node, op, x);
}

// All names a node and its inner layers answer to.
void collect_names(const GraphNode& node, std::set<std::string>& out) {
  for (const auto& n : detail::graph_names(node)) out.insert(n);
  for (const auto* seq : {&node.branch, &node.shortcut, &node.after}) {
    for (const auto& inner : *seq) collect_names(inner, out);
  }
}

// After the first step without transforms: an image whose gradient was exactly zero and that
// the step left unchanged is at a critical point of the objective (the gray start on a network
// with zero biases: every ReLU input is 0; a unit that is 0 after its ReLU) and would never
// move, so 200 steps would return the start image with its score unchanged. Say so instead.
void check_moved(const Tensor& p, const Tensor& before, const Target& target,
                 const std::string& advice) {
  torch::NoGradGuard no_grad;
  const int64_t n = p.size(0);
  const auto still = p.detach().eq(before).reshape({n, -1}).all(1);
  const auto flat = p.grad().defined() ? p.grad().eq(0).reshape({n, -1}).all(1)
                                       : torch::ones({n}, torch::kBool);
  const auto stuck = (still & flat).to(torch::kCPU);
  for (int64_t i = 0; i < n; ++i) {
    if (!stuck[i].item<bool>()) continue;
    throw usage_error(
        "synthesis: the gradient of " + target.description() +
        " is exactly zero at the start image (image " + std::to_string(i) + " of " +
        std::to_string(n) +
        "), so no step can change it: a critical point, such as the gray start on a network "
        "with zero biases or a unit that is 0 after its ReLU; " +
        advice + ", or use redirected_relu_steps (--redirected-relu 16)");
  }
}

}  // namespace

SynthesisResult synthesize(Model& model, const Target& target, int64_t count,
                           const SynthesisOptions& o, const at::Tensor& start) {
  check_options(o, start.defined());
  if (!start.defined() && count < 1) {
    throw usage_error("synthesis: the batch needs at least one image, got " +
                      std::to_string(count));
  }
  for (const auto& tap : target.taps()) model.check_layer(tap);
  std::string diversity_layer = o.diversity_layer;
  if (o.diversity > 0 && diversity_layer.empty()) {
    if (target.taps().size() != 1) {
      throw usage_error("synthesis option diversity: name its layer (diversity_layer); the "
                        "target has no single layer");
    }
    diversity_layer = target.taps()[0];
  }
  if (!diversity_layer.empty()) model.check_layer(diversity_layer);
  // Device and dtype of the model's parameters.
  torch::TensorOptions options = torch::TensorOptions().dtype(torch::kFloat);
  for (const auto& p : model.module().parameters()) {
    options = p.options().requires_grad(false);
    break;
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  Parameterization param(o, options);
  Tensor p = param.init(count, start, gen, options);

  // The forward pass, truncated after the last layer it needs when the model describes its
  // graph and the target reads layers only.
  std::vector<std::string> needed = target.taps();
  if (o.diversity > 0 &&
      std::find(needed.begin(), needed.end(), diversity_layer) == needed.end()) {
    needed.push_back(diversity_layer);
  }
  const auto graph = model.graph();
  std::string stop;
  bool truncate = false;
  if (!graph.empty() && !target.taps().empty()) {
    std::set<std::string> remaining(needed.begin(), needed.end());
    for (const auto& node : graph) {
      std::set<std::string> names;
      collect_names(node, names);
      for (const auto& n : names) remaining.erase(n);
      if (remaining.empty()) {
        const auto own = detail::graph_names(node);
        truncate = !own.empty();
        if (truncate) stop = own.front();
        break;
      }
    }
  }
  // Without a graph, a target that reads layers only asks the model for its taps alone
  // (forward_taps: a TorchScript model then stops after them too).
  // Redirected ReLUs: in the graph the truncated pass runs (redirected_layer), else in the
  // model's own ReLUs (ReluMode::kRedirected: the zoo's, and every aten::relu of a TorchScript
  // model, which need no graph).
  const bool taps_only = !truncate && !target.taps().empty();
  auto forward = [&](const Tensor& input, bool redirect = false) {
    if (!truncate) {
      std::optional<ReluModeGuard> guard;
      if (redirect) guard.emplace(model, ReluMode::kRedirected);
      return taps_only ? model.forward_taps(input, needed) : model.forward(input, needed);
    }
    std::map<std::string, Tensor> taps;
    for (const auto& n : needed) taps[n] = Tensor();
    ForwardResult r;
    detail::run_graph(graph, input, model.name(), "synthesis", taps, stop, {},
                      redirect ? detail::GraphLayerFn(redirected_layer) : detail::GraphLayerFn());
    r.taps = std::move(taps);
    return r;
  };

  auto too_small = [](const Tensor& x, const c10::Error& e) {
    return usage_error("synthesis: the network cannot take a " + std::to_string(x.size(2)) +
                       "x" + std::to_string(x.size(3)) + " image (" +
                       e.what_without_backtrace() + "); use a larger size");
  };
  // Without transforms the first step's forward pass sees the start image, and its score is
  // the initial score; with transforms the start image is scored on its own.
  const bool transforms = o.pad > 0 || o.jitter > 0 || o.scale > 0 || o.rotate > 0;
  SynthesisResult result;
  if (transforms) {
    torch::NoGradGuard no_grad;
    const auto x0 = param.image(p);
    try {
      result.initial_score = target.score(forward(x0)).detach();
    } catch (const c10::Error& e) {
      throw too_small(x0, e);
    }
  }

  // The normalized values of pixels 0 and 1, per channel, and of grey 0.5.
  const auto mean = channel_view(o.mean, options), sd = channel_view(o.std, options);
  const auto low = -mean / sd, high = (1 - mean) / sd, grey = (0.5 - mean) / sd;
  p.requires_grad_(true);
  std::unique_ptr<torch::optim::Optimizer> opt;
  double lr = o.lr;
  if (o.optimizer == "adam") {
    opt = std::make_unique<torch::optim::Adam>(
        std::vector<Tensor>{p}, torch::optim::AdamOptions(lr).weight_decay(o.weight_decay));
  } else if (o.optimizer == "sgd") {
    opt = std::make_unique<torch::optim::SGD>(
        std::vector<Tensor>{p},
        torch::optim::SGDOptions(lr).momentum(o.momentum).weight_decay(o.weight_decay));
  }
  const bool penalties = o.l1 > 0 || o.l2 > 0 || o.alpha_weight > 0 || o.tv_weight > 0;
  for (int64_t step = 1; step <= o.steps; ++step) {
    if (p.grad().defined()) p.mutable_grad().zero_();
    // Without transforms every step sees the image itself: if the first step leaves an image
    // unchanged with an exactly zero gradient, so will every later one (checked below).
    const Tensor before = step == 1 && !transforms ? p.detach().clone() : Tensor();
    const Tensor x = param.image(p);
    const Tensor input = robustness(x, o, gen, grey);
    ForwardResult r;
    try {
      r = forward(input, step <= o.redirected_relu_steps);
    } catch (const c10::Error& e) {
      if (step == 1) throw too_small(input, e);
      throw;
    }
    const auto score = target.score(r);
    if (step == 1 && !transforms) result.initial_score = score.detach().clone();
    auto loss = -score.sum();
    if (penalties) loss = loss + synthesis_penalty(x, o).sum();
    if (o.diversity > 0) loss = loss + o.diversity * diversity_penalty(r.taps.at(diversity_layer));
    loss.backward();
    if (opt) {
      opt->step();
    } else {  // normalized gradient ascent
      torch::NoGradGuard no_grad;
      auto g = p.grad();
      if (o.weight_decay > 0) g = g + o.weight_decay * p;
      const auto norm = g.abs().mean(std::vector<int64_t>{1, 2, 3}, true) + 1e-8;
      p.sub_(lr * g / norm);
    }
    if (o.lr_decay_every > 0 && step % o.lr_decay_every == 0) {
      lr *= o.lr_decay;
      if (opt) set_lr(*opt, o.optimizer, lr);
    }
    if (param.pixel()) {
      torch::NoGradGuard no_grad;
      if (o.blur_every > 0 && step % o.blur_every == 0) {
        p.copy_(detail::gaussian_blur(p, o.blur_sigma));
      }
      if (o.clip_norm > 0) {
        auto xv = p.detach();
        clip_below_quantile(xv, xv.norm(2, 1), o.clip_norm);
      }
      if (o.clip_contribution > 0) {
        auto xv = p.detach();
        clip_below_quantile(xv, (xv * p.grad()).sum(1).abs(), o.clip_contribution);
      }
      if (o.clamp_pixels) p.clamp_(low, high);
    }
    if (before.defined()) {
      check_moved(p, before, target,
                  start.defined()     ? "choose another layer or image"
                  : param.pixel()     ? "start from init noise or uniform (--init noise)"
                                      : "try another seed (--seed)");
    }
    result.objective.push_back(score.mean().item<double>());
    if (o.every > 0 && step % o.every == 0) {
      torch::NoGradGuard no_grad;
      result.snapshots.emplace_back(step, param.image(p).detach().clone());
    }
    if (o.progress && !o.progress(step, o.steps, result.objective.back())) break;
  }
  {
    torch::NoGradGuard no_grad;
    result.image = param.image(p.detach()).detach();
    result.final_score = target.score(forward(result.image)).detach();
  }
  result.objective.push_back(result.final_score.mean().item<double>());
  return result;
}

Target filter_batch_target(const std::string& layer, std::vector<int64_t> filters) {
  for (auto f : filters) {
    if (f < 0) throw usage_error("filter index " + std::to_string(f) + " is negative");
  }
  std::ostringstream description;
  description << "mean of filter" << (filters.size() > 1 ? "s " : " ");
  for (size_t i = 0; i < filters.size(); ++i) description << (i ? "," : "") << filters[i];
  description << " at " << layer;
  return Target::custom(
      [layer, filters](const ForwardResult& r) {
        const auto& a = r.taps.at(layer);
        const int64_t channels = a.dim() < 2 ? 0 : a.size(1);
        if (a.size(0) != static_cast<int64_t>(filters.size())) {
          throw usage_error("filter batch: " + std::to_string(filters.size()) +
                            " filters for a batch of " + std::to_string(a.size(0)) + " images");
        }
        std::vector<Tensor> scores;
        for (size_t i = 0; i < filters.size(); ++i) {
          if (filters[i] >= channels) {
            throw usage_error("filter " + std::to_string(filters[i]) + " of layer " + layer +
                              ": the layer has " + std::to_string(channels) + " channels (0.." +
                              std::to_string(channels - 1) + ")");
          }
          scores.push_back(a[static_cast<int64_t>(i)][filters[i]].mean());
        }
        return torch::stack(scores);
      },
      {layer}, description.str());
}

namespace {

// Image i's score of class classes[i] from `scores` [N, C] or, for a dense output, from its
// per-pixel scores [N, C, H, W] averaged over the pixels.
at::Tensor class_scores(const at::Tensor& scores, const std::vector<int64_t>& classes) {
  if (scores.dim() != 2 && scores.dim() != 4) {
    throw usage_error("class target: the model's output " + c10::str(scores.sizes()) +
                      " is neither logits [N, classes] nor a dense map [N, classes, H, W]");
  }
  if (scores.size(0) != static_cast<int64_t>(classes.size())) {
    throw usage_error("class batch: " + std::to_string(classes.size()) +
                      " classes for a batch of " + std::to_string(scores.size(0)) + " images");
  }
  for (auto c : classes) {
    if (c < 0 || c >= scores.size(1)) {
      throw usage_error("class " + std::to_string(c) + " is outside [0, " +
                        std::to_string(scores.size(1)) + ")");
    }
  }
  auto index = torch::tensor(classes, torch::kLong).to(scores.device()).unsqueeze(1);
  if (scores.dim() == 2) return scores.gather(1, index).squeeze(1);
  index = index.view({-1, 1, 1, 1}).expand({scores.size(0), 1, scores.size(2), scores.size(3)});
  return scores.gather(1, index).mean({1, 2, 3});
}

std::string classes_text(const std::vector<int64_t>& classes) {
  std::ostringstream s;
  s << "class" << (classes.size() > 1 ? "es " : " ");
  for (size_t i = 0; i < classes.size(); ++i) s << (i ? "," : "") << classes[i];
  return s.str();
}

}  // namespace

Target class_log_probability_target(std::vector<int64_t> classes) {
  const std::string description = "log-probability of " + classes_text(classes);
  return Target::custom(
      [classes](const ForwardResult& r) {
        return class_scores(torch::log_softmax(r.output, 1), classes);
      },
      {}, description);
}

Target class_logit_target(std::vector<int64_t> classes) {
  const std::string description = "logit of " + classes_text(classes);
  return Target::custom(
      [classes](const ForwardResult& r) { return class_scores(r.output, classes); }, {},
      description);
}

std::vector<int64_t> parse_filter_list(const std::string& text) {
  std::vector<int64_t> out;
  auto fail = [&] {
    throw usage_error("filters '" + text +
                      "': expected an index (5), a range (0-15) or a list (3,7,9) of "
                      "non-negative integers");
  };
  auto number = [&](const std::string& s) -> int64_t {
    if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 9) {
      fail();
    }
    return std::stoll(s);
  };
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    const auto dash = item.find('-');
    if (dash == std::string::npos) {
      out.push_back(number(item));
      continue;
    }
    const int64_t a = number(item.substr(0, dash)), b = number(item.substr(dash + 1));
    if (b < a || b - a > 4096) fail();
    for (int64_t f = a; f <= b; ++f) out.push_back(f);
  }
  if (out.empty()) fail();
  return out;
}

SynthesisOptions filter_preset() {
  SynthesisOptions o;
  o.steps = 30;
  o.lr = 0.1;
  o.optimizer = "adam";
  o.weight_decay = 1e-6;
  o.init = "uniform";
  return o;
}

SynthesisOptions class_model_preset(const std::string& regularize) {
  SynthesisOptions o;
  o.steps = 200;
  o.lr = 0.1;
  o.init = "gray";
  if (regularize == "none") return o;
  if (regularize == "l2") {
    o.l2 = 1.0;
  } else if (regularize == "l1") {
    o.l1 = 1.0;
  } else if (regularize == "yosinski") {
    o.weight_decay = 1e-4;
    o.blur_every = 4;
    o.blur_sigma = 0.5;
    o.clip_norm = 0.1;
    o.clip_contribution = 0.1;
  } else {
    throw usage_error("regularize '" + regularize + "': expected none, l1, l2 or yosinski");
  }
  return o;
}

at::Tensor synthesis_penalty(const at::Tensor& x, const SynthesisOptions& o) {
  auto pen = mv_penalty(x, o);
  if (o.l2 > 0) pen = pen + o.l2 * x.pow(2).mean({1, 2, 3});
  if (o.l1 > 0) pen = pen + o.l1 * x.abs().mean({1, 2, 3});
  return pen;
}

Target neuron_target(const std::string& layer, std::vector<int64_t> channels, int64_t y,
                     int64_t x) {
  for (auto c : channels) {
    if (c < 0) throw usage_error("neuron: channel " + std::to_string(c) + " is negative");
  }
  std::ostringstream description;
  description << "neuron of channel" << (channels.size() > 1 ? "s " : " ");
  for (size_t i = 0; i < channels.size(); ++i) description << (i ? "," : "") << channels[i];
  description << " at " << layer << " ";
  if (y < 0 || x < 0) {
    description << "(centre)";
  } else {
    description << "(y " << y << ", x " << x << ")";
  }
  return Target::custom(
      [layer, channels, y, x](const ForwardResult& r) {
        const auto& a = r.taps.at(layer);
        if (a.dim() != 4) {
          throw usage_error("neuron: layer " + layer + " has no spatial extent (shape " +
                            std::to_string(a.dim()) + "-d); use a convolutional layer");
        }
        if (a.size(0) != static_cast<int64_t>(channels.size())) {
          throw usage_error("neuron batch: " + std::to_string(channels.size()) +
                            " channels for a batch of " + std::to_string(a.size(0)) + " images");
        }
        const int64_t h = a.size(2), w = a.size(3);
        const int64_t yy = (y < 0 || x < 0) ? h / 2 : y, xx = (y < 0 || x < 0) ? w / 2 : x;
        if (yy >= h || xx >= w) {
          throw usage_error("neuron position (y " + std::to_string(yy) + ", x " +
                            std::to_string(xx) + ") is outside layer " + layer + "'s " +
                            std::to_string(h) + "x" + std::to_string(w) + " map");
        }
        std::vector<Tensor> scores;
        for (size_t i = 0; i < channels.size(); ++i) {
          if (channels[i] >= a.size(1)) {
            throw usage_error("channel " + std::to_string(channels[i]) + " of layer " + layer +
                              ": the layer has " + std::to_string(a.size(1)) + " channels (0.." +
                              std::to_string(a.size(1) - 1) + ")");
          }
          scores.push_back(a[static_cast<int64_t>(i)][channels[i]][yy][xx]);
        }
        return torch::stack(scores);
      },
      {layer}, description.str());
}

Target direction_target(const std::string& layer, const at::Tensor& direction) {
  if (!direction.defined() || direction.dim() != 1 || direction.numel() < 1) {
    throw usage_error("direction: expected a vector with one value per channel of " + layer);
  }
  const auto d = direction.detach().to(torch::kFloat).clone();
  if (d.abs().max().item<double>() == 0) throw usage_error("direction: the vector is zero");
  return Target::custom(
      [layer, d](const ForwardResult& r) {
        const auto& a = r.taps.at(layer);
        if (a.dim() < 2 || a.size(1) != d.numel()) {
          throw usage_error("direction: " + std::to_string(d.numel()) + " values for layer " +
                            layer + " with " + (a.dim() < 2 ? std::string("no") :
                            std::to_string(a.size(1))) + " channels");
        }
        std::vector<int64_t> shape(static_cast<size_t>(a.dim()), 1);
        shape[1] = d.numel();
        const auto dv = d.to(a.options()).view(shape);
        const auto cos = torch::cosine_similarity(dv, a, 1);
        return cos.reshape({a.size(0), -1}).mean(1);
      },
      {layer}, "cosine similarity to a direction at " + layer);
}

Target layer_l2_target(const std::string& layer) {
  return Target::custom(
      [layer](const ForwardResult& r) {
        const auto& a = r.taps.at(layer);
        return a.pow(2).reshape({a.size(0), -1}).mean(1);
      },
      {layer}, "mean squared activation of " + layer);
}

Target inversion_target(const std::string& layer, const at::Tensor& reference, double weight) {
  if (!reference.defined()) throw usage_error("inversion: no reference representation");
  const auto ref = reference.detach();
  const auto norm = ref.pow(2).reshape({ref.size(0), -1}).sum(1);
  if (norm.min().item<double>() == 0) {
    throw usage_error("inversion: the representation at " + layer +
                      " is zero everywhere; choose another layer or image");
  }
  return Target::custom(
      [layer, ref, norm, weight](const ForwardResult& r) {
        const auto& a = r.taps.at(layer);
        if (a.sizes().slice(1) != ref.sizes().slice(1)) {
          throw usage_error("inversion: the representation at " + layer +
                            " has another shape than the reference's (the image size changed)");
        }
        const auto d = (a - ref).pow(2).reshape({a.size(0), -1}).sum(1);
        return -weight * d / norm;
      },
      {layer}, "normalized distance to the representation at " + layer);
}

SynthesisResult invert(Model& model, const std::string& layer, const at::Tensor& image,
                       const InversionOptions& options) {
  if (!image.defined() || image.dim() != 4 || image.size(0) != 1 || image.size(1) != 3) {
    throw usage_error("invert: expected one normalized image [1, 3, H, W]");
  }
  if (image.size(2) != image.size(3)) {
    throw usage_error("invert: the image must be square (" + std::to_string(image.size(2)) +
                      "x" + std::to_string(image.size(3)) + ")");
  }
  if (!(options.data_weight > 0)) {
    throw usage_error("invert: data weight " + std::to_string(options.data_weight) +
                      ": expected a number > 0");
  }
  model.check_layer(layer);
  at::Tensor reference;
  {
    torch::NoGradGuard no_grad;
    reference = model.forward_taps(image, {layer}).taps.at(layer).detach();
  }
  auto o = options.synthesis;
  o.size = image.size(2);
  return synthesize(model, inversion_target(layer, reference, options.data_weight), 1, o);
}

SynthesisResult deep_dream(Model& model, const Target& target, const at::Tensor& image,
                           const DeepDreamOptions& options) {
  namespace F = torch::nn::functional;
  if (!image.defined() || image.dim() != 4 || image.size(1) != 3) {
    throw usage_error("deep dream: expected normalized images [N, 3, H, W]");
  }
  if (options.octaves < 1) {
    throw usage_error("deep dream: octaves=" + std::to_string(options.octaves) +
                      ": expected an integer >= 1");
  }
  if (!(options.octave_scale > 1)) {
    throw usage_error("deep dream: octave scale " + std::to_string(options.octave_scale) +
                      ": expected a number > 1");
  }
  const auto& so = options.synthesis;
  if (so.param != "pixel") throw usage_error("deep dream: param must be pixel (it starts from an image)");
  auto resize = [](const Tensor& x, int64_t h, int64_t w) {
    return F::interpolate(x, F::InterpolateFuncOptions()
                                 .size(std::vector<int64_t>{h, w})
                                 .mode(torch::kBilinear)
                                 .align_corners(false));
  };
  const auto base = image.detach();
  std::vector<Tensor> bases{base};
  for (int64_t k = 1; k < options.octaves; ++k) {
    const auto& prev = bases.back();
    const auto h = static_cast<int64_t>(std::lround(static_cast<double>(prev.size(2)) / options.octave_scale));
    const auto w = static_cast<int64_t>(std::lround(static_cast<double>(prev.size(3)) / options.octave_scale));
    if (h < 1 || w < 1) {
      throw usage_error("deep dream: " + std::to_string(options.octaves) +
                        " octaves shrink the image to nothing; use fewer octaves");
    }
    bases.push_back(resize(prev, h, w));
  }
  SynthesisResult result;
  {
    torch::NoGradGuard no_grad;
    result.initial_score = target.score(model.forward_taps(base, target.taps())).detach();
    const auto& smallest = bases.back();
    try {
      model.forward_taps(smallest, target.taps());
    } catch (const c10::Error& e) {
      throw usage_error("deep dream: the smallest octave, " + std::to_string(smallest.size(2)) +
                        "x" + std::to_string(smallest.size(3)) +
                        ", is too small for the network; use fewer octaves or a smaller octave "
                        "scale");
    }
  }
  Tensor dream_detail = torch::zeros_like(bases.back());
  Tensor dreamed;
  const int64_t total = so.steps * options.octaves;
  for (int64_t k = options.octaves - 1; k >= 0; --k) {
    const auto& b = bases[static_cast<size_t>(k)];
    if (dream_detail.sizes() != b.sizes()) dream_detail = resize(dream_detail, b.size(2), b.size(3));
    auto o = so;
    const int64_t done = (options.octaves - 1 - k) * so.steps;
    o.seed = so.seed + static_cast<uint64_t>(options.octaves - 1 - k);
    if (so.progress) {
      o.progress = [&so, done, total](int64_t step, int64_t, double objective) {
        return so.progress(done + step, total, objective);
      };
    }
    auto r = synthesize(model, target, b.size(0), o, b + dream_detail);
    r.objective.pop_back();  // the octave's final score; its steps' scores stay
    result.objective.insert(result.objective.end(), r.objective.begin(), r.objective.end());
    for (auto& [step, images] : r.snapshots) result.snapshots.emplace_back(done + step, images);
    dreamed = r.image;
    dream_detail = dreamed - b;
  }
  {
    torch::NoGradGuard no_grad;
    result.final_score = target.score(model.forward_taps(dreamed, target.taps())).detach();
  }
  result.objective.push_back(result.final_score.mean().item<double>());
  result.image = dreamed;
  return result;
}

SynthesisOptions lucid_preset() {
  SynthesisOptions o;
  o.param = "fft";
  o.decorrelate = true;
  o.optimizer = "adam";
  o.lr = 0.05;
  o.steps = 512;
  o.pad = 12;
  o.jitter = 8;
  o.scale = 0.1;
  o.rotate = 10;
  o.redirected_relu_steps = 16;
  return o;
}

InversionOptions inversion_preset(const std::string& name) {
  InversionOptions io;
  auto& o = io.synthesis;
  o.init = "noise";
  o.alpha = 6;
  o.beta = 2;
  if (name == "paper") {
    o.optimizer = "adam";
    o.lr = 0.05;
    o.steps = 200;
    o.alpha_weight = 1;
    o.alpha_bound = 80;
    o.tv_weight = 1;
    io.data_weight = 100;
  } else if (name == "classic") {
    o.optimizer = "sgd";
    o.momentum = 0.9;
    o.lr = 1e3;
    o.lr_decay_every = 40;
    o.lr_decay = 0.1;
    o.steps = 200;
    o.raw_sums = true;
    o.alpha_weight = 1e-7;
    o.tv_weight = 1e-8;
    o.clamp_pixels = false;
    io.data_weight = 0.1;
  } else {
    throw usage_error("inversion preset '" + name + "': expected paper or classic");
  }
  return io;
}

DeepDreamOptions deep_dream_preset(const std::string& name) {
  DeepDreamOptions d;
  auto& o = d.synthesis;
  if (name == "mordvintsev") {
    d.octaves = 4;
    d.octave_scale = 1.4;
    o.steps = 10;
    o.optimizer = "normalized";
    o.lr = 1.5 / 255 / 0.226;
    o.jitter = 32;
  } else if (name == "classic") {
    d.octaves = 1;
    o.steps = 250;
    o.optimizer = "sgd";
    o.lr = 12;
    o.weight_decay = 1e-4;
    o.clamp_pixels = false;
  } else {
    throw usage_error("deep dream preset '" + name + "': expected mordvintsev or classic");
  }
  return d;
}

}  // namespace cnnvis
