#include "cnnvis/image.hpp"

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <sstream>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <mutex>
#include <vector>

#include "cnnvis/error.hpp"
#include "cnnvis/io/file.hpp"
#include "detail/colormap_data.hpp"

namespace cnnvis {
namespace {

Error not_an_image(const std::string& path, const std::string& why) {
  return Error(path + ": not a readable image (" + why +
               "); expected PNG, JPEG, BMP, TIFF or WebP");
}

uint32_t big_endian32(const std::string& b, size_t i) {
  auto u = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(b[k])); };
  return u(i) << 24 | u(i + 1) << 16 | u(i + 2) << 8 | u(i + 3);
}

// Decoders (libpng, libjpeg) only warn on a cut-off file and return a partly grey image, so we
// walk the container ourselves: PNG must reach its IEND chunk, JPEG its EOI marker.
bool png_complete(const std::string& b) {
  size_t i = 8;  // signature
  while (i + 12 <= b.size()) {
    const uint64_t length = big_endian32(b, i);
    if (b.compare(i + 4, 4, "IEND") == 0) return true;
    i += 12 + length;  // length, type, data, CRC
  }
  return false;
}

bool jpeg_complete(const std::string& b) {
  auto u = [&](size_t k) { return static_cast<unsigned char>(b[k]); };
  size_t i = 2;  // SOI
  while (i + 1 < b.size()) {
    if (u(i) != 0xFF) {  // stray bytes between segments: libjpeg skips them too
      ++i;
      continue;
    }
    const unsigned char marker = u(i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0xD9) return true;  // EOI
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) {  // no length field
      i += 2;
      continue;
    }
    if (i + 3 >= b.size()) return false;
    i += 2 + (static_cast<size_t>(u(i + 2)) << 8 | u(i + 3));
    if (marker == 0xDA) {  // start of scan: skip entropy-coded data up to the next marker
      while (i + 1 < b.size() &&
             !(u(i) == 0xFF && u(i + 1) != 0 && !(u(i + 1) >= 0xD0 && u(i + 1) <= 0xD7))) {
        ++i;
      }
    }
  }
  return false;
}

std::atomic<int64_t> g_pixel_limit{kDefaultImagePixelLimit};

uint32_t little_endian(const std::string& b, size_t i, int bytes) {
  uint32_t v = 0;
  for (int k = bytes; k-- > 0;) v = v << 8 | static_cast<unsigned char>(b[i + k]);
  return v;
}

struct ImageHeader {
  const char* format;
  int64_t width = 0, height = 0;
};

// Reads the format and the dimensions from the header of the five formats cnnvis reads, so that
// the pixel limit is checked before a decoder allocates anything. Anything else is refused here:
// OpenCV's other decoders (Sun raster, PFM, HDR, ...) are not offered to files off the internet.
ImageHeader read_image_header(const std::string& b, const std::string& path) {
  auto u = [&](size_t k) { return static_cast<unsigned char>(b[k]); };
  auto truncated = [&](const char* format) {
    return not_an_image(path, std::string(format) + " header cut off");
  };
  if (b.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0) {
    if (b.size() < 24 || b.compare(12, 4, "IHDR") != 0) throw truncated("PNG");
    return {"PNG", big_endian32(b, 16), big_endian32(b, 20)};
  }
  if (b.compare(0, 2, "\xFF\xD8") == 0) {
    size_t i = 2;
    while (i + 3 < b.size()) {
      if (u(i) != 0xFF) {
        ++i;
        continue;
      }
      const unsigned char marker = u(i + 1);
      if (marker == 0xFF || marker == 0x01 || (marker >= 0xD0 && marker <= 0xD8)) {
        i += marker == 0xFF ? 1 : 2;
        continue;
      }
      const size_t length = static_cast<size_t>(u(i + 2)) << 8 | u(i + 3);
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC): precision, height, width.
      if (marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 &&
          marker != 0xCC) {
        if (i + 9 > b.size()) throw truncated("JPEG");
        return {"JPEG", static_cast<int64_t>(u(i + 7)) << 8 | u(i + 8),   // width
                static_cast<int64_t>(u(i + 5)) << 8 | u(i + 6)};  // height
      }
      if (marker == 0xDA || marker == 0xD9) break;  // scan data before any frame header
      i += 2 + length;
    }
    throw not_an_image(path, "JPEG without a frame header");
  }
  if (b.compare(0, 2, "BM") == 0) {
    if (b.size() < 26) throw truncated("BMP");
    if (little_endian(b, 14, 4) == 12) {  // OS/2 BITMAPCOREHEADER: 16-bit sizes
      return {"BMP", little_endian(b, 18, 2), little_endian(b, 20, 2)};
    }
    const auto width = static_cast<int32_t>(little_endian(b, 18, 4));
    const auto height = static_cast<int32_t>(little_endian(b, 22, 4));  // < 0: top-down rows
    return {"BMP", std::abs(static_cast<int64_t>(width)), std::abs(static_cast<int64_t>(height))};
  }
  if (b.compare(0, 4, "II*\0", 4) == 0 || b.compare(0, 4, "MM\0*", 4) == 0) {
    const bool big = b[0] == 'M';
    auto get = [&](size_t i, int bytes) -> uint32_t {
      if (i + bytes > b.size()) throw truncated("TIFF");
      if (!big) return little_endian(b, i, bytes);
      uint32_t v = 0;
      for (int k = 0; k < bytes; ++k) v = v << 8 | u(i + k);
      return v;
    };
    const size_t ifd = get(4, 4);
    const uint32_t count = get(ifd, 2);
    ImageHeader h{"TIFF"};
    for (uint32_t k = 0; k < count; ++k) {
      const size_t entry = ifd + 2 + 12 * size_t{k};
      const uint32_t tag = get(entry, 2), type = get(entry + 2, 2);
      if (tag != 256 && tag != 257) continue;
      const int64_t value = type == 3 ? get(entry + 8, 2) : get(entry + 8, 4);  // SHORT, LONG
      (tag == 256 ? h.width : h.height) = value;
    }
    return h;
  }
  if (b.compare(0, 4, "RIFF") == 0 && (b.size() < 12 || b.compare(8, 4, "WEBP") == 0)) {
    if (b.size() < 30) throw truncated("WebP");
    if (b.compare(12, 4, "VP8X") == 0) {  // extended: 24-bit canvas size minus one
      return {"WebP", int64_t{little_endian(b, 24, 3)} + 1, int64_t{little_endian(b, 27, 3)} + 1};
    }
    if (b.compare(12, 4, "VP8L") == 0) {  // lossless: 14-bit sizes minus one after 0x2f
      const uint32_t bits = little_endian(b, 21, 4);
      return {"WebP", int64_t{bits & 0x3fff} + 1, int64_t{(bits >> 14) & 0x3fff} + 1};
    }
    if (b.compare(12, 4, "VP8 ") == 0) {  // lossy: 14-bit sizes after the start code
      return {"WebP", little_endian(b, 26, 2) & 0x3fff, little_endian(b, 28, 2) & 0x3fff};
    }
    throw not_an_image(path, "WebP without an image chunk");
  }
  throw not_an_image(path, "unknown format");
}

// Runs `decode` with this process's stderr sent to a temporary file, and returns what the
// libraries wrote there (libpng and libjpeg print their warnings and errors on stderr, before
// and besides cnnvis's one-line message). Serialized: stderr is process-wide.
template <typename Decode>
std::string with_stderr_captured(Decode decode) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  std::fflush(stderr);
  FILE* capture = std::tmpfile();
  const int saved = capture ? ::dup(2) : -1;
  if (saved < 0 || ::dup2(::fileno(capture), 2) < 0) {  // cannot capture: decode as it is
    if (saved >= 0) ::close(saved);
    if (capture) std::fclose(capture);
    decode();
    return "";
  }
  struct Restore {
    int saved;
    FILE* capture;
    ~Restore() {
      std::fflush(stderr);
      ::dup2(saved, 2);
      ::close(saved);
    }
  };
  std::string text;
  {
    Restore restore{saved, capture};
    decode();
  }
  std::rewind(capture);
  char buffer[512];
  const size_t n = std::fread(buffer, 1, sizeof buffer, capture);
  std::fclose(capture);
  text.assign(buffer, n);
  return text;
}

// The first line the library wrote, without its "libpng error: " style prefix noise.
std::string library_message(const std::string& captured) {
  std::string line = captured.substr(0, captured.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  return line;
}

// [3,H,W] / [1,C,H,W] / [C,H,W] gradient-like tensor -> float CPU [C,H,W].
at::Tensor as_chw(const at::Tensor& g, const char* what, bool need_rgb) {
  at::Tensor t = g.detach().to(at::kCPU, at::kFloat);
  if (t.dim() == 4 && t.size(0) == 1) t = t.squeeze(0);
  if (t.dim() != 3 || (need_rgb && t.size(0) != 3)) {
    throw usage_error(std::string(what) + ": expected a tensor " +
                      (need_rgb ? "[1, 3, H, W] or [3, H, W]" : "[1, C, H, W] or [C, H, W]") +
                      ", got " + c10::str(g.sizes()));
  }
  return t;
}

// [H,W] or [1,H,W] -> float CPU [H,W].
at::Tensor as_hw(const at::Tensor& m, const char* what) {
  at::Tensor t = m.detach().to(at::kCPU, at::kFloat);
  if (t.dim() == 3 && t.size(0) == 1) t = t.squeeze(0);
  if (t.dim() != 2) {
    throw usage_error(std::string(what) + ": expected a map [H, W], got " +
                      c10::str(m.sizes()));
  }
  return t;
}

at::Tensor channel_tensor(const std::array<double, 3>& v, const at::Tensor& like) {
  return at::tensor(std::vector<float>(v.begin(), v.end()), like.options()).view({3, 1, 1});
}

void check_rgb_batch(const at::Tensor& x, const char* what) {
  if (!((x.dim() == 3 && x.size(0) == 3) || (x.dim() == 4 && x.size(1) == 3))) {
    throw usage_error(std::string(what) + ": expected [3, H, W] or [N, 3, H, W], got " +
                      c10::str(x.sizes()));
  }
}

// Python's round(), which rounds halves to even (torchvision's CenterCrop uses it).
int64_t half_to_even(int64_t twice) {
  const int64_t q = twice / 2;
  return (twice % 2 != 0 && q % 2 != 0) ? q + 1 : q;
}

}  // namespace

void set_image_pixel_limit(int64_t pixels) {
  if (pixels <= 0) {
    throw usage_error("image pixel limit: expected a positive number of pixels, got " +
                      std::to_string(pixels));
  }
  g_pixel_limit = pixels;
}

int64_t image_pixel_limit() { return g_pixel_limit; }

at::Tensor load_image(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": no such file; check the path");
  if (fs::is_directory(path, ec)) throw Error(path + ": is a folder, not an image file");
  return decode_image(read_regular_file(path, "image file"), path);
}

at::Tensor decode_image(const std::string& bytes, const std::string& path) {
  if (bytes.empty()) throw not_an_image(path, "the file is empty");
  const ImageHeader header = read_image_header(bytes, path);
  if (header.width <= 0 || header.height <= 0) {
    throw not_an_image(path, std::string(header.format) + " header says " +
                                 std::to_string(header.width) + "x" +
                                 std::to_string(header.height) + " pixels");
  }
  const int64_t limit = g_pixel_limit;
  if (header.width > limit / header.height) {
    char mp[32];
    std::snprintf(mp, sizeof mp, "%.1f", static_cast<double>(header.width) *
                                             static_cast<double>(header.height) / 1e6);
    char lim[32];
    std::snprintf(lim, sizeof lim, "%g", static_cast<double>(limit) / 1e6);
    throw Error(path + ": the " + header.format + " image is " + std::to_string(header.width) +
                "x" + std::to_string(header.height) + " pixels (" + mp +
                " megapixels), more than the limit of " + lim +
                " megapixels; if it is genuine, raise the limit with --max-megapixels");
  }
  if (bytes.compare(0, 8, "\x89PNG\r\n\x1a\n") == 0 && !png_complete(bytes)) {
    throw Error(path + ": truncated PNG (no IEND chunk); the file is cut off, re-create it");
  }
  if (bytes.compare(0, 2, "\xFF\xD8") == 0 && !jpeg_complete(bytes)) {
    throw Error(path + ": truncated JPEG (no end-of-image marker); the file is cut off, "
                "re-create it");
  }
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max())) {
    throw not_an_image(path, "the file is larger than 2 GiB");
  }
  // imdecode applies the EXIF orientation like imread; ANYDEPTH keeps 16-bit precision.
  const cv::Mat raw(1, static_cast<int>(bytes.size()), CV_8U,
                    const_cast<char*>(bytes.data()));
  cv::Mat bgr;
  std::string opencv_error;
  const std::string said = with_stderr_captured([&] {
    try {
      bgr = cv::imdecode(raw, cv::IMREAD_COLOR | cv::IMREAD_ANYDEPTH);
    } catch (const cv::Exception& e) {
      opencv_error = e.msg;
    }
  });
  if (!opencv_error.empty()) throw not_an_image(path, "OpenCV: " + opencv_error);
  if (bgr.empty() || bgr.rows == 0 || bgr.cols == 0) {
    const std::string why = library_message(said);
    throw not_an_image(path, std::string("corrupt ") + header.format +
                                 (why.empty() ? "" : ": " + why) + "; is the file damaged?");
  }
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  double scale = 1.0;
  if (rgb.depth() == CV_8U) scale = 1.0 / 255;
  if (rgb.depth() == CV_16U) scale = 1.0 / 65535;
  cv::Mat f;
  rgb.convertTo(f, CV_32F, scale);
  at::Tensor hwc = at::from_blob(f.data, {f.rows, f.cols, 3}, at::kFloat);
  return hwc.permute({2, 0, 1}).clamp(0, 1).contiguous();  // clamp: float TIFF/HDR inputs
}

bool parse_rgb(const std::string& text, std::array<double, 3>& out) {
  std::stringstream in(text);
  std::string item;
  size_t n = 0;
  try {
    while (std::getline(in, item, ',')) {
      if (n == 3) return false;
      size_t used = 0;
      out[n++] = std::stod(item, &used);
      if (used != item.size()) return false;
    }
  } catch (const std::exception&) {
    return false;
  }
  return n == 3;
}

at::Tensor resize_image(const at::Tensor& rgb, const Preprocess& options) {
  if (rgb.dim() != 3 || rgb.size(0) != 3) {
    throw usage_error("resize_image: expected an RGB image [3, H, W], got " +
                      c10::str(rgb.sizes()));
  }
  const int64_t h = rgb.size(1), w = rgb.size(2);
  int64_t out_h = options.size, out_w = options.size, crop = 0;
  if (options.resize < 0) {
    throw usage_error("--resize must be >= 0 (got " + std::to_string(options.resize) +
                      "); 0 means: resize to --size x --size");
  }
  if (options.resize > 0) {
    crop = options.crop;
    if (crop <= 0 || crop > options.resize) {
      throw usage_error("--crop must be in 1.." + std::to_string(options.resize) +
                        " (the --resize value), got " + std::to_string(crop) +
                        "; e.g. --resize 256 --crop 224");
    }
    // torchvision Resize(int): shorter side -> resize, longer side truncated to an int.
    const int64_t short_side = std::min(h, w), long_side = std::max(h, w);
    const auto scaled = static_cast<int64_t>(static_cast<double>(options.resize) * long_side /
                                             short_side);
    out_h = h <= w ? options.resize : scaled;
    out_w = h <= w ? scaled : options.resize;
  } else if (options.size <= 0) {
    throw usage_error("--size must be > 0 (got " + std::to_string(options.size) +
                      "); e.g. --size 224");
  }
  at::Tensor x = rgb.detach().to(at::kFloat).contiguous().unsqueeze(0);
  // What interpolate(bilinear, align_corners=false, antialias=true) calls; same as PIL.
  x = at::_upsample_bilinear2d_aa(x, {out_h, out_w}, false, c10::nullopt, c10::nullopt);
  x = x.squeeze(0).clamp(0, 1);
  if (crop > 0) {  // torchvision CenterCrop: top = int(round((h - crop) / 2.0))
    const int64_t top = half_to_even(out_h - crop), left = half_to_even(out_w - crop);
    x = x.slice(1, top, top + crop).slice(2, left, left + crop);
  }
  return x.contiguous();
}

at::Tensor normalize(const at::Tensor& rgb, const Preprocess& options) {
  check_rgb_batch(rgb, "normalize");
  const at::Tensor x = rgb.to(at::kFloat);
  return (x - channel_tensor(options.mean, x)) / channel_tensor(options.std, x);
}

at::Tensor denormalize(const at::Tensor& x, const Preprocess& options) {
  check_rgb_batch(x, "denormalize");
  const at::Tensor f = x.detach().to(at::kFloat);
  return (f * channel_tensor(options.std, f) + channel_tensor(options.mean, f)).clamp(0, 1);
}

at::Tensor load_input(const std::string& path, const Preprocess& options) {
  return normalize(resize_image(load_image(path), options), options).unsqueeze(0).contiguous();
}

at::Tensor gradient_color(const at::Tensor& g) {
  at::Tensor t = as_chw(g, "gradient_color", true);
  t = t - t.min();
  const double top = t.max().item<double>();
  return top > 0 ? (t / top).contiguous() : at::zeros_like(t);
}

at::Tensor grayscale_saliency(const at::Tensor& g) {
  const at::Tensor v = as_chw(g, "grayscale_saliency", false).abs().sum(0);
  // numpy.percentile(v, 99) with its default linear interpolation, in double.
  const at::Tensor sorted = std::get<0>(v.flatten().to(at::kDouble).sort());
  const int64_t n = sorted.numel();
  if (n == 0) return v;
  const auto* s = sorted.data_ptr<double>();
  const double pos = 0.99 * static_cast<double>(n - 1);
  const auto lo = static_cast<int64_t>(std::floor(pos));
  const int64_t hi = std::min(lo + 1, n - 1);
  const double vmax = s[lo] + (s[hi] - s[lo]) * (pos - static_cast<double>(lo));
  const double vmin = s[0];
  if (!(vmax - vmin > 0)) return at::zeros_like(v);
  return ((v - vmin) / (vmax - vmin)).clamp(0, 1).contiguous();
}

at::Tensor positive_saliency(const at::Tensor& g) {
  const at::Tensor t = as_chw(g, "positive_saliency", true);
  const double top = t.max().item<double>();
  return top > 0 ? (t.clamp_min(0) / top).contiguous() : at::zeros_like(t);
}

at::Tensor negative_saliency(const at::Tensor& g) {
  const at::Tensor t = as_chw(g, "negative_saliency", true);
  const double bottom = t.min().item<double>();
  return bottom < 0 ? ((-t).clamp_min(0) / -bottom).contiguous() : at::zeros_like(t);
}

at::Tensor minmax(const at::Tensor& map) {
  const at::Tensor t = map.detach().to(at::kCPU, at::kFloat);
  if (t.numel() == 0) return t.clone();
  const double lo = t.min().item<double>(), hi = t.max().item<double>();
  return hi > lo ? ((t - lo) / (hi - lo)).contiguous() : at::zeros_like(t);
}

Colormap parse_colormap(const std::string& name) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string valid;
  for (int i = 0; i < detail::kNumColormaps; ++i) {
    if (lower == detail::kColormapNames[i]) return static_cast<Colormap>(i);
    valid += std::string(i ? ", " : "") + detail::kColormapNames[i];
  }
  throw usage_error("unknown colormap '" + name + "'; use one of: " + valid);
}

const char* to_string(Colormap colormap) {
  return detail::kColormapNames[static_cast<int>(colormap)];
}

at::Tensor apply_colormap(const at::Tensor& map, Colormap colormap) {
  const at::Tensor m = as_hw(map, "apply_colormap");
  const at::Tensor lut = at::from_blob(
      const_cast<float*>(&detail::kColormapTables[static_cast<int>(colormap)][0][0]), {256, 3},
      at::kFloat);
  // matplotlib: index int(v * N), v == 1 -> N - 1, out of range -> the end colours.
  const at::Tensor index = (m * 256.0f).nan_to_num(0).floor().clamp(0, 255).to(at::kLong);
  const at::Tensor rgb = lut.index_select(0, index.flatten()).view({m.size(0), m.size(1), 3});
  return rgb.permute({2, 0, 1}).contiguous();
}

at::Tensor overlay(const at::Tensor& image, const at::Tensor& heat, double alpha) {
  if (!(alpha >= 0 && alpha <= 1)) {
    throw usage_error("--alpha must be in [0, 1], got " + std::to_string(alpha));
  }
  if (image.dim() != 3 || image.size(0) != 3 || image.sizes() != heat.sizes()) {
    throw usage_error("overlay: expected two RGB images [3, H, W] of the same size, got " +
                      c10::str(image.sizes()) + " and " + c10::str(heat.sizes()));
  }
  return ((1 - alpha) * image.detach().to(at::kCPU, at::kFloat) +
          alpha * heat.detach().to(at::kCPU, at::kFloat))
      .contiguous();
}

void save_png(const std::string& path, const at::Tensor& picture) {
  at::Tensor t = picture.detach().to(at::kCPU, at::kFloat);
  if (t.dim() == 2) t = t.unsqueeze(0);
  if (t.dim() != 3 || (t.size(0) != 1 && t.size(0) != 3) || t.size(1) == 0 || t.size(2) == 0) {
    throw usage_error(path + ": cannot save a picture of shape " + c10::str(picture.sizes()) +
                      "; expected [3, H, W], [1, H, W] or [H, W]");
  }
  const at::Tensor hwc = (t.nan_to_num(0).clamp(0, 1) * 255).round().to(at::kByte)
                             .permute({1, 2, 0}).contiguous();
  const int channels = static_cast<int>(t.size(0));
  cv::Mat mat(static_cast<int>(t.size(1)), static_cast<int>(t.size(2)), CV_8UC(channels),
              hwc.data_ptr());
  if (channels == 3) cv::cvtColor(mat, mat, cv::COLOR_RGB2BGR);
  std::vector<uchar> png;
  if (!cv::imencode(".png", mat, png)) throw Error(path + ": PNG encoding failed");
  write_file_atomic(path, std::string(png.begin(), png.end()));
}

}  // namespace cnnvis
