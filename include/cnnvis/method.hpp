#pragma once
// The common method interface and the registry. A method turns (model, input, target) into a
// raw attribution tensor; views turn that raw tensor into pictures (in the image layer). Every
// method is one header, one source and one line in src/registry.cpp.
#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cnnvis/model.hpp"
#include "cnnvis/target.hpp"

namespace cnnvis {

// Reports progress of long loops (done of total); return false to cancel.
using ProgressFn = std::function<bool(int64_t done, int64_t total)>;

// A method's full result: the raw attribution and named extra results, each with the batch as
// its first dimension (integrated gradients: "path_gradient" [N,3,H,W] and "delta" [N]).
struct Attribution {
  at::Tensor raw;
  std::map<std::string, at::Tensor> extras;
};

class Method {
 public:
  virtual ~Method() = default;
  // Raw attribution for input [N, 3, H, W] (normalized space). The shape is the method's
  // (gradient methods: [N, 3, H, W]). The model's state (ReLU mode) is unchanged afterwards.
  virtual at::Tensor attribute(Model& model, const at::Tensor& input, const Target& target) = 0;
  // The raw attribution and the method's extras; the default has no extras.
  virtual Attribution explain(Model& model, const at::Tensor& input, const Target& target) {
    return {attribute(model, input, target), {}};
  }
};

// One picture a method's raw result can be shown as: "<stem>_<method>_<view>.png".
struct View {
  std::string name;         // "gray"
  std::string description;  // "grayscale saliency: sum_c |g|, clipped at the 99th percentile"
  // What it renders: "" for the raw attribution, else the name of an extra (Attribution).
  std::string source;
  // raw [3,H,W] or [H,W] result for one image, and that image as RGB [3,H,W] in [0,1] ->
  // picture [3,H,W] or [H,W] in [0, 1].
  std::function<at::Tensor(const at::Tensor& raw, const at::Tensor& image)> render;
};

// Method options by name, as strings (from the CLI's --option key=value or the C++ caller);
// each method parses its own options struct from it and rejects unknown keys.
using MethodParams = std::map<std::string, std::string>;

struct OptionInfo {
  std::string name;
  std::string default_value;
  std::string help;
};

struct MethodInfo {
  std::string name;     // "vanilla"
  std::string summary;  // one line for `cnnvis list`
  std::string paper;    // citation
  std::vector<OptionInfo> options;
  std::vector<View> views;
  std::function<std::unique_ptr<Method>(const MethodParams&)> make;
  // Views that depend on the options (a wrapper shows its base method's); empty: `views`.
  std::function<std::vector<View>(const MethodParams&)> views_for;
  // How `cnnvis evaluate` ranks pixels: raw result for one image -> importance map [H, W] at
  // the input's height and width (higher = more important). Empty: importance_map() below.
  std::function<at::Tensor(const at::Tensor& raw, int64_t height, int64_t width)> importance;
};

// The default importance map of a raw result for one image: [3,h,w] -> sum_c |raw| (gradient
// methods), [1,h,w] or [h,w] -> as is (CAM methods); then bilinear resize to height x width if
// the size differs. Returns float32 [height, width] on the CPU. Throws cnnvis::Error for other
// shapes.
at::Tensor importance_map(const at::Tensor& raw, int64_t height, int64_t width);
// info.views_for(params) if set, else info.views.
std::vector<View> method_views(const MethodInfo& info, const MethodParams& params);
// Renders `view` for image i of `result` (RGB image [3,H,W] in [0,1]); throws cnnvis::Error if
// the view's extra is missing.
at::Tensor render_view(const View& view, const Attribution& result, int64_t i,
                       const at::Tensor& image);

// info.importance if set, else importance_map().
at::Tensor method_importance(const MethodInfo& info, const at::Tensor& raw, int64_t height,
                             int64_t width);

// Every registered method, in the order of `cnnvis list`.
const std::vector<MethodInfo>& methods();
// Throws cnnvis::Error (invalid argument) for an unknown name, naming the closest.
const MethodInfo& find_method(const std::string& name);
// find_method(name).make(params).
std::unique_ptr<Method> make_method(const std::string& name, const MethodParams& params = {});

}  // namespace cnnvis
