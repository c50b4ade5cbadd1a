// cnnvis evaluate: faithfulness metrics of every method against object masks (evaluate.hpp).
#include <torch/torch.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <functional>
#include <map>
#include <sstream>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/evaluate.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/io/file.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/mpi.hpp"
#include "common.hpp"
#include "gallery.hpp"

namespace cnnvis::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct EvaluateCliOptions {
  ModelOptions model;
  InputOptions input;
  std::string images;
  int64_t count = 100;
  std::string methods;
  int64_t steps = 50;
  double margin = -1;
  int64_t batch = 16;
  int64_t cascade = 0;
  int64_t sanity_images = 16;
  bool no_sanity = false;
  bool no_baselines = false;
  uint64_t seed = 0;
  std::string json_path;
  std::string gallery = "demo";
  std::vector<std::string> options;  // METHOD.KEY=VALUE
  std::string metrics = "default";
  std::string road_fractions = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9";
  double road_noise = 0.01;
  int64_t perturbations = 10;
  double sensitivity_radius = 0.02;
  double infidelity_sigma = 0.1;
  std::string deletion_substrate = "mean";
  int64_t pictures = 8;
};

// One column of the table: its title, whether it is shown, and its value for a row.
struct Column {
  std::string key, title;
  bool shown;
  std::function<std::string(const eval::Evaluation&)> cell;
};

const char* kLegend =
    "pointing game: share of images whose map maximum is on the object (within the margin); "
    "energy: share of the positive map mass on the object; deletion/insertion AUC: area under "
    "the target-class probability as pixels are removed / inserted in the map's order (RISE; a "
    "segmentation model: the class's mean probability over the object, whose logits it "
    "explains); ROAD MoRF / LeRF: mean target probability after removing the most / least "
    "important 10%..90% of the pixels, imputed from their neighbours with noise (Rong et al. "
    "2022), and the gap LeRF - MoRF; avg drop: mean relative drop of the target probability "
    "on the input times the map scaled to [0, 1], increase: share of images whose probability "
    "rose (Chattopadhay et al. 2018); max-sensitivity: largest relative change of the map "
    "under small uniform input noise, infidelity: normalized squared error of the map's "
    "prediction of the output change under Gaussian input noise (Yeh et al. 2019, as Captum); "
    "sparseness: Gini index of the map, complexity: entropy of its shares (as Quantus); "
    "random logit: SSIM between the map and the map of a random other class (Sixt et al. "
    "2020, as Quantus); "
    "rank correlation: Spearman correlation with the map of a model whose top layer / all "
    "layers were re-initialized (a faithful method drops towards 0); ms per image: the map "
    "alone. Baselines: a random map and a centred Gaussian.";

std::string cell(double value, int digits = 3) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.*f", digits, value);
  return buffer;
}

// Where a method's map of an image goes in the gallery folder.
std::string picture_name(const std::string& method, const std::string& image) {
  std::string stem = fs::path(image).stem().string();
  for (char& c : stem) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') c = '_';
  }
  return "evaluation/" + method + "/" + stem + ".png";
}

std::string correlation(const eval::Evaluation& e, bool last) {
  if (e.cascade_correlation.empty()) return "-";
  return cell(last ? e.cascade_correlation.back() : e.cascade_correlation.front(), 2);
}

void evaluate_job(const EvaluateCliOptions& o);

// Under mpirun the ranks share the images (batch by batch) and rank 0 reports.
void run_evaluate(const EvaluateCliOptions& o) {
  mpi::Session session;
  evaluate_job(o);
}

void evaluate_job(const EvaluateCliOptions& o) {
  const bool lead = mpi::rank() == 0;
  const auto method_names = parse_method_list(o.methods, "--methods");
  if (o.count < 1) throw usage_error("--count: expected >= 1 held-out scenes");
  if (o.steps < 1) throw usage_error("--steps: expected >= 1");
  if (o.batch < 1) throw usage_error("--batch: expected >= 1");
  if (o.images.empty() && o.model.arch != "demo") {
    throw usage_error("--images: --model " + o.model.arch +
                      " needs a folder of images with <stem>_mask.png object masks (the "
                      "held-out demo scenes suit only --model demo)");
  }
  if (!o.json_path.empty()) {
    const auto parent = fs::path(o.json_path).parent_path();
    if (!parent.empty() && !fs::is_directory(parent)) {
      throw usage_error("--json " + o.json_path + ": folder " + parent.string() +
                        " does not exist");
    }
  }
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  if (o.images.empty()) {
    // The held-out demo scenes are drawn at --size (make_scenes: 96..224 px).
    if (pre.resize > 0) {
      throw usage_error("--resize/--crop: the held-out demo scenes are drawn at --size; use "
                        "--size, or --images for a folder of your own");
    }
    if (pre.size < 96 || pre.size > 224) {
      throw usage_error("--size " + std::to_string(pre.size) + ": the held-out demo scenes are "
                        "drawn at 96 to 224 pixels; use --images for other sizes");
    }
    const double bytes = 16.0 * static_cast<double>(o.count * pre.size * pre.size);
    const int64_t available = available_memory();
    if (available >= 0 && bytes > static_cast<double>(available)) {
      throw usage_error("--count " + std::to_string(o.count) + ": the scenes and masks need "
                        "about " + format_bytes(bytes) + ", " +
                        format_bytes(static_cast<double>(available)) +
                        " are available; use a smaller --count");
    }
  }
  if (!o.gallery.empty()) check_out_dir(o.gallery, "--gallery");
  if (!o.json_path.empty() && fs::is_directory(o.json_path)) {
    throw usage_error("--json " + o.json_path + ": is a folder; name a file");
  }
  const auto params = method_options(o.options, method_names);
  std::vector<std::unique_ptr<Method>> instances;
  for (const auto& name : method_names) {
    const auto it = params.find(name);
    instances.push_back(make_method(name, it == params.end() ? MethodParams{} : it->second));
  }
  auto model = load_model(o.model);
  check_model_input(*model, input_side(pre), side_option(pre), o.batch);

  eval::EvaluateOptions options;
  bool named_sanity = true;
  options.metrics = eval::parse_metrics(o.metrics, &named_sanity);
  options.road.fractions = eval::parse_road_fractions(o.road_fractions);
  options.road.noise = o.road_noise;
  options.road.seed = o.seed;
  options.sensitivity.radius = o.sensitivity_radius;
  options.sensitivity.samples = o.perturbations;
  options.sensitivity.seed = o.seed;
  options.infidelity.sigma = o.infidelity_sigma;
  options.infidelity.samples = o.perturbations;
  options.infidelity.seed = o.seed;
  options.preprocess = pre;
  options.margin = o.margin;
  options.curve.steps = o.steps;
  options.curve.deletion_blur = o.deletion_substrate == "blur";
  options.keep_maps = o.gallery.empty() ? 0 : o.pictures;
  options.batch = o.batch;
  options.sanity = !o.no_sanity && named_sanity;
  options.cascade = o.cascade;
  options.sanity_images = o.sanity_images;
  options.seed = o.seed;
  options.part_index = mpi::rank();
  options.part_count = mpi::size();
  if (mpi::distributed()) options.reduce = [](std::vector<double>& v) { mpi::sum(v); };
  eval::check_evaluate_options(*model, options);
  eval::EvaluationSet set;
  std::string set_name;
  if (o.images.empty()) {
    set = eval::demo_evaluation_set(o.count, pre.size);
    set_name = std::to_string(o.count) + " held-out demo scenes (" + std::to_string(pre.size) +
               " px, true class)";
  } else {
    set = eval::load_evaluation_set(o.images, pre, model->class_names());
    set_name = std::to_string(set.images.size(0)) + " images with masks from " + o.images;
  }
  const double margin = o.margin >= 0 ? o.margin
                                      : eval::default_margin(set.images.size(2), set.images.size(3));

  struct Row {
    eval::Evaluation result;
    std::string title;
    bool baseline;
  };
  std::vector<Row> rows;
  const bool tty = isatty(fileno(stderr));
  const Precision lower = precision();
  auto run = [&](const std::string& name, const std::string& title, const eval::MapFn& maps,
                 bool baseline) {
    // --precision: the method's maps in that precision, compared with its float32 maps; the
    // metrics' forward passes stay float32 (they judge the maps, not the precision).
    eval::EvaluateOptions opts = options;
    eval::MapFn run_maps = maps;
    if (lower != Precision::kFloat32 && !baseline) {
      opts.reference = maps;
      run_maps = [maps, lower](Model& m, const at::Tensor& x, const Target& t) {
        const auto guard = precision_guard(m, lower);
        return maps(m, x, t);
      };
    }
    auto progress = [&](int64_t done, int64_t total) {
      if (lead && (tty || done == total)) {
        std::fprintf(stderr, "%sevaluate: %s %lld/%lld%s%s", tty ? "\r" : "", name.c_str(),
                     static_cast<long long>(done), static_cast<long long>(total),
                     tty ? "\033[K" : "", tty && done != total ? "" : "\n");
      }
    };
    rows.push_back({eval::evaluate(*model, name, run_maps, set, opts, progress), title, baseline});
  };
  if (lead) {
    std::cerr << "evaluate: " << method_names.size() << " method(s) on " << set_name;
    if (mpi::distributed()) {
      std::cerr << ", shared among " << mpi::size() << " MPI ranks (" << at::get_num_threads()
                << " thread(s) each; progress: rank 0's part)";
    }
    std::cerr << "\n";
  }
  for (size_t m = 0; m < method_names.size(); ++m) {
    const MethodInfo& info = find_method(method_names[m]);
    run(info.name, title_of(info.summary), eval::method_maps(info, *instances[m]), false);
  }
  if (!o.no_baselines) {
    run("random", "random map (baseline)", eval::random_maps(o.seed), true);
    run("center", "centred Gaussian (baseline)", eval::center_maps(), true);
  }

  // Markdown table on stdout.
  if (!lead) return;  // rank 0 reports
  const auto& ms = options.metrics;
  const bool lower_precision = lower != Precision::kFloat32;
  const std::vector<Column> columns = {
      {"pointing", "pointing game ↑", ms.pointing, [](const auto& e) { return cell(e.pointing); }},
      {"energy", "energy pointing game ↑", ms.energy, [](const auto& e) { return cell(e.energy); }},
      {"deletion_auc", "deletion AUC ↓", ms.deletion,
       [](const auto& e) { return cell(e.deletion_auc); }},
      {"insertion_auc", "insertion AUC ↑", ms.insertion,
       [](const auto& e) { return cell(e.insertion_auc); }},
      {"road_morf", "ROAD MoRF ↓", ms.road, [](const auto& e) { return cell(e.road_morf); }},
      {"road_lerf", "ROAD LeRF ↑", ms.road, [](const auto& e) { return cell(e.road_lerf); }},
      {"road_gap", "ROAD LeRF - MoRF ↑", ms.road, [](const auto& e) { return cell(e.road_gap()); }},
      {"average_drop", "avg drop ↓", ms.confidence,
       [](const auto& e) { return cell(e.average_drop); }},
      {"increase_in_confidence", "increase ↑", ms.confidence,
       [](const auto& e) { return cell(e.increase_in_confidence); }},
      {"max_sensitivity", "max-sensitivity ↓", ms.sensitivity,
       [](const auto& e) { return cell(e.sensitivity); }},
      {"infidelity", "infidelity ↓", ms.infidelity,
       [](const auto& e) { return cell(e.infidelity_score, 5); }},
      {"sparseness", "sparseness ↑", ms.sparseness,
       [](const auto& e) { return cell(e.sparseness_score); }},
      {"complexity", "complexity ↓", ms.complexity,
       [](const auto& e) { return cell(e.complexity_score); }},
      {"random_logit", "random logit SSIM ↓", ms.random_logit,
       [](const auto& e) { return cell(e.random_logit); }},
      {"rank_top", "rank corr. top layer ↓", options.sanity,
       [](const auto& e) { return correlation(e, false); }},
      {"rank_all", "rank corr. all layers ↓", options.sanity,
       [](const auto& e) { return correlation(e, true); }},
      {"ms_per_image", "ms per image", true, [](const auto& e) { return cell(e.ms_per_image, 1); }},
      {"rank_float32", "rank corr. to float32 ↑", lower_precision,
       [](const auto& e) {
         return e.reference_correlation.empty() ? std::string() : cell(e.reference_rank);
       }},
  };
  std::cout << "Evaluation of " << model->name() << " on " << set_name << "; pointing-game margin "
            << cell(margin, 1) << " px, " << o.steps << " deletion/insertion steps"
            << (o.deletion_substrate == "blur" ? " (deletion into a blurred copy)" : "")
            << "\n\n|"
            << " method |";
  std::string rule = "| --- |";
  for (const auto& c : columns) {
    if (!c.shown) continue;
    std::cout << " " << c.title << " |";
    rule += " ---: |";
  }
  std::cout << "\n" << rule << "\n";
  for (const auto& row : rows) {
    std::cout << "| " << row.title << " |";
    for (const auto& c : columns) {
      if (c.shown) std::cout << " " << c.cell(row.result) << " |";
    }
    std::cout << "\n";
  }
  std::cout << "\n" << kLegend << "\n";
  if (lower != Precision::kFloat32) {
    std::cout << "\n--precision " << to_string(lower) << ": each method's maps ran in that "
              << "precision (the metrics' forward passes in float32); rank corr. to float32: "
                 "mean Spearman correlation of each image's map with the same method's float32 "
                 "map (1: the same ranking of pixels).\n";
  }

  json results = json::array();
  for (const auto& row : rows) {
    const auto& e = row.result;
    json cascade = json::array();
    for (size_t k = 0; k < e.cascade_layers.size(); ++k) {
      cascade.push_back({{"layer", e.cascade_layers[k]}, {"correlation", e.cascade_correlation[k]}});
    }
    json per_image = json::array();
    const auto put = [](json& j, const char* key, const std::vector<double>& v, int64_t i) {
      if (!v.empty()) j[key] = v[static_cast<size_t>(i)];
    };
    for (int64_t i = 0; i < e.images; ++i) {
      json one = {{"name", set.names[i]}};
      if (!e.hits.empty()) one["hit"] = e.hits[i] != 0;
      put(one, "energy", e.energies, i);
      put(one, "deletion_auc", e.deletion, i);
      put(one, "insertion_auc", e.insertion, i);
      put(one, "road_morf", e.road_morfs, i);
      put(one, "road_lerf", e.road_lerfs, i);
      put(one, "drop", e.drops, i);
      if (!e.increases.empty()) one["increase"] = e.increases[i] != 0;
      put(one, "max_sensitivity", e.sensitivities, i);
      put(one, "infidelity", e.infidelities, i);
      put(one, "sparseness", e.sparsenesses, i);
      put(one, "complexity", e.complexities, i);
      if (!e.random_logits.empty()) {
        one["random_logit"] = e.random_logits[i];
        one["random_class"] = e.random_classes[i];
      }
      per_image.push_back(std::move(one));
    }
    for (int64_t i = 0; i < e.maps.size(0); ++i) {
      per_image[static_cast<size_t>(i)]["picture"] = picture_name(e.method, set.names[i]);
    }
    json cells = json::array();
    for (const auto& c : columns) {
      if (c.shown) cells.push_back(c.cell(e));
    }
    results.push_back({{"method", e.method},
                       {"title", row.title},
                       {"baseline", row.baseline},
                       {"images", e.images},
                       {"pointing", e.pointing},
                       {"energy", e.energy},
                       {"deletion_auc", e.deletion_auc},
                       {"insertion_auc", e.insertion_auc},
                       {"rank_correlation_to_float32",
                        e.reference_correlation.empty() ? json(nullptr) : json(e.reference_rank)},
                       {"ms_per_image", e.ms_per_image},
                       {"road_morf", e.road_morf},
                       {"road_lerf", e.road_lerf},
                       {"road_gap", e.road_gap()},
                       {"average_drop", e.average_drop},
                       {"increase_in_confidence", e.increase_in_confidence},
                       {"max_sensitivity", e.sensitivity},
                       {"infidelity", e.infidelity_score},
                       {"sparseness", e.sparseness_score},
                       {"complexity", e.complexity_score},
                       {"random_logit", e.random_logit},
                       {"curves",
                        {{"deletion", e.deletion_curve},
                         {"insertion", e.insertion_curve},
                         {"road_morf", e.road_morf_curve},
                         {"road_lerf", e.road_lerf_curve}}},
                       {"cells", cells},
                       {"cascade", cascade},
                       {"per_image", per_image}});
  }
  json titles = json::array();
  json metric_names = json::array();
  for (const auto& c : columns) {
    if (!c.shown) continue;
    titles.push_back(c.title);
    metric_names.push_back(c.key);
  }
  const json report = {{"model", model->name()},
                       {"columns", titles},
                       {"column_keys", metric_names},
                       {"road_fractions", options.road.fractions},
                       {"precision", to_string(lower)},
                       {"set", set_name},
                       {"images", set.images.size(0)},
                       {"margin", margin},
                       {"steps", o.steps},
                       {"deletion_substrate", o.deletion_substrate},
                       {"threads", at::get_num_threads()},
                       {"processes", mpi::size()},
                       {"command", command_line()},
                       {"legend", kLegend},
                       {"results", results}};
  if (!o.json_path.empty()) {
    write_file_atomic(o.json_path, report.dump(1) + "\n");
    std::cerr << "evaluate: wrote " << o.json_path << "\n";
  }
  if (!o.gallery.empty()) {
    prepare_out_dir(o.gallery);
    // The pictures behind each row: the first images' maps over the images.
    for (size_t r = 0; r < rows.size(); ++r) {
      const auto& e = rows[r].result;
      for (int64_t i = 0; i < e.maps.size(0); ++i) {
        const std::string file = picture_name(e.method, set.names[i]);
        fs::create_directories((fs::path(o.gallery) / file).parent_path());
        const auto heat = apply_colormap(minmax(e.maps[i]), Colormap::kJet);
        save_png((fs::path(o.gallery) / file).string(), overlay(set.images[i], heat, 0.5));
      }
    }
    write_file_atomic((fs::path(o.gallery) / "evaluation.json").string(), report.dump(1) + "\n");
    write_gallery_pages(o.gallery);
    std::cerr << "evaluate: wrote " << (fs::path(o.gallery) / "evaluation.html").string() << "\n";
  }
}

}  // namespace

void setup_evaluate(CLI::App& app) {
  auto o = std::make_shared<EvaluateCliOptions>();
  auto* sub = app.add_subcommand(
      "evaluate",
      "score how faithful each method is against object masks: pointing game, energy pointing\n"
      "game, deletion/insertion AUC (RISE), cascading model randomization (sanity check)\n"
      "  e.g. cnnvis evaluate                  (demo model, 100 held-out scenes, all methods)\n"
      "       cnnvis evaluate --methods vanilla --count 20 --json scores.json\n"
      "       cnnvis evaluate --model vgg16 --weights vgg16-397923af.pth --images masked/\n"
      "  prints a markdown table and adds evaluation.html to the gallery folder");
  add_model_options(*sub, o->model, "demo");
  sub->add_option("--images,-i", o->images,
                  "folder of images, each with a <stem>_mask.png object mask; the class is the "
                  "stem's last _part if it names one, else the top-1; default: held-out demo "
                  "scenes (demo model only)");
  sub->add_option("--count", o->count, "held-out demo scenes when no --images")
      ->capture_default_str()
      ->check(integer_range(1, 100000));
  sub->add_option("--methods", o->methods,
                  "comma-separated methods (see `cnnvis list`); default: all");
  sub->add_option("--steps", o->steps, "deletion/insertion steps (curve points - 1)")
      ->capture_default_str()
      ->check(integer_range(1, 10000));
  sub->add_option("--margin", o->margin,
                  "pointing-game tolerance in pixels; default 15 px at 224 px, scaled")
      ->check(number_range(0, static_cast<double>(kMaxSide)));
  sub->add_option("--batch", o->batch, "images per method call")
      ->capture_default_str()
      ->check(integer_range(1, 4096));
  sub->add_option("--cascade", o->cascade,
                  "randomize only this many layers from the top (0: all, down to the first)")
      ->capture_default_str()
      ->check(integer_range(0));
  sub->add_option("--sanity-images", o->sanity_images,
                  "run the randomization on the first N images (0: all)")
      ->capture_default_str()
      ->check(integer_range(0));
  sub->add_flag("--no-sanity", o->no_sanity, "skip the cascading randomization");
  sub->add_option("--metrics", o->metrics,
                  "default (all but sensitivity), all, or a comma-separated list of pointing, "
                  "energy, deletion, insertion, road, confidence, sensitivity, infidelity, "
                  "sparseness, complexity, random-logit, sanity")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            try {
              eval::parse_metrics(v, nullptr);
            } catch (const Error& e) {
              return std::string(e.what()).substr(std::string("--metrics: ").size());
            }
            return std::string();
          },
          "METRICS", "metrics"));
  sub->add_option("--pictures", o->pictures,
                  "images per method whose maps the gallery's evaluation pages show")
      ->capture_default_str()
      ->check(integer_range(0, 1000));
  sub->add_option("--deletion-substrate", o->deletion_substrate,
                  "what deletion puts in place of removed pixels: mean (the mean colour, as "
                  "RISE and Captum) or blur (a blurred copy, as insertion starts from)")
      ->capture_default_str()
      ->check(CLI::Validator(
          [](std::string& v) {
            return v == "mean" || v == "blur" ? std::string()
                                              : "expected mean or blur, got '" + v + "'";
          },
          "mean|blur", "substrate"));
  sub->add_option("--road-fractions", o->road_fractions,
                  "ROAD's removal fractions, each in (0, 1)")
      ->capture_default_str();
  sub->add_option("--road-noise", o->road_noise,
                  "standard deviation of ROAD's imputation noise (normalized space)")
      ->capture_default_str()
      ->check(number_range(0, 10));
  sub->add_option("--perturbations", o->perturbations,
                  "noisy inputs per image for max-sensitivity and infidelity")
      ->capture_default_str()
      ->check(integer_range(1, 1000));
  sub->add_option("--sensitivity-radius", o->sensitivity_radius,
                  "max-sensitivity's uniform noise radius (normalized space; Captum's 0.02)")
      ->capture_default_str()
      ->check(number_range(0, 10));
  sub->add_option("--infidelity-sigma", o->infidelity_sigma,
                  "standard deviation of infidelity's Gaussian perturbations (normalized space)")
      ->capture_default_str()
      ->check(number_range(0, 10));
  sub->add_flag("--no-baselines", o->no_baselines, "leave out the random and centre baselines");
  sub->add_option("--seed", o->seed, "seed of the random baseline and the re-initialization")
      ->capture_default_str()
      ->check(integer_range(0));
  sub->add_option("--option", o->options,
                  "a method's option METHOD.KEY=VALUE, e.g. grad-cam.layer=features.14");
  sub->add_option("--json", o->json_path, "also write every number (per image too) as JSON");
  sub->add_option("--gallery", o->gallery,
                  "gallery folder for evaluation.html and evaluation.json ('' for none)")
      ->capture_default_str();
  add_input_options(*sub, o->input);
  sub->callback([o] { run_evaluate(*o); });
}

}  // namespace cnnvis::cli
