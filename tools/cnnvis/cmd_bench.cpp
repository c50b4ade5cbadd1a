// cnnvis bench METHOD: time one plain forward pass and the method on the same input, in one
// process after a warm-up, and print JSON with the ratio (the docs report every method as a
// multiple of the forward pass).
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cnnvis/error.hpp"
#include "cnnvis/evaluate.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/strategy.hpp"
#include "cnnvis/target.hpp"
#include "common.hpp"

namespace cnnvis::cli {
namespace {

struct BenchOptions {
  std::string method;
  ModelOptions model;
  InputOptions input;
  std::string image;
  int64_t batch = 1;
  int64_t repeat = 5;
  int64_t target = 0;
  int64_t ref_batch = 0;
  std::string vs;  // METHOD:COUNT
  std::vector<std::string> params;
  std::vector<std::string> extras;
};

nlohmann::json stats(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  const double median = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
  return {{"median_ms", median}, {"min_ms", ms.front()}};
}

// Milliseconds of one call of f.
template <typename F>
double time_once(F&& f) {
  const auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

// Warm-up: f once, then again while a gradient strategy or a pass size is still being measured
// (at most 20 calls): the timed calls see the steady state that a long run sees. The measuring
// calls do their real work; their times are in the report's `gradient_strategy` and
// `pass_size`.
template <typename F>
void warm_up(F&& f) {
  f();
  auto measuring = [] {
    for (const auto& r : gradient_strategy_report()) {
      if (r.choice == "measuring") return true;
    }
    for (const auto& r : pass_size_report()) {
      if (r.choice == "measuring") return true;
    }
    return false;
  };
  for (int i = 0; i < 20 && measuring(); ++i) f();
}

template <typename F>
std::vector<double> time_it(F&& f, int64_t repeat) {
  warm_up(f);
  std::vector<double> ms;
  for (int64_t i = 0; i < repeat; ++i) ms.push_back(time_once(f));
  return ms;
}

void run_bench(const BenchOptions& o) {
  if (o.batch < 1) throw usage_error("--batch: expected >= 1");
  if (o.repeat < 1) throw usage_error("--repeat: expected >= 1");
  const MethodInfo& info = find_method(o.method);
  MethodParams params = parse_params(o.params);
  parse_extras(o.extras, params, info.name);
  auto method = info.make(params);
  // --vs METHOD:COUNT: the method's time against COUNT runs of another one (default options)
  // in the same process, e.g. integrated gradients' 50 steps against 50 vanilla gradients.
  const MethodInfo* other_info = nullptr;
  std::unique_ptr<Method> other;
  int64_t vs_count = 0;
  if (!o.vs.empty()) {
    std::string other_name;
    vs_count = split_name_number(o.vs, other_name);
    if (vs_count < 1 || vs_count > 100000) {
      throw usage_error("--vs: expected METHOD:COUNT with COUNT from 1 to 100000 (e.g. "
                        "vanilla:50), got '" + o.vs + "'");
    }
    other_info = &find_method(other_name);
    other = other_info->make({});
  }
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  if (!o.image.empty() && !std::filesystem::exists(o.image)) {
    throw usage_error("--image " + o.image + ": no such file");
  }
  torch::Tensor picture;
  if (!o.image.empty()) picture = load_resized(o.image, pre);
  auto model = load_model(o.model);
  check_model_input(*model, input_side(pre), side_option(pre), std::max(o.batch, o.ref_batch));
  const torch::Device device(device_string(o.model));
  torch::Tensor x;
  if (!o.image.empty()) {
    x = normalize(picture, pre).unsqueeze(0);
  } else {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
    const int64_t side = pre.resize > 0 ? pre.crop : pre.size;
    x = normalize(torch::rand({1, 3, side, side}, gen), pre);
  }
  x = x.expand({o.batch, -1, -1, -1}).contiguous().to(device);
  if (o.target < 0 || o.target >= model->num_classes()) {
    throw usage_error("--target: expected 0.." + std::to_string(model->num_classes() - 1));
  }
  // A segmentation model (an output [N, C, H, W]): the class's logits summed over the pixels
  // of the first image predicted as it, as `explain` does by default.
  Target target = Target::class_logit(o.target);
  {
    torch::NoGradGuard no_grad;  // not InferenceMode: the mask is used in autograd later
    const auto out = model->forward(x.slice(0, 0, 1)).output;
    if (out.dim() == 4) {
      const auto mask = predicted_region(out, o.target);
      if (mask.sum().item<double>() == 0) {
        throw usage_error("--target " + std::to_string(o.target) + ": no pixel of the input is "
                          "predicted as it; bench a class that the model predicts somewhere");
      }
      target = Target::region_logit(o.target, mask);
    }
  }
  // --precision bf16/fp16: the forward pass and the method in that precision, each timed
  // call alternating with one in float32 (so that both see the same machine), and the rank
  // correlation of the two maps.
  const Precision lower = precision();
  const bool reduced = lower != Precision::kFloat32;
  const auto forward_once = [&] {
    torch::InferenceMode guard;
    model->forward(x).output.sum().item<double>();  // .item() waits for the device
  };
  const auto run_method = [&] { method->attribute(*model, x, target).sum().item<double>(); };
  // Timed calls of f in the precision, alternating with float32 ones into `float32` when reduced.
  const auto time_both = [&](const std::function<void()>& f, std::vector<double>& float32) {
    if (!reduced) return time_it(f, o.repeat);
    warm_up(f);
    {
      const auto guard = precision_guard(*model, lower);
      warm_up(f);
    }
    std::vector<double> ms;
    for (int64_t i = 0; i < o.repeat; ++i) {
      float32.push_back(time_once(f));
      const auto guard = precision_guard(*model, lower);
      ms.push_back(time_once(f));
    }
    return ms;
  };
  std::vector<double> float32_forward_ms, float32_method_ms;
  const auto forward_ms = time_both(forward_once, float32_forward_ms);
  // --vs: COUNT runs of the other method per timed run, alternating with the method's runs, so
  // that both see the same machine (a busy or throttled spell hits both).
  const auto run_other = [&] {
    for (int64_t i = 0; i < vs_count; ++i) other->attribute(*model, x, target).sum().item<double>();
  };
  std::vector<double> method_ms, other_ms;
  if (other) {
    const auto guard = precision_guard(*model, lower);  // both in the precision
    warm_up(run_method);
    warm_up(run_other);
    for (int64_t i = 0; i < o.repeat; ++i) {
      method_ms.push_back(time_once(run_method));
      other_ms.push_back(time_once(run_other));
    }
  } else {
    method_ms = time_both(run_method, float32_method_ms);
  }
  nlohmann::json reduced_report = nullptr;
  if (reduced) {
    // The maps of the first image in both precisions, as `evaluate` ranks pixels.
    const auto map_of = [&](bool lp) {
      const auto guard = lp ? precision_guard(*model, lower) : nullptr;
      const auto raw = method->attribute(*model, x, target).detach().to(torch::kCPU, torch::kFloat);
      return method_importance(info, raw[0], x.size(2), x.size(3));
    };
    const auto exact = map_of(false);
    const auto approx = map_of(true);
    const auto f32_fwd = stats(float32_forward_ms);
    nlohmann::json f32 = {{"forward", f32_fwd}};
    double method_speedup = 0;
    if (!other) {
      const auto f32_met = stats(float32_method_ms);
      f32["method_time"] = f32_met;
      method_speedup = f32_met["median_ms"].get<double>() / stats(method_ms)["median_ms"].get<double>();
    }
    reduced_report = {
        {"precision", to_string(lower)},
        {"native_bf16", cpu_has_native_bf16()},
        {"float32", f32},
        {"speedup_forward",
         f32_fwd["median_ms"].get<double>() / stats(forward_ms)["median_ms"].get<double>()},
        {"rank_correlation", eval::spearman(approx, exact)},
        {"max_abs_difference", (approx - exact).abs().max().item<double>()},
        {"max_abs_float32", exact.abs().max().item<double>()},
    };
    if (!other) reduced_report["speedup_method"] = method_speedup;
  }
  nlohmann::json reference = nullptr;
  if (o.ref_batch > 0) {
    // Per-image time of a batched forward pass: the throughput perturbation methods aim at.
    const auto xb = x.narrow(0, 0, 1).expand({o.ref_batch, -1, -1, -1}).contiguous();
    const auto guard = precision_guard(*model, lower);
    const auto ms = time_it(
        [&] {
          torch::InferenceMode guard;
          model->forward(xb).output.sum().item<double>();
        },
        o.repeat);
    auto st = stats(ms);
    reference = {{"batch", o.ref_batch},
                 {"median_ms_per_image", st["median_ms"].get<double>() / o.ref_batch},
                 {"min_ms_per_image", st["min_ms"].get<double>() / o.ref_batch}};
  }
  const auto met = stats(method_ms);
  nlohmann::json versus = nullptr;
  if (other) {
    const auto st = stats(other_ms);
    const double count = static_cast<double>(vs_count);
    versus = {{"method", other_info->name},
              {"count", vs_count},
              {"median_ms", st["median_ms"].get<double>() / count},
              {"ratio_median", met["median_ms"].get<double>() / st["median_ms"].get<double>()}};
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto fwd = stats(forward_ms);
  nlohmann::json out = {
      {"method", info.name},
      {"model", model->name()},
      {"device", device.str()},
      {"batch", o.batch},
      {"input", x.sizes().vec()},
      {"threads", at::get_num_threads()},
      {"repeat", o.repeat},
      {"forward", fwd},
      {"method_time", met},
      {"ratio_median", met["median_ms"].get<double>() / fwd["median_ms"].get<double>()},
      {"ratio_min", met["min_ms"].get<double>() / fwd["min_ms"].get<double>()},
      {"peak_rss_mb", static_cast<double>(usage.ru_maxrss) / 1024.0},
      {"options", params},
  };
  // What the measured gradient strategy chose (cnnvis/strategy.hpp), per batch shape.
  nlohmann::json strategies = nlohmann::json::array();
  for (const auto& r : gradient_strategy_report()) {
    strategies.push_back({{"key", r.key}, {"choice", r.choice}, {"ms", r.ms}});
    if (!r.failed.empty()) strategies.back()["failed"] = r.failed;
  }
  out["gradient_strategy"] = {{"policy", to_string(gradient_strategy())},
                              {"measured", strategies}};
  // What the measured pass size chose (occlusion, Score-CAM, Ablation-CAM), per key.
  nlohmann::json passes = nlohmann::json::array();
  for (const auto& r : pass_size_report()) {
    nlohmann::json ms = nlohmann::json::object();
    for (const auto& [rows, times] : r.ms_per_row) ms[std::to_string(rows)] = times;
    passes.push_back({{"key", r.key}, {"choice", r.choice}, {"ms_per_row", ms}});
  }
  out["pass_size"] = {{"policy", to_string(pass_size())}, {"measured", passes}};
  out["precision"] = to_string(lower);
  if (!reduced_report.is_null()) out["reduced_precision"] = reduced_report;
  if (!reference.is_null()) out["batched_forward"] = reference;
  if (!versus.is_null()) out["versus"] = versus;
  std::cout << out.dump(2) << "\n";
}

}  // namespace

void setup_bench(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  auto* sub = app.add_subcommand(
      "bench",
      "time a method against one plain forward pass of the same model and input (JSON)\n"
      "  e.g. cnnvis bench vanilla --model resnet50 --random-weights 0 --batch 8 --repeat 10");
  sub->add_option("method", o->method, "method name (see `cnnvis list`)")->required();
  add_model_options(*sub, o->model);
  sub->add_option("--image,-i", o->image, "input image (default: seeded random input)");
  sub->add_option("--batch", o->batch, "images per batch")
      ->capture_default_str()
      ->check(integer_range(1, 4096));
  sub->add_option("--repeat", o->repeat, "timed runs after the warm-up (one run, more while the gradient strategy or the pass size is still being measured)")
      ->capture_default_str()
      ->check(integer_range(1, 100000));
  sub->add_option("--target", o->target,
                  "class index (a segmentation model: its logits summed over the pixels of the "
                  "input predicted as it)")
      ->capture_default_str()
      ->check(integer_range(0));
  sub->add_option("--option", o->params, "method option KEY=VALUE; `--KEY VALUE` works too");
  sub->add_option("--ref-batch", o->ref_batch,
                  "also time a batched forward pass of this many images (per-image time: the "
                  "throughput reference of perturbation methods)")
      ->check(integer_range(1, 4096));
  sub->add_option("--vs", o->vs,
                  "METHOD:COUNT: also time COUNT runs of METHOD (default options), alternating\n"
                  "with the method's runs, and report the ratio (median_ms is per run of METHOD),\n"
                  "e.g. `bench integrated-gradients --vs vanilla:50`");
  add_input_options(*sub, o->input);
  sub->allow_extras();
  sub->callback([o, sub] {
    o->extras = sub->remaining();
    run_bench(*o);
  });
}

}  // namespace cnnvis::cli
