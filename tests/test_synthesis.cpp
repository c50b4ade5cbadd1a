// Image synthesis: the objective grows (>= 10x its start value), the truncated forward pass
// scores like the full one, results are deterministic, class model images are recognized, and
// bad settings give clear errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/synthesis.hpp"
#include "expect_error.hpp"
#include "tiny_net.hpp"

namespace cnnvis {
namespace {

std::unique_ptr<Model> trained_demo() {
  auto model = make_model("demo");
  load_weights(*model, demo::demo_weights_path());
  return model;
}

TEST(Synthesis, FilterActivationGrowsTenfoldOnATinyModel) {
  testing::TinyNet model;
  auto o = filter_preset();
  o.size = 16;
  o.steps = 40;
  o.clamp_pixels = false;  // TinyNet's inputs are not images
  const auto r = synthesize(model, Target::layer_unit("relu", 1), 1, o);
  const double start = r.initial_score[0].item<double>();
  const double end = r.final_score[0].item<double>();
  EXPECT_GT(end, 0);
  EXPECT_GE(end, 10 * start) << start << " -> " << end;
  ASSERT_EQ(r.objective.size(), 41u);
  EXPECT_DOUBLE_EQ(r.objective.front(), start);
  EXPECT_DOUBLE_EQ(r.objective.back(), end);
  for (const auto& p : model.module().parameters()) EXPECT_FALSE(p.grad().defined());
}

TEST(Synthesis, FilterBatchOnTheDemoModel) {
  auto model = trained_demo();
  auto o = filter_preset();
  o.size = 64;
  o.steps = 100;  // the classic preset's 30 steps are tuned for VGG16 at 224
  o.every = 50;
  const std::vector<int64_t> filters = {0, 5, 9};
  const auto target = filter_batch_target("features.10", filters);
  const auto r = synthesize(*model, target, 3, o);
  EXPECT_EQ(r.image.sizes(), (std::vector<int64_t>{3, 3, 64, 64}));
  for (int64_t i = 0; i < 3; ++i) {
    const double start = r.initial_score[i].item<double>();
    const double end = r.final_score[i].item<double>();
    EXPECT_GT(end, 0) << "filter " << filters[i];
    EXPECT_GE(end, 10 * start) << "filter " << filters[i] << ": " << start << " -> " << end;
  }
  // The truncated forward pass scores as the full model does.
  const auto full = target.score(model->forward(r.image, {"features.10"}));
  EXPECT_TRUE(torch::allclose(full, r.final_score, 1e-5, 1e-6));
  ASSERT_EQ(r.snapshots.size(), 2u);
  EXPECT_EQ(r.snapshots[0].first, 50);
  EXPECT_TRUE(torch::equal(r.snapshots.back().second, r.image));
  // Deterministic for a seed, different for another.
  EXPECT_TRUE(torch::equal(synthesize(*model, target, 3, o).image, r.image));
  o.seed = 1;
  EXPECT_FALSE(torch::equal(synthesize(*model, target, 3, o).image, r.image));
}

// Every class of the demo model, as one batch: each image is classified as its class with
// probability >= 0.9.
TEST(Synthesis, ClassModelImagesAreRecognized) {
  auto model = trained_demo();
  const int64_t classes = model->num_classes();
  std::vector<int64_t> all(classes);
  for (int64_t c = 0; c < classes; ++c) all[c] = c;
  for (const std::string reg : {"l2", "yosinski"}) {
    auto o = class_model_preset(reg);
    o.size = 96;
    o.steps = reg == "l2" ? 60 : 150;  // enough here; the preset's 200 are for larger networks
    const auto r = synthesize(*model, class_log_probability_target(all), classes, o);
    torch::NoGradGuard no_grad;
    // A valid image: every pixel in [0, 1].
    const auto pixels = r.image * torch::tensor({0.229, 0.224, 0.225}).view({1, 3, 1, 1}) +
                        torch::tensor({0.485, 0.456, 0.406}).view({1, 3, 1, 1});
    EXPECT_GE(pixels.min().item<double>(), -1e-6);
    EXPECT_LE(pixels.max().item<double>(), 1 + 1e-6);
    const auto p = torch::softmax(model->forward(r.image).output, 1);
    for (int64_t c = 0; c < classes; ++c) {
      EXPECT_GE(p[c][c].item<double>(), 0.9) << reg << " class " << c;
    }
  }
}

TEST(Synthesis, ClearErrors) {
  auto model = make_model("demo");
  using testing::expect_error;
  auto o = filter_preset();
  o.size = 32;
  expect_error([&] { synthesize(*model, Target::layer_unit("features.99", 0), 1, o); },
               "features.9");
  expect_error([&] { synthesize(*model, filter_batch_target("features.10", {99}), 1, o); },
               "filter 99 of layer features.10: the layer has 64 channels");
  auto zero = o;
  zero.steps = 0;
  expect_error([&] { synthesize(*model, Target::class_logit(0), 1, zero); }, "steps=0");
  auto tiny = o;
  tiny.size = 4;
  expect_error([&] { synthesize(*model, Target::class_logit(0), 1, tiny); }, "larger size");
  auto init = o;
  init.init = "random";
  expect_error([&] { synthesize(*model, Target::class_logit(0), 1, init); }, "uniform, noise");
  expect_error([] { parse_filter_list("3-1"); }, "0-15");
  expect_error([] { class_model_preset("l3"); }, "yosinski");
  EXPECT_EQ(parse_filter_list("0-3,7"), (std::vector<int64_t>{0, 1, 2, 3, 7}));
}

}  // namespace
}  // namespace cnnvis
