// The demo scene generator: determinism, layout, masks and the absence of a colour shortcut.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/error.hpp"

namespace cnnvis::demo {
namespace {

TEST(Scenes, SameSeedSameSceneDifferentSeedDifferentScene) {
  const Scene a = make_scene(42), b = make_scene(42), c = make_scene(43);
  EXPECT_TRUE(at::equal(a.image, b.image));
  EXPECT_TRUE(at::equal(a.mask, b.mask));
  EXPECT_EQ(a.label, b.label);
  EXPECT_FALSE(at::equal(a.image, c.image));
  // A batch is the scenes of consecutive seeds, whatever the threads do.
  const SceneBatch batch = make_scenes(40, 20);
  for (int64_t i = 0; i < 20; ++i) {
    const Scene s = make_scene(40 + i);
    EXPECT_TRUE(at::equal(batch.images[i], s.image)) << i;
    EXPECT_TRUE(at::equal(batch.masks[i], s.mask)) << i;
    EXPECT_TRUE(at::equal(batch.colors[i], s.color)) << i;
    EXPECT_EQ(batch.labels[i].item<int64_t>(), s.label) << i;
  }
}

TEST(Scenes, ShapesTypesAndRanges) {
  EXPECT_GE(shape_classes().size(), 8u);
  for (int64_t size : {96, 128, 224}) {
    const Scene s = make_scene(7, {size});
    EXPECT_EQ(s.image.sizes(), (at::IntArrayRef{3, size, size}));
    EXPECT_EQ(s.mask.sizes(), (at::IntArrayRef{size, size}));
    EXPECT_EQ(s.color.sizes(), (at::IntArrayRef{3}));
    EXPECT_EQ(s.image.scalar_type(), at::kFloat);
    EXPECT_EQ(s.mask.scalar_type(), at::kFloat);
    EXPECT_GE(s.image.min().item<float>(), 0.f);
    EXPECT_LE(s.image.max().item<float>(), 1.f);
    EXPECT_TRUE(at::equal(s.mask, (s.mask > 0.5).to(at::kFloat)));  // binary
    EXPECT_GE(s.label, 0);
    EXPECT_LT(s.label, int64_t(shape_classes().size()));
  }
  const SceneBatch b = make_scenes(0, 3, {96});
  EXPECT_EQ(b.images.sizes(), (at::IntArrayRef{3, 3, 96, 96}));
  EXPECT_EQ(b.masks.sizes(), (at::IntArrayRef{3, 96, 96}));
  EXPECT_EQ(b.labels.sizes(), (at::IntArrayRef{3}));
  EXPECT_EQ(b.labels.scalar_type(), at::kLong);
}

TEST(Scenes, EveryClassAppearsAboutEquallyOften) {
  const SceneBatch b = make_scenes(1000, 200, {96});
  const auto counts = at::bincount(b.labels, {}, int64_t(shape_classes().size()));
  for (size_t k = 0; k < shape_classes().size(); ++k) {
    const auto n = counts[k].item<int64_t>();
    EXPECT_GE(n, 10) << shape_classes()[k];  // 25 expected
    EXPECT_LE(n, 45) << shape_classes()[k];
  }
}

TEST(Scenes, MaskIsTheObjectInsideTheImage) {
  const SceneBatch b = make_scenes(2000, 200);
  const auto area = b.masks.mean({1, 2});
  // Smallest: a triangle of circumradius 0.11 S (1.3 r^2 = 1.6%); largest: a circle of 0.225 S.
  EXPECT_GE(area.min().item<float>(), 0.01f);
  EXPECT_LE(area.max().item<float>(), 0.17f);
  // Fully inside: nothing on the border.
  const auto border = b.masks.select(1, 0).sum() + b.masks.select(1, -1).sum() +
                      b.masks.select(2, 0).sum() + b.masks.select(2, -1).sum();
  EXPECT_EQ(border.item<float>(), 0.f);
  // Masked pixels have the object's colour, except antialiased edges (so look 1 px inside)
  // and a crossing stroke.
  const auto inside = -at::max_pool2d(-b.masks.unsqueeze(1), {3, 3}, {1, 1}, {1, 1}).squeeze(1);
  const auto same = (b.images - b.colors.view({200, 3, 1, 1})).abs().amax(1) < 0.02;
  const auto fraction = (same * inside).sum({1, 2}) / inside.sum({1, 2});
  EXPECT_GT(fraction.min().item<float>(), 0.7f);  // a stroke across a small triangle
  EXPECT_GT(fraction.mean().item<float>(), 0.95f);
}

TEST(Scenes, ColourDoesNotGiveTheClass) {
  const int64_t n = 320, k = int64_t(shape_classes().size());
  const SceneBatch b = make_scenes(5000, n, {96});
  // The object's colour is independent of its class: per-class mean colours are all close.
  const auto mean = b.colors.mean(0);
  for (int64_t c = 0; c < k; ++c) {
    const auto in_class = b.colors.index({b.labels == c});
    ASSERT_GT(in_class.size(0), 20);
    const float spread = (in_class.mean(0) - mean).abs().max().item<float>();
    EXPECT_LT(spread, 0.15f) << shape_classes()[c];  // standard error 0.045 per channel
  }
  // Pixels of a similar colour lie outside the object (dilated by 2 px) in most scenes.
  const auto near = at::max_pool2d(b.masks.unsqueeze(1), {5, 5}, {1, 1}, {2, 2}).squeeze(1);
  const auto close = ((b.images - b.colors.view({n, 3, 1, 1})).abs().amax(1) < 0.1) & (near < 0.5);
  const float fraction = (close.sum({1, 2}) >= 10).to(at::kFloat).mean().item<float>();
  EXPECT_GT(fraction, 0.5f);
}

TEST(Scenes, BadOptionsThrowNamingTheOption) {
  for (int64_t size : {95, 225, 0}) {
    try {
      make_scene(1, {size});
      ADD_FAILURE() << "size " << size << " accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find("size"), std::string::npos) << e.what();
    }
  }
  try {
    make_scenes(1, 0);
    ADD_FAILURE() << "count 0 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("count"), std::string::npos) << e.what();
  }
  EXPECT_THROW(make_scenes(1, 4, {300}), Error);
}

}  // namespace
}  // namespace cnnvis::demo
