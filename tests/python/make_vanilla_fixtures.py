#!/usr/bin/python3
"""Reference input gradients (vanilla backprop) for tests/test_methods.cpp, from Captum.

torchvision's vgg11_bn and resnet18 with cnnvis_random_weights(seed), in float64, on a seeded
64x64 input: Captum's Saliency(abs=False) for target class 3, saved as float64 .npy files.
Needs a checkout of pytorch/captum at faac08773131888714b15709b28494ebeea7f6eb (0.8.0, see
../shared/REFERENCES.md) and Debian's python3-tqdm:
    CAPTUM=/path/to/captum /usr/bin/python3 tests/python/make_vanilla_fixtures.py
"""
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.environ["CAPTUM"])
sys.path.insert(0, os.path.dirname(__file__))
from captum.attr import Saliency  # noqa: E402
from cnnvis_random_weights import randomize_weights  # noqa: E402

SEED, INPUT_SEED, SIZE, TARGET = 1234, 7, 64, 3
OUT = os.path.join(os.path.dirname(__file__), "..", "fixtures", "vanilla")


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in ["vgg11_bn", "resnet18"]:
        model = getattr(torchvision.models, name)()
        randomize_weights(model, SEED)
        model = model.double().eval()
        x = (torch.rand(1, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(INPUT_SEED))
             * 4 - 2).double()
        grad = Saliency(model).attribute(x, target=TARGET, abs=False)
        path = os.path.join(OUT, f"{name}_grad_target{TARGET}.npy")
        old = np.load(path) if os.path.exists(path) else None
        np.save(path, grad.detach().numpy())
        same = "n/a" if old is None else float(np.abs(old - grad.detach().numpy()).max())
        print(name, "max |grad|", float(grad.abs().max()), "max change vs previous", same)


if __name__ == "__main__":
    main()
