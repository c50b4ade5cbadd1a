// --precision: autocast with the model's weights as cached bfloat16 copies (PrecisionGuard),
// float32 results, the strategy key per precision, evaluate's comparison with float32.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "cnnvis/cnnvis.hpp"
#include "expect_error.hpp"

namespace cnnvis {
namespace {

using testing::expect_error;

double relative_difference(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max() /
          b.to(torch::kDouble).abs().max())
      .item<double>();
}

std::unique_ptr<Model> small_resnet() {
  auto net = make_model("resnet18");
  randomize_weights(*net, 11);
  return net;
}

TEST(Precision, NamesAndRefusals) {
  EXPECT_EQ(parse_precision("float32"), Precision::kFloat32);
  EXPECT_EQ(parse_precision("fp32"), Precision::kFloat32);
  EXPECT_EQ(parse_precision("bf16"), Precision::kBFloat16);
  EXPECT_EQ(parse_precision("bfloat16"), Precision::kBFloat16);
  EXPECT_EQ(parse_precision("fp16"), Precision::kFloat16);
  EXPECT_STREQ(to_string(Precision::kBFloat16), "bf16");
  expect_error([] { parse_precision("half"); }, "expected float32, bf16 or fp16, got 'half'");
  expect_error([] { check_precision(Precision::kFloat16, c10::DeviceType::CPU); },
               "--precision fp16: needs a CUDA device");
  if (cpu_bf16_error().empty()) {
    check_precision(Precision::kBFloat16, c10::DeviceType::CPU);  // no throw
  } else {  // oneDNN capped below AVX-512 (scripts/test.sh --kernels), or a CPU without it
    expect_error([] { check_precision(Precision::kBFloat16, c10::DeviceType::CPU); },
                 "--precision bf16: this CPU cannot run bfloat16 convolutions");
    auto net = small_resnet();
    expect_error([&] { PrecisionGuard guard(*net, Precision::kBFloat16); },
                 "cannot run bfloat16 convolutions");
    EXPECT_EQ(net->module().named_parameters()["conv1.weight"].scalar_type(), at::kFloat);
  }
  try {
    check_precision(Precision::kFloat16, c10::DeviceType::CPU);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
  }
  auto net = small_resnet();
  expect_error([&] { PrecisionGuard guard(*net, Precision::kFloat16); }, "needs a CUDA device");
  EXPECT_EQ(autocast_suffix(c10::DeviceType::CPU), "");  // nothing left on
}

TEST(Precision, NativeBf16FromCpuinfo) {
  using detail::cpuinfo_has_native_bf16;
  EXPECT_TRUE(cpuinfo_has_native_bf16("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16 x\n"));
  EXPECT_TRUE(cpuinfo_has_native_bf16("flags\t: fpu amx_tile amx_bf16\n"));
  EXPECT_FALSE(cpuinfo_has_native_bf16("flags\t: fpu sse avx512f avx512_fp16 amx_tile\n"));
  EXPECT_FALSE(cpuinfo_has_native_bf16("flags\t: fpu avx512_bf16x\n"));  // whole words only
  EXPECT_FALSE(cpuinfo_has_native_bf16("processor : 0\nmodel name : ARM\n"));
  EXPECT_FALSE(cpuinfo_has_native_bf16(""));
  // The warning follows the CPU: none where bf16 is native, or for float32 and CUDA.
  EXPECT_EQ(precision_warning(Precision::kBFloat16, c10::DeviceType::CPU).empty(),
            cpu_has_native_bf16());
  EXPECT_EQ(precision_warning(Precision::kFloat32, c10::DeviceType::CPU), "");
  EXPECT_EQ(precision_warning(Precision::kBFloat16, c10::DeviceType::CUDA), "");
}

TEST(Precision, GuardSwitchesWeightsAndAutocastAndRestoresThem) {
  if (!cpu_bf16_error().empty()) GTEST_SKIP() << "bfloat16 cannot run here (NamesAndRefusals tests the refusal): " << cpu_bf16_error();
  auto net = small_resnet();
  auto params = net->module().named_parameters();
  auto conv = params["conv1.weight"], fc = params["fc.weight"], bn = params["bn1.weight"];
  const void* own = conv.data_ptr();
  const auto values = conv.clone();
  const void* copy = nullptr;
  {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    EXPECT_EQ(conv.scalar_type(), at::kBFloat16);
    EXPECT_EQ(fc.scalar_type(), at::kBFloat16);
    EXPECT_EQ(bn.scalar_type(), at::kFloat);  // 1-D: not a matmul or convolution weight
    EXPECT_EQ(autocast_suffix(c10::DeviceType::CPU), " under bf16 autocast");
    EXPECT_TRUE(torch::allclose(conv.to(at::kFloat), values, 1e-2, 1e-2));
    copy = conv.data_ptr();
  }
  EXPECT_EQ(conv.scalar_type(), at::kFloat);
  EXPECT_EQ(conv.data_ptr(), own);
  EXPECT_TRUE(torch::equal(conv, values));
  EXPECT_EQ(autocast_suffix(c10::DeviceType::CPU), "");
  {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    EXPECT_EQ(conv.data_ptr(), copy);  // the cached copy
  }
  {
    torch::NoGradGuard no_grad;
    conv.mul_(2.0);  // a changed weight: copied again
  }
  {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    EXPECT_TRUE(torch::allclose(conv.to(at::kFloat), values * 2.0, 1e-2, 1e-2));
  }
  try {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    throw Error("inside");
  } catch (const Error&) {
  }
  EXPECT_EQ(conv.scalar_type(), at::kFloat);
  EXPECT_EQ(autocast_suffix(c10::DeviceType::CPU), "");
  {
    PrecisionGuard guard(*net, Precision::kFloat32);  // does nothing
    EXPECT_EQ(conv.scalar_type(), at::kFloat);
    EXPECT_EQ(autocast_suffix(c10::DeviceType::CPU), "");
  }
  // Channels-last inside a bfloat16 scope: both copies are kept (no copying on every call).
  {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    const void* bf16 = conv.data_ptr();
    const void* nhwc = nullptr;
    {
      WeightLayoutGuard cl(*net, at::MemoryFormat::ChannelsLast);
      EXPECT_EQ(conv.scalar_type(), at::kBFloat16);
      EXPECT_TRUE(conv.is_contiguous(at::MemoryFormat::ChannelsLast));
      nhwc = conv.data_ptr();
    }
    EXPECT_EQ(conv.data_ptr(), bf16);
    WeightLayoutGuard cl(*net, at::MemoryFormat::ChannelsLast);
    EXPECT_EQ(conv.data_ptr(), nhwc);
  }
  EXPECT_EQ(conv.data_ptr(), own);
}

// Every method gives float32 in bfloat16, near the float32 result but not equal to it (so the
// lower precision really ran).
TEST(Precision, MethodsRunInBf16AndReturnFloat32) {
  if (!cpu_bf16_error().empty()) GTEST_SKIP() << "bfloat16 cannot run here (NamesAndRefusals tests the refusal): " << cpu_bf16_error();
  auto net = small_resnet();
  torch::manual_seed(3);
  const auto x = torch::randn({1, 3, 64, 64});
  // The top class: its Grad-CAM is not all zero (a random model's other classes may be).
  at::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = net->forward(x).output;
  }
  const auto t = Target::class_logit(logits.argmax(1).item<int64_t>());
  for (const std::string name : {"vanilla", "grad-cam", "score-cam", "occlusion", "lrp"}) {
    SCOPED_TRACE(name);
    MethodParams params;
    if (name == "occlusion") params = {{"window", "16"}, {"stride", "16"}};
    auto method = make_method(name, params);
    const auto exact = method->attribute(*net, x, t);
    at::Tensor approx;
    {
      PrecisionGuard guard(*net, Precision::kBFloat16);
      approx = method->attribute(*net, x, t);
    }
    EXPECT_EQ(approx.scalar_type(), at::kFloat);
    EXPECT_EQ(approx.sizes(), exact.sizes());
    const double diff = relative_difference(approx, exact);
    EXPECT_GT(diff, 1e-4);   // float32 rounding alone is ~1e-6
    EXPECT_LT(diff, 0.7);    // bfloat16 keeps 8 bits (vanilla of a random ResNet: 0.27)
    const auto info = find_method(name);
    const double rank = eval::spearman(method_importance(info, approx[0], 64, 64),
                                       method_importance(info, exact[0], 64, 64));
    EXPECT_GT(rank, 0.6);
  }
  // Extras too (integrated gradients' completeness gap).
  auto ig = make_method("integrated-gradients", {{"steps", "4"}});
  Attribution a;
  {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    a = ig->explain(*net, x, t);
  }
  EXPECT_EQ(a.raw.scalar_type(), at::kFloat);
  for (const auto& [key, value] : a.extras) EXPECT_EQ(value.scalar_type(), at::kFloat) << key;
}

TEST(Precision, StrategyIsMeasuredPerPrecision) {
  if (!cpu_bf16_error().empty()) GTEST_SKIP() << "bfloat16 cannot run here (NamesAndRefusals tests the refusal): " << cpu_bf16_error();
  reset_gradient_strategy_measurements();
  auto net = small_resnet();
  const auto x = torch::randn({1, 3, 32, 32});
  VanillaGradient method;
  method.attribute(*net, x, Target::class_logit(1));
  {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    method.attribute(*net, x, Target::class_logit(1));
  }
  bool plain = false, reduced = false;
  for (const auto& r : gradient_strategy_report()) {
    if (r.key.find("resnet18 [1, 3, 32, 32] Float under bf16 autocast,") == 0) reduced = true;
    if (r.key.find("resnet18 [1, 3, 32, 32] Float,") == 0) plain = true;
  }
  EXPECT_TRUE(plain);
  EXPECT_TRUE(reduced);
  reset_gradient_strategy_measurements();

  // The split's workers run in the caller's precision (they take its thread-local state).
  const int threads = at::get_num_threads();
  const auto policy = gradient_strategy();
  at::set_num_threads(2);
  const auto xs = torch::randn({2, 3, 32, 32});
  const auto t = Target::class_logits({1, 2});
  set_gradient_strategy(GradientStrategy::kBatched);
  const auto exact = method.attribute(*net, xs, t);
  at::Tensor batched, split;
  {
    PrecisionGuard guard(*net, Precision::kBFloat16);
    batched = method.attribute(*net, xs, t);
    set_gradient_strategy(GradientStrategy::kSplit);
    split = method.attribute(*net, xs, t);
  }
  set_gradient_strategy(policy);
  at::set_num_threads(threads);
  EXPECT_GT(relative_difference(split, exact), 1e-3);  // not float32 ...
  EXPECT_LT(relative_difference(split, batched),       // ... but bfloat16, like the batched pass
            relative_difference(split, exact) / 10);
}

TEST(Precision, EvaluateComparesWithReferenceMaps) {
  auto net = small_resnet();
  eval::EvaluationSet set;
  torch::manual_seed(5);
  set.images = torch::rand({3, 3, 32, 32});
  set.masks = torch::zeros({3, 32, 32});
  set.masks.slice(1, 8, 24).slice(2, 8, 24).fill_(1);
  set.targets = {1, 2, 3};
  set.names = {"a", "b", "c"};
  eval::EvaluateOptions o;
  o.sanity = false;
  o.curve.steps = 2;
  const auto& info = find_method("vanilla");
  auto method = info.make({});
  const auto maps = eval::method_maps(info, *method);
  o.reference = maps;
  const auto same = eval::evaluate(*net, "vanilla", maps, set, o);
  ASSERT_EQ(same.reference_correlation.size(), 3u);
  EXPECT_NEAR(same.reference_rank, 1.0, 1e-6);
  o.reference = eval::random_maps(0);
  const auto other = eval::evaluate(*net, "vanilla", maps, set, o);
  EXPECT_LT(other.reference_rank, 0.5);
  o.reference = nullptr;
  EXPECT_TRUE(eval::evaluate(*net, "vanilla", maps, set, o).reference_correlation.empty());
}

}  // namespace
}  // namespace cnnvis
