#pragma once
// The 1000 ImageNet class names (torchvision's _IMAGENET_CATEGORIES order).
#include <cstdint>
#include <string>
#include <vector>

namespace cnnvis {

const std::vector<std::string>& imagenet_classes();

// Resolves "281" or "tabby" (case-insensitive, exact name) to a class index in
// [0, num_classes). Throws cnnvis::Error (invalid argument) for a name it does not know or an
// index outside the range, saying what the valid range is.
int64_t resolve_class(const std::string& target, int64_t num_classes);
// The same for a model with its own class names (Model::class_names(); may be empty).
int64_t resolve_class(const std::string& target, const std::vector<std::string>& names,
                      int64_t num_classes);

// Name of class `index` for printing: the ImageNet name when the model has 1000 classes,
// otherwise "class <index>".
std::string class_name(int64_t index, int64_t num_classes);
// The same from a model's own names (Model::class_names()): names[index], else "class <index>".
std::string class_name(int64_t index, const std::vector<std::string>& names);

}  // namespace cnnvis
