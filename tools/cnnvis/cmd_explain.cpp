// cnnvis explain METHOD: run one method on one or more images and write its pictures.
#include <torch/torch.h>

#include <filesystem>
#include <iomanip>
#include <iostream>
#include <optional>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/imagenet.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "common.hpp"

namespace cnnvis::cli {
namespace {

namespace fs = std::filesystem;

struct ExplainOptions {
  std::string method;
  ModelOptions model;
  InputOptions input;
  std::vector<std::string> images;
  std::string target;
  std::string target_mask;  // a segmentation model's region
  std::string out = "out";
  bool raw = false;
  std::vector<std::string> params;  // key=value
  std::vector<std::string> extras;  // --key value pairs CLI11 did not know: method options
  std::string unit;                 // LAYER:FILTER
  std::string reduce = "mean";
};

// --unit LAYER:FILTER -> a layer-unit target.
Target unit_target(const std::string& unit, const std::string& reduce, Model& model) {
  std::string layer;
  const int64_t filter = split_name_number(unit, layer);
  if (filter < 0) {
    throw usage_error("--unit: expected LAYER:FILTER such as features.29:5, got '" + unit + "'");
  }
  try {
    model.check_layer(layer);
  } catch (const Error& e) {
    throw usage_error(std::string("--unit: ") + e.what());
  }
  Reduction reduction;
  try {
    reduction = parse_reduction(reduce);
  } catch (const Error& e) {
    throw usage_error(std::string("--reduce: ") + e.what());
  }
  return Target::layer_unit(layer, filter, reduction);
}

// --target-mask FILE: the image's non-zero pixels (any channel), resized (nearest) to the
// model's output of h x w.
torch::Tensor read_target_mask(const std::string& path, int64_t h, int64_t w) {
  torch::Tensor rgb;
  try {
    rgb = load_image(path);
  } catch (const Error& e) {
    throw usage_error(std::string("--target-mask ") + e.what());
  }
  auto mask = (rgb.amax(0) > 0).to(torch::kFloat).unsqueeze(0).unsqueeze(0);
  mask = torch::nn::functional::interpolate(
      mask, torch::nn::functional::InterpolateFuncOptions()
                .size(std::vector<int64_t>{h, w})
                .mode(torch::kNearest));
  mask = mask[0][0];
  if (mask.sum().item<double>() == 0) {
    throw usage_error("--target-mask " + path + ": no pixel is set (the region is the mask's "
                      "non-zero pixels)");
  }
  return mask;
}

// Prints the 5 classes that a dense output [1, C, H, W] predicts at most pixels.
void print_top5_pixels(const torch::Tensor& logits, const std::vector<std::string>& names) {
  const auto predicted = logits[0].argmax(0).flatten().to(torch::kCPU);
  const auto counts = torch::bincount(predicted, {}, logits.size(1)).to(torch::kDouble);
  const auto top = counts.topk(std::min<int64_t>(5, counts.size(0)));
  const double total = static_cast<double>(predicted.numel());
  for (int64_t i = 0; i < std::get<0>(top).size(0); ++i) {
    const double n = std::get<0>(top)[i].item<double>();
    if (n == 0) break;
    const int64_t c = std::get<1>(top)[i].item<int64_t>();
    std::cout << "    " << (i + 1) << ". " << std::setw(4) << c << " " << std::left
              << std::setw(28) << class_name(c, names) << std::right << " " << std::fixed
              << std::setprecision(4) << n / total << " of the pixels\n";
  }
  std::cout.unsetf(std::ios::fixed);
}

// Prints the top-5 predictions of `logits` [1, C].
void print_top5(const torch::Tensor& logits, const std::vector<std::string>& names) {
  if (logits.dim() == 4) return print_top5_pixels(logits, names);
  const auto probs = torch::softmax(logits.to(torch::kCPU, torch::kDouble), 1)[0];
  const auto top = probs.topk(std::min<int64_t>(5, probs.size(0)));
  const auto values = std::get<0>(top);
  const auto indices = std::get<1>(top);
  for (int64_t i = 0; i < values.size(0); ++i) {
    const int64_t c = indices[i].item<int64_t>();
    std::cout << "    " << (i + 1) << ". " << std::setw(4) << c << " "
              << std::left << std::setw(28) << class_name(c, names) << std::right << " "
              << std::fixed << std::setprecision(4) << values[i].item<double>() << "\n";
  }
  std::cout.unsetf(std::ios::fixed);
}

void run_explain(const ExplainOptions& o) {
  const MethodInfo& info = find_method(o.method);
  MethodParams params = parse_params(o.params);
  parse_extras(o.extras, params, info.name);
  // Methods that build baselines in pixel space need the input's normalization: pass --mean
  // and --std on unless given as method options.
  for (const auto& opt : info.options) {
    if (opt.name == "mean" && !o.input.mean.empty() && !params.count("mean")) {
      params["mean"] = o.input.mean;
    }
    if (opt.name == "std" && !o.input.std.empty() && !params.count("std")) {
      params["std"] = o.input.std;
    }
  }
  if (!o.target_mask.empty() && !o.unit.empty()) {
    throw usage_error("--target-mask and --unit exclude each other: a region is of a class");
  }
  if (!o.target_mask.empty() && !fs::exists(o.target_mask)) {
    throw usage_error("--target-mask " + o.target_mask + ": no such file");
  }
  if (!o.unit.empty() && !o.target.empty()) {
    throw usage_error("--unit and --target exclude each other: explain a class or a unit");
  }
  auto method = info.make(params);
  const auto views = method_views(info, params);
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  check_out_dir(o.out);
  // Check every input before the (slow) model load, so a typo fails fast, and read every image
  // before the first file is written: a bad image among several leaves no file behind.
  for (const auto& image : o.images) {
    if (!fs::exists(image)) throw usage_error("--image " + image + ": no such file");
  }
  std::vector<torch::Tensor> pictures;
  for (const auto& image : o.images) pictures.push_back(load_resized(image, pre));
  auto model = load_model(o.model);
  check_model_input(*model, input_side(pre), side_option(pre));
  const torch::Device device(device_string(o.model));
  const auto names = model->class_names();
  // The target is the same for every image (or each image's top-1): check it once, up front.
  std::optional<Target> unit;
  int64_t target_class = -1;
  if (!o.unit.empty()) unit = unit_target(o.unit, o.reduce, *model);
  if (!o.target.empty()) target_class = resolve_class(o.target, names, model->num_classes());
  torch::Tensor file_mask;  // --target-mask at the output's size, read once
  for (size_t i = 0; i < o.images.size(); ++i) {
    const auto& image_path = o.images[i];
    const auto& rgb = pictures[i];
    const auto x = normalize(rgb, pre).unsqueeze(0).to(device);
    torch::Tensor logits;
    {
      torch::InferenceMode guard;
      logits = model->forward(x).output;
    }
    // Checked on the first image, before anything is printed or written.
    if (!o.target_mask.empty() && logits.dim() != 4) {
      throw usage_error("--target-mask: " + model->name() + " returns logits " +
                        c10::str(logits.sizes()) +
                        ", not a dense map [N, C, H, W]; a region is for segmentation models");
    }
    std::cout << image_path << ": top-5 of " << model->name() << "\n";
    print_top5(logits, names);
    Target target = Target::class_logit(0);
    if (unit) {
      target = *unit;
      std::cout << "  explaining the " << target.description() << " with " << info.name << "\n";
    } else if (logits.dim() == 4) {
      // A dense output (segmentation): a class's logits summed over a region, by default the
      // pixels predicted as it; the default class is the one predicted at most pixels.
      const int64_t c =
          target_class >= 0
              ? target_class
              : torch::bincount(logits[0].argmax(0).flatten(), {}, logits.size(1))
                    .argmax()
                    .item<int64_t>();
      if (!o.target_mask.empty() &&
          (!file_mask.defined() || file_mask.size(0) != logits.size(2) ||
           file_mask.size(1) != logits.size(3))) {
        file_mask = read_target_mask(o.target_mask, logits.size(2), logits.size(3));
      }
      const auto mask = o.target_mask.empty() ? predicted_region(logits, c) : file_mask;
      const int64_t pixels = static_cast<int64_t>(mask.sum().item<double>());
      if (pixels == 0) {
        throw usage_error(image_path + ": no pixel is predicted as class " + std::to_string(c) +
                          " (" + class_name(c, names) + "); give the region with --target-mask");
      }
      target = Target::region_logit(c, mask.to(device));
      std::cout << "  explaining class " << c << " (" << class_name(c, names) << ") over "
                << pixels << " pixels" << (o.target_mask.empty() ? " predicted as it" : " of --target-mask")
                << " with " << info.name << "\n";
    } else {
      const int64_t c = target_class >= 0 ? target_class : logits.argmax(1).item<int64_t>();
      target = Target::class_logit(c);
      std::cout << "  explaining class " << c << " (" << class_name(c, names) << ") with "
                << info.name << "\n";
    }
    Attribution result;
    {
      const auto guard = precision_guard(*model);
      result = method->explain(*model, x, target);
    }
    result.raw = result.raw.detach().to(torch::kCPU);
    for (auto& [name, value] : result.extras) {
      value = value.detach().to(torch::kCPU);
      if (value.dim() == 1) {
        std::cout << "  " << name << ": " << value[0].item<double>() << "\n";
      }
    }
    if (i == 0) prepare_out_dir(o.out);  // only now: a failed first image leaves no folder
    const std::string stem = (fs::path(o.out) / fs::path(image_path).stem()).string();
    const std::string prefix = stem + "_" + info.name;
    for (const auto& view : views) {
      const std::string path = prefix + "_" + view.name + ".png";
      save_png(path, render_view(view, result, 0, rgb));
      std::cout << "  wrote " << path << "\n";
    }
    if (o.raw) {
      save_npy(prefix + ".npy", result.raw);
      std::cout << "  wrote " << prefix << ".npy\n";
      for (const auto& [name, value] : result.extras) {
        save_npy(prefix + "_" + name + ".npy", value);
        std::cout << "  wrote " << prefix << "_" << name << ".npy\n";
      }
    }
  }
}

}  // namespace

void setup_explain(CLI::App& app) {
  auto o = std::make_shared<ExplainOptions>();
  auto* sub = app.add_subcommand(
      "explain",
      "explain a prediction with one method and write its pictures\n"
      "  e.g. cnnvis explain vanilla --model vgg16 --weights vgg16-397923af.pth "
      "--image cat.png --target 281 --out out/\n"
      "  writes out/cat_vanilla_color.png, out/cat_vanilla_gray.png (and out/cat_vanilla.npy "
      "with --raw)");
  sub->add_option("method", o->method, "method name (see `cnnvis list`)")->required();
  add_model_options(*sub, o->model);
  sub->add_option("--image,-i", o->images, "input image(s): PNG, JPEG, BMP, TIFF or WebP")
      ->required();
  sub->add_option("--target,-t", o->target,
                  "class to explain: an index (281) or an ImageNet name (tabby); default: the "
                  "top-1 prediction");
  sub->add_option("--target-mask", o->target_mask,
                  "segmentation model (output [N, C, H, W]): explain the target class's logits "
                  "summed over this image's non-zero pixels (resized to the output); default: "
                  "the pixels predicted as the class");
  sub->add_option("--out,-o", o->out, "output folder (created if missing)")->capture_default_str();
  sub->add_flag("--raw", o->raw,
                "also write the raw result as <stem>_<method>.npy (float32, numpy.load reads "
                "it)");
  sub->add_option("--option", o->params,
                  "method option KEY=VALUE (see `cnnvis list -v`); `--KEY VALUE` after the "
                  "other options works too, e.g. --steps 20");
  sub->add_option("--unit", o->unit,
                  "explain one filter of a layer instead of a class, LAYER:FILTER, e.g. "
                  "features.29:5 (see `cnnvis layers`)");
  sub->add_option("--reduce", o->reduce, "how --unit's activation map becomes a score: mean, "
                  "sum or abs-sum")
      ->capture_default_str();
  sub->allow_extras();
  add_input_options(*sub, o->input);
  sub->callback([o, sub] {
    o->extras = sub->remaining();
    run_explain(*o);
  });
}

}  // namespace cnnvis::cli
