// Layer-wise relevance propagation: every rule by hand on a one-layer model, the LRP-0 identities
// (gradient x input, conservation), the epsilon rule's documented loss, canonizers leaving the
// model unchanged, errors, and zennit / classic-collection fixtures.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cnnvis/error.hpp"
#include "cnnvis/io/npy.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/methods/lrp.hpp"
#include "cnnvis/models/zoo.hpp"
#include "expect_error.hpp"
#include "tiny_net.hpp"

namespace cnnvis {
namespace {

namespace nn = torch::nn;

// A user model described only by its graph: a plain sequence of torch modules (Conv2d, ReLU,
// MaxPool2d, Flatten, Linear), run in order. Shows what Model::graph() asks of a user model.
class SequenceNet : public Model {
 public:
  explicit SequenceNet(std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>> layers,
                       int64_t classes)
      : classes_(classes) {
    for (auto& [name, module] : layers) {
      net_.register_module(name, module);
      GraphNode node;
      node.name = name;
      node.module = module;
      if (std::dynamic_pointer_cast<nn::Conv2dImpl>(module)) node.type = "Conv2d";
      if (std::dynamic_pointer_cast<nn::LinearImpl>(module)) node.type = "Linear";
      if (std::dynamic_pointer_cast<nn::ReLUImpl>(module)) node.type = "ReLU";
      if (std::dynamic_pointer_cast<nn::MaxPool2dImpl>(module)) node.type = "MaxPool2d";
      if (std::dynamic_pointer_cast<nn::FlattenImpl>(module)) node.type = "Flatten";
      if (std::dynamic_pointer_cast<nn::SigmoidImpl>(module)) node.type = "Sigmoid";
      graph_.push_back(node);
      infos_.push_back({name, node.type, 0, true, {}});
    }
    net_.to(torch::kDouble);
    for (auto& p : net_.parameters()) p.set_requires_grad(false);
  }
  std::string name() const override { return "sequence"; }
  int64_t num_classes() const override { return classes_; }
  std::vector<LayerInfo> layers() const override { return infos_; }
  nn::Module& module() override { return net_; }
  std::string default_cam_layer() const override { return graph_.front().name; }
  std::vector<GraphNode> graph() const override { return graph_; }

 protected:
  ForwardResult forward_impl(const at::Tensor& x, const std::vector<std::string>& taps) override {
    ForwardResult r;
    r.output = x;
    for (const auto& node : graph_) {
      r.output = run(node, r.output);
      for (const auto& t : taps) {
        if (t == node.name) r.taps[t] = r.output;
      }
    }
    return r;
  }
  at::Tensor forward_from_impl(const std::string&, const at::Tensor&) override {
    throw usage_error("not resumable");
  }
  void apply_relu_mode(ReluMode) override {}

 private:
  static at::Tensor run(const GraphNode& node, const at::Tensor& x) {
    const auto& m = node.module;
    if (auto c = std::dynamic_pointer_cast<nn::Conv2dImpl>(m)) return c->forward(x);
    if (auto l = std::dynamic_pointer_cast<nn::LinearImpl>(m)) return l->forward(x);
    if (auto p = std::dynamic_pointer_cast<nn::MaxPool2dImpl>(m)) return p->forward(x);
    if (auto f = std::dynamic_pointer_cast<nn::FlattenImpl>(m)) return f->forward(x);
    if (auto s = std::dynamic_pointer_cast<nn::SigmoidImpl>(m)) return s->forward(x);
    return torch::relu(x);
  }
  int64_t classes_;
  nn::Module net_;
  std::vector<GraphNode> graph_;
  std::vector<LayerInfo> infos_;
};

// One 1x1 convolution 3 -> 2 and a flatten: z = W x + b on a single pixel, so every rule can be
// computed by hand. W = [[1, -2, 3], [0.5, 1, -1]], b = [0.5, -0.25], x = (2, 1, 1):
// contributions to z_0 are (2, -2, 3) and z_0 = 3.5.
struct OneLayer {
  OneLayer() {
    conv = nn::Conv2d(nn::Conv2dOptions(3, 2, 1));
    torch::NoGradGuard no_grad;
    conv->weight.copy_(torch::tensor({1.0, -2.0, 3.0, 0.5, 1.0, -1.0}).reshape({2, 3, 1, 1}));
    conv->bias.copy_(torch::tensor({0.5, -0.25}));
    model = std::make_unique<SequenceNet>(
        std::vector<std::pair<std::string, std::shared_ptr<nn::Module>>>{
            {"conv", conv.ptr()}, {"flatten", nn::Flatten().ptr()}},
        2);
  }
  at::Tensor relevance(const std::string& rule, LrpOptions options = {}) {
    options.rules.push_back({"conv", parse_lrp_rule(rule)});
    options.mean = {0, 0, 0};  // z-box bounds l = 0, h = 1
    options.std = {1, 1, 1};
    const auto x = torch::tensor({2.0, 1.0, 1.0}, torch::kDouble).reshape({1, 3, 1, 1});
    return Lrp(options).attribute(*model, x, Target::class_logit(0)).flatten();
  }
  nn::Conv2d conv{nullptr};
  std::unique_ptr<SequenceNet> model;
};

void expect_values(const at::Tensor& got, std::vector<double> want, double tol = 1e-9) {
  ASSERT_EQ(got.numel(), static_cast<int64_t>(want.size()));
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_NEAR(got[static_cast<int64_t>(i)].item<double>(), want[i], tol) << "element " << i;
  }
}

TEST(Lrp, EveryRuleByHandOnOneLayer) {
  OneLayer net;
  const double R = 3.5;  // the relevance at the output: the logit itself
  expect_values(net.relevance("zero"), {2, -2, 3});
  expect_values(net.relevance("epsilon:0.5"), {2 * R / 4, -2 * R / 4, 3 * R / 4});
  // z-plus: positive contributions and the positive bias, z+ = 2 + 3 + 0.5.
  expect_values(net.relevance("z-plus"), {2 * R / 5.5, 0, 3 * R / 5.5}, 1e-6);
  // alpha 2 beta 1: the negative part is (0, -2, 0) with no negative bias.
  expect_values(net.relevance("alpha2-beta1"), {2 * 2 * R / 5.5, -R, 2 * 3 * R / 5.5}, 1e-5);
  // gamma 0.25 (z > 0): W + g W+ = (1.25, -2, 3.75), b + g b+ = 0.625, z = 4.875.
  expect_values(net.relevance("gamma:0.25"),
                {2.5 * R / 4.875, -2 * R / 4.875, 3.75 * R / 4.875}, 1e-6);
  expect_values(net.relevance("flat"), {R / 3, R / 3, R / 3}, 1e-6);
  expect_values(net.relevance("w-square"), {R / 14, 4 * R / 14, 9 * R / 14}, 1e-6);
  // z-box with l = 0, h = 1: x W - l W+ - h W- = (2, -2 + 2, 3), the bias cancels.
  expect_values(net.relevance("z-box"), {2 * R / 5, 0, 3 * R / 5}, 1e-6);
  // classic: W + 0.05 W+ = (1.05, -2, 3.15), b' = 0.525, z' = 3.775 (+1e-9).
  expect_values(net.relevance("classic"), {2.1 * R / 3.775, -2 * R / 3.775, 3.15 * R / 3.775},
                1e-8);
  // The output class 1 gets no relevance at all.
  EXPECT_THROW(net.relevance("pass"), Error);  // pass cannot change the shape
  EXPECT_THROW(net.relevance("winner"), Error);  // a pooling rule on a convolution
}

// z-box's bounds given in normalized space (zennit's EpsilonGammaBox(low, high)): the bounds
// that mean 0 / std 1 imply (l = 0, h = 1) give the same relevance, others the hand-computed
// x W - l W+ - h W- (the bias cancels).
TEST(Lrp, ZBoxBoundsGivenAsLowAndHigh) {
  OneLayer net;
  const double R = 3.5;
  LrpOptions implied;
  implied.low = std::array<double, 3>{0, 0, 0};
  implied.high = std::array<double, 3>{1, 1, 1};
  EXPECT_TRUE(torch::equal(net.relevance("z-box", implied), net.relevance("z-box")));
  // Scalars l = -1, h = 2: (2, -2, 3) + (1, 0, 3) + (0, 4, 0) = (3, 2, 6), sum 11.
  LrpOptions wide;
  wide.low = std::array<double, 3>{-1, -1, -1};
  wide.high = std::array<double, 3>{2, 2, 2};
  expect_values(net.relevance("z-box", wide), {3 * R / 11, 2 * R / 11, 6 * R / 11}, 1e-6);
  // Per channel, through the method's options: l = (-1, 0, -2), h = (1, 3, 1):
  // (2 + 1, -2 + 6, 3 + 6) = (3, 4, 9), sum 16.
  const auto x = torch::tensor({2.0, 1.0, 1.0}, torch::kDouble).reshape({1, 3, 1, 1});
  auto by_options = [&](const MethodParams& params) {
    return make_method("lrp", params)->attribute(*net.model, x, Target::class_logit(0)).flatten();
  };
  expect_values(by_options({{"rule", "conv=z-box"}, {"low", "-1,0,-2"}, {"high", "1,3,1"}}),
                {3 * R / 16, 4 * R / 16, 9 * R / 16}, 1e-6);
  expect_values(by_options({{"rule", "conv=z-box"}, {"low", "-1"}, {"high", "2"}}),
                {3 * R / 11, 2 * R / 11, 6 * R / 11}, 1e-6);
  // Only one bound given: the other comes from mean / std (here l = 0 from mean 0, std 1):
  // (2, -2, 3) + (0, 4, 0) = (2, 2, 3), sum 7.
  expect_values(by_options({{"rule", "conv=z-box"}, {"mean", "0,0,0"}, {"std", "1,1,1"},
                            {"high", "2"}}),
                {2 * R / 7, 2 * R / 7, 3 * R / 7}, 1e-6);
  using testing::expect_error;
  expect_error([] { make_method("lrp", {{"low", "-3x"}}); }, "lrp option low=-3x: expected");
  expect_error([] { make_method("lrp", {{"high", "1,2"}}); }, "R,G,B");
  expect_error([] { make_method("lrp", {{"high", "nan"}}); }, "finite");
  expect_error([&] { by_options({{"low", "1"}, {"high", "0,2,2"}}); },
               "channel 0 has the z-box bounds low 1, high 0");
  LrpOptions empty_box;  // through the C++ API: refused before the walk
  empty_box.low = std::array<double, 3>{0, 0, 0};
  empty_box.high = std::array<double, 3>{1, 0, 1};
  expect_error([&] { net.relevance("z-box", empty_box); }, "channel 1 has the z-box bounds");
}

// LRP-0 everywhere (and exact proportional splits) equals gradient x input on ReLU networks:
// R / z at every layer is the gradient there. This also checks each zoo graph against the
// model's own forward, BatchNorm merging and the residual split.
TEST(Lrp, ZeroRuleEqualsGradientTimesInput) {
  for (const auto& arch : {"resnet18", "resnet50", "demo"}) {
    auto model = make_model(arch);
    randomize_weights(*model, 1234);
    model->module().to(torch::kDouble);
    const int64_t size = 40;
    const auto x = torch::randn({2, 3, size, size}, torch::kDouble);
    const auto target = Target::class_logits({3, 1});
    LrpOptions options;
    options.rules = {{"Conv2d", parse_lrp_rule("zero")}, {"Linear", parse_lrp_rule("zero")},
                     {"first", parse_lrp_rule("zero")}};
    options.stabilizer = 0;
    const auto lrp = Lrp(options).attribute(*model, x, target);
    const auto xg = x.detach().requires_grad_(true);
    const auto score = target.score(model->forward(xg));
    const auto grad = torch::autograd::grad({score.sum()}, {xg})[0];
    const auto want = x * grad;
    const double scale = want.abs().max().item<double>();
    EXPECT_LT((lrp - want).abs().max().item<double>(), 1e-9 * scale) << arch;
    EXPECT_GT(scale, 0) << arch;
  }
}

// The demo model without biases: BatchNorm's beta and running mean zeroed, so the merged
// convolutions have no bias either.
std::unique_ptr<Model> bias_free_demo(uint64_t seed) {
  auto model = make_model("demo");
  randomize_weights(*model, seed);
  model->module().to(torch::kDouble);
  torch::NoGradGuard no_grad;
  for (auto& item : model->module().named_parameters()) {
    if (item.key().find("bias") != std::string::npos) item.value().zero_();
  }
  for (auto& item : model->module().named_buffers()) {
    if (item.key().find("running_mean") != std::string::npos) item.value().zero_();
  }
  return model;
}

// Conservation: with LRP-0 and no biases, the input relevance sums to the logit.
TEST(Lrp, ZeroRuleConservesTheLogitWithoutBiases) {
  auto model = bias_free_demo(7);
  const auto x = torch::randn({1, 3, 48, 48}, torch::kDouble);
  const double logit = model->forward(x).output[0][5].item<double>();
  for (const bool average : {false, true}) {
    LrpOptions options;
    options.composite = "epsilon-plus";
    options.rules = {{"Conv2d", parse_lrp_rule("zero")}, {"Linear", parse_lrp_rule("zero")}};
    options.maxpool_average = average;
    options.stabilizer = 0;
    const auto r = Lrp(options).attribute(*model, x, Target::class_logit(5));
    EXPECT_NEAR(r.sum().item<double>(), logit, 1e-4 * std::abs(logit)) << average;
    // Every layer's relevance sums to the logit too.
    const auto at = Lrp(options).relevances(*model, x, Target::class_logit(5),
                                            {"features.7", "classifier.1", "input"});
    for (const auto& [layer, rel] : at) {
      EXPECT_NEAR(rel.sum().item<double>(), logit, 1e-4 * std::abs(logit)) << layer;
    }
    EXPECT_EQ(at.at("features.7").sizes(), (std::vector<int64_t>{1, 32, 12, 12}));
  }
}

// The epsilon rule with biases loses exactly sum_j R_j (b_j + eps sign z_j) / stab(z_j) at a
// layer: the documented bound of how much relevance biases and epsilon absorb.
TEST(Lrp, EpsilonRuleAccountsForBiasAndEpsilon) {
  torch::manual_seed(3);
  nn::Conv2d conv(nn::Conv2dOptions(3, 4, 3).padding(1));
  nn::Linear fc(4 * 4 * 4, 5);
  SequenceNet net({{"conv", conv.ptr()}, {"relu", nn::ReLU().ptr()},
                   {"pool", nn::MaxPool2d(nn::MaxPool2dOptions(2)).ptr()},
                   {"flatten", nn::Flatten().ptr()}, {"fc", fc.ptr()}},
                  5);
  const auto x = torch::randn({1, 3, 8, 8}, torch::kDouble);
  const double eps = 0.1;
  LrpOptions options;
  options.rules = {{"conv", parse_lrp_rule("epsilon:0.1")}, {"fc", parse_lrp_rule("epsilon:0.1")}};
  const auto rel = Lrp(options).relevances(net, x, Target::class_logit(2), {"relu", "input"});
  const auto fwd = net.forward(x, {"conv"});
  auto loss = [&](const at::Tensor& z, const at::Tensor& b, const at::Tensor& R) {
    const auto sign = z.ge(0).to(torch::kDouble) * 2 - 1;
    return (R * (b + eps * sign) / (z + eps * sign)).sum().item<double>();
  };
  // fc: R_out = (0, 0, logit, 0, 0).
  const auto logits = fwd.output;
  const auto r_out = torch::zeros_like(logits);
  r_out[0][2] = logits[0][2];
  EXPECT_NEAR(rel.at("relu").sum().item<double>(),
              r_out.sum().item<double>() - loss(logits, fc->bias.unsqueeze(0), r_out), 1e-10);
  const auto z = fwd.taps.at("conv");
  EXPECT_NEAR(rel.at("input").sum().item<double>(),
              rel.at("relu").sum().item<double>() -
                  loss(z, conv->bias.reshape({1, 4, 1, 1}), rel.at("relu")),
              1e-10);
}

TEST(Lrp, CanonizersLeaveTheModelUnchanged) {
  auto model = make_model("resnet18");
  randomize_weights(*model, 5);
  std::map<std::string, at::Tensor> before;
  for (const auto& item : model->module().named_parameters()) before[item.key()] = item.value().clone();
  for (const auto& item : model->module().named_buffers()) before[item.key()] = item.value().clone();
  const auto x = torch::randn({1, 3, 32, 32});
  const auto out = model->forward(x).output;
  const auto r = Lrp().attribute(*model, x, Target::class_logit(0));
  EXPECT_EQ(r.sizes(), x.sizes());
  for (const auto& item : model->module().named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), before.at(item.key()))) << item.key();
    EXPECT_FALSE(item.value().grad().defined()) << item.key();
  }
  for (const auto& item : model->module().named_buffers()) {
    EXPECT_TRUE(torch::equal(item.value(), before.at(item.key()))) << item.key();
  }
  EXPECT_TRUE(torch::equal(model->forward(x).output, out));
}

TEST(Lrp, RuleTableFollowsTheComposite) {
  auto model = make_model("resnet18");
  LrpOptions options;
  options.composite = "epsilon-gamma-box";
  options.rules = {{"layer4.1.conv2", parse_lrp_rule("epsilon:0.25")}};
  std::map<std::string, std::string> table;
  for (const auto& [layer, rule] : lrp_rule_table(*model, options)) table[layer] = rule;
  EXPECT_EQ(table.at("conv1"), "z-box (with bn1 merged)");
  EXPECT_EQ(table.at("layer1.0.conv1"), "gamma:0.25:1e-06 (with layer1.0.bn1 merged)");
  EXPECT_EQ(table.at("layer4.1.conv2"), "epsilon:0.25 (with layer4.1.bn2 merged)");
  EXPECT_EQ(table.at("layer2.0.downsample.0"), "gamma:0.25:1e-06 (with layer2.0.downsample.1 merged)");
  EXPECT_EQ(table.at("layer2.0"), "sum: norm (proportional split)");
  EXPECT_EQ(table.at("maxpool"), "winner");
  EXPECT_EQ(table.at("avgpool"), "norm");
  EXPECT_EQ(table.at("fc"), "epsilon:1e-06");
  options.composite = "classic";
  options.rules.clear();
  auto vgg = make_model("vgg16");
  table.clear();
  for (const auto& [layer, rule] : lrp_rule_table(*vgg, options)) table[layer] = rule;
  EXPECT_EQ(table.at("features.0"), "classic:0.05:1e-09");
  EXPECT_EQ(table.at("features.4"), "classic:0.05:1e-09");
  EXPECT_EQ(table.at("classifier.6"), "classic:0.05:1e-09");
  options.composite = "epsilon-plus-flat";
  table.clear();
  for (const auto& [layer, rule] : lrp_rule_table(*vgg, options)) table[layer] = rule;
  EXPECT_EQ(table.at("features.0"), "flat");
  EXPECT_EQ(table.at("features.2"), "z-plus");
}

// A layer-unit target starts the walk at its layer with R = A * d score / dA: for a summed
// filter, the filter's activation itself, which LRP-0 without biases then conserves.
TEST(Lrp, LayerUnitTargetStartsAtItsLayer) {
  auto model = bias_free_demo(9);
  const auto x = torch::randn({1, 3, 48, 48}, torch::kDouble);
  LrpOptions options;
  options.rules = {{"Conv2d", parse_lrp_rule("zero")}, {"first", parse_lrp_rule("zero")}};
  const auto target = Target::layer_unit("features.10", 3, Reduction::kSum);
  const auto r = Lrp(options).attribute(*model, x, target);
  const double unit = model->forward(x, {"features.10"}).taps.at("features.10")[0][3].sum()
                          .item<double>();
  EXPECT_GT(unit, 0);
  EXPECT_NEAR(r.sum().item<double>(), unit, 1e-6 * unit);
  EXPECT_THROW(Lrp().attribute(*model, x, Target::layer_unit("nothere", 0)), Error);
}

// The cache of merged and clamped weights follows in-place changes of the parameters.
TEST(Lrp, CachedWeightsFollowTheModel) {
  auto model = make_model("demo");
  randomize_weights(*model, 1);
  const auto x = torch::randn({1, 3, 32, 32});
  Lrp lrp;
  const auto first = lrp.attribute(*model, x, Target::class_logit(2));
  EXPECT_TRUE(torch::equal(lrp.attribute(*model, x, Target::class_logit(2)), first));
  randomize_weights(*model, 2);
  const auto second = lrp.attribute(*model, x, Target::class_logit(2));
  EXPECT_TRUE(torch::equal(second, Lrp().attribute(*model, x, Target::class_logit(2))));
  EXPECT_FALSE(torch::allclose(second, first));
}

TEST(Lrp, ClearErrors) {
  using testing::expect_error;
  const auto x = torch::randn({1, 3, 16, 16}, torch::kDouble);
  struct NoGraph : testing::TinyNet {
    std::vector<GraphNode> graph() const override { return {}; }
  } tiny;
  expect_error([&] { Lrp().attribute(tiny, x, Target::class_logit(0)); }, "graph()");
  torch::manual_seed(1);
  SequenceNet sig({{"conv", nn::Conv2d(nn::Conv2dOptions(3, 2, 3)).ptr()},
                   {"act", nn::Sigmoid().ptr()},
                   {"flatten", nn::Flatten().ptr()}},
                  2 * 14 * 14);
  expect_error([&] { Lrp().attribute(sig, x, Target::class_logit(0)); }, "'act' (Sigmoid)");
  auto model = make_model("vgg11");
  const auto xf = torch::randn({1, 3, 32, 32});
  LrpOptions bad_layer;
  bad_layer.layer = "features.77";
  expect_error([&] { Lrp(bad_layer).attribute(*model, xf, Target::class_logit(0)); },
               "features.7");
  LrpOptions bad_rule_key;
  bad_rule_key.rules = {{"Conv3d", parse_lrp_rule("zero")}};
  expect_error([&] { Lrp(bad_rule_key).attribute(*model, xf, Target::class_logit(0)); },
               "Conv2d");
  LrpOptions pool_rule;
  pool_rule.rules = {{"MaxPool2d", parse_lrp_rule("z-plus")}};
  expect_error([&] { Lrp(pool_rule).attribute(*model, xf, Target::class_logit(0)); },
               "needs weights");
  LrpOptions composite;
  composite.composite = "epsilon-plus-flatt";
  expect_error([&] { Lrp(composite).attribute(*model, xf, Target::class_logit(0)); },
               "epsilon-plus-flat");
  expect_error([] { parse_lrp_rule("gama:0.25"); }, "gamma");
  expect_error([] { parse_lrp_rule("alpha-beta:3:1"); }, "alpha - beta must be 1");
  expect_error([] { parse_lrp_rule("epsilon:x"); }, "'x'");
  expect_error([] { make_method("lrp", {{"rule", "features.0"}}); }, "LAYER_OR_TYPE=RULE");
  expect_error([] { make_method("lrp", {{"maxpool", "sum"}}); }, "maxpool");
}

TEST(Lrp, MethodFromTheRegistryWithALayer) {
  auto model = make_model("demo");
  randomize_weights(*model, 2);
  const auto x = torch::randn({2, 3, 48, 48});
  const auto method = make_method("lrp", {{"layer", "features.6"}, {"composite", "epsilon-gamma-box"}});
  const auto result = method->explain(*model, x, Target::class_logits({0, 1}));
  EXPECT_EQ(result.raw.size(0), 2);
  EXPECT_EQ(result.raw.dim(), 4);
  EXPECT_EQ(result.extras.at("input").sizes(), x.sizes());
  const auto& info = find_method("lrp");
  const auto views = method_views(info, {{"layer", "features.6"}});
  ASSERT_EQ(views.size(), 3u);  // heatmap, overlay, input
  const auto image = torch::rand({3, 48, 48});
  for (const auto& view : views) {
    const auto picture = render_view(view, result, 1, image);
    EXPECT_EQ(picture.sizes(), (std::vector<int64_t>{3, 48, 48})) << view.name;
    EXPECT_GE(picture.min().item<double>(), 0);
    EXPECT_LE(picture.max().item<double>(), 1);
  }
  const auto importance = method_importance(info, result.raw[0], 48, 48);
  EXPECT_EQ(importance.sizes(), (std::vector<int64_t>{48, 48}));
  // The symmetric range of the classic collection: 10 (mean |R|^3)^(1/3).
  EXPECT_NEAR(lrp_symmetric_range(torch::tensor({1.0, -2.0})), 10 * std::cbrt(4.5), 1e-9);
}

}  // namespace
}  // namespace cnnvis

namespace cnnvis {
namespace {

at::Tensor lrp_fixture(const std::string& name) {
  return load_npy(std::string(CNNVIS_FIXTURES) + "/lrp/" + name + ".npy").to(torch::kDouble);
}

std::unique_ptr<Model> fixture_model(const std::string& arch) {
  auto model = make_model(arch);
  randomize_weights(*model, 1234);
  model->module().to(torch::kDouble);
  return model;
}

// max |a - b| relative to max |b|.
double relative_error(const at::Tensor& got, const at::Tensor& want) {
  EXPECT_EQ(got.sizes(), want.sizes());
  return ((got - want).abs().max() / want.abs().max()).item<double>();
}

// zennit 0.5.1's composites on seeded torchvision models (tests/fixtures/lrp/README.md). The
// only deliberate difference: cnnvis folds BatchNorm into the convolution exactly, while zennit
// leaves an identity BatchNorm that still divides by sqrt(1 + eps) (a 4e-5 - 6e-5 relative
// change on vgg11_bn and resnet18).
TEST(Lrp, MatchesZennitComposites) {
  const auto x = lrp_fixture("input_x64");
  const auto target = Target::class_logit(3);
  const std::map<std::string, std::string> at_layer = {
      {"vgg11", "features.10"}, {"vgg11_bn", "features.14"}, {"resnet18", "layer2"}};
  for (const std::string arch : {"vgg11", "vgg11_bn", "resnet18"}) {
    auto model = fixture_model(arch);
    const double tol = arch == "vgg11" ? 1e-6 : 1e-4;
    // The relevance at a layer's output (and at the input in the same walk).
    const auto& layer = at_layer.at(arch);
    const auto r = Lrp().relevances(*model, x, target, {layer, "input"});
    EXPECT_LT(relative_error(r.at(layer), lrp_fixture(arch + "_epsilon-plus-flat_at_" + layer)),
              tol)
        << arch << " " << layer;
    EXPECT_LT(relative_error(r.at("input"), lrp_fixture(arch + "_epsilon-plus-flat")), tol)
        << arch;
    EXPECT_LT(relative_error(model->forward(x).output, lrp_fixture(arch + "_logits")), 1e-6);
    for (const std::string composite : {"epsilon-gamma-box", "epsilon-alpha2-beta1"}) {
      LrpOptions options;
      options.composite = composite;
      const auto got = Lrp(options).attribute(*model, x, target);
      EXPECT_LT(relative_error(got, lrp_fixture(arch + "_" + composite)), tol)
          << arch << " " << composite;
    }
    if (arch != "vgg11") continue;
    // w-square on the first layer (no bias, as the paper), z-plus on the other convolutions.
    LrpOptions wsquare;
    wsquare.composite = "epsilon-plus";
    wsquare.rules = {{"first", parse_lrp_rule("w-square")}};
    EXPECT_LT(relative_error(Lrp(wsquare).attribute(*model, x, target),
                             lrp_fixture("vgg11_wsquare-plus")),
              1e-6);
  }
}

// The classic collection's LRP.py (gamma 0.05 on weights and biases, +1e-9, on every Conv2d,
// Linear and MaxPool2d) on a seeded AlexNet at 224: its LRP_per_layer[k] is the relevance at
// the output of features.(k-1).
TEST(Lrp, ReproducesTheClassicCollection) {
  auto model = fixture_model("alexnet");
  auto u = torch::rand({1, 3, 224, 224}, at::make_generator<at::CPUGeneratorImpl>(7),
                       torch::kFloat);
  const auto mean = torch::tensor({0.485f, 0.456f, 0.406f}).reshape({3, 1, 1});
  const auto std = torch::tensor({0.229f, 0.224f, 0.225f}).reshape({3, 1, 1});
  const auto x = ((u - mean) / std).to(torch::kDouble);
  ASSERT_LT(relative_error(x.slice(2, 0, 8).slice(3, 0, 8), lrp_fixture("input_x224_corner")),
            1e-12);
  LrpOptions options;
  options.composite = "classic";
  const auto r = Lrp(options).relevances(*model, x, Target::class_logit(3),
                                         {"features.0", "features.6", "features.12"});
  EXPECT_LT(relative_error(r.at("features.0").sum(1), lrp_fixture("alexnet_classic_R1_sum")),
            1e-6);
  EXPECT_LT(relative_error(r.at("features.6").sum(1), lrp_fixture("alexnet_classic_R7_sum")),
            1e-6);
  EXPECT_LT(relative_error(r.at("features.12"), lrp_fixture("alexnet_classic_R13")), 1e-6);
}

}  // namespace
}  // namespace cnnvis
