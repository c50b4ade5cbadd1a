#include "cnnvis/synthesis.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

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
    pixels = channel_view(o.mean, cpu).expand({count, 3, o.size, o.size}).clone();
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

void check_options(const SynthesisOptions& o) {
  auto bad = [](const std::string& option, const std::string& value,
                const std::string& expected) {
    throw usage_error("synthesis option " + option + "=" + value + ": expected " + expected);
  };
  if (o.steps < 1) bad("steps", std::to_string(o.steps), "an integer >= 1");
  if (!(o.lr > 0)) bad("lr", std::to_string(o.lr), "a number > 0");
  if (o.optimizer != "adam" && o.optimizer != "sgd") bad("optimizer", o.optimizer, "adam or sgd");
  if (o.weight_decay < 0) bad("weight-decay", std::to_string(o.weight_decay), "a number >= 0");
  if (o.l1 < 0) bad("l1", std::to_string(o.l1), "a number >= 0");
  if (o.l2 < 0) bad("l2", std::to_string(o.l2), "a number >= 0");
  if (o.blur_every < 0) bad("blur-every", std::to_string(o.blur_every), "an integer >= 0");
  if (o.blur_every > 0 && !(o.blur_sigma > 0)) {
    bad("blur-sigma", std::to_string(o.blur_sigma), "a number > 0");
  }
  if (o.clip_norm < 0 || o.clip_norm >= 1) {
    bad("clip-norm", std::to_string(o.clip_norm), "a quantile in [0, 1)");
  }
  if (o.clip_contribution < 0 || o.clip_contribution >= 1) {
    bad("clip-contribution", std::to_string(o.clip_contribution), "a quantile in [0, 1)");
  }
  if (o.jitter < 0) bad("jitter", std::to_string(o.jitter), "an integer >= 0");
  if (o.every < 0) bad("every", std::to_string(o.every), "an integer >= 0");
  if (o.size < 1) bad("size", std::to_string(o.size), "an integer >= 1");
}

}  // namespace

SynthesisResult synthesize(Model& model, const Target& target, int64_t count,
                           const SynthesisOptions& o, const at::Tensor& start) {
  check_options(o);
  if (!start.defined() && count < 1) {
    throw usage_error("synthesis: the batch needs at least one image, got " +
                      std::to_string(count));
  }
  for (const auto& tap : target.taps()) model.check_layer(tap);
  // Device and dtype of the model's parameters.
  torch::TensorOptions options = torch::TensorOptions().dtype(torch::kFloat);
  for (const auto& p : model.module().parameters()) {
    options = p.options().requires_grad(false);
    break;
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);
  Tensor x = start.defined() ? start.detach().to(options).clone()
                             : start_images(count, o, gen, options);

  // The forward pass, truncated at the target's layer when the model describes its graph.
  const auto graph = model.graph();
  const bool truncate = !graph.empty() && target.taps().size() == 1;
  auto score_of = [&](const Tensor& input) {
    if (!truncate) return target.score(model.forward(input, target.taps()));
    std::map<std::string, Tensor> taps{{target.taps()[0], Tensor()}};
    detail::run_graph(graph, input, model.name(), "synthesis", taps, target.taps()[0]);
    ForwardResult r;
    r.taps = std::move(taps);
    return target.score(r);
  };

  SynthesisResult result;
  try {
    torch::NoGradGuard no_grad;
    result.initial_score = score_of(x).detach();
  } catch (const c10::Error& e) {
    throw usage_error("synthesis: the network cannot take a " + std::to_string(x.size(2)) + "x" +
                      std::to_string(x.size(3)) + " image (" + e.what_without_backtrace() +
                      "); use a larger size");
  }

  // The normalized values of pixels 0 and 1, per channel.
  const auto low = -channel_view(o.mean, options) / channel_view(o.std, options);
  const auto high = (1 - channel_view(o.mean, options)) / channel_view(o.std, options);
  x.requires_grad_(true);
  std::unique_ptr<torch::optim::Optimizer> opt;
  if (o.optimizer == "adam") {
    opt = std::make_unique<torch::optim::Adam>(
        std::vector<Tensor>{x}, torch::optim::AdamOptions(o.lr).weight_decay(o.weight_decay));
  } else {
    opt = std::make_unique<torch::optim::SGD>(
        std::vector<Tensor>{x}, torch::optim::SGDOptions(o.lr).weight_decay(o.weight_decay));
  }
  for (int64_t step = 1; step <= o.steps; ++step) {
    opt->zero_grad();
    Tensor input = x;
    int64_t dy = 0, dx = 0;
    if (o.jitter > 0) {
      const auto shift = torch::randint(-o.jitter, o.jitter + 1, {2}, gen);
      dy = shift[0].item<int64_t>();
      dx = shift[1].item<int64_t>();
      input = torch::roll(x, {dy, dx}, {2, 3});
    }
    const auto score = score_of(input);
    auto loss = -score.sum();
    if (o.l2 > 0) loss = loss + o.l2 * x.pow(2).mean({1, 2, 3}).sum();
    if (o.l1 > 0) loss = loss + o.l1 * x.abs().mean({1, 2, 3}).sum();
    loss.backward();
    opt->step();
    {
      torch::NoGradGuard no_grad;
      if (o.blur_every > 0 && step % o.blur_every == 0) {
        x.copy_(detail::gaussian_blur(x, o.blur_sigma));
      }
      if (o.clip_norm > 0) {
        auto xv = x.detach();
        clip_below_quantile(xv, xv.norm(2, 1), o.clip_norm);
      }
      if (o.clip_contribution > 0) {
        auto xv = x.detach();
        clip_below_quantile(xv, (xv * x.grad()).sum(1).abs(), o.clip_contribution);
      }
      if (o.clamp_pixels) x.clamp_(low, high);
    }
    result.objective.push_back(score.mean().item<double>());
    if (o.every > 0 && step % o.every == 0) result.snapshots.emplace_back(step, x.detach().clone());
    if (o.progress && !o.progress(step, o.steps, result.objective.back())) break;
  }
  x = x.detach();
  {
    torch::NoGradGuard no_grad;
    result.final_score = score_of(x).detach();
  }
  result.objective.push_back(result.final_score.mean().item<double>());
  result.image = x;
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

Target class_log_probability_target(std::vector<int64_t> classes) {
  std::ostringstream description;
  description << "log-probability of class" << (classes.size() > 1 ? "es " : " ");
  for (size_t i = 0; i < classes.size(); ++i) description << (i ? "," : "") << classes[i];
  return Target::custom(
      [classes](const ForwardResult& r) {
        const auto& y = r.output;
        if (y.size(0) != static_cast<int64_t>(classes.size())) {
          throw usage_error("class batch: " + std::to_string(classes.size()) +
                            " classes for a batch of " + std::to_string(y.size(0)) + " images");
        }
        for (auto c : classes) {
          if (c < 0 || c >= y.size(1)) {
            throw usage_error("class " + std::to_string(c) + " is outside [0, " +
                              std::to_string(y.size(1)) + ")");
          }
        }
        const auto index = torch::tensor(classes, torch::kLong).to(y.device()).unsqueeze(1);
        return torch::log_softmax(y, 1).gather(1, index).squeeze(1);
      },
      {}, description.str());
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

}  // namespace cnnvis
