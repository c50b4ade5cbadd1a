#include "common.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <sstream>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/models/zoo.hpp"

namespace cnnvis::cli {
namespace {

std::array<double, 3> parse_triple(const std::string& text, const std::string& option) {
  std::array<double, 3> values{};
  if (!parse_rgb(text, values)) {
    throw usage_error(option + ": expected three comma-separated numbers (R,G,B), got '" + text +
                      "'");
  }
  return values;
}

}  // namespace

void add_model_options(CLI::App& app, ModelOptions& o, const std::string& default_arch) {
  auto* model = app.add_option("--model,-m", o.arch,
                               "architecture: alexnet, vgg11..vgg19[_bn], resnet18..152, or demo "
                               "(the built-in shape model, no weights needed)");
  if (default_arch.empty()) {
    model->required();
  } else {
    o.arch = default_arch;
    model->capture_default_str();
  }
  app.add_option("--weights,-w", o.weights,
                 "weight file: PyTorch .pth (zip or legacy) or .safetensors, e.g. torchvision's "
                 "vgg16-397923af.pth");
  app.add_option("--random-weights", o.random_seed,
                 "use deterministic random weights from SEED instead of a weight file (tests, "
                 "demos)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--device", o.device, "cpu or cuda[:N]")->capture_default_str();
}

std::string device_string(const ModelOptions& o) {
  if (o.device == "cpu") return o.device;
  if (o.device.rfind("cuda", 0) == 0) {
    if (!torch::cuda::is_available()) {
      throw usage_error("--device " + o.device +
                        ": this LibTorch build sees no CUDA GPU; use --device cpu");
    }
    return o.device;
  }
  throw usage_error("--device: expected cpu or cuda[:N], got '" + o.device + "'");
}

std::unique_ptr<Model> load_model(const ModelOptions& o) {
  const auto device = device_string(o);
  auto model = make_model(o.arch);
  if (!o.weights.empty() && o.random_seed >= 0) {
    throw usage_error("--weights and --random-weights exclude each other; give one");
  }
  if (!o.weights.empty()) {
    if (!std::filesystem::exists(o.weights)) {
      throw usage_error("--weights " + o.weights + ": no such file");
    }
    load_weights(*model, o.weights);
  } else if (o.random_seed >= 0) {
    randomize_weights(*model, static_cast<uint64_t>(o.random_seed));
  } else if (o.arch == "demo") {
    load_weights(*model, demo::demo_weights_path());  // the committed, self-trained weights
  } else {
    throw usage_error("--model " + o.arch +
                      ": no weights given; pass --weights FILE (torchvision's .pth, see the "
                      "README) or --random-weights SEED for a deterministic random model");
  }
  model->module().to(torch::Device(device));
  return model;
}

void add_input_options(CLI::App& app, InputOptions& o) {
  app.add_option("--size", o.size,
                 "resize the image to SIZE x SIZE (antialiased bilinear); default 96 for the demo "
                 "model, else 224");
  app.add_option("--resize", o.resize,
                 "instead of --size: resize the shorter side to RESIZE, then --crop");
  app.add_option("--crop", o.crop, "center crop CROP x CROP after --resize");
  app.add_option("--mean", o.mean, "normalization mean R,G,B (default ImageNet's)");
  app.add_option("--std", o.std, "normalization std R,G,B (default ImageNet's)");
}

void prepare_out_dir(const std::string& out) {
  std::error_code ec;
  if (std::filesystem::exists(out, ec) && !std::filesystem::is_directory(out, ec)) {
    throw usage_error("--out " + out + ": exists and is not a folder; name a folder");
  }
  std::filesystem::create_directories(out, ec);
  if (ec) throw Error("--out " + out + ": cannot create the folder (" + ec.message() + ")");
}

Preprocess to_preprocess(const InputOptions& o, const std::string& arch) {
  Preprocess p;
  p.size = o.size != 0 ? o.size : (arch == "demo" ? demo::kDemoSize : 224);
  p.resize = o.resize;
  p.crop = o.crop;
  if (p.size <= 0) throw usage_error("--size: expected a positive number of pixels");
  if (o.resize > 0 && o.crop <= 0) throw usage_error("--resize needs --crop (e.g. 224)");
  if (o.resize <= 0 && o.crop > 0) throw usage_error("--crop needs --resize (e.g. 256)");
  if (!o.mean.empty()) p.mean = parse_triple(o.mean, "--mean");
  if (!o.std.empty()) p.std = parse_triple(o.std, "--std");
  for (double s : p.std) {
    if (s <= 0) throw usage_error("--std: every value must be > 0");
  }
  return p;
}

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

void parse_extras(const std::vector<std::string>& extras, MethodParams& params,
                  const std::string& method) {
  for (size_t i = 0; i < extras.size(); ++i) {
    const std::string& token = extras[i];
    if (token.rfind("--", 0) != 0 || token.size() < 3) {
      throw usage_error("unexpected argument '" + token + "' (method options are --key value; "
                        "see cnnvis list -v)");
    }
    // A repeated option accumulates: --layer a --layer b gives layer=a,b.
    auto put = [&params](const std::string& key, const std::string& value) {
      auto it = params.find(key);
      if (it == params.end()) {
        params[key] = value;
      } else {
        it->second += "," + value;
      }
    };
    const auto eq = token.find('=');
    if (eq != std::string::npos) {
      put(token.substr(2, eq - 2), token.substr(eq + 1));
    } else if (i + 1 < extras.size() && extras[i + 1].rfind("--", 0) != 0) {
      put(token.substr(2), extras[i + 1]);
      ++i;
    } else {
      throw usage_error(token + ": expected a value (" + method + " option, see cnnvis list -v)");
    }
  }
}

std::vector<std::string> parse_method_list(const std::string& list, const std::string& option) {
  std::vector<std::string> names;
  if (list.empty()) {
    for (const auto& info : methods()) names.push_back(info.name);
    return names;
  }
  std::stringstream in(list);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    try {
      names.push_back(find_method(item).name);
    } catch (const Error& e) {
      throw usage_error(option + ": " + e.what());
    }
  }
  if (names.empty()) throw usage_error(option + ": expected method names separated by commas");
  return names;
}

namespace {
std::string& command_line_storage() {
  static std::string line = "cnnvis";
  return line;
}
}  // namespace

void set_command_line(int argc, char** argv) {
  std::string line = "cnnvis";
  for (int i = 1; i < argc; ++i) line += std::string(" ") + argv[i];
  command_line_storage() = line;
}

const std::string& command_line() { return command_line_storage(); }

std::string title_of(const std::string& text) {
  const auto line = text.substr(0, text.find('\n'));
  return line.substr(0, line.find(':'));
}

int64_t split_name_number(const std::string& text, std::string& name) {
  const auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) return -1;
  const std::string digits = text.substr(colon + 1);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos) return -1;
  try {
    const int64_t n = std::stoll(digits);
    name = text.substr(0, colon);
    return n;
  } catch (const std::exception&) {  // out of range
    return -1;
  }
}

}  // namespace cnnvis::cli
