#include "methods/graph_forward.hpp"

#include <torch/torch.h>

#include "cnnvis/error.hpp"

namespace cnnvis::detail {

namespace nn = torch::nn;

GraphOp graph_op(const GraphNode& node, const std::string& model, const std::string& who) {
  if (node.kind == GraphNode::Kind::kFlatten) return GraphOp::kFlatten;
  if (node.kind == GraphNode::Kind::kResidual) return GraphOp::kResidual;
  const auto& m = node.module;
  if (std::dynamic_pointer_cast<nn::Conv2dImpl>(m)) return GraphOp::kConv;
  if (std::dynamic_pointer_cast<nn::LinearImpl>(m)) return GraphOp::kLinear;
  if (std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(m)) return GraphOp::kBatchNorm;
  if (std::dynamic_pointer_cast<nn::MaxPool2dImpl>(m)) return GraphOp::kMaxPool;
  if (std::dynamic_pointer_cast<nn::AvgPool2dImpl>(m)) return GraphOp::kAvgPool;
  if (std::dynamic_pointer_cast<nn::AdaptiveAvgPool2dImpl>(m)) return GraphOp::kAdaptiveAvgPool;
  if (std::dynamic_pointer_cast<nn::AdaptiveMaxPool2dImpl>(m)) return GraphOp::kAdaptiveMaxPool;
  if (std::dynamic_pointer_cast<nn::FlattenImpl>(m)) return GraphOp::kFlatten;
  if (std::dynamic_pointer_cast<nn::ReLUImpl>(m) || node.type == "ReLU") return GraphOp::kRelu;
  if (std::dynamic_pointer_cast<nn::DropoutImpl>(m) ||
      std::dynamic_pointer_cast<nn::Dropout2dImpl>(m) ||
      std::dynamic_pointer_cast<nn::IdentityImpl>(m)) {
    return GraphOp::kIdentity;
  }
  throw usage_error(who + ": layer '" + node.name + "' (" + node.type + ") of " + model +
                    " has no rule; cnnvis handles Conv2d, Linear, BatchNorm2d, ReLU, MaxPool2d, "
                    "AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, Dropout, Identity, Flatten "
                    "and residual blocks: describe the layer with these in the model's graph() "
                    "(see docs/ARCHITECTURE.md), or explain this model with a gradient method "
                    "(vanilla, integrated-gradients)");
}

at::Tensor apply_graph_layer(const GraphNode& node, GraphOp op, const at::Tensor& x) {
  const auto& m = node.module;
  switch (op) {
    case GraphOp::kConv: return std::dynamic_pointer_cast<nn::Conv2dImpl>(m)->forward(x);
    case GraphOp::kLinear: return std::dynamic_pointer_cast<nn::LinearImpl>(m)->forward(x);
    case GraphOp::kBatchNorm: {
      auto bn = std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(m);
      return torch::batch_norm(x, bn->weight, bn->bias, bn->running_mean, bn->running_var,
                               /*training=*/false, 0.0, bn->options.eps(),
                               /*cudnn_enabled=*/true);
    }
    case GraphOp::kRelu: return torch::relu(x);
    case GraphOp::kMaxPool: return std::dynamic_pointer_cast<nn::MaxPool2dImpl>(m)->forward(x);
    case GraphOp::kAvgPool: return std::dynamic_pointer_cast<nn::AvgPool2dImpl>(m)->forward(x);
    case GraphOp::kAdaptiveAvgPool:
      return std::dynamic_pointer_cast<nn::AdaptiveAvgPool2dImpl>(m)->forward(x);
    case GraphOp::kAdaptiveMaxPool:
      return std::dynamic_pointer_cast<nn::AdaptiveMaxPool2dImpl>(m)->forward(x);
    case GraphOp::kFlatten: return x.flatten(1);
    default: return x;
  }
}

std::vector<std::string> graph_names(const GraphNode& node) {
  std::vector<std::string> names;
  if (!node.name.empty()) names.push_back(node.name);
  names.insert(names.end(), node.aliases.begin(), node.aliases.end());
  return names;
}

namespace {

// Runs a sequence; `stopped` turns true once `stop` has been produced (checked by the caller
// at the top level only, so a block always runs whole).
at::Tensor run(const std::vector<GraphNode>& nodes, at::Tensor x, const std::string& model,
               const std::string& who, std::map<std::string, at::Tensor>& taps,
               const std::string& stop, const GraphVisitor& visit, const GraphLayerFn& layer,
               bool top, bool& stopped) {
  for (const auto& node : nodes) {
    const auto op = graph_op(node, model, who);
    const at::Tensor input = x;
    if (op == GraphOp::kResidual) {
      const auto b = run(node.branch, x, model, who, taps, stop, visit, layer, false, stopped);
      const auto s = node.shortcut.empty() ? x
                                           : run(node.shortcut, x, model, who, taps, stop, visit,
                                                 layer, false, stopped);
      x = run(node.after, b + s, model, who, taps, stop, visit, layer, false, stopped);
    } else {
      x = layer ? layer(node, op, x) : apply_graph_layer(node, op, x);
    }
    if (visit) visit(node, input, x);
    for (const auto& n : graph_names(node)) {
      if (taps.count(n)) taps[n] = x;
      if (!stop.empty() && n == stop) stopped = true;
    }
    if (top && stopped) return x;
  }
  return x;
}

}  // namespace

at::Tensor run_graph(const std::vector<GraphNode>& nodes, at::Tensor x, const std::string& model,
                     const std::string& who, std::map<std::string, at::Tensor>& taps,
                     const std::string& stop, const GraphVisitor& visit,
                     const GraphLayerFn& layer) {
  bool stopped = false;
  return run(nodes, std::move(x), model, who, taps, stop, visit, layer, true, stopped);
}

}  // namespace cnnvis::detail
