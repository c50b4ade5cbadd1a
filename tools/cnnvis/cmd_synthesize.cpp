// cnnvis synthesize filter|direction|class|invert|deep-dream: images made by optimizing the
// input (cnnvis/synthesis.hpp).
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
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
  std::string image;
  std::string direction;
  std::string preset;
  std::string out = "synthesis";
  bool raw = false;
  bool neuron = false;
  bool no_decorrelate = false;
  std::string transforms;
  int64_t batch = 1, octaves = -1;
  double octave_scale = 0, data_weight = 0, diversity = 0;
  // Overrides of the preset (unset: the preset's value).
  int64_t steps = -1, every = 0, jitter = -1, blur_every = -1, pad = -1, rotate = -1;
  int64_t lr_decay_every = -1, redirected_relu = -1;
  double lr = 0, weight_decay = -1, l1 = -1, l2 = -1, blur_sigma = 0, scale = -1;
  double momentum = -1, lr_decay = 0, alpha_weight = -1, tv_weight = -1, alpha = 0, beta = 0;
  std::string optimizer, init, param;
  uint64_t seed = 0;
};

void add_common(CLI::App& sub, SynthOptions& o) {
  const auto positive = number_range(0, kInfinity, /*min_open=*/true);
  const auto nonnegative = number_range(0, kInfinity);
  add_model_options(sub, o.model);
  sub.add_option("--steps", o.steps, "optimization steps (default: the preset's)")
      ->check(integer_range(1, 1000000));
  sub.add_option("--lr", o.lr, "learning rate (default: the preset's)")->check(positive);
  sub.add_option("--optimizer", o.optimizer,
                 "adam, sgd, or normalized (steps of lr * g / mean|g|, Deep Dream's)");
  sub.add_option("--momentum", o.momentum, "sgd's momentum")
      ->check(number_range(0, 1, false, /*max_open=*/true));
  sub.add_option("--lr-decay-every", o.lr_decay_every, "multiply lr by --lr-decay every N steps")
      ->check(integer_range(0));
  sub.add_option("--lr-decay", o.lr_decay, "the learning-rate factor (default 0.1)")
      ->check(number_range(0, 1, /*min_open=*/true));
  sub.add_option("--weight-decay", o.weight_decay, "the optimizer's decay of the image")
      ->check(nonnegative);
  sub.add_option("--l2", o.l2, "penalty l2 * mean(x^2) per image (normalized space)")
      ->check(nonnegative);
  sub.add_option("--l1", o.l1, "penalty l1 * mean(|x|) per image")->check(nonnegative);
  sub.add_option("--alpha-weight", o.alpha_weight,
                 "weight of Mahendran & Vedaldi's alpha-norm sum|u|^alpha / (HW 80^alpha)")
      ->check(nonnegative);
  sub.add_option("--alpha", o.alpha, "the alpha-norm's exponent (default 6)")->check(positive);
  sub.add_option("--tv-weight", o.tv_weight,
                 "weight of the total variation sum(du^2 + dv^2)^(beta/2) / (HW (80/6.5)^beta)")
      ->check(nonnegative);
  sub.add_option("--beta", o.beta, "the total variation's exponent (default 2)")->check(positive);
  sub.add_option("--blur-every", o.blur_every, "Gaussian blur every N steps (0: never)")
      ->check(integer_range(0));
  sub.add_option("--blur-sigma", o.blur_sigma, "the blur's sigma in pixels")
      ->check(number_range(0, 1000, /*min_open=*/true));
  sub.add_option("--param", o.param,
                 "pixel (optimize the pixels) or fft (lucid: Fourier coefficients with 1/f "
                 "scaling, decorrelated colour, sigmoid)");
  sub.add_flag("--no-decorrelate", o.no_decorrelate, "with --param fft: plain RGB channels");
  sub.add_option("--redirected-relu", o.redirected_relu,
                 "lucid's redirected ReLU gradient for the first N steps, so that units that "
                 "start at 0 can move (default: 16 with --preset lucid, else 0)")
      ->check(integer_range(0));
  sub.add_option("--transforms", o.transforms,
                 "standard: lucid's transformation robustness (pad 12, jitter 8, scale 0.1, "
                 "rotate 10); none: no transforms");
  sub.add_option("--pad", o.pad, "pad the image by N grey pixels before the transforms")
      ->check(integer_range(0, kMaxSide / 2));
  sub.add_option("--jitter", o.jitter, "random shift of up to N pixels per step")
      ->check(integer_range(0, kMaxSide));
  sub.add_option("--scale", o.scale, "random rescaling by up to this fraction (0.1: 0.9..1.1)")
      ->check(number_range(0, 1, false, /*max_open=*/true));
  sub.add_option("--rotate", o.rotate, "random rotation by up to N degrees")
      ->check(integer_range(0, 180));
  sub.add_option("--init", o.init, "start image: uniform (pixels 150-180), noise or gray");
  sub.add_option("--seed", o.seed, "seed of the start image and the transforms")
      ->capture_default_str()
      ->check(integer_range(0));
  sub.add_option("--every", o.every, "also write the images every N steps (<name>_stepN.png)")
      ->check(integer_range(0));
  sub.add_option("--out,-o", o.out, "output folder (created if missing)")->capture_default_str();
  sub.add_flag("--raw", o.raw, "also write the final images as <name>.npy (normalized space)");
  sub.add_option("--size", o.input.size,
                 "the images' height and width (default 96 for the demo model, else 224)")
      ->check(integer_range(kMinSide, kMaxSide));
  sub.add_option("--mean", o.input.mean, "the model's normalization mean R,G,B (default ImageNet's)")
      ->check(rgb_triple(false));
  sub.add_option("--std", o.input.std, "the model's normalization std R,G,B (default ImageNet's)")
      ->check(rgb_triple(true));
}

SynthesisOptions with_overrides(SynthesisOptions s, const SynthOptions& o, int64_t size) {
  if (o.transforms == "standard") {
    s.pad = 12;
    s.jitter = 8;
    s.scale = 0.1;
    s.rotate = 10;
  } else if (o.transforms == "none") {
    s.pad = s.jitter = s.rotate = 0;
    s.scale = 0;
  } else if (!o.transforms.empty()) {
    throw usage_error("--transforms " + o.transforms + ": expected standard or none");
  }
  if (o.steps >= 0) s.steps = o.steps;
  if (o.lr) s.lr = o.lr;
  if (!o.optimizer.empty()) s.optimizer = o.optimizer;
  if (o.momentum >= 0) s.momentum = o.momentum;
  if (o.lr_decay_every >= 0) s.lr_decay_every = o.lr_decay_every;
  if (o.lr_decay) s.lr_decay = o.lr_decay;
  if (o.weight_decay >= 0) s.weight_decay = o.weight_decay;
  if (o.l1 >= 0) s.l1 = o.l1;
  if (o.l2 >= 0) s.l2 = o.l2;
  if (o.alpha_weight >= 0) s.alpha_weight = o.alpha_weight;
  if (o.alpha) s.alpha = o.alpha;
  if (o.tv_weight >= 0) s.tv_weight = o.tv_weight;
  if (o.beta) s.beta = o.beta;
  if (o.blur_every >= 0) s.blur_every = o.blur_every;
  if (o.blur_sigma) s.blur_sigma = o.blur_sigma;
  if (!o.param.empty()) s.param = o.param;
  if (o.no_decorrelate) s.decorrelate = false;
  if (o.redirected_relu >= 0) s.redirected_relu_steps = o.redirected_relu;
  if (o.pad >= 0) s.pad = o.pad;
  if (o.jitter >= 0) s.jitter = o.jitter;
  if (o.scale >= 0) s.scale = o.scale;
  if (o.rotate >= 0) s.rotate = o.rotate;
  if (!o.init.empty()) s.init = o.init;
  if (o.diversity > 0) s.diversity = o.diversity;
  s.seed = o.seed;
  s.every = o.every;
  s.size = size;
  return s;
}

// "0.5,-1,2" or a .npy file -> a 1-d float tensor.
at::Tensor parse_direction(const std::string& text) {
  if (text.size() > 4 && text.substr(text.size() - 4) == ".npy") {
    if (!fs::exists(text)) throw usage_error("--direction " + text + ": no such file");
    const auto direction = load_npy(text).reshape({-1}).to(torch::kFloat);
    if (direction.numel() == 0 || !torch::isfinite(direction).all().item<bool>()) {
      throw usage_error("--direction " + text + ": expected finite numbers, one per channel");
    }
    if (direction.abs().max().item<float>() == 0) {
      throw usage_error("--direction " + text + ": is all zeros; a direction needs a length");
    }
    return direction;
  }
  std::vector<float> values;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      values.push_back(std::stof(item, &used));
      if (used != item.size() || !std::isfinite(values.back())) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw usage_error("--direction '" + text +
                        "': expected comma-separated numbers (one per channel) or a .npy file");
    }
  }
  if (values.empty()) throw usage_error("--direction is empty");
  if (std::all_of(values.begin(), values.end(), [](float v) { return v == 0; })) {
    throw usage_error("--direction " + text + ": is all zeros; a direction needs a length");
  }
  return torch::tensor(values);
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

// "281 tabby (p 0.912)": the class the model sees in x [1, 3, H, W] (a segmentation model:
// the class predicted at most pixels, with its mean probability over the image).
std::string describe_top_class(Model& model, const at::Tensor& x) {
  torch::NoGradGuard no_grad;
  const auto out = model.forward(x).output;
  const int64_t c = top_class(out);
  const auto names = model.class_names();
  std::ostringstream s;
  s << c;
  if (c < static_cast<int64_t>(names.size())) s << " " << names[static_cast<size_t>(c)];
  s << " (p " << std::fixed << std::setprecision(3) << class_probability(out, c)[0].item<double>()
    << ")";
  return s.str();
}

void run(const SynthOptions& o, const std::string& kind) {
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  check_out_dir(o.out);
  at::Tensor image;  // invert and deep-dream: the input image, read before the model loads
  if (kind == "invert" || kind == "deep-dream") {
    image = normalize(load_resized(o.image, pre), pre).unsqueeze(0);
  }
  auto model = load_model(o.model);
  Target target = Target::class_logit(0);
  SynthesisOptions s;
  // File names start with the model's name; a TorchScript model's name is its path, so its
  // file stem ("models/resnet18.pt" -> "resnet18").
  std::string stem = names_model_file(o.model.arch)
                         ? std::filesystem::path(model->name()).stem().string()
                         : model->name();
  std::vector<std::string> names;  // per image, for the file names
  DeepDreamOptions dream;
  double data_weight = 1;
  if (o.batch < 1) throw usage_error("--batch " + std::to_string(o.batch) + ": expected >= 1");
  if (o.diversity < 0) throw usage_error("--diversity: expected a number >= 0");
  if (kind != "class" && kind != "direction") {
    if (o.layer.empty()) throw usage_error("--layer is required (see cnnvis layers)");
  }
  // invert takes a comma-separated list of layers (one reconstruction each).
  std::vector<std::string> layers;
  {
    std::istringstream in(o.layer);
    std::string item;
    while (std::getline(in, item, ',')) {
      if (!item.empty()) layers.push_back(item);
    }
  }
  if (kind != "invert" && layers.size() > 1) {
    throw usage_error("--layer " + o.layer + ": " + kind + " takes one layer");
  }
  for (const auto& l : layers) model->check_layer(l);
  if ((kind == "invert" || kind == "deep-dream") && o.batch != 1) {
    throw usage_error("--batch: " + kind + " works on one image");
  }
  auto base = [&](const std::string& fallback) {
    const std::string name = o.preset.empty() ? fallback : o.preset;
    if (name == "classic") return filter_preset();
    if (name == "lucid") return lucid_preset();
    throw usage_error("--preset " + name + ": expected classic or lucid");
  };
  if (kind == "filter") {
    const auto filters = parse_filter_list(o.filters);
    std::vector<int64_t> batch;
    for (auto f : filters) {
      for (int64_t k = 0; k < o.batch; ++k) {
        batch.push_back(f);
        names.push_back(stem + "_" + o.layer + (o.neuron ? "_neuron" : "_filter") +
                        std::to_string(f) + (o.batch > 1 ? "_" + std::to_string(k) : ""));
      }
    }
    target = o.neuron ? neuron_target(o.layer, batch) : filter_batch_target(o.layer, batch);
    s = with_overrides(base("classic"), o, pre.size);
    stem += "_" + o.layer;
  } else if (kind == "direction") {
    if (o.layer.empty()) throw usage_error("--layer is required (see cnnvis layers)");
    target = direction_target(o.layer, parse_direction(o.direction));
    s = with_overrides(base("classic"), o, pre.size);
    stem += "_" + o.layer;
    for (int64_t k = 0; k < o.batch; ++k) {
      names.push_back(stem + "_direction" + (o.batch > 1 ? "_" + std::to_string(k) : ""));
    }
  } else if (kind == "class") {
    if (o.target.empty()) throw usage_error("--target is required: a class index or name");
    const int64_t c = resolve_class(o.target, model->class_names(), model->num_classes());
    if (o.score != "log-prob" && o.score != "logit") {
      throw usage_error("--score " + o.score + ": expected log-prob or logit");
    }
    std::vector<int64_t> classes(static_cast<size_t>(o.batch), c);
    target = o.score == "logit" ? class_logit_target(classes) : class_log_probability_target(classes);
    s = with_overrides(class_model_preset(o.regularize), o, pre.size);
    for (int64_t k = 0; k < o.batch; ++k) {
      names.push_back(stem + "_class" + std::to_string(c) + "_" + o.regularize +
                      (o.batch > 1 ? "_" + std::to_string(k) : ""));
    }
  } else if (kind == "invert") {
    auto io = inversion_preset(o.preset.empty() ? "paper" : o.preset);
    s = with_overrides(io.synthesis, o, image.size(2));
    data_weight = o.data_weight > 0 ? o.data_weight : io.data_weight;
    for (const auto& l : layers) names.push_back(stem + "_" + l + "_inverted");
  } else {  // deep-dream
    dream = deep_dream_preset(o.preset.empty() ? "mordvintsev" : o.preset);
    if (o.octaves >= 0) dream.octaves = o.octaves;
    if (o.octave_scale) dream.octave_scale = o.octave_scale;
    s = with_overrides(dream.synthesis, o, image.size(2));
    if (o.filters.empty() || o.filters == "all") {
      target = layer_l2_target(o.layer);
      names.push_back(stem + "_" + o.layer + "_dream");
    } else {
      const auto filters = parse_filter_list(o.filters);
      if (filters.size() != 1) throw usage_error("--filter: deep-dream takes one filter");
      target = filter_batch_target(o.layer, filters);
      names.push_back(stem + "_" + o.layer + "_filter" + std::to_string(filters[0]) + "_dream");
    }
  }
  // Sizes and memory, before the first step: the network must take the image, and the batch
  // (padded and scaled by the transforms) and its snapshots must fit.
  const auto count = static_cast<int64_t>(names.size());
  const int64_t per_run = kind == "invert" ? 1 : count;  // invert: one run per layer
  const int64_t side = image.defined() ? image.size(2) : s.size;
  // A layer objective runs the network up to its layers only (Model::forward_taps): so does
  // the size probe.
  const std::vector<std::string> needed = kind == "invert" ? layers : target.taps();
  check_model_input(*model, side, "--size", per_run, "", needed);
  const int64_t padded = side + 2 * s.pad;
  if (padded > kMaxSide) {
    throw usage_error("--pad " + std::to_string(s.pad) + ": the padded image would be " +
                      std::to_string(padded) + " pixels a side, more than " +
                      std::to_string(kMaxSide) + "; use a smaller --pad or --size");
  }
  const auto seen = static_cast<int64_t>(std::ceil(static_cast<double>(padded) * (1 + s.scale)));
  if (seen > side) {
    std::ostringstream given;
    if (s.pad > 0) {
      given << "--pad " << s.pad;
    } else {
      given << "--scale " << s.scale;
    }
    check_model_input(*model, seen, s.pad > 0 ? "--pad" : "--size", per_run, given.str(), needed);
  }
  if (s.every > 0) {
    const double snapshots = static_cast<double>(s.steps / s.every) *
                             (kind == "deep-dream" ? dream.octaves : 1);
    const double bytes = snapshots * static_cast<double>(count * 3 * side * side) * 4;
    const int64_t available = available_memory();
    if (available >= 0 && bytes > static_cast<double>(available)) {
      throw usage_error("--every " + std::to_string(s.every) + ": " +
                        std::to_string(static_cast<int64_t>(snapshots)) +
                        " snapshots would need about " + format_bytes(bytes) + ", " +
                        format_bytes(static_cast<double>(available)) +
                        " are available; use a larger --every");
    }
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
  SynthesisResult result;
  auto guard = precision_guard(*model);  // --precision: the optimization's passes
  if (kind == "invert") {
    std::cout << "synthesize: inverting the representation at " << o.layer << " of "
              << o.image << " on " << model->name() << ", " << s.steps << " steps\n";
    // One run per layer, appended to the first run's batch (same steps, so same snapshots).
    for (size_t k = 0; k < layers.size(); ++k) {
      auto r = invert(*model, layers[k], image, {s, data_weight});
      if (k == 0) {
        result = std::move(r);
        continue;
      }
      result.image = torch::cat({result.image, r.image});
      result.initial_score = torch::cat({result.initial_score, r.initial_score});
      result.final_score = torch::cat({result.final_score, r.final_score});
      for (size_t j = 0; j < r.snapshots.size(); ++j) {
        auto& kept = result.snapshots[j].second;
        kept = torch::cat({kept, r.snapshots[j].second});
      }
    }
  } else if (kind == "deep-dream") {
    dream.synthesis = s;
    std::cout << "synthesize: deep dream, " << target.description() << " on " << model->name()
              << ", " << dream.octaves << " octave(s) x " << s.steps << " steps\n";
    result = deep_dream(*model, target, image, dream);
  } else {
    std::cout << "synthesize: " << target.description() << " on " << model->name() << ", "
              << s.steps << " steps, " << count << " image(s) of " << s.size << "x" << s.size
              << "\n";
    result = synthesize(*model, target, count, s);
  }
  guard.reset();
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
    std::cout << "wrote " << path;
    if (kind == "invert") {
      std::cout << "  (normalized distance " << -result.final_score[i].item<double>() / data_weight
                << "; classified " << describe_top_class(*model, result.image.slice(0, i, i + 1))
                << ", the image " << describe_top_class(*model, image) << ")\n";
    } else {
      const double before = result.initial_score[i].item<double>();
      const double after = result.final_score[i].item<double>();
      std::cout << "  (score " << before << " -> " << after << ")\n";
      if (before == 0 && after == 0) {
        std::cerr << "synthesize: note: " << names[i]
                  << " stayed at 0: a unit after a ReLU gets no gradient while it is 0; try "
                     "--redirected-relu 16, the layer before the ReLU, a smaller --lr or "
                     "another --seed\n";
      }
    }
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
    const std::string path = (fs::path(o.out) / (stem + "_" + (kind == "class"    ? std::string("classes")
                                                  : kind == "invert" ? std::string("inversions")
                                                                     : kind + "s") + ".png")).string();
    save_png(path, contact_sheet(final_pixels));
    std::cout << "wrote " << path << " (contact sheet)\n";
  }
}

}  // namespace

void setup_synthesize(CLI::App& app) {
  auto* sub = app.add_subcommand(
      "synthesize",
      "make images by optimizing the input: filter visualization, class model images, inverted\n"
      "representations, Deep Dream, lucid-style feature visualization\n"
      "  e.g. cnnvis synthesize filter --model vgg16 --weights W --layer features.17 --filter 0-15\n"
      "       cnnvis synthesize filter --model vgg16 --weights W --layer features.24 --filter 5 "
      "--preset lucid\n"
      "       cnnvis synthesize class --model vgg16 --weights W --target 130 --regularize l2\n"
      "       cnnvis synthesize invert --model alexnet --weights W --image cat.png --layer "
      "features.7\n"
      "       cnnvis synthesize deep-dream --model vgg19 --weights W --image cat.png --layer "
      "features.34 --filter 94");
  sub->require_subcommand(1);
  auto add_batch = [](CLI::App* a, SynthOptions& o) {
    a->add_option("--batch", o.batch, "images per objective, optimized together")
        ->capture_default_str()
        ->check(integer_range(1, 1024));
    a->add_option("--diversity", o.diversity,
                  "weight of lucid's diversity penalty (Gram-matrix cosine similarity between "
                  "the batch's images at the layer); use with --batch")
        ->check(number_range(0, kInfinity));
  };
  auto f = std::make_shared<SynthOptions>();
  auto* filter = sub->add_subcommand(
      "filter",
      "maximize the mean activation of filters at a layer (Erhan et al. 2009). --preset classic "
      "(default: the classic collection's Adam lr 0.1, weight decay 1e-6, 30 steps, pixels "
      "150-180) or lucid (lucent's fft parameterization, decorrelated colour, standard "
      "transforms, Adam lr 0.05, 512 steps); several filters run as one batch and also give a "
      "contact sheet");
  filter->add_option("--layer,-l", f->layer, "the layer (see cnnvis layers)")->required();
  filter->add_option("--filter,-f", f->filters, "filter index, range or list: 5, 0-15, 3,7,9")
      ->capture_default_str();
  filter->add_flag("--neuron", f->neuron,
                   "maximize the filter's centre unit instead of its mean (lucid's neuron)");
  filter->add_option("--preset", f->preset, "classic or lucid (default classic)");
  add_batch(filter, *f);
  add_common(*filter, *f);
  filter->callback([f] { run(*f, "filter"); });

  auto d = std::make_shared<SynthOptions>();
  auto* direction = sub->add_subcommand(
      "direction",
      "maximize the cosine similarity between a direction in a layer's channel space and the "
      "activation vector at every position (lucid's direction objective)");
  direction->add_option("--layer,-l", d->layer, "the layer (see cnnvis layers)")->required();
  direction->add_option("--direction", d->direction,
                        "one value per channel: comma-separated numbers or a .npy file")
      ->required();
  direction->add_option("--preset", d->preset, "classic or lucid (default classic)");
  add_batch(direction, *d);
  add_common(*direction, *d);
  direction->callback([d] { run(*d, "direction"); });

  auto c = std::make_shared<SynthOptions>();
  auto* cls = sub->add_subcommand(
      "class",
      "maximize a class score (log-probability, or the logit with --score logit) minus a "
      "regularizer (Simonyan et al. 2014; Yosinski et al. 2015 "
      "with --regularize yosinski); starts from the mean colour, Adam lr 0.1, 200 steps;\n"
      "a segmentation model maximizes the class's mean score over the output's pixels");
  cls->add_option("--target,-t", c->target, "class index or name")->required();
  cls->add_option("--regularize", c->regularize,
                  "none, l2 (l2 = 1), l1 (l1 = 1), or yosinski (decay 1e-4, blur 0.5 px every 4 "
                  "steps, clipping of the 10% smallest-norm and smallest-contribution pixels)")
      ->capture_default_str();
  cls->add_option("--score", c->score,
                  "log-prob (logit - logsumexp: pushes other classes down) or logit (Simonyan "
                  "et al.'s unnormalized score)")
      ->capture_default_str();
  add_batch(cls, *c);
  add_common(*cls, *c);
  cls->callback([c] { run(*c, "class"); });

  auto v = std::make_shared<SynthOptions>();
  auto* inv = sub->add_subcommand(
      "invert",
      "reconstruct an image from its representation at a layer (Mahendran & Vedaldi 2015): "
      "minimize C ||Phi(x) - Phi0||^2 / ||Phi0||^2 + alpha-norm (6) + total variation (beta 2). "
      "--preset paper (default: normalized regularizers, weights 1, C 100, Adam lr 0.05, 200 "
      "steps) or classic (the classic collection's weights and SGD schedule)");
  inv->add_option("--image,-i", v->image, "the image whose representation is inverted")
      ->required();
  inv->add_option("--layer,-l", v->layer,
                  "the layer, or several separated by commas (one reconstruction each, and a "
                  "contact sheet; the classic collection shows AlexNet's features.0,features.2,"
                  "features.4,features.7,features.9,features.12)")
      ->required();
  inv->add_option("--preset", v->preset, "paper or classic (default paper)");
  inv->add_option("--data-weight", v->data_weight, "C, the weight of the distance term")
      ->check(number_range(0, kInfinity, /*min_open=*/true));
  add_common(*inv, *v);
  inv->callback([v] { run(*v, "invert"); });

  auto m = std::make_shared<SynthOptions>();
  m->filters = "all";
  auto* dd = sub->add_subcommand(
      "deep-dream",
      "amplify what a layer (or one filter) sees in an image (Mordvintsev et al. 2015). --preset "
      "mordvintsev (default: 4 octaves of ratio 1.4, 10 normalized steps each, jitter 32) or "
      "classic (the classic collection's single scale, SGD lr 12, 250 steps)");
  dd->add_option("--image,-i", m->image, "the image to dream on")->required();
  dd->add_option("--layer,-l", m->layer, "the layer (see cnnvis layers)")->required();
  dd->add_option("--filter,-f", m->filters,
                 "one filter to amplify, or all (the layer's mean squared activation)")
      ->capture_default_str();
  dd->add_option("--octaves", m->octaves, "image pyramid levels (default: the preset's)")
      ->check(integer_range(1, 20));
  dd->add_option("--octave-scale", m->octave_scale, "size ratio between octaves (default 1.4)")
      ->check(number_range(1, 10, /*min_open=*/true));
  dd->add_option("--preset", m->preset, "mordvintsev or classic (default mordvintsev)");
  add_common(*dd, *m);
  dd->callback([m] { run(*m, "deep-dream"); });
}

}  // namespace cnnvis::cli
