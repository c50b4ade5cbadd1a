// The zoo against torchvision: names, shapes and logits (fixtures from
// tests/python/make_zoo_fixtures.py), and the model contract (taps, forward_from, ReLU modes).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <optional>
#include <nlohmann/json.hpp>

#include "cnnvis/error.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/target.hpp"
#include "expect_error.hpp"

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

// Without a gradient the zoo runs its ReLUs and residual sums in place (as torchvision), but
// never on a tensor that someone else holds: a tap, the caller's input, forward_from's
// activation. Every tap equals the one a pass with that tap alone gives, and inputs are kept.
TEST(Model, InPlaceLayersNeverOverwriteTapsOrInputs) {
  for (const std::string arch : {"alexnet", "vgg11", "resnet18", "resnet50"}) {
    SCOPED_TRACE(arch);
    auto model = make_model(arch);
    randomize_weights(*model, 4);
    const int64_t size = arch == "alexnet" ? 64 : 32;
    const auto x = torch::randn({2, 3, size, size});
    const auto x_copy = x.clone();
    std::vector<std::string> names;
    for (const auto& info : model->layers()) {
      if (info.type != "Sequential") names.push_back(info.name);
    }
    for (int mode = 0; mode < 2; ++mode) {  // NoGradGuard, InferenceMode
      std::optional<torch::NoGradGuard> no_grad;
      std::optional<c10::InferenceMode> inference;
      if (mode == 0) no_grad.emplace(); else inference.emplace();
      const auto plain = model->forward(x).output;
      const auto all = model->forward(x, names);
      EXPECT_TRUE(torch::equal(all.output, plain));
      for (size_t k = mode; k < names.size(); k += 5) {  // a fifth of them per mode (time)
        const auto alone = model->forward(x, {names[k]}).taps.at(names[k]);
        ASSERT_TRUE(torch::equal(all.taps.at(names[k]), alone)) << names[k];
      }
      // A pre-activation tap keeps its negative values.
      const std::string pre = arch.rfind("resnet", 0) == 0 ? "layer1.0.bn2" : "features.0";
      EXPECT_LT(model->forward(x, {pre}).taps.at(pre).min().item<double>(), 0);
      EXPECT_TRUE(torch::equal(x, x_copy));
      // forward_from's activation is the caller's: left as it was.
      const std::string from = arch.rfind("resnet", 0) == 0 ? "bn1" : "features.0";
      const auto a = all.taps.at(from).clone();
      const auto a_copy = a.clone();
      EXPECT_TRUE(torch::equal(model->forward_from(from, a), plain));
      EXPECT_TRUE(torch::equal(a, a_copy));
    }
  }
}

// While a gradient is recorded the zoo's ReLUs and sums also run in place (as PyTorch's
// in-place ReLU): the input gradient equals the one of a pass that taps every layer (taps
// keep every tensor, so nothing runs in place there), bit for bit.
TEST(Model, InPlaceLayersKeepTheGradient) {
  for (const std::string arch : {"vgg11", "resnet18", "resnet50"}) {
    SCOPED_TRACE(arch);
    auto model = make_model(arch);
    randomize_weights(*model, 6);
    model->module().to(torch::kDouble);
    std::vector<std::string> names;
    for (const auto& info : model->layers()) {
      if (info.type != "Sequential") names.push_back(info.name);
    }
    const auto x = torch::randn({2, 3, 32, 32}, torch::kDouble);
    auto grad = [&](bool tapped) {
      const auto xi = x.clone().requires_grad_(true);
      const auto out = tapped ? model->forward(xi, names).output : model->forward(xi).output;
      return torch::autograd::grad({out.select(1, 3).sum()}, {xi})[0];
    };
    EXPECT_TRUE(torch::equal(grad(false), grad(true)));
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

// --labels FILE: one name per line; a blank last line and CRLF are fine; an empty name, a name
// given twice, binary data and a count other than the model's classes are refused.
TEST(Model, ClassNamesFromAFile) {
  const std::string dir = ::testing::TempDir();
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + name, std::ios::binary) << text;
    return dir + name;
  };
  EXPECT_EQ(read_class_names(write("l1.txt", "cat\r\ndog\r\n")),
            (std::vector<std::string>{"cat", "dog"}));
  EXPECT_EQ(read_class_names(write("l2.txt", "a b\nc")), (std::vector<std::string>{"a b", "c"}));
  using testing::expect_error;
  expect_error([&] { read_class_names(write("l3.txt", "a\n\nb\n")); },
               "l3.txt:2: an empty class name");
  expect_error([&] { read_class_names(write("l4.txt", "a\nb\na\n")); },
               "l4.txt:3: 'a' is already the name of line 1");
  expect_error([&] { read_class_names(write("l5.txt", std::string("a\0b", 3))); },
               "l5.txt:1: not a class name");
  expect_error([&] { read_class_names(write("l6.txt", "")); }, "l6.txt: no class names");
  expect_error([&] { read_class_names(dir + "missing.txt"); }, "missing.txt: cannot read");
  auto model = make_model("demo");
  const auto own = model->class_names();
  ASSERT_EQ(own.size(), static_cast<size_t>(model->num_classes()));
  std::vector<std::string> names;
  for (int64_t i = 0; i < model->num_classes(); ++i) names.push_back("c" + std::to_string(i));
  model->set_class_names(names);
  EXPECT_EQ(model->class_names(), names);
  expect_error([&] { model->set_class_names({"x"}); },
               "1 class names for demo, which has " + std::to_string(names.size()) + " classes");
  EXPECT_EQ(make_model("resnet18")->class_names().size(), 1000u);  // ImageNet's by default
}

// A dense output [N, C, H, W]: the region target sums a class's logits over a mask (by hand
// here); predicted_region is the argmax; a class target on it is refused with a pointer to the
// region target, and a mask of another size is refused.
TEST(Target, RegionOfADenseOutput) {
  ForwardResult r;
  r.output = torch::randn({2, 3, 4, 5}, at::make_generator<at::CPUGeneratorImpl>(3));
  auto mask = torch::zeros({4, 5});
  mask.index_put_({torch::indexing::Slice(1, 3), torch::indexing::Slice(0, 2)}, 1);
  const auto score = Target::region_logit(2, mask).score(r);
  ASSERT_EQ(score.sizes(), (at::IntArrayRef{2}));
  for (int64_t i = 0; i < 2; ++i) {
    double expected = 0;
    for (int64_t y = 1; y < 3; ++y) {
      for (int64_t x = 0; x < 2; ++x) expected += r.output[i][2][y][x].item<double>();
    }
    EXPECT_NEAR(score[i].item<double>(), expected, 1e-5);
  }
  EXPECT_EQ(Target::region_logit(2, mask).description(), "class 2 over 4 pixels");
  const auto predicted = predicted_region(r.output.slice(0, 0, 1), 1);
  EXPECT_TRUE(predicted.equal(r.output[0].argmax(0).eq(1).to(torch::kFloat)));
  using testing::expect_error;
  expect_error([&] { Target::class_logit(1).score(r); },
               "is not logits [N, classes] but a dense map (segmentation)");
  expect_error([&] { Target::region_logit(3, mask).score(r); }, "outside the model's 3 classes");
  expect_error([&] { Target::region_logit(0, torch::ones({2, 2})).score(r); },
               "the region mask is [2, 2] but the model's output is 4x5 pixels");
  ForwardResult logits;
  logits.output = torch::zeros({1, 10});
  expect_error([&] { Target::region_logit(0, mask).score(logits); }, "needs a dense output");
}

// The TorchScript interpreter's error: the model's own message, not the banner.
TEST(Error, LineOfAnInterpreterErrorIsTheModelsMessage) {
  EXPECT_EQ(error_line("first\nsecond"), "first");
  EXPECT_EQ(error_line("\n \nUnknown builtin op: aten::x.\nmore"), "Unknown builtin op: aten::x.");
  EXPECT_EQ(error_line("The following operation failed in the TorchScript interpreter.\n"
                       "Traceback of TorchScript (most recent call last):\n"
                       "  File \"code/__torch__.py\", line 9, in forward\n"
                       "RuntimeError: Kernel size can't be greater than actual input size\n\n"),
            "Kernel size can't be greater than actual input size");
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
  // Lucid's redirected ReLU, per image (row): row 0 passes some gradient (the plain one);
  // row 1 passes none (every positive input meets a zero gradient), so the gradient passes
  // except where the input is negative and the gradient positive.
  const auto x2 = torch::tensor({{-1.0, 2.0, -3.0}, {-1.0, 2.0, -3.0}}).requires_grad_(true);
  const auto g2 = torch::tensor({{5.0, 6.0, -7.0}, {5.0, 0.0, -7.0}});
  EXPECT_TRUE(torch::autograd::grad({relu(x2, ReluMode::kRedirected)}, {x2}, {g2})[0].equal(
      torch::tensor({{0.0, 6.0, 0.0}, {0.0, 0.0, -7.0}})));
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
