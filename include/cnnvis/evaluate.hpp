#pragma once
// Faithfulness metrics for attribution maps (`cnnvis evaluate`): the pointing game and its
// energy variant against object masks, deletion and insertion curves, and the cascading
// model-randomization sanity check. Every metric works on importance maps [H, W] (see
// importance_map in cnnvis/method.hpp), so any registered method is evaluated the same way.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cnnvis/image.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/model.hpp"
#include "cnnvis/target.hpp"

namespace cnnvis::eval {

// ---- pointing game (Zhang et al. 2016, "Top-down neural attention by excitation backprop") --

// The tolerance the paper uses, 15 pixels at 224 x 224, scaled to the shorter side.
double default_margin(int64_t height, int64_t width);
// The object's region for both pointing games: the mask (> 0.5) with its holes filled, that is
// with every background pixel that is not 4-connected to the image border counted as object (a
// ring's centre). The paper's benchmarks have no holes either: VOC07's boxes and COCO's polygon
// instance masks. A concavity open to the border (a crescent's bay) stays background.
// [H, W] -> [H, W] float32 0/1 on the CPU.
at::Tensor object_region(const at::Tensor& mask);
// A hit when the map's maximum lies within `margin` pixels (Euclidean) of the object's region
// (object_region(mask)). Ties: a hit when any maximal pixel is inside (a constant map points
// everywhere, so a constant map always hits a non-empty mask; tests and the table use a random
// baseline to show chance level). map and mask [H, W]; mask > 0.5 is the object.
bool pointing_game(const at::Tensor& map, const at::Tensor& mask, double margin);
// Energy-based pointing game (Wang et al. 2020, Score-CAM, section 5.2): the share of the
// positive mass of the map inside the object's region R = object_region(mask) (Score-CAM uses
// boxes), sum(relu(map) * R) / sum(relu(map)); 0 for a map with no positive value.
double energy_pointing_game(const at::Tensor& map, const at::Tensor& mask);

// ---- deletion and insertion (Petsiuk et al. 2018, RISE, section 4.1) ----

struct CurveOptions {
  int64_t steps = 50;   // the curve has steps + 1 points, from 0 to all pixels changed
  int64_t batch = 64;   // perturbed images per forward pass
};
struct Curve {
  at::Tensor probability;  // [steps + 1] float64: softmax probability of the target class
  double auc = 0;          // trapezoidal area under it, x from 0 to 1
};
// Deletion: starting from the input, pixels are set to 0 in normalized space (the dataset's mean
// colour) in the order of the map, most important first; a faithful map makes the probability
// drop fast (low AUC is good). Insertion: starting from a blurred copy (Gaussian, 11 x 11,
// sigma 5, as RISE), the input's pixels come back in the same order (high AUC is good).
// Pixels of equal importance go in raster order. input [1, 3, H, W] normalized, on the model's
// device; map [H, W]. All points of one curve run as batches under InferenceMode. A dense
// output (a segmentation model, [1, C, h, w]) is scored by class_probability: the target's
// per-pixel probability averaged over `region` [h, w] (every pixel when it is undefined).
Curve deletion_curve(Model& model, const at::Tensor& input, int64_t target, const at::Tensor& map,
                     const CurveOptions& options = {}, const at::Tensor& region = {});
Curve insertion_curve(Model& model, const at::Tensor& input, int64_t target,
                      const at::Tensor& map, const CurveOptions& options = {},
                      const at::Tensor& region = {});
// RISE's blurred start image for insertion, [N, 3, H, W] -> same.
at::Tensor rise_blur(const at::Tensor& input);
// Trapezoidal area under a curve sampled at equal steps on [0, 1] (RISE's auc()).
double curve_auc(const at::Tensor& curve);

// ---- model randomization (Adebayo et al. 2018, "Sanity checks for saliency maps") ----

// Spearman rank correlation of two maps of the same size (ties get their average rank).
// 0 when either map is constant.
double spearman(const at::Tensor& a, const at::Tensor& b);

// The model's parameterized layers in forward order, each a group of parameter names: a
// convolution or linear layer, with the 1-D-only layers (BatchNorm) that follow it joined to it.
struct LayerGroup {
  std::string name;                 // "features.0" (the layer with the weight matrix)
  std::vector<std::string> params;  // "features.0.weight", "features.0.bias", "features.1.weight"
};
std::vector<LayerGroup> layer_groups(Model& model);

// Re-initializes layer groups in place and puts every parameter back on destruction (also on
// exceptions). Re-initialization, seeded: weights with dim >= 2 ~ N(0, 2 / fan_in) (He normal),
// biases ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (PyTorch's default), BatchNorm scale 1 and shift
// 0. Running statistics stay (they are data, not learned weights).
class RandomizedLayers {
 public:
  explicit RandomizedLayers(Model& model);
  ~RandomizedLayers();
  RandomizedLayers(const RandomizedLayers&) = delete;
  RandomizedLayers& operator=(const RandomizedLayers&) = delete;
  void randomize(const LayerGroup& group, uint64_t seed);

 private:
  Model& model_;
  std::vector<std::pair<at::Tensor, at::Tensor>> saved_;  // (parameter, original copy)
};

// ---- evaluating a method over a set of images ----

// Images with object masks and the class each image is explained for.
struct EvaluationSet {
  at::Tensor images;              // [N, 3, H, W] RGB in [0, 1]
  at::Tensor masks;               // [N, H, W], 1 on the object
  std::vector<int64_t> targets;   // class per image (-1: the model's top class)
  std::vector<std::string> names; // per image, for reports
};
// Held-out demo scenes (seeds from cnnvis::demo::kHeldOutSeed, never trained on), explained
// for their true class.
EvaluationSet demo_evaluation_set(int64_t count, int64_t size);
// Every image of `folder` that has a mask next to it (`<stem>_mask.png`, object > 127),
// resized as `preprocess` says (masks with nearest neighbour). The target is the class named
// by the stem's last '_' part when it is one of class_names ("scene_1010_star" -> star),
// else -1 (the caller uses the model's top-1). Throws cnnvis::Error naming the folder when it
// has no image with a mask.
EvaluationSet load_evaluation_set(const std::string& folder, const Preprocess& preprocess,
                                  const std::vector<std::string>& class_names);

// Importance maps for a batch: (model, normalized input [B,3,H,W], target) -> [B, H, W]. The
// target is Target::class_logits (a class per image) for a classifier and
// Target::region_logits (a class over its object, per image) for a dense output.
using MapFn = std::function<at::Tensor(Model& model, const at::Tensor& input,
                                       const Target& target)>;
// A registered method as a MapFn (its importance maps for the batch's target).
MapFn method_maps(const MethodInfo& info, Method& method);
// Reference maps: uniform noise (seeded per image, independent of the model) and a centred
// Gaussian (sigma = a quarter of the side), the chance and centre-bias levels of the metrics.
MapFn random_maps(uint64_t seed);
MapFn center_maps();

struct EvaluateOptions {
  Preprocess preprocess;  // mean and std for normalizing the set's images
  double margin = -1;     // pointing-game tolerance in pixels; < 0: default_margin
  CurveOptions curve;
  int64_t batch = 16;     // images per method call
  bool sanity = true;     // run the cascading randomization
  int64_t cascade = 0;    // layer groups randomized from the top; 0 = all
  int64_t sanity_images = 16;  // the randomization runs on the first this many images (0: all)
  uint64_t seed = 0;      // re-initialization seed
  // Reference maps to compare with (the same method in float32, for `maps` run in a reduced
  // precision): when set, they are computed for every image too (untimed) and
  // Evaluation::reference_correlation holds each image's Spearman correlation to them.
  MapFn reference;
  // Sharing one evaluation among processes (`mpirun cnnvis evaluate`): this process computes
  // the maps and metrics of the batches b (of `batch` images, counted from image 0) with
  // b % part_count == part_index, and `reduce` sums vectors elementwise across the processes
  // (mpi::sum) before the means are taken, so that every process returns the whole
  // Evaluation, the same as one process computing every image with the same batches.
  int64_t part_index = 0;
  int64_t part_count = 1;
  std::function<void(std::vector<double>&)> reduce;
};

struct Evaluation {
  std::string method;
  int64_t images = 0;
  double pointing = 0;       // pointing-game hit rate
  double energy = 0;         // mean energy-based pointing game
  double deletion_auc = 0;   // mean; lower is better
  double insertion_auc = 0;  // mean; higher is better
  double ms_per_image = 0;   // time of the map computation (not of the metrics); shared
                             // among processes: their summed time per image
  // Cascading randomization (on the first sanity_images images): after randomizing the top k
  // layer groups (k = 1..K),
  // cascade_layers[k-1] is the k-th group from the top and cascade_correlation[k-1] the mean
  // Spearman correlation between the trained and the randomized model's maps (a method that
  // explains the model drops towards 0).
  std::vector<std::string> cascade_layers;
  std::vector<double> cascade_correlation;
  // With EvaluateOptions::reference: per image, Spearman(map, reference map), and the mean.
  std::vector<double> reference_correlation;
  double reference_rank = 0;
  std::vector<int> hits;                // per image
  std::vector<double> energies, deletion, insertion;  // per image
};

// Throws cnnvis::Error (invalid argument) for options that do not fit `model`: a cascade deeper
// than its layer groups. evaluate() calls it first; callers may call it before other work.
void check_evaluate_options(Model& model, const EvaluateOptions& options);

// (done, total) after every batch of maps.
using EvaluateProgress = std::function<void(int64_t done, int64_t total)>;

// Runs `maps` on every image of `set` (targets < 0 become the top-1 class) and scores it.
// The model's parameters are unchanged afterwards.
// A segmentation model (an output [N, C, h, w]) explains each image's class over its object:
// the region is the mask resized (nearest) to the output's h x w, the target its class's
// logits summed over that region (Target::region_logits), a target < 0 the class predicted at
// most pixels of the region (top_class), and deletion and insertion follow the class's mean
// probability over the region (class_probability). An object that covers no output pixel is
// refused, naming the image.
Evaluation evaluate(Model& model, const std::string& name, const MapFn& maps,
                    const EvaluationSet& set, const EvaluateOptions& options = {},
                    const EvaluateProgress& progress = nullptr);

}  // namespace cnnvis::eval
