#pragma once
// Options and helpers shared by the subcommands. Each subcommand is an options struct, a setup
// function that binds its flags, and a run function (CLI11's subcom_in_files pattern).
#include <CLI/CLI.hpp>

#include <cstdint>
#include <memory>
#include <string>

#include "cnnvis/image.hpp"
#include "cnnvis/method.hpp"
#include "cnnvis/model.hpp"

namespace cnnvis::cli {

struct ModelOptions {
  std::string arch;
  std::string weights;
  int64_t random_seed = -1;  // --random-weights SEED; -1 = not given
  std::string device = "cpu";
};
// Binds --model, --weights, --random-weights, --device. --model is required unless
// `default_arch` is given.
void add_model_options(CLI::App& app, ModelOptions& options, const std::string& default_arch = "");
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

// The command line as typed ("cnnvis demo --out g"), recorded by main() for reports.
void set_command_line(int argc, char** argv);
const std::string& command_line();

// --option KEY=VALUE items -> MethodParams (a usage error for an item without '=').
MethodParams parse_params(const std::vector<std::string>& items);
// Method options given as `--key value` or `--key=value` (CLI11's leftovers) into `params`.
void parse_extras(const std::vector<std::string>& extras, MethodParams& params,
                  const std::string& method);

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
