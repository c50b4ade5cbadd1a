// Demo scene generator; see include/cnnvis/demo/scenes.hpp. Determinism: every random number
// comes from Rng below, trigonometry is our own polynomial (libm differs between machines),
// per-pixel work is integer, floating-point contraction (FMA) is off, and OpenCV is used only
// for integer drawing and 8-bit blurs.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "cnnvis/demo/scenes.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <random>
#include <utility>

#include "cnnvis/error.hpp"

namespace cnnvis::demo {
namespace {

#include "demo/textures.inc"

constexpr double kPi = 3.14159265358979323846;
constexpr int kShift = 4;  // OpenCV drawing: coordinates in 1/16 pixel
constexpr double kOne = 1 << kShift;

using Rgb = std::array<int, 3>;

class Rng {
 public:
  explicit Rng(uint64_t seed) : engine_(seed) {}
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }  // [0, 1)
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  int below(int n) { return static_cast<int>(uniform() * n); }  // [0, n)
  bool chance(double p) { return uniform() < p; }

 private:
  std::mt19937_64 engine_;  // its output sequence is fixed by the standard
};

// sin and cos from a Taylor polynomial on [-pi/4, pi/4] (error < 1e-15): bit-identical everywhere.
std::pair<double, double> SinCos(double angle) {
  const double q = std::floor(angle / (kPi / 2) + 0.5);
  const double r = angle - q * (kPi / 2), r2 = r * r;
  double s = 0, c = 0, ts = r, tc = 1;
  for (int k = 1; k <= 19; k += 2) {
    s += ts;
    c += tc;
    ts *= -r2 / ((k + 1) * (k + 2));
    tc *= -r2 / (k * (k + 1));
  }
  switch (static_cast<int64_t>(q) & 3) {
    case 0:
      return {s, c};
    case 1:
      return {c, -s};
    case 2:
      return {-s, -c};
    default:
      return {-c, s};
  }
}

Rgb Hsv(double h, double s, double v) {  // h in [0, 1)
  const double h6 = h * 6, f = h6 - std::floor(h6);
  const double p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  const std::array<double, 3> sectors[6] = {{v, t, p}, {q, v, p}, {p, v, t},
                                            {p, q, v}, {t, p, v}, {v, p, q}};
  const auto& c = sectors[static_cast<int>(h6) % 6];
  return {static_cast<int>(std::lround(c[0] * 255)), static_cast<int>(std::lround(c[1] * 255)),
          static_cast<int>(std::lround(c[2] * 255))};
}

Rgb RandomColor(Rng& rng) { return Hsv(rng.uniform(), rng.uniform(0.2, 1), rng.uniform(0.2, 1)); }

// A colour within +-24 per channel of `c`: the distractors that defeat a colour shortcut.
Rgb NearColor(Rng& rng, const Rgb& c) {
  Rgb out;
  for (int i = 0; i < 3; ++i) out[i] = std::clamp(c[i] + rng.below(49) - 24, 0, 255);
  return out;
}

double Distance(const Rgb& a, const Rgb& b) {
  double d = 0;
  for (int i = 0; i < 3; ++i) d += double(a[i] - b[i]) * (a[i] - b[i]);
  return std::sqrt(d);
}

cv::Scalar ToScalar(const Rgb& c) { return cv::Scalar(c[0], c[1], c[2]); }  // images are RGB
cv::Point Fixed(double x, double y) {
  return {int(std::lround(x * kOne)), int(std::lround(y * kOne))};
}

// ---- background ----

struct Layer {  // one tinted texture: value t in 0..255 maps to lo + (hi - lo) * t / 255
  int texture;
  int scale;       // texture pixels per image pixel, 16.16 fixed point
  int dx, dy;      // offset in texture pixels, 16.16
  bool transpose;  // a cheap extra variation
  Rgb lo, hi;
};

Layer RandomLayer(Rng& rng, const Rgb& object) {
  Layer l;
  l.texture = rng.below(kNumTextures);
  l.scale = int(rng.uniform(0.45, 1.3) * 65536);
  l.dx = int(rng.uniform(0, kTextureSize) * 65536);
  l.dy = int(rng.uniform(0, kTextureSize) * 65536);
  l.transpose = rng.chance(0.5);
  // Keep the tint's middle away from the object's colour so the object stays visible.
  for (int attempt = 0; attempt < 16; ++attempt) {
    const double h = rng.uniform(), s = rng.uniform(0.1, 0.75), v = rng.uniform(0.1, 0.7);
    const double span = rng.uniform(0.2, 0.4);
    l.lo = Hsv(h, s, v);
    l.hi = Hsv(h, s, std::min(1.0, v + span));
    const Rgb mid = Hsv(h, s, std::min(1.0, v + span / 2));
    if (Distance(mid, object) > 110) break;
  }
  return l;
}

// Bilinear sample of a layer's texture (wrapping), 0..255.
inline int Sample(const Layer& l, int x, int y) {
  if (l.transpose) std::swap(x, y);
  const int64_t u = int64_t(x) * l.scale + l.dx, v = int64_t(y) * l.scale + l.dy;
  const int u0 = int(u >> 16), v0 = int(v >> 16), fu = int(u & 0xffff) >> 8,
            fv = int(v & 0xffff) >> 8;
  const unsigned char* t = kTextures[l.texture];
  auto at = [t](int a, int b) {
    return int(t[(b & (kTextureSize - 1)) * kTextureSize + (a & (kTextureSize - 1))]);
  };
  const int top = at(u0, v0) * (256 - fu) + at(u0 + 1, v0) * fu;
  const int bottom = at(u0, v0 + 1) * (256 - fu) + at(u0 + 1, v0 + 1) * fu;
  return (top * (256 - fv) + bottom * fv + (1 << 15)) >> 16;
}

void DrawBackground(Rng& rng, const Rgb& object, cv::Mat& img) {
  const int size = img.rows;
  const Layer a = RandomLayer(rng, object), b = RandomLayer(rng, object);
  // Blend weight of b (0..256): a ramp along a random direction with a random steepness.
  const auto [sn, cs] = SinCos(rng.uniform(0, 2 * kPi));
  const double steep = rng.uniform(1, 6) / size, mid = rng.uniform(0.3, 0.7) * size;
  const int gx = int(std::lround(cs * steep * 65536)), gy = int(std::lround(sn * steep * 65536));
  const int g0 = int(std::lround(-mid * steep * 65536)) + (128 << 8);
  for (int y = 0; y < size; ++y) {
    auto* row = img.ptr<cv::Vec3b>(y);
    for (int x = 0; x < size; ++x) {
      const int w = std::clamp((g0 + gx * x + gy * y) >> 8, 0, 256);
      const int ta = Sample(a, x, y), tb = Sample(b, x, y);
      for (int c = 0; c < 3; ++c) {
        const int va = a.lo[c] * 255 + (a.hi[c] - a.lo[c]) * ta;  // x255
        const int vb = b.lo[c] * 255 + (b.hi[c] - b.lo[c]) * tb;
        row[x][c] = cv::saturate_cast<uchar>((va * (256 - w) + vb * w + 255 * 128) / (255 * 256));
      }
    }
  }
}

Rgb DistractorColor(Rng& rng, const Rgb& object) {
  return rng.chance(0.35) ? NearColor(rng, object) : RandomColor(rng);
}

// Soft irregular blobs: unions of 2-3 elongated ellipses, drawn premultiplied into a layer
// that is blurred and composited with partial opacity (never a sharp, regular shape).
struct Circle {
  double x, y, r;
};

void DrawBlobs(Rng& rng, const Rgb& object, const Circle& keep_out, cv::Mat& img) {
  const int size = img.rows;
  cv::Mat color(size, size, CV_8UC3, cv::Scalar::all(0)), alpha(size, size, CV_8UC1, cv::Scalar(0));
  const int count = 2 + rng.below(4);
  for (int i = 0; i < count; ++i) {
    const bool near = rng.chance(0.35);
    const Rgb c = near ? NearColor(rng, object) : RandomColor(rng);
    double x = rng.uniform(0, size), y = rng.uniform(0, size);
    const double clear = keep_out.r + 0.25 * size;
    for (int attempt = 0; near && attempt < 8; ++attempt) {
      if ((x - keep_out.x) * (x - keep_out.x) + (y - keep_out.y) * (y - keep_out.y) > clear * clear)
        break;
      x = rng.uniform(0, size);
      y = rng.uniform(0, size);
    }
    const int parts = 2 + rng.below(2);
    for (int p = 0; p < parts; ++p) {
      const double major = rng.uniform(0.06, 0.16) * size, minor = major / rng.uniform(1.8, 3.5);
      const double angle = rng.uniform(0, 180);
      const cv::Size axes(int(std::lround(major * kOne)), int(std::lround(minor * kOne)));
      cv::ellipse(color, Fixed(x, y), axes, angle, 0, 360, ToScalar(c), cv::FILLED, cv::LINE_8,
                  kShift);
      cv::ellipse(alpha, Fixed(x, y), axes, angle, 0, 360, cv::Scalar(255), cv::FILLED, cv::LINE_8,
                  kShift);
      x += rng.uniform(-0.7, 0.7) * major;
      y += rng.uniform(-0.7, 0.7) * major;
    }
  }
  const int k = (size / 32) | 1;  // odd kernel, ~4% of the side
  cv::GaussianBlur(color, color, cv::Size(k, k), 0, 0, cv::BORDER_REPLICATE);
  cv::GaussianBlur(alpha, alpha, cv::Size(k, k), 0, 0, cv::BORDER_REPLICATE);
  const int opacity = 150 + rng.below(90);  // of 256
  for (int y = 0; y < size; ++y) {
    auto* out = img.ptr<cv::Vec3b>(y);
    const auto* col = color.ptr<cv::Vec3b>(y);
    const auto* al = alpha.ptr<uchar>(y);
    for (int x = 0; x < size; ++x) {
      const int a = al[x] * opacity;  // x255*256
      for (int c = 0; c < 3; ++c)
        out[x][c] = cv::saturate_cast<uchar>(
            (out[x][c] * (255 * 256 - a) + col[x][c] * opacity * 255 + 255 * 128) / (255 * 256));
    }
  }
}

// One thin stroke: a line, an arc (under 220 degrees) or a squiggle.
void DrawStroke(Rng& rng, const Rgb& c, int thickness, cv::Mat& img) {
  const int size = img.rows;
  const cv::Scalar color = ToScalar(c);
  const int kind = rng.below(3);
  if (kind == 0) {
    const cv::Point p = Fixed(rng.uniform(-0.1, 1.1) * size, rng.uniform(-0.1, 1.1) * size);
    const auto [sn, cs] = SinCos(rng.uniform(0, 2 * kPi));
    const double len = rng.uniform(0.2, 0.8) * size;
    cv::line(img, p, p + Fixed(cs * len, sn * len), color, thickness, cv::LINE_AA, kShift);
  } else if (kind == 1) {
    const double rx = rng.uniform(0.08, 0.4) * size, ry = rx * rng.uniform(0.5, 1.0);
    const double start = rng.uniform(0, 360), span = rng.uniform(40, 220),
                 angle = rng.uniform(0, 180);
    cv::ellipse(img, Fixed(rng.uniform(0, size), rng.uniform(0, size)),
                cv::Size(int(std::lround(rx * kOne)), int(std::lround(ry * kOne))), angle, start,
                start + span, color, thickness, cv::LINE_AA, kShift);
  } else {
    std::vector<cv::Point> pts;
    double x = rng.uniform(0, size), y = rng.uniform(0, size), heading = rng.uniform(0, 2 * kPi);
    const int n = 4 + rng.below(5);
    for (int i = 0; i < n; ++i) {
      pts.push_back(Fixed(x, y));
      heading += rng.uniform(-1.2, 1.2);
      const auto [sn, cs] = SinCos(heading);
      const double step = rng.uniform(0.04, 0.1) * size;
      x += cs * step;
      y += sn * step;
    }
    cv::polylines(img, pts, false, color, thickness, cv::LINE_AA, kShift);
  }
}

// ---- the object ----

// Filled polygons in the unit circle, drawn in order with fill 255 (add) or 0 (cut).
struct Part {
  std::vector<std::array<double, 2>> points;
  bool cut = false;
};

std::vector<std::array<double, 2>> Regular(int n, double r, double phase = 0, double cx = 0) {
  std::vector<std::array<double, 2>> p;
  for (int i = 0; i < n; ++i) {
    const auto [s, c] = SinCos(phase + 2 * kPi * i / n);
    p.push_back({cx + r * c, r * s});
  }
  return p;
}

// In the order of shape_classes().
std::vector<Part> ShapeParts(int64_t label) {
  std::vector<std::array<double, 2>> p;
  switch (label) {
    case 0:
      return {{Regular(64, 1)}};
    case 1:
      return {{Regular(4, 1, kPi / 4)}};
    case 2:
      return {{Regular(3, 1, -kPi / 2)}};
    case 3:  // five points, inner radius 0.42
      for (int i = 0; i < 10; ++i) {
        const auto [s, c] = SinCos(-kPi / 2 + kPi * i / 5);
        const double r = i % 2 ? 0.42 : 1.0;
        p.push_back({r * c, r * s});
      }
      return {{p}};
    case 4:  // a plus: arms 0.6 wide, 1.9 long; one corner turned four times
      for (int k = 0; k < 4; ++k) {
        for (std::array<double, 2> q :
             {std::array<double, 2>{-0.3, -0.95}, {0.3, -0.95}, {0.3, -0.3}}) {
          for (int t = 0; t < k; ++t) q = {-q[1], q[0]};
          p.push_back(q);
        }
      }
      return {{p}};
    case 5:
      return {{Regular(64, 1)}, {Regular(64, 0.55), true}};
    case 6:
      return {{Regular(6, 1)}};
    default:
      return {{Regular(64, 1)}, {Regular(64, 0.8, 0, 0.5), true}};  // crescent
  }
}

struct Rendered {
  cv::Mat image;  // 8UC3 RGB
  cv::Mat mask;   // 8UC1 0/1
  int64_t label;
  Rgb color;
};

Rendered Render(uint64_t seed, int size) {
  Rng rng(seed);
  Rendered r;
  r.label = rng.below(int(shape_classes().size()));
  r.color = Hsv(rng.uniform(), rng.uniform(0.3, 1), rng.uniform(0.3, 1));
  // Placement first: blobs of a similar colour keep away from it (they would blur its outline).
  const double radius = rng.uniform(0.11, 0.225) * size;
  const double cx = rng.uniform(radius + 2, size - radius - 2);
  const double cy = rng.uniform(radius + 2, size - radius - 2);
  const auto [sn, cs] = SinCos(rng.uniform(0, 2 * kPi));
  r.image.create(size, size, CV_8UC3);
  DrawBackground(rng, r.color, r.image);
  DrawBlobs(rng, r.color, {cx, cy, radius}, r.image);
  const int thin = 1 + size / 160;  // 1 px up to 159, 2 px above
  const int strokes = 4 + rng.below(6);
  for (int i = 0; i < strokes; ++i) {
    const Rgb c = DistractorColor(rng, r.color);
    DrawStroke(rng, c, thin + rng.below(2), r.image);
  }

  // The object: AA coverage from its parts; the mask is that coverage thresholded at 1/2.
  cv::Mat coverage(size, size, CV_8UC1, cv::Scalar(0));
  for (const Part& part : ShapeParts(r.label)) {
    std::vector<cv::Point> pts;
    for (const auto& p : part.points)
      pts.push_back(
          Fixed(cx + radius * (cs * p[0] - sn * p[1]), cy + radius * (sn * p[0] + cs * p[1])));
    cv::fillPoly(coverage, std::vector<std::vector<cv::Point>>{pts}, cv::Scalar(part.cut ? 0 : 255),
                 cv::LINE_AA, kShift);
  }
  r.mask.create(size, size, CV_8UC1);
  for (int y = 0; y < size; ++y) {
    auto* out = r.image.ptr<cv::Vec3b>(y);
    const auto* a = coverage.ptr<uchar>(y);
    auto* m = r.mask.ptr<uchar>(y);
    for (int x = 0; x < size; ++x) {
      m[x] = a[x] >= 128;
      for (int c = 0; c < 3; ++c)
        out[x][c] = uchar((out[x][c] * (255 - a[x]) + r.color[c] * a[x] + 127) / 255);
    }
  }
  if (rng.chance(0.25)) {  // a thin stroke across the object: occlusion happens in real images
    const double len = rng.uniform(1.2, 2.0) * radius;
    const auto [s2, c2] = SinCos(rng.uniform(0, 2 * kPi));
    const double ox = rng.uniform(-0.4, 0.4) * radius, oy = rng.uniform(-0.4, 0.4) * radius;
    cv::line(r.image, Fixed(cx + ox - c2 * len, cy + oy - s2 * len),
             Fixed(cx + ox + c2 * len, cy + oy + s2 * len), ToScalar(RandomColor(rng)), 1,
             cv::LINE_AA, kShift);
  }
  return r;
}

// Writes a rendering as float32 image [3,S,S], mask [S,S] and colour [3] (all in [0, 1]).
void Store(const Rendered& r, float* image, float* mask, float* color) {
  const int size = r.image.rows, plane = size * size;
  for (int y = 0; y < size; ++y) {
    const auto* in = r.image.ptr<cv::Vec3b>(y);
    const auto* m = r.mask.ptr<uchar>(y);
    for (int x = 0; x < size; ++x) {
      for (int c = 0; c < 3; ++c) image[c * plane + y * size + x] = in[x][c] / 255.0f;
      mask[y * size + x] = m[x];
    }
  }
  for (int c = 0; c < 3; ++c) color[c] = r.color[c] / 255.0f;
}

int CheckSize(const SceneOptions& options) {
  if (options.size < 96 || options.size > 224)
    throw usage_error("demo scene option size must be in 96..224, got " +
                      std::to_string(options.size));
  return int(options.size);
}

}  // namespace

const std::vector<std::string>& shape_classes() {
  static const std::vector<std::string> names{"circle", "square", "triangle", "star",
                                              "cross",  "ring",   "hexagon",  "crescent"};
  return names;
}

Scene make_scene(uint64_t seed, const SceneOptions& options) {
  const int size = CheckSize(options);
  const Rendered r = Render(seed, size);
  Scene s{at::empty({3, size, size}, at::kFloat), at::empty({size, size}, at::kFloat), r.label,
          at::empty({3}, at::kFloat)};
  Store(r, s.image.data_ptr<float>(), s.mask.data_ptr<float>(), s.color.data_ptr<float>());
  return s;
}

SceneBatch make_scenes(uint64_t first_seed, int64_t count, const SceneOptions& options) {
  const int size = CheckSize(options);
  if (count < 1)
    throw usage_error("demo scene option count must be >= 1, got " + std::to_string(count));
  SceneBatch b{at::empty({count, 3, size, size}, at::kFloat),
               at::empty({count, size, size}, at::kFloat), at::empty({count}, at::kLong),
               at::empty({count, 3}, at::kFloat)};
  float *images = b.images.data_ptr<float>(), *masks = b.masks.data_ptr<float>();
  float* colors = b.colors.data_ptr<float>();
  int64_t* labels = b.labels.data_ptr<int64_t>();
  const int64_t plane = int64_t(size) * size;
  at::parallel_for(0, count, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const Rendered r = Render(first_seed + uint64_t(i), size);
      Store(r, images + i * 3 * plane, masks + i * plane, colors + i * 3);
      labels[i] = r.label;
    }
  });
  return b;
}

}  // namespace cnnvis::demo
