// cnnvis layers: every addressable layer of a model with its type, output shape and size.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

#include <torch/nn/module.h>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/methods/lrp.hpp"
#include "cnnvis/models/zoo.hpp"
#include "common.hpp"

namespace cnnvis::cli {

void setup_layers(CLI::App& app) {
  struct Options {
    std::string arch;
    int64_t size = 0;  // 0: the model's own (96 for demo, else 224)
    std::vector<std::string> only;
    std::string lrp;
    std::vector<std::string> rules;
    std::string output;
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "layers",
      "print every addressable layer: name (for --layer), type, output shape, parameters\n"
      "  e.g. cnnvis layers --model vgg16 --size 224");
  sub->add_option("--model,-m", o->arch, "architecture, or a TorchScript file")->required();
  sub->add_option("--output", o->output,
                  "TorchScript model returning a tuple, list or dict: which element holds the "
                  "logits (an index or a key; default the first tensor)");
  sub->add_option("--size", o->size,
                  "input size for the output shapes (default 96 for demo, else 224)")
      ->check(integer_range(kMinSide, kMaxSide));
  sub->add_option("--layer,-l", o->only, "show only these layers (checks that the names exist)");
  sub->add_option("--lrp", o->lrp,
                  "also show the LRP rule of each layer under this composite, e.g. "
                  "epsilon-gamma-box (see cnnvis list --verbose)");
  sub->add_option("--rule", o->rules,
                  "with --lrp: rule overrides LAYER_OR_TYPE=RULE, as `cnnvis explain lrp --rule`");
  sub->callback([o] {
    auto model = model_of(o->arch, o->output);  // shapes and sizes need no trained weights
    if (o->size == 0) o->size = o->arch == "demo" ? demo::kDemoSize : 224;
    for (const auto& name : o->only) model->check_layer(name);
    check_model_input(*model, o->size, "--size");
    std::map<std::string, std::string> lrp_rules;
    if (!o->lrp.empty() || !o->rules.empty()) {
      MethodParams params{{"composite", o->lrp.empty() ? "epsilon-plus-flat" : o->lrp}};
      for (const auto& r : o->rules) params["rule"] += (params["rule"].empty() ? "" : ",") + r;
      const auto options = parse_lrp_options(params);
      for (const auto& [layer, rule] : lrp_rule_table(*model, options)) lrp_rules[layer] = rule;
    }
    auto infos = describe_layers(*model, o->size, o->size);
    if (!o->only.empty()) {
      infos.erase(std::remove_if(infos.begin(), infos.end(),
                                 [&](const LayerInfo& i) {
                                   return std::find(o->only.begin(), o->only.end(), i.name) ==
                                          o->only.end();
                                 }),
                  infos.end());
    }
    std::cout << std::left << std::setw(26) << "layer" << std::setw(20) << "type"
              << std::setw(22) << "output" << std::right << std::setw(12) << "parameters"
              << "  notes\n";
    int64_t total = 0;
    for (const auto& info : infos) {
      std::ostringstream shape;
      shape << "[";
      for (size_t i = 0; i < info.shape.size(); ++i) shape << (i ? ", " : "") << info.shape[i];
      shape << "]";
      std::string notes = info.resumable ? "" : "not resumable";
      if (info.name == model->default_cam_layer()) {
        notes += (notes.empty() ? "" : "; ") + std::string("default CAM layer");
      }
      if (auto it = lrp_rules.find(info.name); it != lrp_rules.end()) {
        notes += (notes.empty() ? "lrp: " : "; lrp: ") + it->second;
      }
      std::cout << std::left << std::setw(26) << info.name << std::setw(20) << info.type
                << std::setw(22) << shape.str() << std::right << std::setw(12) << info.parameters
                << "  " << notes << "\n";
    }
    if (!o->only.empty()) return;  // a selection has no meaningful total
    for (const auto& p : model->module().parameters()) total += p.numel();
    std::cout << model->name() << ": " << infos.size() << " layers, " << total
              << " parameters, input [1, 3, " << o->size << ", " << o->size << "]\n";
    if (const auto text = model->describe_output(); !text.empty()) {
      std::cout << "returns " << text << "\n";
    }
    if (const auto text = model->describe_activations(); !text.empty()) {
      std::cout << text << "\n";
    }
  });
}

}  // namespace cnnvis::cli
