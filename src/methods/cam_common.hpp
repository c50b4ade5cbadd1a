#pragma once
// Private helpers of the CAM family (options every CAM method reads, layer checks).
#include <string>
#include <vector>

#include "cnnvis/image.hpp"
#include "cnnvis/methods/cam.hpp"
#include "methods/common.hpp"

namespace cnnvis::detail {

struct CamCommon {
  CamOptions options;
  Colormap colormap = Colormap::kJet;
  double alpha = 0.5;
};
// "a,b" -> {"a", "b"}.
std::vector<std::string> split_layers(const std::string& text);
// Reads layer, colormap and alpha.
CamCommon read_cam_options(OptionReader& reader);
std::vector<OptionInfo> cam_option_infos();
// The activation itself; throws for one without spatial extent ([N, C] from a Linear layer)
// or without channels, naming the method and the layer.
const at::Tensor& spatial_activation(const std::string& method, const std::string& layer,
                                     const at::Tensor& activation);
// options.layers, or the model's default CAM layer; each checked against the model.
std::vector<std::string> cam_layers(const CamOptions& options, Model& model);

}  // namespace cnnvis::detail
