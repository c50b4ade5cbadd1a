#pragma once
// A TorchScript model's layer graph (Model::graph()) from its master graph (script.cpp): the
// chain of Conv2d, Linear, BatchNorm2d, ReLU, pooling, flatten and dropout operations, with
// residual additions as kResidual nodes, named by the module taps. What LRP walks and what
// synthesis uses for lucid's redirected ReLU and to stop at a layer.
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/ir.h>

#include <string>
#include <vector>

#include "cnnvis/model.hpp"

namespace cnnvis::detail {

// The master graph's module-output marker cnnvis::tap(x, "module.path"): its symbol, the path
// it carries, and the value under a chain of taps (a tap of a tap: "layer4" marks "layer4.1").
extern const c10::Symbol kTap;
std::string tap_name(const torch::jit::Node* tap);
torch::jit::Value* tapped_source(torch::jit::Value* v);

// The layer graph from the image input `x` to `logits` of `graph` (the master graph, with
// cnnvis::tap nodes; `module` resolves its prim::GetAttr chains). The nodes' modules hold the
// script module's own parameter and buffer tensors. Throws cnnvis::Error naming the last
// operation (walking back from the logits) that is not one of the above (DenseNet's aten::cat,
// a SiLU, an if in forward) and its layer.
std::vector<GraphNode> script_layer_graph(torch::jit::Graph& graph, const torch::jit::Module& module,
                                          torch::jit::Value* x, torch::jit::Value* logits,
                                          const std::string& source);

}  // namespace cnnvis::detail
