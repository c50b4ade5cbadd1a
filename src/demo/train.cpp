#include "cnnvis/demo/train.hpp"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/models/zoo.hpp"

namespace cnnvis::demo {
namespace {

// Makes the parameters trainable for a scope; freezes them and sets eval mode again on exit,
// also on exceptions (the model contract says parameters are frozen).
class TrainingGuard {
 public:
  explicit TrainingGuard(torch::nn::Module& module) : module_(module) {
    for (auto& p : module_.parameters()) p.set_requires_grad(true);
    module_.train();
  }
  ~TrainingGuard() {
    for (auto& p : module_.parameters()) p.set_requires_grad(false);
    module_.eval();
  }
  TrainingGuard(const TrainingGuard&) = delete;
  TrainingGuard& operator=(const TrainingGuard&) = delete;

 private:
  torch::nn::Module& module_;
};

}  // namespace

Preprocess demo_preprocess() {
  Preprocess p;
  p.size = kDemoSize;
  return p;
}

double held_out_accuracy(Model& model, int64_t count, int64_t size) {
  if (count < 1) throw usage_error("held-out scene count must be >= 1");
  torch::InferenceMode guard;
  const auto device = model.module().parameters().front().device();
  int64_t correct = 0;
  for (int64_t start = 0; start < count; start += 100) {
    const int64_t n = std::min<int64_t>(100, count - start);
    const auto batch = make_scenes(kHeldOutSeed + static_cast<uint64_t>(start), n, {size});
    const auto x = normalize(batch.images, demo_preprocess()).to(device);
    const auto predicted = model.forward(x).output.argmax(1).to(torch::kCPU);
    correct += predicted.eq(batch.labels).sum().item<int64_t>();
  }
  return static_cast<double>(correct) / static_cast<double>(count);
}

TrainReport train_demo(Model& model, const TrainOptions& o, const TrainProgress& progress) {
  if (o.steps < 1) throw usage_error("--steps: expected >= 1, got " + std::to_string(o.steps));
  if (o.average_steps < 0) {
    throw usage_error("--average-steps: expected >= 0, got " + std::to_string(o.average_steps));
  }
  if (o.batch < 1) throw usage_error("--batch: expected >= 1, got " + std::to_string(o.batch));
  if (!(o.lr > 0)) throw usage_error("--lr: expected > 0");
  if (!(o.average_lr > 0)) throw usage_error("--average-lr: expected > 0");
  const auto start = std::chrono::steady_clock::now();
  randomize_weights(model, o.seed);
  {
    // Down to PyTorch's default scale (bound 1/sqrt(fan_in) instead of He's sqrt(6/fan_in)):
    // behind BatchNorm the scale does not change the function, but Adam's steps are relative
    // to it, and the smaller scale trains several times faster here.
    torch::NoGradGuard no_grad;
    for (auto& p : model.module().parameters()) {
      if (p.dim() >= 2) p.mul_(1.0 / std::sqrt(6.0));
    }
  }
  TrainReport report;
  const int64_t total = o.steps + o.average_steps;
  {
    TrainingGuard training(model.module());
    torch::manual_seed(o.seed);
    const auto pre = demo_preprocess();
    double loss_sum = 0, correct_sum = 0;
    int64_t window = 0;
    for (const bool max_pooling : {true, false}) {
      const int64_t steps = max_pooling ? o.steps : o.average_steps;
      const double lr0 = max_pooling ? o.lr : o.average_lr;
      const int64_t first = max_pooling ? 0 : o.steps;
      torch::optim::Adam optimizer(model.module().parameters(), torch::optim::AdamOptions(lr0));
      for (int64_t step = 0; step < steps; ++step) {
        // Cosine decay to zero (Loshchilov and Hutter 2017, without restarts).
        const double lr = lr0 * 0.5 * (1 + std::cos(M_PI * static_cast<double>(step) /
                                                    static_cast<double>(steps)));
        for (auto& group : optimizer.param_groups()) {
          static_cast<torch::optim::AdamOptions&>(group.options()).lr(lr);
        }
        // Scene seeds continue across the phases, so every batch is new.
        const auto batch = make_scenes(
            (o.seed << 32) + static_cast<uint64_t>((first + step) * o.batch), o.batch, {o.size});
        const auto x = normalize(batch.images, pre);
        at::Tensor logits;
        if (max_pooling) {
          const auto features = model.forward(x, {"features"}).taps.at("features");
          logits = model.forward_from(
              "pool", std::get<0>(torch::adaptive_max_pool2d(features, {1, 1})));
        } else {
          logits = model.forward(x).output;
        }
        const auto loss = torch::nn::functional::cross_entropy(logits, batch.labels);
        optimizer.zero_grad();
        loss.backward();
        optimizer.step();
        // Running statistics over the last 50 steps.
        if (window == 50) loss_sum = correct_sum = 0, window = 0;
        loss_sum += loss.item<double>();
        correct_sum += logits.argmax(1).eq(batch.labels).to(torch::kDouble).mean().item<double>();
        ++window;
        report.final_loss = loss_sum / static_cast<double>(window);
        if (progress && !progress(first + step + 1, total, report.final_loss,
                                  correct_sum / static_cast<double>(window))) {
          throw Error("training cancelled at step " + std::to_string(first + step + 1));
        }
      }
    }
  }
  report.steps = total;
  report.accuracy = held_out_accuracy(model, o.eval_count, o.size);
  report.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::string data_path(const std::string& relative) {
  namespace fs = std::filesystem;
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("CNNVIS_DATA")) candidates.push_back(env);
  candidates.push_back(CNNVIS_INSTALL_DATA_DIR);
  candidates.push_back(CNNVIS_SOURCE_DATA_DIR);
  for (const auto& dir : candidates) {
    const auto path = fs::path(dir) / relative;
    if (fs::exists(path)) return path.string();
  }
  throw Error("cnnvis data " + relative + " is in none of " + std::string(CNNVIS_INSTALL_DATA_DIR) +
              ", " + CNNVIS_SOURCE_DATA_DIR + " or $CNNVIS_DATA (set CNNVIS_DATA to the "
              "source tree's data/ folder)");
}

std::string demo_weights_path() {
  try {
    return data_path("models/demo.safetensors");
  } catch (const Error&) {
    throw Error("the demo model's weights (models/demo.safetensors) are in none of " +
                std::string(CNNVIS_INSTALL_DATA_DIR) + ", " + CNNVIS_SOURCE_DATA_DIR +
                " or $CNNVIS_DATA; run `cnnvis train-demo --out data/models/demo.safetensors`");
  }
}

}  // namespace cnnvis::demo
