#include <cnnvis/cnnvis.hpp>
#include <torch/torch.h>

#include <iostream>

int main() {
  auto model = cnnvis::make_model("resnet18");
  cnnvis::randomize_weights(*model, 0);
  const auto x = torch::zeros({1, 3, 32, 32});
  const auto g = cnnvis::make_method("vanilla")->attribute(*model, x,
                                                           cnnvis::Target::class_logit(0));
  std::cout << "consumer ok " << g.sizes() << "\n";
  return g.size(1) == 3 ? 0 : 1;
}
