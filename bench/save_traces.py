#!/usr/bin/python3
"""Writes OUT/<arch>_trace.pt for AlexNet, VGG16, ResNet-18 and ResNet-50: torchvision's
model with cnnvis_random_weights(1234) (the weights `make_model` + `randomize_weights(1234)`
give the zoo model), eval mode, traced with torch.jit.trace on one 224 x 224 image. The zoo's
forward pass is benchmarked against them in one process (bench/zoo_vs_trace.sh): a traced
torchvision model runs the kernels that PyTorch runs. A file already there is kept (VGG16's is
530 MB).
    /usr/bin/python3 bench/save_traces.py OUT [ARCH...]
"""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "python"))
import torch  # noqa: E402
import torchvision  # noqa: E402
from cnnvis_random_weights import randomize_weights  # noqa: E402

torch.set_num_threads(1)
out_dir = sys.argv[1]
os.makedirs(out_dir, exist_ok=True)
for arch in sys.argv[2:] or ["alexnet", "vgg16", "resnet18", "resnet50"]:
    out = os.path.join(out_dir, arch + "_trace.pt")
    if os.path.exists(out):
        continue
    model = getattr(torchvision.models, arch)()
    randomize_weights(model, 1234)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        traced = torch.jit.trace(model, torch.zeros(1, 3, 224, 224))
    tmp = out + ".tmp-%d" % os.getpid()
    traced.save(tmp)
    os.replace(tmp, out)
    print("wrote", out)
