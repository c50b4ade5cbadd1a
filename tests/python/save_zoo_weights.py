#!/usr/bin/python3
"""Saves torchvision's MODEL with cnnvis_random_weights(seed) in the three weight formats cnnvis
reads, as torchvision users have them: OUT/MODEL.zip.pth (torch.save), OUT/MODEL.legacy.pth
(_use_new_zipfile_serialization=False) and OUT/MODEL.safetensors.
    /usr/bin/python3 tests/python/save_zoo_weights.py MODEL SEED OUT
"""
import os
import sys

import torch
import torchvision

sys.path.insert(0, os.path.dirname(__file__))
from cnnvis_random_weights import randomize_weights  # noqa: E402
from make_weight_fixtures import save_safetensors  # noqa: E402


def main():
    name, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    torch.set_num_threads(1)
    model = getattr(torchvision.models, name)()
    randomize_weights(model, seed)
    sd = model.state_dict()
    torch.save(sd, os.path.join(out, f"{name}.zip.pth"))
    torch.save(sd, os.path.join(out, f"{name}.legacy.pth"), _use_new_zipfile_serialization=False)
    save_safetensors(sd, os.path.join(out, f"{name}.safetensors"))


if __name__ == "__main__":
    main()
