#pragma once
// Reading weight files as users have them: PyTorch's zip format (torch.save of a state_dict, or
// of a dict holding it under "state_dict" or "model"), PyTorch's legacy format
// (_use_new_zipfile_serialization=False, e.g. torchvision's vgg16-397923af.pth) and
// safetensors. The format is detected from the content, never from the extension. Loading never
// executes anything: the pickle reader accepts only the globals a state_dict needs.
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace cnnvis {

enum class WeightFormat { kTorchZip, kTorchLegacy, kSafetensors };

// Name of a format for messages ("PyTorch zip", "PyTorch legacy", "safetensors").
const char* to_string(WeightFormat format);

// An ordered list of (dotted name, tensor), as in the file. Tensors are CPU, contiguous, in the
// dtype stored in the file.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

// Detects the format of `path` from its first bytes; throws cnnvis::Error naming the file if it
// is none of the three.
WeightFormat detect_weight_format(const std::string& path);

// Reads every tensor of a weight file. Throws cnnvis::Error (naming the file) for a missing,
// truncated or corrupt file, a folder or other non-regular file, a pickle that names a global
// outside the allow-list, and a pickle beyond the limits of src/detail/pickle.hpp (nesting deeper
// than 1000 levels, more than 16 x its size + 16 MiB of values).
StateDict read_state_dict(const std::string& path);
// The same from a file's bytes in memory; `source` names it in messages.
StateDict read_state_dict_bytes(const std::string& bytes, const std::string& source);

// Writes float32/float64/int64 tensors as a safetensors file (atomically: temporary name, then
// rename), in the order given. Used for the demo model's weights.
void save_safetensors(const std::string& path, const StateDict& state);

// The parameters and buffers of `module` under their dotted names, as a StateDict (CPU).
StateDict state_dict_of(torch::nn::Module& module);

// Copies `state` into the parameters and buffers of `module` (converting fp16/fp64 to the
// module's dtype). A common "module." prefix (DataParallel) is stripped. Missing or unexpected
// keys and shape mismatches throw cnnvis::Error naming the keys and shapes; `source` (usually
// the file name) starts the message.
void assign_state_dict(torch::nn::Module& module, const StateDict& state,
                       const std::string& source);

}  // namespace cnnvis
