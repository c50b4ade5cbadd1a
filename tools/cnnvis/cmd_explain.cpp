// cnnvis explain METHOD: run one method on one or more images and write its pictures.
#include <torch/torch.h>

#include <filesystem>
#include <iomanip>
#include <iostream>

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
  std::string out = "out";
  bool raw = false;
  std::vector<std::string> params;  // key=value
};

MethodParams parse_params(const std::vector<std::string>& items) {
  MethodParams params;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    if (eq == std::string::npos || eq == 0) {
      throw usage_error("--option: expected KEY=VALUE, got '" + item + "'");
    }
    params[item.substr(0, eq)] = item.substr(eq + 1);
  }
  return params;
}

std::string label(int64_t index, const std::vector<std::string>& names) {
  return index < static_cast<int64_t>(names.size()) ? names[index]
                                                    : "class " + std::to_string(index);
}

// Prints the top-5 predictions of `logits` [1, C].
void print_top5(const torch::Tensor& logits, const std::vector<std::string>& names) {
  const auto probs = torch::softmax(logits.to(torch::kCPU, torch::kDouble), 1)[0];
  const auto top = probs.topk(std::min<int64_t>(5, probs.size(0)));
  const auto values = std::get<0>(top);
  const auto indices = std::get<1>(top);
  for (int64_t i = 0; i < values.size(0); ++i) {
    const int64_t c = indices[i].item<int64_t>();
    std::cout << "    " << (i + 1) << ". " << std::setw(4) << c << " "
              << std::left << std::setw(28) << label(c, names) << std::right << " "
              << std::fixed << std::setprecision(4) << values[i].item<double>() << "\n";
  }
  std::cout.unsetf(std::ios::fixed);
}

void run_explain(const ExplainOptions& o) {
  const MethodInfo& info = find_method(o.method);
  auto method = info.make(parse_params(o.params));
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  // Check every input before the (slow) model load, so a typo fails fast.
  for (const auto& image : o.images) {
    if (!fs::exists(image)) throw usage_error("--image " + image + ": no such file");
  }
  auto model = load_model(o.model);
  prepare_out_dir(o.out);
  const torch::Device device(device_string(o.model));
  const auto names = model->class_names();
  for (const auto& image_path : o.images) {
    const auto rgb = resize_image(load_image(image_path), pre);
    const auto x = normalize(rgb, pre).unsqueeze(0).to(device);
    torch::Tensor logits;
    {
      torch::InferenceMode guard;
      logits = model->forward(x).output;
    }
    const int64_t target = o.target.empty() ? logits.argmax(1).item<int64_t>()
                                            : resolve_class(o.target, names, model->num_classes());
    std::cout << image_path << ": top-5 of " << model->name() << "\n";
    print_top5(logits, names);
    std::cout << "  explaining class " << target << " ("
              << label(target, names) << ") with " << info.name << "\n";
    const auto raw = method->attribute(*model, x, Target::class_logit(target)).detach()
                         .to(torch::kCPU);
    const std::string stem = (fs::path(o.out) / fs::path(image_path).stem()).string();
    const std::string prefix = stem + "_" + info.name;
    for (const auto& view : info.views) {
      const std::string path = prefix + "_" + view.name + ".png";
      save_png(path, view.render(raw[0], rgb));
      std::cout << "  wrote " << path << "\n";
    }
    if (o.raw) {
      save_npy(prefix + ".npy", raw);
      std::cout << "  wrote " << prefix << ".npy\n";
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
  sub->add_option("--out,-o", o->out, "output folder (created if missing)")->capture_default_str();
  sub->add_flag("--raw", o->raw,
                "also write the raw result as <stem>_<method>.npy (float32, numpy.load reads "
                "it)");
  sub->add_option("--option", o->params, "method option KEY=VALUE (see `cnnvis list`)");
  add_input_options(*sub, o->input);
  sub->callback([o] { run_explain(*o); });
}

}  // namespace cnnvis::cli
