#pragma once
// The model contract. LibTorch's C++ modules have no forward/backward hooks, so everything the
// methods need from a network is part of this interface instead:
//   - forward(x, taps): the output plus the activations of any named layers ("taps");
//   - forward_from(layer, activation): run only the layers after `layer`;
//   - ReLU modes (normal / guided backprop / deconvnet), switched with ReluModeGuard only;
//   - parameters frozen (requires_grad = false), so torch::autograd::grad computes no weight
//     gradients and stops at the tapped layer;
//   - optionally graph(): the layers as data, for methods that walk them one by one (LRP).
// Layers are addressed by torchvision's dotted names ("features.29", "layer4.1.conv2").
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace torch::nn {
class Module;
}

namespace cnnvis {

namespace detail {
struct WeightLayoutCache;
}

// How every ReLU of a model back-propagates (forward is always max(x, 0)):
//   kNormal: R_in = 1[x > 0] * R_out                       (the gradient)
//   kGuided: R_in = 1[x > 0] * max(R_out, 0)               (Springenberg et al. 2015)
//   kDeconv: R_in = max(R_out, 0)                          (Zeiler and Fergus 2014)
//   kRedirected: lucid's redirected ReLU (synthesis): the gradient, except for an image whose
//            ReLU gradient is zero everywhere: R_in = R_out * !(x < 0 and R_out > 0) there
enum class ReluMode { kNormal, kGuided, kDeconv, kRedirected };
const char* to_string(ReluMode mode);

// One addressable layer. Output shapes come from describe_layers(), which runs the model.
struct LayerInfo {
  std::string name;            // torchvision's dotted name, e.g. "features.28"
  std::string type;            // "Conv2d", "ReLU", "BasicBlock", "Sequential", ...
  int64_t parameters = 0;      // number of parameter elements inside the layer
  bool resumable = false;      // forward_from(name, ...) accepts it
  std::vector<int64_t> shape;  // output shape [N, C, H, W] (filled by describe_layers)
};

// One node of a model's layer graph (Model::graph()): what methods that walk the network layer
// by layer (LRP) need, since LibTorch has no hooks to discover it. A sequence of nodes is applied
// in order; a residual node computes after(branch(x) + shortcut(x)).
struct GraphNode {
  enum class Kind { kLayer, kFlatten, kResidual };
  Kind kind = Kind::kLayer;
  std::string name;                  // the layer's dotted name; empty for kFlatten
  std::vector<std::string> aliases;  // other names of this node's output ("features" for its
                                     // last child, "layer4" for its last block)
  // kLayer: "Conv2d", "Linear", "BatchNorm2d", "ReLU", "MaxPool2d", "AvgPool2d",
  // "AdaptiveAvgPool2d", "AdaptiveMaxPool2d", "Dropout", "Identity"; kResidual: the block type.
  std::string type;
  // kLayer: the torch module, whose parameters and options the walk uses (torch::nn::Conv2d,
  // Linear, BatchNorm2d, MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, Dropout,
  // ReLU, Identity); a "ReLU" node may hold any module (it is applied as max(x, 0)).
  std::shared_ptr<torch::nn::Module> module;
  std::vector<GraphNode> branch;    // kResidual: the main path
  std::vector<GraphNode> shortcut;  // kResidual: the shortcut path (empty: identity)
  std::vector<GraphNode> after;     // kResidual: applied to the sum (ResNet: the ReLU)
};

struct ForwardResult {
  at::Tensor output;                        // logits [N, num_classes]
  std::map<std::string, at::Tensor> taps;   // requested activations by layer name
};

class Model {
 public:
  virtual ~Model() = default;
  Model() = default;
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // Architecture name, e.g. "vgg16".
  virtual std::string name() const = 0;
  virtual int64_t num_classes() const = 0;
  // Every addressable layer in forward order (shapes left empty; see describe_layers).
  virtual std::vector<LayerInfo> layers() const = 0;
  // Runs the network on x [N, 3, H, W]; returns the output and the activation of each layer
  // named in `taps`. An unknown name throws cnnvis::Error listing the closest valid names.
  ForwardResult forward(const at::Tensor& x, const std::vector<std::string>& taps = {});
  // forward(x, taps) for methods that need the gradients of the output with respect to the
  // taps only (the Grad-CAM family): the autograd graph starts at the taps, so the layers
  // before them record nothing (a forward pass that records costs about 1.3x one that does
  // not). Each tap that does not depend on another is a leaf that requires grad; the gradient
  // of anything computed from the result with respect to a tap is what it is when the input
  // requires grad. Models that do not implement forward_tap_leaves_impl run forward(x, taps)
  // with the input requiring grad.
  ForwardResult forward_for_tap_gradients(const at::Tensor& x,
                                          const std::vector<std::string>& taps);
  // The activations of `taps` alone, for objectives that read layers only (synthesis): the
  // model may skip every layer that no tap needs, and ForwardResult::output is then undefined.
  // A TorchScript model runs a graph whose outputs are the taps (what comes after them is
  // never run); the zoo and models that do not implement forward_taps_impl run forward(x,
  // taps), output included.
  ForwardResult forward_taps(const at::Tensor& x, const std::vector<std::string>& taps);
  // Runs only the layers after `layer`, starting from its activation (as returned in taps).
  // `layer` must be resumable (see layers()), else cnnvis::Error.
  at::Tensor forward_from(const std::string& layer, const at::Tensor& activation);
  // The underlying torch module: parameters and buffers under torchvision's names.
  virtual torch::nn::Module& module() = 0;
  // The layer Grad-CAM-style methods use by default (the last convolutional block's output).
  virtual std::string default_cam_layer() const = 0;
  // Class names by index, for printing and for --target NAME; empty if unknown: those given
  // to set_class_names, else the model's own (default_class_names).
  std::vector<std::string> class_names() const;
  // Names the classes (CLI --labels FILE, see read_class_names). Throws cnnvis::Error
  // (invalid argument) unless there is one name per class.
  void set_class_names(std::vector<std::string> names);
  // The layer graph, in forward order, for methods that walk the network layer by layer (LRP).
  // Applying the nodes to x must give forward(x).output. The default is empty: such methods
  // then throw an error saying that the model does not describe its graph.
  virtual std::vector<GraphNode> graph() const;
  // For `cnnvis layers`, one line each: what forward returns and which part the logits are
  // ("" when it returns the logits alone), and which activations the guided and deconvnet ReLU
  // modes change and which keep their gradient ("" when every activation is a ReLU module).
  virtual std::string describe_output() const { return ""; }
  virtual std::string describe_activations() const { return ""; }
  // Why graph() is empty, for the errors of the methods that need it ("" if not known).
  virtual std::string graph_problem() const { return ""; }

  // True if forward() and autograd through its result may run on several threads at once
  // (nothing is written during a forward pass, as in torch modules in eval mode). Gradient
  // methods then split a CPU batch (integrated gradients' path points, SmoothGrad's noisy
  // copies, a batch of images) over the intra-op threads, one slice per thread: on a CPU that
  // is faster than running the whole batch with every thread inside each layer. The default
  // is false; the zoo's models return true. Whatever it returns, a model in training mode
  // (module().is_training()) is never run concurrently.
  virtual bool concurrent_forward() const { return false; }

  ReluMode relu_mode() const { return relu_mode_; }

  // Throws cnnvis::Error (invalid argument) if `layer` is not a layer of this model, naming
  // the closest valid names.
  void check_layer(const std::string& layer) const;

 protected:
  // What subclasses implement; forward() and forward_from() have checked the layer names.
  // forward_impl must put every name of `taps` into ForwardResult::taps.
  virtual ForwardResult forward_impl(const at::Tensor& x, const std::vector<std::string>& taps) = 0;
  // Optional: forward_impl with every tapped activation that does not require grad replaced,
  // for the rest of the pass, by a leaf copy that does (x.detach().requires_grad_(true)); the
  // input does not require grad. std::nullopt (the default): not supported.
  virtual std::optional<ForwardResult> forward_tap_leaves_impl(
      const at::Tensor& /*x*/, const std::vector<std::string>& /*taps*/) {
    return std::nullopt;
  }
  // Optional: forward_impl that may stop after the last layer the taps need (output
  // undefined). std::nullopt (the default): not supported.
  virtual std::optional<ForwardResult> forward_taps_impl(
      const at::Tensor& /*x*/, const std::vector<std::string>& /*taps*/) {
    return std::nullopt;
  }
  // Must throw cnnvis::Error (usage_error) for a layer that is not resumable.
  virtual at::Tensor forward_from_impl(const std::string& layer, const at::Tensor& activation) = 0;
  // Subclasses switch every ReLU they own; only ReluModeGuard calls this.
  virtual void apply_relu_mode(ReluMode mode) = 0;
  // The model's own class names; the default: ImageNet's for a 1000-class model.
  virtual std::vector<std::string> default_class_names() const;

 private:
  friend class ReluModeGuard;
  friend class WeightLayoutGuard;
  ReluMode relu_mode_ = ReluMode::kNormal;
  std::vector<std::string> class_names_;
  std::shared_ptr<detail::WeightLayoutCache> layout_cache_;  // WeightLayoutGuard's copies
};

// Class names from a text file, one per line in class order (a trailing newline and Windows
// line ends are fine). Throws cnnvis::Error naming the file and line for an empty name or a
// name given twice.
std::vector<std::string> read_class_names(const std::string& path);

// Sets a model's ReLU mode for a scope and restores the previous one on exit, also when an
// exception leaves the scope.
class ReluModeGuard {
 public:
  ReluModeGuard(Model& model, ReluMode mode);
  ~ReluModeGuard();
  ReluModeGuard(const ReluModeGuard&) = delete;
  ReluModeGuard& operator=(const ReluModeGuard&) = delete;

 private:
  Model& model_;
  ReluMode previous_;
};

// Runs a model with every 4-D parameter (the convolutions' weights) in `format` for a scope
// (at::MemoryFormat::ChannelsLast: NHWC, for which oneDNN has other kernels) and puts the
// parameters' own tensors back on exit, also when an exception leaves the scope. The values are
// the same, so results differ by rounding only. The copies stay with the model for the next
// guard and are made again when a parameter has changed (new data, or written in place).
// Like ReluModeGuard, not for a model that another thread is running.
class WeightLayoutGuard {
 public:
  WeightLayoutGuard(Model& model, at::MemoryFormat format);
  // Every 2-D and 4-D float32 parameter (the weights of linear layers and convolutions, which
  // autocast runs in a lower precision anyway) as `dtype` (bfloat16 or float16), so that an
  // autocast region does not convert them on every call (PrecisionGuard). Other parameters
  // (biases, normalization) keep their dtype.
  WeightLayoutGuard(Model& model, at::ScalarType dtype);
  ~WeightLayoutGuard();
  WeightLayoutGuard(const WeightLayoutGuard&) = delete;
  WeightLayoutGuard& operator=(const WeightLayoutGuard&) = delete;
  // How many parameters the guard switched (0: none is 4-D and in another layout).
  size_t switched() const { return restore_.size(); }

 private:
  void switch_to(Model& model, at::MemoryFormat format, at::ScalarType dtype, bool cast);
  std::vector<std::pair<at::Tensor, at::Tensor>> restore_;  // parameter, its own data
};

// True if `model` has a 4-D floating-point parameter that is not in `format`.
bool has_weights_to_switch(Model& model, at::MemoryFormat format);

// layers() with output shapes, found by one forward pass on zeros of [1, 3, height, width].
std::vector<LayerInfo> describe_layers(Model& model, int64_t height, int64_t width);

// max(x, 0) whose backward follows `mode` (a custom autograd function; plain relu for kNormal).
at::Tensor relu(const at::Tensor& x, ReluMode mode);

}  // namespace cnnvis
