// cnnvis: visualize what a convolutional network looks at.
#include <c10/util/Exception.h>
#include <torch/torch.h>

#include <cstdlib>
#include <iostream>
#include <thread>

#include "cnnvis/error.hpp"
#include "common.hpp"

namespace {

std::string first_line(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

int main(int argc, char** argv) {
  // OpenMP threads that spin while idle slow a busy 2-core machine down up to 3x: make them
  // sleep unless the user chose otherwise. Must happen before the first parallel region.
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);

  CLI::App app{
      "cnnvis: see what a convolutional network looks at.\n"
      "Gradient saliency, guided backprop, CAMs, LRP and more for torchvision's AlexNet, VGG and\n"
      "ResNet models, loaded from their own weight files.\n\n"
      "Example:\n"
      "  cnnvis explain vanilla --model vgg16 --weights vgg16-397923af.pth \\\n"
      "      --image cat.png --target 281 --out out/\n"};
  app.name("cnnvis");
  app.require_subcommand(1);
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  app.add_option("--threads", threads,
                 "intra-op CPU threads (default: all cores; OMP_WAIT_POLICY=PASSIVE unless set)")
      ->check(CLI::PositiveNumber);
  app.parse_complete_callback([&] { at::set_num_threads(threads); });

  cnnvis::cli::setup_explain(app);
  cnnvis::cli::setup_list(app);
  cnnvis::cli::setup_layers(app);
  cnnvis::cli::setup_bench(app);
  cnnvis::cli::setup_train_demo(app);
  cnnvis::cli::setup_scenes(app);
  cnnvis::cli::setup_demo(app);
  cnnvis::cli::setup_evaluate(app);
  cnnvis::cli::setup_synthesize(app);
  cnnvis::cli::set_command_line(argc, argv);

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "cnnvis: error: " << first_line(e.what()) << " (see cnnvis --help)\n";
    return 2;
  } catch (const cnnvis::Error& e) {
    std::cerr << "cnnvis: error: " << first_line(e.what()) << "\n";
    return e.kind() == cnnvis::ErrorKind::kInvalidArgument ? 2 : 1;
  } catch (const c10::Error& e) {
    std::cerr << "cnnvis: error: " << first_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "cnnvis: error: " << first_line(e.what()) << "\n";
    return 1;
  }
  return 0;
}
