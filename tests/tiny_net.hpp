#pragma once
// TinyNet, shared by the method tests.
#include <torch/torch.h>

#include <algorithm>

#include "cnnvis/model.hpp"

namespace cnnvis::testing {

// A user model written against the Model interface: conv 3->4 (3x3), ReLU, global average
// pool, linear 4->3. Also shows that methods need nothing beyond the contract.
class TinyNet : public Model {
 public:
  TinyNet() {
    net_.register_module("conv", conv_);
    net_.register_module("fc", fc_);
    net_.to(torch::kDouble);
    for (auto& p : net_.parameters()) p.set_requires_grad(false);
  }
  std::string name() const override { return "tiny"; }
  int64_t num_classes() const override { return 3; }
  std::vector<LayerInfo> layers() const override {
    return {{"conv", "Conv2d", 112, true, {}},
            {"relu", "ReLU", 0, true, {}},
            {"pool", "AdaptiveAvgPool2d", 0, true, {}},
            {"fc", "Linear", 15, true, {}}};
  }
  torch::nn::Module& module() override { return net_; }
  std::string default_cam_layer() const override { return "relu"; }
  // The same layers as data (for LRP): the mean over pixels is an adaptive average pool to
  // 1x1 and a flatten.
  std::vector<GraphNode> graph() const override {
    GraphNode conv, relu, pool, flatten, fc;
    conv.name = "conv", conv.type = "Conv2d", conv.module = conv_.ptr();
    relu.name = "relu", relu.type = "ReLU";
    pool.name = "pool", pool.type = "AdaptiveAvgPool2d", pool.module = pool_.ptr();
    flatten.kind = GraphNode::Kind::kFlatten;
    fc.name = "fc", fc.type = "Linear", fc.module = fc_.ptr();
    return {conv, relu, pool, flatten, fc};
  }

 protected:
  ForwardResult forward_impl(const at::Tensor& x, const std::vector<std::string>& taps) override {
    ForwardResult r;
    std::vector<torch::Tensor> acts;
    run(x, 0, &acts);
    const std::vector<std::string> names = {"conv", "relu", "pool", "fc"};
    for (const auto& t : taps) {
      r.taps[t] = acts[std::find(names.begin(), names.end(), t) - names.begin()];
    }
    r.output = acts.back();
    return r;
  }
  at::Tensor forward_from_impl(const std::string& layer, const at::Tensor& a) override {
    const std::vector<std::string> names = {"conv", "relu", "pool", "fc"};
    std::vector<torch::Tensor> acts;
    return run(a, (std::find(names.begin(), names.end(), layer) - names.begin()) + 1, &acts);
  }
  void apply_relu_mode(ReluMode mode) override { mode_ = mode; }

 private:
  torch::Tensor run(torch::Tensor x, size_t first, std::vector<torch::Tensor>* acts) {
    if (first <= 0) acts->push_back(x = conv_(x));
    if (first <= 1) acts->push_back(x = cnnvis::relu(x, mode_));
    if (first <= 2) acts->push_back(x = x.mean({2, 3}));
    if (first <= 3) acts->push_back(x = fc_(x));
    return x;
  }
  // Seeds the global generator before the layers below draw their weights (members are
  // initialized in declaration order), so the weights do not depend on what ran before.
  struct Seed {
    explicit Seed(uint64_t seed) { torch::manual_seed(seed); }
  } seed_{11};
  torch::nn::Module net_;
  torch::nn::Conv2d conv_{torch::nn::Conv2dOptions(3, 4, 3)};
  torch::nn::Linear fc_{4, 3};
  torch::nn::AdaptiveAvgPool2d pool_{torch::nn::AdaptiveAvgPool2dOptions(1)};
  ReluMode mode_ = ReluMode::kNormal;
};

}  // namespace cnnvis::testing
