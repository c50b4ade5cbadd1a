#pragma once
// Options and helpers shared by the subcommands. Each subcommand is an options struct, a setup
// function that binds its flags, and a run function (CLI11's subcom_in_files pattern).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cnnvis/image.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/model.hpp"
#include "cnnvis/precision.hpp"

namespace cnnvis::cli {

// ---- numeric options ----
// Every numeric option of every subcommand is checked where CLI11 parses it, by one of these
// validators. They run on the option's text before CLI11 converts it, so a refusal is worded
// by cnnvis alone: "--size: expected an integer from 8 to 8192, got 0" (CLI11 puts the
// option's name in front; main() prints it as one line with exit code 2). Not a number, nan,
// inf, out of range and trailing junk are all refused.

constexpr int64_t kNoMax = std::numeric_limits<int64_t>::max();
// A whole number in [min, max] (kNoMax: no upper bound).
CLI::Validator integer_range(int64_t min, int64_t max = kNoMax);
// A finite number in [min, max]; `min_open` / `max_open` exclude the bound itself
// (number_range(0, kInfinity, true): "> 0"). kInfinity: no upper bound (still finite).
constexpr double kInfinity = std::numeric_limits<double>::infinity();
CLI::Validator number_range(double min, double max, bool min_open = false,
                            bool max_open = false);
// Three comma-separated finite numbers R,G,B (--mean; every one > 0 with `positive`: --std).
CLI::Validator rgb_triple(bool positive);

// Input sizes: every side (--size, --resize, --crop, synthesis with --pad) lies in
// [kMinSide, kMaxSide]; the model then says whether it takes it (check_model_input).
constexpr int64_t kMinSide = 8;
constexpr int64_t kMaxSide = 8192;

struct ModelOptions {
  std::string arch;
  std::string weights;
  int64_t random_seed = -1;  // --random-weights SEED; -1 = not given
  std::string device = "cpu";
  std::string output;  // --output: the logits within a TorchScript model's output
  std::string labels;  // --labels FILE: class names, one per line
};
// Binds --model, --weights, --random-weights, --device. --model is required unless
// `default_arch` is given.
void add_model_options(CLI::App& app, ModelOptions& options, const std::string& default_arch = "");
// True if --model names a file (it exists, has a path or a model file's extension) rather than a
// zoo architecture; a zoo name is always the architecture (./NAME for a file of that name).
bool names_model_file(const std::string& model);
// A zoo architecture without weights, or a TorchScript file.
std::unique_ptr<Model> model_of(const std::string& model, const std::string& output = "");
// Builds the model and loads its weights; refuses a model with neither --weights nor
// --random-weights (no silent random models).
std::unique_ptr<Model> load_model(const ModelOptions& options);

struct InputOptions {
  int64_t size = 0;  // 0: the model's own size (96 for demo, else 224)
  int64_t resize = 0;
  int64_t crop = 0;
  std::string mean;  // "0.485,0.456,0.406"
  std::string std;
};
// Binds --size, --resize, --crop, --mean, --std.
void add_input_options(CLI::App& app, InputOptions& options);
// The preprocessing for model `arch` (whose size fills in a --size left out).
Preprocess to_preprocess(const InputOptions& options, const std::string& arch);

// The device named by ModelOptions (throws a usage error for cuda without a GPU).
std::string device_string(const ModelOptions& options);

// The name of the option that set the input's side ("--size", or "--crop" with --resize), and
// that side.
std::string side_option(const Preprocess& pre);
int64_t input_side(const Preprocess& pre);

// Checks, before anything runs, that `model` takes inputs of side x side pixels and that
// `images` of them fit in memory; a usage error naming `option` otherwise, e.g. "--size 4: demo
// takes inputs of at least 32x32 pixels" or "--size 8000: vgg16 needs about 80 GB for one
// 8000x8000 image, 12 GB are available". A dry forward pass of zeros at min(side, 64) finds
// both (the zoo's networks take every side from their smallest up; activations grow with the
// area). The memory check runs on the CPU only (MemAvailable of /proc/meminfo).
// `given` replaces "OPTION SIDE" at the start of the message (synthesis: "--pad 12").
// `needed`: the layers an objective reads (synthesis); the probe then runs the network up to
// the last of them only (Model::forward_taps), as synthesis itself does, and the memory
// estimate counts the layers up to there.
void check_model_input(Model& model, int64_t side, const std::string& option,
                       int64_t images = 1, const std::string& given = "",
                       const std::vector<std::string>& needed = {});

// The bytes the machine can still give (MemAvailable), or -1 when unknown.
int64_t available_memory();
// "1.5 GB", "300 MB".
std::string format_bytes(double bytes);

// load_image + resize_image, refusing a --resize whose intermediate image would not fit in
// memory (a panorama resized by its shorter side). Errors name the file.
at::Tensor load_resized(const std::string& path, const Preprocess& pre);

// A usage error if `out` exists and is not a folder (checked before any work; `option` names
// it in the message).
void check_out_dir(const std::string& out, const std::string& option = "--out");
// Creates the --out folder if missing; a usage error if it is a file, a runtime error if it
// cannot be created.
void prepare_out_dir(const std::string& out);

// Subcommands: each adds itself to the app.
void setup_explain(CLI::App& app);
void setup_list(CLI::App& app);
void setup_layers(CLI::App& app);
void setup_bench(CLI::App& app);
void setup_train_demo(CLI::App& app);
void setup_scenes(CLI::App& app);
void setup_demo(CLI::App& app);
void setup_evaluate(CLI::App& app);
void setup_synthesize(CLI::App& app);
void setup_batch(CLI::App& app);

// --precision (main() sets it): what methods, synthesis and demo run in.
void set_precision(Precision precision);
Precision precision();
// The guard for a command's method calls on `model` in --precision (nothing for float32):
// refuses a precision the model's device cannot run, and prints precision_warning once per
// process on stderr.
std::unique_ptr<PrecisionGuard> precision_guard(Model& model, Precision p = precision());

// The command line as typed ("cnnvis demo --out g"), recorded by main() for reports.
void set_command_line(int argc, char** argv);
const std::string& command_line();

// --option KEY=VALUE items -> MethodParams (a usage error for an item without '=').
MethodParams parse_params(const std::vector<std::string>& items);
// Method options given as `--key value` or `--key=value` (CLI11's leftovers) into `params`.
void parse_extras(const std::vector<std::string>& extras, MethodParams& params,
                  const std::string& method);

// --option METHOD.KEY=VALUE items (evaluate, batch) -> the params of each named method; a usage
// error for another form or a method not in `methods`.
std::map<std::string, MethodParams> method_options(const std::vector<std::string>& items,
                                                   const std::vector<std::string>& methods);

// "a,b,c" -> registered method names (all of them for an empty list); a usage error naming
// `option` for an unknown one.
std::vector<std::string> parse_method_list(const std::string& list, const std::string& option);

// "NAME:N" (--unit LAYER:FILTER, bench --vs METHOD:COUNT): sets `name` to the part before the
// last ':' and returns N, or returns -1 when NAME is empty or N is not a whole number >= 0.
int64_t split_name_number(const std::string& text, std::string& name);
// The first line of a text up to its first ':' ("vanilla backprop: gradient ..." -> "vanilla
// backprop"): the short title of a method summary or view description.
std::string title_of(const std::string& text);

}  // namespace cnnvis::cli
