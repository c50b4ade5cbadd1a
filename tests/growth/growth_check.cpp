// No growth over time: runs every registered method (and the synthesis engine) many times in one
// process on the demo model and fails if the resident set grows over the second half of the runs.
//
//   growth_check [--runs N] [--tolerance F] [--size S] [--threads T] [--only a,b,...]
//                [--leak-bytes B]   (self-test: keeps B more bytes after every run)
//
// For each method: N runs (default 200), each building the method from its options, explaining
// one demo scene and rendering every view, as one `cnnvis explain` would. After every run it
// reads the current resident set (/proc/self/statm, not the peak) and the heap in use (glibc's
// mallinfo2). A method fails if either grew by more than F (default 0.05 = 5%) over the last N/2
// runs: the highest value after run N/2 against the value at run N/2, which leaves the first half
// for caches and allocator pools to settle. The resident set is what a user sees; the heap in use
// does not move with what the allocator keeps cached (about 45 MB on the demo model, mostly
// LibTorch's own), so 5% of it catches a leak of about 20 kB per run, which the resident set's
// noise would hide. Python tools leak through hooks
// never removed (pytorch-grad-cam #78, #483); cnnvis has no hooks, and this shows that nothing
// else accumulates (autograd graphs kept alive, tapped activations, ReLU-mode state, registry
// copies). Options make each run cheap (few steps, samples and windows) without skipping a code
// path. Exit 0 when every method passes, 1 otherwise.
#include <ATen/Parallel.h>
#include <torch/torch.h>
#include <malloc.h>
#include <unistd.h>

#include <algorithm>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/models/weights.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/synthesis.hpp"

namespace {

// Current resident set in bytes (statm's second field), not the high-water mark.
double resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  statm >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE));
}

// Bytes malloc has handed out and not got back, over all arenas (mallinfo2: in-use chunks plus
// mmapped blocks). Unlike the resident set, it does not move with what the allocator keeps
// cached, so it shows a small leak that the resident set's noise would hide.
double heap_in_use_bytes() {
  const struct mallinfo2 info = mallinfo2();
  return static_cast<double>(info.uordblks) + static_cast<double>(info.hblkhd);
}

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// Cheap options per method; every other method runs with its defaults.
cnnvis::MethodParams cheap_params(const std::string& name) {
  if (name == "integrated-gradients") return {{"steps", "4"}, {"batch", "4"}};
  if (name == "smoothgrad") return {{"samples", "4"}, {"batch", "4"}};
  if (name == "occlusion") return {{"window", "16"}, {"stride", "16"}};
  return {};
}

size_t case_index(const std::vector<std::pair<std::string, std::function<void()>>>& cases,
                  const std::string& name) {
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].first == name) return i;
  }
  throw std::runtime_error("no case " + name);
}

std::vector<std::string> split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int64_t runs = 200;
  double tolerance = 0.05;
  int64_t size = cnnvis::demo::kDemoSize;
  // One intra-op thread: the inputs are tiny, and on a busy 2-core machine OpenMP teams of 2
  // made runs 20-30x slower (measured). The split path, which needs several threads, has its
  // own cases below.
  int threads = 1;
  int64_t leak_bytes = 0;  // the self-test's simulated leak per run
  const int split_threads = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  std::set<std::string> only;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--runs" && has_value) {
      runs = std::atoll(argv[++i]);
    } else if (arg == "--tolerance" && has_value) {
      tolerance = std::atof(argv[++i]);
    } else if (arg == "--size" && has_value) {
      size = std::atoll(argv[++i]);
    } else if (arg == "--threads" && has_value) {
      threads = std::atoi(argv[++i]);
    } else if (arg == "--leak-bytes" && has_value) {
      leak_bytes = std::atoll(argv[++i]);
    } else if (arg == "--only" && has_value) {
      for (const auto& name : split(argv[++i])) only.insert(name);
    } else {
      std::cerr << "usage: growth_check [--runs N] [--tolerance F] [--size S] [--threads T] "
                   "[--only a,b] [--leak-bytes B]\n";
      return 2;
    }
  }
  if (runs < 2 || !(tolerance >= 0) || size < 32 || threads < 1 || leak_bytes < 0) {
    std::cerr << "growth_check: --runs must be >= 2, --tolerance >= 0, --size >= 32, "
                 "--threads >= 1\n";
    return 2;
  }
  at::set_num_threads(threads);

  try {
    auto model = cnnvis::make_model("demo");
    cnnvis::load_weights(*model, cnnvis::demo::demo_weights_path());
    cnnvis::demo::SceneOptions scene_options;
    scene_options.size = std::max<int64_t>(size, 96);
    auto scene = cnnvis::demo::make_scenes(7, 1, scene_options);
    cnnvis::Preprocess pre;
    pre.size = size;
    const at::Tensor image = cnnvis::resize_image(scene.images[0], pre);  // [3, S, S] in [0, 1]
    const at::Tensor input = cnnvis::normalize(image, pre).unsqueeze(0);
    const auto target = cnnvis::Target::class_logit(scene.labels[0].item<int64_t>());

    // One case per registered method, plus the synthesis engine (not a registered method, but
    // the other long-running loop with optimizer state), each a callable doing one run.
    std::vector<std::pair<std::string, std::function<void()>>> cases;
    for (const auto& info : cnnvis::methods()) {
      cases.emplace_back(info.name, [&, name = info.name] {
        const auto& method_info = cnnvis::find_method(name);
        const auto params = cheap_params(name);
        auto method = method_info.make(params);
        auto result = method->explain(*model, input, target);
        result.raw = result.raw.to(torch::kFloat);
        for (auto& [key, value] : result.extras) value = value.to(torch::kFloat);
        for (const auto& view : cnnvis::method_views(method_info, params)) {
          (void)cnnvis::render_view(view, result, 0, image);
        }
        (void)cnnvis::method_importance(method_info, result.raw[0], size, size);
      });
    }
    cases.emplace_back("synthesize-lucid", [&] {
      auto options = cnnvis::lucid_preset();  // fft, decorrelation, transforms, redirected ReLU
      options.steps = 2;
      options.redirected_relu_steps = 1;
      options.size = size;
      (void)cnnvis::synthesize(*model, cnnvis::neuron_target("features.17", {0, 1}), 2, options);
    });
    cases.emplace_back("synthesize-class", [&] {
      auto options = cnnvis::class_model_preset("yosinski");  // blur and clipping steps
      options.steps = 2;
      options.blur_every = 1;
      options.size = size;
      (void)cnnvis::synthesize(*model, cnnvis::class_log_probability_target({0}), 1, options);
    });

    // On a CPU, input_gradient splits a batch (integrated gradients' path points, SmoothGrad's
    // noisy copies) over std::threads, each single-threaded: new threads every call, each with
    // its own thread-local LibTorch state and malloc arena. Run that path with several threads.
    for (const std::string name : {"integrated-gradients", "smoothgrad"}) {
      cases.emplace_back(name + "-split", [&, name, run = cases[case_index(cases, name)].second] {
        at::set_num_threads(split_threads);
        try {
          run();
        } catch (...) {
          at::set_num_threads(threads);
          throw;
        }
        at::set_num_threads(threads);
      });
    }

    const auto all_start = std::chrono::steady_clock::now();
    const double rss_start = resident_bytes();
    int failures = 0;
    int checked = 0;
    const auto late = static_cast<size_t>(runs / 2);  // the last half starts after run N/2
    std::printf("growth_check: %lld runs per method, demo model, %lldx%lld input, %d thread(s) "
                "(%d for the -split cases); "
                "fails above %.1f%% growth over the last %lld runs\n",
                static_cast<long long>(runs), static_cast<long long>(size),
                static_cast<long long>(size), at::get_num_threads(), split_threads,
                100 * tolerance,
                static_cast<long long>(runs - runs / 2));
    std::printf("%-26s %8s %8s %8s %8s %8s | %8s %8s %8s | %7s\n", "method", "rss@1",
                "rss@N/2", "rss@N", "max", "growth", "heap@N/2", "heap@N", "growth", "ms/run");
    for (const auto& [name, run] : cases) {
      if (!only.empty() && !only.count(name)) continue;
      ++checked;
      std::vector<double> rss, heap;
      rss.reserve(static_cast<size_t>(runs));
      heap.reserve(static_cast<size_t>(runs));
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::vector<char>> kept;  // --leak-bytes: what a leaking method would keep
      for (int64_t k = 0; k < runs; ++k) {
        run();
        if (leak_bytes > 0) kept.emplace_back(static_cast<size_t>(leak_bytes), 'x');
        rss.push_back(resident_bytes());
        heap.push_back(heap_in_use_bytes());
      }
      const double ms = std::chrono::duration<double, std::milli>(
                            std::chrono::steady_clock::now() - start).count() / runs;
      // Growth over the last half: its highest value (the end included) against its start.
      const double rss_half = rss[late - 1];
      const double rss_max = *std::max_element(rss.begin() + late, rss.end());
      const double rss_growth = (rss_max - rss_half) / rss_half;
      const double heap_half = heap[late - 1];
      const double heap_max = *std::max_element(heap.begin() + late, heap.end());
      const double heap_growth = (heap_max - heap_half) / heap_half;
      const bool ok = rss_growth <= tolerance && heap_growth <= tolerance;
      if (!ok) ++failures;
      std::printf("%-26s %7.1fM %7.1fM %7.1fM %7.1fM %+7.2f%% | %7.1fM %7.1fM %+7.2f%% | %7.1f %s\n",
                  name.c_str(), mib(rss.front()), mib(rss_half), mib(rss.back()), mib(rss_max),
                  100 * rss_growth, mib(heap_half), mib(heap.back()), 100 * heap_growth, ms,
                  ok ? "ok" : "GROWS");
      std::fflush(stdout);
    }
    if (checked == 0) {
      std::cerr << "growth_check: --only matched no method\n";
      return 2;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - all_start).count();
    std::printf("growth_check: %s: %d of %d methods grew more than %.1f%%; rss %.1fM -> %.1fM "
                "over all runs, %.0f s\n",
                failures ? "FAIL" : "PASS", failures, checked, 100 * tolerance, mib(rss_start),
                mib(resident_bytes()), seconds);
    return failures ? 1 : 0;
  } catch (const std::exception& e) {
    std::cerr << "growth_check: error: " << e.what() << "\n";
    return 1;
  }
}
