#!/usr/bin/python3
"""Reference numbers for the TorchScript tests on architectures that the cnnvis zoo lacks, from
Captum 0.8.0 and pytorch-grad-cam 1.5.5 (numbers only: tests/fixtures/script/).

The models are tests/python/script_models.py's: torchvision's densenet121, mobilenet_v2,
efficientnet_b0, convnext_tiny, inception_v3 and lraspp_mobilenet_v3_large (4 classes) with
cnnvis_random_weights(1234), eval mode, in float64 here (every module's `inplace` set to False
for Captum's hooks; the scripted copies the tests load keep their in-place ops). The test
scripts the same models at test time (save_torchscript.py) and converts them to float64.
Input per model: x = randn((1, 3, S, S), Generator().manual_seed(7)) in float32, then float64;
S is the model's size in script_models.py.

Per model <m> (float32 .npy, so relative rounding 6e-8 of each value):
  <m>_x.npy         the input
  <m>_logits.npy    the classifiers' output
  <m>_vanilla.npy   Captum Saliency(abs=False): d score / d x
  <m>_guided.npy    Captum GuidedBackprop, with every ReLU a module (see below)
  <m>_ig.npy        Captum IntegratedGradients, 8 steps, gausslegendre, zero baseline
  <m>_gradcam.npy   pytorch-grad-cam GradCAM raw map at the model's cam_layer:
                    relu(get_cam_image) before scale_cam_image, [1, h, w]
Score: the logit of the model's target class (ClassifierOutputTarget; class 3, for
densenet121 and efficientnet_b0 class 4); for the segmentation model the
logits of class 1 summed over the pixels predicted as class 1 (the argmax of the unperturbed
output): pytorch-grad-cam's SemanticSegmentationTarget(1, mask), and for Captum the forward
function x -> (model(x)["out"][:, 1] * mask).sum((1, 2)).

The ReLU rule. Captum's GuidedBackprop guides nn.ReLU modules only. cnnvis guides every ReLU
of the graph: modules, F.relu, torch.relu, in-place or not; other activations (ReLU6, SiLU,
GELU, Hardswish, sigmoid) keep their plain gradient in both. densenet121 (F.relu after
"features") and inception_v3 (F.relu in every BasicConv2d) call the functional ReLU, so for
them Captum runs with F.relu routed through one extra nn.ReLU module of the model (its hooks
then see every ReLU): that is cnnvis's rule, computed by Captum. Every guided result is also
recomputed by hand (an autograd Function in place of every ReLU) and asserted equal; for the
models without a ReLU (mobilenet_v2: ReLU6; efficientnet_b0: SiLU; convnext_tiny: GELU) the
guided map is asserted equal to the vanilla gradient and not saved.

Needs Captum faac08773131888714b15709b28494ebeea7f6eb, pytorch-grad-cam
084273b3f30b54ad0c64cf8020a4337d979a66e0, ttach 94e579e59a21cbdfbb4f5790502e648008ecf64e and
Debian's python3-torch, -torchvision, -tqdm, -opencv, -sklearn (../shared/REFERENCES.md):
    CAPTUM=... PGC=... TTACH=... /usr/bin/python3 tests/python/make_script_fixtures.py
"""
import os
import sys
import warnings

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
for var in ("CAPTUM", "PGC", "TTACH"):
    sys.path.insert(0, os.environ[var])

from captum.attr import GuidedBackprop, IntegratedGradients, Saliency  # noqa: E402
import pytorch_grad_cam.base_cam as pgc_base  # noqa: E402
from pytorch_grad_cam import GradCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import (  # noqa: E402
    ClassifierOutputTarget, SemanticSegmentationTarget)

from script_models import ARCHITECTURES, build, every_relu_guided  # noqa: E402

OUT = os.path.join(HERE, "..", "fixtures", "script")
F = torch.nn.functional
warnings.simplefilter("ignore")
torch.set_num_threads(2)


def save(name, t):
    a = t.detach().numpy() if torch.is_tensor(t) else np.asarray(t)
    np.save(os.path.join(OUT, name + ".npy"), a.astype(np.float32))
    print(f"  {name:40s} {list(a.shape)} max|.| {float(np.abs(a).max()):.6g}")


def check(name, a, b, tol=1e-10):
    a, b = torch.as_tensor(a).double(), torch.as_tensor(b).double()
    assert a.shape == b.shape, (name, a.shape, b.shape)
    err = float((a - b).abs().max() / b.abs().max().clamp_min(1e-300))
    print(f"  check {name}: {err:.3g}")
    assert err <= tol, (name, err)


class FunctionalRelu(torch.nn.ReLU):
    """An nn.ReLU module through which F.relu is routed while Captum runs."""

    def forward(self, t):
        return ORIGINAL_RELU(t)


ORIGINAL_RELU = F.relu
ORIGINAL_RELU_FORWARD = torch.nn.ReLU.forward


class every_relu_a_module:
    def __init__(self, model):
        self.module = FunctionalRelu()
        model.add_module("_captum_functional_relu", self.module)

    def __enter__(self):
        # Captum's backward hooks call F.relu too, on tensors without a gradient: not routed.
        F.relu = lambda t, inplace=False: self.module(t) if t.requires_grad else ORIGINAL_RELU(t)
        torch.nn.ReLU.forward = lambda m, t: ORIGINAL_RELU(t)

    def __exit__(self, *args):
        F.relu = ORIGINAL_RELU
        torch.nn.ReLU.forward = ORIGINAL_RELU_FORWARD


def has_relu(model, x):
    calls = []
    saved = F.relu
    F.relu = lambda t, inplace=False: calls.append(1) or saved(t)
    try:
        with torch.no_grad():
            model(x)
    finally:
        F.relu = saved
    return bool(calls)


class Score(torch.nn.Module):
    """The segmentation score as a module (Captum's GuidedBackprop hooks a module's ReLUs)."""

    def __init__(self, model, fn):
        super().__init__()
        self.model, self.fn = model, fn

    def forward(self, x):
        return self.fn(x)


class SegmentationLogits(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x)["out"]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, spec in ARCHITECTURES.items():
        print(name)
        model = build(torchvision, name).double()
        for m in model.modules():
            if hasattr(m, "inplace"):
                m.inplace = False
        s = spec["size"]
        x = torch.randn((1, 3, s, s), generator=torch.Generator().manual_seed(7)).double()
        save(name + "_x", x)
        segmentation = spec.get("segmentation", False)
        if segmentation:
            logits_module = SegmentationLogits(model).eval()
            with torch.no_grad():
                out = logits_module(x)
            mask = (out[0].argmax(0) == spec["target"]).double()
            print(f"  mask: {int(mask.sum())} of {mask.numel()} pixels")
            assert 0 < mask.sum() < mask.numel()

            def score_fn(t):
                return (logits_module(t)[:, spec["target"]] * mask).sum((1, 2))

            forward, target = score_fn, None
            cam_target = SemanticSegmentationTarget(spec["target"], mask.numpy())
        else:
            logits_module = model
            with torch.no_grad():
                out = model(x)
            forward, target = model, spec["target"]
            cam_target = ClassifierOutputTarget(spec["target"])
        if not segmentation:
            save(name + "_logits", out)

        # vanilla, checked against plain autograd
        vanilla = Saliency(forward).attribute(x, target=target, abs=False)
        xv = x.clone().requires_grad_(True)
        score = forward(xv)
        (score if target is None else score[:, target]).sum().backward()
        check("vanilla by autograd", xv.grad, vanilla)
        save(name + "_vanilla", vanilla)

        # guided backprop
        with every_relu_a_module(model):
            guided = GuidedBackprop(Score(model, forward) if segmentation else model).attribute(
                x, target=target)
        with every_relu_guided():
            xg = x.clone().requires_grad_(True)
            score = forward(xg)
            (score if target is None else score[:, target]).sum().backward()
        check("guided by hand", xg.grad, guided)
        if has_relu(model, x):
            save(name + "_guided", guided)
        else:
            check("guided == vanilla (no ReLU)", guided, vanilla, 0)
            print("  (no ReLU: guided == vanilla, not saved)")

        ig = IntegratedGradients(forward).attribute(
            x, baselines=torch.zeros_like(x), target=target, n_steps=8, method="gausslegendre")
        save(name + "_ig", ig)

        captured = []
        original = pgc_base.scale_cam_image

        def capture(cam, target_size=None):
            if target_size is not None:
                captured.append(np.array(cam, copy=True))
            return original(cam, target_size)

        pgc_base.scale_cam_image = capture
        layer = model.get_submodule(spec["cam_layer"])
        cam = GradCAM(model=logits_module, target_layers=[layer])
        try:
            cam(input_tensor=x, targets=[cam_target])
        finally:
            cam.activations_and_grads.release()
            pgc_base.scale_cam_image = original
        assert len(captured) == 1 and captured[0].max() > 0, "an all-zero map tests little"
        save(name + "_gradcam", captured[0])


if __name__ == "__main__":
    main()
