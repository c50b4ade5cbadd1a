// The demo model and its training command's machinery (weights file, determinism, contract).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/models/weights.hpp"
#include "cnnvis/models/zoo.hpp"

namespace cnnvis {
namespace {

TEST(Demo, ModelIsVggStyleWithShapeClassNames) {
  auto model = make_model("demo");
  EXPECT_EQ(model->num_classes(), 8);
  EXPECT_EQ(model->class_names(), demo::shape_classes());
  EXPECT_EQ(model->default_cam_layer(), "features.17");
  const auto infos = describe_layers(*model, demo::kDemoSize, demo::kDemoSize);
  auto find = [&](const std::string& name) {
    return *std::find_if(infos.begin(), infos.end(),
                         [&](const LayerInfo& i) { return i.name == name; });
  };
  EXPECT_EQ(find("features.17").shape, (std::vector<int64_t>{1, 64, 12, 12}));
  EXPECT_EQ(find("classifier.2").shape, (std::vector<int64_t>{1, 8}));
  EXPECT_EQ(make_model("vgg16")->class_names().size(), 1000u);
}

TEST(Demo, TrainingIsDeterministicAndLeavesTheModelFrozen) {
  demo::TrainOptions options;
  options.steps = 2;
  options.average_steps = 1;
  options.batch = 4;
  options.eval_count = 10;
  auto a = make_model("demo");
  auto b = make_model("demo");
  int64_t calls = 0;
  const auto report = demo::train_demo(*a, options, [&](int64_t step, int64_t total, double,
                                                        double) {
    EXPECT_EQ(total, 3);  // both phases
    EXPECT_EQ(step, ++calls);
    return true;
  });
  demo::train_demo(*b, options);
  EXPECT_EQ(calls, 3);
  EXPECT_GE(report.accuracy, 0.0);
  EXPECT_LE(report.accuracy, 1.0);
  const auto sa = state_dict_of(a->module());
  const auto sb = state_dict_of(b->module());
  ASSERT_EQ(sa.size(), sb.size());
  for (size_t i = 0; i < sa.size(); ++i) EXPECT_TRUE(sa[i].second.equal(sb[i].second)) << sa[i].first;
  // Training changed the seeded initial weights, and the contract holds again afterwards.
  auto initial = make_model("demo");
  randomize_weights(*initial, options.seed);
  EXPECT_FALSE(state_dict_of(initial->module())[0].second.equal(sa[0].second));
  for (const auto& p : a->module().parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_FALSE(a->module().is_training());
}

TEST(Demo, CancellingTrainingThrowsAndRestoresTheContract) {
  demo::TrainOptions options;
  options.steps = 5;
  options.batch = 2;
  auto model = make_model("demo");
  EXPECT_THROW(demo::train_demo(*model, options, [](int64_t step, int64_t, double, double) {
    return step < 2;
  }), Error);
  for (const auto& p : model->module().parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_FALSE(model->module().is_training());
  options.steps = 0;
  EXPECT_THROW(demo::train_demo(*model, options), Error);
  options.steps = 1;
  options.average_steps = -1;
  EXPECT_THROW(demo::train_demo(*model, options), Error);
  options.average_steps = 1;
  options.average_lr = 0;
  EXPECT_THROW(demo::train_demo(*model, options), Error);
}

TEST(Demo, SafetensorsWriterRoundTripsThroughTheReader) {
  auto model = make_model("demo");
  randomize_weights(*model, 9);
  const auto path = (std::filesystem::temp_directory_path() / "cnnvis_demo_rt.safetensors")
                        .string();
  save_safetensors(path, state_dict_of(model->module()));
  EXPECT_EQ(detect_weight_format(path), WeightFormat::kSafetensors);
  auto copy = make_model("demo");
  load_weights(*copy, path);
  const auto x = torch::randn({2, 3, 96, 96});
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(model->forward(x).output.equal(copy->forward(x).output));
  std::remove(path.c_str());
}

// The committed weights (data/models/demo.safetensors, made by `cnnvis --threads 2 train-demo
// --seed 0`: 0.970) reach the accuracy the issue asks for on held-out scenes. float32, with a
// criterion robust to its rounding: 0.970 under every kernel setting, and 21 of the 1000
// scenes would have to change their top class to fail.
TEST(Demo, CommittedWeightsReachNinetyFivePercentOnHeldOutScenes) {
  auto model = make_model("demo");
  load_weights(*model, demo::demo_weights_path());
  EXPECT_GE(demo::held_out_accuracy(*model, 1000), 0.95);
}

}  // namespace
}  // namespace cnnvis
