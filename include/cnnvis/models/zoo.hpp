#pragma once
// Native C++ versions of torchvision's AlexNet, VGG11/13/16/19 (with and without BatchNorm) and
// ResNet18/34/50/101/152, with torchvision's parameter and buffer names, so torchvision's own
// weight files load as they are.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cnnvis/model.hpp"

namespace cnnvis {

// "alexnet", "vgg11", "vgg11_bn", ..., "vgg19_bn", "resnet18", ..., "resnet152", "demo".
const std::vector<std::string>& model_names();

// A zoo model with uninitialized (LibTorch default) weights, in eval mode, parameters frozen.
// num_classes 0 means the architecture's own: 1000 (ImageNet) or 8 for "demo" (the shapes of
// cnnvis::demo::shape_classes()). Throws cnnvis::Error (invalid argument) for an unknown
// architecture, naming the closest.
std::unique_ptr<Model> make_model(const std::string& arch, int64_t num_classes = 0);

// Deterministic random weights, mirrored by tests/python/cnnvis_random_weights.py so that the
// same seed gives the same tensors in PyTorch. Over the state_dict keys in sorted order, one
// float32 generator seeded with `seed` draws r = rand(shape) for each tensor:
//   weight with dim >= 2 (conv, linear): (2r - 1) * sqrt(6 / fan_in)   (He-uniform)
//   weight with dim 1 (BatchNorm gamma):  1 + (2r - 1) * 0.1
//   bias, running_mean:                   (2r - 1) * 0.1                (non-zero on purpose)
//   running_var:                          0.5 + r
//   num_batches_tracked:                  left unchanged (no draw)
void randomize_weights(Model& model, uint64_t seed);

// read_state_dict(path) + assign_state_dict: loads a torchvision weight file (any of the three
// formats) into the model. Throws cnnvis::Error naming the file on any mismatch.
void load_weights(Model& model, const std::string& path);

}  // namespace cnnvis
