// TorchScript models (issue 16): torchvision's ResNet-18 scripted and traced by Debian's
// python3-torch (tests/python/save_torchscript.py, at test time, cached in the build folder)
// with the seeded weights of the zoo tests must give what the native zoo model gives: outputs,
// taps, forward_from and the methods' maps. Everything runs in float64, so the comparison does
// not depend on the CPU's kernels (the two models run the same operations in other orders).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/script.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <map>

#include "cnnvis/error.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/models/script.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/target.hpp"
#include "expect_error.hpp"

namespace cnnvis {
namespace {

using testing::expect_error;

const std::string& models_dir() {
  static const std::string dir = [] {
    const std::string out = std::string(CNNVIS_BINARY_DIR) + "/torchscript-models";
    const std::string cmd = "/usr/bin/python3 " + std::string(CNNVIS_SOURCE_DIR) +
                            "/tests/python/save_torchscript.py " + out;
    if (std::system(cmd.c_str()) != 0) ADD_FAILURE() << "generating the models failed: " << cmd;
    return out;
  }();
  return dir;
}

struct Pair {
  std::unique_ptr<Model> script, zoo;
};

Pair resnet18(const std::string& file) {
  Pair p{load_script_model(models_dir() + "/" + file), make_model("resnet18")};
  randomize_weights(*p.zoo, 1234);
  p.script->module().to(torch::kDouble);
  p.zoo->module().to(torch::kDouble);
  return p;
}

// max |a - b| relative to max |b|.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1;
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item<double>();
}

TEST(Script, ResNet18ScriptedAndTracedEqualsTheZooModel) {
  for (const char* file : {"resnet18_script.pt", "resnet18_trace.pt"}) {
    SCOPED_TRACE(file);
    auto [script, zoo] = resnet18(file);
    EXPECT_EQ(script->num_classes(), 1000);
    EXPECT_EQ(script->default_cam_layer(), "layer4");
    // Every layer of the zoo model is one of the script model's; the zoo's resumable layers are
    // resumable, and so is the block's ReLU, whose last call makes the block's output.
    std::map<std::string, LayerInfo> layers;
    for (const auto& l : script->layers()) layers[l.name] = l;
    for (const auto& l : zoo->layers()) {
      ASSERT_TRUE(layers.count(l.name)) << l.name;
      const bool block_relu = l.name.size() > 5 && l.name.substr(l.name.size() - 5) == ".relu" &&
                              l.name.compare(0, 5, "layer") == 0;
      EXPECT_EQ(layers[l.name].resumable, l.resumable || block_relu) << l.name;
      EXPECT_EQ(layers[l.name].parameters, l.parameters) << l.name;
    }
    EXPECT_EQ(layers["layer2.0.downsample"].type, "Sequential");
    EXPECT_EQ(layers["layer2.0"].type, "BasicBlock");
    EXPECT_EQ(layers["layer2.0.conv1"].type, "Conv2d");

    const auto x = torch::randn({2, 3, 64, 64}, at::make_generator<at::CPUGeneratorImpl>(7))
                       .to(torch::kDouble);
    // layer1.0.relu runs twice in its block: both models tap its last call.
    const std::vector<std::string> taps{"layer4", "layer3", "layer3.1.conv2", "layer1.0.relu",
                                        "maxpool", "fc"};
    const auto a = script->forward(x, taps);
    const auto b = zoo->forward(x, taps);
    EXPECT_LT(relative_error(a.output, b.output), 1e-12);
    for (const auto& t : taps) EXPECT_LT(relative_error(a.taps.at(t), b.taps.at(t)), 1e-12) << t;
    EXPECT_LT(relative_error(script->forward_from("layer3", b.taps.at("layer3")), b.output), 1e-12);
    EXPECT_LT(relative_error(script->forward_from("maxpool", b.taps.at("maxpool")), b.output),
              1e-12);
    expect_error([&] { script->forward_from("layer3.1.conv2", b.taps.at("layer3.1.conv2")); },
                 "layer 'layer3.1.conv2' of " + models_dir() + "/" + file + " is not resumable");
    expect_error([&] { script->forward(x, {"layer9"}); }, "unknown layer 'layer9'");

    for (const char* name : {"vanilla", "guided-backprop", "deconvnet", "grad-cam",
                             "grad-cam++", "layer-cam", "ablation-cam", "integrated-gradients"}) {
      SCOPED_TRACE(name);
      auto method = find_method(name).make(
          std::string(name) == "integrated-gradients" ? MethodParams{{"steps", "4"}}
                                                      : MethodParams{});
      const auto target = Target::class_logit(3);
      const auto ra = method->attribute(*script, x, target);
      const auto rb = method->attribute(*zoo, x, target);
      EXPECT_LT(relative_error(ra, rb), 1e-9);
    }
  }
}

// A custom model against PyTorch's own numbers for it (eager mode, float64, written beside the
// model by save_torchscript.py): an in-place ReLU module called twice, a nested submodule
// (body.conv), a functional in-place ReLU, dropout. Taps keep what each module returned
// (stem's output is overwritten in place by the ReLU after it in PyTorch; the hooks cloned it);
// guided backprop guides every ReLU: the module, and torch.relu_ in forward. load_npy reads
// float32, so the references carry float32 rounding (a relative 6e-8): hence 1e-6, while both
// sides compute in float64 (the input is float32-representable).
TEST(Script, CustomModelMatchesPyTorch) {
  const std::string dir = models_dir();
  auto model = load_script_model(dir + "/custom_script.pt");
  const auto x = load_npy(dir + "/custom_x.npy").to(torch::kDouble);
  auto expected = [&](const std::string& name) {
    return load_npy(dir + "/custom_" + name + ".npy").to(torch::kDouble);
  };
  EXPECT_EQ(model->num_classes(), 3);
  const std::vector<std::string> taps{"stem", "act", "body.conv", "body.bn", "fc"};
  const auto r = model->forward(x, taps);
  EXPECT_LT(relative_error(r.output, expected("logits")), 1e-6);
  for (const auto& t : taps) {
    EXPECT_LT(relative_error(r.taps.at(t), expected("tap_" + t)), 1e-6) << t;
  }
  // The ReLU's last call (on the residual sum) cuts the graph; the stem does not (the sum
  // needs its ReLU's output too).
  EXPECT_LT(relative_error(model->forward_from("act", r.taps.at("act")), r.output), 1e-12);
  expect_error([&] { model->forward_from("body.bn", r.taps.at("body.bn")); }, "not resumable");
  const auto target = Target::class_logit(1);
  EXPECT_LT(relative_error(find_method("vanilla").make({})->attribute(*model, x, target),
                           expected("vanilla")), 1e-6);
  EXPECT_LT(relative_error(find_method("guided-backprop").make({})->attribute(*model, x, target),
                           expected("guided")), 1e-6);
}

// A model that returns a dict {"aux": [N, 5, H, W], "logits": [N, 4]}: the first tensor by
// default, a key chosen with ScriptOptions::output (CLI --output), an unknown key refused.
TEST(Script, OutputsAreChosenFromADict) {
  const std::string file = models_dir() + "/tiny_dict_script.pt";
  EXPECT_EQ(load_script_model(file)->num_classes(), 5);
  ScriptOptions options;
  options.output = "logits";
  auto model = load_script_model(file, options);
  EXPECT_EQ(model->num_classes(), 4);
  EXPECT_EQ(model->default_cam_layer(), "head");  // the last 4-D output, not a pooling layer's
  auto module = torch::jit::load(file);
  const auto x = torch::randn({2, 3, 16, 16}, at::make_generator<at::CPUGeneratorImpl>(1));
  const auto expected = module.forward({x}).toGenericDict().at("logits").toTensor();
  EXPECT_TRUE(torch::allclose(model->forward(x).output, expected, 1e-5, 1e-6));
  // The functional ReLU after "body" is a ReLU of the graph: guided backprop changes it.
  auto vanilla = find_method("vanilla").make({})->attribute(*model, x, Target::class_logit(1));
  auto guided =
      find_method("guided-backprop").make({})->attribute(*model, x, Target::class_logit(1));
  EXPECT_FALSE(torch::allclose(vanilla, guided));
  options.output = "nope";
  expect_error([&] { load_script_model(file, options); },
               "--output nope: the model returns a dict {'aux': a tensor [1, 5, 224, 224]; "
               "'logits': a tensor [1, 4]}; give an index or a key of it");
}

TEST(Script, FilesThatAreNotTorchScriptModelsAreRefused) {
  const std::string dir = models_dir();
  EXPECT_TRUE(is_torchscript_file(dir + "/resnet18_script.pt"));
  EXPECT_FALSE(is_torchscript_file(dir + "/resnet18_state_dict.pth"));
  expect_error([&] { load_script_model(dir + "/resnet18_state_dict.pth"); },
               "resnet18_state_dict.pth: a PyTorch zip without TorchScript code (a state_dict");
  expect_error([&] { load_script_model(dir + "/resnet18_frozen.pt"); },
               "resnet18_frozen.pt: no submodule is called in forward (a frozen module");
  const std::string text = dir + "/not_a_model.txt";
  std::ofstream(text) << "hello";
  expect_error([&] { load_script_model(text); }, "not_a_model.txt: not a TorchScript archive");
  expect_error([&] { load_script_model(dir + "/missing.pt"); }, "missing.pt");
  expect_error([&] { load_script_model(dir); }, dir);
}

}  // namespace
}  // namespace cnnvis
