"""The torchvision architectures that the cnnvis zoo lacks, as the TorchScript tests use them:
built by name with cnnvis_random_weights (same seed, same tensors in every PyTorch version the
tests run with), in eval mode. Shared by save_torchscript.py (which scripts them at test time)
and make_script_fixtures.py (which computes the reference numbers once, with Captum and
pytorch-grad-cam, from the same eager models).

Each entry: the input size used by the fixtures (small, to keep them small), the target (a
class, or for the segmentation model a class whose logits are summed over the pixels predicted
as it), and the layer of the Grad-CAM fixture; targets and layers are chosen so that the
Grad-CAM map is partly positive (an all-zero map would test nothing).
"""
import contextlib

import torch

from cnnvis_random_weights import randomize_weights

SEED = 1234

ARCHITECTURES = {
    # nn.ReLU modules in the dense layers, a functional F.relu(inplace=True) after "features".
    "densenet121": dict(size=32, target=4, cam_layer="features.denseblock3"),
    # ReLU6 (hardtanh) everywhere, no ReLU.
    "mobilenet_v2": dict(size=32, target=3, cam_layer="features.13"),
    # SiLU, squeeze-excitation (sigmoid gates), stochastic depth (identity in eval).
    "efficientnet_b0": dict(size=32, target=4, cam_layer="features.3"),
    # LayerNorm, GELU, permutes, layer scale.
    "convnext_tiny": dict(size=32, target=3, cam_layer="features.3"),
    # Functional F.relu in every BasicConv2d; scripted, it returns InceptionOutputs(logits, aux).
    "inception_v3": dict(size=80, target=3, cam_layer="Mixed_6e"),
    # Returns {"out": [N, 4, H, W]}; Hardswish, ReLU modules, squeeze-excitation (hardsigmoid).
    "lraspp_mobilenet_v3_large": dict(size=32, target=1, cam_layer="classifier.cbr",
                                      segmentation=True),
}


def build(torchvision, name):
    m = torchvision.models
    if name == "inception_v3":
        model = m.inception_v3(weights=None, aux_logits=True, init_weights=False)
    elif name == "lraspp_mobilenet_v3_large":
        model = m.segmentation.lraspp_mobilenet_v3_large(
            weights=None, weights_backbone=None, num_classes=4)
    else:
        model = getattr(m, name)(weights=None)
    randomize_weights(model, SEED)
    return model.eval()


class Guided(torch.autograd.Function):
    """max(x, 0) with guided backprop's backward: relu(g) where the output is positive."""

    @staticmethod
    def forward(ctx, t):
        y = t.clamp(min=0)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved_tensors
        return g.clamp(min=0) * (y > 0).to(g.dtype)


@contextlib.contextmanager
def every_relu_guided():
    """Every ReLU guided while the block runs, as cnnvis guides them: F.relu (which nn.ReLU
    modules call), torch.relu and torch.relu_, in place or not."""
    F = torch.nn.functional
    saved = F.relu, torch.relu, torch.relu_
    F.relu = lambda t, inplace=False: Guided.apply(t)
    torch.relu = torch.relu_ = Guided.apply
    try:
        yield
    finally:
        F.relu, torch.relu, torch.relu_ = saved
