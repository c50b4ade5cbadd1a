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
#include <algorithm>
#include <map>

#include "cnnvis/error.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/methods/lrp.hpp"
#include "cnnvis/synthesis.hpp"
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

// Every registered method (or those of `only`) gives the same raw result and extras on both
// models (integrated gradients' delta, the upsampled maps). The multi-pass methods run with
// few passes; `params` adds or overrides a method's parameters.
void expect_every_method_equal(Model& script, Model& zoo, const at::Tensor& input,
                               const std::map<std::string, MethodParams>& params,
                               const std::vector<std::string>& only = {}) {
  std::map<std::string, MethodParams> small{
      {"integrated-gradients", {{"steps", "4"}}}, {"smoothgrad", {{"samples", "3"}}},
      {"occlusion", {{"window", "32"}, {"stride", "16"}}}};
  for (const auto& [name, p] : params) small[name] = p;
  for (const auto& info : methods()) {
    if (!only.empty() && std::find(only.begin(), only.end(), info.name) == only.end()) continue;
    SCOPED_TRACE(info.name);
    const auto it = small.find(info.name);
    auto method = info.make(it == small.end() ? MethodParams{} : it->second);
    const auto target = Target::class_logit(3);
    const auto ra = method->explain(script, input, target);
    const auto rb = method->explain(zoo, input, target);
    EXPECT_LT(relative_error(ra.raw, rb.raw), 1e-9);
    EXPECT_EQ(ra.extras.size(), rb.extras.size());
    for (const auto& [key, value] : rb.extras) {
      ASSERT_TRUE(ra.extras.count(key)) << key;
      EXPECT_LT(relative_error(ra.extras.at(key), value), 1e-9) << key;
    }
  }
}

// LRP with three composites (and its rule table, line by line), LRP at a layer, and lucid's
// synthesis (redirected ReLU, the forward pass stopped at the objective's layer) give what the
// zoo model gives.
void expect_lrp_and_synthesis_equal(Model& script, Model& zoo, const std::string& lrp_layer,
                                    const std::string& filter_layer) {
  ASSERT_FALSE(script.graph().empty()) << script.graph_problem();
  const auto x = torch::randn({1, 3, 64, 64}, at::make_generator<at::CPUGeneratorImpl>(5))
                     .to(torch::kDouble);
  for (const char* composite : {"epsilon-plus-flat", "epsilon-gamma-box", "epsilon-alpha2-beta1"}) {
    SCOPED_TRACE(composite);
    const MethodParams params{{"composite", composite}};
    EXPECT_EQ(lrp_rule_table(script, parse_lrp_options(params)),
              lrp_rule_table(zoo, parse_lrp_options(params)));
    auto lrp = find_method("lrp").make(params);
    EXPECT_LT(relative_error(lrp->attribute(script, x, Target::class_logit(3)),
                             lrp->attribute(zoo, x, Target::class_logit(3))), 1e-9);
  }
  auto at_layer = find_method("lrp").make({{"layer", lrp_layer}});
  EXPECT_LT(relative_error(at_layer->attribute(script, x, Target::class_logit(3)),
                           at_layer->attribute(zoo, x, Target::class_logit(3))), 1e-9);
  SynthesisOptions o = lucid_preset();
  o.steps = 3;
  o.size = 48;
  o.redirected_relu_steps = 2;
  const auto target = filter_batch_target(filter_layer, {2, 7});
  const auto a = synthesize(script, target, 2, o);
  const auto b = synthesize(zoo, target, 2, o);
  EXPECT_LT(relative_error(a.image, b.image), 1e-9);
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
    // forward_for_tap_gradients: the graph starts at the first tap (a leaf); the gradients
    // with respect to the taps are those of a pass whose input requires grad.
    {
      const std::vector<std::string> grad_taps{"layer4", "layer2"};
      const auto xg = x.detach().requires_grad_(true);
      const auto reference = zoo->forward(xg, grad_taps);
      const auto expected = torch::autograd::grad({reference.output.select(1, 3).sum()},
                                                  {reference.taps.at("layer2"),
                                                   reference.taps.at("layer4")});
      for (Model* m : {script.get(), zoo.get()}) {
        const auto r = m->forward_for_tap_gradients(x, grad_taps);
        EXPECT_TRUE(r.taps.at("layer2").requires_grad());
        EXPECT_FALSE(r.taps.at("layer2").grad_fn()) << "layer2 is not a leaf";
        EXPECT_TRUE(r.taps.at("layer4").grad_fn()) << "layer4 does not depend on layer2";
        const auto grads = torch::autograd::grad(
            {r.output.select(1, 3).sum()}, {r.taps.at("layer2"), r.taps.at("layer4")});
        EXPECT_LT(relative_error(grads[0], expected[0]), 1e-12);
        EXPECT_LT(relative_error(grads[1], expected[1]), 1e-12);
      }
    }

    // Every registered method with its extras (integrated gradients' delta, the upsampled
    // maps), on the scripted model (one image); the traced one runs a gradient, a CAM and a
    // perturbation method on both images.
    const bool scripted = std::string(file) == "resnet18_script.pt";
    expect_every_method_equal(*script, *zoo, scripted ? x.slice(0, 0, 1) : x,
                              {{"score-cam", {{"layer", "layer2.0.conv1"}}}},
                              scripted ? std::vector<std::string>{}
                                       : std::vector<std::string>{"vanilla", "grad-cam++",
                                                                  "ablation-cam"});
  }
}

// The layer graph read from the TorchScript code (Model::graph()): LRP and synthesis (lucid's
// redirected ReLU, the forward pass stopped at the objective's layer) give what the zoo model
// gives, and the rule table is the zoo's, layer by layer. DenseNet's concatenation is refused
// with the operation and its layer.
TEST(Script, LayerGraphOfAResNetGivesTheZoosLrpAndSynthesis) {
  for (const char* file : {"resnet18_script.pt", "resnet18_trace.pt"}) {
    SCOPED_TRACE(file);
    auto [script, zoo] = resnet18(file);
    expect_lrp_and_synthesis_equal(*script, *zoo, "layer2", "layer3.1.conv1");
  }
  auto densenet = load_script_model(models_dir() + "/densenet121_script.pt");
  EXPECT_TRUE(densenet->graph().empty());
  expect_error([&] { find_method("lrp").make({})->attribute(*densenet, torch::zeros({1, 3, 32, 32}),
                                                           Target::class_logit(0)); },
               "densenet121_script.pt: its layer graph is not a chain of Conv2d, Linear, "
               "BatchNorm2d, ReLU, pooling, flatten and dropout layers with residual additions "
               "(ResNet, VGG, AlexNet): aten::cat (layer 'features.denseblock4') is not one of them");
  // Lucid's redirected ReLU needs no graph: every aten::relu of the model redirects.
  SynthesisOptions o = lucid_preset();
  o.steps = 2;
  o.size = 32;
  o.redirected_relu_steps = 2;
  const auto s = synthesize(*densenet, filter_batch_target("features.denseblock1", {0}), 1, o);
  EXPECT_TRUE(torch::isfinite(s.image).all().item<bool>());
}

// A model without a layer graph stops after the last tap an objective reads (forward_taps):
// the same taps as the whole pass, no output; so DenseNet-121 takes a 16 px image for a
// layer objective, where the whole pass fails (its third transition pools a 1x1 map), and
// synthesis of a filter there runs.
TEST(Script, TapsAloneStopAfterTheLastTap) {
  auto densenet = load_script_model(models_dir() + "/densenet121_script.pt");
  {
    torch::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(4);
    const auto x = torch::randn({1, 3, 64, 64}, gen);
    const std::vector<std::string> taps = {"features.denseblock2", "features.conv0"};
    const auto whole = densenet->forward(x, taps);
    const auto alone = densenet->forward_taps(x, taps);
    EXPECT_FALSE(alone.output.defined());
    for (const auto& t : taps) {
      const double scale = whole.taps.at(t).abs().max().item<double>();
      EXPECT_TRUE(torch::allclose(alone.taps.at(t), whole.taps.at(t), 0, 1e-6 * scale)) << t;
    }
    const auto small = torch::randn({1, 3, 16, 16}, gen);
    EXPECT_ANY_THROW(densenet->forward(small));
    EXPECT_EQ(densenet->forward_taps(small, {"features.denseblock2"})
                  .taps.at("features.denseblock2")
                  .sizes(),
              (at::IntArrayRef{1, 512, 2, 2}));
  }
  SynthesisOptions o = filter_preset();
  o.steps = 2;
  o.size = 16;
  const auto s = synthesize(*densenet, filter_batch_target("features.denseblock2", {0}), 1, o);
  EXPECT_EQ(s.image.sizes(), (at::IntArrayRef{1, 3, 16, 16}));
  EXPECT_TRUE(torch::isfinite(s.image).all().item<bool>());
}

// torchvision's VGG11-BN scripted with the zoo's seeded weights (530 MB, so not in the unit
// suite: tests/script_files_test.sh writes it to a temporary folder and runs this test alone)
// equals the native zoo model: outputs and taps, forward_from at every resumable layer, every
// method, LRP (batch norm merged into the convolution before it) and synthesis.
TEST(ScriptFiles, Vgg11BnScriptedEqualsTheZooModel) {
  const char* dir = std::getenv("CNNVIS_SCRIPT_FILES_DIR");
  ASSERT_TRUE(dir) << "run through tests/script_files_test.sh (CTest script_files), which sets "
                      "CNNVIS_SCRIPT_FILES_DIR";
  auto script = load_script_model(std::string(dir) + "/vgg11_bn_script.pt");
  auto zoo = make_model("vgg11_bn");
  randomize_weights(*zoo, 1234);
  script->module().to(torch::kDouble);
  zoo->module().to(torch::kDouble);
  EXPECT_EQ(script->num_classes(), 1000);
  std::map<std::string, LayerInfo> layers;
  for (const auto& l : script->layers()) layers[l.name] = l;
  const auto x = torch::randn({1, 3, 64, 64}, at::make_generator<at::CPUGeneratorImpl>(7))
                     .to(torch::kDouble);
  std::vector<std::string> taps;
  for (const auto& l : zoo->layers()) {
    ASSERT_TRUE(layers.count(l.name)) << l.name;
    EXPECT_EQ(layers[l.name].type, l.type) << l.name;
    EXPECT_EQ(layers[l.name].parameters, l.parameters) << l.name;
    // Every layer of the chain is a cut point of the graph too.
    EXPECT_EQ(layers[l.name].resumable, l.resumable) << l.name;
    taps.push_back(l.name);
  }
  const auto a = script->forward(x, taps);
  const auto b = zoo->forward(x, taps);
  EXPECT_LT(relative_error(a.output, b.output), 1e-12);
  for (const auto& t : taps) {
    EXPECT_LT(relative_error(a.taps.at(t), b.taps.at(t)), 1e-12) << t;
    if (layers[t].resumable) {
      EXPECT_LT(relative_error(script->forward_from(t, b.taps.at(t)), b.output), 1e-12) << t;
    }
  }
  // Score-CAM on the first block (64 channels, not the last block's 512).
  expect_every_method_equal(*script, *zoo, x, {{"score-cam", {{"layer", "features.2"}}}});
  expect_lrp_and_synthesis_equal(*script, *zoo, "features.14", "features.11");
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

// Architectures the zoo lacks, scripted by save_torchscript.py with cnnvis_random_weights,
// against numbers of Captum 0.8.0 and pytorch-grad-cam 1.5.5 for the same eager models
// (tests/fixtures/script/, tests/python/make_script_fixtures.py): dense concatenations,
// ReLU6, SiLU and squeeze-excitation, LayerNorm/GELU/permutes, a NamedTuple output, a dict
// output with a region target. Guided backprop guides every ReLU (modules and F.relu) and
// keeps the plain gradient of every other activation: for the models without a ReLU it is
// the vanilla gradient (asserted so by the generator, against Captum's GuidedBackprop). The
// fixtures are float32 files of float64 results (a relative 6e-8): hence 1e-6.
TEST(Script, ArchitecturesMatchCaptumAndPytorchGradCam) {
  struct Case {
    const char* name;
    int64_t target;
    const char* cam_layer;
    bool has_relu, segmentation;
  };
  const Case cases[] = {{"densenet121", 4, "features.denseblock3", true, false},
                        {"mobilenet_v2", 3, "features.13", false, false},
                        {"efficientnet_b0", 4, "features.3", false, false},
                        {"convnext_tiny", 3, "features.3", false, false},
                        {"inception_v3", 3, "Mixed_6e", true, false},
                        {"lraspp_mobilenet_v3_large", 1, "classifier.cbr", true, true}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto model = load_script_model(models_dir() + "/" + c.name + "_script.pt");
    model->module().to(torch::kDouble);
    auto fixture = [&](const std::string& what) {
      return load_npy(std::string(CNNVIS_FIXTURES) + "/script/" + c.name + "_" + what + ".npy")
          .to(torch::kDouble);
    };
    const auto x = fixture("x");
    Target target = Target::class_logit(c.target);
    if (c.segmentation) {
      torch::NoGradGuard no_grad;
      const auto out = model->forward(x).output;
      ASSERT_EQ(out.sizes(), (at::IntArrayRef{1, 4, 32, 32}));
      const auto mask = predicted_region(out, c.target);
      EXPECT_EQ(mask.sum().item<double>(), 939);  // the generator's count
      target = Target::region_logit(c.target, mask);
    } else {
      torch::NoGradGuard no_grad;
      EXPECT_LT(relative_error(model->forward(x).output, fixture("logits")), 1e-6);
    }
    auto run = [&](const char* method, MethodParams params = {}) {
      return find_method(method).make(params)->attribute(*model, x, target);
    };
    EXPECT_LT(relative_error(run("vanilla"), fixture("vanilla")), 1e-6);
    EXPECT_LT(relative_error(run("guided-backprop"), fixture(c.has_relu ? "guided" : "vanilla")),
              1e-6);
    EXPECT_LT(relative_error(run("integrated-gradients", {{"steps", "8"}}), fixture("ig")), 1e-6);
    EXPECT_LT(relative_error(run("grad-cam", {{"layer", c.cam_layer}}), fixture("gradcam")),
              1e-6);
  }
}

// What `cnnvis layers` says: what the model returns and where the logits are, and which
// activations the ReLU modes change (every ReLU, F.relu included) and which keep their gradient.
TEST(Script, ModelsSayWhatTheyReturnAndWhichActivationsTheModesChange) {
  const std::string dir = models_dir();
  auto inception = load_script_model(dir + "/inception_v3_script.pt");
  EXPECT_EQ(inception->describe_output(),
            "a tuple of 2 [0 (logits): a tensor [1, 1000]; 1 (aux_logits): NoneType]; the "
            "logits: its first tensor, [1, 1000]");
  // torchvision's BasicConv2d calls F.relu: 94 of them, no ReLU module.
  EXPECT_EQ(inception->describe_activations(),
            "guided-backprop and deconvnet change 94 ReLUs of the graph");
  EXPECT_EQ(load_script_model(dir + "/mobilenet_v2_script.pt")->describe_activations(),
            "guided-backprop and deconvnet change 0 ReLUs of the graph; these keep their plain "
            "gradient: 35 hardtanh/ReLU6");
  auto lraspp = load_script_model(dir + "/lraspp_mobilenet_v3_large_script.pt");
  EXPECT_EQ(lraspp->describe_output(),
            "a dict {'out': a tensor [1, 4, 224, 224]}; the logits: its first tensor, "
            "[1, 4, 224, 224]");
  EXPECT_EQ(lraspp->describe_activations(),
            "guided-backprop and deconvnet change 20 ReLUs of the graph; these keep their plain "
            "gradient: 20 Hardswish, 8 Hardsigmoid, 1 sigmoid");
  EXPECT_EQ(load_script_model(dir + "/resnet18_script.pt")->describe_output(),
            "a tensor [1, 1000], the logits");
  ScriptOptions options;
  options.output = "aux_logits";
  expect_error([&] { load_script_model(dir + "/inception_v3_script.pt", options); },
               "--output aux_logits: that element of the model's output is NoneType, not a "
               "tensor");
  options.output = "logits";
  EXPECT_EQ(load_script_model(dir + "/inception_v3_script.pt", options)->num_classes(), 1000);
}

TEST(Script, FilesThatAreNotTorchScriptModelsAreRefused) {
  const std::string dir = models_dir();
  EXPECT_TRUE(is_torchscript_file(dir + "/resnet18_script.pt"));
  EXPECT_FALSE(is_torchscript_file(dir + "/resnet18_state_dict.pth"));
  expect_error([&] { load_script_model(dir + "/resnet18_state_dict.pth"); },
               "resnet18_state_dict.pth: a PyTorch zip without TorchScript code (a state_dict");
  expect_error([&] { load_script_model(dir + "/resnet18_frozen.pt"); },
               "resnet18_frozen.pt: no submodule is called in forward (a frozen module");
  // A file whose code calls an operator this LibTorch lacks (as one saved by a newer PyTorch).
  expect_error([&] { load_script_model(dir + "/newer_op.pt"); },
               "newer_op.pt: cannot load the TorchScript model (Unknown builtin op: "
               "aten::sub_from_a_newer_pytorch.); it was probably saved by a newer PyTorch");
  const std::string text = dir + "/not_a_model.txt";
  std::ofstream(text) << "hello";
  expect_error([&] { load_script_model(text); }, "not_a_model.txt: not a TorchScript archive");
  expect_error([&] { load_script_model(dir + "/missing.pt"); }, "missing.pt");
  expect_error([&] { load_script_model(dir); }, dir);
}

}  // namespace
}  // namespace cnnvis
