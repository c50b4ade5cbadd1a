// cnnvis demo: every registered method on a set of images, as an HTML gallery (gallery.hpp).
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <functional>
#include <set>

#include "cnnvis/demo/train.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/imagenet.hpp"
#include "cnnvis/io/file.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/synthesis.hpp"
#include "common.hpp"
#include "gallery.hpp"

namespace cnnvis::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct DemoOptions {
  ModelOptions model;
  InputOptions input;
  std::string images;  // folder; default: the demo scenes (demo model) or the sample photos
  std::string methods;
  std::string target;
  std::string out = "demo";
  std::string synthesis = "auto";  // on, off, auto (on for the demo model)
};

bool is_image_file(const fs::path& path) {
  static const std::set<std::string> kExtensions = {".png", ".jpg", ".jpeg", ".bmp",
                                                    ".tif", ".tiff", ".webp"};
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  const auto stem = path.stem().string();
  const bool mask = stem.size() >= 5 && stem.compare(stem.size() - 5, 5, "_mask") == 0;
  return kExtensions.count(ext) > 0 && !mask;
}

std::vector<fs::path> list_images(const std::string& folder) {
  std::error_code ec;
  if (!fs::is_directory(folder, ec)) {
    throw usage_error("--images " + folder + ": not a folder; name a folder of PNG/JPEG images");
  }
  std::vector<fs::path> paths;
  for (const auto& entry : fs::directory_iterator(folder)) {
    if (entry.is_regular_file() && is_image_file(entry.path())) paths.push_back(entry.path());
  }
  if (paths.empty()) {
    throw usage_error("--images " + folder + ": no PNG, JPEG, BMP, TIFF or WebP image in it");
  }
  std::sort(paths.begin(), paths.end());
  return paths;
}

// A file-name and URL-safe stem, unique among `taken`.
std::string safe_stem(const fs::path& path, std::set<std::string>& taken) {
  std::string stem = path.stem().string();
  for (char& c : stem) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  }
  std::string unique = stem;
  for (int i = 2; taken.count(unique) > 0; ++i) unique = stem + "-" + std::to_string(i);
  taken.insert(unique);
  return unique;
}

// The synthesis rows of the gallery: filters (classic and lucid), class model images, and
// for the first images an inversion and a dream. Settings are sized for the demo model (96 px);
// other models use their default CAM layer and the presets' settings.
json run_synthesis(Model& model, const std::vector<torch::Tensor>& inputs,
                   const std::vector<std::string>& stems, const Preprocess& pre,
                   const std::string& out) {
  fs::create_directories(fs::path(out) / "synthesis");
  const bool demo = model.name() == "demo";
  const std::string layer = demo ? "features.10" : model.default_cam_layer();
  const std::string early = demo ? "features.6" : layer;
  const int64_t size = pre.resize > 0 ? pre.crop : pre.size;
  const auto names = model.class_names();
  json sections = json::array();
  auto pixels = [&](const torch::Tensor& x) {
    return denormalize(x.to(torch::kCPU, torch::kFloat), pre).clamp(0, 1);
  };
  auto fmt = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3g", v);
    return std::string(buf);
  };
  auto section = [&](const std::string& name, const std::string& title,
                     const std::string& description, const std::function<json()>& make) {
    std::cerr << "demo: synthesis: " << title << "...\n";
    const auto start = std::chrono::steady_clock::now();
    json items = make();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    sections.push_back({{"name", name}, {"title", title}, {"description", description},
                        {"seconds", seconds}, {"items", items}});
  };
  auto save = [&](const std::string& file, const torch::Tensor& x) {
    save_png((fs::path(out) / "synthesis" / file).string(), pixels(x));
    return "synthesis/" + file;
  };
  const int64_t channels = [&] {
    torch::NoGradGuard no_grad;
    return model.forward(inputs[0], {layer}).taps.at(layer).size(1);
  }();
  std::vector<int64_t> filters;
  for (int64_t f = 0; f < std::min<int64_t>(8, channels); ++f) filters.push_back(f);
  auto filter_items = [&](const SynthesisOptions& o, const std::string& tag) {
    const auto r = synthesize(model, filter_batch_target(layer, filters),
                              static_cast<int64_t>(filters.size()), o);
    json items = json::array();
    for (size_t i = 0; i < filters.size(); ++i) {
      const auto k = static_cast<int64_t>(i);
      items.push_back({{"file", save(layer + "_filter" + std::to_string(filters[i]) + tag +
                                     ".png", r.image[k])},
                       {"caption", "filter " + std::to_string(filters[i]) + ": " +
                                       fmt(r.initial_score[k].item<double>()) + " → " +
                                       fmt(r.final_score[k].item<double>())}});
    }
    return items;
  };
  auto common = [&](SynthesisOptions o) {
    o.size = size;
    o.mean = pre.mean;
    o.std = pre.std;
    return o;
  };
  {
    auto o = common(filter_preset());
    if (demo) o.steps = 100;
    section("filters", "Filter visualization",
            "mean activation of filters 0-" + std::to_string(filters.size() - 1) + " at " +
                layer + ", classic preset, " + std::to_string(o.steps) + " steps",
            [&] { return filter_items(o, ""); });
  }
  {
    auto o = common(lucid_preset());
    if (demo) {  // a 96 px network: fewer steps at a larger lr, smaller pad and jitter
      o.steps = 150;
      o.lr = 0.1;
      o.pad = 4;
      o.jitter = 4;
    }
    section("filters-lucid", "Filter visualization, lucid",
            "the same filters with the Fourier parameterization, decorrelated colour and "
            "transforms, " + std::to_string(o.steps) + " steps",
            [&] { return filter_items(o, "_lucid"); });
  }
  {
    const int64_t count = std::min<int64_t>(model.num_classes(), 8);
    std::vector<int64_t> classes;
    for (int64_t c = 0; c < count; ++c) classes.push_back(c);
    auto class_items = [&](const SynthesisOptions& o, const std::string& tag) {
      const auto r = synthesize(model, class_log_probability_target(classes), count, o);
      torch::NoGradGuard no_grad;
      const auto out = model.forward(r.image).output;
      json items = json::array();
      for (int64_t c = 0; c < count; ++c) {
        const double p = class_probability(out, c)[c].item<double>();
        items.push_back({{"file", save("class" + std::to_string(c) + tag + ".png", r.image[c])},
                         {"caption", class_name(c, names) + ": p " + fmt(p)}});
      }
      return items;
    };
    auto o = common(class_model_preset("l2"));
    if (demo) o.steps = 60;
    section("classes", "Class model images",
            "log-probability of each class minus mean(x^2), " + std::to_string(o.steps) +
                " steps",
            [&] { return class_items(o, ""); });
    // The lucid parameterization and transforms make far more legible class images.
    auto l = common(lucid_preset());
    l.steps = 200;
    if (demo) l.pad = l.jitter = 4;
    section("classes-lucid", "Class model images, lucid",
            "the same objective with the Fourier parameterization, decorrelated colour and "
            "transforms, no penalty, " + std::to_string(l.steps) + " steps",
            [&] { return class_items(l, "_lucid"); });
  }
  const size_t shown = std::min<size_t>(inputs.size(), 4);
  {
    auto io = inversion_preset("paper");
    io.synthesis = common(io.synthesis);
    section("inversions", "Inverted representations",
            "reconstructed from the representation at " + early + ", " +
                std::to_string(io.synthesis.steps) + " steps",
            [&] {
              json items = json::array();
              for (size_t i = 0; i < shown; ++i) {
                const auto r = invert(model, early, inputs[i], io);
                torch::NoGradGuard no_grad;
                const int64_t c = top_class(model.forward(r.image).output);
                items.push_back({{"file", save(stems[i] + "_inverted.png", r.image[0])},
                                 {"caption", stems[i] + ": distance " +
                                                 fmt(-r.final_score.item<double>() /
                                                     io.data_weight) +
                                                 ", seen as " + class_name(c, names)}});
              }
              return items;
            });
  }
  {
    auto d = deep_dream_preset("mordvintsev");
    d.synthesis = common(d.synthesis);
    if (demo) d.synthesis.jitter = 8;
    section("dreams", "Deep Dream",
            "mean squared activation of " + layer + ", " + std::to_string(d.octaves) +
                " octaves x " + std::to_string(d.synthesis.steps) + " steps",
            [&] {
              json items = json::array();
              for (size_t i = 0; i < shown; ++i) {
                const auto r = deep_dream(model, layer_l2_target(layer), inputs[i], d);
                items.push_back({{"file", save(stems[i] + "_dream.png", r.image[0])},
                                 {"caption", stems[i] + ": " +
                                                 fmt(r.initial_score.item<double>()) + " → " +
                                                 fmt(r.final_score.item<double>())}});
              }
              return items;
            });
  }
  return sections;
}

// The gallery's pictures are written into a hidden staging folder inside --out and moved into
// place only when every one of them is done; gallery.json and the pages follow. A failure part
// way (a method running out of memory, a full disk) leaves the previous gallery, or none, as it
// was: never pictures without their page. The staging folder (and a --out folder this run
// created) is removed on failure.
class Staging {
 public:
  explicit Staging(const fs::path& out) : out_(out) {
    std::error_code ec;
    for (fs::path p = out; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
      created_.push_back(p);  // leaf first
      if (p == p.parent_path()) break;
    }
    prepare_out_dir(out.string());
    dir_ = out / (".cnnvis-partial-" + std::to_string(getpid()));
    fs::remove_all(dir_, ec);
    fs::create_directories(dir_ / "images", ec);
    if (ec) throw Error("--out " + out.string() + ": cannot write into it (" + ec.message() + ")");
  }
  Staging(const Staging&) = delete;
  Staging& operator=(const Staging&) = delete;
  ~Staging() {
    if (committed_) return;
    std::error_code ec;
    fs::remove_all(dir_, ec);
    for (const auto& p : created_) fs::remove(p, ec);  // only while empty
  }
  const fs::path& dir() const { return dir_; }
  // Moves every staged file to its place in --out (renames in one file system).
  void commit() {
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(dir_)) {
      if (entry.is_regular_file()) files.push_back(entry.path());
    }
    for (const auto& file : files) {
      const fs::path target = out_ / fs::relative(file, dir_);
      fs::create_directories(target.parent_path());
      fs::rename(file, target);
    }
    fs::remove_all(dir_);
    committed_ = true;
  }

 private:
  fs::path out_, dir_;
  std::vector<fs::path> created_;
  bool committed_ = false;
};

void run_demo(const DemoOptions& o, const std::string& command_line) {
  const auto method_names = parse_method_list(o.methods, "--methods");
  if (o.synthesis != "on" && o.synthesis != "off" && o.synthesis != "auto") {
    throw usage_error("--synthesis " + o.synthesis + ": expected on, off or auto");
  }
  const std::string folder =
      !o.images.empty() ? o.images
                        : demo::data_path(o.model.arch == "demo" ? "scenes" : "images");
  const auto paths = list_images(folder);
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  check_out_dir(o.out);
  std::vector<std::unique_ptr<Method>> instances;
  for (const auto& name : method_names) instances.push_back(make_method(name));
  // Every image is read before the model loads and before anything is written: one bad file
  // fails the command at once, naming it, with no gallery touched.
  std::vector<torch::Tensor> pictures;
  for (const auto& path : paths) pictures.push_back(load_resized(path.string(), pre));
  auto model = load_model(o.model);
  check_model_input(*model, input_side(pre), side_option(pre));
  const torch::Device device(device_string(o.model));
  const auto names = model->class_names();
  const int64_t fixed_target =
      o.target.empty() ? -1 : resolve_class(o.target, names, model->num_classes());
  const bool tty = isatty(fileno(stderr));

  // Each image's forward pass and target first, so that an image whose target cannot be
  // explained (a segmentation model predicting no pixel of --target) fails the command before
  // anything is written. A classifier explains a class logit; a segmentation model (a dense
  // output) a class's logits summed over the pixels predicted as it, by default the class
  // predicted at most pixels (as `explain` does), and shows the class's mean probability there.
  struct Prepared {
    torch::Tensor x;
    int64_t target = 0;
    Target explained = Target::class_logit(0);
    torch::Tensor region;  // dense outputs: [h, w] 0/1
    double probability = 0;
  };
  std::vector<Prepared> prepared;
  for (size_t i = 0; i < paths.size(); ++i) {
    Prepared p;
    p.x = normalize(pictures[i], pre).unsqueeze(0).to(device);
    torch::Tensor output;
    {
      torch::InferenceMode guard;
      output = model->forward(p.x).output;
    }
    p.target = fixed_target >= 0 ? fixed_target : top_class(output);
    p.explained = Target::class_logit(p.target);
    if (output.dim() == 4) {
      p.region = predicted_region(output, p.target);
      if (p.region.sum().item<double>() == 0) {
        throw usage_error(paths[i].string() + ": no pixel is predicted as class " +
                          std::to_string(p.target) + " (" + class_name(p.target, names) +
                          "); leave out --target, or explain it over a region of your own with "
                          "`cnnvis explain --target-mask`");
      }
      p.explained = Target::region_logit(p.target, p.region);
    }
    p.probability = class_probability(output, p.target, p.region)[0].item<double>();
    prepared.push_back(std::move(p));
  }
  Staging staging(o.out);
  const fs::path stage = staging.dir();

  std::vector<double> total_ms(method_names.size(), 0.0);
  std::vector<torch::Tensor> inputs;
  std::vector<std::string> stems;
  json images = json::array();
  std::set<std::string> taken;
  std::cerr << "demo: " << method_names.size() << " method(s) on " << paths.size()
            << " image(s) from " << folder << " with " << model->name() << "\n";
  for (size_t i = 0; i < paths.size(); ++i) {
    const auto& path = paths[i];
    const auto& rgb = pictures[i];
    const auto& x = prepared[i].x;
    const int64_t target = prepared[i].target;
    const auto& region = prepared[i].region;
    const double probability = prepared[i].probability;
    const std::string stem = safe_stem(path, taken);
    inputs.push_back(x);
    stems.push_back(stem);
    const std::string input_file = "images/" + stem + ".png";
    save_png((stage / input_file).string(), rgb);
    json region_json;
    if (region.defined()) {
      // The region on the input: its pixels as they are, the rest dimmed.
      const auto up = torch::nn::functional::interpolate(
          region.to(torch::kCPU).unsqueeze(0).unsqueeze(0),
          torch::nn::functional::InterpolateFuncOptions()
              .size(std::vector<int64_t>{rgb.size(1), rgb.size(2)})
              .mode(torch::kNearest))[0];
      const std::string region_file = "images/" + stem + "_region.png";
      save_png((stage / region_file).string(), rgb * (0.25 + 0.75 * up));
      const double pixels = region.sum().item<double>();
      region_json = {{"file", region_file},
                     {"pixels", static_cast<int64_t>(pixels)},
                     {"share", pixels / static_cast<double>(region.numel())}};
    }
    std::string timing;
    for (size_t m = 0; m < method_names.size(); ++m) {
      const MethodInfo& info = find_method(method_names[m]);
      if (tty) {
        std::fprintf(stderr, "\rdemo: [%zu/%zu] %s: %s (%zu/%zu)...\033[K", i + 1, paths.size(),
                     stem.c_str(), info.name.c_str(), m + 1, method_names.size());
      }
      const auto start = std::chrono::steady_clock::now();
      Attribution result;
      {
        const auto guard = precision_guard(*model);
        result = instances[m]->explain(*model, x, prepared[i].explained);
      }
      result.raw = result.raw.detach().to(torch::kCPU);
      for (auto& [name, value] : result.extras) value = value.detach().to(torch::kCPU);
      const double ms = 1000.0 * std::chrono::duration<double>(
                                     std::chrono::steady_clock::now() - start).count();
      total_ms[m] += ms;
      timing += " " + info.name + " " + std::to_string(static_cast<int64_t>(ms + 0.5)) + " ms";
      for (const auto& view : method_views(info, {})) {
        save_png((stage / gallery_picture(stem, info.name, view.name)).string(),
                 render_view(view, result, 0, rgb));
      }
    }
    const std::string over =
        region.defined() ? " over " + std::to_string(region_json["pixels"].get<int64_t>()) +
                               " pixels predicted as it"
                         : "";
    std::fprintf(stderr, "%sdemo: [%zu/%zu] %s: %s (%.2f)%s;%s%s\n", tty ? "\r" : "", i + 1,
                 paths.size(), stem.c_str(), class_name(target, names).c_str(), probability,
                 over.c_str(), timing.c_str(), tty ? "\033[K" : "");
    json entry = {{"stem", stem},
                  {"file", input_file},
                  {"source", path.filename().string()},
                  {"target", target},
                  {"target_name", class_name(target, names)},
                  {"probability", probability}};
    if (region.defined()) entry["region"] = region_json;
    images.push_back(entry);
  }

  json methods_json = json::array();
  for (size_t m = 0; m < method_names.size(); ++m) {
    const MethodInfo& info = find_method(method_names[m]);
    json views = json::array();
    for (const auto& view : method_views(info, {})) {
      views.push_back({{"name", view.name},
                       {"title", title_of(view.description)},
                       {"description", view.description}});
    }
    methods_json.push_back({{"name", info.name},
                            {"title", title_of(info.summary)},
                            {"summary", info.summary},
                            {"paper", info.paper},
                            {"ms_per_image", total_ms[m] / static_cast<double>(paths.size())},
                            {"views", views}});
  }
  const bool synthesis =
      o.synthesis == "on" || (o.synthesis == "auto" && model->name() == "demo");
  const json synthesis_json = synthesis ? run_synthesis(*model, inputs, stems, pre, stage.string())
                                        : json::array();
  const json gallery = {{"model", model->name()},
                        {"weights", o.model.weights},
                        {"size", pre.resize > 0 ? pre.crop : pre.size},
                        {"device", device.str()},
                        {"threads", at::get_num_threads()},
                        {"command", command_line},
                        {"images", images},
                        {"methods", methods_json},
                        {"synthesis", synthesis_json}};
  staging.commit();
  write_file_atomic((fs::path(o.out) / "gallery.json").string(), gallery.dump(1) + "\n");
  write_gallery_pages(o.out);
  std::cout << "wrote " << (fs::path(o.out) / "index.html").string() << " (" << paths.size()
            << " images x " << method_names.size() << " methods; open it in a browser)\n";
}

}  // namespace

void setup_demo(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto* sub = app.add_subcommand(
      "demo",
      "run every method on a set of images and write an HTML gallery (rows: method and view,\n"
      "columns: images), one page per image, and each method's time\n"
      "  e.g. cnnvis demo                      (the built-in demo model on its shape scenes)\n"
      "       cnnvis demo --model vgg16 --weights vgg16-397923af.pth --images photos/\n"
      "       cnnvis demo --model densenet121.pt --images photos/   (a TorchScript file)\n"
      "  then open demo/index.html; `cnnvis evaluate` adds an evaluation page. A segmentation\n"
      "  model explains a class over the pixels predicted as it, shown beside each input");
  add_model_options(*sub, o->model, "demo");
  sub->add_option("--images,-i", o->images,
                  "folder of images (files ending in _mask are skipped); default: the demo "
                  "scenes for --model demo, else the sample photos in data/images");
  sub->add_option("--methods", o->methods,
                  "comma-separated methods (see `cnnvis list`); default: all");
  sub->add_option("--target,-t", o->target,
                  "class to explain in every image (index or name); default: each image's top-1 "
                  "(a segmentation model: the class predicted at most pixels)");
  sub->add_option("--out,-o", o->out, "gallery folder (created if missing)")
      ->capture_default_str();
  sub->add_option("--synthesis", o->synthesis,
                  "on, off or auto (on for the demo model): also show filter visualizations, "
                  "class model images, inversions and dreams (cnnvis synthesize)")
      ->capture_default_str();
  add_input_options(*sub, o->input);
  sub->callback([o] { run_demo(*o, command_line()); });
}

}  // namespace cnnvis::cli
