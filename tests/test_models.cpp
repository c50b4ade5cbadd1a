// The zoo against torchvision: names, shapes and logits (fixtures from
// tests/python/make_zoo_fixtures.py), and the model contract (taps, forward_from, ReLU modes).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cnnvis/error.hpp"
#include "cnnvis/models/zoo.hpp"

namespace cnnvis {
namespace {

const nlohmann::json& zoo_fixture() {
  static const nlohmann::json j = [] {
    std::ifstream in(std::string(CNNVIS_FIXTURES) + "/zoo.json");
    return nlohmann::json::parse(in);
  }();
  return j;
}

torch::Tensor fixture_input(int64_t size) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(zoo_fixture()["input_seed"].get<int64_t>());
  return (torch::rand({1, 3, size, size}, gen) * 4 - 2).to(torch::kDouble);
}

class ZooTest : public ::testing::TestWithParam<std::string> {};

TEST_P(ZooTest, StateDictNamesAndShapesAreTorchvisions) {
  auto model = make_model(GetParam());
  std::map<std::string, std::vector<int64_t>> ours;
  for (const auto& p : model->module().named_parameters()) ours[p.key()] = p.value().sizes().vec();
  for (const auto& b : model->module().named_buffers()) ours[b.key()] = b.value().sizes().vec();
  const auto& keys = zoo_fixture()["models"][GetParam()]["keys"];
  ASSERT_EQ(ours.size(), keys.size());
  for (const auto& entry : keys) {
    const auto name = entry[0].get<std::string>();
    ASSERT_TRUE(ours.count(name)) << name;
    EXPECT_EQ(ours[name], entry[1].get<std::vector<int64_t>>()) << name;
  }
}

TEST_P(ZooTest, LogitsEqualTorchvisionsForTheSameWeights) {
  const auto& ref = zoo_fixture()["models"][GetParam()];
  auto model = make_model(GetParam());
  randomize_weights(*model, zoo_fixture()["seed"].get<uint64_t>());
  model->module().to(torch::kDouble);
  torch::InferenceMode guard;
  const auto logits = model->forward(fixture_input(zoo_fixture()["size"].get<int64_t>()))
                          .output[0];
  const auto head = ref["logits_head"].get<std::vector<double>>();
  const double scale = ref["logits_abs_sum"].get<double>() / 1000.0;
  for (size_t i = 0; i < head.size(); ++i) {
    EXPECT_NEAR(logits[i].item<double>(), head[i], 1e-9 * scale) << "logit " << i;
  }
  EXPECT_NEAR(logits.sum().item<double>(), ref["logits_sum"].get<double>(), 1e-7 * scale);
  EXPECT_NEAR(logits.abs().sum().item<double>(), ref["logits_abs_sum"].get<double>(),
              1e-7 * scale);
  EXPECT_EQ(logits.argmax().item<int64_t>(), ref["argmax"].get<int64_t>());
}

std::vector<std::string> torchvision_names() {
  auto names = model_names();
  names.erase(std::remove(names.begin(), names.end(), "demo"), names.end());
  return names;
}

INSTANTIATE_TEST_SUITE_P(AllModels, ZooTest, ::testing::ValuesIn(torchvision_names()));

TEST(Model, UnknownArchitectureNamesTheClosest) {
  try {
    make_model("vgg61");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("vgg16"), std::string::npos) << e.what();
  }
}

TEST(Model, UnknownLayerListsTheClosestNames) {
  auto model = make_model("vgg16");
  try {
    model->forward(torch::zeros({1, 3, 32, 32}), {"features.299"});
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("features.29"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cnnvis layers"), std::string::npos) << msg;
  }
}

TEST(Model, TapsHaveTorchvisionShapesAndNames) {
  auto model = make_model("resnet18");
  randomize_weights(*model, 1);
  torch::NoGradGuard no_grad;
  auto r = model->forward(torch::randn({2, 3, 64, 64}),
                          {"layer4", "layer4.1", "layer3.0.downsample.0", "layer1.0.conv2", "fc"});
  EXPECT_EQ(r.taps.at("layer4").sizes().vec(), (std::vector<int64_t>{2, 512, 2, 2}));
  EXPECT_TRUE(r.taps.at("layer4").equal(r.taps.at("layer4.1")));
  EXPECT_EQ(r.taps.at("layer3.0.downsample.0").sizes().vec(),
            (std::vector<int64_t>{2, 256, 4, 4}));
  EXPECT_EQ(r.taps.at("layer1.0.conv2").size(1), 64);
  EXPECT_TRUE(r.taps.at("fc").equal(r.output));
  EXPECT_EQ(model->default_cam_layer(), "layer4");
  EXPECT_EQ(make_model("vgg16")->default_cam_layer(), "features.29");
  EXPECT_EQ(make_model("alexnet")->default_cam_layer(), "features.11");
}

// float32 on purpose (float64 costs 30 s): no fixture, both sides run the same layers on the
// same tensor with the same kernels, so they round alike on any CPU.
TEST(Model, ForwardFromEveryResumableLayerGivesTheSameOutput) {
  for (const std::string arch : {"alexnet", "vgg11_bn", "resnet18", "resnet50"}) {
    auto model = make_model(arch);
    randomize_weights(*model, 3);
    torch::NoGradGuard no_grad;
    const int64_t size = arch == "alexnet" ? 64 : 32;  // AlexNet's pools need >= 63 pixels
    const auto x = torch::randn({1, 3, size, size});
    std::vector<std::string> resumable;
    for (const auto& info : model->layers()) {
      if (info.resumable) resumable.push_back(info.name);
    }
    ASSERT_GT(resumable.size(), 5u);
    auto r = model->forward(x, resumable);
    for (const auto& name : resumable) {
      auto y = model->forward_from(name, r.taps.at(name));
      EXPECT_TRUE(torch::allclose(y, r.output, 1e-5, 1e-5)) << arch << " " << name;
    }
  }
}

TEST(Model, ForwardFromInsideABlockIsRefusedWithResumableNames) {
  auto model = make_model("resnet18");
  try {
    model->forward_from("layer2.1.conv1", torch::zeros({1, 128, 8, 8}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer2.1"), std::string::npos) << e.what();
  }
}

TEST(Model, ParametersAreFrozenAndTheModelIsInEvalMode) {
  auto model = make_model("vgg11_bn");
  for (const auto& p : model->module().parameters()) EXPECT_FALSE(p.requires_grad());
  EXPECT_FALSE(model->module().is_training());
}

TEST(Model, DescribeLayersGivesShapesAndParameterCounts) {
  auto model = make_model("vgg16");
  const auto infos = describe_layers(*model, 224, 224);
  const auto it = std::find_if(infos.begin(), infos.end(),
                               [](const LayerInfo& i) { return i.name == "features.28"; });
  ASSERT_NE(it, infos.end());
  EXPECT_EQ(it->type, "Conv2d");
  EXPECT_EQ(it->shape, (std::vector<int64_t>{1, 512, 14, 14}));
  EXPECT_EQ(it->parameters, 512 * 512 * 9 + 512);
  int64_t total = 0;
  for (const auto& i : infos) {
    if (i.name.find('.') == std::string::npos) total += i.parameters;
  }
  EXPECT_EQ(total, 138357544);  // torchvision's VGG16
}

TEST(Relu, ModesBackpropagateAsThePapersSay) {
  const auto x = torch::tensor({-1.0, 2.0, 3.0, -4.0}).requires_grad_(true);
  const auto g = torch::tensor({5.0, -6.0, 7.0, -8.0});
  auto grad = [&](ReluMode mode) {
    return torch::autograd::grad({relu(x, mode)}, {x}, {g})[0];
  };
  EXPECT_TRUE(grad(ReluMode::kNormal).equal(torch::tensor({0.0, -6.0, 7.0, 0.0})));
  EXPECT_TRUE(grad(ReluMode::kGuided).equal(torch::tensor({0.0, 0.0, 7.0, 0.0})));
  EXPECT_TRUE(grad(ReluMode::kDeconv).equal(torch::tensor({5.0, 0.0, 7.0, 0.0})));
  EXPECT_TRUE(relu(x, ReluMode::kGuided).equal(torch::relu(x)));
}

TEST(Relu, GuardRestoresTheModeAlsoWhenSomethingThrows) {
  auto model = make_model("resnet18");
  randomize_weights(*model, 5);
  const auto x = torch::randn({1, 3, 32, 32}).requires_grad_(true);
  auto gradient = [&] { return torch::autograd::grad({model->forward(x).output[0][0]}, {x})[0]; };
  const auto before = gradient();
  try {
    ReluModeGuard guided(*model, ReluMode::kGuided);
    EXPECT_EQ(model->relu_mode(), ReluMode::kGuided);
    EXPECT_FALSE(gradient().equal(before));
    {
      ReluModeGuard deconv(*model, ReluMode::kDeconv);
      EXPECT_EQ(model->relu_mode(), ReluMode::kDeconv);
    }
    EXPECT_EQ(model->relu_mode(), ReluMode::kGuided);
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_EQ(model->relu_mode(), ReluMode::kNormal);
  EXPECT_TRUE(gradient().equal(before));  // every ReLU is back to normal
}

// Driven by tests/zoo_files_test.sh (ctest -R zoo_files), which writes the files.
TEST(ZooFiles, AllThreeFormatsGiveTorchvisionsLogits) {
  const char* dir = std::getenv("CNNVIS_ZOO_FILES_DIR");
  const char* arch = std::getenv("CNNVIS_ZOO_MODEL");
  if (!dir || !arch) GTEST_SKIP() << "run through `ctest -R zoo_files`, which writes the files";
  const auto& ref = zoo_fixture()["models"][arch];
  const double scale = ref["logits_abs_sum"].get<double>() / 1000.0;
  for (const std::string file : {".zip.pth", ".legacy.pth", ".safetensors"}) {
    auto model = make_model(arch);
    load_weights(*model, std::string(dir) + "/" + arch + file);
    model->module().to(torch::kDouble);
    torch::InferenceMode guard;
    const auto logits = model->forward(fixture_input(zoo_fixture()["size"].get<int64_t>()))
                            .output[0];
    const auto head = ref["logits_head"].get<std::vector<double>>();
    for (size_t i = 0; i < head.size(); ++i) {
      EXPECT_NEAR(logits[i].item<double>(), head[i], 1e-9 * scale) << file << " logit " << i;
    }
    EXPECT_NEAR(logits.abs().sum().item<double>(), ref["logits_abs_sum"].get<double>(),
                1e-7 * scale) << file;
  }
}

}  // namespace
}  // namespace cnnvis
