#include "cnnvis/strategy.hpp"

#include <algorithm>
#include <atomic>

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
  if (name == "channels-last") return GradientStrategy::kChannelsLast;
  throw usage_error("--gradient-strategy " + name +
                    ": expected auto, batched, split or channels-last");
}

const char* to_string(GradientStrategy strategy) {
  switch (strategy) {
    case GradientStrategy::kAuto: return "auto";
    case GradientStrategy::kBatched: return "batched";
    case GradientStrategy::kSplit: return "split";
    case GradientStrategy::kChannelsLast: return "channels-last";
  }
  return "?";
}

std::vector<StrategyRecord> gradient_strategy_report() {
  std::lock_guard<std::mutex> lock(detail::strategy_mutex());
  std::vector<StrategyRecord> out;
  for (const auto& [key, c] : choosers()) {
    StrategyRecord r{key, c.decided() ? to_string(c.choice()) : "measuring", {}, c.failed()};
    for (auto s : c.candidates()) r.ms[to_string(s)] = c.ms(s);
    out.push_back(std::move(r));
  }
  return out;
}

void reset_gradient_strategy_measurements() {
  std::lock_guard<std::mutex> lock(detail::strategy_mutex());
  choosers().clear();
}

namespace detail {

StrategyChooser::StrategyChooser(std::vector<GradientStrategy> candidates) {
  // Measuring order: split, channels-last, batched (the last, so that a round ends with the
  // plain pass).
  for (auto s : {GradientStrategy::kSplit, GradientStrategy::kChannelsLast}) {
    if (std::find(candidates.begin(), candidates.end(), s) != candidates.end()) {
      candidates_.push_back(s);
    }
  }
  candidates_.push_back(GradientStrategy::kBatched);
  if (candidates_.size() == 1) decided_ = true;  // nothing to measure
}

const std::vector<double>& StrategyChooser::ms(GradientStrategy strategy) const {
  static const std::vector<double> none;
  const auto it = ms_.find(strategy);
  return it == ms_.end() ? none : it->second;
}

GradientStrategy StrategyChooser::next() const {
  if (decided_) return choice_;
  if (!warmed_up_) return GradientStrategy::kBatched;
  // The first candidate with the fewest timed calls.
  GradientStrategy best = candidates_.front();
  for (auto s : candidates_) {
    if (ms(s).size() < ms(best).size()) best = s;
  }
  return best;
}

void StrategyChooser::record(GradientStrategy strategy, double ms) {
  if (decided_) return;
  if (!warmed_up_) {
    warmed_up_ = true;  // the first call pays for allocations and kernel set-up: not counted
    return;
  }
  ms_[strategy].push_back(ms);
  decide_if_done();
}

void StrategyChooser::drop(GradientStrategy strategy, const std::string& error) {
  if (strategy == GradientStrategy::kBatched) return;  // the plain pass is never dropped
  const auto it = std::find(candidates_.begin(), candidates_.end(), strategy);
  if (it == candidates_.end()) return;
  candidates_.erase(it);
  ms_.erase(strategy);
  failed_[to_string(strategy)] = error;
  if (candidates_.size() == 1) {
    decided_ = true;
    choice_ = GradientStrategy::kBatched;
  } else {
    decide_if_done();
  }
}

void StrategyChooser::decide_if_done() {
  for (auto s : candidates_) {
    if (ms(s).size() < kSamples) return;
  }
  decided_ = true;
  const auto fastest = [&](GradientStrategy s) {
    return *std::min_element(ms(s).begin(), ms(s).end());
  };
  const double batched = fastest(GradientStrategy::kBatched);
  choice_ = GradientStrategy::kBatched;
  double best = batched;
  for (auto s : candidates_) {
    // Another strategy must win by more than the calls' noise to replace the plain pass.
    if (s != GradientStrategy::kBatched && fastest(s) < kMargin * batched && fastest(s) < best) {
      best = fastest(s);
      choice_ = s;
    }
  }
}

StrategyChooser& strategy_chooser(const std::string& key,
                                  const std::vector<GradientStrategy>& candidates) {
  auto& map = choosers();
  auto it = map.find(key);
  if (it == map.end()) it = map.emplace(key, StrategyChooser(candidates)).first;
  return it->second;
}

StrategyChooser& strategy_chooser(const std::string& key) { return choosers().at(key); }

std::mutex& strategy_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace detail
}  // namespace cnnvis
