#pragma once
// Synthetic demo scenes: one shape of a known class on a cluttered background, with the
// shape's exact mask. A small network trained on them gives a model whose right answer is
// known, so explanation methods can be scored against the mask (see examples and tests).
//
// Each scene is a pure function of its seed (std::mt19937_64, uniform numbers derived from its
// raw output, integer pixel work), so the same seed gives the same bits on every machine.
//
// Content: the background mixes two of three CC0 textures (brick, grass, gravel), each tinted
// with random colours and randomly scaled/shifted, blended along a random ramp. Over it come
// soft irregular blobs (blurred unions of elongated ellipses) and thin strokes (lines, arcs,
// squiggles) in random colours; about a third of them take a colour close to the object's, so
// colour alone does not give the class (such blobs keep clear of the object, so its outline
// stays sharp; strokes may touch it). Then the object (random colour, rotation, position
// fully inside the image, bounding circle 22-45% of the side). In about a quarter of the scenes
// one 1-pixel stroke crosses the object; the mask stays the object's full silhouette.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cnnvis::demo {

// The class names, indexed by label: circle, square, triangle, star, cross, ring, hexagon,
// crescent.
const std::vector<std::string>& shape_classes();

struct SceneOptions {
  int64_t size = 128;  // square images, 96..224
};

struct Scene {
  at::Tensor image;  // [3, S, S] float32 RGB in [0, 1]
  at::Tensor mask;   // [S, S] float32, 1 on the object's pixels, else 0
  int64_t label;     // index into shape_classes()
  at::Tensor color;  // [3] float32: the object's RGB colour (its fill, before antialiasing)
};

// The scene of `seed`. Throws cnnvis::Error (invalid argument) for a size outside 96..224.
Scene make_scene(uint64_t seed, const SceneOptions& options = {});

struct SceneBatch {
  at::Tensor images;  // [N, 3, S, S]
  at::Tensor masks;   // [N, S, S]
  at::Tensor labels;  // [N] int64
  at::Tensor colors;  // [N, 3]
};

// Scenes seed, seed+1, ..., seed+count-1 (generated in parallel; same result as make_scene).
// Throws cnnvis::Error (invalid argument) for count < 1 or a bad size.
SceneBatch make_scenes(uint64_t first_seed, int64_t count, const SceneOptions& options = {});

}  // namespace cnnvis::demo
