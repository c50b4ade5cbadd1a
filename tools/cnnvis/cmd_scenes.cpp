// cnnvis scenes: write synthetic demo scenes (the demo model's data) and their object masks as
// PNG files, e.g. as inputs for `cnnvis explain --model demo`.
#include <algorithm>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "cnnvis/demo/scenes.hpp"
#include "cnnvis/error.hpp"
#include "cnnvis/image.hpp"
#include "common.hpp"

namespace cnnvis::cli {

void setup_scenes(CLI::App& app) {
  struct Options {
    uint64_t seed = 0;
    int64_t count = 8;
    int64_t size = 96;
    std::string out = "scenes";
  };
  auto o = std::make_shared<Options>();
  auto* sub = app.add_subcommand(
      "scenes",
      "write synthetic demo scenes <out>/scene_<seed>_<class>.png with their object masks\n"
      "(<...>_mask.png); the demo model is trained on such scenes\n"
      "  e.g. cnnvis scenes --seed 100 --count 8 --out scenes/");
  sub->add_option("--seed", o->seed, "first scene's seed (scene i uses seed + i)")
      ->capture_default_str()
      ->check(integer_range(0));
  sub->add_option("--count", o->count, "number of scenes")
      ->capture_default_str()
      ->check(integer_range(1, 100000));
  sub->add_option("--size", o->size, "side in pixels, 96..224")
      ->capture_default_str()
      ->check(integer_range(96, 224));
  sub->add_option("--out,-o", o->out, "output folder (created if missing)")->capture_default_str();
  sub->callback([o] {
    check_out_dir(o->out);
    // Scene i is a function of seed + i alone, so they are made in chunks (bounded memory);
    // the first chunk checks the options before anything is written.
    constexpr int64_t kChunk = 64;
    auto batch = demo::make_scenes(o->seed, std::min(kChunk, o->count), {o->size});
    prepare_out_dir(o->out);
    for (int64_t i = 0; i < o->count; ++i) {
      if (i > 0 && i % kChunk == 0) {
        batch = demo::make_scenes(o->seed + static_cast<uint64_t>(i),
                                  std::min(kChunk, o->count - i), {o->size});
      }
      const int64_t k = i % kChunk;
      std::ostringstream stem;
      stem << o->out << "/scene_" << std::setw(4) << std::setfill('0')
           << (o->seed + static_cast<uint64_t>(i)) << "_"
           << demo::shape_classes()[batch.labels[k].item<int64_t>()];
      save_png(stem.str() + ".png", batch.images[k]);
      save_png(stem.str() + "_mask.png", batch.masks[k]);
      std::cout << "wrote " << stem.str() << ".png (and _mask.png)\n";
    }
  });
}

}  // namespace cnnvis::cli
