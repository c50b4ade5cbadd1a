#pragma once
// The image layer: reading image files, resizing and normalizing them like torchvision, and
// turning raw attribution tensors into pictures (colormaps, saliency views, overlays).
// Methods never call this layer; they return raw tensors.
//
// Conventions: an "RGB image" is a float tensor [3, H, W] with values in [0, 1]; a "map" is a
// float tensor [H, W]; a model input is [1, 3, H, W] in normalized space.
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>

namespace cnnvis {

// Reads PNG, JPEG, BMP, TIFF or WebP with OpenCV, applies the EXIF orientation, and converts
// grayscale and RGBA to RGB. Returns [3, H, W] float32 in [0, 1]. Throws cnnvis::Error naming
// the file for a missing, non-regular (folder, FIFO, device), unreadable, truncated, corrupt or
// zero-size image, another format, or one over image_pixel_limit(). What the decoders print
// (libpng's warnings) is kept off stderr; a decoder's error becomes part of the message.
at::Tensor load_image(const std::string& path);
// The same from a file's bytes in memory; `source` names it in messages.
at::Tensor decode_image(const std::string& bytes, const std::string& source);

// Images larger than this many pixels are refused from their header, before decoding (a 1 MB
// PNG can claim 20000 x 20000 pixels and take 16 GB to decode). Default: 100 megapixels.
constexpr int64_t kDefaultImagePixelLimit = 100'000'000;
// Process-wide; throws cnnvis::Error (invalid argument) for pixels <= 0.
void set_image_pixel_limit(int64_t pixels);
int64_t image_pixel_limit();

struct Preprocess {
  // Exact resize to size x size (antialiased bilinear, like PIL / torchvision Resize((s, s))).
  // Used when resize == 0.
  int64_t size = 224;
  // If > 0: resize the shorter side to `resize` (antialiased bilinear), then center-crop
  // `crop` x `crop` (torchvision's Resize(256) + CenterCrop(224)). `crop` must be > 0 then.
  int64_t resize = 0;
  int64_t crop = 0;
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // ImageNet
  std::array<double, 3> std{0.229, 0.224, 0.225};
};

// Parses "R,G,B" (three comma-separated numbers, e.g. a normalization mean) into `out`;
// false for anything else (the caller words the error for its option).
bool parse_rgb(const std::string& text, std::array<double, 3>& out);

// Resizes an RGB image [3, H, W] in [0, 1] as `options` says (no normalization).
at::Tensor resize_image(const at::Tensor& rgb, const Preprocess& options);
// (x - mean) / std per channel; [3,H,W] or [N,3,H,W].
at::Tensor normalize(const at::Tensor& rgb, const Preprocess& options);
// The inverse of normalize ("recreate image"), clamped to [0, 1].
at::Tensor denormalize(const at::Tensor& x, const Preprocess& options);
// load_image + resize_image + normalize + a batch dimension: [1, 3, H, W].
at::Tensor load_input(const std::string& path, const Preprocess& options);

// ---- views of a gradient-like tensor [1,3,H,W] or [3,H,W] -> pictures ----
// (g - min(g)) / max(g - min(g)): the classic collection's coloured gradient, [3, H, W].
at::Tensor gradient_color(const at::Tensor& g);
// sum_c |g|, then clip((v - min) / (p99 - min), 0, 1): the grayscale saliency, [H, W].
at::Tensor grayscale_saliency(const at::Tensor& g);
// max(0, g) / max(g) and max(0, -g) / (-min(g)), [3, H, W] (0 where the denominator is 0).
at::Tensor positive_saliency(const at::Tensor& g);
at::Tensor negative_saliency(const at::Tensor& g);
// (m - min) / (max - min), 0 where the map is constant, [H, W].
at::Tensor minmax(const at::Tensor& map);

enum class Colormap { kJet, kTurbo, kViridis, kHsv, kGray, kSeismic, kBwr };
// Parses "jet", "turbo", ...; throws cnnvis::Error (invalid argument) listing the valid names.
Colormap parse_colormap(const std::string& name);
const char* to_string(Colormap colormap);
// Map [H, W] with values in [0, 1] -> RGB [3, H, W], matching matplotlib within 1/255.
at::Tensor apply_colormap(const at::Tensor& map, Colormap colormap);
// (1 - alpha) * image + alpha * heat, both RGB [3, H, W].
at::Tensor overlay(const at::Tensor& image, const at::Tensor& heat, double alpha);

// Writes an RGB [3,H,W] or gray [H,W] / [1,H,W] picture with values in [0, 1] as an 8-bit PNG.
// Writes to a temporary name in the same folder, then renames: no partial file on failure.
void save_png(const std::string& path, const at::Tensor& picture);

}  // namespace cnnvis
