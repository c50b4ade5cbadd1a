// Faithfulness metrics; see include/cnnvis/evaluate.hpp.
#include "cnnvis/evaluate.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"

namespace cnnvis {

at::Tensor importance_map(const at::Tensor& raw, int64_t height, int64_t width) {
  at::Tensor map;
  if (raw.dim() == 3 && raw.size(0) == 3) {
    map = raw.abs().sum(0);
  } else if (raw.dim() == 3 && raw.size(0) == 1) {
    map = raw[0];
  } else if (raw.dim() == 2) {
    map = raw;
  } else {
    throw Error("importance map: expected a raw result of shape [3,h,w], [1,h,w] or [h,w], got " +
                c10::str(raw.sizes()) + "; give the method's MethodInfo an importance function");
  }
  map = map.detach().to(torch::kCPU, torch::kFloat);
  if (map.size(0) != height || map.size(1) != width) {
    map = torch::nn::functional::interpolate(
              map.unsqueeze(0).unsqueeze(0),
              torch::nn::functional::InterpolateFuncOptions()
                  .size(std::vector<int64_t>{height, width})
                  .mode(torch::kBilinear)
                  .align_corners(false))[0][0];
  }
  return map.contiguous();
}

at::Tensor method_importance(const MethodInfo& info, const at::Tensor& raw, int64_t height,
                             int64_t width) {
  if (info.importance) {
    return info.importance(raw, height, width).detach().to(torch::kCPU, torch::kFloat);
  }
  return importance_map(raw, height, width);
}

namespace eval {
namespace {

void check_map(const at::Tensor& map, const at::Tensor& mask, const char* what) {
  if (map.dim() != 2 || mask.dim() != 2 || map.sizes() != mask.sizes()) {
    throw usage_error(std::string(what) + ": expected a map and a mask of the same size [H, W], got " +
                      c10::str(map.sizes()) + " and " + c10::str(mask.sizes()));
  }
}

torch::Device device_of(Model& model, const at::Tensor& fallback) {
  for (const auto& p : model.module().parameters()) return p.device();
  return fallback.device();
}

// Softmax probability of `target` for the images start + (substrate - start) * changed(step)
// at every step, in batches.
Curve perturbation_curve(Model& model, const at::Tensor& start, const at::Tensor& substrate,
                         int64_t target, const at::Tensor& map, const CurveOptions& o,
                         const at::Tensor& region) {
  if (start.dim() != 4 || start.size(0) != 1) {
    throw usage_error("deletion/insertion: expected one input [1, 3, H, W], got " +
                      c10::str(start.sizes()));
  }
  const int64_t h = start.size(2), w = start.size(3), n = h * w;
  if (map.dim() != 2 || map.size(0) != h || map.size(1) != w) {
    throw usage_error("deletion/insertion: the map " + c10::str(map.sizes()) +
                      " does not match the input's " + std::to_string(h) + "x" +
                      std::to_string(w));
  }
  if (o.steps < 1 || o.batch < 1) throw usage_error("deletion/insertion: steps and batch must be >= 1");
  torch::InferenceMode guard;
  // rank[p] = position of pixel p in the order (descending importance, ties in raster order).
  const auto order = std::get<1>(map.reshape({n}).to(torch::kCPU, torch::kFloat)
                                     .sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
  auto rank = torch::empty({n}, torch::kLong);
  rank.index_put_({order}, torch::arange(n, torch::kLong));
  rank = rank.reshape({1, 1, h, w}).to(start.device());
  std::vector<double> probs;
  probs.reserve(o.steps + 1);
  for (int64_t first = 0; first <= o.steps; first += o.batch) {
    const int64_t count = std::min(o.batch, o.steps + 1 - first);
    std::vector<int64_t> changed(count);
    for (int64_t i = 0; i < count; ++i) {
      changed[i] = static_cast<int64_t>(std::llround(static_cast<double>(first + i) * n / o.steps));
    }
    const auto limit = torch::tensor(changed, torch::kLong).to(start.device()).view({count, 1, 1, 1});
    const auto replace = rank < limit;  // [count, 1, H, W]
    const auto batch = torch::where(replace, substrate.expand({count, -1, -1, -1}),
                                    start.expand({count, -1, -1, -1}));
    const auto p = class_probability(model.forward(batch).output, target, region);
    for (int64_t i = 0; i < count; ++i) probs.push_back(p[i].item<double>());
  }
  Curve curve;
  curve.probability = torch::tensor(probs, torch::kDouble);
  curve.auc = curve_auc(curve.probability);
  return curve;
}

// Average ranks (1-based) of v, ties sharing their mean rank.
std::vector<double> average_ranks(const std::vector<float>& v) {
  std::vector<size_t> idx(v.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> ranks(v.size());
  for (size_t i = 0; i < idx.size();) {
    size_t j = i;
    while (j + 1 < idx.size() && v[idx[j + 1]] == v[idx[i]]) ++j;
    const double r = 0.5 * static_cast<double>(i + j) + 1.0;
    for (size_t k = i; k <= j; ++k) ranks[idx[k]] = r;
    i = j + 1;
  }
  return ranks;
}

std::vector<float> to_vector(const at::Tensor& t) {
  const auto c = t.detach().to(torch::kCPU, torch::kFloat).contiguous().reshape({-1});
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

std::string owner_of(const std::string& param) {
  const auto dot = param.rfind('.');
  return dot == std::string::npos ? "" : param.substr(0, dot);
}

}  // namespace

double default_margin(int64_t height, int64_t width) {
  return 15.0 * static_cast<double>(std::min(height, width)) / 224.0;
}

at::Tensor object_region(const at::Tensor& mask) {
  if (mask.dim() != 2) {
    throw usage_error("object region: expected a mask [H, W], got " + c10::str(mask.sizes()));
  }
  const auto object = (mask.detach().to(torch::kCPU, torch::kFloat) > 0.5)
                          .to(torch::kUInt8)
                          .contiguous();
  const int h = static_cast<int>(object.size(0)), w = static_cast<int>(object.size(1));
  // A one-pixel background frame makes the whole border one region; flood it (4-connected) and
  // everything it does not reach is object or hole.
  cv::Mat framed(h + 2, w + 2, CV_8U, cv::Scalar(0));
  cv::Mat(h, w, CV_8U, object.data_ptr<uint8_t>()).copyTo(framed(cv::Rect(1, 1, w, h)));
  cv::floodFill(framed, cv::Point(0, 0), cv::Scalar(2), nullptr, cv::Scalar(0), cv::Scalar(0), 4);
  auto region = torch::empty({h, w}, torch::kFloat);
  auto r = region.accessor<float, 2>();
  for (int y = 0; y < h; ++y) {
    const auto* row = framed.ptr<uint8_t>(y + 1) + 1;
    for (int x = 0; x < w; ++x) r[y][x] = row[x] == 2 ? 0.f : 1.f;
  }
  return region;
}

bool pointing_game(const at::Tensor& map_in, const at::Tensor& mask_in, double margin) {
  check_map(map_in, mask_in, "pointing game");
  const auto map = map_in.detach().to(torch::kCPU, torch::kFloat);
  auto object = object_region(mask_in);
  const int64_t r = static_cast<int64_t>(std::floor(std::max(0.0, margin)));
  if (r > 0) {
    // Dilate the mask by a disk of radius `margin`.
    const auto coords = torch::arange(-r, r + 1, torch::kFloat);
    const auto disk = ((coords.view({-1, 1}).pow(2) + coords.view({1, -1}).pow(2)) <=
                       static_cast<float>(margin * margin))
                          .to(torch::kFloat);
    object = torch::conv2d(object.unsqueeze(0).unsqueeze(0), disk.unsqueeze(0).unsqueeze(0),
                           {}, 1, r)[0][0] > 0.5;
  } else {
    object = object > 0.5;
  }
  const auto top = map.eq(map.max());
  return (top & object).any().item<bool>();
}

double energy_pointing_game(const at::Tensor& map_in, const at::Tensor& mask_in) {
  check_map(map_in, mask_in, "energy pointing game");
  const auto positive = map_in.detach().to(torch::kCPU, torch::kDouble).clamp_min(0);
  const auto object = object_region(mask_in).to(torch::kDouble);
  const double total = positive.sum().item<double>();
  if (!(total > 0)) return 0.0;
  return (positive * object).sum().item<double>() / total;
}

double curve_auc(const at::Tensor& curve) {
  const auto c = curve.to(torch::kCPU, torch::kDouble).reshape({-1});
  const int64_t n = c.size(0);
  if (n < 2) throw usage_error("curve AUC: need at least 2 points");
  return (c.sum().item<double>() - 0.5 * c[0].item<double>() - 0.5 * c[n - 1].item<double>()) /
         static_cast<double>(n - 1);
}

at::Tensor rise_blur(const at::Tensor& input) {
  torch::NoGradGuard no_grad;
  constexpr int64_t klen = 11;
  constexpr double sigma = 5.0;
  auto k = torch::arange(klen, torch::TensorOptions().dtype(input.scalar_type()).device(input.device())) -
           static_cast<double>(klen / 2);
  k = torch::exp(-k.pow(2) / (2 * sigma * sigma));
  k = k / k.sum();
  const auto kernel = (k.view({-1, 1}) * k.view({1, -1})).expand({input.size(1), 1, klen, klen});
  // RISE convolves with zero padding (in normalized space: the mean colour).
  return torch::conv2d(input, kernel.contiguous(), {}, 1, klen / 2, 1, input.size(1));
}

Curve deletion_curve(Model& model, const at::Tensor& input, int64_t target, const at::Tensor& map,
                     const CurveOptions& options, const at::Tensor& region) {
  const auto substrate = options.deletion_blur ? rise_blur(input) : torch::zeros_like(input);
  return perturbation_curve(model, input, substrate, target, map, options, region);
}

Curve insertion_curve(Model& model, const at::Tensor& input, int64_t target,
                      const at::Tensor& map, const CurveOptions& options,
                      const at::Tensor& region) {
  return perturbation_curve(model, rise_blur(input), input, target, map, options, region);
}

double spearman(const at::Tensor& a, const at::Tensor& b) {
  if (a.numel() != b.numel()) {
    throw usage_error("spearman: maps of different sizes " + c10::str(a.sizes()) + " and " +
                      c10::str(b.sizes()));
  }
  const auto ra = average_ranks(to_vector(a));
  const auto rb = average_ranks(to_vector(b));
  const double n = static_cast<double>(ra.size());
  const double mean = (n + 1) / 2;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - mean) * (rb[i] - mean);
    saa += (ra[i] - mean) * (ra[i] - mean);
    sbb += (rb[i] - mean) * (rb[i] - mean);
  }
  if (saa <= 0 || sbb <= 0) return 0.0;
  return sab / std::sqrt(saa * sbb);
}

std::vector<LayerGroup> layer_groups(Model& model) {
  std::map<std::string, int64_t> weight_dim;  // owner -> dim of its "weight"
  const auto params = model.module().named_parameters(/*recurse=*/true);
  for (const auto& p : params) {
    if (p.key().size() > 7 && p.key().compare(p.key().size() - 7, 7, ".weight") == 0) {
      weight_dim[owner_of(p.key())] = p.value().dim();
    }
  }
  std::vector<LayerGroup> groups;
  std::string current_owner;
  for (const auto& p : params) {
    const std::string owner = owner_of(p.key());
    const auto it = weight_dim.find(owner);
    const bool matrix = it != weight_dim.end() && it->second >= 2;
    if (groups.empty() || (matrix && owner != current_owner)) {
      groups.push_back({owner, {}});
    }
    if (matrix) current_owner = owner;
    groups.back().params.push_back(p.key());
  }
  return groups;
}

RandomizedLayers::RandomizedLayers(Model& model) : model_(model) {}

RandomizedLayers::~RandomizedLayers() {
  torch::NoGradGuard no_grad;
  for (auto& [param, original] : saved_) param.copy_(original);
}

void RandomizedLayers::randomize(const LayerGroup& group, uint64_t seed) {
  torch::NoGradGuard no_grad;
  auto params = model_.module().named_parameters(/*recurse=*/true);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& name : group.params) {
    auto* found = params.find(name);
    if (found == nullptr) throw Error("randomize: the model has no parameter " + name);
    auto param = *found;
    saved_.emplace_back(param, param.detach().clone());
    const std::string owner = owner_of(name);
    const auto* weight = params.find(owner + ".weight");
    const bool matrix = weight != nullptr && weight->dim() >= 2;
    const bool is_weight = name.size() > 7 && name.compare(name.size() - 7, 7, ".weight") == 0;
    at::Tensor value;
    if (matrix) {
      const double fan_in = static_cast<double>(weight->numel() / weight->size(0));
      const auto cpu = torch::TensorOptions().dtype(torch::kFloat);
      if (is_weight) {
        value = at::normal(0.0, std::sqrt(2.0 / fan_in), param.sizes(), gen, cpu);
      } else {
        const double bound = 1.0 / std::sqrt(fan_in);
        value = (torch::rand(param.sizes(), gen, cpu) * 2 - 1) * bound;
      }
    } else {
      value = is_weight ? torch::ones(param.sizes()) : torch::zeros(param.sizes());
    }
    param.copy_(value.to(param.device(), param.scalar_type()));
  }
}

EvaluationSet demo_evaluation_set(int64_t count, int64_t size) {
  const auto scenes = demo::make_scenes(demo::kHeldOutSeed, count, {size});
  EvaluationSet set;
  set.images = scenes.images;
  set.masks = scenes.masks;
  const auto& classes = demo::shape_classes();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t label = scenes.labels[i].item<int64_t>();
    set.targets.push_back(label);
    set.names.push_back("held-out " + std::to_string(i) + " (" + classes[label] + ")");
  }
  return set;
}

EvaluationSet load_evaluation_set(const std::string& folder, const Preprocess& preprocess,
                                  const std::vector<std::string>& class_names) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw usage_error("--images " + folder + ": not a folder; name a folder of images with "
                      "<stem>_mask.png masks");
  }
  std::vector<fs::path> paths;
  static const std::vector<std::string> kImageExtensions = {".png", ".jpg", ".jpeg", ".bmp",
                                                            ".tif", ".tiff", ".webp"};
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (!entry.is_regular_file()) continue;
    const auto stem = entry.path().stem().string();
    const auto ext = entry.path().extension().string();
    if (std::find(kImageExtensions.begin(), kImageExtensions.end(), ext) ==
        kImageExtensions.end()) {
      continue;
    }
    if (stem.size() >= 5 && stem.compare(stem.size() - 5, 5, "_mask") == 0) continue;
    if (fs::exists(entry.path().parent_path() / (stem + "_mask.png"))) {
      paths.push_back(entry.path());
    }
  }
  if (paths.empty()) {
    throw usage_error("--images " + folder + ": no image with a mask (<stem>_mask.png next to "
                      "<stem>.png); the demo scenes in data/scenes/ show the layout");
  }
  std::sort(paths.begin(), paths.end());
  std::vector<at::Tensor> images, masks;
  EvaluationSet set;
  for (const auto& path : paths) {
    images.push_back(resize_image(load_image(path.string()), preprocess));
    const auto mask_path = path.parent_path() / (path.stem().string() + "_mask.png");
    auto mask = load_image(mask_path.string())[0];
    // Nearest-neighbour resize of the mask to the image's geometry.
    const int64_t mh = mask.size(0), mw = mask.size(1);
    int64_t out_h = preprocess.size, out_w = preprocess.size;
    if (preprocess.resize > 0) {
      const double s = static_cast<double>(preprocess.resize) / static_cast<double>(std::min(mh, mw));
      out_h = std::max<int64_t>(1, std::llround(mh * s));
      out_w = std::max<int64_t>(1, std::llround(mw * s));
    }
    mask = torch::nn::functional::interpolate(
               mask.unsqueeze(0).unsqueeze(0),
               torch::nn::functional::InterpolateFuncOptions()
                   .size(std::vector<int64_t>{out_h, out_w})
                   .mode(torch::kNearest))[0][0];
    if (preprocess.resize > 0) {
      const int64_t c = preprocess.crop;
      const int64_t top = (out_h - c) / 2, left = (out_w - c) / 2;
      if (top < 0 || left < 0) throw usage_error("--crop larger than the resized mask " + mask_path.string());
      mask = mask.slice(0, top, top + c).slice(1, left, left + c);
    }
    masks.push_back((mask > 0.5).to(torch::kFloat));
    const auto stem = path.stem().string();
    const auto us = stem.rfind('_');
    const std::string last = us == std::string::npos ? stem : stem.substr(us + 1);
    const auto it = std::find(class_names.begin(), class_names.end(), last);
    set.targets.push_back(it == class_names.end() ? -1 : it - class_names.begin());
    set.names.push_back(path.filename().string());
  }
  set.images = torch::stack(images);
  set.masks = torch::stack(masks);
  return set;
}

MapFn method_maps(const MethodInfo& info, Method& method) {
  return [&info, &method](Model& model, const at::Tensor& input, const Target& target) {
    const auto raw = method.attribute(model, input, target).detach();
    const int64_t h = input.size(2), w = input.size(3);
    std::vector<at::Tensor> maps;
    for (int64_t i = 0; i < input.size(0); ++i) {
      maps.push_back(method_importance(info, raw[i], h, w));
    }
    return torch::stack(maps);
  };
}

MapFn random_maps(uint64_t seed) {
  return [seed](Model&, const at::Tensor& input, const Target&) {
    std::vector<at::Tensor> maps;
    for (int64_t i = 0; i < input.size(0); ++i) {
      // Seeded by the image's content, so the same image gets the same map in every run.
      const double content = input[i].to(torch::kCPU, torch::kDouble).abs().sum().item<double>();
      const uint64_t image_key = static_cast<uint64_t>(std::llround(content * 1000.0));
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed ^ (image_key * 0x9E3779B97F4A7C15ull));
      maps.push_back(torch::rand({input.size(2), input.size(3)}, gen, torch::kFloat));
    }
    return torch::stack(maps);
  };
}

MapFn center_maps() {
  return [](Model&, const at::Tensor& input, const Target&) {
    const int64_t h = input.size(2), w = input.size(3);
    const auto y = (torch::arange(h, torch::kFloat) - (h - 1) / 2.0f) / (h / 4.0f);
    const auto x = (torch::arange(w, torch::kFloat) - (w - 1) / 2.0f) / (w / 4.0f);
    const auto map = torch::exp(-0.5 * (y.view({-1, 1}).pow(2) + x.view({1, -1}).pow(2)));
    return map.unsqueeze(0).expand({input.size(0), h, w}).contiguous();
  };
}

namespace {

// The comma-separated fields of `text`, empty ones included ("a,,b" -> a, "", b).
std::vector<std::string> comma_fields(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    out.push_back(text.substr(start, comma - start));
    start = comma + 1;
  }
  return out;
}

}  // namespace

MetricSet parse_metrics(const std::string& text, bool* sanity) {
  MetricSet m;
  if (sanity) *sanity = true;
  if (text == "default" || text.empty()) return m;
  if (text == "all") {
    m.sensitivity = true;
    return m;
  }
  bool with_sanity = true;
  const std::map<std::string, bool*> names = {
      {"pointing", &m.pointing},       {"energy", &m.energy},
      {"deletion", &m.deletion},       {"insertion", &m.insertion},
      {"road", &m.road},               {"confidence", &m.confidence},
      {"sensitivity", &m.sensitivity}, {"infidelity", &m.infidelity},
      {"sparseness", &m.sparseness},   {"complexity", &m.complexity},
      {"random-logit", &m.random_logit}, {"sanity", &with_sanity}};
  for (const auto& [name, on] : names) *on = false;  // a list names every metric it wants
  for (const auto& name : comma_fields(text)) {
    const auto it = names.find(name);
    if (it == names.end()) {
      throw usage_error("--metrics: unknown metric '" + name + "'; expected default, all, or a "
                        "list of pointing, energy, deletion, insertion, road, confidence, "
                        "sensitivity, infidelity, sparseness, complexity, random-logit, sanity");
    }
    *it->second = true;
  }
  if (sanity) *sanity = with_sanity;
  return m;
}

std::vector<double> parse_road_fractions(const std::string& text) {
  std::vector<double> fractions;
  for (const auto& f : comma_fields(text)) {
    double v = 0;
    try {
      size_t used = 0;
      v = std::stod(f, &used);
      if (used != f.size()) throw std::invalid_argument(f);
    } catch (const std::exception&) {
      throw usage_error("--road-fractions: expected numbers in (0, 1) separated by commas, got '" +
                        f + "'");
    }
    if (!(v > 0 && v < 1)) {
      throw usage_error("--road-fractions: each fraction must lie in (0, 1), got " + f);
    }
    fractions.push_back(v);
  }
  return fractions;
}

void check_evaluate_options(Model& model, const EvaluateOptions& o) {
  if (!o.sanity || o.cascade == 0) return;
  const auto groups = layer_groups(model);
  if (o.cascade > static_cast<int64_t>(groups.size())) {
    throw Error("--cascade " + std::to_string(o.cascade) + ": the model has " +
                    std::to_string(groups.size()) + " layer groups to randomize" +
                    (groups.empty() ? std::string()
                                    : " (" + groups.front().name + " ... " +
                                          groups.back().name + ")") +
                    "; use 1 to " + std::to_string(groups.size()) + ", or 0 for all of them",
                ErrorKind::kInvalidArgument);
  }
}

Evaluation evaluate(Model& model, const std::string& name, const MapFn& maps,
                    const EvaluationSet& set, const EvaluateOptions& o,
                    const EvaluateProgress& progress) {
  const int64_t n = set.images.size(0);
  const int64_t h = set.images.size(2), w = set.images.size(3);
  if (set.images.dim() != 4 || set.masks.dim() != 3 || set.masks.size(0) != n ||
      set.masks.size(1) != h || set.masks.size(2) != w ||
      static_cast<int64_t>(set.targets.size()) != n ||
      static_cast<int64_t>(set.names.size()) != n) {
    throw usage_error("evaluate: images [N,3,H,W], masks [N,H,W], N targets and N names expected");
  }
  if (o.batch < 1) throw usage_error("evaluate: batch must be >= 1");
  if (o.part_count < 1 || o.part_index < 0 || o.part_index >= o.part_count ||
      (o.part_count > 1 && !o.reduce)) {
    throw usage_error("evaluate: part_index in [0, part_count) and, for part_count > 1, a "
                      "reduce function expected");
  }
  // This process's images: those of its batches.
  const auto owned = [&](int64_t i) { return (i / o.batch) % o.part_count == o.part_index; };
  const auto device = device_of(model, set.images);
  const auto inputs = normalize(set.images, o.preprocess);
  const double margin = o.margin < 0 ? default_margin(h, w) : o.margin;

  std::vector<LayerGroup> groups;
  int64_t cascade = 0;
  if (o.sanity) {
    check_evaluate_options(model, o);
    groups = layer_groups(model);
    cascade = o.cascade > 0 ? o.cascade : static_cast<int64_t>(groups.size());
  }
  // A dense output (segmentation): each image's class over its object, at the output's
  // resolution.
  at::Tensor regions;  // [N, h, w] float 0/1 on the CPU, for a dense output
  at::Tensor probe;    // image 0's output
  {
    torch::InferenceMode guard;  // not around the regions: the targets use them with autograd
    probe = model.forward(inputs.slice(0, 0, 1).to(device)).output;
  }
  if (probe.dim() == 4) {
    regions = torch::nn::functional::interpolate(
                  set.masks.to(torch::kFloat).unsqueeze(1),
                  torch::nn::functional::InterpolateFuncOptions()
                      .size(std::vector<int64_t>{probe.size(2), probe.size(3)})
                      .mode(torch::kNearest))
                  .squeeze(1)
                  .gt(0.5)
                  .to(torch::kFloat);
    for (int64_t i = 0; i < n; ++i) {
      if (regions[i].sum().item<double>() == 0) {
        throw usage_error("evaluate: " + set.names[i] + ": its object covers no pixel of the "
                          "model's " + std::to_string(probe.size(2)) + "x" +
                          std::to_string(probe.size(3)) + " output; give a larger mask or "
                          "a larger --size");
      }
    }
  }
  const bool dense = regions.defined();
  std::vector<int64_t> targets = set.targets;
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] < 0 && owned(i)) {
      torch::InferenceMode guard;
      const auto out = i == 0 ? probe : model.forward(inputs.slice(0, i, i + 1).to(device)).output;
      targets[i] = dense ? top_class(out, regions[i]) : top_class(out);
    }
  }
  auto batch_target = [&](int64_t first, int64_t last,
                          const std::vector<int64_t>* classes = nullptr) {
    const auto& from = classes ? *classes : targets;
    std::vector<int64_t> t(from.begin() + first, from.begin() + last);
    return dense ? Target::region_logits(std::move(t), regions.slice(0, first, last).to(device))
                 : Target::class_logits(std::move(t));
  };
  const int64_t n_sanity = o.sanity_images > 0 ? std::min(o.sanity_images, n) : n;
  int64_t n_own = 0, n_own_sanity = 0;
  for (int64_t i = 0; i < n; ++i) {
    n_own += owned(i) ? 1 : 0;
    n_own_sanity += owned(i) && i < n_sanity ? 1 : 0;
  }
  const int64_t total = n_own * (2 + (o.reference ? 1 : 0) + (o.metrics.random_logit ? 1 : 0)) +
                        n_own_sanity * cascade;
  int64_t done = 0;
  double seconds = 0;

  // Maps of the first `count` images, batched (zeros for another process's batches); `timed`
  // adds to `seconds`.
  auto all_maps = [&](bool timed, int64_t count, const MapFn& fn,
                      const std::vector<int64_t>* classes = nullptr) {
    std::vector<at::Tensor> out;
    for (int64_t first = 0; first < count; first += o.batch) {
      const int64_t last = std::min(count, first + o.batch);
      if (!owned(first)) {
        out.push_back(torch::zeros({last - first, h, w}, torch::kFloat));
        continue;
      }
      const auto x = inputs.slice(0, first, last).to(device);
      const auto target = batch_target(first, last, classes);
      const auto start = std::chrono::steady_clock::now();
      auto m = fn(model, x, target);
      m = m.to(torch::kCPU, torch::kFloat);  // waits for the device
      seconds += timed ? std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                             .count()
                       : 0.0;
      if (m.dim() != 3 || m.size(0) != last - first || m.size(1) != h || m.size(2) != w) {
        throw Error("evaluate " + name + ": the maps have shape " + c10::str(m.sizes()) +
                    ", expected [" + std::to_string(last - first) + ", " + std::to_string(h) +
                    ", " + std::to_string(w) + "]");
      }
      out.push_back(m);
      done += last - first;
      if (progress) progress(done, total);
    }
    return torch::cat(out);
  };

  Evaluation result;
  result.method = name;
  result.images = n;
  const auto trained = all_maps(true, n, maps);
  if (o.reference) {
    const auto reference = all_maps(false, n, o.reference);
    for (int64_t i = 0; i < n; ++i) {
      result.reference_correlation.push_back(owned(i) ? spearman(trained[i], reference[i]) : 0);
    }
  }
  const MetricSet& m = o.metrics;
  const auto sized = [n](bool on, auto& v) { v.assign(on ? static_cast<size_t>(n) : 0, 0); };
  sized(m.pointing, result.hits);
  sized(m.energy, result.energies);
  sized(m.deletion, result.deletion);
  sized(m.insertion, result.insertion);
  sized(m.road, result.road_morfs);
  sized(m.road, result.road_lerfs);
  sized(m.confidence, result.drops);
  sized(m.confidence, result.increases);
  sized(m.sensitivity, result.sensitivities);
  sized(m.infidelity, result.infidelities);
  sized(m.sparseness, result.sparsenesses);
  sized(m.complexity, result.complexities);
  sized(m.random_logit, result.random_logits);
  // Every image's curves, [image][point] flat (averaged in image order at the end, so that the
  // processes of a shared evaluation give the same sums as one process).
  std::vector<double> deletion_curves, insertion_curves, morf_curves, lerf_curves;
  const size_t curve_points = static_cast<size_t>(o.curve.steps + 1);
  const size_t road_points = o.road.fractions.size();
  const auto put = [](std::vector<double>& all, size_t points, int64_t i, const at::Tensor& curve) {
    const auto c = curve.to(torch::kCPU, torch::kDouble).contiguous();
    for (size_t k = 0; k < points; ++k) {
      all[static_cast<size_t>(i) * points + k] = c[static_cast<int64_t>(k)].item<double>();
    }
  };
  if (m.deletion) deletion_curves.assign(static_cast<size_t>(n) * curve_points, 0.0);
  if (m.insertion) insertion_curves.assign(static_cast<size_t>(n) * curve_points, 0.0);
  if (m.road) {
    morf_curves.assign(static_cast<size_t>(n) * road_points, 0.0);
    lerf_curves.assign(static_cast<size_t>(n) * road_points, 0.0);
  }
  // Random logit: each image's map for another class, drawn uniformly (seeded per image).
  if (m.random_logit) {
    const int64_t classes = probe.size(1);
    if (classes < 2) {
      throw usage_error("evaluate: the random-logit test needs a model with 2 or more classes");
    }
    // Drawn for this process's images only (the top-1 targets of the others are not known
    // here); the reduction below fills in the rest.
    result.random_classes.assign(static_cast<size_t>(n), 0);
    for (int64_t i = 0; i < n; ++i) {
      if (!owned(i)) continue;
      auto gen = at::make_generator<at::CPUGeneratorImpl>(o.seed * 7919 + static_cast<uint64_t>(i));
      int64_t other = torch::randint(classes - 1, {1}, gen, torch::kLong).item<int64_t>();
      if (other >= targets[i]) ++other;  // a class other than the target
      result.random_classes[i] = other;
    }
    const auto others = all_maps(false, n, maps, &result.random_classes);
    for (int64_t i = 0; i < n; ++i) {
      if (owned(i)) result.random_logits[i] = ssim(trained[i], others[i]);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    if (!owned(i)) continue;
    const auto map = trained[i];
    const auto mask = set.masks[i];
    const auto x = inputs.slice(0, i, i + 1).to(device);
    const auto region = dense ? regions[i].to(device) : at::Tensor();
    const uint64_t image = static_cast<uint64_t>(i);
    if (m.pointing) result.hits[i] = pointing_game(map, mask, margin) ? 1 : 0;
    if (m.energy) result.energies[i] = energy_pointing_game(map, mask);
    if (m.deletion) {
      const auto c = deletion_curve(model, x, targets[i], map, o.curve, region);
      result.deletion[i] = c.auc;
      put(deletion_curves, curve_points, i, c.probability);
    }
    if (m.insertion) {
      const auto c = insertion_curve(model, x, targets[i], map, o.curve, region);
      result.insertion[i] = c.auc;
      put(insertion_curves, curve_points, i, c.probability);
    }
    if (m.road) {
      RoadOptions ro = o.road;
      ro.seed = o.road.seed + 1000 * image;
      const auto r = road(model, x, targets[i], map, ro, region);
      result.road_morfs[i] = r.morf_auc;
      result.road_lerfs[i] = r.lerf_auc;
      put(morf_curves, road_points, i, r.morf);
      put(lerf_curves, road_points, i, r.lerf);
    }
    if (m.confidence) {
      const auto c = confidence_change(model, x, targets[i], map, region);
      result.drops[i] = c.drop;
      result.increases[i] = c.increase ? 1 : 0;
    }
    if (m.infidelity) {
      InfidelityOptions io = o.infidelity;
      io.seed = o.infidelity.seed + image;
      result.infidelities[i] = infidelity(model, x, targets[i], map, io, region);
    }
    if (m.sparseness) result.sparsenesses[i] = sparseness(map);
    if (m.complexity) result.complexities[i] = complexity(map);
    if (m.sensitivity) {
      SensitivityOptions so = o.sensitivity;
      so.seed = o.sensitivity.seed + image;
      result.sensitivities[i] = max_sensitivity(model, maps, x, batch_target(i, i + 1), map, so);
    }
    if (progress) progress(++done, total);
  }
  const int64_t kept = std::min(std::max<int64_t>(o.keep_maps, 0), n);
  std::vector<double> kept_maps(static_cast<size_t>(kept * h * w), 0.0);
  for (int64_t i = 0; i < kept; ++i) {
    if (!owned(i)) continue;
    const auto flat = trained[i].to(torch::kDouble).contiguous();
    std::copy(flat.data_ptr<double>(), flat.data_ptr<double>() + h * w,
              kept_maps.begin() + i * h * w);
  }
  // Every vector of per-image values (or sums), in one order for the reduction.
  std::vector<std::vector<double>*> values = {
      &result.energies, &result.deletion, &result.insertion, &result.reference_correlation,
      &result.road_morfs, &result.road_lerfs, &result.drops, &result.increases,
      &result.sensitivities, &result.infidelities, &result.sparsenesses, &result.complexities,
      &result.random_logits, &deletion_curves, &insertion_curves, &morf_curves, &lerf_curves,
      &kept_maps};
  if (o.part_count > 1) {  // every process's values, in image order
    std::vector<double> all;
    for (int v : result.hits) all.push_back(v);
    for (int64_t c : result.random_classes) all.push_back(static_cast<double>(c));
    for (const auto* v : values) all.insert(all.end(), v->begin(), v->end());
    all.push_back(seconds);
    o.reduce(all);
    size_t at = 0;
    for (auto& v : result.hits) v = static_cast<int>(std::lround(all[at++]));
    for (auto& c : result.random_classes) c = std::llround(all[at++]);
    for (auto* v : values) {
      for (auto& x : *v) x = all[at++];
    }
    seconds = all[at];
  }
  result.ms_per_image = 1000.0 * seconds / static_cast<double>(n);
  if (o.reference) {
    double sum = 0;
    for (double r : result.reference_correlation) sum += r;
    result.reference_rank = sum / static_cast<double>(n);
  }
  auto mean = [](const auto& v) {
    return v.empty() ? 0.0 : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  result.pointing = mean(result.hits);
  result.energy = mean(result.energies);
  result.deletion_auc = mean(result.deletion);
  result.insertion_auc = mean(result.insertion);
  result.road_morf = mean(result.road_morfs);
  result.road_lerf = mean(result.road_lerfs);
  result.average_drop = mean(result.drops);
  result.increase_in_confidence = mean(result.increases);
  result.sensitivity = mean(result.sensitivities);
  result.infidelity_score = mean(result.infidelities);
  result.sparseness_score = mean(result.sparsenesses);
  result.complexity_score = mean(result.complexities);
  result.random_logit = mean(result.random_logits);
  const auto average = [n](const std::vector<double>& all, size_t points) {
    std::vector<double> out(all.empty() ? 0 : points, 0.0);
    for (int64_t i = 0; i < n; ++i) {
      for (size_t k = 0; k < out.size(); ++k) out[k] += all[static_cast<size_t>(i) * points + k];
    }
    for (auto& v : out) v /= static_cast<double>(n);
    return out;
  };
  result.maps = torch::tensor(kept_maps, torch::kDouble).reshape({kept, h, w}).to(torch::kFloat);
  result.deletion_curve = average(deletion_curves, curve_points);
  result.insertion_curve = average(insertion_curves, curve_points);
  result.road_morf_curve = average(morf_curves, road_points);
  result.road_lerf_curve = average(lerf_curves, road_points);

  if (cascade > 0) {
    RandomizedLayers randomized(model);
    for (int64_t k = 0; k < cascade; ++k) {
      const auto& group = groups[groups.size() - 1 - k];
      randomized.randomize(group, o.seed + static_cast<uint64_t>(k));
      const auto random = all_maps(false, n_sanity, maps);
      std::vector<double> correlations(static_cast<size_t>(n_sanity), 0.0);
      for (int64_t i = 0; i < n_sanity; ++i) {
        if (owned(i)) correlations[static_cast<size_t>(i)] = spearman(trained[i], random[i]);
      }
      if (o.part_count > 1) o.reduce(correlations);
      double sum = 0;
      for (double c : correlations) sum += c;  // in image order, as one process sums
      result.cascade_layers.push_back(group.name);
      result.cascade_correlation.push_back(sum / static_cast<double>(n_sanity));
    }
  }
  return result;
}

}  // namespace eval
}  // namespace cnnvis
