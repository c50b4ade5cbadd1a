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

// Importance maps for a batch: (model, normalized input [B,3,H,W], target) -> [B, H, W]. The
// target is Target::class_logits (a class per image) for a classifier and
// Target::region_logits (a class over its object, per image) for a dense output.
using MapFn = std::function<at::Tensor(Model& model, const at::Tensor& input,
                                       const Target& target)>;

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
  // What deletion puts in place of a removed pixel: the dataset's mean colour (0 in normalized
  // space, RISE's and Captum's choice, the default) or the pixel of a blurred copy (rise_blur,
  // insertion's start image), which leaves no sharp mean-colour silhouette of what was removed.
  bool deletion_blur = false;
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

// ---- ROAD (Rong et al. 2022, "A consistent and efficient evaluation strategy for attribution
// methods"; reference code tleemann/road_evaluation, as in pytorch-grad-cam's metrics) ----

// Noisy linear imputation: every pixel with removed > 0.5 is replaced, in every channel, by the
// solution of the linear system that makes it the weighted mean of its in-image neighbours
// (weights 1/6 for the 4 direct ones, 1/12 for the 4 diagonal ones), kept pixels fixed; then
// N(0, noise^2) noise is added to the replaced values (generator seeded by `seed`). image
// [C, H, W] (any values: cnnvis imputes in the normalized space the model sees, as
// pytorch-grad-cam does), removed [H, W]. Returns [C, H, W] float32 on the image's device.
// Refuses (invalid argument) a mask that removes every pixel (nothing to impute from).
at::Tensor noisy_linear_imputation(const at::Tensor& image, const at::Tensor& removed,
                                   double noise = 0.01, uint64_t seed = 0);

struct RoadOptions {
  // Fractions of the pixels removed, each in (0, 1); the curve has a point per fraction.
  std::vector<double> fractions{0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9};
  double noise = 0.01;  // standard deviation of the imputation noise (normalized space)
  uint64_t seed = 0;    // of the noise; the same for MoRF and LeRF at one fraction
  int64_t batch = 64;   // imputed images per forward pass
};
struct RoadCurves {
  at::Tensor morf, lerf;   // [fractions] float64: the target's probability after removal
  double morf_auc = 0;     // mean over the fractions (pytorch-grad-cam's average); low is good
  double lerf_auc = 0;     // high is good
  double gap() const { return lerf_auc - morf_auc; }  // high is good
};
// MoRF removes the fraction f of the pixels that the map ranks most important, LeRF the least
// important (exactly round(f * H * W) pixels, ties in raster order as in deletion); the removed
// pixels are imputed (noisy_linear_imputation) and the target scored as deletion does (the
// softmax probability; a dense output's mean probability over `region`). input [1, 3, H, W]
// normalized on the model's device; map [H, W].
RoadCurves road(Model& model, const at::Tensor& input, int64_t target, const at::Tensor& map,
                const RoadOptions& options = {}, const at::Tensor& region = {});

// ---- confidence (Chattopadhay et al. 2018, Grad-CAM++; torch-cam's ClassificationMetric and
// pytorch-grad-cam's DropInConfidence / IncreaseInConfidence) ----

// The input (normalized) times the map scaled to [0, 1] (min-max; a constant map is all 0):
// drop = max(0, p - p_masked) / p, increase = p_masked > p, p the target's probability (as
// deletion scores it).
struct ConfidenceChange {
  double drop = 0;
  bool increase = false;
};
ConfidenceChange confidence_change(Model& model, const at::Tensor& input, int64_t target,
                                   const at::Tensor& map, const at::Tensor& region = {});

// ---- complexity (as Quantus defines them: abs, then normalized by the maximum) ----

// Gini index of |map| (Chalasani et al. 2020; Quantus Sparseness): with a the sorted values of
// |map| / max|map| + 1e-7, sum_k (2k - n - 1) a_k / (n sum_k a_k); 0 for a constant map, 1 - 1/n
// for a one-hot map (the most sparse).
double sparseness(const at::Tensor& map);
// Entropy of the map's fractional contributions p = |map| / sum|map| (Bhatt et al. 2020;
// Quantus Complexity): -sum p log(p + 1e-12); log(n) for a constant map, 0 for a one-hot map.
double complexity(const at::Tensor& map);

// ---- robustness and fidelity (Yeh et al. 2019, "On the (in)fidelity and sensitivity of
// explanations"; Captum's sensitivity_max and infidelity) ----

struct SensitivityOptions {
  double radius = 0.02;  // uniform noise in [-radius, radius] per input element (normalized)
  int64_t samples = 10;
  uint64_t seed = 0;
};
// max over the samples of ||m(x + d) - m(x)||_F / ||m(x)||_F (||m(x)|| = 0 counts as 1, as in
// Captum), m the importance maps of `maps` for `target`. input [1, 3, H, W]; `map` is m(x),
// already computed. 0 for a method whose map does not depend on the input.
double max_sensitivity(Model& model, const MapFn& maps, const at::Tensor& input,
                       const Target& target, const at::Tensor& map,
                       const SensitivityOptions& options = {});

struct InfidelityOptions {
  double sigma = 0.1;    // Gaussian perturbations I ~ N(0, sigma^2) per input element
  int64_t samples = 10;
  uint64_t seed = 0;
};
// Captum's normalized infidelity: with a_k = sum(I_k * map) (the map shared by the channels)
// and b_k = p(x) - p(x - I_k) (the target's probability), beta = sum a b / sum a^2 and
// infidelity = sum_k (beta a_k - b_k)^2 / samples; low is good. input [1, 3, H, W].
double infidelity(Model& model, const at::Tensor& input, int64_t target, const at::Tensor& map,
                  const InfidelityOptions& options = {}, const at::Tensor& region = {});

// ---- random logit (Sixt et al. 2020; Quantus RandomLogit) ----

// Structural similarity of two maps as Quantus computes it (skimage's structural_similarity:
// 7 x 7 uniform windows, sample covariance, K1 0.01, K2 0.03, the border of 3 cropped) with
// data_range the span of both maps' values, after each map is divided by its maximum |value|
// (Quantus's normalise_by_max). Maps [H, W] with H, W >= 7.
double ssim(const at::Tensor& a, const at::Tensor& b);

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

// A registered method as a MapFn (its importance maps for the batch's target).
MapFn method_maps(const MethodInfo& info, Method& method);
// Reference maps: uniform noise (seeded per image, independent of the model) and a centred
// Gaussian (sigma = a quarter of the side), the chance and centre-bias levels of the metrics.
MapFn random_maps(uint64_t seed);
MapFn center_maps();

// The metrics evaluate() computes (the cascading randomization is EvaluateOptions::sanity).
struct MetricSet {
  bool pointing = true, energy = true, deletion = true, insertion = true;
  bool road = true, confidence = true, infidelity = true;
  bool sparseness = true, complexity = true, random_logit = true;
  bool sensitivity = false;  // off by default: `samples` more map computations per image
};
// "default" (all but sensitivity), "all", or a comma-separated list of pointing, energy,
// deletion, insertion, road, confidence, sensitivity, infidelity, sparseness, complexity,
// random-logit and sanity (the cascading randomization; `sanity` says whether it was named).
// Throws cnnvis::Error (invalid argument) naming --metrics for another name.
MetricSet parse_metrics(const std::string& text, bool* sanity);
// "0.1,0.2,..." -> the fractions, each in (0, 1); throws cnnvis::Error (invalid argument)
// naming --road-fractions otherwise.
std::vector<double> parse_road_fractions(const std::string& text);

struct EvaluateOptions {
  Preprocess preprocess;  // mean and std for normalizing the set's images
  MetricSet metrics;
  RoadOptions road;                // its seed is offset per image (seed + 1000 * image)
  SensitivityOptions sensitivity;  // seed + image
  InfidelityOptions infidelity;    // seed + image
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
  // Evaluation::maps keeps the importance maps of the first keep_maps images (for pictures).
  int64_t keep_maps = 0;
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
  // The newer metrics (each 0 and its per-image vector empty when not computed): means over
  // the images of the per-image values below.
  double road_morf = 0, road_lerf = 0;  // ROAD's MoRF (low is good) and LeRF (high) AUCs
  double road_gap() const { return road_lerf - road_morf; }
  double average_drop = 0;              // mean confidence drop (low is good)
  double increase_in_confidence = 0;    // share of images whose confidence rose (high)
  double sensitivity = 0;               // mean max-sensitivity (low is good)
  double infidelity_score = 0;          // mean normalized infidelity (low is good)
  double sparseness_score = 0;          // mean Gini index (high: sparse)
  double complexity_score = 0;          // mean entropy (low: simple)
  double random_logit = 0;              // mean SSIM to the map of a random other class (low)
  std::vector<double> road_morfs, road_lerfs, drops, increases, sensitivities, infidelities,
      sparsenesses, complexities, random_logits;
  std::vector<int64_t> random_classes;  // per image: the other class of the random-logit test
  // Mean curves over the images, for plots: deletion and insertion (steps + 1 points from 0
  // to all pixels changed) and ROAD's (a point per removal fraction).
  std::vector<double> deletion_curve, insertion_curve, road_morf_curve, road_lerf_curve;
  at::Tensor maps;  // [min(keep_maps, images), H, W] float32: the first images' maps
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
