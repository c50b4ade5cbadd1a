// Methods: vanilla backprop against finite differences on a tiny hand-written model and against
// Captum's Saliency(abs=False) on torchvision models (tests/python/make_vanilla_fixtures.py);
// the registry.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/methods/vanilla.hpp"
#include "cnnvis/models/zoo.hpp"
#include "tiny_net.hpp"

using cnnvis::testing::TinyNet;

namespace cnnvis {
namespace {

TEST(Vanilla, EqualsCentralFiniteDifferencesOnATinyModel) {
  TinyNet model;
  const auto x = torch::randn({1, 3, 6, 5}, torch::kDouble);
  const auto g = VanillaGradient().attribute(model, x, Target::class_logit(1));
  ASSERT_EQ(g.sizes().vec(), x.sizes().vec());
  torch::NoGradGuard no_grad;
  const double h = 1e-6;
  auto flat = x.flatten();
  for (int64_t i = 0; i < flat.numel(); ++i) {
    auto plus = x.clone(), minus = x.clone();
    plus.view(-1)[i] += h;
    minus.view(-1)[i] -= h;
    const double fd = (model.forward(plus).output[0][1].item<double>() -
                       model.forward(minus).output[0][1].item<double>()) / (2 * h);
    EXPECT_NEAR(g.view(-1)[i].item<double>(), fd, 1e-7) << "element " << i;
  }
}

TEST(Vanilla, BatchGivesEachImageItsOwnGradient) {
  TinyNet model;
  const auto x = torch::randn({3, 3, 6, 6}, torch::kDouble);
  const auto g = input_gradient(model, x, Target::class_logits({0, 2, 1}));
  for (int64_t i = 0; i < 3; ++i) {
    const auto single = input_gradient(model, x.slice(0, i, i + 1),
                                       Target::class_logit(std::vector<int64_t>{0, 2, 1}[i]));
    EXPECT_TRUE(torch::allclose(g.slice(0, i, i + 1), single, 1e-12, 1e-12)) << i;
  }
}

TEST(Vanilla, MatchesCaptumSaliencyOnTorchvisionModels) {
  for (const std::string arch : {"vgg11_bn", "resnet18"}) {
    auto model = make_model(arch);
    randomize_weights(*model, 1234);
    model->module().to(torch::kDouble);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    const auto x = (torch::rand({1, 3, 64, 64}, gen) * 4 - 2).to(torch::kDouble);
    const auto g = make_method("vanilla")->attribute(*model, x, Target::class_logit(3));
    const auto ref = load_npy(std::string(CNNVIS_FIXTURES) + "/vanilla/" + arch +
                              "_grad_target3.npy").to(torch::kDouble);
    ASSERT_EQ(g.sizes().vec(), ref.sizes().vec());
    // load_npy gives float32: compare within float32 rounding of the map's maximum.
    const double tol = 1e-6 * ref.abs().max().item<double>();
    EXPECT_LT((g - ref).abs().max().item<double>(), tol) << arch;
    for (const auto& p : model->module().parameters()) EXPECT_FALSE(p.grad().defined());
  }
}

TEST(Registry, FindsMethodsAndNamesTheClosestForTypos) {
  ASSERT_FALSE(methods().empty());
  EXPECT_EQ(find_method("vanilla").name, "vanilla");
  try {
    find_method("vanila");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("vanilla"), std::string::npos);
  }
  EXPECT_THROW(make_method("vanilla", {{"steps", "3"}}), Error);
}

// Every registered method runs on a tiny model, returns a finite result and renders every view.
TEST(Registry, EveryMethodRunsAndRendersOnATinyModel) {
  TinyNet model;
  const auto x = torch::randn({1, 3, 16, 16}, torch::kDouble);
  const auto image = torch::rand({3, 16, 16});
  for (const auto& info : methods()) {
    auto result = info.make({})->explain(model, x, Target::class_logit(0));
    EXPECT_TRUE(torch::isfinite(result.raw).all().item<bool>()) << info.name;
    EXPECT_EQ(model.relu_mode(), ReluMode::kNormal) << info.name;
    result.raw = result.raw.to(torch::kFloat);
    for (auto& [name, value] : result.extras) value = value.to(torch::kFloat);
    EXPECT_EQ(method_importance(info, result.raw[0], 16, 16).sizes(),
              (std::vector<int64_t>{16, 16})) << info.name;
    for (const auto& view : method_views(info, {})) {
      const auto pic = render_view(view, result, 0, image);
      EXPECT_GE(pic.min().item<double>(), 0.0) << info.name << " " << view.name;
      EXPECT_LE(pic.max().item<double>(), 1.0) << info.name << " " << view.name;
    }
  }
}

}  // namespace
}  // namespace cnnvis
