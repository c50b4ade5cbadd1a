// The CAM family: hand-computed definitions and properties on tiny and seeded torchvision
// models, and the demo model's pointing game.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/evaluate.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/methods/ablation_cam.hpp"
#include "cnnvis/methods/cam.hpp"
#include "cnnvis/methods/guided_backprop.hpp"
#include "cnnvis/methods/score_cam.hpp"
#include "cnnvis/models/zoo.hpp"
#include "tiny_net.hpp"

namespace cnnvis {
namespace {

using testing::TinyNet;

CamOptions at_layer(const std::string& layer) { return CamOptions{{layer}}; }

// Activations of `layer` and the gradient of the target score with respect to them.
std::pair<at::Tensor, at::Tensor> activation_and_gradient(Model& model, const at::Tensor& x,
                                                          const std::string& layer,
                                                          int64_t target) {
  const auto xg = x.detach().requires_grad_(true);
  const auto r = model.forward(xg, {layer});
  const auto a = r.taps.at(layer);
  const auto g = torch::autograd::grad({r.output.select(1, target).sum()}, {a})[0];
  return {a.detach(), g};
}

TEST(Cam, GradCamAndFriendsEqualTheirDefiningSums) {
  auto model = make_model("vgg11_bn");
  randomize_weights(*model, 1234);
  model->module().to(torch::kDouble);
  const auto x = torch::randn({2, 3, 64, 64}, torch::kDouble);
  const auto t = Target::class_logit(3);
  const auto [a, g] = activation_and_gradient(*model, x, "features.27", 3);
  auto cam = [&](const std::string& name) {
    return make_cam(name, at_layer("features.27"))->attribute(*model, x, t);
  };
  const auto grad_cam = torch::relu((g.mean({2, 3}, true) * a).sum(1));
  EXPECT_TRUE(torch::allclose(cam("grad-cam"), grad_cam, 1e-10, 1e-12));
  EXPECT_EQ(grad_cam.sizes(), (std::vector<int64_t>{2, 4, 4}));
  EXPECT_TRUE(torch::allclose(cam("hires-cam"), torch::relu((g * a).sum(1)), 1e-10, 1e-12));
  EXPECT_TRUE(torch::allclose(cam("layer-cam"), torch::relu((torch::relu(g) * a).sum(1)), 1e-10,
                              1e-12));
  const auto xw = (g * a).sum({2, 3}, true) / (a.sum({2, 3}, true) + 1e-7);
  EXPECT_TRUE(torch::allclose(cam("xgrad-cam"), torch::relu((xw * a).sum(1)), 1e-10, 1e-12));
  // Grad-CAM++ eq. 19, alpha zero where the gradient is zero.
  auto alpha = g.pow(2) / (2 * g.pow(2) + a.sum({2, 3}, true) * g.pow(3) + 1e-6);
  alpha = torch::where(g != 0, alpha, torch::zeros_like(alpha));
  const auto pw = (alpha * torch::relu(g)).sum({2, 3}, true);
  EXPECT_TRUE(torch::allclose(cam("grad-cam++"), torch::relu((pw * a).sum(1)), 1e-10, 1e-12));
  // The upsampled extra: bilinear to the input, min-max per image.
  const auto full = make_cam("grad-cam", at_layer("features.27"))->explain(*model, x, t);
  const auto up = full.extras.at("upsampled");
  EXPECT_EQ(up.sizes(), (std::vector<int64_t>{2, 64, 64}));
  EXPECT_TRUE(torch::allclose(up, minmax_per_image(upsample_maps(full.raw, 64, 64))));
  const auto layer_up = make_cam("layer-cam", at_layer("features.27"))->explain(*model, x, t)
                            .extras.at("upsampled");
  EXPECT_NEAR(layer_up[1].max().item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(layer_up[1].min().item<double>(), 0.0, 1e-12);
  for (const auto& p : model->module().parameters()) EXPECT_FALSE(p.grad().defined());
}

// TinyNet's ReLU feeds a global average pool: the gradient there is spatially constant, so
// HiResCAM equals Grad-CAM.
TEST(Cam, HiResCamEqualsGradCamWhenTheGradientIsSpatiallyConstant) {
  TinyNet model;
  const auto x = torch::randn({2, 3, 9, 9}, torch::kDouble);
  const auto t = Target::class_logits({0, 2});
  const auto grad_cam = make_cam("grad-cam", at_layer("relu"))->attribute(model, x, t);
  const auto hires = make_cam("hires-cam", at_layer("relu"))->attribute(model, x, t);
  EXPECT_TRUE(torch::allclose(grad_cam, hires, 1e-12, 1e-14));
  EXPECT_GT(grad_cam.abs().sum().item<double>(), 0.0);
}

// Score-CAM by its definition, every channel evaluated: a constant channel (here dead, all
// zero) has an all-zero mask; skipping such channels must not change the map.
at::Tensor naive_score_cam(Model& model, const at::Tensor& x, const std::string& layer,
                           int64_t target) {
  torch::NoGradGuard no_grad;
  const auto a = model.forward(x, {layer}).taps.at(layer)[0];  // [K, h, w]
  const int64_t k = a.size(0);
  auto map = torch::zeros({a.size(1), a.size(2)}, a.options());
  for (int64_t c = 0; c < k; ++c) {
    const auto up = upsample_maps(a[c].unsqueeze(0), x.size(2), x.size(3))[0];
    const double lo = up.min().item<double>(), hi = up.max().item<double>();
    const auto mask = hi > lo ? (up - lo) / (hi - lo) : torch::zeros_like(up);
    const auto p = torch::softmax(model.forward(x * mask).output, 1)[0][target];
    map += p * a[c];
  }
  return torch::relu(map).unsqueeze(0);
}

TEST(Cam, ScoreCamSkipsDeadChannelsWithoutChangingTheMap) {
  TinyNet model;
  {
    torch::NoGradGuard no_grad;
    model.module().named_parameters()["conv.bias"][1].fill_(-100.0);  // channel 1 is dead
  }
  const auto x = torch::rand({1, 3, 9, 9}, torch::kDouble);
  ScoreCamOptions o;
  o.cam = at_layer("relu");
  o.batch = 2;
  ScoreCam method(o);
  const auto result = method.explain(model, x, Target::class_logit(2));
  EXPECT_EQ(result.extras.at("channels_skipped")[0].item<double>(), 1.0);
  EXPECT_TRUE(torch::allclose(result.raw, naive_score_cam(model, x, "relu", 2), 1e-12, 1e-14));
  // pytorch-grad-cam's weighting: a softmax over channels of the target logit.
  o.weighting = "softmax-logit";
  EXPECT_TRUE(torch::isfinite(ScoreCam(o).attribute(model, x, Target::class_logit(2)))
                  .all().item<bool>());
}

// Ablation-CAM on TinyNet: zeroing channel k of the ReLU output lowers the class-c logit by
// fc.weight[c, k] * mean(A_k), so w_k = fc.weight[c, k] * mean(A_k) / y.
TEST(Cam, AblationCamWeightsAreRelativeScoreDrops) {
  TinyNet model;
  const auto x = torch::randn({1, 3, 7, 7}, torch::kDouble);
  const int64_t c = 1;
  const auto r = model.forward(x, {"relu"});
  const auto a = r.taps.at("relu")[0];
  const double y = r.output[0][c].item<double>();
  const auto fc_w = model.module().named_parameters()["fc.weight"][c];
  const auto w = fc_w * a.mean({1, 2}) / y;
  const auto expected = torch::relu((w.view({-1, 1, 1}) * a).sum(0)).unsqueeze(0);
  AblationCamOptions o;
  o.cam = at_layer("relu");
  o.batch = 3;
  EXPECT_TRUE(torch::allclose(AblationCam(o).attribute(model, x, Target::class_logit(c)),
                              expected, 1e-10, 1e-12));
}

TEST(Cam, EigenCamIsThePrincipalComponentWithAFixedSign) {
  TinyNet model;
  const auto x = torch::randn({1, 3, 8, 8}, torch::kDouble);
  const auto a = model.forward(x, {"relu"}).taps.at("relu")[0];
  auto m = a.reshape({4, -1}).t();
  m = m - m.mean(0, true);
  const auto v = std::get<2>(torch::linalg_svd(m, false))[0];
  auto proj = m.matmul(v);
  const auto mean_map = a.mean(0).reshape({-1});
  if ((proj * (mean_map - mean_map.mean())).sum().item<double>() < 0) proj = -proj;
  const auto expected = torch::relu(proj).reshape({1, 6, 6});
  const auto got = make_cam("eigen-cam", at_layer("relu"))->attribute(model, x,
                                                                       Target::class_logit(0));
  EXPECT_TRUE(torch::allclose(got, expected, 1e-10, 1e-12));
  // Class-agnostic: another target gives the same map.
  EXPECT_TRUE(torch::equal(got, make_cam("eigen-cam", at_layer("relu"))
                                    ->attribute(model, x, Target::class_logit(2))));
}

TEST(Cam, GuidedGradCamAndLayerFusion) {
  TinyNet model;
  const auto x = torch::randn({1, 3, 8, 8}, torch::kDouble);
  const auto t = Target::class_logit(0);
  const auto cam = make_cam("grad-cam", at_layer("relu"))->attribute(model, x, t);
  const auto guided = GuidedBackprop().attribute(model, x, t);
  EXPECT_TRUE(torch::allclose(GuidedGradCam(at_layer("relu")).attribute(model, x, t),
                              guided * upsample_maps(cam, 8, 8).unsqueeze(1), 1e-12, 1e-14));
  // LayerCAM over two layers: the maximum of tanh(2 M / max M) of each upsampled map.
  const auto fused = make_cam("layer-cam", CamOptions{{"conv", "relu"}})->explain(model, x, t);
  EXPECT_EQ(fused.raw.sizes(), (std::vector<int64_t>{1, 8, 8}));
  const auto m1 = upsample_maps(make_cam("layer-cam", at_layer("conv"))->attribute(model, x, t),
                                8, 8);
  const auto m2 = upsample_maps(make_cam("layer-cam", at_layer("relu"))->attribute(model, x, t),
                                8, 8);
  auto scale = [](const at::Tensor& m) { return torch::tanh(2 * m / m.max()); };
  EXPECT_TRUE(torch::allclose(fused.raw, torch::maximum(scale(m1), scale(m2)), 1e-12, 1e-14));
}

TEST(Cam, BadLayersGiveClearErrors) {
  TinyNet model;
  const auto x = torch::randn({1, 3, 8, 8}, torch::kDouble);
  const auto t = Target::class_logit(0);
  try {
    make_cam("grad-cam", at_layer("fc"))->attribute(model, x, t);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no spatial extent"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_cam("grad-cam", at_layer("nope"))->attribute(model, x, t), Error);
  EXPECT_THROW(make_method("grad-cam", {{"colormap", "rainbow"}}), Error);
  EXPECT_THROW(make_method("score-cam", {{"weighting", "mean"}}), Error);
  // Every channel dead: Score-CAM has no mask to score.
  {
    torch::NoGradGuard no_grad;
    model.module().named_parameters()["conv.bias"].fill_(-1000.0);
  }
  EXPECT_THROW(make_method("score-cam", {{"layer", "relu"}})->attribute(model, x, t), Error);
}

at::Tensor cam_fixture(const std::string& name) {
  return load_npy(std::string(CNNVIS_FIXTURES) + "/cam/" + name + ".npy").to(torch::kDouble);
}

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(torch::kDouble).reshape(b.sizes()) - b).abs().max() / b.abs().max())
      .item<double>();
}

// pytorch-grad-cam 1.5.5 and Captum 0.8.0 on seeded torchvision models
// (tests/python/make_cam_fixtures.py, tests/fixtures/cam/README.md): raw maps at the layer's
// resolution after ReLU. Every comparison runs in float64: kernel-independent. A float32 run of
// these random deep networks depends on the CPU's kernels (oneDNN's AVX-512 convolutions put
// LayerCAM at features.13 3.3e-3 of the maximum away: ReLU inputs within rounding of zero
// flip). Tolerances: 1e-6 of the maximum (measured <= 4e-8: the fixtures are read as float32);
// where pytorch-grad-cam rounds to float32, what float64 needs against it (README): Score-CAM
// 1e-6 (1.8e-7 measured), Ablation-CAM 1e-5 (1.0e-6 on resnet18, 3.5e-7 on vgg11_bn).
TEST(Cam, MatchesPytorchGradCamAndCaptum) {
  const auto x = cam_fixture("input_x");
  struct Case {
    std::string arch, layer, prefix;
    int64_t target;
  };
  for (const auto& c : {Case{"vgg11_bn", "features.27", "vgg11_bn_t4_", 4},
                        Case{"resnet18", "layer4", "resnet18_", 3}}) {
    auto model = make_model(c.arch);
    randomize_weights(*model, 1234);
    model->module().to(torch::kDouble);
    const auto t = Target::class_logit(c.target);
    for (const auto& [method, file] : std::vector<std::pair<std::string, std::string>>{
             {"grad-cam", "gradcam"}, {"grad-cam++", "gradcampp"}, {"xgrad-cam", "xgradcam"},
             {"hires-cam", "hirescam"}, {"layer-cam", "layercam"}}) {
      const auto ref = cam_fixture(c.prefix + file + "_raw");
      ASSERT_GT(ref.abs().max().item<double>(), 0.0) << c.prefix << file;
      EXPECT_LT(relative_error(make_method(method, {{"layer", c.layer}})->attribute(*model, x, t),
                               ref),
                1e-6)
          << c.arch << " " << method;
    }
    EXPECT_LT(relative_error(make_method("grad-cam", {{"layer", c.layer}})->attribute(*model, x, t),
                             cam_fixture(c.prefix + "captum_layergradcam")),
              1e-6)
        << c.arch;
    // Ablation-CAM: pytorch-grad-cam's weights are float32 differences (README: float64 is
    // 1.0e-6 / 3.0e-7 away on resnet18 / vgg11_bn_t4). All 512 ablations in one pass: VGG's
    // classifier weights (822 MB in float64) are then read once.
    EXPECT_LT(relative_error(make_method("ablation-cam", {{"layer", c.layer}, {"batch", "512"}})
                                 ->attribute(*model, x, t),
                             cam_fixture(c.prefix + "ablationcam_raw")),
              1e-5)
        << c.arch;
    if (c.arch == "vgg11_bn") {
      // LayerCAM at features.13 (a float64 fixture) on the same model, class 3.
      EXPECT_LT(relative_error(make_method("layer-cam", {{"layer", "features.13"}})
                                   ->attribute(*model, x, Target::class_logit(3)),
                               cam_fixture("vgg11_bn_layercam_f13_raw")),
                1e-6);
      continue;
    }
    // ResNet18, class 3: Eigen-CAM (class-independent; compared up to the SVD's sign, which
    // cnnvis fixes by its own rule; the fixture is the float64 projection rounded to float32)
    // and Score-CAM's softmax-logit variant (512 masked forward passes; the fixture rounds the
    // scores to float32: float64 is 1.7e-7 away).
    const auto eigen = make_method("eigen-cam", {{"layer", "layer4"}})->attribute(*model, x, t);
    const auto projection = cam_fixture("resnet18_eigencam_projection");
    EXPECT_LT(std::min(relative_error(eigen, torch::relu(projection)),
                       relative_error(eigen, torch::relu(-projection))),
              1e-6);
    EXPECT_LT(relative_error(make_method("score-cam", {{"layer", "layer4"},
                                                       {"weighting", "softmax-logit"},
                                                       {"batch", "64"}})
                                 ->attribute(*model, x, t),
                             cam_fixture("resnet18_scorecam_raw")),
              1e-6);
  }
}

// Grad-CAM points at the object on 100 held-out demo scenes (random maps: 0.22), as the issue
// asks: >= 0.95 (measured 1.00 with the committed average-pooling weights; the earlier
// max-pooling demo model scored 0.85, its maps peaking in crescents' bays). float32, with a
// criterion robust to its rounding: 1.00 under every kernel setting of `scripts/test.sh
// --kernels`, and 6 of the 100 maps' maxima would have to move out of their objects to fail.
TEST(Cam, GradCamPointingGameOnTheDemoModel) {
  auto model = make_model("demo");
  load_weights(*model, demo::demo_weights_path());
  const auto set = eval::demo_evaluation_set(100, demo::kDemoSize);
  eval::EvaluateOptions o;
  o.preprocess = demo::demo_preprocess();
  o.sanity = false;
  o.curve = {1, 2};  // the curves are not what this test checks
  const auto& info = find_method("grad-cam");
  auto method = info.make({});
  const auto e = eval::evaluate(*model, "grad-cam", eval::method_maps(info, *method), set, o);
  EXPECT_GE(e.pointing, 0.95);
}

}  // namespace
}  // namespace cnnvis
