// Tests of the image layer, .npy I/O, atomic writes and ImageNet class names. References come
// from tests/python/make_image_fixtures.py (PIL, torchvision, matplotlib).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/imagenet.hpp"
#include "cnnvis/io/file.hpp"
#include "cnnvis/io/npy.hpp"

namespace fs = std::filesystem;
using cnnvis::Error;

namespace {

const std::string kDir = std::string(CNNVIS_FIXTURES) + "/image/";

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary) << bytes;
}

// A fresh folder per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("cnnvis_test_image_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  // Names of the files in the folder, sorted.
  std::vector<std::string> files() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

at::Tensor floats(const std::vector<float>& v) { return at::tensor(v); }

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e9;
  return (a - b).abs().max().item<double>();
}

// Runs `f`, expects a cnnvis::Error whose message contains `needle`; returns the message.
template <typename F>
std::string expect_error(F f, const std::string& needle,
                         cnnvis::ErrorKind kind = cnnvis::ErrorKind::kRuntime) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no cnnvis::Error thrown (expected one mentioning '" << needle << "')";
  return "";
}

}  // namespace

// ---------------------------------------------------------------- loading

TEST(Image, LoadPngMatchesPil) {
  const at::Tensor img = cnnvis::load_image(kDir + "rgb.png");
  EXPECT_EQ(img.sizes(), (at::IntArrayRef{3, 12, 16}));
  EXPECT_EQ(img.scalar_type(), at::kFloat);
  EXPECT_TRUE(img.is_contiguous());
  EXPECT_LT(max_diff(img, cnnvis::load_npy(kDir + "rgb.npy")), 1e-6);  // also: RGB, not BGR
}

TEST(Image, RgbaAndGrayBecomeRgb) {
  const at::Tensor rgb = cnnvis::load_npy(kDir + "rgb.npy");
  EXPECT_LT(max_diff(cnnvis::load_image(kDir + "rgba.png"), rgb), 1e-6);  // alpha dropped
  const at::Tensor column = at::arange(16, at::kFloat).expand({3, 12, 16});
  EXPECT_LT(max_diff(cnnvis::load_image(kDir + "gray.png"), column * 17 / 255), 1e-6);
  // 16-bit kept at full precision (an 8-bit detour would be off by up to 1/255).
  EXPECT_LT(max_diff(cnnvis::load_image(kDir + "gray16.png"), column * 4000 / 65535), 1e-6);
}

TEST(Image, ExifOrientationApplied) {
  // Stored 16 wide x 12 high, red left / blue right, orientation 6 (rotate 90 clockwise).
  const at::Tensor img = cnnvis::load_image(kDir + "exif_rotate90.jpg");
  ASSERT_EQ(img.sizes(), (at::IntArrayRef{3, 16, 12}));
  const at::Tensor top = img.slice(1, 0, 6).mean({1, 2}), bottom = img.slice(1, 10).mean({1, 2});
  EXPECT_GT(top[0].item<float>(), 0.8);
  EXPECT_LT(top[2].item<float>(), 0.2);
  EXPECT_LT(bottom[0].item<float>(), 0.2);
  EXPECT_GT(bottom[2].item<float>(), 0.8);
}

TEST(Image, BadFilesThrowNamingTheFile) {
  TempDir dir;
  expect_error([&] { cnnvis::load_image(dir / "cat.png"); }, "cat.png: no such file");
  expect_error([&] { cnnvis::load_image(dir / ""); }, "folder");
  write_bytes(dir / "text.png", "this is not an image\n");
  expect_error([&] { cnnvis::load_image(dir / "text.png"); }, "text.png: not a readable image");
  write_bytes(dir / "empty.png", "");
  expect_error([&] { cnnvis::load_image(dir / "empty.png"); }, "empty.png: not a readable image");
  for (const std::string name : {"rgb.png", "rgb.jpg"}) {
    const std::string bytes = read_bytes(kDir + name);
    ASSERT_GT(bytes.size(), 100u);
    ASSERT_NO_THROW(cnnvis::load_image(kDir + name));
    write_bytes(dir / ("half_" + name), bytes.substr(0, bytes.size() / 2));
    expect_error([&] { cnnvis::load_image(dir / ("half_" + name)); }, "half_" + name);
    const std::string msg = expect_error([&] { cnnvis::load_image(dir / ("half_" + name)); },
                                         "truncated");
    // Cut right before the end marker too: only the last 2 (JPEG) or 12 (PNG) bytes missing.
    const size_t tail = name == "rgb.png" ? 12 : 2;
    write_bytes(dir / ("cut_" + name), bytes.substr(0, bytes.size() - tail));
    expect_error([&] { cnnvis::load_image(dir / ("cut_" + name)); }, "truncated");
  }
}

// ---------------------------------------------------------------- resizing

TEST(Image, ResizeMatchesTorchvisionAndPil) {
  const at::Tensor img = cnnvis::load_npy(kDir + "rgb.npy");
  struct Case {
    const char* name;
    cnnvis::Preprocess options;
  };
  cnnvis::Preprocess size8, size20, crop;
  size8.size = 8;
  size20.size = 20;
  crop.resize = 9;  // 12 x 16 -> 9 x 12 -> center 7 x 7
  crop.crop = 7;
  for (const Case& c : {Case{"size8", size8}, Case{"size20", size20},
                        Case{"resize9_crop7", crop}}) {
    const at::Tensor out = cnnvis::resize_image(img, c.options);
    const std::string stem = kDir + "resize_" + c.name;
    EXPECT_LT(max_diff(out, cnnvis::load_npy(stem + "_tensor.npy")), 1e-5) << c.name;
    EXPECT_LT(max_diff(out, cnnvis::load_npy(stem + "_pil.npy")), 1.5 / 255) << c.name;
  }
}

TEST(Image, CenterCropRoundsLikeTorchvision) {
  // Shorter side already `resize`: the resize is the identity, leaving only the crop offsets.
  // torchvision: top = int(round((h - crop) / 2.0)), Python rounding halves to even.
  const at::Tensor img = at::rand({3, 13, 20});
  cnnvis::Preprocess p;
  p.resize = 13;
  p.crop = 10;  // top = round(1.5) = 2, left = round(5.0) = 5
  EXPECT_LT(max_diff(cnnvis::resize_image(img, p), img.slice(1, 2, 12).slice(2, 5, 15)), 1e-6);
  p.crop = 12;  // top = round(0.5) = 0, left = round(4.0) = 4
  EXPECT_LT(max_diff(cnnvis::resize_image(img, p), img.slice(1, 0, 12).slice(2, 4, 16)), 1e-6);
  p.resize = 20;  // 13 x 20 -> 20 x int(20 * 20 / 13) = 20 x 30
  p.crop = 20;
  EXPECT_EQ(cnnvis::resize_image(img, p).sizes(), (at::IntArrayRef{3, 20, 20}));
}

TEST(Image, ResizeOptionsValidated) {
  const at::Tensor img = at::rand({3, 12, 16});
  const auto usage = cnnvis::ErrorKind::kInvalidArgument;
  cnnvis::Preprocess p;
  p.size = 0;
  expect_error([&] { cnnvis::resize_image(img, p); }, "--size", usage);
  p.resize = 256;  // crop missing
  expect_error([&] { cnnvis::resize_image(img, p); }, "--crop", usage);
  p.crop = 300;
  expect_error([&] { cnnvis::resize_image(img, p); }, "--crop", usage);
  p.resize = -1;
  expect_error([&] { cnnvis::resize_image(img, p); }, "--resize", usage);
}

TEST(Image, NormalizeAndInput) {
  cnnvis::Preprocess p;
  const at::Tensor img = at::full({3, 2, 2}, 0.5f);
  const at::Tensor x = cnnvis::normalize(img, p);
  EXPECT_NEAR(x[0][0][0].item<float>(), (0.5 - 0.485) / 0.229, 1e-6);
  EXPECT_NEAR(x[2][1][1].item<float>(), (0.5 - 0.406) / 0.225, 1e-6);
  EXPECT_LT(max_diff(cnnvis::denormalize(x.unsqueeze(0), p), img.unsqueeze(0)), 1e-6);
  EXPECT_EQ(cnnvis::denormalize(x * 100, p).max().item<float>(), 1.0f);  // clamped
  p.size = 8;
  const at::Tensor input = cnnvis::load_input(kDir + "rgb.png", p);
  ASSERT_EQ(input.sizes(), (at::IntArrayRef{1, 3, 8, 8}));
  const at::Tensor want = cnnvis::normalize(cnnvis::load_npy(kDir + "resize_size8_tensor.npy"), p);
  EXPECT_LT(max_diff(input[0], want), 1e-4);
}

// ---------------------------------------------------------------- views

TEST(Image, GrayscaleSaliencyClipsAtPercentile99) {
  // sum_c |g| = 0, 1, ..., 8, 100. numpy.percentile(v, 99): position 0.99 * 9 = 8.91, so
  // 8 + 0.91 * (100 - 8) = 91.72; the minimum is 0.
  at::Tensor g = at::zeros({1, 3, 2, 5});
  const at::Tensor v = floats({0.f, 1, 2, 3, 4, 5, 6, 7, 8, 100}).view({2, 5});
  g[0][0] = -0.5 * v;  // signs must not matter, channels add up
  g[0][2] = 0.5 * v;
  const at::Tensor s = cnnvis::grayscale_saliency(g);
  ASSERT_EQ(s.sizes(), (at::IntArrayRef{2, 5}));
  EXPECT_LT(max_diff(s, (v / 91.72).clamp(0, 1)), 1e-6);
  EXPECT_EQ(s[1][4].item<float>(), 1.0f);
  // Constant input: zeros, not NaN; [3, H, W] is accepted too.
  EXPECT_EQ(cnnvis::grayscale_saliency(at::ones({3, 2, 2})).abs().sum().item<float>(), 0);
}

TEST(Image, PositiveNegativeAndColorGradient) {
  const at::Tensor g = floats({-2.f, -1, 0, 1, 2, 4}).view({3, 1, 2});
  EXPECT_LT(max_diff(cnnvis::positive_saliency(g),
                     floats({0.f, 0, 0, 0.25, 0.5, 1}).view({3, 1, 2})), 1e-7);
  EXPECT_LT(max_diff(cnnvis::negative_saliency(g.unsqueeze(0)),
                     floats({1.f, 0.5, 0, 0, 0, 0}).view({3, 1, 2})), 1e-7);
  EXPECT_LT(max_diff(cnnvis::gradient_color(g),
                     floats({0.f, 1, 2, 3, 4, 6}).view({3, 1, 2}) / 6), 1e-7);
  // Nothing negative: zeros (no division by zero).
  EXPECT_EQ(cnnvis::negative_saliency(g.abs()).abs().sum().item<float>(), 0);
  EXPECT_EQ(cnnvis::positive_saliency(-g.abs()).abs().sum().item<float>(), 0);
  EXPECT_EQ(cnnvis::gradient_color(at::ones({3, 2, 2})).abs().sum().item<float>(), 0);
  EXPECT_LT(max_diff(cnnvis::minmax(floats({2.f, 4, 3}).view({1, 3})),
                     floats({0.f, 1, 0.5}).view({1, 3})), 1e-7);
  EXPECT_EQ(cnnvis::minmax(at::full({2, 2}, 3.f)).abs().sum().item<float>(), 0);
  expect_error([&] { cnnvis::positive_saliency(at::zeros({2, 3, 4, 4})); }, "[1, 3, H, W]",
               cnnvis::ErrorKind::kInvalidArgument);
}

TEST(Image, ColormapsMatchMatplotlib) {
  const at::Tensor points = cnnvis::load_npy(kDir + "colormap_points.npy");
  const at::Tensor want = cnnvis::load_npy(kDir + "colormap_values.npy");  // [7, P, 3]
  const char* names[] = {"jet", "turbo", "viridis", "hsv", "gray", "seismic", "bwr"};
  for (int i = 0; i < 7; ++i) {
    const cnnvis::Colormap cmap = cnnvis::parse_colormap(names[i]);
    EXPECT_STREQ(cnnvis::to_string(cmap), names[i]);
    const at::Tensor rgb = cnnvis::apply_colormap(points.view({1, -1}), cmap);  // [3, 1, P]
    EXPECT_LT(max_diff(rgb.squeeze(1).t(), want[i]), 1.0 / 255 + 1e-6) << names[i];
  }
  // Out of range values take the end colours.
  const cnnvis::Colormap jet = cnnvis::parse_colormap("JET");
  const at::Tensor ends = cnnvis::apply_colormap(floats({-1.f, 2.f}).view({1, 2}), jet);
  const at::Tensor first_last = at::tensor(std::vector<int64_t>{0, 9});
  EXPECT_LT(max_diff(ends.squeeze(1).t(), want[0].index_select(0, first_last)), 1e-6);
  const std::string msg = expect_error([] { cnnvis::parse_colormap("rainbow"); }, "rainbow",
                                       cnnvis::ErrorKind::kInvalidArgument);
  EXPECT_NE(msg.find("jet"), std::string::npos);
}

TEST(Image, Overlay) {
  const at::Tensor a = at::zeros({3, 2, 2}), b = at::ones({3, 2, 2});
  EXPECT_LT(max_diff(cnnvis::overlay(a, b, 0.25), at::full({3, 2, 2}, 0.25f)), 1e-7);
  expect_error([&] { cnnvis::overlay(a, b, 1.5); }, "alpha", cnnvis::ErrorKind::kInvalidArgument);
  expect_error([&] { cnnvis::overlay(a, at::ones({3, 2, 3}), 0.5); }, "same size",
               cnnvis::ErrorKind::kInvalidArgument);
}

// ---------------------------------------------------------------- writing

TEST(Image, SavePngRoundTrips) {
  TempDir dir;
  const at::Tensor rgb = at::randint(0, 256, {3, 5, 7}).to(at::kFloat) / 255;
  cnnvis::save_png(dir / "rgb.png", rgb);
  EXPECT_LT(max_diff(cnnvis::load_image(dir / "rgb.png"), rgb), 1e-6);
  const at::Tensor gray = at::rand({5, 7});
  cnnvis::save_png(dir / "gray.png", gray);
  const at::Tensor want = (gray * 255).round() / 255;
  EXPECT_LT(max_diff(cnnvis::load_image(dir / "gray.png"), want.expand({3, 5, 7})), 1e-6);
  cnnvis::save_png(dir / "gray1.png", gray.unsqueeze(0));
  EXPECT_EQ(dir.files(), (std::vector<std::string>{"gray.png", "gray1.png", "rgb.png"}));
}

TEST(Image, SavePngIntoMissingFolderThrows) {
  TempDir dir;
  const std::string path = dir / "out/x.png";
  const std::string msg = expect_error([&] { cnnvis::save_png(path, at::zeros({3, 2, 2})); },
                                       path + ": cannot write");
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_TRUE(dir.files().empty());
  expect_error([&] { cnnvis::save_png(dir / "a.png", at::zeros({2, 2, 2})); }, "a.png",
               cnnvis::ErrorKind::kInvalidArgument);
}

TEST(Image, WriteFileAtomicLeavesNoTemporaries) {
  TempDir dir;
  cnnvis::write_file_atomic(dir / "f.txt", "first");
  cnnvis::write_file_atomic(dir / "f.txt", std::string("se\0cond", 7));  // replaces, binary-safe
  EXPECT_EQ(read_bytes(dir / "f.txt"), std::string("se\0cond", 7));
  fs::create_directory(dir / "sub");
  expect_error([&] { cnnvis::write_file_atomic(dir / "sub", "x"); }, dir / "sub");
  EXPECT_EQ(dir.files(), (std::vector<std::string>{"f.txt", "sub"}));
  EXPECT_TRUE(fs::is_empty(dir / "sub"));
}

// ---------------------------------------------------------------- .npy

TEST(Npy, HeaderBytesAndRoundTrip) {
  TempDir dir;
  const at::Tensor t = at::arange(12, at::kDouble).view({1, 3, 2, 2});  // stored as float32
  cnnvis::save_npy(dir / "t.npy", t);
  const std::string bytes = read_bytes(dir / "t.npy");
  // 10 + 65 + 52 spaces + '\n' = 128 bytes: the header block is a multiple of 64.
  const std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 3, 2, 2), }" +
                             std::string(52, ' ') + "\n";
  ASSERT_EQ(bytes.size(), 128u + 12 * 4);
  EXPECT_EQ(bytes.substr(0, 10), std::string("\x93NUMPY\x01\x00\x76\x00", 10));
  EXPECT_EQ(bytes.substr(10, 118), header);
  float third;
  std::memcpy(&third, bytes.data() + 128 + 2 * 4, 4);
  EXPECT_EQ(third, 2.0f);
  const at::Tensor back = cnnvis::load_npy(dir / "t.npy");
  EXPECT_EQ(back.scalar_type(), at::kFloat);
  EXPECT_EQ(max_diff(back, t.to(at::kFloat)), 0.0);
  // numpy-written files (the fixtures) load too; tested further in Image.*.
  EXPECT_EQ(cnnvis::load_npy(kDir + "rgb.npy").sizes(), (at::IntArrayRef{3, 12, 16}));
}

TEST(Npy, NumpyReadsOurFiles) {
  TempDir dir;
  cnnvis::save_npy(dir / "a.npy", at::arange(6, at::kLong).view({2, 3}));
  cnnvis::save_npy(dir / "b.npy", at::full({5}, 0.5));
  cnnvis::save_npy(dir / "c.npy", at::scalar_tensor(7.0));
  cnnvis::save_npy(dir / "d.npy", at::arange(24, at::kFloat).view({2, 3, 4}).transpose(0, 2));
  const std::string script =
      "import numpy as np, sys\n"
      "for n in 'abcd':\n"
      "    a = np.load(sys.argv[1] + '/' + n + '.npy')\n"
      "    print(n, a.dtype, a.shape, float(a.sum()), float(a.flat[1]) if a.size > 1 else 0)\n";
  write_bytes(dir / "check.py", script);
  const std::string cmd = "/usr/bin/python3 " + (dir / "check.py") + " " + (dir / "") + " > " +
                          (dir / "out.txt") + " 2>&1";
  if (std::system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") != 0) {
    GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  }
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_bytes(dir / "out.txt");
  EXPECT_EQ(read_bytes(dir / "out.txt"),
            "a float32 (2, 3) 15.0 1.0\n"
            "b float32 (5,) 2.5 0.5\n"
            "c float32 () 7.0 0\n"
            "d float32 (4, 3, 2) 276.0 12.0\n");  // transposed: made contiguous first
}

TEST(Npy, BadFilesThrowNamingTheFile) {
  TempDir dir;
  expect_error([&] { cnnvis::load_npy(dir / "none.npy"); }, "none.npy");
  write_bytes(dir / "text.npy", "hello world, not numpy");
  expect_error([&] { cnnvis::load_npy(dir / "text.npy"); }, "text.npy: not a readable .npy");
  cnnvis::save_npy(dir / "t.npy", at::ones({4, 4}));
  const std::string bytes = read_bytes(dir / "t.npy");
  write_bytes(dir / "cut.npy", bytes.substr(0, bytes.size() - 4));
  expect_error([&] { cnnvis::load_npy(dir / "cut.npy"); }, "truncated");
  expect_error([&] { cnnvis::save_npy(dir / "no/t.npy", at::ones({1})); }, "does not exist");
}

// ---------------------------------------------------------------- ImageNet

TEST(Imagenet, ClassNamesAndResolution) {
  const auto& names = cnnvis::imagenet_classes();
  ASSERT_EQ(names.size(), 1000u);
  EXPECT_EQ(names[0], "tench");
  EXPECT_EQ(names[281], "tabby");
  EXPECT_EQ(names[999], "toilet tissue");
  EXPECT_EQ(cnnvis::resolve_class("281", 1000), 281);
  EXPECT_EQ(cnnvis::resolve_class("Tabby", 1000), 281);
  EXPECT_EQ(cnnvis::resolve_class("tiger cat", 1000), 282);
  EXPECT_EQ(cnnvis::resolve_class("5", 10), 5);
  EXPECT_EQ(cnnvis::resolve_class("Cardigan", 1000), 264);  // exact case decides ...
  EXPECT_EQ(cnnvis::resolve_class("cardigan", 1000), 474);
  const auto usage = cnnvis::ErrorKind::kInvalidArgument;
  expect_error([] { cnnvis::resolve_class("CARDIGAN", 1000); }, "264, 474", usage);  // ... or not
  expect_error([] { cnnvis::resolve_class("1000", 1000); }, "0..999", usage);
  expect_error([] { cnnvis::resolve_class("-1", 1000); }, "0..999", usage);
  expect_error([] { cnnvis::resolve_class("99999999999999999999", 10); }, "0..9", usage);
  expect_error([] { cnnvis::resolve_class("tabby", 10); }, "0..9", usage);
  const std::string msg =
      expect_error([] { cnnvis::resolve_class("tabbby", 1000); }, "'tabby' (281)", usage);
  EXPECT_NE(msg.find("tabbby"), std::string::npos);
  EXPECT_EQ(cnnvis::class_name(281, 1000), "tabby");
  EXPECT_EQ(cnnvis::class_name(3, 10), "class 3");
  std::array<double, 3> rgb{};
  EXPECT_TRUE(cnnvis::parse_rgb("0.5,1,-2e-1", rgb));
  EXPECT_EQ(rgb, (std::array<double, 3>{0.5, 1.0, -0.2}));
  for (const char* bad : {"1,2", "1,2,3,4", "1,x,3", "1,2,3x", ""}) {
    EXPECT_FALSE(cnnvis::parse_rgb(bad, rgb)) << bad;
  }
  EXPECT_EQ(cnnvis::class_name(1, std::vector<std::string>{"a", "b"}), "b");
  EXPECT_EQ(cnnvis::class_name(2, std::vector<std::string>{"a", "b"}), "class 2");
}
