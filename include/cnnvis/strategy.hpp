#pragma once
// How a batch of input gradients runs on the CPU (input_gradient: integrated gradients'
// path points, SmoothGrad's noisy copies, guided backprop or vanilla of several images), chosen
// on the machine at run time: which is faster depends on the CPU, the model, the input size and
// the thread count, so no choice is made in advance.
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

namespace cnnvis {

enum class GradientStrategy {
  // Measured (the default): the first calls for a (model, batch shape, dtype, threads) alternate
  // the two strategies below, every call doing its real work; once each has run twice after a
  // first warm-up call, the faster (by its fastest call; the split only when more than 5%
  // faster) is kept for the rest of the process.
  kAuto,
  // One forward/backward pass of the whole batch, every intra-op thread inside each layer.
  kBatched,
  // The rows split over one worker thread per intra-op thread, each single-threaded, two rows
  // per pass (needs OpenMP and Model::concurrent_forward; otherwise batched).
  kSplit,
};

// The process-wide policy (CLI: --gradient-strategy). Results of the two strategies agree to
// float32 rounding, not bit for bit (their kernels see other batch sizes): fix it to batched or
// split for bit-identical runs.
void set_gradient_strategy(GradientStrategy strategy);
GradientStrategy gradient_strategy();
// "auto", "batched", "split"; parse throws cnnvis::Error (invalid argument) otherwise.
GradientStrategy parse_gradient_strategy(const std::string& name);
const char* to_string(GradientStrategy strategy);

// What kAuto measured and chose so far, one entry per key, for `cnnvis bench`.
struct StrategyRecord {
  std::string key;                  // "resnet50 [10, 3, 224, 224] Float, 2 threads"
  std::string choice;               // "batched", "split", or "measuring"
  std::vector<double> batched_ms;   // the timed calls (the warm-up call is not among them)
  std::vector<double> split_ms;
};
std::vector<StrategyRecord> gradient_strategy_report();
// Forgets every measurement (tests; a new measurement starts on the next call).
void reset_gradient_strategy_measurements();

namespace detail {

// The measurement of one key: next() says which strategy the coming call runs, record() takes
// its time. Calls: warm-up (batched), then split, batched, split, batched; then the faster by
// its fastest timed call, the split only when it is more than 5% faster (otherwise batched, the
// plain pass: single calls vary by a few percent). Not thread-safe by itself.
class StrategyChooser {
 public:
  GradientStrategy next() const;
  void record(GradientStrategy strategy, double ms);
  bool decided() const { return decided_; }
  // A measured call is running: a concurrent caller of the same key runs batched, unmeasured
  // (two calls at once would skew each other's times).
  bool busy() const { return busy_; }
  void set_busy(bool busy) { busy_ = busy; }
  GradientStrategy choice() const { return choice_; }
  const std::vector<double>& batched_ms() const { return batched_; }
  const std::vector<double>& split_ms() const { return split_; }

 private:
  static constexpr size_t kSamples = 2;
  static constexpr double kSplitMargin = 0.95;  // split's fastest call < 0.95 x batched's
  bool warmed_up_ = false;
  bool busy_ = false;
  bool decided_ = false;
  GradientStrategy choice_ = GradientStrategy::kBatched;
  std::vector<double> batched_, split_;
};

// The chooser of `key` (created on first use) and the mutex that guards every chooser.
StrategyChooser& strategy_chooser(const std::string& key);
std::mutex& strategy_mutex();

}  // namespace detail
}  // namespace cnnvis
