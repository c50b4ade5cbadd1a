#include "cnnvis/strategy.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>

#include "cnnvis/error.hpp"

namespace cnnvis {
namespace {

std::atomic<GradientStrategy> g_strategy{GradientStrategy::kAuto};

std::atomic<PassSize> g_pass_size{PassSize::kAuto};

std::map<std::string, detail::StrategyChooser>& choosers() {
  static std::map<std::string, detail::StrategyChooser> map;
  return map;
}

std::map<std::string, detail::PassSizeChooser>& pass_choosers() {
  static std::map<std::string, detail::PassSizeChooser> map;
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

void set_pass_size(PassSize policy) { g_pass_size = policy; }
PassSize pass_size() { return g_pass_size; }

PassSize parse_pass_size(const std::string& name) {
  if (name == "auto") return PassSize::kAuto;
  if (name == "full") return PassSize::kFull;
  throw usage_error("--pass-size " + name + ": expected auto or full");
}

const char* to_string(PassSize policy) { return policy == PassSize::kAuto ? "auto" : "full"; }

std::vector<PassSizeRecord> pass_size_report() {
  std::lock_guard<std::mutex> lock(detail::strategy_mutex());
  std::vector<PassSizeRecord> out;
  for (const auto& [key, c] : pass_choosers()) {
    PassSizeRecord r{key, c.decided() ? std::to_string(c.choice()) : "measuring", {}};
    for (auto rows : c.candidates()) r.ms_per_row[rows] = c.ms_per_row(rows);
    out.push_back(std::move(r));
  }
  return out;
}

void reset_gradient_strategy_measurements() {
  std::lock_guard<std::mutex> lock(detail::strategy_mutex());
  choosers().clear();
  pass_choosers().clear();
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
  // The first candidate with the fewest calls so far (its untimed first call included).
  GradientStrategy best = candidates_.front();
  for (auto s : candidates_) {
    if (calls(s) < calls(best)) best = s;
  }
  return best;
}

size_t StrategyChooser::calls(GradientStrategy strategy) const {
  const auto it = calls_.find(strategy);
  return it == calls_.end() ? 0 : it->second;
}

void StrategyChooser::record(GradientStrategy strategy, double ms) {
  if (decided_) return;
  // The first call of each strategy pays for its set-up (the channels-last weight copies, the
  // workers' first allocations, kernel creation for its batch shape): not counted.
  if (calls_[strategy]++ == 0) return;
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

PassSizeChooser::PassSizeChooser(int64_t batch) : choice_(std::max<int64_t>(1, batch)) {
  for (int64_t rows = choice_, k = 0; k < 3; ++k, rows /= 2) {
    const int64_t r = std::max<int64_t>(1, rows);
    if (std::find(candidates_.begin(), candidates_.end(), r) == candidates_.end()) {
      candidates_.push_back(r);
    }
  }
  if (candidates_.size() == 1) decided_ = true;  // nothing to measure
}

int64_t PassSizeChooser::next() const {
  if (decided_) return choice_;
  int64_t best = candidates_.front();
  for (auto rows : candidates_) {
    if (calls_.count(rows) == 0) return rows;
    if (calls_.at(rows) < calls_.at(best)) best = rows;
  }
  return best;
}

const std::vector<double>& PassSizeChooser::ms_per_row(int64_t rows) const {
  static const std::vector<double> none;
  const auto it = ms_per_row_.find(rows);
  return it == ms_per_row_.end() ? none : it->second;
}

void PassSizeChooser::record(int64_t rows, double ms) {
  if (decided_ || std::find(candidates_.begin(), candidates_.end(), rows) == candidates_.end()) {
    return;
  }
  if (calls_[rows]++ == 0) return;  // its first pass pays for the set-up: not counted
  ms_per_row_[rows].push_back(ms / static_cast<double>(rows));
  for (auto r : candidates_) {
    if (ms_per_row(r).size() < kSamples) return;
  }
  decided_ = true;
  const auto fastest = [&](int64_t r) {
    return *std::min_element(ms_per_row(r).begin(), ms_per_row(r).end());
  };
  const double full = fastest(candidates_.front());
  double best = full;
  for (auto r : candidates_) {
    if (r != candidates_.front() && fastest(r) < kMargin * full && fastest(r) < best) {
      best = fastest(r);
      choice_ = r;
    }
  }
}

void run_in_passes(const std::string& key_in, int64_t total, int64_t batch, bool measure,
                   const std::function<void(int64_t first, int64_t rows)>& pass) {
  const int64_t full = std::max<int64_t>(1, std::min(batch, total));
  const std::string key = key_in + ", batch " + std::to_string(full);
  measure = measure && pass_size() == PassSize::kAuto && full > 1;
  int64_t chosen = full;
  for (int64_t first = 0; first < total;) {
    bool timed = false;
    if (measure) {
      std::lock_guard<std::mutex> lock(strategy_mutex());
      auto& c = pass_choosers().try_emplace(key, full).first->second;
      if (c.decided()) {
        chosen = c.choice();
        measure = false;  // the rest of this call runs at the choice
      } else if (!c.busy()) {
        chosen = c.next();
        c.set_busy(true);
        timed = true;
      } else {
        chosen = full;  // another call is measuring this key
      }
    }
    const int64_t rows = std::min(chosen, total - first);
    // Not busy any more when the pass ends, also by an exception.
    struct Release {
      const std::string* key;
      ~Release() {
        if (!key) return;
        std::lock_guard<std::mutex> lock(strategy_mutex());
        pass_choosers().at(*key).set_busy(false);
      }
    } release{timed ? &key : nullptr};
    const auto start = std::chrono::steady_clock::now();
    pass(first, rows);
    if (timed) {
      const double ms =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
              .count();
      std::lock_guard<std::mutex> lock(strategy_mutex());
      pass_choosers().at(key).record(rows, ms);
    }
    first += rows;
  }
}

}  // namespace detail
}  // namespace cnnvis
