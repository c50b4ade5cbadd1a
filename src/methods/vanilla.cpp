#include "cnnvis/methods/vanilla.hpp"

#include <ATen/Config.h>
#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/nn/module.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/precision.hpp"
#include "cnnvis/strategy.hpp"
#include "methods/common.hpp"

namespace cnnvis {
namespace {

at::Tensor gradient_of_rows(Model& model, const at::Tensor& input, const Target& target) {
  // A leaf copy that requires grad; parameters are frozen, so autograd::grad computes only the
  // path down to the input.
  auto x = input.detach().requires_grad_(true);
  auto result = model.forward(x, target.taps());
  auto score = target.score(result);
  return torch::autograd::grad({score.sum()}, {x})[0];
}

// Rows per forward/backward pass of a worker. Measured on 2 cores at 224 px, per row of 10
// rows on 2 workers: ResNet50 216 / 196 / 220 ms and VGG16 680 / 647 / 645 ms for 1 / 2 / 5
// rows per pass (VGG16's 400 MB classifier is read once per pass).
constexpr int64_t kRowsPerPass = 2;

// How many threads input_gradient() splits `input`'s rows over (1: no split): with OpenMP, a
// CPU batch of more than one row, not already inside a parallel region, and a model that allows
// concurrent forward passes (Model::concurrent_forward, not in training mode); then
// min(intra-op threads, rows).
int64_t split_workers(Model& model, const at::Tensor& input) {
#if AT_PARALLEL_OPENMP
  // Only with OpenMP (Debian's and the official LibTorch): there the intra-op thread count is
  // per thread, so each worker can run single-threaded. The native backend has one global pool.
  if (input.size(0) < 2 || !input.device().is_cpu() || at::in_parallel_region() ||
      !model.concurrent_forward() || model.module().is_training()) {
    return 1;
  }
  return std::min<int64_t>(at::get_num_threads(), input.size(0));
#else
  (void)model;
  (void)input;
  return 1;
#endif
}

at::Tensor split_gradient(Model& model, const at::Tensor& input, const Target& target,
                          int64_t workers) {
  // Data parallel over the rows: `workers` threads, each with its share of the intra-op
  // threads (usually one) and a contiguous block of the rows, which it runs kRowsPerPass at a
  // time. On some CPUs this beats running the batch with every thread inside each layer (the
  // layers of one small image do not keep several cores busy), on others it loses: which one
  // runs is measured (input_gradient, cnnvis/strategy.hpp). Each worker carries the caller's
  // thread-local state (grad mode, ...).
  const int threads = at::get_num_threads();
  const int64_t n = input.size(0);
  auto out = at::empty_like(input, at::MemoryFormat::Contiguous);
  const at::ThreadLocalState state;
  std::atomic<bool> failed{false};
  std::vector<std::exception_ptr> errors(static_cast<size_t>(workers));
  std::vector<std::thread> pool;
  const auto work = [&](int64_t w, int share) {
    try {
      at::set_num_threads(share);
      at::ThreadLocalStateGuard guard(state);
      const int64_t end = (w + 1) * n / workers;
      for (int64_t i = w * n / workers; i < end && !failed; i += kRowsPerPass) {
        const int64_t last = std::min(end, i + kRowsPerPass);
        out.slice(0, i, last)
            .copy_(gradient_of_rows(model, input.slice(0, i, last), target.rows(i, last)));
      }
    } catch (...) {
      errors[static_cast<size_t>(w)] = std::current_exception();
      failed = true;  // the others stop after their current row
    }
  };
  try {
    for (int64_t w = 0; w < workers; ++w) {
      pool.emplace_back(work, w,
                        static_cast<int>(threads / workers + (w < threads % workers ? 1 : 0)));
    }
  } catch (...) {  // no thread could be started: stop and join those that were
    failed = true;
    for (auto& t : pool) t.join();
    at::set_num_threads(threads);
    throw;
  }
  for (auto& t : pool) t.join();
  // at::set_num_threads also sets the default of threads started later: restore it.
  at::set_num_threads(threads);
  for (const auto& e : errors) {
    if (e) std::rethrow_exception(e);
  }
  return out;
}

}  // namespace

at::Tensor input_gradient(Model& model, const at::Tensor& input, const Target& target) {
  const int64_t workers = split_workers(model, input);
  // channels-last applies to a 4-D CPU input and a model with 4-D weights in another layout.
  const bool channels_last = input.dim() == 4 && input.device().is_cpu() &&
                             has_weights_to_switch(model, at::MemoryFormat::ChannelsLast);
  const auto applies = [&](GradientStrategy s) {
    return s == GradientStrategy::kBatched || (s == GradientStrategy::kSplit && workers >= 2) ||
           (s == GradientStrategy::kChannelsLast && channels_last);
  };
  const auto run = [&](GradientStrategy strategy) {
    if (!applies(strategy)) strategy = GradientStrategy::kBatched;
    if (strategy == GradientStrategy::kSplit) return split_gradient(model, input, target, workers);
    if (strategy == GradientStrategy::kChannelsLast) {
      const WeightLayoutGuard layout(model, at::MemoryFormat::ChannelsLast);
      return gradient_of_rows(model, input.contiguous(at::MemoryFormat::ChannelsLast), target)
          .contiguous();
    }
    return gradient_of_rows(model, input, target);
  };
  const GradientStrategy policy = gradient_strategy();
  if (policy != GradientStrategy::kAuto) return run(policy);
  std::vector<GradientStrategy> candidates;
  for (auto s : {GradientStrategy::kSplit, GradientStrategy::kChannelsLast}) {
    if (applies(s)) candidates.push_back(s);
  }
  if (candidates.empty()) return run(GradientStrategy::kBatched);  // nothing to choose from
  // Measured: the chooser of this model, batch shape, dtype, thread count and candidates says which
  // strategy this call runs (every call does its real work) and takes its time.
  // The candidates are part of the key: two models of one name may differ in what applies.
  std::string key = model.name() + " " + c10::str(input.sizes()) + " " +
                    c10::toString(input.scalar_type()) +
                    autocast_suffix(input.device().type()) + ", " +
                    std::to_string(at::get_num_threads()) + " threads:";
  for (auto s : candidates) key += std::string(" ") + to_string(s);
  GradientStrategy strategy;
  bool measured;
  {
    std::lock_guard<std::mutex> lock(detail::strategy_mutex());
    auto& chooser = detail::strategy_chooser(key, candidates);
    strategy = chooser.busy() ? GradientStrategy::kBatched : chooser.next();
    // A strategy that does not apply to this call (a model switched to training mode, say)
    // runs batched, unmeasured.
    measured = !chooser.decided() && !chooser.busy() && applies(strategy);
    if (measured) chooser.set_busy(true);
  }
  if (!measured) return run(strategy);
  // Not busy any more when the call ends, also by an exception.
  struct Release {
    const std::string& key;
    ~Release() {
      std::lock_guard<std::mutex> lock(detail::strategy_mutex());
      detail::strategy_chooser(key).set_busy(false);
    }
  } release{key};
  const auto start = std::chrono::steady_clock::now();
  at::Tensor g;
  try {
    g = run(strategy);
  } catch (const std::exception& e) {
    // Errors of the plain pass and of the split (its workers run the plain pass) are the
    // caller's. A channels-last call that fails is run again batched: when that one succeeds,
    // the layout was the problem (a layer that needs contiguous weights, say) and channels-last
    // is dropped for this key; when it fails too, its error is the caller's.
    if (strategy != GradientStrategy::kChannelsLast) throw;
    const std::string error = e.what();
    g = run(GradientStrategy::kBatched);
    std::lock_guard<std::mutex> lock(detail::strategy_mutex());
    detail::strategy_chooser(key).drop(strategy, error);
    return g;
  }
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  {
    std::lock_guard<std::mutex> lock(detail::strategy_mutex());
    detail::strategy_chooser(key).record(strategy, ms);
  }
  return g;
}

at::Tensor VanillaGradient::attribute(Model& model, const at::Tensor& input,
                                      const Target& target) {
  return input_gradient(model, input, target);
}

MethodInfo vanilla_method_info() {
  MethodInfo info;
  info.name = "vanilla";
  info.summary = "vanilla backprop: gradient of the target logit w.r.t. the input";
  info.paper = "Simonyan, Vedaldi, Zisserman 2014, Deep inside convolutional networks";
  info.views = detail::gradient_views(/*with_signs=*/false);
  info.make = [](const MethodParams& params) -> std::unique_ptr<Method> {
    detail::OptionReader(params, "vanilla").finish();
    return std::make_unique<VanillaGradient>();
  };
  return info;
}

}  // namespace cnnvis
