// cnnvis: visualize what a convolutional network looks at.
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <sched.h>

#include <cmath>
#include <cstdlib>
#include <iostream>
#include <new>
#include <regex>
#include <thread>

#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "cnnvis/mpi.hpp"
#include "cnnvis/strategy.hpp"
#include "common.hpp"

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

constexpr const char* kOutOfMemoryHint =
    "use a smaller --size or --batch, fewer images, or a machine with more memory";

// A LibTorch error as cnnvis's one line: out of memory is said so (with the size asked for);
// anything else is a failure inside LibTorch, without its source locations.
std::string torch_error_line(const c10::Error& e) {
  std::string text = first_line(e.what_without_backtrace());
  // CPU: "not enough memory: you tried to allocate", "can't allocate memory"; CUDA: "out of
  // memory".
  const bool oom = dynamic_cast<const c10::OutOfMemoryError*>(&e) != nullptr ||
                   text.find("out of memory") != std::string::npos ||
                   (text.find("allocat") != std::string::npos &&
                    text.find("memory") != std::string::npos);
  if (oom) {
    std::smatch m;
    std::string asked;
    if (std::regex_search(text, m, std::regex("allocate ([0-9]+) bytes"))) {
      asked = " (" + cnnvis::cli::format_bytes(std::stod(m[1].str())) + " more were asked for)";
    }
    return "out of memory" + asked + "; " + kOutOfMemoryHint;
  }
  // "[enforce fail at alloc_cpu.cpp:75] ..." and "... (at file.cpp:12)": not for users.
  text = std::regex_replace(text, std::regex("\\[enforce fail at [^\\]]*\\] *"), "");
  text = std::regex_replace(text, std::regex(" *\\(at [^)]*\\) *"), "");
  return "a computation failed inside LibTorch (" + text +
         "); if the inputs are valid this is a bug, please report it with the command line";
}

// A validator that accepts what `parse` accepts (it throws cnnvis::Error otherwise), with
// the refusal in the project's words: "expected <expected>, got 'VALUE'".
template <typename Parse>
CLI::Validator parsed_by(Parse parse, const std::string& expected, const std::string& names) {
  return CLI::Validator(
      [parse, expected](std::string& value) {
        try {
          parse(value);
        } catch (const cnnvis::Error&) {
          return "expected " + expected + ", got '" + value + "'";
        }
        return std::string();
      },
      names);
}

// The CPUs this process may run on (mpirun binds each rank to a core by default).
int affinity_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "cnnvis: see what a convolutional network looks at.\n"
      "Gradient saliency, guided backprop, CAMs, LRP and more for torchvision's AlexNet, VGG and\n"
      "ResNet models, loaded from their own weight files.\n\n"
      "Example:\n"
      "  cnnvis explain vanilla --model vgg16 --weights vgg16-397923af.pth \\\n"
      "      --image cat.png --target 281 --out out/\n"};
  app.name("cnnvis");
  app.require_subcommand(1);
  // The cores this process may use; under mpirun without binding, the ranks on one machine
  // share its cores.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int usable = affinity_cpus();
  int threads = usable;
  if (cnnvis::mpi::launched() && usable >= cores) {
    threads = std::max(1, cores / cnnvis::mpi::local_size());
  }
  app.add_option("--threads", threads,
                 "intra-op CPU threads (default: the cores this process may use: all of them, "
                 "or under mpirun the rank's cores, or its share of the machine's when mpirun "
                 "binds nothing); OMP_WAIT_POLICY=PASSIVE in the environment helps when sharing "
                 "the machine with another busy process")
      ->check(cnnvis::cli::integer_range(1, 1024));
  double megapixels = static_cast<double>(cnnvis::kDefaultImagePixelLimit) / 1e6;
  app.add_option("--max-megapixels", megapixels,
                 "refuse input images larger than this, from their header before decoding "
                 "(default 100)")
      ->check(cnnvis::cli::number_range(0, 1e6, /*min_open=*/true));
  std::string strategy = "auto";
  app.add_option("--gradient-strategy", strategy,
                 "how input gradients (vanilla, guided backprop, integrated gradients, "
                 "SmoothGrad, ...) run on the CPU: batched (one pass, all threads in each "
                 "layer), split (a batch over single-threaded workers, one per thread), "
                 "channels-last (the input and the convolutions' weights in NHWC layout) or "
                 "auto (the first calls for a model and input size time each that applies, "
                 "then the fastest is kept; `cnnvis bench` shows the choice). Fix it for runs "
                 "identical to the last bit")
      ->capture_default_str()
      ->check(parsed_by([](const std::string& v) { cnnvis::parse_gradient_strategy(v); },
                        "auto, batched, split or channels-last",
                        "auto|batched|split|channels-last"));
  std::string pass = "auto";
  app.add_option("--pass-size", pass,
                 "images per forward pass of occlusion, Score-CAM and Ablation-CAM on the CPU: "
                 "auto (the first passes for a model and input size time the method's batch "
                 "option, half and a quarter of it, then the fastest per image is kept; "
                 "`cnnvis bench` shows the choice) or full (every pass takes the whole batch "
                 "option). Fix it for runs identical to the last bit")
      ->capture_default_str()
      ->check(parsed_by([](const std::string& v) { cnnvis::parse_pass_size(v); }, "auto or full",
                        "auto|full"));
  std::string precision = "float32";
  app.add_option("--precision", precision,
                 "float32 (exact, the default), bf16 (bfloat16: CPUs with AVX512-BF16 or AMX, "
                 "and CUDA) or fp16 (CUDA): convolutions and linear layers of every method, "
                 "synthesis and demo run in that dtype under LibTorch's autocast, results stay "
                 "float32; `cnnvis bench` then times both and gives the maps' rank correlation")
      ->capture_default_str()
      ->check(parsed_by([](const std::string& v) { cnnvis::parse_precision(v); },
                        "float32, bf16 or fp16", "float32|bf16|fp16"));
  app.parse_complete_callback([&] {
    cnnvis::cli::set_precision(cnnvis::parse_precision(precision));
    at::set_num_threads(threads);
    const char* rank = std::getenv("OMPI_COMM_WORLD_RANK");
    if (cnnvis::mpi::launched() && threads > usable && (!rank || std::string(rank) == "0")) {
      std::cerr << "cnnvis: warning: --threads " << threads << " on a rank bound to " << usable
                << " core(s) (mpirun binds each rank to a core by default): the threads share "
                   "it; give mpirun --bind-to none or --map-by slot:PE=" << threads
                << ", or fewer --threads\n";
    }
    cnnvis::set_gradient_strategy(cnnvis::parse_gradient_strategy(strategy));
    cnnvis::set_pass_size(cnnvis::parse_pass_size(pass));
    cnnvis::set_image_pixel_limit(std::max<int64_t>(1, std::llround(megapixels * 1e6)));
  });

  cnnvis::cli::setup_explain(app);
  cnnvis::cli::setup_list(app);
  cnnvis::cli::setup_layers(app);
  cnnvis::cli::setup_bench(app);
  cnnvis::cli::setup_train_demo(app);
  cnnvis::cli::setup_scenes(app);
  cnnvis::cli::setup_demo(app);
  cnnvis::cli::setup_evaluate(app);
  cnnvis::cli::setup_synthesize(app);
  cnnvis::cli::setup_batch(app);
  cnnvis::cli::set_command_line(argc, argv);

  // Under mpirun an error ends the whole job (no rank waits for one that failed), and each
  // rank says which it is.
  const auto fail = [](int code, const std::string& line) {
    std::string who;
    if (cnnvis::mpi::distributed()) {
      who = " (rank " + std::to_string(cnnvis::mpi::rank()) + " of " +
            std::to_string(cnnvis::mpi::size()) + ")";
    }
    std::cerr << "cnnvis: error" << who << ": " << line << std::endl;
    cnnvis::mpi::abort_on_error(code);
    return code;
  };
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(2, first_line(e.what()) + " (see cnnvis --help)");
  } catch (const cnnvis::Error& e) {
    return fail(e.kind() == cnnvis::ErrorKind::kInvalidArgument ? 2 : 1,
                cnnvis::error_line(e.what()));
  } catch (const c10::Error& e) {
    return fail(1, torch_error_line(e));
  } catch (const std::bad_alloc&) {
    return fail(1, std::string("out of memory; ") + kOutOfMemoryHint);
  } catch (const std::exception& e) {
    return fail(1, cnnvis::error_line(e.what()));
  } catch (...) {
    return fail(1, "an unexpected failure; please report it with the command line");
  }
  return 0;
}
