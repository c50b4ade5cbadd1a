// cnnvis batch: a whole data set, resumable, sharded (cnnvis/batch.hpp).
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>
#include <nlohmann/json.hpp>

#include "cnnvis/batch.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/imagenet.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/mpi.hpp"
#include "common.hpp"

namespace cnnvis::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct BatchCliOptions {
  ModelOptions model;
  InputOptions input;
  std::string methods;
  std::string images;
  std::string manifest;
  std::string out;
  std::vector<std::string> options;  // METHOD.KEY=VALUE
  std::string target;
  std::string shard = "0/1";
  std::string merge;
  int64_t batch = 1;
  bool raw = false;
  bool no_png = false;
};

std::string absolute(const std::string& path) {
  return path.empty() ? path : fs::absolute(path).lexically_normal().string();
}

std::string duration(double seconds) {
  char buffer[32];
  if (seconds < 60) {
    std::snprintf(buffer, sizeof buffer, "%.0f s", seconds);
  } else if (seconds < 3600) {
    std::snprintf(buffer, sizeof buffer, "%.0f min", seconds / 60);
  } else {
    std::snprintf(buffer, sizeof buffer, "%.1f h", seconds / 3600);
  }
  return buffer;
}

std::optional<Error> batch_job(const BatchCliOptions& o);

void run_batch(const BatchCliOptions& o) {
  if (!o.merge.empty()) {
    if (!o.methods.empty() || !o.images.empty() || !o.manifest.empty() || !o.out.empty() ||
        !o.model.arch.empty()) {
      throw usage_error("--merge DIR merges a run's results files and takes no other option; "
                        "run it alone: cnnvis batch --merge " + o.merge);
    }
    if (!fs::is_directory(o.merge)) throw usage_error("--merge " + o.merge + ": no such folder");
    const int64_t rows = batch::merge(o.merge);
    std::cout << "batch: merged " << rows << " rows into "
              << (fs::path(o.merge) / "results.jsonl").string() << "\n";
    return;
  }
  // Under mpirun: the ranks share the work (rank 0 hands it out and reports); the failures'
  // error is thrown once MPI is finalized, so that the job ends normally with exit code 1.
  std::optional<Error> failed;
  {
    mpi::Session session;
    failed = batch_job(o);
  }
  if (failed) throw *failed;
}

std::optional<Error> batch_job(const BatchCliOptions& o) {
  const bool lead = mpi::rank() == 0;
  if (o.methods.empty()) throw usage_error("--methods: give the methods to run, e.g. grad-cam,vanilla");
  if (o.model.arch.empty()) throw usage_error("--model: give the model (see cnnvis batch --help)");
  if (o.out.empty()) throw usage_error("--out: give the output folder");
  if (o.images.empty() == o.manifest.empty()) {
    throw usage_error("give the inputs as --images FOLDER or --manifest CSV (one of the two)");
  }
  const auto method_names = parse_method_list(o.methods, "--methods");
  const auto params = method_options(o.options, method_names);
  batch::BatchOptions options;
  for (const auto& name : method_names) {
    const auto it = params.find(name);
    options.methods.push_back({name, it == params.end() ? MethodParams{} : it->second});
  }
  const batch::Shard shard = batch::parse_shard(o.shard);
  check_out_dir(o.out);
  const Preprocess pre = to_preprocess(o.input, o.model.arch);
  // Methods with pixel-space baselines take the normalization (as explain passes it on).
  for (auto& m : options.methods) {
    for (const auto& opt : find_method(m.name).options) {
      if (opt.name == "mean" && !o.input.mean.empty() && !m.params.count("mean")) {
        m.params["mean"] = o.input.mean;
      }
      if (opt.name == "std" && !o.input.std.empty() && !m.params.count("std")) {
        m.params["std"] = o.input.std;
      }
    }
    find_method(m.name).make(m.params);  // a bad option fails now, before the model loads
  }
  if (!o.images.empty() && !fs::is_directory(o.images)) {
    throw usage_error("--images " + o.images + ": no such folder");
  }
  if (!o.images.empty()) {
    const auto in = fs::weakly_canonical(o.images).generic_string() + "/";
    const auto to = fs::weakly_canonical(o.out).generic_string() + "/";
    if (to.compare(0, in.size(), in) == 0) {
      throw usage_error("--out " + o.out + ": is inside --images " + o.images +
                        ", so its pictures would be inputs of a rerun; choose a folder outside");
    }
  }
  if (!o.manifest.empty() && !fs::exists(o.manifest)) {
    throw usage_error("--manifest " + o.manifest + ": no such file");
  }
  auto model = load_model(o.model);
  check_model_input(*model, input_side(pre), side_option(pre), o.batch);
  const auto names = model->class_names();
  const auto inputs = o.images.empty()
                          ? batch::read_manifest(o.manifest, names, model->num_classes())
                          : batch::list_folder(o.images, names, model->num_classes());
  if (!o.target.empty()) options.target = resolve_class(o.target, names, model->num_classes());
  options.out = o.out;
  options.png = !o.no_png;
  options.raw = o.raw;
  options.batch = o.batch;
  options.preprocess = pre;
  options.shard = shard;
  options.precision = precision();
  if (options.precision != Precision::kFloat32) precision_guard(*model);  // refusal, warning
  json methods = json::array();
  for (const auto& m : options.methods) methods.push_back({{"name", m.name}, {"options", m.params}});
  const json config = {
      {"inputs", o.images.empty() ? json{{"manifest", absolute(o.manifest)}}
                                  : json{{"images", absolute(o.images)}}},
      {"model", names_model_file(o.model.arch) ? absolute(o.model.arch) : o.model.arch},
      {"weights", absolute(o.model.weights)},
      {"random_weights", o.model.random_seed},
      {"output", o.model.output},
      {"labels", absolute(o.model.labels)},
      {"methods", methods},
      {"preprocess",
       {{"size", pre.size}, {"resize", pre.resize}, {"crop", pre.crop}, {"mean", pre.mean},
        {"std", pre.std}}},
      {"target", options.target},
      {"png", options.png},
      {"raw", options.raw},
      {"precision", to_string(options.precision)},
  };
  options.config = config.dump();
  const bool tty = isatty(fileno(stderr));
  double last_line = -1e9;
  bool ended = false;
  options.progress = [&](const batch::Progress& p) {
    const bool end = p.images_done == p.images_total;
    if (ended || (!tty && !end && p.seconds - last_line < 10)) return;  // a log: every 10 s
    ended = end;
    last_line = p.seconds;
    const double rate = p.seconds > 0 ? static_cast<double>(p.images_done) / p.seconds : 0;
    const double left = rate > 0 ? static_cast<double>(p.images_total - p.images_done) / rate : 0;
    std::fprintf(stderr, "%sbatch: %lld/%lld images, %lld failed, %.2f images/s, %s left%s%s",
                 tty ? "\r" : "", static_cast<long long>(p.images_done),
                 static_cast<long long>(p.images_total), static_cast<long long>(p.pairs_failed),
                 rate, duration(left).c_str(), tty ? "\033[K" : "", tty && !end ? "" : "\n");
  };
  auto shard_note = shard.count > 1 ? " (shard " + std::to_string(shard.index) + " of " +
                                          std::to_string(shard.count) + ")"
                                    : std::string();
  if (mpi::distributed()) {
    shard_note = " (" + std::to_string(mpi::size()) + " MPI ranks, " +
                 std::to_string(at::get_num_threads()) + " thread(s) each)";
  }
  if (lead) {
    std::cout << "batch: " << inputs.size() << " images" << shard_note << " x "
              << options.methods.size() << " method(s) with " << model->name() << " into "
              << o.out << std::endl;
  }
  const auto summary = batch::run(*model, inputs, options);
  if (!lead) return std::nullopt;
  const auto results = (fs::path(o.out) / batch::results_file_name(shard)).string();
  std::cout << "batch: " << summary.images << " images x " << options.methods.size()
            << " method(s)" << shard_note << ": " << summary.computed << " done now, "
            << summary.skipped << " already done, " << summary.failures.size()
            << " failed; results in " << results << "\n";
  if (summary.failures.empty()) return std::nullopt;
  const size_t shown = std::min<size_t>(summary.failures.size(), 20);
  for (size_t i = 0; i < shown; ++i) {
    const auto& f = summary.failures[i];
    std::cout << "  failed: " << f.image << " " << f.method << ": " << f.error << "\n";
  }
  if (shown < summary.failures.size()) {
    std::cout << "  ... and " << summary.failures.size() - shown << " more (status \"error\" in "
              << results << ")\n";
  }
  return Error("batch: " + std::to_string(summary.failures.size()) + " of " +
               std::to_string(summary.pairs) + " (image, method) pairs failed; they are error "
               "rows in " + results + ", and a rerun tries them again");
}

}  // namespace

void setup_batch(CLI::App& app) {
  auto o = std::make_shared<BatchCliOptions>();
  auto* sub = app.add_subcommand(
      "batch",
      "explain a whole data set with several methods: resumable, sharded\n"
      "  e.g. cnnvis batch --methods grad-cam,integrated-gradients --model vgg16 --weights W "
      "--images val/ --out runs/val/\n"
      "       cnnvis batch --methods grad-cam --model m.pt --manifest list.csv --out runs/x/ "
      "--raw --no-png\n"
      "       cnnvis batch ... --shard 3/16     (or --shard auto in a Slurm job array)\n"
      "       cnnvis batch --merge runs/val/    (the shards' results into one results.jsonl)\n"
      "  writes <out>/<image>_<method>_<view>.png, .npy with --raw, and results.jsonl (a row per\n"
      "  image and method); rerunning the command skips what is done");
  add_model_options(*sub, o->model);
  sub->get_option("--model")->required(false);
  sub->add_option("--methods", o->methods,
                  "comma-separated methods (see `cnnvis list`), e.g. grad-cam,vanilla");
  sub->add_option("--images,-i", o->images,
                  "folder of images, searched recursively; ImageFolder's class subfolders give "
                  "each image its class (folder names matched to the class names or --labels, "
                  "or, for as many folders as classes, their sorted order)");
  sub->add_option("--manifest", o->manifest,
                  "CSV of path[,target] lines (paths relative to the manifest; target an index "
                  "or class name), instead of --images");
  sub->add_option("--out,-o", o->out, "output folder (created; a rerun resumes it)");
  sub->add_option("--option", o->options,
                  "a method's option METHOD.KEY=VALUE, e.g. grad-cam.layer=features.28");
  sub->add_option("--target,-t", o->target,
                  "class of the images that have none from the folder or manifest (an index or "
                  "name); default: each image's top-1");
  sub->add_option("--batch", o->batch, "images per forward pass and method call")
      ->capture_default_str()
      ->check(integer_range(1, 4096));
  sub->add_flag("--raw", o->raw, "also write each raw result as <image>_<method>.npy");
  sub->add_flag("--no-png", o->no_png, "write no pictures");
  sub->add_option("--shard", o->shard,
                  "K/N: this process takes inputs K, K+N, K+2N, ... of the sorted list (0 <= K "
                  "< N) and writes results.shard-K-of-N.jsonl; auto: from Slurm's "
                  "SLURM_ARRAY_TASK_ID, _COUNT and _MIN")
      ->capture_default_str();
  sub->add_option("--merge", o->merge,
                  "merge the results files of a run folder into its results.jsonl, then stop");
  add_input_options(*sub, o->input);
  sub->callback([o] { run_batch(*o); });
}

}  // namespace cnnvis::cli
