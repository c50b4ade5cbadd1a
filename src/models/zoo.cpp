// The model zoo: torchvision's AlexNet, VGG and ResNet, written as a list of "stages" so that
// taps and forward_from need no hooks. A stage is one top-level step of torchvision's forward()
// (features.3, avgpool, layer2.1, fc, ...); its output is the whole state of the network, which
// is what makes it resumable. Layers inside a residual block are tappable but not resumable.
#include "cnnvis/models/zoo.hpp"

#include <torch/torch.h>

#include <cmath>
#include <functional>
#include <map>
#include <set>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/models/weights.hpp"
#include "detail/strings.hpp"

namespace cnnvis {
namespace {

namespace nn = torch::nn;
using torch::Tensor;

// Records the wanted taps; returns what the pass goes on with: the activation itself, or, when
// the taps start the autograd graph (Model::forward_for_tap_gradients), a leaf copy of it that
// requires grad (unless it already depends on an earlier tap).
struct Recorder {
  const std::set<std::string>* wanted = nullptr;
  std::map<std::string, Tensor>* out = nullptr;
  bool leaves = false;
  Tensor operator()(const std::string& name, const Tensor& t) const {
    if (!wanted || !wanted->count(name)) return t;
    const Tensor v = leaves && !t.requires_grad() ? t.detach().requires_grad_(true) : t;
    (*out)[name] = v;
    return v;
  }
};

// True when nothing but the caller's one reference can see t, so it may be overwritten in
// place (as torchvision's ReLU(inplace=True) and BasicBlock's `out += identity`): no gradient
// is recorded through it, no other tensor shares its storage (a tap, the caller's input, a
// view), and it is not an inference tensor outside InferenceMode.
bool sole_reference(const Tensor& t) {
  return t.use_count() == 1 && t.storage().use_count() == 1;
}

bool can_overwrite(const Tensor& t) {
  return !t.requires_grad() && sole_reference(t) &&
         (!t.is_inference() || c10::InferenceMode::is_enabled());
}

// The same while a gradient is recorded, as PyTorch allows it for torchvision's in-place ReLU
// and `out += identity`: t is an intermediate result that only this pass holds, and the
// operation that made it (a convolution, batch norm, linear layer or sum: the only ones before
// a zoo ReLU or sum) does not keep it for its backward.
bool can_overwrite_in_graph(const Tensor& t) {
  return t.requires_grad() && !t.is_leaf() && !t.is_view() && sole_reference(t);
}

class ReluImpl : public nn::Module {
 public:
  // In place when x can be overwritten (no allocation: forward passes without a gradient, and
  // plain gradients, whose ReLU backward needs only the output), else cnnvis::relu (the ReLU
  // mode's backward: guided backprop and deconvnet).
  Tensor forward(const Tensor& x) {
    if (can_overwrite(x) || (mode == ReluMode::kNormal && can_overwrite_in_graph(x))) {
      return x.relu_();
    }
    return cnnvis::relu(x, mode);
  }
  ReluMode mode = ReluMode::kNormal;
};
TORCH_MODULE(Relu);

int64_t count_parameters(nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

std::string type_of(const std::shared_ptr<nn::Module>& m) {
  if (std::dynamic_pointer_cast<nn::Conv2dImpl>(m)) return "Conv2d";
  if (std::dynamic_pointer_cast<nn::BatchNorm2dImpl>(m)) return "BatchNorm2d";
  if (std::dynamic_pointer_cast<ReluImpl>(m)) return "ReLU";
  if (std::dynamic_pointer_cast<nn::MaxPool2dImpl>(m)) return "MaxPool2d";
  if (std::dynamic_pointer_cast<nn::AdaptiveAvgPool2dImpl>(m)) return "AdaptiveAvgPool2d";
  if (std::dynamic_pointer_cast<nn::AdaptiveMaxPool2dImpl>(m)) return "AdaptiveMaxPool2d";
  if (std::dynamic_pointer_cast<nn::LinearImpl>(m)) return "Linear";
  if (std::dynamic_pointer_cast<nn::DropoutImpl>(m)) return "Dropout";
  if (std::dynamic_pointer_cast<nn::SequentialImpl>(m)) return "Sequential";
  return "Module";
}

nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding,
                bool bias) {
  return nn::Conv2d(
      nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).bias(bias));
}

// torchvision's BasicBlock (expansion 1) and Bottleneck (expansion 4, stride on conv2 as in
// ResNet v1.5), with torchvision's child names.
class BlockImpl : public nn::Module {
 public:
  BlockImpl(bool bottleneck, int64_t inplanes, int64_t planes, int64_t stride)
      : bottleneck_(bottleneck) {
    const int64_t out = planes * (bottleneck ? 4 : 1);
    if (bottleneck) {
      conv1_ = register_module("conv1", conv(inplanes, planes, 1, 1, 0, false));
      bn1_ = register_module("bn1", nn::BatchNorm2d(planes));
      conv2_ = register_module("conv2", conv(planes, planes, 3, stride, 1, false));
      bn2_ = register_module("bn2", nn::BatchNorm2d(planes));
      conv3_ = register_module("conv3", conv(planes, out, 1, 1, 0, false));
      bn3_ = register_module("bn3", nn::BatchNorm2d(out));
      relu_ = register_module("relu", Relu());
    } else {  // torchvision registers BasicBlock's relu before conv2
      conv1_ = register_module("conv1", conv(inplanes, planes, 3, stride, 1, false));
      bn1_ = register_module("bn1", nn::BatchNorm2d(planes));
      relu_ = register_module("relu", Relu());
      conv2_ = register_module("conv2", conv(planes, planes, 3, 1, 1, false));
      bn2_ = register_module("bn2", nn::BatchNorm2d(planes));
    }
    if (stride != 1 || inplanes != out) {
      downsample_ = register_module(
          "downsample", nn::Sequential(conv(inplanes, out, 1, stride, 0, false),
                                       nn::BatchNorm2d(out)));
    }
  }

  // Child layers for layers(), in torchvision's named_modules order.
  std::vector<LayerInfo> child_layers(const std::string& prefix) {
    std::vector<LayerInfo> infos;
    for (const auto& item : named_children()) {
      infos.push_back({prefix + item.key(), type_of(item.value()), count_parameters(*item.value()),
                       false, {}});
      if (item.key() == "downsample") {
        infos.push_back({prefix + "downsample.0", "Conv2d",
                         count_parameters(*downsample_[0]), false, {}});
        infos.push_back({prefix + "downsample.1", "BatchNorm2d",
                         count_parameters(*downsample_[1]), false, {}});
      }
    }
    return infos;
  }

  // The block as a residual graph node: relu(branch(x) + shortcut(x)).
  GraphNode graph_node(const std::string& name) const {
    const std::string p = name + ".";
    auto layer = [&](const std::string& child, const std::string& type,
                     std::shared_ptr<nn::Module> module) {
      GraphNode node;
      node.name = p + child;
      node.type = type;
      node.module = std::move(module);
      return node;
    };
    GraphNode node;
    node.kind = GraphNode::Kind::kResidual;
    node.name = name;
    node.type = bottleneck_ ? "Bottleneck" : "BasicBlock";
    node.branch = {layer("conv1", "Conv2d", conv1_.ptr()), layer("bn1", "BatchNorm2d", bn1_.ptr()),
                   layer("relu", "ReLU", relu_.ptr()), layer("conv2", "Conv2d", conv2_.ptr()),
                   layer("bn2", "BatchNorm2d", bn2_.ptr())};
    if (bottleneck_) {
      node.branch.push_back(layer("relu", "ReLU", relu_.ptr()));
      node.branch.push_back(layer("conv3", "Conv2d", conv3_.ptr()));
      node.branch.push_back(layer("bn3", "BatchNorm2d", bn3_.ptr()));
    }
    if (downsample_) {
      node.shortcut = {layer("downsample.0", "Conv2d", downsample_->ptr(0)),
                       layer("downsample.1", "BatchNorm2d", downsample_->ptr(1))};
      node.shortcut.back().aliases.push_back(p + "downsample");
    }
    node.after = {layer("relu", "ReLU", relu_.ptr())};
    return node;
  }

  // Returns the block output; records its children under `prefix`. The shared `relu` module
  // runs two or three times: its tap holds its last output (the block's output), as a forward
  // hook that overwrites would.
  Tensor forward(const Tensor& x, const std::string& prefix, const Recorder& rec) {
    auto step = [&](const std::string& name, auto& module, const Tensor& in) {
      return rec(prefix + name, module->forward(in));
    };
    Tensor out = step("conv1", conv1_, x);
    out = step("bn1", bn1_, out);
    out = step("relu", relu_, out);
    out = step("conv2", conv2_, out);
    out = step("bn2", bn2_, out);
    if (bottleneck_) {
      out = step("relu", relu_, out);
      out = step("conv3", conv3_, out);
      out = step("bn3", bn3_, out);
    }
    Tensor identity = x;
    if (downsample_) {
      identity = downsample_[0]->as<nn::Conv2d>()->forward(x);
      identity = rec(prefix + "downsample.0", identity);
      identity = downsample_[1]->as<nn::BatchNorm2d>()->forward(identity);
      identity = rec(prefix + "downsample.1", identity);
      identity = rec(prefix + "downsample", identity);
    }
    if (can_overwrite(out) || can_overwrite_in_graph(out)) {
      identity = out.add_(identity);  // out's only reference: reuse its memory
      out.reset();
      return step("relu", relu_, identity);
    }
    return step("relu", relu_, out + identity);
  }

 private:
  bool bottleneck_;
  nn::Conv2d conv1_{nullptr}, conv2_{nullptr}, conv3_{nullptr};
  nn::BatchNorm2d bn1_{nullptr}, bn2_{nullptr}, bn3_{nullptr};
  Relu relu_{nullptr};
  nn::Sequential downsample_{nullptr};
};
TORCH_MODULE(Block);

// A network as a list of stages. Subclass constructors build the modules and stages.
class ZooModel : public Model {
 public:
  ZooModel(std::string arch, int64_t num_classes)
      : arch_(std::move(arch)), num_classes_(num_classes),
        net_(std::make_shared<nn::Module>()) {}

  std::string name() const override { return arch_; }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<LayerInfo> layers() const override { return layers_; }
  nn::Module& module() override { return *net_; }
  std::string default_cam_layer() const override { return cam_layer_; }
  std::vector<GraphNode> graph() const override { return graph_; }
  // forward() writes nothing: the stages only read their modules (eval-mode batch norm, and
  // dropout off outside training; Model::concurrent_forward checks training itself).
  bool concurrent_forward() const override { return true; }

  ForwardResult forward_impl(const Tensor& x, const std::vector<std::string>& taps) override {
    return record(x, taps, false);
  }
  std::optional<ForwardResult> forward_tap_leaves_impl(
      const Tensor& x, const std::vector<std::string>& taps) override {
    return record(x, taps, true);
  }

  Tensor forward_from_impl(const std::string& layer, const Tensor& activation) override {
    auto it = resume_.find(layer);
    if (it == resume_.end()) {
      std::vector<std::string> resumable;
      for (const auto& info : layers_) {
        if (info.resumable) resumable.push_back(info.name);
      }
      throw usage_error("forward_from: layer '" + layer + "' of " + arch_ +
                        " is inside a block, so its activation alone does not determine the "
                        "rest of the network; use one of the closest resumable layers: " +
                        detail::join(detail::closest_matches(layer, resumable, 4)));
    }
    return run(it->second + 1, activation, Recorder{});
  }

 protected:
  void apply_relu_mode(ReluMode mode) override {
    for (auto* r : relus_) r->mode = mode;
  }

  // Adds a container (Sequential) of stages: one stage per child, the container name is an
  // alias of its last child's output.
  void add_sequential(const std::string& name, nn::Sequential seq) {
    net_->register_module(name, seq);
    add_layer({name, "Sequential", count_parameters(*seq), true, {}});
    for (size_t i = 0; i < seq->size(); ++i) {
      auto child = seq->ptr(i);
      const std::string child_name = name + "." + std::to_string(i);
      nn::AnyModule any = *(seq->begin() + static_cast<std::ptrdiff_t>(i));
      if (auto relu = std::dynamic_pointer_cast<ReluImpl>(child)) {
        // Called directly: AnyModule would hold a second reference to x (no ReLU in place).
        add_stage(child_name, "ReLU", 0,
                  [relu](const Tensor& x, const Recorder&) { return relu->forward(x); });
      } else {
        add_stage(child_name, type_of(child), count_parameters(*child),
                  [any](const Tensor& x, const Recorder&) mutable {
                    return any.forward<Tensor>(x);
                  });
      }
      add_graph_layer(child_name, type_of(child), child);
    }
    alias_ending_stage(name);
  }

  template <typename M>
  void add_module_stage(const std::string& name, M module, const std::string& type) {
    net_->register_module(name, module);
    add_stage(name, type, count_parameters(*module.ptr()),
              [module](const Tensor& x, const Recorder&) mutable {
                return module->forward(x);
              });
    add_graph_layer(name, type, module.ptr());
  }

  void add_flatten() {
    stages_.push_back({"", [](const Tensor& x, const Recorder&) { return x.flatten(1); }, {}});
    GraphNode node;
    node.kind = GraphNode::Kind::kFlatten;
    graph_.push_back(std::move(node));
  }

  void add_graph_layer(const std::string& name, const std::string& type,
                       std::shared_ptr<nn::Module> module) {
    GraphNode node;
    node.name = name;
    node.type = type;
    node.module = std::move(module);
    graph_.push_back(std::move(node));
  }

  void add_graph_node(GraphNode node) { graph_.push_back(std::move(node)); }

  void add_stage(const std::string& name, const std::string& type, int64_t params,
                 std::function<Tensor(const Tensor&, const Recorder&)> fn) {
    stages_.push_back({name, std::move(fn), {name}});
    add_layer({name, type, params, true, {}});
    resume_[name] = stages_.size() - 1;
  }

  // The layer `name` (already in layers_) is the output of the last stage added.
  void alias_ending_stage(const std::string& name) {
    stages_.back().names.push_back(name);
    if (!graph_.empty()) graph_.back().aliases.push_back(name);
    resume_[name] = stages_.size() - 1;
  }

  void add_layer(LayerInfo info) {
    layers_.push_back(std::move(info));
  }

  void collect_relus() {
    for (const auto& m : net_->modules(/*include_self=*/false)) {
      if (auto r = std::dynamic_pointer_cast<ReluImpl>(m)) relus_.push_back(r.get());
    }
  }

  void finish(std::string cam_layer) {
    cam_layer_ = std::move(cam_layer);
    collect_relus();
    net_->eval();
    for (auto& p : net_->parameters()) p.set_requires_grad(false);
  }

  std::shared_ptr<nn::Module> net() { return net_; }

 private:
  struct Stage {
    std::string name;
    std::function<Tensor(const Tensor&, const Recorder&)> fn;
    std::vector<std::string> names;  // layer names whose activation is this stage's output
  };

  ForwardResult record(const Tensor& x, const std::vector<std::string>& taps, bool leaves) {
    ForwardResult result;
    const std::set<std::string> wanted(taps.begin(), taps.end());
    result.output = run(0, x, Recorder{&wanted, &result.taps, leaves});
    return result;
  }

  Tensor run(size_t first, Tensor x, const Recorder& rec) {
    for (size_t i = first; i < stages_.size(); ++i) {
      x = stages_[i].fn(x, rec);
      for (const auto& n : stages_[i].names) x = rec(n, x);
    }
    return x;
  }

  std::string arch_;
  int64_t num_classes_;
  std::shared_ptr<nn::Module> net_;
  std::vector<Stage> stages_;
  std::vector<LayerInfo> layers_;
  std::vector<GraphNode> graph_;
  std::map<std::string, size_t> resume_;
  std::vector<ReluImpl*> relus_;
  std::string cam_layer_;

};

// torchvision's vgg make_layers: 3x3 convolutions (with BatchNorm if asked) and ReLUs; 0 in
// `cfg` is a 2x2 max-pool.
nn::Sequential vgg_features(const std::vector<int>& cfg, bool batch_norm) {
  nn::Sequential features;
  int64_t in = 3;
  for (int v : cfg) {
    if (v == 0) {
      features->push_back(nn::MaxPool2d(nn::MaxPool2dOptions(2).stride(2)));
      continue;
    }
    features->push_back(conv(in, v, 3, 1, 1, true));
    if (batch_norm) features->push_back(nn::BatchNorm2d(v));
    features->push_back(Relu());
    in = v;
  }
  return features;
}

// The last ReLU of `features`: the last convolutional block's output (features.29 for VGG16,
// features.11 for AlexNet).
std::string last_relu(const std::string& prefix, nn::Sequential& seq) {
  for (size_t i = seq->size(); i-- > 0;) {
    if (std::dynamic_pointer_cast<ReluImpl>(seq->ptr(i))) return prefix + std::to_string(i);
  }
  return prefix;
}

class AlexNet : public ZooModel {
 public:
  explicit AlexNet(int64_t num_classes) : ZooModel("alexnet", num_classes) {
    nn::Sequential features(conv(3, 64, 11, 4, 2, true), Relu(),
                            nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)),
                            conv(64, 192, 5, 1, 2, true), Relu(),
                            nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)),
                            conv(192, 384, 3, 1, 1, true), Relu(), conv(384, 256, 3, 1, 1, true),
                            Relu(), conv(256, 256, 3, 1, 1, true), Relu(),
                            nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2)));
    add_sequential("features", features);
    add_module_stage("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({6, 6})),
                     "AdaptiveAvgPool2d");
    add_flatten();
    add_sequential("classifier",
                   nn::Sequential(nn::Dropout(0.5), nn::Linear(256 * 6 * 6, 4096), Relu(),
                                  nn::Dropout(0.5), nn::Linear(4096, 4096), Relu(),
                                  nn::Linear(4096, num_classes)));
    finish(last_relu("features.", features));
  }
};

class Vgg : public ZooModel {
 public:
  Vgg(const std::string& arch, const std::vector<int>& cfg, bool batch_norm, int64_t num_classes)
      : ZooModel(arch, num_classes) {
    nn::Sequential features = vgg_features(cfg, batch_norm);
    add_sequential("features", features);
    add_module_stage("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({7, 7})),
                     "AdaptiveAvgPool2d");
    add_flatten();
    add_sequential("classifier",
                   nn::Sequential(nn::Linear(512 * 7 * 7, 4096), Relu(), nn::Dropout(0.5),
                                  nn::Linear(4096, 4096), Relu(), nn::Dropout(0.5),
                                  nn::Linear(4096, num_classes)));
    finish(last_relu("features.", features));
  }
};

class ResNet : public ZooModel {
 public:
  ResNet(const std::string& arch, bool bottleneck, const std::vector<int>& blocks,
         int64_t num_classes)
      : ZooModel(arch, num_classes) {
    add_module_stage("conv1", conv(3, 64, 7, 2, 3, false), "Conv2d");
    add_module_stage("bn1", nn::BatchNorm2d(64), "BatchNorm2d");
    add_module_stage("relu", Relu(), "ReLU");
    add_module_stage("maxpool", nn::MaxPool2d(nn::MaxPool2dOptions(3).stride(2).padding(1)),
                     "MaxPool2d");
    const int64_t expansion = bottleneck ? 4 : 1;
    int64_t inplanes = 64;
    for (int layer = 0; layer < 4; ++layer) {
      const int64_t planes = 64 << layer;
      const std::string name = "layer" + std::to_string(layer + 1);
      nn::Sequential seq;
      for (int b = 0; b < blocks[layer]; ++b) {
        seq->push_back(Block(bottleneck, inplanes, planes, (b == 0 && layer > 0) ? 2 : 1));
        inplanes = planes * expansion;
      }
      net()->register_module(name, seq);
      add_layer({name, "Sequential", count_parameters(*seq), true, {}});
      for (size_t b = 0; b < seq->size(); ++b) {
        auto block = seq->ptr<BlockImpl>(b);
        const std::string block_name = name + "." + std::to_string(b);
        add_stage(block_name, bottleneck ? "Bottleneck" : "BasicBlock", count_parameters(*block),
                  [block, prefix = block_name + "."](const Tensor& x, const Recorder& rec) {
                    return block->forward(x, prefix, rec);
                  });
        add_graph_node(block->graph_node(block_name));
        for (auto& info : block->child_layers(block_name + ".")) add_layer(std::move(info));
      }
      alias_ending_stage(name);
    }
    add_module_stage("avgpool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({1, 1})),
                     "AdaptiveAvgPool2d");
    add_flatten();
    add_module_stage("fc", nn::Linear(512 * expansion, num_classes), "Linear");
    finish("layer4");
  }
};

// The demo model: a small VGG-style network with BatchNorm (features, pool, classifier, as
// torchvision's vgg*_bn) for the synthetic shape scenes of cnnvis::demo, trained by
// `cnnvis train-demo`. The last two convolutions run at 1/8 of the input (12x12 at 96x96),
// which keeps CAM maps informative; global pooling makes it size-agnostic.
class DemoNet : public ZooModel {
 public:
  explicit DemoNet(int64_t num_classes) : ZooModel("demo", num_classes) {
    nn::Sequential features = vgg_features({16, 0, 32, 0, 64, 0, 64, 64}, /*batch_norm=*/true);
    const int64_t in = 64;
    add_sequential("features", features);
    // Global average pooling (Zhou et al. 2016's CAM architecture): every position's evidence
    // counts, so the class evidence lies on the whole object and a CAM of features.17 shows it.
    // (With global max pooling only each channel's strongest position mattered: its CAMs peaked
    // in a crescent's bay.) Average pooling alone does not leave chance level on the cluttered
    // scenes, so train_demo starts with max pooling (cnnvis/demo/train.hpp).
    add_module_stage("pool", nn::AdaptiveAvgPool2d(nn::AdaptiveAvgPool2dOptions({1, 1})),
                     "AdaptiveAvgPool2d");
    add_flatten();
    add_sequential("classifier", nn::Sequential(nn::Linear(in, 64), Relu(),
                                                nn::Linear(64, num_classes)));
    finish(last_relu("features.", features));
  }
  std::vector<std::string> default_class_names() const override {
    return num_classes() == static_cast<int64_t>(demo::shape_classes().size())
               ? demo::shape_classes()
               : std::vector<std::string>{};
  }
};

// torchvision's VGG configurations; 0 is a max-pool.
const std::map<std::string, std::vector<int>>& vgg_configs() {
  static const std::map<std::string, std::vector<int>> configs = {
      {"vgg11", {64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}},
      {"vgg13", {64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0}},
      {"vgg16", {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0}},
      {"vgg19", {64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512,
                 512, 512, 0}},
  };
  return configs;
}

}  // namespace

const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names = {
      "alexnet",  "vgg11",    "vgg11_bn", "vgg13",     "vgg13_bn",  "vgg16",    "vgg16_bn",
      "vgg19",    "vgg19_bn", "resnet18", "resnet34",  "resnet50",  "resnet101", "resnet152",
      "demo"};
  return names;
}

std::unique_ptr<Model> make_model(const std::string& arch, int64_t num_classes) {
  if (num_classes < 0) {
    throw usage_error("num_classes must be >= 1 (or 0 for the architecture's own), got " +
                      std::to_string(num_classes));
  }
  if (arch == "demo") {
    return std::make_unique<DemoNet>(num_classes ? num_classes
                                                 : static_cast<int64_t>(
                                                       demo::shape_classes().size()));
  }
  if (num_classes == 0) num_classes = 1000;
  if (arch == "alexnet") return std::make_unique<AlexNet>(num_classes);
  const bool bn = arch.size() > 3 && arch.compare(arch.size() - 3, 3, "_bn") == 0;
  const auto& vgg = vgg_configs();
  if (auto it = vgg.find(bn ? arch.substr(0, arch.size() - 3) : arch); it != vgg.end()) {
    return std::make_unique<Vgg>(arch, it->second, bn, num_classes);
  }
  static const std::map<std::string, std::pair<bool, std::vector<int>>> resnets = {
      {"resnet18", {false, {2, 2, 2, 2}}},  {"resnet34", {false, {3, 4, 6, 3}}},
      {"resnet50", {true, {3, 4, 6, 3}}},   {"resnet101", {true, {3, 4, 23, 3}}},
      {"resnet152", {true, {3, 8, 36, 3}}}};
  if (auto it = resnets.find(arch); it != resnets.end()) {
    return std::make_unique<ResNet>(arch, it->second.first, it->second.second, num_classes);
  }
  throw usage_error("unknown model '" + arch + "'; closest: " +
                    detail::join(detail::closest_matches(arch, model_names(), 3)) +
                    " (known: " + detail::join(model_names()) + ")");
}

void randomize_weights(Model& model, uint64_t seed) {
  std::map<std::string, Tensor> tensors;  // sorted by key, as the Python mirror does
  for (const auto& item : model.module().named_parameters()) tensors[item.key()] = item.value();
  for (const auto& item : model.module().named_buffers()) tensors[item.key()] = item.value();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::NoGradGuard no_grad;
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(),
                                                  suffix) == 0;
  };
  for (auto& [key, t] : tensors) {
    if (ends_with(key, "num_batches_tracked")) continue;
    // In-place arithmetic: the same float operations as the Python mirror's out-of-place ones
    // (bit-identical results) without VGG-sized temporaries.
    auto r = torch::rand(t.sizes(), gen, torch::kFloat);
    if (ends_with(key, "running_var")) {
      r.add_(0.5);
    } else if (ends_with(key, "weight") && t.dim() >= 2) {
      const double fan_in = static_cast<double>(t.numel() / t.size(0));
      r.mul_(2).sub_(1).mul_(std::sqrt(6.0 / fan_in));
    } else if (ends_with(key, "weight")) {
      r.mul_(2).sub_(1).mul_(0.1).add_(1);
    } else {
      r.mul_(2).sub_(1).mul_(0.1);
    }
    t.copy_(r);
  }
}

void load_weights(Model& model, const std::string& path) {
  assign_state_dict(model.module(), read_state_dict(path), path);
}

}  // namespace cnnvis
