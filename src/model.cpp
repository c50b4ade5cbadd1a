#include "cnnvis/model.hpp"

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <tuple>

#include "cnnvis/error.hpp"
#include "cnnvis/imagenet.hpp"
#include "detail/strings.hpp"

namespace cnnvis {

const char* to_string(ReluMode mode) {
  switch (mode) {
    case ReluMode::kNormal: return "normal";
    case ReluMode::kGuided: return "guided";
    case ReluMode::kDeconv: return "deconv";
    case ReluMode::kRedirected: return "redirected";
  }
  return "?";
}

namespace {

// ReLU with a mode-dependent backward. Saves the output (1[y > 0] == 1[x > 0]), or the input
// in redirected mode (which needs 1[x < 0]).
struct ModalRelu : torch::autograd::Function<ModalRelu> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               int64_t mode) {
    auto y = x.clamp_min(0);
    ctx->save_for_backward({static_cast<ReluMode>(mode) == ReluMode::kRedirected ? x : y});
    ctx->saved_data["mode"] = mode;
    return y;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad_out) {
    const auto y = ctx->get_saved_variables()[0];
    const auto mode = static_cast<ReluMode>(ctx->saved_data["mode"].toInt());
    const auto& g = grad_out[0];
    torch::Tensor grad_in;
    switch (mode) {
      case ReluMode::kGuided: grad_in = g.clamp_min(0) * (y > 0).to(g.scalar_type()); break;
      case ReluMode::kDeconv: grad_in = g.clamp_min(0); break;
      case ReluMode::kNormal: grad_in = g * (y > 0).to(g.scalar_type()); break;
      case ReluMode::kRedirected: {  // lucid/optvis/overrides/redirected_relu_grad.py
        const auto& x = y;           // saved input
        const auto relu_grad = g * x.gt(0);
        const auto redirected = g * torch::logical_not(x.lt(0).logical_and(g.gt(0)));
        const int64_t n = x.size(0);
        std::vector<int64_t> shape(static_cast<size_t>(x.dim()), 1);
        shape[0] = n;
        const auto alive = relu_grad.reshape({n, -1}).abs().amax(1).gt(0).view(shape);
        grad_in = torch::where(alive, relu_grad, redirected);
        break;
      }
    }
    return {grad_in, torch::Tensor()};
  }
};

}  // namespace

at::Tensor relu(const at::Tensor& x, ReluMode mode) {
  if (mode == ReluMode::kNormal || !x.requires_grad()) return torch::relu(x);
  return ModalRelu::apply(x, static_cast<int64_t>(mode));
}

ReluModeGuard::ReluModeGuard(Model& model, ReluMode mode)
    : model_(model), previous_(model.relu_mode_) {
  model_.apply_relu_mode(mode);
  model_.relu_mode_ = mode;
}

ReluModeGuard::~ReluModeGuard() {
  model_.apply_relu_mode(previous_);
  model_.relu_mode_ = previous_;
}

namespace detail {

// WeightLayoutGuard's copies, by parameter. An entry holds the parameter and the data its copy
// was made from (so neither address can be reused by another tensor while the entry lives):
// the copy is current while the parameter still has that data at the same version.
struct WeightLayoutCache {
  struct Entry {
    at::Tensor parameter;
    at::Tensor source;
    int64_t version = 0;
    at::Tensor copy;
  };
  // By parameter and the copy's kind (layout, or dtype): a model can hold both at once (a
  // channels-last pass inside a bfloat16 scope copies the bfloat16 copy).
  std::map<std::tuple<const c10::TensorImpl*, int, int>, Entry> entries;
};

}  // namespace detail

namespace {

bool switchable(const at::Tensor& p, at::MemoryFormat format) {
  return p.defined() && p.dim() == 4 && p.is_floating_point() && !p.is_contiguous(format);
}

bool castable(const at::Tensor& p, at::ScalarType dtype) {
  return p.defined() && (p.dim() == 2 || p.dim() == 4) && p.scalar_type() == at::kFloat &&
         dtype != at::kFloat;
}

}  // namespace

bool has_weights_to_switch(Model& model, at::MemoryFormat format) {
  for (const auto& p : model.module().parameters()) {
    if (switchable(p, format)) return true;
  }
  return false;
}

WeightLayoutGuard::WeightLayoutGuard(Model& model, at::MemoryFormat format) {
  switch_to(model, format, at::kFloat, false);
}

WeightLayoutGuard::WeightLayoutGuard(Model& model, at::ScalarType dtype) {
  if (dtype != at::kBFloat16 && dtype != at::kHalf) {
    throw usage_error("WeightLayoutGuard: expected bfloat16 or float16, got " +
                      std::string(c10::toString(dtype)));
  }
  switch_to(model, at::MemoryFormat::Contiguous, dtype, true);
}

void WeightLayoutGuard::switch_to(Model& model, at::MemoryFormat format, at::ScalarType dtype,
                                  bool cast) {
  if (!model.layout_cache_) model.layout_cache_ = std::make_shared<detail::WeightLayoutCache>();
  auto& entries = model.layout_cache_->entries;
  try {
    for (const auto& p : model.module().parameters()) {
      if (cast ? !castable(p, dtype) : !switchable(p, format)) continue;
      auto& e = entries[{p.unsafeGetTensorImpl(), cast ? -1 : static_cast<int>(format),
                         cast ? static_cast<int>(dtype) : -1}];
      if (!e.copy.defined() || e.source.data_ptr() != p.data_ptr() ||
          e.version != p._version() || e.source.sizes() != p.sizes() ||
          e.source.scalar_type() != p.scalar_type() || e.source.device() != p.device()) {
        e.parameter = p;
        e.source = p.variable_data();
        e.version = p._version();
        e.copy = cast ? p.detach().to(dtype) : p.detach().contiguous(format);
      }
      restore_.emplace_back(p, e.source);
      p.set_data(e.copy);
    }
  } catch (...) {
    for (auto& [param, own] : restore_) param.set_data(own);
    throw;
  }
}

WeightLayoutGuard::~WeightLayoutGuard() {
  for (auto& [param, own] : restore_) param.set_data(own);
}

std::vector<std::string> Model::default_class_names() const {
  return num_classes() == 1000 ? imagenet_classes() : std::vector<std::string>{};
}

std::vector<std::string> Model::class_names() const {
  return class_names_.empty() ? default_class_names() : class_names_;
}

void Model::set_class_names(std::vector<std::string> names) {
  if (static_cast<int64_t>(names.size()) != num_classes()) {
    throw usage_error(std::to_string(names.size()) + " class names for " + name() + ", which has " +
                      std::to_string(num_classes()) + " classes; give one name per class");
  }
  class_names_ = std::move(names);
}

std::vector<std::string> read_class_names(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in || std::filesystem::is_directory(path)) {
    throw usage_error(path + ": cannot read the class names (expected a text file, one name "
                      "per line)");
  }
  std::vector<std::string> names;
  std::map<std::string, size_t> first_line;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t number = names.size() + 1;
    if (line.find_first_not_of(" \t") == std::string::npos) {
      if (in.peek() == std::char_traits<char>::eof()) break;  // a blank last line
      throw usage_error(path + ":" + std::to_string(number) +
                        ": an empty class name; give one name per line, in class order");
    }
    if (line.size() > 1000 || line.find('\0') != std::string::npos) {
      throw usage_error(path + ":" + std::to_string(number) +
                        ": not a class name (binary data or over 1000 characters); expected "
                        "a text file, one name per line");
    }
    if (auto it = first_line.find(line); it != first_line.end()) {
      throw usage_error(path + ":" + std::to_string(number) + ": '" + line +
                        "' is already the name of line " + std::to_string(it->second) +
                        "; class names must differ");
    }
    first_line[line] = number;
    names.push_back(line);
  }
  if (names.empty()) throw usage_error(path + ": no class names (one name per line expected)");
  return names;
}

std::vector<GraphNode> Model::graph() const { return {}; }

void Model::check_layer(const std::string& layer) const {
  std::vector<std::string> names;
  for (const auto& info : layers()) {
    if (info.name == layer) return;
    names.push_back(info.name);
  }
  throw usage_error("unknown layer '" + layer + "' for " + name() + "; closest: " +
                    detail::join(detail::closest_matches(layer, names, 4)) +
                    " (run `cnnvis layers --model " + name() + "` to list them all)");
}

namespace {

// What forward and forward_for_tap_gradients check before calling the subclass.
void check_forward_arguments(const Model& model, const at::Tensor& x,
                             const std::vector<std::string>& taps) {
  if (x.dim() != 4 || x.size(1) != 3) {
    throw usage_error(model.name() + " expects an input of shape [N, 3, H, W], got " +
                      c10::str(x.sizes()));
  }
  for (const auto& t : taps) model.check_layer(t);
}

}  // namespace

ForwardResult Model::forward(const at::Tensor& x, const std::vector<std::string>& taps) {
  check_forward_arguments(*this, x, taps);
  return forward_impl(x, taps);
}

ForwardResult Model::forward_for_tap_gradients(const at::Tensor& x,
                                               const std::vector<std::string>& taps) {
  check_forward_arguments(*this, x, taps);
  if (torch::GradMode::is_enabled() && !taps.empty()) {
    if (auto result = forward_tap_leaves_impl(x.detach(), taps)) return std::move(*result);
  }
  return forward_impl(x.detach().requires_grad_(true), taps);
}

ForwardResult Model::forward_taps(const at::Tensor& x, const std::vector<std::string>& taps) {
  check_forward_arguments(*this, x, taps);
  if (!taps.empty()) {
    if (auto result = forward_taps_impl(x, taps)) return std::move(*result);
  }
  return forward_impl(x, taps);
}

at::Tensor Model::forward_from(const std::string& layer, const at::Tensor& activation) {
  check_layer(layer);
  return forward_from_impl(layer, activation);
}

std::vector<LayerInfo> describe_layers(Model& model, int64_t height, int64_t width) {
  auto infos = model.layers();
  std::vector<std::string> names;
  for (const auto& info : infos) names.push_back(info.name);
  torch::InferenceMode guard;
  auto options = torch::TensorOptions().dtype(torch::kFloat);
  const auto parameters = model.module().parameters();
  if (!parameters.empty()) options = parameters.front().options().requires_grad(false);
  auto result = model.forward(torch::zeros({1, 3, height, width}, options), names);
  for (auto& info : infos) {
    auto it = result.taps.find(info.name);
    if (it != result.taps.end()) info.shape = it->second.sizes().vec();
  }
  return infos;
}

}  // namespace cnnvis
