// cnnvis list: every registered method, its views and options.
#include <iomanip>
#include <iostream>

#include "cnnvis/method.hpp"
#include "common.hpp"

namespace cnnvis::cli {

void setup_list(CLI::App& app) {
  auto* sub = app.add_subcommand("list", "list every method with a one-line summary");
  auto verbose = std::make_shared<bool>(false);
  sub->add_flag("--verbose,-v", *verbose, "also show each method's paper, views and options");
  sub->callback([verbose] {
    for (const auto& m : methods()) {
      std::cout << std::left << std::setw(21) << m.name << std::right << " " << m.summary << "\n";
      if (!*verbose) continue;
      std::cout << "    paper: " << m.paper << "\n";
      for (const auto& v : m.views) {
        std::cout << "    view " << v.name << ": " << v.description << "\n";
      }
      for (const auto& opt : m.options) {
        std::cout << "    --option " << opt.name << "=" << opt.default_value << ": " << opt.help
                  << "\n";
      }
    }
  });
}

}  // namespace cnnvis::cli
