// The baseline every method is reported against: one plain forward pass of each zoo model,
// batch 1 and 8, 224 x 224, under InferenceMode. Methods are timed as a ratio to this by
// `cnnvis bench METHOD` (same process, same input).
//   build/bench/cnnvis_bench --benchmark_filter=resnet50      (CNNVIS_THREADS=N to pin threads)
// Also image synthesis: synthesize() steps per second on VGG16 (filter 5 at features.17, 224
// px, batch 1 and 4) against one forward + backward to the input of the network truncated at
// features.17 (the same graph walk), --benchmark_filter=synthesis; the ratio of the two
// items_per_second is the "steps per second as a ratio to forward+backward".
// TorchScript against native (issue 16): with CNNVIS_SCRIPT_MODELS=DIR (the folder that
// tests/python/save_torchscript.py writes; bench/script.sh does both), a forward pass, vanilla,
// Grad-CAM and Ablation-CAM of torchvision's ResNet-18 scripted and traced, against the zoo's
// native ResNet-18 with the same weights, batch 1 at 224, --benchmark_filter=script/.
// The zoo against torchvision (issue 17): with CNNVIS_TRACE_MODELS=DIR (bench/save_traces.py
// writes it; bench/zoo_vs_trace.sh does both), the zoo's forward pass against torchvision's
// model traced by PyTorch and run by LibTorch's own TorchScript interpreter (torch::jit::load,
// default executor: the kernels PyTorch runs), AlexNet, VGG16, ResNet-18 and ResNet-50 at
// batch 1, 8 and 32, 224 x 224, under InferenceMode, --benchmark_filter=trace/.
// ROAD's noisy linear imputation (issue 19): one image at 96 and 224 px with 10% and 90% of the
// pixels removed at random (forward/demo is the demo model's forward pass, to compare):
// --benchmark_filter=road/.
// Models are registered explicitly from main (static self-registration is dropped when linking
// a static library).
#include <benchmark/benchmark.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <thread>
#include <tuple>

#include "cnnvis/evaluate.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/models/script.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/target.hpp"
#include "cnnvis/synthesis.hpp"
#include "methods/graph_forward.hpp"

namespace {

void forward(benchmark::State& state, const std::string& arch) {
  auto model = cnnvis::make_model(arch);
  cnnvis::randomize_weights(*model, 0);
  const auto x = torch::randn({state.range(0), 3, 224, 224});
  torch::InferenceMode guard;
  for (auto _ : state) {
    benchmark::DoNotOptimize(model->forward(x).output);
  }
  state.counters["threads"] = at::get_num_threads();
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

constexpr const char* kLayer = "features.17";
constexpr int64_t kFilter = 5;
constexpr int64_t kSteps = 10;

// One forward to kLayer and one backward to the input, per iteration.
void truncated_forward_backward(benchmark::State& state) {
  auto model = cnnvis::make_model("vgg16");
  cnnvis::randomize_weights(*model, 0);
  const auto graph = model->graph();
  const auto x = torch::rand({state.range(0), 3, 224, 224}).requires_grad_(true);
  for (auto _ : state) {
    std::map<std::string, at::Tensor> taps{{kLayer, at::Tensor()}};
    cnnvis::detail::run_graph(graph, x, "vgg16", "bench", taps, kLayer);
    const auto score = taps.at(kLayer).select(1, kFilter).mean();
    benchmark::DoNotOptimize(torch::autograd::grad({score}, {x}));
  }
  state.SetItemsProcessed(state.iterations());
}

// synthesize() with the filter preset for kSteps steps (initial and final scoring included);
// items are steps.
void synthesis_steps(benchmark::State& state) {
  auto model = cnnvis::make_model("vgg16");
  cnnvis::randomize_weights(*model, 0);
  auto o = cnnvis::filter_preset();
  o.steps = kSteps;
  const std::vector<int64_t> filters(static_cast<size_t>(state.range(0)), kFilter);
  const auto target = cnnvis::filter_batch_target(kLayer, filters);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cnnvis::synthesize(*model, target, state.range(0), o).image);
  }
  state.SetItemsProcessed(state.iterations() * kSteps);
}

// `what` ("forward" or a method) on `arch`: the zoo's (file empty) or a TorchScript file.
void script_vs_native(benchmark::State& state, const std::string& arch, const std::string& file,
                      const std::string& what) {
  std::unique_ptr<cnnvis::Model> model;
  if (file.empty()) {
    model = cnnvis::make_model(arch);
    cnnvis::randomize_weights(*model, 1234);  // save_torchscript.py's weights
  } else {
    model = cnnvis::load_script_model(file);
  }
  const auto x = torch::randn({1, 3, 224, 224});
  const auto target = cnnvis::Target::class_logit(3);
  std::unique_ptr<cnnvis::Method> method;
  if (what != "forward") method = cnnvis::find_method(what).make({});
  for (auto _ : state) {
    if (method) {
      benchmark::DoNotOptimize(method->attribute(*model, x, target));
    } else {
      torch::InferenceMode guard;
      benchmark::DoNotOptimize(model->forward(x).output);
    }
  }
  state.SetItemsProcessed(state.iterations());
}

// A forward pass of `arch`: the zoo's (file empty) or the traced torchvision file.
void zoo_vs_trace(benchmark::State& state, const std::string& arch, const std::string& file) {
  const auto x = torch::randn({state.range(0), 3, 224, 224});
  if (file.empty()) {
    auto model = cnnvis::make_model(arch);
    cnnvis::randomize_weights(*model, 1234);  // save_traces.py's weights
    torch::InferenceMode guard;
    for (auto _ : state) benchmark::DoNotOptimize(model->forward(x).output);
  } else {
    auto module = torch::jit::load(file);
    module.eval();
    torch::InferenceMode guard;
    const std::vector<torch::jit::IValue> inputs{x};
    for (auto _ : state) benchmark::DoNotOptimize(module.forward(inputs));
  }
  state.SetItemsProcessed(state.iterations() * state.range(0));
}

// One imputation: state.range(0) px, state.range(1) percent of the pixels removed at random.
void road_imputation(benchmark::State& state) {
  const int64_t side = state.range(0);
  const auto image = torch::randn({3, side, side});
  const auto removed = torch::rand({side, side}).lt(static_cast<double>(state.range(1)) / 100);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cnnvis::eval::noisy_linear_imputation(image, removed, 0.01, 0));
  }
  state.SetItemsProcessed(state.iterations());
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's LibTorch starts with one thread: use every core unless CNNVIS_THREADS says.
  const char* threads = std::getenv("CNNVIS_THREADS");
  at::set_num_threads(threads ? std::atoi(threads)
                              : static_cast<int>(std::thread::hardware_concurrency()));
  for (const auto& arch : cnnvis::model_names()) {
    benchmark::RegisterBenchmark(("forward/" + arch).c_str(), forward, arch)
        ->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->MinTime(1.0);
  }
  benchmark::RegisterBenchmark("road/imputation", road_imputation)
      ->Args({96, 10})->Args({96, 90})->Args({224, 10})->Args({224, 90})
      ->Unit(benchmark::kMillisecond)->MinTime(0.5);
  benchmark::RegisterBenchmark("synthesis/forward_backward_to_features.17/vgg16",
                               truncated_forward_backward)
      ->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  benchmark::RegisterBenchmark("synthesis/steps_features.17/vgg16", synthesis_steps)
      ->Arg(1)->Arg(4)->Unit(benchmark::kMillisecond)->MinTime(2.0);
  if (const char* dir = std::getenv("CNNVIS_SCRIPT_MODELS")) {
    // ResNet-18 scripted and traced; VGG11-BN scripted where bench/script.sh wrote it (530 MB).
    std::vector<std::tuple<std::string, std::string, std::string>> runs{
        {"resnet18", "native", ""},
        {"resnet18", "scripted", std::string(dir) + "/resnet18_script.pt"},
        {"resnet18", "traced", std::string(dir) + "/resnet18_trace.pt"}};
    const std::string vgg = std::string(dir) + "/vgg11_bn_script.pt";
    if (std::ifstream(vgg)) {
      runs.emplace_back("vgg11_bn", "native", "");
      runs.emplace_back("vgg11_bn", "scripted", vgg);
    }
    for (const char* what : {"forward", "vanilla", "grad-cam", "ablation-cam"}) {
      for (const auto& [arch, label, file] : runs) {
        benchmark::RegisterBenchmark(
            ("script/" + arch + "/" + what + "/" + label).c_str(), script_vs_native, arch, file,
            std::string(what))
            ->Unit(benchmark::kMillisecond)
            ->MinTime(what == std::string("ablation-cam") ? 4.0 : 2.0);
      }
    }
  }
  if (const char* dir = std::getenv("CNNVIS_TRACE_MODELS")) {
    for (const char* arch : {"alexnet", "vgg16", "resnet18", "resnet50"}) {
      const std::string file = std::string(dir) + "/" + arch + "_trace.pt";
      if (!std::ifstream(file)) continue;  // bench/zoo_vs_trace.sh checks that all are there
      for (const auto& [label, path] : {std::pair<std::string, std::string>{"native", ""},
                                        std::pair<std::string, std::string>{"traced", file}}) {
        benchmark::RegisterBenchmark(("trace/" + std::string(arch) + "/" + label).c_str(),
                                     zoo_vs_trace, std::string(arch), path)
            ->Arg(1)->Arg(8)->Arg(32)->Unit(benchmark::kMillisecond)->MinTime(1.0);
      }
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
