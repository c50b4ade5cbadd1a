// The C++ API in a few lines: load a torchvision model, explain a prediction with vanilla
// backprop, save the grayscale saliency.
//   example_vanilla vgg16 vgg16-397923af.pth cat.png out/       (torchvision's weights)
//   example_vanilla resnet18 --random 0 cat.png out/             (seeded random weights)
#include <cnnvis/cnnvis.hpp>

#include <iostream>
#include <string>

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::cerr << "usage: example_vanilla MODEL (WEIGHTS | --random SEED) IMAGE OUT_DIR\n";
    return 2;
  }
  try {
    const bool random = std::string(argv[2]) == "--random";
    const std::string image = argv[random ? 4 : 3];
    const std::string out = argv[random ? 5 : 4];

    auto model = cnnvis::make_model(argv[1]);
    if (random) {
      cnnvis::randomize_weights(*model, std::stoull(argv[3]));
    } else {
      cnnvis::load_weights(*model, argv[2]);
    }
    const cnnvis::Preprocess pre;  // 224 x 224, ImageNet mean and std
    const at::Tensor x = cnnvis::load_input(image, pre);               // [1, 3, 224, 224]
    const int64_t top1 = model->forward(x).output.argmax(1).item<int64_t>();
    const at::Tensor g = cnnvis::VanillaGradient().attribute(
        *model, x, cnnvis::Target::class_logit(top1));                  // [1, 3, 224, 224]
    cnnvis::save_png(out + "/vanilla_gray.png", cnnvis::grayscale_saliency(g));
    std::cout << "explained class " << top1 << " ("
              << cnnvis::class_name(top1, model->num_classes()) << "): " << out
              << "/vanilla_gray.png\n";
  } catch (const std::exception& e) {
    std::cerr << "example_vanilla: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
