#include "cnnvis/strategy.hpp"

#include <algorithm>
#include <atomic>
#include <map>

#include "cnnvis/error.hpp"

namespace cnnvis {
namespace {

std::atomic<GradientStrategy> g_strategy{GradientStrategy::kAuto};

std::map<std::string, detail::StrategyChooser>& choosers() {
  static std::map<std::string, detail::StrategyChooser> map;
  return map;
}

}  // namespace

void set_gradient_strategy(GradientStrategy strategy) { g_strategy = strategy; }
GradientStrategy gradient_strategy() { return g_strategy; }

GradientStrategy parse_gradient_strategy(const std::string& name) {
  if (name == "auto") return GradientStrategy::kAuto;
  if (name == "batched") return GradientStrategy::kBatched;
  if (name == "split") return GradientStrategy::kSplit;
  throw usage_error("--gradient-strategy " + name + ": expected auto, batched or split");
}

const char* to_string(GradientStrategy strategy) {
  switch (strategy) {
    case GradientStrategy::kAuto: return "auto";
    case GradientStrategy::kBatched: return "batched";
    case GradientStrategy::kSplit: return "split";
  }
  return "?";
}

std::vector<StrategyRecord> gradient_strategy_report() {
  std::lock_guard<std::mutex> lock(detail::strategy_mutex());
  std::vector<StrategyRecord> out;
  for (const auto& [key, c] : choosers()) {
    out.push_back({key, c.decided() ? to_string(c.choice()) : "measuring", c.batched_ms(),
                   c.split_ms()});
  }
  return out;
}

void reset_gradient_strategy_measurements() {
  std::lock_guard<std::mutex> lock(detail::strategy_mutex());
  choosers().clear();
}

namespace detail {

GradientStrategy StrategyChooser::next() const {
  if (decided_) return choice_;
  if (!warmed_up_) return GradientStrategy::kBatched;
  return split_.size() <= batched_.size() ? GradientStrategy::kSplit : GradientStrategy::kBatched;
}

void StrategyChooser::record(GradientStrategy strategy, double ms) {
  if (decided_) return;
  if (!warmed_up_) {
    warmed_up_ = true;  // the first call pays for allocations and kernel set-up: not counted
    return;
  }
  (strategy == GradientStrategy::kSplit ? split_ : batched_).push_back(ms);
  if (split_.size() >= kSamples && batched_.size() >= kSamples) {
    decided_ = true;
    const double split = *std::min_element(split_.begin(), split_.end());
    const double batched = *std::min_element(batched_.begin(), batched_.end());
    // The split must win by more than the calls' noise to replace the plain pass.
    choice_ = split < kSplitMargin * batched ? GradientStrategy::kSplit : GradientStrategy::kBatched;
  }
}

StrategyChooser& strategy_chooser(const std::string& key) { return choosers()[key]; }

std::mutex& strategy_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace detail
}  // namespace cnnvis
