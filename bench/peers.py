#!/usr/bin/python3
"""The Python tools timed as their users call them, on the eager models whose scripted copies
cnnvis explains (tests/python/script_models.py: same architecture, same seeded weights):
Captum's Saliency, GuidedBackprop and LayerGradCam (+ LayerAttribution.interpolate to the input
size) and pytorch-grad-cam's GradCAM, at the layer that cnnvis uses by default, target class 3,
batch 1. One warm-up call, then REPEAT timed calls; prints the medians (ms) as JSON, with a plain
forward pass under torch.inference_mode, and "scripted-vanilla": the input gradient of the scripted
file in MODELS (written by tests/python/save_torchscript.py) run by PyTorch's interpreter.
    MODELS=... CAPTUM=... PGC=... TTACH=... /usr/bin/python3 bench/peers.py MODEL LAYER SIZE REPEAT THREADS
(bench/peers.sh runs it, alternating with cnnvis; ../shared/REFERENCES.md has the revisions)."""
import json
import os
import sys
import warnings

from peer_common import median_ms as median_ms_of, use_checkouts

use_checkouts("peers.py", ("CAPTUM", "PGC", "TTACH"))
if "MODELS" not in os.environ:
    sys.exit("peers.py: set MODELS to the folder of tests/python/save_torchscript.py's files")

import torch  # noqa: E402
import torchvision  # noqa: E402
from captum.attr import GuidedBackprop, LayerAttribution, LayerGradCam, Saliency  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

from script_models import build  # noqa: E402

name, layer, size, repeat, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), \
    int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    model = build(torchvision, name)
module = model.get_submodule(layer)
x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(0))
target = 3


def median_ms(f):
    return median_ms_of(f, repeat)


def forward():
    with torch.inference_mode():
        model(x)


saliency, guided, gradcam = Saliency(model), GuidedBackprop(model), LayerGradCam(model, module)


def captum_gradcam():
    LayerAttribution.interpolate(gradcam.attribute(x, target=target), (size, size))


# The scripted file that cnnvis explains, run by PyTorch's own interpreter in the simple
# executor (as cnnvis runs it): what the interpreter costs, apart from cnnvis's graph edits.
torch._C._get_graph_executor_optimize(False)
scripted = torch.jit.load(os.path.join(os.environ["MODELS"], f"{name}_script.pt")).eval()
for p in scripted.parameters():
    p.requires_grad_(False)


def scripted_vanilla():
    xg = x.detach().clone().requires_grad_(True)
    torch.autograd.grad(scripted(xg)[:, target].sum(), xg)


pgc = GradCAM(model=model, target_layers=[module])
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    result = {
        "forward": median_ms(forward),
        "vanilla": median_ms(lambda: saliency.attribute(x, target=target)),
        "guided-backprop": median_ms(lambda: guided.attribute(x, target=target)),
        "grad-cam": median_ms(captum_gradcam),
        "scripted-vanilla": median_ms(scripted_vanilla),
        "pgc-grad-cam": median_ms(lambda: pgc(input_tensor=x, targets=[ClassifierOutputTarget(target)])),
    }
print(json.dumps(result))
