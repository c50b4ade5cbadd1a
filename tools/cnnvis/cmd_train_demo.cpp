// cnnvis train-demo: train the built-in demo model on synthetic shape scenes and save its
// weights (the committed data/models/demo.safetensors was made by this command).
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/models/weights.hpp"
#include "cnnvis/models/zoo.hpp"
#include "common.hpp"

namespace cnnvis::cli {

void setup_train_demo(CLI::App& app) {
  struct Options {
    demo::TrainOptions train;
    std::string out = "data/models/demo.safetensors";
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "train-demo",
      "train the built-in demo model (`--model demo`) on synthetic shape scenes, print its\n"
      "held-out accuracy and save its weights (deterministic for a seed and thread count)\n"
      "  e.g. cnnvis --threads 2 train-demo --seed 0 --out data/models/demo.safetensors");
  sub->add_option("--seed", o->train.seed, "initial weights and training scenes")
      ->capture_default_str()
      ->check(integer_range(0));
  sub->add_option("--steps", o->train.steps,
                  "phase 1: optimizer steps with global max pooling in place of the model's\n"
                  "average pooling (average pooling alone stays at chance on these scenes)")
      ->capture_default_str()
      ->check(integer_range(1, 10000000));
  sub->add_option("--lr", o->train.lr, "phase 1: Adam's initial learning rate (cosine decay to 0)")
      ->capture_default_str()
      ->check(number_range(0, kInfinity, /*min_open=*/true));
  sub->add_option("--average-steps", o->train.average_steps,
                  "phase 2: steps with the model's own global average pooling (0: none)")
      ->capture_default_str()
      ->check(integer_range(0, 10000000));
  sub->add_option("--average-lr", o->train.average_lr,
                  "phase 2: Adam's initial learning rate (cosine decay to 0)")
      ->capture_default_str()
      ->check(number_range(0, kInfinity, /*min_open=*/true));
  sub->add_option("--batch", o->train.batch, "scenes per step")
      ->capture_default_str()
      ->check(integer_range(1, 4096));
  sub->add_option("--eval-count", o->train.eval_count, "held-out scenes for the accuracy")
      ->capture_default_str()
      ->check(integer_range(1, 100000));
  sub->add_option("--out,-o", o->out, "where to write the weights (safetensors)")
      ->capture_default_str();
  sub->callback([o] {
    // Where the weights go is checked before training (minutes to hours), not after.
    namespace fs = std::filesystem;
    std::error_code ec;
    const fs::path out(o->out);
    if (o->out.empty()) throw usage_error("--out: expected a file name, got nothing");
    if (fs::is_directory(out, ec)) {
      throw usage_error("--out " + o->out + ": is a folder; name a .safetensors file");
    }
    if (!out.parent_path().empty() && !fs::is_directory(out.parent_path(), ec)) {
      throw usage_error("--out " + o->out + ": folder " + out.parent_path().string() +
                        " does not exist");
    }
    auto model = make_model("demo");
    const bool tty = isatty(fileno(stderr));
    auto report = demo::train_demo(*model, o->train, [&](int64_t step, int64_t total,
                                                          double loss, double accuracy) {
      if (tty || step % 100 == 0 || step == total) {
        std::fprintf(stderr, "%strain-demo: step %lld/%lld  loss %.4f  batch accuracy %.3f%s",
                     tty ? "\r" : "", static_cast<long long>(step),
                     static_cast<long long>(total), loss, accuracy, tty ? "" : "\n");
      }
      return true;
    });
    if (tty) std::fprintf(stderr, "\n");
    save_safetensors(o->out, state_dict_of(model->module()));
    std::cout << "held-out accuracy " << report.accuracy << " on " << o->train.eval_count
              << " scenes after " << report.steps << " steps (" << report.seconds
              << " s); wrote " << o->out << "\n";
  });
}

}  // namespace cnnvis::cli
