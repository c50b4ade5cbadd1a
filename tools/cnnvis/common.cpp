#include "common.hpp"

#include <torch/torch.h>

#include <c10/util/Exception.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/models/script.hpp"
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

// The value as the user typed it, for messages (shortened; "nothing" for an empty value).
std::string shown(const std::string& text) {
  if (text.empty()) return "nothing";
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

// A decimal integer with an optional sign and nothing else; false if it is not one or does
// not fit in 64 bits.
bool parse_integer(const std::string& text, int64_t& out) {
  const size_t start = (!text.empty() && (text[0] == '-' || text[0] == '+')) ? 1 : 0;
  if (text.size() == start || text.find_first_not_of("0123456789", start) != std::string::npos) {
    return false;
  }
  errno = 0;
  const long long value = std::strtoll(text.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  out = static_cast<int64_t>(value);
  return true;
}

// A finite decimal number (strtod's syntax, the whole text); false for nan, inf and junk.
bool parse_finite(const std::string& text, double& out) {
  if (text.empty() || std::isspace(static_cast<unsigned char>(text[0]))) return false;
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size() || !std::isfinite(value) || errno == ERANGE) return false;
  out = value;
  return true;
}

std::string number_text(double x) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", x);
  return buffer;
}

}  // namespace

CLI::Validator integer_range(int64_t min, int64_t max) {
  const std::string range = max == kNoMax ? ">= " + std::to_string(min)
                                          : std::to_string(min) + ".." + std::to_string(max);
  const std::string expected = max == kNoMax ? "an integer >= " + std::to_string(min)
                                             : "an integer from " + std::to_string(min) + " to " +
                                                   std::to_string(max);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        int64_t value = 0;
        if (parse_integer(text, value) && value >= min && value <= max) return "";
        return "expected " + expected + ", got " + shown(text);
      },
      range);
}

CLI::Validator number_range(double min, double max, bool min_open, bool max_open) {
  std::string range = std::string(min_open ? "> " : ">= ") + number_text(min);
  if (max < kInfinity) range += std::string(max_open ? " and < " : " and <= ") + number_text(max);
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double value = 0;
        if (parse_finite(text, value) && (min_open ? value > min : value >= min) &&
            (max_open ? value < max : value <= max)) {
          return "";
        }
        return "expected a number " + range + ", got " + shown(text);
      },
      range);
}

CLI::Validator rgb_triple(bool positive) {
  const std::string expected = positive ? "three comma-separated numbers > 0 (R,G,B)"
                                        : "three comma-separated finite numbers (R,G,B)";
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        std::array<double, 3> values{};
        bool good = parse_rgb(text, values);
        for (double v : values) good = good && std::isfinite(v) && (!positive || v > 0);
        return good ? "" : "expected " + expected + ", got " + shown(text);
      },
      "R,G,B");
}

void add_model_options(CLI::App& app, ModelOptions& o, const std::string& default_arch) {
  auto* model = app.add_option("--model,-m", o.arch,
                               "architecture: alexnet, vgg11..vgg19[_bn], resnet18..152, demo "
                               "(the built-in shape model, no weights needed), or a TorchScript "
                               "file (torch.jit.script(model).save('m.pt'); weights included)");
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
      ->check(integer_range(0));
  app.add_option("--device", o.device, "cpu or cuda[:N]")->capture_default_str();
  app.add_option("--output", o.output,
                 "TorchScript model returning a tuple, list or dict: which element holds the "
                 "logits, an index (0, 1) or a key/NamedTuple field (out, logits); default the "
                 "first tensor");
  app.add_option("--labels", o.labels,
                 "class names, one per line in class order (a model without ImageNet's 1000 "
                 "classes: for printing and --target NAME)");
}

std::string device_string(const ModelOptions& o) {
  if (o.device == "cpu") return o.device;
  if (o.device.rfind("cuda", 0) == 0) {
    const std::string index = o.device.size() > 5 ? o.device.substr(5) : "";
    if (o.device.size() > 4 && (o.device[4] != ':' || index.empty() ||
                                index.find_first_not_of("0123456789") != std::string::npos ||
                                index.size() > 3)) {
      throw usage_error("--device: expected cpu, cuda or cuda:N, got " + shown(o.device));
    }
    if (!torch::cuda::is_available()) {
      throw usage_error("--device " + o.device +
                        ": this LibTorch build sees no CUDA GPU; use --device cpu");
    }
    if (!index.empty() && std::stoull(index) >= torch::cuda::device_count()) {
      throw usage_error("--device " + o.device + ": this machine has " +
                        std::to_string(torch::cuda::device_count()) + " CUDA device(s), numbered "
                        "from 0");
    }
    return o.device;
  }
  throw usage_error("--device: expected cpu, cuda or cuda:N, got " + shown(o.device));
}

bool names_model_file(const std::string& model) {
  // A zoo name is the zoo model, even where a file or folder of that name exists (the demo's
  // gallery folder is "demo"); ./resnet18 names such a file.
  const auto& zoo = model_names();
  if (std::find(zoo.begin(), zoo.end(), model) != zoo.end()) return false;
  std::error_code ec;
  if (std::filesystem::exists(model, ec)) return true;
  const auto ext = std::filesystem::path(model).extension().string();
  return model.find('/') != std::string::npos || ext == ".pt" || ext == ".pth" ||
         ext == ".ptl" || ext == ".zip" || ext == ".torchscript";
}

std::unique_ptr<Model> model_of(const std::string& model, const std::string& output) {
  if (!names_model_file(model)) {
    if (!output.empty()) {
      throw usage_error("--output " + output + ": only for TorchScript models; --model " + model +
                        " returns its logits");
    }
    return make_model(model);
  }
  std::error_code ec;
  if (!std::filesystem::exists(model, ec)) {
    std::string names;
    for (const auto& n : model_names()) names += (names.empty() ? "" : ", ") + n;
    throw usage_error("--model " + model + ": no such file (give a TorchScript file or one of " +
                      names + ")");
  }
  ScriptOptions options;
  options.output = output;
  return load_script_model(model, options);
}

namespace {

std::unique_ptr<Model> load_model_weights(const ModelOptions& o) {
  const auto device = device_string(o);
  if (names_model_file(o.arch)) {
    if (!o.weights.empty() || o.random_seed >= 0) {
      throw usage_error("--model " + o.arch + ": a TorchScript file carries its own weights; "
                        "drop --weights and --random-weights");
    }
    auto model = model_of(o.arch, o.output);
    model->module().to(torch::Device(device));
    return model;
  }
  auto model = model_of(o.arch, o.output);
  if (!o.weights.empty() && o.random_seed >= 0) {
    throw usage_error("--weights and --random-weights exclude each other; give one");
  }
  if (!o.weights.empty()) {
    std::error_code ec;
    if (!std::filesystem::exists(o.weights, ec)) {
      throw usage_error("--weights " + o.weights + ": no such file");
    }
    if (std::filesystem::is_directory(o.weights, ec)) {
      throw usage_error("--weights " + o.weights +
                        ": is a folder; name a weight file (.pth or .safetensors)");
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

}  // namespace

std::unique_ptr<Model> load_model(const ModelOptions& o) {
  // Before the (slow) loading: fp16 on the CPU is refused at once.
  check_precision(precision(), torch::Device(device_string(o)).type());
  std::vector<std::string> labels;
  if (!o.labels.empty()) {
    try {
      labels = read_class_names(o.labels);
    } catch (const Error& e) {
      throw usage_error(std::string("--labels ") + e.what());
    }
  }
  auto model = load_model_weights(o);
  if (!labels.empty()) {
    try {
      model->set_class_names(std::move(labels));
    } catch (const Error& e) {
      throw usage_error("--labels " + o.labels + ": " + e.what());
    }
  }
  return model;
}

void add_input_options(CLI::App& app, InputOptions& o) {
  app.add_option("--size", o.size,
                 "resize the image to SIZE x SIZE (antialiased bilinear); default 96 for the demo "
                 "model, else 224")
      ->check(integer_range(kMinSide, kMaxSide));
  app.add_option("--resize", o.resize,
                 "instead of --size: resize the shorter side to RESIZE, then --crop")
      ->check(integer_range(kMinSide, kMaxSide));
  app.add_option("--crop", o.crop, "center crop CROP x CROP after --resize")
      ->check(integer_range(kMinSide, kMaxSide));
  app.add_option("--mean", o.mean, "normalization mean R,G,B (default ImageNet's)")
      ->check(rgb_triple(false));
  app.add_option("--std", o.std, "normalization std R,G,B (default ImageNet's)")
      ->check(rgb_triple(true));
}

void check_out_dir(const std::string& out, const std::string& option) {
  std::error_code ec;
  if (out.empty()) throw usage_error(option + ": expected a folder, got nothing");
  if (std::filesystem::exists(out, ec) && !std::filesystem::is_directory(out, ec)) {
    throw usage_error(option + " " + out + ": exists and is not a folder; name a folder");
  }
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
  // The validators have checked each value; what is left are combinations.
  if (p.size < kMinSide || p.size > kMaxSide) {
    throw usage_error("--size: expected an integer from " + std::to_string(kMinSide) + " to " +
                      std::to_string(kMaxSide) + ", got " + std::to_string(p.size));
  }
  if (o.resize > 0 && o.crop <= 0) throw usage_error("--resize needs --crop (e.g. 224)");
  if (o.resize <= 0 && o.crop > 0) throw usage_error("--crop needs --resize (e.g. 256)");
  if (o.resize > 0 && o.size != 0) {
    throw usage_error("--size and --resize exclude each other: give --size S, or --resize R "
                      "--crop C");
  }
  if (o.resize > 0 && o.crop > o.resize) {
    throw usage_error("--crop " + std::to_string(o.crop) + ": expected at most the --resize "
                      "value, " + std::to_string(o.resize));
  }
  if (!o.mean.empty()) p.mean = parse_triple(o.mean, "--mean");
  if (!o.std.empty()) p.std = parse_triple(o.std, "--std");
  for (size_t c = 0; c < 3; ++c) {
    if (!std::isfinite(p.mean[c])) throw usage_error("--mean: expected finite numbers, got " + o.mean);
    if (!(p.std[c] > 0) || !std::isfinite(p.std[c])) {
      throw usage_error("--std: expected numbers > 0, got " + o.std);
    }
  }
  return p;
}

std::string side_option(const Preprocess& pre) { return pre.resize > 0 ? "--crop" : "--size"; }

int64_t input_side(const Preprocess& pre) { return pre.resize > 0 ? pre.crop : pre.size; }

int64_t available_memory() {
  int64_t available = -1;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kb = 0;
  std::string unit;
  while (meminfo >> key >> kb >> unit) {
    if (key == "MemAvailable:") {
      available = kb * 1024;
      break;
    }
  }
  // A container's memory limit (cgroup v2) may be lower than what the machine has free.
  std::ifstream max_file("/sys/fs/cgroup/memory.max"), current_file("/sys/fs/cgroup/memory.current");
  std::string max_text;
  int64_t current = 0;
  if (max_file >> max_text && max_text != "max" && current_file >> current) {
    int64_t limit = 0;
    if (parse_integer(max_text, limit) && limit > current) {
      available = available < 0 ? limit - current : std::min(available, limit - current);
    }
  }
  return available;
}

std::string format_bytes(double bytes) {
  char buffer[32];
  if (bytes >= 1e9) {
    std::snprintf(buffer, sizeof buffer, "%.1f GB", bytes / 1e9);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.0f MB", std::max(1.0, bytes / 1e6));
  }
  return buffer;
}

void check_model_input(Model& model, int64_t side, const std::string& option, int64_t images,
                       const std::string& given_text, const std::vector<std::string>& needed) {
  const auto parameters = model.module().parameters();
  auto options = torch::TensorOptions().dtype(torch::kFloat);
  if (!parameters.empty()) options = parameters.front().options().requires_grad(false);
  std::vector<std::string> names;
  for (const auto& info : model.layers()) names.push_back(info.name);
  if (!needed.empty()) {  // the layers up to the last one needed, in forward order
    size_t last = 0;
    for (size_t i = 0; i < names.size(); ++i) {
      if (std::find(needed.begin(), needed.end(), names[i]) != needed.end()) last = i;
    }
    names.resize(last + 1);
  }
  // One forward pass of zeros: does the network take s x s, and how many floats do its
  // layers' outputs hold then?
  auto takes = [&](int64_t s, double* floats) {
    try {
      torch::InferenceMode guard;
      const auto zeros = torch::zeros({1, 3, s, s}, options);
      const auto result =
          !needed.empty()
              ? model.forward_taps(zeros, floats != nullptr ? names : needed)
              : model.forward(zeros, floats != nullptr ? names : std::vector<std::string>{});
      if (floats != nullptr) {
        *floats = 3.0 * static_cast<double>(s * s);
        for (const auto& [name, tap] : result.taps) *floats += static_cast<double>(tap.numel());
      }
      return true;
    } catch (const c10::Error&) {  // an output size of 0 somewhere in the network
      return false;
    }
  };
  const std::string given =
      given_text.empty() ? option + " " + std::to_string(side) : given_text;
  // The memory estimate comes from a small probe, scaled; a network that cannot take the
  // probe (Inception-v3 needs 75x75) is probed at the side asked for.
  int64_t probe = std::min<int64_t>(side, 64);
  double floats = 0;
  bool ok = takes(probe, &floats);
  if (!ok && probe < side) {
    probe = side;
    ok = takes(probe, &floats);
  }
  if (!ok) {
    // The smallest side it takes (between the failed probe and the first of 64, 128, ...
    // 1024 that works), by bisection.
    constexpr int64_t kLargestProbe = 1024;
    int64_t low = probe, smallest = -1;
    for (int64_t s = 64; s <= kLargestProbe; s *= 2) {
      if (s <= low) continue;
      if (takes(s, nullptr)) {
        smallest = s;
        break;
      }
      low = s;
    }
    while (smallest > 0 && smallest - low > 1) {
      const int64_t mid = low + (smallest - low) / 2;
      (takes(mid, nullptr) ? smallest : low) = mid;
    }
    if (smallest < 0) {
      throw usage_error(given + ": " + model.name() + " cannot take a " + std::to_string(side) +
                        "x" + std::to_string(side) + " input, nor any up to " +
                        std::to_string(kLargestProbe) + " pixels");
    }
    throw usage_error(given + ": " + model.name() + " takes inputs of at least " +
                      std::to_string(smallest) + "x" + std::to_string(smallest) +
                      " pixels (smaller ones vanish in its pooling layers)");
  }
  if (options.device().is_cpu()) {
    const double scale = static_cast<double>(side) / static_cast<double>(probe);
    const double bytes = 4.0 * floats * scale * scale * static_cast<double>(images);
    const int64_t available = available_memory();
    if (available >= 0 && bytes > static_cast<double>(available)) {
      const std::string what = images > 1 ? std::to_string(images) + " inputs" : "one input";
      throw usage_error(given + ": " + model.name() + " needs about " + format_bytes(bytes) +
                        " for the layer outputs of " + what + " of " + std::to_string(side) +
                        "x" + std::to_string(side) + " pixels, " +
                        format_bytes(static_cast<double>(available)) +
                        " are available; use a smaller " + option);
    }
  }
}

at::Tensor load_resized(const std::string& path, const Preprocess& pre) {
  const auto rgb = load_image(path);
  if (pre.resize > 0) {
    // torchvision's Resize(int) scales the shorter side to `resize` before the crop: a
    // panorama becomes very long.
    const double h = static_cast<double>(rgb.size(1)), w = static_cast<double>(rgb.size(2));
    const double long_side = static_cast<double>(pre.resize) * std::max(h, w) / std::min(h, w);
    const double bytes = 2 * 3 * 4.0 * static_cast<double>(pre.resize) * long_side;
    const int64_t available = available_memory();
    if (available >= 0 && bytes > static_cast<double>(available)) {
      throw usage_error("--resize " + std::to_string(pre.resize) + ": " + path + " (" +
                        std::to_string(rgb.size(2)) + "x" + std::to_string(rgb.size(1)) +
                        ") would need about " + format_bytes(bytes) + " resized, " +
                        format_bytes(static_cast<double>(available)) +
                        " are available; use a smaller --resize or --size");
    }
  }
  return resize_image(rgb, pre);
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

namespace {
Precision& precision_storage() {
  static Precision p = Precision::kFloat32;
  return p;
}
}  // namespace

void set_precision(Precision p) { precision_storage() = p; }
Precision precision() { return precision_storage(); }

std::unique_ptr<PrecisionGuard> precision_guard(Model& model, Precision p) {
  if (p == Precision::kFloat32) return nullptr;
  auto guard = std::make_unique<PrecisionGuard>(model, p);
  static bool warned = false;
  if (!warned) {
    const auto warning = precision_warning(p, guard->device());
    if (!warning.empty()) std::cerr << "cnnvis: warning: " << warning << "\n";
    warned = true;
  }
  return guard;
}

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

std::map<std::string, MethodParams> method_options(const std::vector<std::string>& items,
                                                   const std::vector<std::string>& methods) {
  std::map<std::string, MethodParams> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    const auto dot = item.find('.');
    if (eq == std::string::npos || dot == std::string::npos || dot == 0 || dot > eq) {
      throw usage_error("--option: expected METHOD.KEY=VALUE (e.g. grad-cam.layer=features.14), "
                        "got '" + item + "'");
    }
    const std::string method = item.substr(0, dot);
    if (std::find(methods.begin(), methods.end(), method) == methods.end()) {
      throw usage_error("--option " + item + ": method " + method + " is not among --methods (see cnnvis list)");
    }
    out[method][item.substr(dot + 1, eq - dot - 1)] = item.substr(eq + 1);
  }
  return out;
}

}  // namespace cnnvis::cli
