#pragma once
// TorchScript models: any CNN saved with torch.jit.script(m).save(path) or
// torch.jit.trace(m, x).save(path), explained like a zoo model. LibTorch has no hooks, so the
// model's forward graph is copied and edited (docs/ARCHITECTURE.md, "TorchScript models"):
// calls are inlined with their module paths, every submodule's output becomes addressable by
// its dotted name ("layer4.1.conv2", as named_modules() in Python), ReLUs switch modes, and the
// layers whose output is the whole state of the network are resumable (forward_from).
#include <memory>
#include <string>

#include "cnnvis/model.hpp"

namespace cnnvis {

struct ScriptOptions {
  // Which part of the model's output holds the logits when it returns more than a tensor: ""
  // (the first tensor, depth first), an index into a tuple or list ("0", "1"), or a key of a
  // dict or a field of a NamedTuple ("out", "logits").
  std::string output;
};

// True if `path` is a TorchScript archive (recognized by its content, not its name).
bool is_torchscript_file(const std::string& path);

// Loads a TorchScript file on the CPU, in eval mode, parameters frozen, and checks that it
// takes an image batch [1, 3, 224, 224]. Throws cnnvis::Error naming the file: not TorchScript,
// frozen (torch.jit.freeze removes the module names), written by a newer PyTorch (an operator
// that this LibTorch lacks), failing in forward (with the model's own message), writing its
// attributes in forward.
std::unique_ptr<Model> load_script_model(const std::string& path, const ScriptOptions& options = {});

}  // namespace cnnvis
