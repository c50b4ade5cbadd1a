#pragma once
// Running a model's layer graph (Model::graph()) node by node: what LRP walks and what image
// synthesis uses to stop the forward pass at the layer its objective needs.
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "cnnvis/model.hpp"

namespace cnnvis::detail {

// What a graph node computes.
enum class GraphOp {
  kConv, kLinear, kBatchNorm, kRelu, kMaxPool, kAvgPool, kAdaptiveAvgPool, kAdaptiveMaxPool,
  kIdentity, kFlatten, kResidual
};

// The node's operation; throws cnnvis::Error naming the layer (of `model`) and the supported
// types for a module it cannot run. `who` prefixes the message ("lrp").
GraphOp graph_op(const GraphNode& node, const std::string& model, const std::string& who);

// One layer node's forward with eval semantics (BatchNorm with running statistics, Dropout off).
at::Tensor apply_graph_layer(const GraphNode& node, GraphOp op, const at::Tensor& x);

// Called for every node run (inner block layers and the block itself included) with its input
// and output.
using GraphVisitor =
    std::function<void(const GraphNode& node, const at::Tensor& input, const at::Tensor& output)>;

// Computes one layer node in place of apply_graph_layer (e.g. a ReLU with another gradient).
using GraphLayerFn =
    std::function<at::Tensor(const GraphNode& node, GraphOp op, const at::Tensor& x)>;

// Runs `nodes` on x; fills taps[name] for every name already in `taps` (inner block layers
// included); stops after the top-level node that produces `stop` (if not empty). Layer nodes
// run through `layer` if given, else apply_graph_layer. Returns the last output computed.
at::Tensor run_graph(const std::vector<GraphNode>& nodes, at::Tensor x, const std::string& model,
                     const std::string& who, std::map<std::string, at::Tensor>& taps,
                     const std::string& stop = "", const GraphVisitor& visit = {},
                     const GraphLayerFn& layer = {});

// The node's name and aliases.
std::vector<std::string> graph_names(const GraphNode& node);

}  // namespace cnnvis::detail
