// Weight-file reading: every format against the values Python wrote (expected.json), bad files,
// and assign_state_dict. Fixtures: tests/python/make_weight_fixtures.py.
#include <cnnvis/error.hpp>
#include <cnnvis/models/weights.hpp>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

namespace {

using cnnvis::StateDict;
using cnnvis::WeightFormat;

std::string fixture(const std::string& name) {
  return std::string(CNNVIS_FIXTURES) + "/weights/" + name;
}

const nlohmann::ordered_json& expected() {
  static const nlohmann::ordered_json json = [] {
    std::ifstream in(fixture("expected.json"));
    return nlohmann::ordered_json::parse(in);
  }();
  return json;
}

// Expects `state` to hold exactly the tensors of expected.json[group], in order, in the dtype
// Python saved (floating ones in `float_dtype` when given), with exactly equal values.
void expect_matches(const StateDict& state, const std::string& group,
                    c10::optional<at::ScalarType> float_dtype = c10::nullopt) {
  static const std::map<std::string, at::ScalarType> kTypes = {
      {"float32", torch::kFloat}, {"float64", torch::kDouble}, {"float16", torch::kHalf},
      {"bfloat16", torch::kBFloat16}, {"int64", torch::kLong}, {"int32", torch::kInt},
      {"uint8", torch::kByte}, {"bool", torch::kBool}};
  const auto& want = expected()[group];
  ASSERT_EQ(state.size(), want.size()) << group;
  size_t k = 0;
  for (const auto& [name, entry] : want.items()) {
    SCOPED_TRACE(group + "/" + name);
    const auto& [key, tensor] = state[k++];
    EXPECT_EQ(key, name);
    EXPECT_TRUE(tensor.is_contiguous());
    at::ScalarType type = kTypes.at(entry["dtype"].get<std::string>());
    if (float_dtype && at::isFloatingType(type)) type = *float_dtype;
    EXPECT_EQ(tensor.scalar_type(), type);
    EXPECT_EQ(tensor.sizes().vec(), entry["shape"].get<std::vector<int64_t>>());
    const auto values = entry["values"].get<std::vector<double>>();
    const auto ref = torch::tensor(values, torch::kDouble).reshape(tensor.sizes()).to(type);
    EXPECT_TRUE(torch::equal(tensor, ref)) << tensor << ref;
  }
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const cnnvis::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "no cnnvis::Error";
  return "";
}

// The tiny model of the fixture script, with the same parameter and buffer names.
torch::nn::Sequential tiny_model(int64_t kernel = 3) {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(3, 4, kernel)),
                               torch::nn::BatchNorm2d(4), torch::nn::ReLU(), torch::nn::Flatten(),
                               torch::nn::Linear(16, 3));
}

TEST(Weights, DetectsFormatFromContentNotExtension) {
  EXPECT_EQ(cnnvis::detect_weight_format(fixture("tiny_zip.pth")), WeightFormat::kTorchZip);
  EXPECT_EQ(cnnvis::detect_weight_format(fixture("tiny_legacy.pth")),
            WeightFormat::kTorchLegacy);
  EXPECT_EQ(cnnvis::detect_weight_format(fixture("tiny.safetensors")),
            WeightFormat::kSafetensors);
  // A zip named .safetensors is still read as a zip.
  const std::string renamed = testing::TempDir() + "weights_renamed.safetensors";
  {
    std::ifstream in(fixture("tiny_zip.pth"), std::ios::binary);
    std::ofstream out(renamed, std::ios::binary);
    out << in.rdbuf();
  }
  EXPECT_EQ(cnnvis::detect_weight_format(renamed), WeightFormat::kTorchZip);
  expect_matches(cnnvis::read_state_dict(renamed), "tiny");
  std::remove(renamed.c_str());
  EXPECT_STREQ(cnnvis::to_string(WeightFormat::kTorchLegacy), "PyTorch legacy");
}

TEST(Weights, AllFormatsGiveTheExpectedTensors) {
  const StateDict reference = cnnvis::read_state_dict(fixture("tiny_zip.pth"));
  expect_matches(reference, "tiny");
  for (const char* file : {"tiny_legacy.pth", "tiny.safetensors", "tiny_ckpt_state_dict.pth",
                           "tiny_ckpt_model.pth", "tiny_protocol4.pth",
                           "tiny_legacy_protocol4.pth"}) {
    SCOPED_TRACE(file);
    const StateDict state = cnnvis::read_state_dict(fixture(file));
    expect_matches(state, "tiny");
    ASSERT_EQ(state.size(), reference.size());
    for (size_t k = 0; k < state.size(); ++k) {
      EXPECT_EQ(state[k].first, reference[k].first);
      EXPECT_TRUE(torch::equal(state[k].second, reference[k].second)) << state[k].first;
    }
  }
  // num_batches_tracked stays int64.
  EXPECT_EQ(reference[6].first, "1.num_batches_tracked");
  EXPECT_EQ(reference[6].second.scalar_type(), torch::kLong);
  EXPECT_EQ(reference[6].second.item<int64_t>(), 7);
}

TEST(Weights, ViewsOffsetsStridesAndDtypes) {
  // Tensors sharing a storage (offsets, strides, a transpose) and every supported dtype.
  for (const char* file : {"views_zip.pth", "views_legacy.pth", "views.safetensors"}) {
    SCOPED_TRACE(file);
    const StateDict state = cnnvis::read_state_dict(fixture(file));
    expect_matches(state, "views");
    EXPECT_EQ(state[1].second.sizes(), (std::vector<int64_t>{5, 5}));
    EXPECT_EQ(state[1].second[0][1].item<float>(), 12.0f / 4);  // big[1, 2]
    EXPECT_EQ(state[5].second.scalar_type(), torch::kHalf);
    EXPECT_EQ(state[6].second.scalar_type(), torch::kBFloat16);
    EXPECT_EQ(state[10].second.scalar_type(), torch::kBool);
    EXPECT_EQ(state[11].second.dim(), 0);
    EXPECT_EQ(state[12].second.numel(), 0);
  }
}

TEST(Weights, HalfAndDoubleFiles) {
  expect_matches(cnnvis::read_state_dict(fixture("tiny_fp64_legacy.pth")), "tiny",
                 torch::kDouble);
  const StateDict half = cnnvis::read_state_dict(fixture("tiny_fp16.pth"));
  const StateDict half_st = cnnvis::read_state_dict(fixture("tiny_fp16.safetensors"));
  expect_matches(half, "tiny", torch::kHalf);
  for (size_t k = 0; k < half.size(); ++k) {
    EXPECT_TRUE(torch::equal(half[k].second, half_st[k].second)) << half[k].first;
  }
  // Assigning converts fp16 and fp64 into the float model.
  for (const char* file : {"tiny_fp16.pth", "tiny_fp64_legacy.pth"}) {
    auto model = tiny_model();
    cnnvis::assign_state_dict(*model, cnnvis::read_state_dict(fixture(file)), file);
    const StateDict ref = cnnvis::read_state_dict(fixture("tiny_zip.pth"));
    const auto tolerance = std::string(file) == "tiny_fp16.pth" ? 1e-2 : 0.0;
    EXPECT_EQ(model->named_parameters()["0.weight"].scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::allclose(model->named_parameters()["0.weight"], ref[0].second, tolerance,
                                tolerance)) << file;
  }
}

TEST(Weights, BadFilesThrowNamingTheFile) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"truncated_zip.pth", "zip"},
      {"truncated_legacy.pth", "truncated"},
      {"truncated_legacy_pickle.pth", "truncated"},
      {"random.bin", "not a weights file"},
      {"empty.pth", "empty"},
      {"does_not_exist.pth", "cannot open"},
      {"bad_header.safetensors", "truncated safetensors"},
      {"bad_offsets.safetensors", "data offsets"},
      {"forbidden_global.pth", "refusing to load: the pickle names the global 'posix.system'"},
      {"forbidden_global_legacy.pth", "refusing to load"},
      {"bad_opcode.pth", "unsupported opcode 0xff"},
  };
  for (const auto& [file, words] : cases) {
    SCOPED_TRACE(file);
    const std::string message = error_of([&] { cnnvis::read_state_dict(fixture(file)); });
    EXPECT_NE(message.find(fixture(file) + ": "), std::string::npos) << message;
    EXPECT_NE(message.find(words), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(Weights, AssignIntoModuleGivesPythonsOutput) {
  auto model = tiny_model();
  model->named_parameters()["4.bias"].set_requires_grad(false);
  cnnvis::assign_state_dict(*model, cnnvis::read_state_dict(fixture("tiny_legacy.pth")),
                            "tiny_legacy.pth");
  EXPECT_TRUE(model->named_parameters()["0.weight"].requires_grad());
  EXPECT_FALSE(model->named_parameters()["4.bias"].requires_grad());
  EXPECT_EQ(model->named_buffers()["1.num_batches_tracked"].item<int64_t>(), 7);
  model->eval();
  // float64: kernel-independent; the fixture is PyTorch's float32 output, within 1e-5.
  model->to(torch::kDouble);
  const auto out = model->forward(torch::arange(48, torch::kDouble).reshape({1, 3, 4, 4}) / 10)
                       .flatten();
  const auto want = torch::tensor(expected()["forward"].get<std::vector<double>>(), torch::kDouble);
  EXPECT_TRUE(torch::allclose(out, want, 1e-5, 1e-6)) << out << want;
}

TEST(Weights, StripsDataParallelModulePrefix) {
  const StateDict state = cnnvis::read_state_dict(fixture("tiny_dataparallel.pth"));
  EXPECT_EQ(state[0].first, "module.0.weight");
  auto model = tiny_model();
  cnnvis::assign_state_dict(*model, state, "tiny_dataparallel.pth");
  EXPECT_TRUE(torch::equal(model->named_parameters()["0.weight"], state[0].second));
  // A prefix on only some keys is not stripped.
  StateDict mixed = cnnvis::read_state_dict(fixture("tiny_zip.pth"));
  mixed[0].first = "module.0.weight";
  const std::string message = error_of([&] { cnnvis::assign_state_dict(*model, mixed, "m.pth"); });
  EXPECT_NE(message.find("1 missing key (0.weight)"), std::string::npos) << message;
  EXPECT_NE(message.find("1 unexpected key (module.0.weight)"), std::string::npos) << message;
}

TEST(Weights, AssignMismatchesNameKeysAndShapes) {
  auto model = tiny_model();
  std::string message = error_of([&] {
    cnnvis::assign_state_dict(*model, cnnvis::read_state_dict(fixture("wrong_shape.pth")),
                              "wrong_shape.pth");
  });
  EXPECT_EQ(message.rfind("wrong_shape.pth: does not fit this model: 1 shape mismatch ", 0), 0u)
      << message;
  EXPECT_NE(message.find("0.weight: file has [4, 3, 5, 5], model expects [4, 3, 3, 3]"),
            std::string::npos) << message;

  message = error_of([&] {
    cnnvis::assign_state_dict(*model, cnnvis::read_state_dict(fixture("other_arch.pth")),
                              "other_arch.pth");
  });
  EXPECT_NE(message.find("9 missing keys (0.weight, 0.bias, 1.weight, 1.bias, 4.weight and 4 "
                         "more) and 3 unexpected keys (conv1.weight, fc.weight, fc.bias)"),
            std::string::npos) << message;
  EXPECT_NE(message.find("another architecture"), std::string::npos) << message;

  StateDict partial = cnnvis::read_state_dict(fixture("tiny_zip.pth"));
  partial.pop_back();
  message = error_of([&] { cnnvis::assign_state_dict(*model, partial, "partial.pth"); });
  EXPECT_NE(message.find("partial.pth: does not fit this model: 1 missing key (4.bias)"),
            std::string::npos) << message;
}

}  // namespace
