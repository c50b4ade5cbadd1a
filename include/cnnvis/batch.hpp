#pragma once
// A whole data set (cnnvis batch): every image of a folder or a manifest explained by several
// methods, resumable (a rerun skips what results.jsonl says is done), fault tolerant (a bad
// image is an error row, the run goes on) and sharded over machines (--shard K/N, Slurm job
// arrays). Outputs under one folder: the views as PNG, the raw results as .npy, and
// results.jsonl, one JSON line per (image, method).
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cnnvis/image.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/precision.hpp"

namespace cnnvis {

class Model;

namespace batch {

// One input image.
struct Input {
  std::string path;  // as opened
  // Relative to the folder or the manifest, with '/' separators: the image's key in
  // results.jsonl and the stem of its outputs (<out>/<name without extension>_<method>...).
  std::string name;
  int64_t target = -1;        // the manifest's or the folder's class; -1: none
  std::string target_source;  // "manifest", "folder" or ""
};

// The images under `folder`, recursively (PNG, JPEG, BMP, TIFF, WebP by extension, case
// insensitive; hidden files and folders skipped), sorted by name. torchvision's ImageFolder
// layout (every image in a subfolder of `folder`, one per class) gives each image its class:
// the subfolder's name matched to `class_names` (an index or a name, as --target takes), or,
// when no name matches and there are exactly `num_classes` subfolders, their sorted order
// (ImageFolder's own indices: ImageNet's n01440764 ... folders). Images directly in `folder`
// have no class. A usage error for a folder that is missing or holds no image, and for
// subfolders that name no class (naming the first).
std::vector<Input> list_folder(const std::string& folder,
                               const std::vector<std::string>& class_names, int64_t num_classes);

// A manifest: CSV lines `path[,target]` (a header line `path,target` or `path` is allowed;
// paths relative to the manifest's folder; target an index or a class name; blank lines and
// lines starting with '#' skipped; a path may be double-quoted, "" for a quote). Usage errors
// name the manifest and the line.
std::vector<Input> read_manifest(const std::string& csv,
                                 const std::vector<std::string>& class_names,
                                 int64_t num_classes);

// Which part of the inputs one process takes: the inputs sorted by name, input i to shard
// i % count (round robin, so every shard gets every class).
struct Shard {
  int64_t index = 0;  // 0 .. count - 1
  int64_t count = 1;
};
// "K/N" (0 <= K < N) or "auto": Slurm's SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN of
// SLURM_ARRAY_TASK_COUNT (0/1 outside a job array). A usage error naming --shard otherwise.
Shard parse_shard(const std::string& text);
std::vector<Input> shard_inputs(std::vector<Input> inputs, const Shard& shard);
// "results.jsonl", or "results.shard-3-of-16.jsonl" for one shard of several.
std::string results_file_name(const Shard& shard);
// Under MPI: "results.jsonl" for rank 0, "results.rank-1-of-8.jsonl" for the others.
std::string rank_results_file_name(int rank, int ranks);

struct MethodRun {
  std::string name;  // registered name
  MethodParams params;
};

struct Progress {
  int64_t images_done = 0;   // of this run's pending images (computed or failed)
  int64_t images_total = 0;  // pending when the run started
  int64_t pairs_failed = 0;
  double seconds = 0;        // since the first image
};

struct BatchOptions {
  std::vector<MethodRun> methods;
  std::string out;          // output folder (created)
  bool png = true;          // every view of each method as PNG
  bool raw = false;         // the raw result (and extras) as .npy
  int64_t batch = 1;        // images per forward pass and method call
  Preprocess preprocess;
  int64_t target = -1;      // the class of inputs without one; -1: their top-1
  Shard shard;
  Precision precision = Precision::kFloat32;
  // The run's identity (JSON text: model, weights, methods and options, preprocessing, ...),
  // kept in <out>/run.json: a rerun into the same folder with another is a usage error.
  std::string config;
  std::function<void(const Progress&)> progress;  // after each image, on the calling thread
};

struct Failure {
  std::string image, method, error;
};

struct Summary {
  int64_t images = 0;    // this shard's inputs
  int64_t pairs = 0;     // images x methods
  int64_t skipped = 0;   // pairs already done by an earlier run
  int64_t computed = 0;  // pairs done now
  std::vector<Failure> failures;  // pairs that failed now
};

// Explains this shard's inputs with every method, skipping the (image, method) pairs that
// results*.jsonl under `out` already has with status "ok". Images are decoded and resized on a
// worker thread ahead of the model and outputs written on another behind it; each output goes
// to a temporary name and is renamed, then its line is appended to this shard's results file,
// so a run killed at any moment and rerun ends with every pair exactly once and no partial or
// stray file. A pair that fails (an unreadable image, a method's error for that image) is a
// row with status "error" and is tried again by the next run. Throws cnnvis::Error before any
// work for options that differ from <out>/run.json, or a results file that cannot be read.
//
// Under MPI (an mpi::Session of several processes, cnnvis/mpi.hpp), every rank calls run()
// with the same arguments and `out` on a file system they all share: rank 0 prepares the
// folder (run.json, what is done, stray temporaries), then hands out chunks of `batch` images
// on request while it computes too; each rank writes its own outputs and its own results file
// (rank_results_file_name), and rank 0 merges them into results.jsonl at the end. Rank 0's
// Summary and progress cover the whole job, another rank's Summary its own part. --shard
// and MPI do not combine (a usage error). An error on one rank is for the caller's handler
// to end the job with (mpi::abort_on_error): the others wait for it otherwise; a rerun then
// resumes, as after a kill.
Summary run(Model& model, const std::vector<Input>& inputs, const BatchOptions& options);

// Merges results.jsonl, results.shard-*.jsonl and results.rank-*.jsonl under `folder` into
// results.jsonl (one row per (image, method): an ok row before an error row, else the last;
// sorted by image and method), written atomically; then removes the other files. Returns the rows written. A usage error if `folder` has no
// results file.
int64_t merge(const std::string& folder);

}  // namespace batch
}  // namespace cnnvis
