#!/usr/bin/python3
"""Reference input gradients (vanilla backprop) of torchvision models for tests/test_methods.cpp.

torchvision's vgg11_bn and resnet18 with cnnvis_random_weights(seed) in float64 on a seeded
64x64 input; the gradient of logit `target` w.r.t. the input, computed by PyTorch's autograd
exactly as Captum's Saliency(abs=False) does, saved as float64 .npy files.
    /usr/bin/python3 tests/python/make_vanilla_fixtures.py
"""
import os
import sys

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
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
             * 4 - 2).double().requires_grad_(True)
        logit = model(x)[0, TARGET]
        (grad,) = torch.autograd.grad(logit, x)
        np.save(os.path.join(OUT, f"{name}_grad_target{TARGET}.npy"), grad.numpy())
        print(name, float(logit), float(grad.abs().max()))


if __name__ == "__main__":
    main()
