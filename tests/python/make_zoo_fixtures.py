#!/usr/bin/python3
"""Reference logits of torchvision's models for tests/test_models.cpp.

For each zoo model: torchvision's model with cnnvis_random_weights(seed), in float64, on a
seeded 64x64 input; writes its state_dict keys and shapes and the logits' summary to
tests/fixtures/zoo.json. Run with Debian's python3 (torch 1.13, torchvision 0.14):
    /usr/bin/python3 tests/python/make_zoo_fixtures.py
"""
import json
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from cnnvis_random_weights import randomize_weights  # noqa: E402

MODELS = ["alexnet", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
          "vgg19_bn", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
SEED = 1234
INPUT_SEED = 7
SIZE = 64


def main():
    torch.set_num_threads(2)
    out = {"seed": SEED, "input_seed": INPUT_SEED, "size": SIZE,
           "input": "torch.rand(1,3,size,size, generator seeded input_seed) * 4 - 2, float64",
           "models": {}}
    x = (torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(INPUT_SEED))
         * 4 - 2).double()
    for name in MODELS:
        model = getattr(torchvision.models, name)()
        randomize_weights(model, SEED)
        model = model.double().eval()
        with torch.no_grad():
            logits = model(x)[0]
        out["models"][name] = {
            "keys": [[k, list(v.shape)] for k, v in model.state_dict().items()],
            "logits_head": logits[:16].tolist(),
            "logits_sum": logits.sum().item(),
            "logits_abs_sum": logits.abs().sum().item(),
            "argmax": int(logits.argmax()),
        }
        print(name, out["models"][name]["logits_head"][:3], flush=True)
    path = os.path.join(os.path.dirname(__file__), "..", "fixtures", "zoo.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=0)


if __name__ == "__main__":
    main()
