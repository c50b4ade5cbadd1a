// Image synthesis: the objective grows (>= 10x its start value), the truncated forward pass
// scores like the full one, results are deterministic, class model images are recognized, and
// bad settings give clear errors.
// The trained demo model runs in float32, with criteria robust to its rounding: each threshold
// has a margin far beyond what the kernels change (measured under every setting of
// `scripts/test.sh --kernels`, which move results by at most 3%: growth >= 14.8x against 10x,
// probabilities >= 0.998 against 0.9, inversion distances <= 0.038 against 0.05, Deep Dream
// >= 3.7x against 2x, Gram similarity 1.00 -> 0.004 against a 0.05 drop), and comparisons
// between two runs use the same kernels on both sides.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/demo/train.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/models/zoo.hpp"
#include "cnnvis/synthesis.hpp"
#include "expect_error.hpp"
#include "tiny_net.hpp"

namespace cnnvis {
namespace {

// The documented bound on inversion's normalized distance ||Phi(x) - Phi0||^2 / ||Phi0||^2 at
// the demo model's features.6 (README).
constexpr double kInversionBound = 0.05;

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
  const std::vector<int64_t> filters = {0, 7, 9};
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

// A held-out demo scene, normalized: [1, 3, 96, 96], and its label.
std::pair<torch::Tensor, int64_t> demo_scene(uint64_t k) {
  const auto scene = demo::make_scene(demo::kHeldOutSeed + k, {96});
  return {normalize(scene.image, demo::demo_preprocess()).unsqueeze(0), scene.label};
}

int64_t top1(Model& model, const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  return model.forward(x).output.argmax(1).item<int64_t>();
}

// The penalties by hand on a 1x3x2x2 image.
TEST(Synthesis, PenaltiesByHand) {
  const auto x = torch::tensor({1.0, -2.0, 0.5, 0.0,  0.0, 1.0, 1.0, 1.0,  2.0, 0.0, 0.0, -1.0},
                               torch::kDouble).view({1, 3, 2, 2});
  SynthesisOptions o;
  o.l2 = 2;
  o.l1 = 3;
  // mean(x^2) = (1+4+.25 + 3 + 4+1) / 12 = 13.25/12; mean|x| = (3.5 + 3 + 3) / 12 = 9.5/12
  EXPECT_NEAR(synthesis_penalty(x, o).item<double>(), 2 * 13.25 / 12 + 3 * 9.5 / 12, 1e-12);
  SynthesisOptions raw;
  raw.raw_sums = true;
  raw.alpha_weight = 0.5;
  raw.alpha = 6;
  raw.tv_weight = 0.25;
  raw.beta = 2;
  // sum x^6 = 1 + 64 + 1/64 + 3 + 64 + 1 = 133 + 1/64. TV on the top-left pixel of each
  // channel: (x[1,0]-x[0,0])^2 + (x[0,1]-x[0,0])^2 = (0.5-1)^2 + (-2-1)^2 = 9.25; 1 + 1 = 2;
  // (0-2)^2 + (0-2)^2 = 8.
  EXPECT_NEAR(synthesis_penalty(x, raw).item<double>(),
              0.5 * (133 + 1.0 / 64) + 0.25 * (9.25 + 2 + 8), 1e-9);
  // The paper's units: u = x * std * 255, divided by H W B^alpha and H W V^beta, V = B / 6.5.
  SynthesisOptions paper = raw;
  paper.raw_sums = false;
  paper.alpha_bound = 80;
  paper.beta = 1;  // sqrt: (t + 1e-8)^(1/2)
  const auto sd = torch::tensor({0.229, 0.224, 0.225}, torch::kDouble).view({1, 3, 1, 1});
  const auto u = x * sd * 255;
  const double v = 80 / 6.5;
  const auto base = u.slice(2, 0, 1).slice(3, 0, 1);
  const auto t = (u.slice(2, 1, 2).slice(3, 0, 1) - base).pow(2) +
                 (u.slice(2, 0, 1).slice(3, 1, 2) - base).pow(2);
  const double expected = 0.5 * u.abs().pow(6).sum().item<double>() / (4 * std::pow(80.0, 6)) +
                          0.25 * (t + 1e-8).sqrt().sum().item<double>() / (4 * v);
  EXPECT_NEAR(synthesis_penalty(x, paper).item<double>(), expected, 1e-9 * expected);
}

// Neuron, direction and Deep Dream's L2 objectives on a known activation.
TEST(Synthesis, ObjectivesByHand) {
  ForwardResult r;
  r.taps["l"] = torch::arange(2 * 3 * 4 * 5, torch::kFloat).view({2, 3, 4, 5});
  const auto& a = r.taps["l"];
  // Centre of a 4x5 map: (2, 2).
  const auto n = neuron_target("l", {1, 2}).score(r);
  EXPECT_FLOAT_EQ(n[0].item<float>(), a[0][1][2][2].item<float>());
  EXPECT_FLOAT_EQ(n[1].item<float>(), a[1][2][2][2].item<float>());
  EXPECT_FLOAT_EQ(neuron_target("l", {0, 0}, 3, 4).score(r)[1].item<float>(),
                  a[1][0][3][4].item<float>());
  EXPECT_FLOAT_EQ(layer_l2_target("l").score(r)[1].item<float>(),
                  a[1].pow(2).mean().item<float>());
  // Direction: activation vectors parallel to d give cosine 1, orthogonal ones 0.
  ForwardResult q;
  auto act = torch::zeros({2, 3, 2, 2});
  act[0].select(0, 0).fill_(2);  // image 0: every position (2, 0, 0)
  act[0].select(0, 1).fill_(2);  //          now (2, 2, 0), parallel to d
  act[1].select(0, 2).fill_(5);  // image 1: (0, 0, 5), orthogonal to d
  q.taps["l"] = act;
  const auto cos = direction_target("l", torch::tensor({1.0f, 1.0f, 0.0f})).score(q);
  EXPECT_NEAR(cos[0].item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(cos[1].item<double>(), 0.0, 1e-6);
  // Inversion's data term: -w ||a - a0||^2 / ||a0||^2.
  const auto ref = a.slice(0, 0, 1);
  const auto d = inversion_target("l", ref, 2.0).score(r);
  EXPECT_FLOAT_EQ(d[0].item<float>(), 0.0f);
  EXPECT_NEAR(d[1].item<double>(),
              -2.0 * (a[1] - a[0]).pow(2).sum().item<double>() / a[0].pow(2).sum().item<double>(),
              1e-6);
  // Class objectives: on logits [N, C] the class's log-probability or logit; on a dense
  // output [N, C, H, W] their mean over the pixels.
  ForwardResult logits;
  logits.output = torch::tensor({{1.0, 2.0, 0.5}, {0.0, -1.0, 3.0}}, torch::kDouble);
  const auto lp = class_log_probability_target({1, 2}).score(logits);
  EXPECT_NEAR(lp[0].item<double>(), 2.0 - std::log(std::exp(1.0) + std::exp(2.0) + std::exp(0.5)), 1e-12);
  EXPECT_NEAR(class_logit_target({1, 2}).score(logits)[1].item<double>(), 3.0, 1e-12);
  ForwardResult dense;
  dense.output = torch::randn({2, 3, 4, 5}, at::make_generator<at::CPUGeneratorImpl>(1),
                              torch::kDouble);
  const auto& y = dense.output;
  const auto dlp = class_log_probability_target({1, 2}).score(dense);
  const auto dl = class_logit_target({1, 2}).score(dense);
  for (int64_t i = 0; i < 2; ++i) {
    double sum_lp = 0, sum_l = 0;
    for (int64_t h = 0; h < 4; ++h) {
      for (int64_t w = 0; w < 5; ++w) {
        const auto v = y[i].select(1, h).select(1, w);  // [3]
        sum_lp += v[1 + i].item<double>() - v.exp().sum().log().item<double>();
        sum_l += v[1 + i].item<double>();
      }
    }
    EXPECT_NEAR(dlp[i].item<double>(), sum_lp / 20, 1e-12);
    EXPECT_NEAR(dl[i].item<double>(), sum_l / 20, 1e-12);
  }
  testing::expect_error([&] { class_logit_target({3, 0}).score(dense); },
                        "class 3 is outside [0, 3)");
}

// Inversion from an early layer of the trained demo model gives an image the model
// classifies as the original's class, at a small normalized distance.
TEST(Synthesis, InversionOnTheDemoModel) {
  auto model = trained_demo();
  for (uint64_t k : {0, 1}) {
    const auto [x, label] = demo_scene(k);
    ASSERT_EQ(top1(*model, x), label);
    auto io = inversion_preset("paper");
    const auto r = invert(*model, "features.6", x, io);
    const double start = -r.initial_score.item<double>() / io.data_weight;
    const double distance = -r.final_score.item<double>() / io.data_weight;
    EXPECT_LT(distance, kInversionBound) << "scene " << k;
    EXPECT_LT(distance, 0.1 * start) << "scene " << k;
    EXPECT_EQ(top1(*model, r.image), label) << "scene " << k << ", distance " << distance;
  }
}

// Deep Dream over octaves raises the layer's mean squared activation, keeps the image's size
// and valid pixels, and is deterministic.
TEST(Synthesis, DeepDreamOnTheDemoModel) {
  auto model = trained_demo();
  const auto x = demo_scene(2).first;
  auto d = deep_dream_preset("mordvintsev");
  d.octaves = 2;
  d.synthesis.jitter = 8;
  const auto target = layer_l2_target("features.10");
  const auto r = deep_dream(*model, target, x, d);
  EXPECT_EQ(r.image.sizes(), x.sizes());
  EXPECT_EQ(r.objective.size(), 2u * 10u + 1u);
  EXPECT_GE(r.final_score.item<double>(), 2 * r.initial_score.item<double>());
  const auto pixels = r.image * torch::tensor({0.229, 0.224, 0.225}).view({1, 3, 1, 1}) +
                      torch::tensor({0.485, 0.456, 0.406}).view({1, 3, 1, 1});
  EXPECT_GE(pixels.min().item<double>(), -1e-6);
  EXPECT_LE(pixels.max().item<double>(), 1 + 1e-6);
  EXPECT_TRUE(torch::equal(deep_dream(*model, target, x, d).image, r.image));
  // The classic preset: one scale, one filter.
  auto c = deep_dream_preset("classic");
  c.synthesis.steps = 20;
  const auto f = deep_dream(*model, filter_batch_target("features.10", {5}), x, c);
  EXPECT_GE(f.final_score.item<double>(), 2 * f.initial_score.item<double>());
}

// Lucid's parameterization and transforms: the filter's activation grows tenfold, the image is
// valid, and a seed gives the same image.
TEST(Synthesis, FourierParameterizationWithTransforms) {
  auto model = trained_demo();
  auto o = lucid_preset();
  o.size = 64;
  o.steps = 150;  // the preset's 512 steps at lr 0.05 are for larger networks
  o.lr = 0.1;
  o.pad = 4;
  o.jitter = 4;
  const auto target = filter_batch_target("features.10", {5, 9});
  const auto r = synthesize(*model, target, 2, o);
  for (int64_t i = 0; i < 2; ++i) {
    const double start = r.initial_score[i].item<double>();
    const double end = r.final_score[i].item<double>();
    EXPECT_GT(end, 0);
    EXPECT_GE(end, 10 * start) << start << " -> " << end;
  }
  EXPECT_EQ(r.image.sizes(), (std::vector<int64_t>{2, 3, 64, 64}));
  const auto pixels = r.image * torch::tensor({0.229, 0.224, 0.225}).view({1, 3, 1, 1}) +
                      torch::tensor({0.485, 0.456, 0.406}).view({1, 3, 1, 1});
  EXPECT_GE(pixels.min().item<double>(), 0.0);
  EXPECT_LE(pixels.max().item<double>(), 1.0);
  auto short_run = o;
  short_run.steps = 5;
  EXPECT_TRUE(torch::equal(synthesize(*model, target, 2, short_run).image,
                           synthesize(*model, target, 2, short_run).image));
  // The neuron objective through the same engine (without transforms, which move the image
  // under the one unit, and with a small lr: a first step that turns the unit's ReLU off
  // leaves no gradient).
  auto still = short_run;
  still.pad = still.jitter = still.rotate = 0;
  still.scale = 0;
  still.steps = 30;
  still.lr = 0.01;
  const auto n = synthesize(*model, neuron_target("features.10", {5, 9}), 2, still);
  for (int64_t i = 0; i < 2; ++i) {
    EXPECT_GE(n.final_score[i].item<double>(), 10 * n.initial_score[i].item<double>());
  }
}

// Lucid's redirected ReLU: a centre neuron that is off on the start image gets no gradient and
// stays at 0; with the redirected gradient for the first steps it turns on and grows. (Off by a
// margin: its input, features.9 at the centre, is -0.038 on the start image.)
TEST(Synthesis, RedirectedReluMovesADeadNeuron) {
  auto model = trained_demo();
  auto o = lucid_preset();
  o.size = 64;
  o.steps = 30;
  o.lr = 0.01;
  o.pad = o.jitter = o.rotate = 0;
  o.scale = 0;
  o.redirected_relu_steps = 0;
  const auto target = neuron_target("features.10", {2});
  // Without the redirection the first step finds an exactly zero gradient and leaves the
  // image unchanged: synthesis says so instead of returning the start image.
  testing::expect_error([&] { synthesize(*model, target, 1, o); },
                        "is exactly zero at the start image (image 0 of 1)");
  o.redirected_relu_steps = 16;
  const auto redirected = synthesize(*model, target, 1, o);
  EXPECT_EQ(redirected.initial_score.item<double>(), 0.0);
  EXPECT_GT(redirected.final_score.item<double>(), 0.5);
  // A class target reads the output, so the redirected steps run the whole graph instead of
  // the model's forward; where every ReLU passes some gradient the redirection changes
  // nothing, so the images agree.
  auto c = class_model_preset("l2");
  c.size = 64;
  c.steps = 3;
  const auto a = synthesize(*model, class_log_probability_target({1}), 1, c);
  c.redirected_relu_steps = 3;
  const auto b = synthesize(*model, class_log_probability_target({1}), 1, c);
  EXPECT_TRUE(torch::allclose(a.image, b.image, 1e-4, 1e-5))
      << (a.image - b.image).abs().max().item<double>();
}

// The diversity term makes a batch optimized for one filter less alike: the Gram matrices'
// cosine similarity at the layer falls.
TEST(Synthesis, DiversityMakesTheBatchDiffer) {
  auto model = trained_demo();
  auto o = filter_preset();
  o.size = 48;
  o.steps = 40;
  o.init = "noise";
  const std::string layer = "features.10";
  const auto target = filter_batch_target(layer, {5, 5, 5});
  auto similarity = [&](const torch::Tensor& images) {
    torch::NoGradGuard no_grad;
    const auto a = model->forward(images, {layer}).taps.at(layer);
    auto g = torch::bmm(a.flatten(2), a.flatten(2).transpose(1, 2)).flatten(1);
    g = g / g.norm(2, 1, true);
    const auto s = torch::mm(g, g.t());
    return (s.sum() - s.diagonal().sum()).item<double>() / 6;
  };
  const double plain = similarity(synthesize(*model, target, 3, o).image);
  o.diversity = 10;
  const double diverse = similarity(synthesize(*model, target, 3, o).image);
  EXPECT_LT(diverse, plain - 0.05) << plain << " -> " << diverse;
}

// torchvision's VGG initialization has zero biases: from the gray start (the mean colour, 0 in
// normalized space) every ReLU input is exactly 0, so the gradient is exactly zero and no step
// could move the image. Class synthesis says so (and what to do); a noise start moves.
TEST(Synthesis, ZeroGradientAtTheStartIsAnError) {
  testing::TinyNet model;
  {
    torch::NoGradGuard no_grad;
    for (auto& item : model.module().named_parameters()) {
      if (item.key().find("bias") != std::string::npos) item.value().zero_();
    }
  }
  auto o = class_model_preset("none");
  o.size = 8;
  o.steps = 20;
  o.clamp_pixels = false;
  try {
    synthesize(model, class_log_probability_target({1}), 1, o);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(msg.find("exactly zero at the start image"), std::string::npos) << msg;
    EXPECT_NE(msg.find("--init noise"), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
  o.init = "noise";
  const auto r = synthesize(model, class_log_probability_target({1}), 1, o);
  EXPECT_GT(r.final_score[0].item<double>(), r.initial_score[0].item<double>() + 0.1);
  // A start with biases (TinyNet's own) is no critical point.
  testing::TinyNet biased;
  o.init = "gray";
  const auto b = synthesize(biased, class_log_probability_target({1}), 1, o);
  EXPECT_GT(b.final_score[0].item<double>(), b.initial_score[0].item<double>());
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
  auto fft = o;
  fft.param = "wavelet";
  expect_error([&] { synthesize(*model, Target::class_logit(0), 1, fft); }, "pixel or fft");
  fft.param = "fft";
  fft.blur_every = 4;
  expect_error([&] { synthesize(*model, Target::class_logit(0), 1, fft); }, "blur or clipping");
  expect_error([&] { synthesize(*model, neuron_target("classifier.0", {0}), 1, o); },
               "no spatial extent");
  expect_error([&] { synthesize(*model, direction_target("features.10", torch::ones({3})), 1, o); },
               "3 values for layer features.10 with 64 channels");
  auto d = deep_dream_preset("mordvintsev");
  d.octaves = 0;
  expect_error([&] { deep_dream(*model, layer_l2_target("features.10"), torch::zeros({1, 3, 32, 32}), d); },
               "octaves=0");
  expect_error([&] { invert(*model, "features.6", torch::zeros({1, 3, 32, 40}), inversion_preset("paper")); },
               "square");
  expect_error([&] { invert(*model, "features.99", torch::zeros({1, 3, 32, 32}), inversion_preset("paper")); },
               "features.99");
  struct NoGraph : testing::TinyNet {
    std::vector<GraphNode> graph() const override { return {}; }
  } no_graph;
  auto redirect = o;
  redirect.size = 16;
  redirect.clamp_pixels = false;
  redirect.redirected_relu_steps = 4;
  // Without a graph, the redirected ReLU is the model's own (ReluMode::kRedirected) and the
  // pass is not truncated: the same image as through the graph.
  testing::TinyNet with_graph;
  {
    torch::NoGradGuard no_grad;
    const auto from = no_graph.module().parameters();
    auto to = with_graph.module().parameters();
    for (size_t i = 0; i < to.size(); ++i) to[i].copy_(from[i]);
  }
  const auto a = synthesize(no_graph, Target::layer_unit("relu", 0), 1, redirect);
  const auto b = synthesize(with_graph, Target::layer_unit("relu", 0), 1, redirect);
  EXPECT_TRUE(torch::allclose(a.image, b.image, 1e-5, 1e-6));
  expect_error([] { inversion_preset("fast"); }, "paper or classic");
  expect_error([] { deep_dream_preset("fast"); }, "mordvintsev or classic");
  expect_error([] { parse_filter_list("3-1"); }, "0-15");
  expect_error([] { class_model_preset("l3"); }, "yosinski");
  EXPECT_EQ(parse_filter_list("0-3,7"), (std::vector<int64_t>{0, 1, 2, 3, 7}));
}

}  // namespace
}  // namespace cnnvis
