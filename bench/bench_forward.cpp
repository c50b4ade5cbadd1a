// The baseline every method is reported against: one plain forward pass of each zoo model,
// batch 1 and 8, 224 x 224, under InferenceMode. Methods are timed as a ratio to this by
// `cnnvis bench METHOD` (same process, same input).
//   build/bench/cnnvis_bench --benchmark_filter=resnet50      (CNNVIS_THREADS=N to pin threads)
// Models are registered explicitly from main (static self-registration is dropped when linking
// a static library).
#include <benchmark/benchmark.h>
#include <torch/torch.h>

#include <cstdlib>
#include <thread>

#include "cnnvis/models/zoo.hpp"

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

}  // namespace

int main(int argc, char** argv) {
  setenv("OMP_WAIT_POLICY", "PASSIVE", 0);
  // Debian's LibTorch starts with one thread: use every core unless CNNVIS_THREADS says.
  const char* threads = std::getenv("CNNVIS_THREADS");
  at::set_num_threads(threads ? std::atoi(threads)
                              : static_cast<int>(std::thread::hardware_concurrency()));
  for (const auto& arch : cnnvis::model_names()) {
    benchmark::RegisterBenchmark(("forward/" + arch).c_str(), forward, arch)
        ->Arg(1)->Arg(8)->Unit(benchmark::kMillisecond)->MinTime(1.0);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
