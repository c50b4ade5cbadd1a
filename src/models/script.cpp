// TorchScript models (docs/ARCHITECTURE.md, "TorchScript models"). The module's forward graph
// is copied once and turned into a "master graph":
//  1. every prim::CallMethod / prim::CallFunction is inlined with the callee's own graph,
//     repeatedly, and the output of each submodule's forward call is marked by a cnnvis::tap
//     node that carries the module's dotted path (from the prim::GetAttr chain back to self);
//  2. the module's bool/int/float/None/list attributes (`training` above all) become
//     constants, then constant propagation, exception removal and dead-code elimination
//     remove `if self.training:` branches and asserts;
//  3. in-place ops (relu_, add_) become functional, so a tap keeps the value its module
//     returned even when the next module overwrites it in place (tap nodes claim fresh
//     memory, so the output of a tap is never the input of an in-place op).
// Each run uses a graph derived from the master (cached): the requested taps as extra outputs,
// every other tap node bypassed, ReLUs replaced by cnnvis::modal_relu in guided and deconvnet
// mode, and for forward_from the tapped value replaced by a new input. Derived graphs run in
// the simple executor (no profiling, no fusion), so results are deterministic. Parameters are
// read from the module at run time, through prim::GetAttr, and module() mirrors them in a
// torch::nn::Module that shares their tensors (so module().to(device) moves the model).
#include "cnnvis/models/script.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/ivalue.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <caffe2/serialize/versions.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/ir/ir.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/remove_exceptions.h>
#include <torch/csrc/jit/passes/remove_mutation.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/serialization/import.h>
#include <torch/library.h>
#include <torch/torch.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "cnnvis/error.hpp"
#include "cnnvis/io/file.hpp"
#include "detail/strings.hpp"
#include "detail/zip_check.hpp"
#include "methods/graph_forward.hpp"
#include "models/script_graph.hpp"

namespace cnnvis {
namespace {

namespace jit = torch::jit;

// ---- operators that edited graphs call ----

// The module output marker of the master graph (never run: derived graphs bypass it).
at::Tensor tap_op(const at::Tensor& x, std::string /*module*/) { return x; }
// max(x, 0) with the backward of ReluMode `mode` (cnnvis::relu).
at::Tensor modal_relu_op(const at::Tensor& x, int64_t mode) {
  return relu(x, static_cast<ReluMode>(mode));
}

// Where a tap starts the autograd graph (Model::forward_for_tap_gradients): a leaf copy that
// requires grad, unless x already depends on an earlier tap. The master graph has no in-place
// operation left (or the model does not start graphs at taps), so no leaf is ever written.
at::Tensor grad_leaf_op(const at::Tensor& x) {
  if (x.requires_grad() || !torch::GradMode::is_enabled()) return x;
  return x.detach().requires_grad_(true);
}

TORCH_LIBRARY(cnnvis, m) {
  m.def("tap(Tensor x, str module) -> Tensor", &tap_op);
  m.def("modal_relu(Tensor x, int mode) -> Tensor", &modal_relu_op);
  m.def("grad_leaf(Tensor x) -> Tensor", &grad_leaf_op);
}

using detail::kTap;
using detail::tap_name;
using detail::tapped_source;
const c10::Symbol kModalRelu = c10::Symbol::fromQualString("cnnvis::modal_relu");
const c10::Symbol kGradLeaf = c10::Symbol::fromQualString("cnnvis::grad_leaf");

// ---- graph helpers ----

template <typename Fn>
void for_each_node(jit::Block* block, const Fn& fn) {
  for (jit::Node* node : block->nodes()) {
    fn(node);
    for (jit::Block* sub : node->blocks()) for_each_node(sub, fn);
  }
}

std::vector<jit::Node*> nodes_of_kind(jit::Graph& graph, c10::Symbol kind) {
  std::vector<jit::Node*> out;
  for_each_node(graph.block(), [&](jit::Node* n) {
    if (n->kind() == kind) out.push_back(n);
  });
  return out;
}

// The dotted path of the module that `v` holds ("layer4.1"), following prim::GetAttr back to
// the graph's `self`; nullopt when `v` is not such a chain.
std::optional<std::vector<std::string>> attr_path(jit::Value* v, jit::Value* self) {
  std::vector<std::string> parts;
  while (v != self) {
    jit::Node* n = v->node();
    if (n->kind() != jit::prim::GetAttr) return std::nullopt;
    parts.push_back(n->s(jit::attr::name));
    v = n->input(0);
  }
  std::reverse(parts.begin(), parts.end());
  return parts;
}


// ---- step 1: inlining, with taps ----

// Also records each tapped module's Python class name in `types` (by module path).
void inline_calls(jit::Graph& graph, std::map<std::string, std::string>& types,
                  const std::string& source) {
  jit::Value* self = graph.inputs()[0];
  for (int round = 0;; ++round) {
    std::vector<jit::Node*> calls;
    for_each_node(graph.block(), [&](jit::Node* n) {
      if (n->kind() == jit::prim::CallMethod || n->kind() == jit::prim::CallFunction) {
        calls.push_back(n);
      }
    });
    if (calls.empty()) return;
    if (round > 10000) throw Error(source + ": the model's calls do not end (recursion?)");
    for (jit::Node* n : calls) {
      if (n->kind() == jit::prim::CallFunction) {
        auto type = n->input(0)->type()->cast<c10::FunctionType>();
        jit::GraphFunction* fn = type ? jit::tryToGraphFunction(*type->function()) : nullptr;
        if (fn == nullptr) {
          throw Error(source + ": the model calls a function that is not TorchScript");
        }
        fn->ensure_defined();
        n->removeInput(0);  // the function itself (as LibTorch's Inline pass does)
        jit::inlineCallTo(n, fn, fn->graph().get());
        continue;
      }
      const std::string method = n->s(jit::attr::name);
      auto cls = n->input(0)->type()->cast<c10::ClassType>();
      if (!cls) {
        throw Error(source + ": the model calls method " + method + " on something not a module");
      }
      jit::GraphFunction& fn = jit::toGraphFunction(cls->getMethod(method));
      fn.ensure_defined();
      const auto path = attr_path(n->input(0), self);
      // The tracer names a module's second call "forward1", its third "forward2", ...
      const bool forward = method.compare(0, 7, "forward") == 0 &&
                           std::all_of(method.begin() + 7, method.end(),
                                       [](char c) { return c >= '0' && c <= '9'; });
      if (forward && path && !path->empty() && n->outputs().size() == 1 &&
          n->output()->type()->isSubtypeOf(*c10::TensorType::get())) {
        const std::string name = detail::join(*path, ".");
        types[name] = cls->name() ? cls->name()->name() : "Module";
        jit::WithInsertPoint guard(n->next());
        jit::Value* label = graph.insertConstant(c10::IValue(name));
        jit::Node* tap = graph.insertNode(graph.create(kTap, {n->output(), label}, 1));
        tap->output()->setType(n->output()->type());
        n->output()->replaceAllUsesWith(tap->output());
        tap->replaceInput(0, n->output());
      }
      jit::inlineCallTo(n, &fn, fn.graph().get());
    }
  }
}

// ---- step 2: attributes to constants, then clean-up ----

void fold_attributes(jit::Graph& graph, const jit::Module& root, const std::string& source) {
  jit::Value* self = graph.inputs()[0];
  if (!nodes_of_kind(graph, jit::prim::SetAttr).empty()) {
    throw Error(source + ": the model assigns to its attributes in forward (prim::SetAttr); "
                "cnnvis explains models whose forward pass has no state of its own");
  }
  for (jit::Node* n : nodes_of_kind(graph, jit::prim::GetAttr)) {
    const auto path = attr_path(n->input(0), self);
    if (!path) continue;
    c10::IValue owner(root._ivalue());
    bool found = true;
    for (const auto& part : *path) {
      jit::Module m(owner.toObject());
      if (!m.hasattr(part)) {
        found = false;
        break;
      }
      owner = m.attr(part);
      if (!owner.isObject()) {
        found = false;
        break;
      }
    }
    if (!found) continue;
    jit::Module m(owner.toObject());
    const std::string name = n->s(jit::attr::name);
    if (!m.hasattr(name)) continue;
    const c10::IValue value = m.attr(name);
    // Modules stay (their attributes are folded in turn), and so do tensors (parameters and
    // buffers, read at run time, so that module().to() and set_data reach them).
    if (value.isObject() || value.isTensor() || value.isTensorList()) continue;
    jit::WithInsertPoint guard(n);
    const auto constant = jit::tryInsertConstant(graph, value);
    if (!constant) continue;
    n->output()->replaceAllUsesWith(*constant);
    n->destroy();
  }
}

void clean_up(std::shared_ptr<jit::Graph>& graph) {
  // The model's warnings.warn calls would print on every pass of every method (scripted
  // Inception-v3 warns that it returns a tuple): they are dropped.
  for (jit::Node* n : nodes_of_kind(*graph, c10::Symbol::fromQualString("aten::warn"))) {
    n->destroy();
  }
  jit::ConstantPropagation(graph);
  jit::EliminateExceptions(graph);
  jit::ConstantPropagation(graph);
  jit::EliminateDeadCode(graph);
  jit::RemoveTensorMutation(graph);
  jit::InplaceToFunctionalActivation(graph);
  // Dropout outside training is the identity; the in-place kind (nn.Dropout(inplace=True),
  // EfficientNet's classifier) would be the graph's only write to a tensor.
  for (const char* kind : {"aten::dropout_", "aten::feature_dropout_", "aten::alpha_dropout_",
                           "aten::feature_alpha_dropout_"}) {
    for (jit::Node* n : nodes_of_kind(*graph, c10::Symbol::fromQualString(kind))) {
      if (n->inputs().size() == 3 && jit::constant_as<bool>(n->input(2)) == false) {
        n->output()->replaceAllUsesWith(n->input(0));
        n->destroy();
      }
    }
  }
  jit::EliminateDeadCode(graph);
}


// True if `x` is not needed to compute `outputs` once `cut` is given: every path from the
// input to the output passes through `cut`.
bool cuts_off(jit::Graph& graph, jit::Value* cut, jit::Value* x) {
  std::vector<jit::Value*> stack(graph.outputs().begin(), graph.outputs().end());
  std::set<jit::Value*> seen;
  auto push_block_inputs = [&](jit::Node* node, auto& self_ref) -> void {
    for (jit::Block* b : node->blocks()) {
      for (jit::Node* inner : b->nodes()) {
        for (jit::Value* in : inner->inputs()) stack.push_back(in);
        self_ref(inner, self_ref);
      }
      for (jit::Value* out : b->outputs()) stack.push_back(out);
    }
  };
  while (!stack.empty()) {
    jit::Value* v = stack.back();
    stack.pop_back();
    if (v == cut || !seen.insert(v).second) continue;
    if (v == x) return false;
    jit::Node* node = v->node();
    if (node->kind() == jit::prim::Param) continue;
    for (jit::Value* in : node->inputs()) stack.push_back(in);
    push_block_inputs(node, push_block_inputs);
  }
  return true;
}

// The logits within a model's output: the first tensor (depth first), or the element that
// `spec` names (an index, or a key / NamedTuple field).
std::optional<at::Tensor> first_tensor(const c10::IValue& v) {
  if (v.isTensor()) return v.toTensor();
  if (v.isTuple()) {
    for (const auto& e : v.toTuple()->elements()) {
      if (auto t = first_tensor(e)) return t;
    }
  } else if (v.isList()) {
    for (const auto& e : v.toListRef()) {
      if (auto t = first_tensor(e)) return t;
    }
  } else if (v.isGenericDict()) {
    for (const auto& e : v.toGenericDict()) {
      if (auto t = first_tensor(e.value())) return t;
    }
  }
  return std::nullopt;
}

std::string describe_value(const c10::IValue& v) {
  if (v.isTensor()) return "a tensor " + c10::str(v.toTensor().sizes());
  return v.type()->annotation_str();
}

std::string describe_returned(const c10::IValue& v) {
  if (v.isTensor()) return describe_value(v);
  std::vector<std::string> parts;
  if (v.isTuple()) {
    const auto type = v.type()->cast<c10::TupleType>();
    const auto& elements = v.toTuple()->elements();
    for (size_t i = 0; i < elements.size(); ++i) {
      std::string label = std::to_string(i);
      if (type && type->schema() && i < type->schema()->arguments().size()) {
        label += " (" + type->schema()->arguments()[i].name() + ")";
      }
      parts.push_back(label + ": " + describe_value(elements[i]));
    }
    return "a tuple of " + std::to_string(elements.size()) + " [" + detail::join(parts, "; ") + "]";
  }
  if (v.isGenericDict()) {
    for (const auto& e : v.toGenericDict()) {
      parts.push_back((e.key().isString() ? "'" + e.key().toStringRef() + "'" : "?") + ": " +
                      describe_value(e.value()));
    }
    return "a dict {" + detail::join(parts, "; ") + "}";
  }
  if (v.isList()) return "a list of " + std::to_string(v.toListRef().size());
  return describe_value(v);
}

at::Tensor pick_output(const c10::IValue& v, const std::string& spec, const std::string& source) {
  if (spec.empty()) {
    if (auto t = first_tensor(v)) return *t;
    throw Error(source + ": the model's output holds no tensor (" + describe_returned(v) + ")");
  }
  const bool index = spec.size() <= 9 && std::all_of(spec.begin(), spec.end(), [](char c) {
    return c >= '0' && c <= '9';
  });
  auto bad = [&]() -> Error {
    return usage_error("--output " + spec + ": the model returns " + describe_returned(v) +
                       "; give an index or a key of it");
  };
  c10::IValue chosen;
  if (v.isTuple()) {
    const auto& elements = v.toTuple()->elements();
    size_t k = elements.size();
    if (index) {
      k = std::stoul(spec);
    } else if (auto type = v.type()->cast<c10::TupleType>(); type && type->schema()) {
      const auto& args = type->schema()->arguments();
      for (size_t i = 0; i < args.size(); ++i) {
        if (args[i].name() == spec) k = i;
      }
    }
    if (k >= elements.size()) throw bad();
    chosen = elements[k];
  } else if (v.isList() && index) {
    const auto list = v.toListRef();
    const size_t k = std::stoul(spec);
    if (k >= list.size()) throw bad();
    chosen = list[k];
  } else if (v.isGenericDict()) {
    bool found = false;
    for (const auto& e : v.toGenericDict()) {
      if (e.key().isString() && e.key().toStringRef() == spec) {
        chosen = e.value();
        found = true;
      }
    }
    if (!found) throw bad();
  } else {
    throw bad();
  }
  if (!chosen.isTensor()) {
    throw usage_error("--output " + spec + ": that element of the model's output is " +
                      describe_value(chosen) + ", not a tensor (the model returns " +
                      describe_returned(v) + ")");
  }
  return chosen.toTensor();
}

// A torch::nn::Module holding the script module's parameters and buffers under their names,
// sharing their tensors.
std::shared_ptr<torch::nn::Module> mirror_of(const jit::Module& m) {
  auto out = std::make_shared<torch::nn::Module>("ScriptModule");
  for (const auto& p : m.named_parameters(/*recurse=*/false)) {
    out->register_parameter(p.name, p.value, /*requires_grad=*/false);
  }
  for (const auto& b : m.named_buffers(/*recurse=*/false)) out->register_buffer(b.name, b.value);
  for (const auto& c : m.named_children()) out->register_module(c.name, mirror_of(c.value));
  return out;
}

class ScriptModel final : public Model {
 public:
  ScriptModel(std::string source, jit::Module module, ScriptOptions options)
      : source_(std::move(source)), module_(std::move(module)), options_(std::move(options)) {
    module_.eval();
    for (const auto& p : module_.parameters()) p.set_requires_grad(false);
    mirror_ = mirror_of(module_);
    mirror_->eval();
    build_master();
    count_activations();
    describe();
  }

  std::string name() const override { return source_; }
  int64_t num_classes() const override { return num_classes_; }
  std::vector<LayerInfo> layers() const override { return layers_; }
  torch::nn::Module& module() override { return *mirror_; }
  std::string default_cam_layer() const override { return cam_layer_; }
  std::string describe_output() const override { return output_description_; }
  std::string describe_activations() const override { return activation_description_; }

  // The layer graph, read from the master graph on first use and checked against the model:
  // run node by node on a random image it must give the model's output.
  std::vector<GraphNode> graph() const override {
    std::call_once(graph_once_, [this] { const_cast<ScriptModel*>(this)->read_graph(); });
    return graph_;
  }
  std::string graph_problem() const override {
    graph();
    return graph_problem_;
  }

 protected:
  ForwardResult forward_impl(const at::Tensor& x, const std::vector<std::string>& taps) override {
    const auto wanted = sorted_unique(taps);
    return collect(run(derived(wanted, ""), x), wanted);
  }

  std::optional<ForwardResult> forward_tap_leaves_impl(
      const at::Tensor& x, const std::vector<std::string>& taps) override {
    if (mutates_) return std::nullopt;
    const auto wanted = sorted_unique(taps);
    return collect(run(derived(wanted, "", true), x), wanted);
  }

  std::optional<ForwardResult> forward_taps_impl(const at::Tensor& x,
                                                 const std::vector<std::string>& taps) override {
    const auto wanted = sorted_unique(taps);
    const auto outputs = run(derived(wanted, "", false, true), x);
    ForwardResult result;
    for (size_t k = 0; k < wanted.size(); ++k) result.taps[wanted[k]] = outputs[k].toTensor();
    return result;
  }

  at::Tensor forward_from_impl(const std::string& layer, const at::Tensor& activation) override {
    const auto it = std::find_if(layers_.begin(), layers_.end(),
                                 [&](const LayerInfo& l) { return l.name == layer; });
    if (it == layers_.end() || !it->resumable) {
      std::vector<std::string> resumable;
      for (const auto& l : layers_) {
        if (l.resumable) resumable.push_back(l.name);
      }
      throw usage_error(
          "layer '" + layer + "' of " + source_ +
          " is not resumable (the rest of the network also uses values from before it); "
          "resumable layers nearby: " +
          detail::join(detail::closest_matches(layer, resumable, 4)));
    }
    auto& fn = derived({}, layer);
    return pick_output(run(fn, activation)[0], options_.output, source_);
  }

  void apply_relu_mode(ReluMode) override {}  // derived graphs are per mode (relu_mode())

 private:
  void build_master() {
    jit::Method forward = module_.get_method("forward");
    master_ = forward.graph()->copy();
    if (master_->inputs().size() != 2) {
      throw Error(source_ + ": forward takes " + std::to_string(master_->inputs().size() - 1) +
                  " inputs; cnnvis explains models that take one image batch");
    }
    inline_calls(*master_, types_, source_);
    fold_attributes(*master_, module_, source_);
    clean_up(master_);
    mutates_ = has_mutation(master_->block());
    if (std::getenv("CNNVIS_DUMP_GRAPH")) std::cerr << *master_;
  }

  // True if an operator that writes a tensor is left after clean_up (one that
  // RemoveTensorMutation could not prove safe to make functional); lists may be written
  // (DenseNet appends its features to one).
  static bool has_mutation(jit::Block* block) {
    for (jit::Node* n : block->nodes()) {
      if (const auto* schema = n->maybeSchema()) {
        for (const auto& arg : schema->arguments()) {
          if (arg.alias_info() && arg.alias_info()->isWrite() &&
              arg.type()->isSubtypeOf(*c10::TensorType::get())) {
            return true;
          }
        }
      }
      for (jit::Block* b : n->blocks()) {
        if (has_mutation(b)) return true;
      }
    }
    return false;
  }

  // Layers in forward order (of each module's last call), their types, parameter counts and
  // whether the rest of the network can start from their output; then one dry forward pass
  // for the output size and the default CAM layer.
  void describe() {
    std::map<std::string, jit::Node*> last;
    std::vector<jit::Node*> order;
    for (jit::Node* n : master_->block()->nodes()) {  // top level only: a graph output
      if (n->kind() != kTap) continue;
      last[tap_name(n)] = n;
      order.push_back(n);
    }
    std::map<std::string, int64_t> params;
    for (const auto& m : module_.named_modules()) {
      int64_t count = 0;
      for (const auto& p : m.value.parameters()) count += p.numel();
      params[m.name] = count;
    }
    jit::Value* x = master_->inputs()[1];
    for (jit::Node* n : order) {
      const std::string name = tap_name(n);
      if (last[name] != n) continue;
      LayerInfo info;
      info.name = name;
      info.type = types_[name];
      info.parameters = params[name];
      info.resumable = cuts_off(*master_, n->output(), x);
      layers_.push_back(info);
      last_tap_[name] = n;
    }
    if (layers_.empty()) {
      throw Error(source_ + ": no submodule is called in forward (a frozen module, "
                  "torch.jit.freeze, has none): cnnvis names layers by module; save the module "
                  "before freezing it");
    }

    // The dry run.
    std::vector<std::string> names;
    for (const auto& l : layers_) names.push_back(l.name);
    std::sort(names.begin(), names.end());
    ForwardResult result;
    try {
      torch::NoGradGuard no_grad;
      const auto outputs = run(derived(names, ""), torch::zeros({1, 3, 224, 224}, input_options()));
      result = collect(outputs, names);
      output_description_ =
          outputs[0].isTensor()
              ? describe_returned(outputs[0]) + ", the logits"
              : describe_returned(outputs[0]) + "; the logits: " +
                    (options_.output.empty() ? "its first tensor" : "--output " + options_.output) +
                    ", " + c10::str(result.output.sizes());
    } catch (const Error&) {
      throw;
    } catch (const std::exception& e) {
      throw Error(source_ + ": the model fails on an image batch of shape [1, 3, 224, 224]: " +
                  error_line(e.what()));
    }
    const auto& out = result.output;
    if (out.dim() < 2) {
      throw Error(source_ + ": the model's output " + c10::str(out.sizes()) +
                  " has no class dimension; expected logits [N, classes] (or [N, classes, H, W])");
    }
    num_classes_ = out.size(1);
    // The default CAM layer: the last module whose output is 4-D with more than one position
    // and was not made by a pooling layer, named by the outermost module with that output.
    for (auto it = layers_.rbegin(); it != layers_.rend() && cam_layer_.empty(); ++it) {
      const auto& shape = result.taps[it->name].sizes();
      if (shape.size() != 4 || shape[2] * shape[3] <= 1) continue;
      jit::Value* source = tapped_source(last_tap_[it->name]->output());
      // The innermost module of this output (the longest path) made it; the outermost names it.
      std::string inner = it->name, outer = it->name;
      for (const auto& l : layers_) {
        if (tapped_source(last_tap_[l.name]->output()) != source) continue;
        if (l.name.size() > inner.size()) inner = l.name;
        if (l.name.size() < outer.size()) outer = l.name;
      }
      if (types_[inner].find("Pool") != std::string::npos) continue;
      cam_layer_ = outer;
    }
    if (cam_layer_.empty()) cam_layer_ = layers_.back().name;
  }

  // The tap names as derived graphs are keyed: sorted, each once.
  static std::vector<std::string> sorted_unique(std::vector<std::string> taps) {
    std::sort(taps.begin(), taps.end());
    taps.erase(std::unique(taps.begin(), taps.end()), taps.end());
    return taps;
  }

  // An image batch in the model's dtype and device (those of its parameters).
  torch::TensorOptions input_options() const {
    const auto parameters = mirror_->parameters();
    return parameters.empty() ? torch::TensorOptions().dtype(torch::kFloat)
                              : parameters.front().options().requires_grad(false);
  }

  // A derived graph's outputs (the model's output, then the taps in order) as a ForwardResult.
  ForwardResult collect(const std::vector<c10::IValue>& outputs,
                        const std::vector<std::string>& taps) const {
    ForwardResult result;
    result.output = pick_output(outputs[0], options_.output, source_);
    for (size_t k = 0; k < taps.size(); ++k) result.taps[taps[k]] = outputs[k + 1].toTensor();
    return result;
  }

  std::vector<c10::IValue> run(jit::GraphFunction& fn, const at::Tensor& input) {
    jit::Stack stack{c10::IValue(module_._ivalue()), input};
    {
      jit::GraphOptimizerEnabledGuard no_optimizer(false);
      try {
        fn.run(stack);
      } catch (const c10::Error&) {
        throw;
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        // The interpreter wraps an operator's c10::Error in a std::runtime_error with a
        // traceback; callers (the size probes, the CLI) expect LibTorch's own error type.
        TORCH_CHECK(false, error_line(e.what()));
      }
    }
    const auto& elements = stack.back().toTuple()->elements();
    return std::vector<c10::IValue>(elements.begin(), elements.end());
  }

  // The graph for these taps (sorted) or this cut layer, in the current ReLU mode; with
  // `leaves`, the taps start the autograd graph (a cnnvis::grad_leaf after each); with
  // `taps_only`, its outputs are the taps alone, so dead-code elimination drops every node
  // after the last one they need.
  jit::GraphFunction& derived(const std::vector<std::string>& taps, const std::string& cut,
                              bool leaves = false, bool taps_only = false) {
    const std::string key = std::to_string(static_cast<int>(relu_mode())) + "|" + cut + "|" +
                            detail::join(taps, ",") + (leaves ? "|leaves" : "") +
                            (taps_only ? "|taps" : "");
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = cache_.find(key);
    if (it != cache_.end()) return *it->second;
    auto graph = master_->copy();
    std::map<std::string, jit::Node*> last;
    for (jit::Node* n : graph->block()->nodes()) {
      if (n->kind() == kTap) last[tap_name(n)] = n;
    }
    std::vector<jit::Value*> outputs;
    if (!taps_only) outputs.push_back(graph->outputs()[0]);
    for (const auto& t : taps) outputs.push_back(last.at(t)->output());
    jit::Node* tuple = graph->insertNode(graph->createTuple(outputs));
    graph->eraseOutput(0);
    graph->registerOutput(tuple->output());
    // After the tuple, so that a cut at the layer that makes the output returns the given value.
    if (!cut.empty()) {
      jit::Value* start = graph->addInput("activation");
      start->setType(c10::TensorType::get());
      last.at(cut)->output()->replaceAllUsesWith(start);
    }
    if (leaves) {
      for (const auto& t : taps) {
        jit::Value* v = last.at(t)->output();
        jit::WithInsertPoint guard(last.at(t)->next());
        jit::Node* leaf = graph->insertNode(graph->create(kGradLeaf, {v}, 1));
        leaf->output()->setType(v->type());
        v->replaceAllUsesWith(leaf->output());
        leaf->replaceInput(0, v);
      }
    }
    for (jit::Node* tap : nodes_of_kind(*graph, kTap)) {
      tap->output()->replaceAllUsesWith(tap->input(0));
      tap->destroy();
    }
    if (relu_mode() != ReluMode::kNormal) {
      for (jit::Node* r : nodes_of_kind(*graph, jit::aten::relu)) {
        jit::WithInsertPoint guard(r);
        jit::Value* mode = graph->insertConstant(static_cast<int64_t>(relu_mode()));
        jit::Node* m = graph->insertNode(graph->create(kModalRelu, {r->input(0), mode}, 1));
        m->output()->setType(r->output()->type());
        r->output()->replaceAllUsesWith(m->output());
        r->destroy();
      }
    }
    jit::EliminateDeadCode(graph);
    if (!cut.empty()) {
      if (!graph->inputs()[1]->uses().empty()) {
        throw Error(source_ + ": layer '" + cut + "' does not cut the graph off its input");
      }
      graph->eraseInput(1);  // the image: no longer used (cuts_off)
    }
    auto fn = std::make_unique<jit::GraphFunction>(c10::QualifiedName("cnnvis_forward"), graph,
                                                   nullptr, jit::ExecutorExecutionMode::SIMPLE);
    return *cache_.emplace(key, std::move(fn)).first->second;
  }

  // The value of the master graph that holds the logits: the output, or the element of the
  // tuple, list or dict it builds that options_.output names (the first tensor by default).
  jit::Value* logits_value() const {
    jit::Value* out = master_->outputs()[0];
    if (out->type()->cast<c10::TensorType>()) return out;
    jit::Node* n = out->node();
    const std::string& spec = options_.output;
    std::vector<std::pair<std::string, jit::Value*>> items;
    if (n->kind() == jit::prim::TupleConstruct || n->kind() == jit::prim::ListConstruct) {
      const auto tuple = out->type()->cast<c10::TupleType>();
      for (size_t i = 0; i < n->inputs().size(); ++i) {
        std::string key = std::to_string(i);
        if (tuple && tuple->schema() && i < tuple->schema()->arguments().size()) {
          if (spec == tuple->schema()->arguments()[i].name()) key = spec;
        }
        items.emplace_back(key, n->input(i));
      }
    } else if (n->kind() == jit::prim::DictConstruct) {
      for (size_t i = 0; i + 1 < n->inputs().size(); i += 2) {
        items.emplace_back(jit::constant_as<std::string>(n->input(i)).value_or(""),
                           n->input(i + 1));
      }
    }
    for (const auto& [key, value] : items) {
      if (!value->type()->cast<c10::TensorType>()) continue;
      if (spec.empty() || key == spec) return value;
    }
    throw Error(source_ + ": the logits are not a tensor that forward builds directly");
  }

  void read_graph() {
    try {
      graph_ = detail::script_layer_graph(*master_, module_, master_->inputs()[1],
                                          logits_value(), source_);
      // The check: the graph run node by node gives the model's output.
      torch::NoGradGuard no_grad;
      const auto x = torch::randn({1, 3, 64, 64}, at::make_generator<at::CPUGeneratorImpl>(0))
                         .to(input_options());
      std::map<std::string, at::Tensor> taps;
      const auto walked = detail::run_graph(graph_, x, source_, "graph", taps);
      const auto expected = forward_impl(x, {}).output;
      const double scale = expected.abs().max().item<double>();
      const double error = walked.sizes() == expected.sizes()
                               ? (walked - expected).abs().max().item<double>()
                               : std::numeric_limits<double>::infinity();
      if (!(error <= 1e-4 * std::max(scale, 1e-30))) {
        throw Error(source_ + ": the layer graph read from its code does not reproduce its "
                    "output (max difference " + std::to_string(error) + " of " +
                    std::to_string(scale) + "); please report it with the model");
      }
    } catch (const Error& e) {
      graph_.clear();
      graph_problem_ = e.what();
    } catch (const c10::Error& e) {
      graph_.clear();
      graph_problem_ = source_ + ": its layer graph cannot run on a 64x64 image (" +
                       error_line(e.what_without_backtrace()) + ")";
    }
  }

  // Which activations of the graph the ReLU modes change (every aten::relu, in-place and
  // functional ones included) and which keep their gradient.
  void count_activations() {
    static const std::vector<std::pair<const char*, const char*>> kOthers{
        {"aten::hardtanh", "hardtanh/ReLU6"}, {"aten::relu6", "ReLU6"}, {"aten::silu", "SiLU"},
        {"aten::gelu", "GELU"}, {"aten::hardswish", "Hardswish"},
        {"aten::hardsigmoid", "Hardsigmoid"}, {"aten::sigmoid", "sigmoid"},
        {"aten::tanh", "tanh"}, {"aten::elu", "ELU"}, {"aten::leaky_relu", "LeakyReLU"},
        {"aten::prelu", "PReLU"}, {"aten::selu", "SELU"}, {"aten::celu", "CELU"},
        {"aten::mish", "Mish"}, {"aten::softplus", "softplus"}, {"aten::threshold", "threshold"}};
    const size_t relus = nodes_of_kind(*master_, jit::aten::relu).size();
    std::vector<std::string> others;
    for (const auto& [kind, label] : kOthers) {
      const size_t n = nodes_of_kind(*master_, c10::Symbol::fromQualString(kind)).size();
      if (n > 0) others.push_back(std::to_string(n) + " " + label);
    }
    activation_description_ = "guided-backprop and deconvnet change " + std::to_string(relus) +
                              " ReLU" + (relus == 1 ? "" : "s") + " of the graph";
    if (!others.empty()) {
      activation_description_ += "; these keep their plain gradient: " + detail::join(others);
    }
  }

  std::string source_;
  jit::Module module_;
  ScriptOptions options_;
  std::string output_description_, activation_description_;
  mutable std::once_flag graph_once_;
  std::vector<GraphNode> graph_;
  std::string graph_problem_;
  std::shared_ptr<torch::nn::Module> mirror_;
  std::shared_ptr<jit::Graph> master_;
  std::map<std::string, std::string> types_;
  std::map<std::string, jit::Node*> last_tap_;
  std::vector<LayerInfo> layers_;
  int64_t num_classes_ = 0;
  std::string cam_layer_;
  bool mutates_ = false;  // no forward_tap_leaves_impl then
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<jit::GraphFunction>> cache_;
};

// The names of a zip archive's records, after the checks that keep LibTorch's reader from
// leaking (detail/zip_check.hpp).
std::vector<std::string> zip_records(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open the model file: " + std::strerror(errno));
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  detail::check_torch_zip(detail::stream_read_at(in), size, path,
                          caffe2::serialize::kMinSupportedFileFormatVersion,
                          caffe2::serialize::kMaxSupportedFileFormatVersion);
  try {
    caffe2::serialize::PyTorchStreamReader reader(path);
    return reader.getAllRecords();
  } catch (const c10::Error& e) {
    throw Error(path + ": cannot read the zip archive (" + error_line(e.what_without_backtrace()) +
                "); the file is truncated or damaged, save it again");
  }
}

bool starts_like_zip(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[4] = {};
  in.read(head, 4);
  return in.gcount() == 4 && std::memcmp(head, "PK\x03\x04", 4) == 0;
}

}  // namespace

bool is_torchscript_file(const std::string& path) {
  check_regular_file(path, "model file");
  return starts_like_zip(path) && detail::is_torchscript_archive(zip_records(path));
}

std::unique_ptr<Model> load_script_model(const std::string& path, const ScriptOptions& options) {
  check_regular_file(path, "model file");
  if (!starts_like_zip(path)) {
    throw Error(path + ": not a TorchScript archive (a zip written by torch.jit.save); export "
                "the model with torch.jit.script(model).save(path), or give a zoo name");
  }
  const auto records = zip_records(path);
  if (!detail::is_torchscript_archive(records)) {
    throw Error(path + ": a PyTorch zip without TorchScript code (a state_dict saved by "
                "torch.save?); give it as --weights with its architecture, or save the model "
                "with torch.jit.script(model).save(path)");
  }
  jit::Module module;
  try {
    module = jit::load(path, torch::Device(torch::kCPU));
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    // c10::Error from the reader, torch::jit::ErrorReport from the compiler of the code/ files
    // (an operator or type this LibTorch does not know).
    const std::string what = error_line(e.what());
    const bool missing_op = what.find("Unknown builtin op") != std::string::npos ||
                            what.find("Unknown type") != std::string::npos ||
                            what.find("schema") != std::string::npos;
    throw Error(path + ": cannot load the TorchScript model (" + what + ")" +
                (missing_op ? "; it was probably saved by a newer PyTorch than this LibTorch: "
                              "save it with an older PyTorch or build cnnvis against a newer "
                              "LibTorch"
                            : ""));
  }
  try {
    return std::make_unique<ScriptModel>(path, std::move(module), options);
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(path + ": cannot prepare the TorchScript model's graph (" + error_line(e.what()) +
                ")");
  }
}

}  // namespace cnnvis
