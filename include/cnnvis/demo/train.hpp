#pragma once
// Training the demo model (`cnnvis train-demo`): the small VGG-style "demo" network of the zoo
// on the synthetic shape scenes of cnnvis/demo/scenes.hpp, generated on the fly (every batch is
// new, so there is no over-fitting to a fixed set), then scored on held-out scenes.
#include <cstdint>
#include <functional>
#include <string>

#include "cnnvis/image.hpp"
#include "cnnvis/model.hpp"

namespace cnnvis::demo {

// Held-out scenes start at this seed; training scenes of run seed s use seeds
// (s << 32) + 0, 1, 2, ... (never reaching it).
constexpr uint64_t kHeldOutSeed = uint64_t{1} << 62;
// The scene size the demo model is trained and shown at.
constexpr int64_t kDemoSize = 96;

// Training has two phases, each with its own Adam and cosine decay to 0. The demo model pools
// globally by average (its CAMs then show whole objects), but average pooling from random
// weights stays at chance level on the cluttered scenes: the object's evidence is diluted over
// the 144 positions. So phase 1 replaces the pooling with global max pooling, where the
// strongest local evidence decides and the features learn in minutes; phase 2 fine-tunes the
// whole network with the model's own average pooling.
struct TrainOptions {
  uint64_t seed = 0;        // initial weights (randomize_weights, conv/linear scaled down to
                            // PyTorch's default bound 1/sqrt(fan_in)) and training scenes
  int64_t steps = 2000;     // phase 1: optimizer steps with global max pooling
  double lr = 2e-3;         // phase 1: Adam's initial learning rate, cosine-decayed to 0
  int64_t average_steps = 2500;  // phase 2: steps with the model's global average pooling
  double average_lr = 1e-3;      // phase 2: Adam's initial learning rate, cosine-decayed to 0
  int64_t batch = 32;       // scenes per step
  int64_t size = kDemoSize; // scene side in pixels
  int64_t eval_count = 1000;  // held-out scenes for the final accuracy
};

struct TrainReport {
  double accuracy = 0;    // on eval_count held-out scenes
  double final_loss = 0;  // mean cross-entropy of the last 50 steps
  int64_t steps = 0;      // both phases
  double seconds = 0;
};

// Progress: (step, total steps of both phases, running loss, running accuracy); return false to
// cancel (cnnvis::Error is thrown then).
using TrainProgress = std::function<bool(int64_t, int64_t, double, double)>;

// Trains `model` (make_model("demo")) in place. Deterministic for a fixed seed and thread
// count (CPU float sums can differ between thread counts). Parameters are frozen again and the
// model is in eval mode afterwards.
TrainReport train_demo(Model& model, const TrainOptions& options,
                       const TrainProgress& progress = nullptr);

// Top-1 accuracy on `count` held-out scenes of side `size`.
double held_out_accuracy(Model& model, int64_t count, int64_t size = kDemoSize);

// The ImageNet normalization the demo model is trained with (the CLI's default).
Preprocess demo_preprocess();

// Path of the committed demo weights (data/models/demo.safetensors): $CNNVIS_DATA/models/ if
// set, else the installed share/cnnvis/models/, else the source tree's data/models/. Throws
// cnnvis::Error if none exists, saying how to train it.
std::string demo_weights_path();
// Path of a file or folder of cnnvis's data ("scenes", "images/chelsea.png"), searched in the
// same places. Throws cnnvis::Error if none has it.
std::string data_path(const std::string& relative);

}  // namespace cnnvis::demo
