// cnnvis synthesize filter|class: images made by optimizing the input (cnnvis/synthesis.hpp).
#include <torch/torch.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cnnvis/error.hpp"
#include "cnnvis/imagenet.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/synthesis.hpp"
#include "common.hpp"

namespace cnnvis::cli {
namespace {

namespace fs = std::filesystem;

struct SynthOptions {
  ModelOptions model;
  InputOptions input;
  std::string layer;
  std::string filters = "0";
  std::string target;
  std::string regularize = "l2";
  std::string score = "log-prob";
  std::string out = "synthesis";
  bool raw = false;
  // Overrides of the preset (unset: the preset's value).
  int64_t steps = -1, every = 0, jitter = -1, blur_every = -1;
  double lr = 0, weight_decay = -1, l1 = -1, l2 = -1, blur_sigma = 0;
  std::string optimizer, init;
  uint64_t seed = 0;
};

void add_common(CLI::App& sub, SynthOptions& o) {
  add_model_options(sub, o.model);
  sub.add_option("--steps", o.steps, "optimization steps (default: the preset's)");
  sub.add_option("--lr", o.lr, "learning rate (default: the preset's)");
  sub.add_option("--optimizer", o.optimizer, "adam or sgd (default: the preset's)");
  sub.add_option("--weight-decay", o.weight_decay, "the optimizer's decay of the image");
  sub.add_option("--l2", o.l2, "penalty l2 * mean(x^2) per image (normalized space)");
  sub.add_option("--l1", o.l1, "penalty l1 * mean(|x|) per image");
  sub.add_option("--blur-every", o.blur_every, "Gaussian blur every N steps (0: never)");
  sub.add_option("--blur-sigma", o.blur_sigma, "the blur's sigma in pixels");
  sub.add_option("--jitter", o.jitter, "random shift of up to N pixels per step");
  sub.add_option("--init", o.init, "start image: uniform (pixels 150-180), noise or gray");
  sub.add_option("--seed", o.seed, "seed of the start image and the jitter")->capture_default_str();
  sub.add_option("--every", o.every, "also write the images every N steps (<name>_stepN.png)");
  sub.add_option("--out,-o", o.out, "output folder (created if missing)")->capture_default_str();
  sub.add_flag("--raw", o.raw, "also write the final images as <name>.npy (normalized space)");
  sub.add_option("--size", o.input.size,
                 "the images' height and width (default 96 for the demo model, else 224)")
      ->check(CLI::PositiveNumber);
  sub.add_option("--mean", o.input.mean, "the model's normalization mean R,G,B (default ImageNet's)");
  sub.add_option("--std", o.input.std, "the model's normalization std R,G,B (default ImageNet's)");
}

SynthesisOptions with_overrides(SynthesisOptions s, const SynthOptions& o, int64_t size) {
  if (o.steps >= 0) s.steps = o.steps;
  if (o.lr) s.lr = o.lr;
  if (!o.optimizer.empty()) s.optimizer = o.optimizer;
  if (o.weight_decay >= 0) s.weight_decay = o.weight_decay;
  if (o.l1 >= 0) s.l1 = o.l1;
  if (o.l2 >= 0) s.l2 = o.l2;
  if (o.blur_every >= 0) s.blur_every = o.blur_every;
  if (o.blur_sigma) s.blur_sigma = o.blur_sigma;
  if (o.jitter >= 0) s.jitter = o.jitter;
  if (!o.init.empty()) s.init = o.init;
  s.seed = o.seed;
  s.every = o.every;
  s.size = size;
  return s;
}

// Images [N,3,H,W] in [0,1] side by side in a grid with 2-pixel white gaps.
at::Tensor contact_sheet(const at::Tensor& images) {
  const int64_t n = images.size(0), h = images.size(2), w = images.size(3);
  const int64_t cols = static_cast<int64_t>(std::ceil(std::sqrt(static_cast<double>(n))));
  const int64_t rows = (n + cols - 1) / cols, gap = 2;
  auto sheet = torch::ones({3, rows * (h + gap) - gap, cols * (w + gap) - gap});
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i / cols, c = i % cols;
    sheet.slice(1, r * (h + gap), r * (h + gap) + h).slice(2, c * (w + gap), c * (w + gap) + w)
        .copy_(images[i]);
  }
  return sheet;
}

void run(const SynthOptions& o, const std::string& kind) {
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  auto model = load_model(o.model);
  std::vector<int64_t> filters;
  Target target = Target::class_logit(0);
  SynthesisOptions s;
  std::string stem = model->name();
  std::vector<std::string> names;  // per image, for the file names
  if (kind == "filter") {
    if (o.layer.empty()) throw usage_error("--layer is required (see cnnvis layers)");
    model->check_layer(o.layer);
    filters = parse_filter_list(o.filters);
    target = filter_batch_target(o.layer, filters);
    s = with_overrides(filter_preset(), o, pre.size);
    stem += "_" + o.layer;
    for (auto f : filters) names.push_back(stem + "_filter" + std::to_string(f));
  } else {
    if (o.target.empty()) throw usage_error("--target is required: a class index or name");
    const int64_t c = resolve_class(o.target, model->class_names(), model->num_classes());
    if (o.score != "log-prob" && o.score != "logit") {
      throw usage_error("--score " + o.score + ": expected log-prob or logit");
    }
    target = o.score == "logit" ? Target::class_logit(c) : class_log_probability_target({c});
    s = with_overrides(class_model_preset(o.regularize), o, pre.size);
    names.push_back(stem + "_class" + std::to_string(c) + "_" + o.regularize);
  }
  s.mean = pre.mean;
  s.std = pre.std;
  const bool tty = isatty(fileno(stderr));
  s.progress = [&](int64_t step, int64_t steps, double objective) {
    if (tty || step == steps || step % std::max<int64_t>(1, steps / 10) == 0) {
      std::fprintf(stderr, "%ssynthesize: step %lld/%lld  objective %.4g%s%s", tty ? "\r" : "",
                   static_cast<long long>(step), static_cast<long long>(steps), objective,
                   tty ? "\033[K" : "", tty && step != steps ? "" : "\n");
    }
    return true;
  };
  prepare_out_dir(o.out);
  const auto count = static_cast<int64_t>(names.size());
  std::cout << "synthesize: " << target.description() << " on " << model->name() << ", "
            << s.steps << " steps, " << count << " image(s) of " << s.size << "x" << s.size
            << "\n";
  const auto result = synthesize(*model, target, count, s);
  auto pixels = [&](const at::Tensor& x) {
    std::vector<at::Tensor> out;
    for (int64_t i = 0; i < x.size(0); ++i) {
      out.push_back(denormalize(x[i].to(torch::kCPU, torch::kFloat), pre).clamp(0, 1));
    }
    return torch::stack(out);
  };
  const auto final_pixels = pixels(result.image);
  for (int64_t i = 0; i < count; ++i) {
    const std::string path = (fs::path(o.out) / (names[i] + ".png")).string();
    save_png(path, final_pixels[i]);
    std::cout << "wrote " << path << "  (score " << result.initial_score[i].item<double>()
              << " -> " << result.final_score[i].item<double>() << ")\n";
    if (o.raw) {
      save_npy((fs::path(o.out) / (names[i] + ".npy")).string(),
               result.image[i].unsqueeze(0).to(torch::kCPU, torch::kFloat));
    }
    for (const auto& [step, images] : result.snapshots) {
      save_png((fs::path(o.out) / (names[i] + "_step" + std::to_string(step) + ".png")).string(),
               pixels(images.slice(0, i, i + 1))[0]);
    }
  }
  if (count > 1) {
    const std::string path = (fs::path(o.out) / (stem + "_filters.png")).string();
    save_png(path, contact_sheet(final_pixels));
    std::cout << "wrote " << path << " (contact sheet, filters " << o.filters << ")\n";
  }
}

}  // namespace

void setup_synthesize(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "synthesize",
      "make images by optimizing the input: filter visualization, class model images\n"
      "  e.g. cnnvis synthesize filter --model vgg16 --weights W --layer features.17 --filter 0-15\n"
      "       cnnvis synthesize class --model vgg16 --weights W --target 130 --regularize l2");
  sub->require_subcommand(1);
  auto f = std::make_shared<SynthOptions>();
  auto* filter = sub->add_subcommand(
      "filter",
      "maximize the mean activation of filters at a layer (Erhan et al. 2009; the classic "
      "collection's preset: Adam lr 0.1, weight decay 1e-6, 30 steps, pixels 150-180); several "
      "filters run as one batch and also give a contact sheet");
  filter->add_option("--layer,-l", f->layer, "the layer (see cnnvis layers)")->required();
  filter->add_option("--filter,-f", f->filters, "filter index, range or list: 5, 0-15, 3,7,9")
      ->capture_default_str();
  add_common(*filter, *f);
  filter->callback([f] { run(*f, "filter"); });
  auto c = std::make_shared<SynthOptions>();
  auto* cls = sub->add_subcommand(
      "class",
      "maximize a class score (log-probability, or the logit with --score logit) minus a "
      "regularizer (Simonyan et al. 2014; Yosinski et al. 2015 "
      "with --regularize yosinski); starts from the mean colour, Adam lr 0.1, 200 steps");
  cls->add_option("--target,-t", c->target, "class index or name")->required();
  cls->add_option("--regularize", c->regularize,
                  "none, l2 (l2 = 1), l1 (l1 = 1), or yosinski (decay 1e-4, blur 0.5 px every 4 "
                  "steps, clipping of the 10% smallest-norm and smallest-contribution pixels)")
      ->capture_default_str();
  cls->add_option("--score", c->score,
                  "log-prob (logit - logsumexp: pushes other classes down) or logit (Simonyan "
                  "et al.'s unnormalized score)")
      ->capture_default_str();
  add_common(*cls, *c);
  cls->callback([c] { run(*c, "class"); });
}

}  // namespace cnnvis::cli
