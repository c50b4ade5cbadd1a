#pragma once
// How a batch of input gradients runs on the CPU (input_gradient: integrated gradients'
// path points, SmoothGrad's noisy copies, guided backprop or vanilla of one or several
// images), chosen on the machine at run time: which is faster depends on the CPU, the model,
// the input size and the thread count, so no choice is made in advance.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace cnnvis {

enum class GradientStrategy {
  // Measured (the default): the first calls for a (model, batch shape, dtype, threads)
  // alternate the strategies below that apply, every call doing its real work; once each has
  // run twice after its own untimed first call, the fastest (by its fastest call; another than
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
  // The timed calls of each strategy measured (its untimed first call is not among them).
  std::map<std::string, std::vector<double>> ms;
  // Strategies that failed on this model (their error), dropped from the measurement.
  std::map<std::string, std::string> failed;
};
std::vector<StrategyRecord> gradient_strategy_report();

// Rows per forward pass of the perturbation methods (occlusion's occluded copies, Score-CAM's
// masked images, Ablation-CAM's ablated activations). Their `batch` option bounds a pass; how
// many images per pass run fastest depends on the CPU's caches, the model and the image size
// (ResNet-18 at 224 on a 2-core Xeon: passes of 8 run 13% faster per image than passes of 32),
// so it is measured.
enum class PassSize {
  // Measured (the default, CPU only): the first passes for a (model, entry, image shape, dtype,
  // threads, batch) alternate batch, batch / 2 and batch / 4 rows (at least 1, distinct), each
  // doing its real work; once each has run twice after its own untimed first pass, the one
  // with the least time per row (another than batch only when more than 5% faster per row) is
  // kept for the rest of the process. On CUDA every pass takes the whole batch.
  kAuto,
  // Every pass takes the method's whole batch option (the last pass the rest).
  kFull,
};
// The process-wide policy (CLI: --pass-size). The scores do not depend on it but for float32
// rounding (kernels for other batch sizes): fix it for bit-identical runs.
void set_pass_size(PassSize policy);
PassSize pass_size();
// "auto" or "full"; parse throws cnnvis::Error (invalid argument) otherwise.
PassSize parse_pass_size(const std::string& name);
const char* to_string(PassSize policy);

// What kAuto measured and chose so far, one entry per key, for `cnnvis bench`.
struct PassSizeRecord {
  std::string key;     // "resnet18 forward [3, 224, 224] Float, 2 threads, batch 32"
  std::string choice;  // "32", "16", "8" or "measuring"
  // Per candidate (rows per pass): the timed passes' milliseconds per row.
  std::map<int64_t, std::vector<double>> ms_per_row;
};
std::vector<PassSizeRecord> pass_size_report();

// Forgets every measurement of gradient strategies and pass sizes (tests; a new measurement
// starts on the next call).
void reset_gradient_strategy_measurements();

namespace detail {

// The measurement of one key over its candidates (batched and those that apply): next() says
// which strategy the coming call runs, record() takes its time. Calls: rounds of split,
// channels-last, batched (those among the candidates), three rounds, the first untimed (each
// strategy's first call pays for its set-up: weight copies, first allocations, kernel
// creation); then the fastest by its fastest timed call, another than batched only when it is more than
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
  size_t calls(GradientStrategy strategy) const;
  static constexpr size_t kSamples = 2;
  static constexpr double kMargin = 0.95;  // another's fastest call < 0.95 x batched's
  std::vector<GradientStrategy> candidates_;  // in measuring order, batched last
  std::map<GradientStrategy, std::vector<double>> ms_;
  std::map<std::string, std::string> failed_;
  std::map<GradientStrategy, size_t> calls_;  // timed or not
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

// The measurement of one key's rows per pass: candidates `batch`, batch / 2, batch / 4 (at
// least 1, distinct), measured in that order, round after round, three rounds, the first
// untimed; then the least time per row (another than `batch` only when more than 5% less).
// Not thread-safe by itself (strategy_mutex guards it).
class PassSizeChooser {
 public:
  explicit PassSizeChooser(int64_t batch);
  int64_t next() const;
  // A pass of `rows` rows took `ms`; passes of a size not among the candidates (the last,
  // shorter pass) are not counted.
  void record(int64_t rows, double ms);
  bool decided() const { return decided_; }
  bool busy() const { return busy_; }
  void set_busy(bool busy) { busy_ = busy; }
  int64_t choice() const { return choice_; }
  const std::vector<int64_t>& candidates() const { return candidates_; }
  const std::vector<double>& ms_per_row(int64_t rows) const;

 private:
  static constexpr size_t kSamples = 2;
  static constexpr double kMargin = 0.95;
  std::vector<int64_t> candidates_;  // batch first
  std::map<int64_t, size_t> calls_;
  std::map<int64_t, std::vector<double>> ms_per_row_;
  bool busy_ = false;
  bool decided_ = false;
  int64_t choice_;
};

// Runs `total` items in consecutive passes, `pass(first, rows)` each, of at most `batch` rows
// (at least 1): with pass_size() kAuto and `measure`, the rows per pass are measured for
// `key` + ", batch B" (B = min(batch, total)) and then kept (PassSizeChooser); otherwise B.
// A concurrent caller of a key being measured runs its passes at `batch`, unmeasured.
void run_in_passes(const std::string& key, int64_t total, int64_t batch, bool measure,
                   const std::function<void(int64_t first, int64_t rows)>& pass);

}  // namespace detail
}  // namespace cnnvis
