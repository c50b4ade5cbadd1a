#pragma once
// How a batch of input gradients runs on the CPU (input_gradient: integrated gradients'
// path points, SmoothGrad's noisy copies, guided backprop or vanilla of one or several
// images), chosen on the machine at run time: which is faster depends on the CPU, the model,
// the input size and the thread count, so no choice is made in advance.
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace cnnvis {

enum class GradientStrategy {
  // Measured (the default): the first calls for a (model, batch shape, dtype, threads)
  // alternate the strategies below that apply, every call doing its real work; once each has
  // run twice after a first warm-up call, the fastest (by its fastest call; another than
  // batched only when more than 5% faster than batched) is kept for the rest of the process.
  kAuto,
  // One forward/backward pass of the whole batch, every intra-op thread inside each layer.
  kBatched,
  // The rows split over one worker thread per intra-op thread, each single-threaded, two rows
  // per pass (needs OpenMP, a batch of 2 or more and Model::concurrent_forward; otherwise
  // batched).
  kSplit,
  // One batched pass with the input and every 4-D parameter of the model (the convolutions'
  // weights) in channels-last layout (NHWC), for which oneDNN has other kernels: on some CPUs
  // and networks much faster (DenseNet-121), on others slower. The weights are swapped for
  // channels-last copies for the call only (made on first use, made again when a weight
  // changes: see WeightLayoutGuard); the gradient comes back contiguous. A 4-D input on the
  // CPU and a model with a 4-D parameter; otherwise batched.
  kChannelsLast,
};

// The process-wide policy (CLI: --gradient-strategy). Results of the strategies agree to
// float32 rounding, not bit for bit (their kernels see other batch sizes and layouts): fix one
// for bit-identical runs.
void set_gradient_strategy(GradientStrategy strategy);
GradientStrategy gradient_strategy();
// "auto", "batched", "split", "channels-last"; parse throws cnnvis::Error (invalid argument)
// otherwise.
GradientStrategy parse_gradient_strategy(const std::string& name);
const char* to_string(GradientStrategy strategy);

// What kAuto measured and chose so far, one entry per key, for `cnnvis bench`.
struct StrategyRecord {
  std::string key;     // "resnet50 [10, 3, 224, 224] Float, 2 threads: split channels-last"
  std::string choice;  // "batched", "split", "channels-last", or "measuring"
  // The timed calls of each strategy measured (the warm-up call is not among them).
  std::map<std::string, std::vector<double>> ms;
  // Strategies that failed on this model (their error), dropped from the measurement.
  std::map<std::string, std::string> failed;
};
std::vector<StrategyRecord> gradient_strategy_report();
// Forgets every measurement (tests; a new measurement starts on the next call).
void reset_gradient_strategy_measurements();

namespace detail {

// The measurement of one key over its candidates (batched and those that apply): next() says
// which strategy the coming call runs, record() takes its time. Calls: warm-up (batched), then
// round after round of split, channels-last, batched (those among the candidates), two rounds;
// then the fastest by its fastest timed call, another than batched only when it is more than
// 5% faster than batched (otherwise batched, the plain pass: single calls vary by a few
// percent). Not thread-safe by itself.
class StrategyChooser {
 public:
  // `candidates` besides batched, which is always one (kAuto is ignored).
  explicit StrategyChooser(std::vector<GradientStrategy> candidates = {GradientStrategy::kSplit});
  GradientStrategy next() const;
  void record(GradientStrategy strategy, double ms);
  // `strategy` failed (an exception): it is no longer a candidate.
  void drop(GradientStrategy strategy, const std::string& error);
  bool decided() const { return decided_; }
  // A measured call is running: a concurrent caller of the same key runs batched, unmeasured
  // (two calls at once would skew each other's times).
  bool busy() const { return busy_; }
  void set_busy(bool busy) { busy_ = busy; }
  GradientStrategy choice() const { return choice_; }
  const std::vector<GradientStrategy>& candidates() const { return candidates_; }
  const std::vector<double>& ms(GradientStrategy strategy) const;
  const std::map<std::string, std::string>& failed() const { return failed_; }

 private:
  void decide_if_done();
  static constexpr size_t kSamples = 2;
  static constexpr double kMargin = 0.95;  // another's fastest call < 0.95 x batched's
  std::vector<GradientStrategy> candidates_;  // in measuring order, batched last
  std::map<GradientStrategy, std::vector<double>> ms_;
  std::map<std::string, std::string> failed_;
  bool warmed_up_ = false;
  bool busy_ = false;
  bool decided_ = false;
  GradientStrategy choice_ = GradientStrategy::kBatched;
};

// The chooser of `key`, created on first use with `candidates`, and the mutex that guards
// every chooser.
StrategyChooser& strategy_chooser(const std::string& key,
                                  const std::vector<GradientStrategy>& candidates);
// The chooser of `key`, which exists (strategy_chooser above made it).
StrategyChooser& strategy_chooser(const std::string& key);
std::mutex& strategy_mutex();

}  // namespace detail
}  // namespace cnnvis
