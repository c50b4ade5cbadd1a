#!/usr/bin/python3
"""Reference layer-wise relevance propagation (LRP) results for the C++ tests, from zennit 0.5.1
and from the "classic collection" (utkuozbulak/pytorch-cnn-visualizations, src/LRP.py).

Models: torchvision vgg11 (no BN), vgg11_bn, resnet18 (zennit, 64x64 input) and alexnet (classic,
224x224 input), each with cnnvis_random_weights(1234), in float64 and eval mode, every nn.ReLU set
to inplace=False. Target class 3. Outputs go to tests/fixtures/lrp/ (its README.md lists the
files and repeats the conventions below).

Needs zennit at 3121bb223061506834ca68abad3eefc792dea999 (0.5.1; the package is under src/),
pytorch-cnn-visualizations at ba22fa07c9f31964e6cfa669e80f3461e11c4ebc, and Debian's
python3-torch (1.13), python3-torchvision (0.14), python3-numpy, python3-matplotlib and
python3-pil (the classic LRP.py imports misc_functions, which imports matplotlib and PIL):
    ZENNIT=/path/to/zennit CLASSIC=/path/to/pytorch-cnn-visualizations \\
        /usr/bin/python3 tests/python/make_lrp_fixtures.py
Nothing of either checkout is copied here: zennit is imported from $ZENNIT/src, and the classic
LRP.py is loaded by path from $CLASSIC/src (importlib; its directory is appended to sys.path so
that its `from misc_functions import ...` works). Only the numbers are committed.
Every zennit result and the classic result are also recomputed here by an explicit layer-by-layer
implementation in plain torch (functional conv / linear and their transposes, no hooks, no
autograd through the network) and asserted equal to 1e-10 (max abs error / max abs value), so the
conventions below are checked, not only read off the source. The epsilon-plus-flat run of each
model is done twice and asserted bit-identical (all of them twice took too long on 2 cores).

Input
-----
    mean = torch.tensor((0.485, 0.456, 0.406)), std = torch.tensor((0.229, 0.224, 0.225))
    (float32 tensors), u = torch.rand((1, 3, S, S), generator=torch.Generator().manual_seed(7))
    (float32, in [0, 1)), x = ((u - mean[:, None, None]) / std[:, None, None]).double(),
i.e. the normalization is done in FLOAT32 and the result widened to float64. S = 64 for zennit
(saved: input_x64.npy), S = 224 for the classic AlexNet. The 224 input (1.2 MB) is not saved; the
C++ side regenerates it with at::make_generator<at::CPUGeneratorImpl>(7) and
torch::rand({1, 3, 224, 224}, gen, torch::kFloat), which draws the same numbers as Python's
torch.rand with torch.Generator().manual_seed(7) (cnnvis's randomize_weights already relies on
this); input_x224_corner.npy holds x224[:, :, :8, :8] to check that, and the README has its sum.

Start relevance ("attr_output"): R_out = one_hot(3) * output, i.e. the target logit at class 3
and 0 elsewhere (relevance at the output equals the logit), computed from the output of the
forward pass that zennit runs WITH the canonizers applied (see the BN quirk below; for vgg11 it
equals the plain model's logit bit for bit).

zennit conventions (3121bb2; x = a layer's input, R = relevance at its output, R_in = at its input)
---------------------------------------------------------------------------------------------
stab(z) = z + eps * sign0(z), sign0(z) = +1 for z >= 0 and -1 for z < 0 (zero counts as +1);
    eps = 1e-6 for every rule here (Epsilon's epsilon and every other rule's stabilizer).
f(x; W, b): the layer's own linear map (conv2d with its stride/padding, or linear); f^T(W, s):
    its transpose (the input gradient of f for output gradient s). W+ = W.clamp(min=0),
    W- = W.clamp(max=0), likewise b+, b-, x+, x-.
Epsilon (nn.Linear in all four composites):   z = f(x; W, b)  (bias included: it absorbs
    relevance, or adds some where its sign is opposite to z's);
    R_in = x * f^T(W, R / stab(z)).
ZPlus (Conv in EpsilonPlusFlat / wsquare-plus): z = f(x+; W+, b+) + f(x-; W-, 0);
    R_in = x+ * f^T(W+, s) + x- * f^T(W-, s), s = R / stab(z). Only b+ enters (b- is dropped),
    so ZPlus only ever absorbs relevance (z >= b+ >= 0).
AlphaBeta(2, 1) (Conv in EpsilonAlpha2Beta1, INCLUDING the first conv, whose input x has
    negative entries): zp = f(x+; W+, b+) + f(x-; W-, 0), zn = f(x+; W-, b-) + f(x-; W+, 0);
    R_in = 2 (x+ f^T(W+, R/stab(zp)) + x- f^T(W-, R/stab(zp)))
           - (x+ f^T(W-, R/stab(zn)) + x- f^T(W+, R/stab(zn))).
Gamma(0.25) (Conv except the first in EpsilonGammaBox; zennit's "generalized" gamma):
    Wp = W + g W+, Wn = W + g W-, bp = b + g b+, bn = b + g b-  (g = 0.25: the FULL weight plus
    g times one part, on weight AND bias); z = f(x; W, b) (unmodified output);
    dp = f(x+; Wp, bp) + f(x-; Wn, 0), dn = f(x+; Wn, bn) + f(x-; Wp, 0);
    sp = R * [z > 0] / stab(dp), sn = R * [z < 0] / stab(dn) (no relevance where z == 0);
    R_in = x+ f^T(Wp, sp) + x- f^T(Wn, sp) + x+ f^T(Wn, sn) + x- f^T(Wp, sn).
ZBox(L, H) (first conv in EpsilonGammaBox), L = (0 - mean) / std, H = (1 - mean) / std as
    [1, 3, 1, 1] float64 tensors (computed in float64), broadcast to the input's shape:
    zennit computes f(x; W, b) - f(L; W+, b+) - f(H; W-, b-), in which the bias cancels
    (b - b+ - b- = 0), so z = f(x; W, 0) - f(L; W+, 0) - f(H; W-, 0);
    R_in = x f^T(W, s) - L f^T(W+, s) - H f^T(W-, s), s = R / stab(z). Padding is zero for x, L
    and H alike, so only in-image positions contribute.
Flat (first Linear-type layer in EpsilonPlusFlat): z = f(1; 1, 0) (ones input, all-ones weight,
    bias zero) = the number of IN-IMAGE inputs in each receptive field (27 for an interior 3x3x3
    window, fewer at the border because of zero padding); R_in = f^T(1, R / stab(z)) (same value
    in all input channels).
WSquare (first layer of wsquare-plus): z = f(1; W*W, 0); R_in = f^T(W*W, R / stab(z)). zennit's
    WSquare squares EVERY parameter, so its default puts b*b in the denominator; the paper's rule
    has no bias, so the composite here uses WSquare(zero_params=['bias']). The denominator again
    counts only in-image inputs (border windows have smaller sums of W*W).
Norm (zennit.layer.Sum and AvgPool incl. nn.AdaptiveAvgPool2d): z = f(x), R_in = x * f^T(R/stab(z)).
    AdaptiveAvgPool2d(7) on VGG's 2x2 feature map (64 px input) UPSAMPLES: output index i along
    each axis averages inputs floor(i*2/7) .. ceil((i+1)*2/7) - 1, i.e. rows/cols 0,1,2 -> input
    0, row/col 3 -> mean of both, 4,5,6 -> input 1; 49 outputs send relevance back to 4 inputs.
    resnet18's AdaptiveAvgPool2d(1) is the global mean.
Pass (Activation, i.e. nn.ReLU, and BatchNorm): R_in = R (relevance passes unchanged, NOT masked by
    the ReLU; the layer above already multiplies by its input, which is zero where ReLU cut).
No rule (plain gradient): MaxPool2d (all relevance of an output goes to the argmax of its window;
    overlapping windows (resnet18's 3x3/2 pool) ADD; ties only occur in all-zero windows after a
    ReLU, whose output relevance is 0 anyway), Dropout (identity in eval), the functional flatten
    (reshape), torch.stack.
Rule assignment: zennit's layer_map_base (Activation -> Pass, Sum -> Norm, AvgPool -> Norm,
    BatchNorm -> Pass), then Convolution -> ZPlus / Gamma / AlphaBeta(2,1), nn.Linear -> Epsilon.
    SpecialFirstLayerMapComposite (EpsilonPlusFlat, EpsilonGammaBox, wsquare-plus): while walking
    model.named_modules() (registration pre-order, the root and containers included), the FIRST
    module matching a type of first_map gets the first-map rule and no later module does:
    features.0 for VGG, conv1 for resnet18. first_map types: zennit.types.Linear (Conv or
    nn.Linear) for EpsilonPlusFlat (Flat) and wsquare-plus (WSquare); Convolution only for
    EpsilonGammaBox (ZBox). EpsilonAlpha2Beta1 has no first-layer rule.
Canonizers: VGG (vgg11 and vgg11_bn): zennit.torchvision.VGGCanonizer (= SequentialMergeBatchNorm;
    a no-op for vgg11). resnet18: ResNetCanonizer = SequentialMergeBatchNorm + the BasicBlock
    canonizer, whose forward is out = bn2(conv2(relu(bn1(conv1(x))))), identity = x or
    downsample(x), y = relu(Sum()(torch.stack([identity, out], dim=-1))), so the residual sum is a
    Sum module with the Norm rule: R_identity = identity * R_s / stab(identity + out),
    R_out = out * R_s / stab(identity + out) (R_s = relevance at the sum = at y, ReLU passes), and
    the block input gets R_x = R_in(conv1 branch) + R_in(downsample conv) (or + R_identity).
BN merge (SequentialMergeBatchNorm, every BN directly after a conv in leaf order: all 8 BNs of
    vgg11_bn, all 20 of resnet18, downsample.1 included): scale = gamma / sqrt(running_var + eps),
    W' = W * scale[:, None, None, None], b' = (b - running_mean) * scale + beta (b = 0 for the
    bias-free resnet convs). QUIRK: the BN module stays in the forward with running_mean = 0,
    running_var = 1, weight = 1, bias = 0 but its eps (1e-5) unchanged, so it computes
    x / sqrt(1 + 1e-5), not x: every merged BN scales the forward activations by
    (1 + 1e-5) ** -0.5 (relevance passes unchanged). The canonized logits therefore differ from
    the plain model's (logit_3: vgg11_bn by 3.9e-5 relative, resnet18 by 6.1e-5), the start
    relevance uses the canonized logit, and the rules see the scaled activations. A C++ version
    must keep this factor to match these files to ~1e-10; an exact BN fold differs by the amounts
    printed by this script (README: "exact-BN-fold deviation", ~4e-5 / ~6e-5 max rel).
Intermediate relevance ("_at_<layer>" files): the relevance at a module's OUTPUT tensor (what
    flows into the consumers of that tensor, summed over all consumers), captured by a forward hook
    on the module (registered before zennit's) that calls output.register_hook(...) on the output
    tensor; the tensor hook receives the full accumulated gradient of zennit's modified backward
    w.r.t. that tensor. Checked against the explicit implementation (equal to 1e-10), and its sum
    is asserted within 2% of the input relevance's sum (below these layers EpsilonPlusFlat only
    has ZPlus, which absorbs a little via b+, and conservative steps).
    vgg11 features.10 and vgg11_bn features.14 are the MaxPool2d after the ReLU of the third
    stage (not ReLUs), output [1, 256, 8, 8]; the relevance at that ReLU's output is this routed
    back to the argmax of each 2x2 window (a conservative step). resnet18 layer2: the output of
    layer2.1 (its final ReLU), [1, 128, 8, 8], consumed by both layer3.0.conv1 and
    layer3.0.downsample.0 (their two relevances add).

Classic collection (LRP.py at ba22fa0, LRP(model).generate(x, target_class=3)) on AlexNet 224
-------------------------------------------------------------------------------------------
layers = features[0..12] + classifier[0..6] (20 layers, index k); forward_output[0] = x,
forward_output[k+1] = layer_k(forward_output[k].detach()), with the features output flattened
([1, 9216]) before the classifier; model.avgpool is NOT called (identity at 224: 6x6 -> 6x6).
LRP_per_layer[20] = output * one_hot where one_hot = torch.FloatTensor(1, 1000) (FLOAT32) with a 1
at class 3; float64 * float32 promotes to float64, so nothing breaks and R_20 = logit_3 at class 3.
For k = 19 down to 1 (range(1, 20)[::-1]; layer 0 is never processed):
  Linear, Conv2d, MaxPool2d: on a deep copy of the layer, weight and bias (where they exist, i.e.
    not for MaxPool2d) become p + 0.05 * p.clamp(min=0) ("gamma"); z = layer'(a) + 1e-9 (plain
    +1e-9, NOT sign-aware); R_k = a * grad_a sum(z * (R_{k+1} / z).detach()) = a * f'^T(R_{k+1}/z)
    (for MaxPool: R_{k+1}/z routed to the argmax, so R_k = a * R / (max + 1e-9) there).
  anything else (ReLU, Dropout): R_k = R_{k+1}.
  At k = 12 the relevance R_13 is reshaped to [1, 256, 6, 6] first.
So LRP_per_layer[k] is the relevance at the INPUT of layer k = at the OUTPUT of layer k-1:
  R1 = output of features.0 (first conv; equal to the output of features.1, the ReLU),
  [1, 64, 55, 55];
  R7 = output of features.6 (the third conv; = output of features.7), [1, 384, 13, 13];
  R13 = output of features.12 (the last MaxPool; = output of avgpool, identity at 224) = input of
  classifier.0, [1, 256, 6, 6] (kept reshaped, as the loop leaves it).
The ReLU inplace flag does not matter here (checked: inplace=True gives bit-identical results).
"""
import importlib.util
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
os.environ.setdefault("MPLBACKEND", "Agg")
_ZENNIT = os.environ["ZENNIT"]
sys.path.insert(0, os.path.join(_ZENNIT, "src") if os.path.isdir(
    os.path.join(_ZENNIT, "src", "zennit")) else _ZENNIT)
sys.path.insert(0, HERE)
import zennit  # noqa: E402
import zennit.types  # noqa: E402
from zennit.attribution import Gradient  # noqa: E402
from zennit.composites import (  # noqa: E402
    EpsilonAlpha2Beta1,
    EpsilonGammaBox,
    EpsilonPlusFlat,
    SpecialFirstLayerMapComposite,
    layer_map_base,
)
from zennit.rules import Epsilon, WSquare, ZPlus  # noqa: E402
from zennit.torchvision import ResNetCanonizer, VGGCanonizer  # noqa: E402
from zennit.types import Convolution  # noqa: E402
from cnnvis_random_weights import randomize_weights  # noqa: E402

_CLASSIC_SRC = os.path.join(os.environ["CLASSIC"], "src")
sys.path.append(_CLASSIC_SRC)  # LRP.py does `from misc_functions import ...`
_spec = importlib.util.spec_from_file_location("classic_lrp", os.path.join(_CLASSIC_SRC, "LRP.py"))
classic_lrp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(classic_lrp)

SEED, INPUT_SEED, TARGET = 1234, 7, 3
SIZE_ZENNIT, SIZE_CLASSIC = 64, 224
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
EPS = 1e-6          # zennit's default epsilon / stabilizer
GAMMA = 0.25        # zennit's default gamma (EpsilonGammaBox)
BN_EPS = 1e-5       # torchvision BatchNorm2d eps
CLASSIC_GAMMA, CLASSIC_EPS = 0.05, 1e-9
TOL = 1e-10
OUT = os.path.join(HERE, "..", "fixtures", "lrp")
README_LINES = []
SUMMARY = []        # (model, composite, logit_canon, sum R_in, exact-fold deviation)
LOGITS = {}         # model -> (plain logit_3, canonized logit_3)
LEDGERS = {}        # (model, composite) -> list of (layer, rule, sum R_out, sum R_in)


def save(name, arr, how):
    arr = arr.detach().numpy() if torch.is_tensor(arr) else np.asarray(arr)
    arr = arr.astype(np.float64)
    np.save(os.path.join(OUT, name), arr)
    README_LINES.append(f"| `{name}` | {list(arr.shape)} | {how} |")
    print(f"{name:48s} {list(arr.shape)} sum {float(arr.sum()):+.10g} "
          f"max|.| {float(np.abs(arr).max()):.6g}")


def check(name, ours, theirs, tol=TOL):
    ours = ours.detach().numpy() if torch.is_tensor(ours) else np.asarray(ours)
    theirs = theirs.detach().numpy() if torch.is_tensor(theirs) else np.asarray(theirs)
    assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
    err = float(np.abs(ours - theirs).max() / max(float(np.abs(theirs).max()), 1e-300))
    print(f"  check {name}: max rel err {err:.3g}")
    assert err <= tol, (name, err)
    return err


def make_model(name):
    model = getattr(torchvision.models, name)()
    randomize_weights(model, SEED)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    return model.double().eval()


def make_input(size):
    mean, std = torch.tensor(MEAN), torch.tensor(STD)  # float32, as the arithmetic below
    u = torch.rand((1, 3, size, size), generator=torch.Generator().manual_seed(INPUT_SEED))
    return ((u - mean[:, None, None]) / std[:, None, None]).double()


def box_bounds():
    mean = torch.tensor(MEAN, dtype=torch.float64)[None, :, None, None]
    std = torch.tensor(STD, dtype=torch.float64)[None, :, None, None]
    return (0 - mean) / std, (1 - mean) / std


# ---- zennit ---------------------------------------------------------------------------------
def attr_output(out):
    return torch.eye(1000, dtype=out.dtype)[[TARGET]] * out.detach()


def canonizers_for(name):
    return [ResNetCanonizer()] if name.startswith("resnet") else [VGGCanonizer()]


def make_composite(cname, model_name):
    can = canonizers_for(model_name)
    if cname == "epsilon-plus-flat":
        return EpsilonPlusFlat(canonizers=can)
    if cname == "epsilon-gamma-box":
        low, high = box_bounds()
        return EpsilonGammaBox(low=low, high=high, canonizers=can)
    if cname == "epsilon-alpha2-beta1":
        return EpsilonAlpha2Beta1(canonizers=can)
    if cname == "wsquare-plus":
        return SpecialFirstLayerMapComposite(
            layer_map=layer_map_base() + [(Convolution, ZPlus()), (torch.nn.Linear, Epsilon())],
            first_map=[(zennit.types.Linear, WSquare(zero_params=["bias"]))],
            canonizers=can)
    raise ValueError(cname)


def zennit_lrp(model, model_name, cname, x, capture=None):
    """(output, input relevance, relevance at capture's output tensor or None)."""
    store = []
    handle = None
    if capture is not None:
        def hook(module, inp, out):
            out.register_hook(lambda grad: store.append(grad.detach().clone()))
        handle = capture.register_forward_hook(hook)  # before zennit's hooks (registered in call)
    try:
        out, rel = Gradient(model, make_composite(cname, model_name))(x.clone(), attr_output)
    finally:
        if handle is not None:
            handle.remove()
    assert capture is None or len(store) == 1, len(store)
    return out.detach(), rel.detach(), (store[0] if store else None)


# ---- explicit LRP in plain torch --------------------------------------------------------------
def stab(z, eps=EPS):
    return z + eps * torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


def fwd(mod, x, w, b=None):
    if isinstance(mod, torch.nn.Conv2d):
        return F.conv2d(x, w, b, mod.stride, mod.padding, mod.dilation, mod.groups)
    return F.linear(x, w, b)


def fwd_t(mod, w, s, shape):
    """Transpose of fwd(mod, ., w) applied to s (the input gradient for output gradient s)."""
    if isinstance(mod, torch.nn.Conv2d):
        return torch.nn.grad.conv2d_input(shape, w, s, mod.stride, mod.padding, mod.dilation,
                                          mod.groups)
    return s @ w


def pos(t):
    return t.clamp(min=0)


def neg(t):
    return t.clamp(max=0)


def rule_epsilon(mod, w, b, x, r):
    return x * fwd_t(mod, w, r / stab(fwd(mod, x, w, b)), x.shape)


def rule_zplus(mod, w, b, x, r):
    z = fwd(mod, pos(x), pos(w), pos(b)) + fwd(mod, neg(x), neg(w))
    s = r / stab(z)
    return pos(x) * fwd_t(mod, pos(w), s, x.shape) + neg(x) * fwd_t(mod, neg(w), s, x.shape)


def rule_alpha2beta1(mod, w, b, x, r):
    zp = fwd(mod, pos(x), pos(w), pos(b)) + fwd(mod, neg(x), neg(w))
    zn = fwd(mod, pos(x), neg(w), neg(b)) + fwd(mod, neg(x), pos(w))
    sp, sn = r / stab(zp), r / stab(zn)
    shape = x.shape
    return (2 * (pos(x) * fwd_t(mod, pos(w), sp, shape) + neg(x) * fwd_t(mod, neg(w), sp, shape))
            - (pos(x) * fwd_t(mod, neg(w), sn, shape) + neg(x) * fwd_t(mod, pos(w), sn, shape)))


def rule_gamma(mod, w, b, x, r):
    z = fwd(mod, x, w, b)
    wp, wn = w + GAMMA * pos(w), w + GAMMA * neg(w)
    bp, bn = b + GAMMA * pos(b), b + GAMMA * neg(b)
    dp = fwd(mod, pos(x), wp, bp) + fwd(mod, neg(x), wn)
    dn = fwd(mod, pos(x), wn, bn) + fwd(mod, neg(x), wp)
    sp = r * (z > 0).to(r) / stab(dp)
    sn = r * (z < 0).to(r) / stab(dn)
    return (pos(x) * fwd_t(mod, wp, sp, x.shape) + neg(x) * fwd_t(mod, wn, sp, x.shape)
            + pos(x) * fwd_t(mod, wn, sn, x.shape) + neg(x) * fwd_t(mod, wp, sn, x.shape))


def rule_zbox(mod, w, b, x, r):
    low, high = (t.expand_as(x) for t in box_bounds())
    z = fwd(mod, x, w) - fwd(mod, low, pos(w)) - fwd(mod, high, neg(w))
    s = r / stab(z)
    return (x * fwd_t(mod, w, s, x.shape) - low * fwd_t(mod, pos(w), s, x.shape)
            - high * fwd_t(mod, neg(w), s, x.shape))


def rule_flat(mod, w, b, x, r):
    ones_w = torch.ones_like(w)
    return fwd_t(mod, ones_w, r / stab(fwd(mod, torch.ones_like(x), ones_w)), x.shape)


def rule_wsquare(mod, w, b, x, r):
    w2 = w * w
    return fwd_t(mod, w2, r / stab(fwd(mod, torch.ones_like(x), w2)), x.shape)


# composite -> (first-layer rule, conv rule); nn.Linear always gets Epsilon
RULES = {
    "epsilon-plus-flat": (rule_flat, rule_zplus),
    "epsilon-gamma-box": (rule_zbox, rule_gamma),
    "epsilon-alpha2-beta1": (rule_alpha2beta1, rule_alpha2beta1),
    "wsquare-plus": (rule_wsquare, rule_zplus),
}
CONSERVATIVE = {rule_flat, rule_wsquare, rule_zbox}


def route_maxpool(mod, x, r):
    """Gradient of max_pool2d: each output's relevance to its argmax, ADDED where shared."""
    _, idx = F.max_pool2d(x, mod.kernel_size, mod.stride, mod.padding, mod.dilation,
                          mod.ceil_mode, return_indices=True)
    out = torch.zeros(x.shape[0], x.shape[1], x.shape[2] * x.shape[3], dtype=x.dtype)
    out.scatter_add_(2, idx.flatten(2), r.flatten(2))
    return out.view_as(x)


def pool_matrix(n_in, n_out):
    p = torch.zeros(n_out, n_in, dtype=torch.float64)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        p[i, start:end] = 1.0 / (end - start)
    return p


def adaptive_pool_norm(mod, x, r):
    """zennit Norm on AdaptiveAvgPool2d, with an explicit bin matrix (checked against F)."""
    size = mod.output_size if isinstance(mod.output_size, tuple) else (mod.output_size,) * 2
    ph, pw = pool_matrix(x.shape[2], size[0]), pool_matrix(x.shape[3], size[1])
    z = ph @ x @ pw.T
    assert float((z - F.adaptive_avg_pool2d(x, size)).abs().max()) < 1e-13
    return x * (ph.T @ (r / stab(z)) @ pw)


def merged(conv, bn):
    """SequentialMergeBatchNorm's fold of bn into conv."""
    scale = bn.weight.detach() / (bn.running_var + bn.eps) ** 0.5
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(
        conv.out_channels, dtype=torch.float64)
    return (conv.weight.detach() * scale[:, None, None, None],
            (bias - bn.running_mean) * scale + bn.bias.detach())


def params(mod):
    bias = mod.bias.detach() if mod.bias is not None else torch.zeros(
        mod.weight.shape[0], dtype=torch.float64)
    return mod.weight.detach(), bias


BN_QUIRK = (1 + BN_EPS) ** -0.5   # what zennit's "identity" BN computes after the merge


class Ledger:
    def __init__(self):
        self.rows = []

    def add(self, name, rule, r_out, r_in):
        self.rows.append((name, rule, float(r_out.sum()), float(r_in.sum()),
                          float(r_out.abs().sum())))
        if rule in ("Pass", "MaxPool", "Norm", "Flat", "WSquare", "ZBox", "reshape", "stack"):
            dev = abs(float(r_in.sum()) - float(r_out.sum()))
            assert dev <= 1e-4 * float(r_out.abs().sum()) + 1e-12, (name, rule, dev)


def rule_name(fn):
    return {rule_flat: "Flat", rule_wsquare: "WSquare", rule_zbox: "ZBox", rule_zplus: "ZPlus",
            rule_gamma: "Gamma", rule_alpha2beta1: "AlphaBeta", rule_epsilon: "Epsilon"}[fn]


def explicit_vgg(model, x, cname, bn_quirk=True):
    """Returns (logits, input relevance, {layer name: relevance at its output}, ledger)."""
    first_rule, conv_rule = RULES[cname]
    feats = list(model.features)
    layers = [(f"features.{i}", m) for i, m in enumerate(feats)] + [("avgpool", model.avgpool),
                                                                      ("flatten", None)]
    layers += [(f"classifier.{i}", m) for i, m in enumerate(model.classifier)]
    wb = {}
    for i, m in enumerate(feats):
        if isinstance(m, torch.nn.Conv2d):
            nxt = feats[i + 1]
            wb[f"features.{i}"] = merged(m, nxt) if isinstance(nxt, torch.nn.BatchNorm2d) \
                else params(m)
    for i, m in enumerate(model.classifier):
        if isinstance(m, torch.nn.Linear):
            wb[f"classifier.{i}"] = params(m)
    acts = []
    a = x
    with torch.no_grad():
        for name, m in layers:
            acts.append(a)
            if name in wb:
                a = fwd(m, a, *wb[name])
            elif isinstance(m, torch.nn.BatchNorm2d):
                a = a * BN_QUIRK if bn_quirk else a
            elif m is None:
                a = torch.flatten(a, 1)
            elif isinstance(m, (torch.nn.ReLU, torch.nn.MaxPool2d, torch.nn.Dropout,
                                torch.nn.AdaptiveAvgPool2d)):
                a = m(a)
            else:
                raise TypeError(m)
    logits = a
    r = attr_output(logits)
    at, ledger, first_name = {}, Ledger(), "features.0"
    for (name, m), a_in in zip(reversed(layers), reversed(acts)):
        at[name] = r
        if name in wb:
            fn = first_rule if name == first_name else (
                conv_rule if isinstance(m, torch.nn.Conv2d) else rule_epsilon)
            r_in, rname = fn(m, *wb[name], a_in, r), rule_name(fn)
        elif m is None:
            r_in, rname = r.view(a_in.shape), "reshape"
        elif isinstance(m, torch.nn.MaxPool2d):
            r_in, rname = route_maxpool(m, a_in, r), "MaxPool"
        elif isinstance(m, torch.nn.AdaptiveAvgPool2d):
            r_in, rname = adaptive_pool_norm(m, a_in, r), "Norm"
        else:
            r_in, rname = r, "Pass"
        ledger.add(name, rname, r, r_in)
        r = r_in
    return logits, r, at, ledger


def explicit_resnet(model, x, cname, bn_quirk=True):
    first_rule, conv_rule = RULES[cname]
    q = BN_QUIRK if bn_quirk else 1.0
    ledger, at = Ledger(), {}

    def conv_bn(conv, bn, a, rule):
        w, b = merged(conv, bn)
        return fwd(conv, a, w, b), (conv, w, b, rule)

    def back(spec, a_in, r, name):
        conv, w, b, rule = spec
        r_in = rule(conv, w, b, a_in, r)
        ledger.add(name, rule_name(rule), r, r_in)
        return r_in

    with torch.no_grad():
        z0, stem = conv_bn(model.conv1, model.bn1, x, first_rule)
        a1 = F.relu(z0 * q)
        a2 = model.maxpool(a1)
        blocks, a = [], a2
        for lname in ["layer1", "layer2", "layer3", "layer4"]:
            for bi, blk in enumerate(getattr(model, lname)):
                h_pre, c1 = conv_bn(blk.conv1, blk.bn1, a, conv_rule)
                h = F.relu(h_pre * q)
                o_pre, c2 = conv_bn(blk.conv2, blk.bn2, h, conv_rule)
                out = o_pre * q
                if blk.downsample is not None:
                    i_pre, cd = conv_bn(blk.downsample[0], blk.downsample[1], a, conv_rule)
                    ident = i_pre * q
                else:
                    cd, ident = None, a
                s = ident + out
                y = F.relu(s)
                blocks.append((f"{lname}.{bi}", a, h, c1, c2, cd, ident, out, s))
                a = y
        pooled = a.mean((2, 3), keepdim=True)
        feat = torch.flatten(pooled, 1)
        w_fc, b_fc = params(model.fc)
        logits = fwd(model.fc, feat, w_fc, b_fc)

    r = attr_output(logits)
    at["fc"] = r
    r_feat = rule_epsilon(model.fc, w_fc, b_fc, feat, r)
    ledger.add("fc", "Epsilon", r, r_feat)
    at["avgpool"] = r_feat.view(pooled.shape)
    r = adaptive_pool_norm(model.avgpool, a, r_feat.view(pooled.shape))
    ledger.add("avgpool", "Norm", r_feat, r)
    for name, a_in, h, c1, c2, cd, ident, out, s in reversed(blocks):
        at[name] = r                                   # relevance at the block output
        if name.endswith(".1"):
            at[name.split(".")[0]] = r                 # = at the stage (layerN) output
        r_s = r                                        # final ReLU: Pass
        r_ident, r_out = ident * r_s / stab(s), out * r_s / stab(s)     # Sum: Norm
        ledger.add(f"{name}.canonizer_sum", "Norm", r_s, r_ident + r_out)
        r_h = back(c2, h, r_out, f"{name}.conv2")      # bn2 Pass, conv2 rule
        r_x = back(c1, a_in, r_h, f"{name}.conv1")     # relu Pass, bn1 Pass, conv1 rule
        if cd is not None:
            r_x = r_x + back(cd, a_in, r_ident, f"{name}.downsample.0")
        else:
            r_x = r_x + r_ident
        r = r_x
    at["maxpool"] = r
    r = route_maxpool(model.maxpool, a1, r)
    ledger.add("maxpool", "MaxPool", at["maxpool"], r)
    at["conv1"] = r
    r = back(stem, x, r, "conv1")
    return logits, r, at, ledger


# ---- classic collection -------------------------------------------------------------------------
def explicit_classic(model, x):
    """Plain re-statement of LRP.generate: returns {k: LRP_per_layer[k]}."""
    layers = list(model.features) + list(model.classifier)
    n_feat = len(model.features)
    acts, a = [x], x
    with torch.no_grad():
        for k, m in enumerate(layers):
            if k == n_feat:
                feat_shape = a.shape
                a = torch.flatten(a, 1)
                acts[-1] = a
            a = m(a)
            acts.append(a)
    one_hot = torch.zeros(1, 1000, dtype=torch.float64)
    one_hot[0, TARGET] = 1
    rel = {len(layers): a * one_hot}
    for k in range(len(layers) - 1, 0, -1):
        r = rel[k + 1]
        if k == n_feat - 1:
            r = rel[k + 1] = r.reshape(feat_shape)
        m, a_in = layers[k], acts[k]
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)):
            w, b = params(m)
            w, b = w + CLASSIC_GAMMA * pos(w), b + CLASSIC_GAMMA * pos(b)
            z = fwd(m, a_in, w, b) + CLASSIC_EPS
            rel[k] = a_in * fwd_t(m, w, r / z, a_in.shape)
        elif isinstance(m, torch.nn.MaxPool2d):
            z = m(a_in) + CLASSIC_EPS
            rel[k] = a_in * route_maxpool(m, a_in, r / z)
        else:
            rel[k] = r
    return rel, a


def run_classic():
    print("== classic LRP.py on alexnet, 224 px")
    x = make_input(SIZE_CLASSIC)
    model = make_model("alexnet")
    with torch.no_grad():
        logits = model(x)
        feat = model.features(x)
        assert feat.shape == (1, 256, 6, 6)
        assert torch.equal(model.avgpool(feat), feat)  # the classic skips avgpool: identity here
    lrp = classic_lrp.LRP(model).generate(x, target_class=TARGET)
    assert lrp[0] is None and lrp[20].dtype == torch.float64
    # inplace ReLUs (torchvision's default) change nothing in this loop (and the second run is
    # bit-identical)
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    for m in relus:
        m.inplace = True
    lrp3 = classic_lrp.LRP(model).generate(x, target_class=TARGET)
    for m in relus:
        m.inplace = False
    assert all(np.array_equal(lrp[k].numpy(), lrp3[k].numpy()) for k in range(1, 21))
    with torch.no_grad():
        assert torch.equal(model(x), logits)
    rel, out = explicit_classic(model, x)
    check("alexnet logits (classic forward vs model)", out, logits, 1e-13)
    for k in range(1, 21):
        assert lrp[k].shape == rel[k].shape, (k, lrp[k].shape, rel[k].shape)
        err = float((lrp[k] - rel[k]).abs().max() / max(float(rel[k].abs().max()), 1e-300))
        assert err <= TOL, (k, err)
    check("classic R1 vs explicit", lrp[1], rel[1])
    check("classic R13 vs explicit", lrp[13], rel[13])
    assert lrp[1].shape == (1, 64, 55, 55) and lrp[7].shape == (1, 384, 13, 13)
    assert lrp[13].shape == (1, 256, 6, 6)
    logit = float(logits[0, TARGET])
    sums = {k: float(lrp[k].sum()) for k in (20, 19, 14, 13, 7, 1)}
    print(f"  alexnet logit_3 {logit:.10g}; sum LRP_per_layer[k]: {sums}")
    save("alexnet_logits.npy", logits, "plain forward of alexnet on the 224 input (float64)")
    save("input_x224_corner.npy", x[:, :, :8, :8],
         "x224[:, :, :8, :8] of the regenerated 224 input (check for the C++ torch::rand)")
    save("alexnet_classic_R1_sum.npy", lrp[1].sum(1),
         "classic LRP_per_layer[1].sum(dim=1): relevance at the output of features.0 (= of "
         "features.1), channel sum")
    save("alexnet_classic_R7_sum.npy", lrp[7].sum(1),
         "classic LRP_per_layer[7].sum(dim=1): relevance at the output of features.6 (= of "
         "features.7), channel sum")
    save("alexnet_classic_R13.npy", lrp[13],
         "classic LRP_per_layer[13]: relevance at the output of features.12 (last MaxPool; = "
         "avgpool output) = input of classifier.0, reshaped [1, 256, 6, 6]")
    save("alexnet_classic_R13_sum.npy", lrp[13].sum(1), "channel sum of the above")
    return logit, sums, float(x.sum())


# ---- zennit runs ------------------------------------------------------------------------------
CAPTURE = {"vgg11": "features.10", "vgg11_bn": "features.14", "resnet18": "layer2"}
COMPOSITES = {"vgg11": ["epsilon-plus-flat", "epsilon-gamma-box", "epsilon-alpha2-beta1",
                        "wsquare-plus"],
              "vgg11_bn": ["epsilon-plus-flat", "epsilon-gamma-box", "epsilon-alpha2-beta1"],
              "resnet18": ["epsilon-plus-flat", "epsilon-gamma-box", "epsilon-alpha2-beta1"]}
COMPOSITE_DESC = {
    "epsilon-plus-flat": "EpsilonPlusFlat(): Flat first layer, ZPlus conv, Epsilon linear",
    "epsilon-gamma-box": "EpsilonGammaBox(low=L, high=H): ZBox first conv, Gamma(0.25) conv, "
                         "Epsilon linear",
    "epsilon-alpha2-beta1": "EpsilonAlpha2Beta1(): AlphaBeta(2,1) every conv (first included), "
                            "Epsilon linear",
    "wsquare-plus": "custom: WSquare(zero_params=['bias']) first layer, ZPlus conv, Epsilon "
                    "linear",
}


def run_zennit_model(name, x):
    print(f"== zennit on {name}, {SIZE_ZENNIT} px")
    model = make_model(name)
    with torch.no_grad():
        plain = model(x)
    save(f"{name}_logits.npy", plain, f"plain forward of {name} (no canonizer), float64")
    explicit = explicit_resnet if name.startswith("resnet") else explicit_vgg
    modules = dict(model.named_modules())
    canon_logit = None
    for cname in COMPOSITES[name]:
        cap_name = CAPTURE[name] if cname == "epsilon-plus-flat" else None
        cap = modules[cap_name] if cap_name else None
        out, rel, at = zennit_lrp(model, name, cname, x, cap)
        if cname == "epsilon-plus-flat":  # (all composites once took too long on 2 cores)
            out2, rel2, at2 = zennit_lrp(model, name, cname, x, cap)
            assert torch.equal(out, out2) and torch.equal(rel, rel2), "not bit-identical on rerun"
            assert torch.equal(at, at2)
        logits, ref, ref_at, ledger = explicit(model, x, cname)
        check(f"{name} {cname} canonized logits vs explicit", logits, out, 1e-12)
        check(f"{name} {cname} input relevance vs explicit", rel, ref)
        canon_logit = float(out[0, TARGET])
        total = float(rel.sum())
        ratio = total / canon_logit
        print(f"  {name} {cname}: logit_3 {canon_logit:.10g} (plain "
              f"{float(plain[0, TARGET]):.10g}), sum R_in {total:.10g}, ratio {ratio:.6g}")
        assert rel.shape == x.shape and np.isfinite(rel.numpy()).all()
        assert 0.5 < ratio < 1.5, ratio  # same sign as the logit, plausible magnitude
        dev = None
        if name != "vgg11" and cname == "epsilon-plus-flat":
            _, ref_exact, _, _ = explicit(model, x, cname, bn_quirk=False)
            dev = float((ref_exact - rel).abs().max() / rel.abs().max())
            print(f"  exact-BN-fold deviation from zennit: max rel {dev:.3g}")
        SUMMARY.append((name, cname, canon_logit, total, dev))
        LEDGERS[(name, cname)] = ledger.rows
        save(f"{name}_{cname}.npy", rel,
             f"zennit Gradient({COMPOSITE_DESC[cname]})(x, one_hot(3) * output): input relevance")
        if cap is not None:
            assert at.shape == ref_at[cap_name].shape, (at.shape, ref_at[cap_name].shape)
            check(f"{name} {cname} relevance at {cap_name} output vs explicit", at,
                  ref_at[cap_name])
            print(f"  sum of relevance at {cap_name} output {float(at.sum()):.10g} "
                  f"({type(cap).__name__}, {list(at.shape)})")
            # only ZPlus (absorbing b+ only), Flat, MaxPool, Pass (and Norm, Sum) lie below
            assert abs(float(at.sum()) - total) <= 0.02 * abs(float(at.sum()))
            save(f"{name}_{cname}_at_{cap_name}.npy", at,
                 f"same run: relevance at the OUTPUT tensor of {cap_name} "
                 f"({type(cap).__name__}), via a tensor hook")
    with torch.no_grad():  # the canonizers were reverted
        assert torch.equal(model(x), plain)
    LOGITS[name] = (float(plain[0, TARGET]), canon_logit)


def fmt_dev(name, dev):
    if dev is not None:
        return f"{dev:.2g}"
    return "n/a (no BN)" if name == "vgg11" else "not computed (like epsilon-plus-flat)"


def ledger_text(rows, skip_pass=True):
    lines = ["| layer | rule | sum R at output | sum R at input |", "|---|---|---|---|"]
    for name, rule, r_out, r_in, _ in rows:
        if skip_pass and rule in ("Pass", "reshape"):
            continue
        lines.append(f"| {name} | {rule} | {r_out:+.8g} | {r_in:+.8g} |")
    return "\n".join(lines)


def main():
    start = time.time()
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        if f.endswith(".npy"):
            os.remove(os.path.join(OUT, f))
    torch.set_num_threads(2)
    x = make_input(SIZE_ZENNIT)
    save("input_x64.npy", x, "the 64 px input: ((rand(1,3,64,64; seed 7) - mean) / std) in "
                             "float32, then .double()")
    for name in ["vgg11", "vgg11_bn", "resnet18"]:
        run_zennit_model(name, x)
        print(f"  ({time.time() - start:.0f} s)")
    classic_logit, classic_sums, x224_sum = run_classic()

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT) if
                f.endswith(".npy"))
    print(f"total size of the .npy files in {OUT}: {total} bytes; {time.time() - start:.0f} s")
    print("summary: model, composite, logit_3 (canonized), sum input relevance, ratio, "
          "exact-fold deviation")
    for name, cname, logit, s, dev in SUMMARY:
        print(f"  {name:9s} {cname:22s} {logit:+.10g} {s:+.10g} {s / logit:.6f} {dev}")

    summary = ["| model | composite | logit_3 (start relevance) | sum of input relevance | "
               "ratio | exact-BN-fold deviation (max rel) |", "|---|---|---|---|---|---|"]
    for name, cname, logit, s, dev in SUMMARY:
        summary.append(f"| {name} | {cname} | {logit:+.10g} | {s:+.10g} | {s / logit:.6f} | "
                       f"{fmt_dev(name, dev)} |")
    logit_lines = [f"- {name}: plain model logit_3 = {p:+.12g}; canonized (zennit's forward, the "
                   f"start relevance) = {c:+.12g}" for name, (p, c) in LOGITS.items()]
    logit_lines.append(
        f"- alexnet (classic, 224 px, no canonizer): logit_3 = {classic_logit:+.12g}")
    classic_line = ", ".join(f"R{k}: {v:+.10g}" for k, v in classic_sums.items())
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README_HEAD + "| file | shape | how |\n|---|---|---|\n")
        f.write("\n".join(README_LINES) + "\n\n")
        f.write("## Logits\n\n" + "\n".join(logit_lines) + "\n\n")
        f.write("## Sums\n\n" + "\n".join(summary) + "\n\n")
        f.write("Classic AlexNet, sum of LRP_per_layer[k]: " + classic_line + ".\n")
        f.write(f"Sum of the regenerated 224 input x224: {x224_sum:+.12g}.\n\n")
        f.write("Relevance ledger of vgg11 / epsilon-plus-flat (explicit implementation, "
                "non-Pass layers; the difference between the two sums of a row is what the "
                "layer's bias absorbs or adds):\n\n")
        f.write(ledger_text(LEDGERS[("vgg11", "epsilon-plus-flat")]) + "\n\n")
        f.write("Same for resnet18 / epsilon-plus-flat (backward order; a block's conv1 and "
                "downsample.0 rows both feed the block input):\n\n")
        f.write(ledger_text(LEDGERS[("resnet18", "epsilon-plus-flat")]) + "\n\n")
        f.write(README_TAIL)


README_HEAD = """# LRP reference fixtures (zennit 0.5.1, classic pytorch-cnn-visualizations LRP.py)

Made by `tests/python/make_lrp_fixtures.py` (its docstring states the conventions in full; every
zennit result and the classic result are recomputed there by an explicit layer-by-layer plain-torch
implementation and asserted equal to 1e-10; the epsilon-plus-flat run of each model is repeated
and asserted bit-identical). torchvision vgg11, vgg11_bn, resnet18 (zennit, 64x64) and alexnet
(classic, 224x224), `randomize_weights(model, 1234)`, float64, eval, every nn.ReLU set to
inplace=False;
target class 3; start relevance = one_hot(3) * logit (the logit at class 3, zero elsewhere).
Input (both sizes): `u = torch.rand((1, 3, S, S), generator=torch.Generator().manual_seed(7))`
(float32), `x = ((u - mean[:, None, None]) / std[:, None, None]).double()` with
`mean = torch.tensor((0.485, 0.456, 0.406))`, `std = torch.tensor((0.229, 0.224, 0.225))`
(float32: normalized in float32, then widened). `input_x64.npy` is the 64 px input; the 224 px
input (1.2 MB) is not stored: regenerate it in C++ with
`torch::rand({1, 3, 224, 224}, at::make_generator<at::CPUGeneratorImpl>(7), torch::kFloat)` (the
same numbers as Python's torch.rand with that seed, as cnnvis's randomize_weights relies on) and
check it against `input_x224_corner.npy` and the sum below.
All arrays are float64 .npy.

Regenerate (zennit 3121bb223061506834ca68abad3eefc792dea999, pytorch-cnn-visualizations
ba22fa07c9f31964e6cfa669e80f3461e11c4ebc; Debian python3-torch 1.13, -torchvision 0.14, -numpy,
-matplotlib, -pil):

    ZENNIT=/path/to/zennit CLASSIC=/path/to/pytorch-cnn-visualizations \\
        /usr/bin/python3 tests/python/make_lrp_fixtures.py

Composites (zennit.composites; canonizers: `[VGGCanonizer()]` for vgg11 and vgg11_bn (a no-op for
vgg11), `[ResNetCanonizer()]` for resnet18):
- `epsilon-plus-flat`: `EpsilonPlusFlat()` (epsilon = stabilizer = 1e-6).
- `epsilon-gamma-box`: `EpsilonGammaBox(low=L, high=H)`, L = (0 - mean) / std, H = (1 - mean) / std
  as [1, 3, 1, 1] float64 tensors (computed in float64), gamma 0.25.
- `epsilon-alpha2-beta1`: `EpsilonAlpha2Beta1()`.
- `wsquare-plus` (vgg11 only): `SpecialFirstLayerMapComposite(layer_map=layer_map_base() +
  [(Convolution, ZPlus()), (torch.nn.Linear, Epsilon())], first_map=[(zennit.types.Linear,
  WSquare(zero_params=['bias']))], canonizers=[VGGCanonizer()])`.
Each `<model>_<composite>.npy` is the second result of
`zennit.attribution.Gradient(model, composite)(x, lambda out: one_hot(3) * out)`, i.e. the
relevance at the input, [1, 3, 64, 64].

"""

README_TAIL = """## Conventions (zennit 3121bb2, checked by the script's explicit implementation)

x: a layer's input, R: relevance at its output, R_in: at its input. f(x; W, b) is the layer's own
linear map (conv2d with the layer's stride / padding, or linear), f^T(W, s) its transpose (input
gradient for output gradient s). W+ = W.clamp(min=0), W- = W.clamp(max=0), likewise b, x.

- Stabilizer (every rule): stab(z) = z + 1e-6 * sign0(z), sign0(z) = +1 for z >= 0, -1 for z < 0
  (zero counts as positive). Epsilon's epsilon is the same function with the same 1e-6.
- Rule per layer type (zennit's layer_map_base, then the composite's entries): ReLU (any
  Activation) -> Pass (R_in = R, not masked); BatchNorm -> Pass; zennit.layer.Sum -> Norm; AvgPool
  incl. AdaptiveAvgPool2d -> Norm; Conv2d -> ZPlus / Gamma / AlphaBeta(2,1) by composite;
  nn.Linear -> Epsilon. MaxPool2d, Dropout, flatten, torch.stack get NO rule: the plain gradient
  (MaxPool: relevance to the window's argmax, summed where overlapping windows share an argmax
  as in resnet18's 3x3/2 pool; ties only occur in all-zero windows after a ReLU, whose output
  relevance is 0 anyway; Dropout: identity in eval).
- First layer (SpecialFirstLayerMapComposite): walking `model.named_modules()` in registration
  pre-order (root and containers included), the FIRST module matching a first_map type gets the
  first-map rule, no later one does: `features.0` (VGG), `conv1` (resnet18). first_map type is
  zennit.types.Linear (Conv or nn.Linear) for EpsilonPlusFlat (Flat) and wsquare-plus (WSquare),
  Convolution only for EpsilonGammaBox (ZBox). EpsilonAlpha2Beta1 has no first-layer rule: its
  first conv gets AlphaBeta on the raw (partly negative) input, so the x- terms matter there.
- Epsilon: z = f(x; W, b) (bias included: absorbs relevance, or adds some where its sign is
  opposite to z's, e.g. vgg11 classifier.0 below); R_in = x f^T(W, R / stab(z)).
- ZPlus: z = f(x+; W+, b+) + f(x-; W-, 0); R_in = x+ f^T(W+, s) + x- f^T(W-, s), s = R / stab(z).
  Only the positive bias part enters, b- is dropped; so ZPlus only absorbs (z >= b+ >= 0).
- AlphaBeta(2, 1): zp = f(x+; W+, b+) + f(x-; W-, 0), zn = f(x+; W-, b-) + f(x-; W+, 0);
  R_in = 2 (x+ f^T(W+, R/stab(zp)) + x- f^T(W-, R/stab(zp)))
  - (x+ f^T(W-, R/stab(zn)) + x- f^T(W+, R/stab(zn))). b+ in zp, b- in zn.
- Gamma (zennit's generalized gamma, g = 0.25): Wp = W + g W+, Wn = W + g W-, bp = b + g b+,
  bn = b + g b- (the full parameter plus g times one part; weight AND bias); z = f(x; W, b);
  dp = f(x+; Wp, bp) + f(x-; Wn, 0), dn = f(x+; Wn, bn) + f(x-; Wp, 0);
  sp = R [z > 0] / stab(dp), sn = R [z < 0] / stab(dn) (nothing flows where z == 0);
  R_in = x+ f^T(Wp, sp) + x- f^T(Wn, sp) + x+ f^T(Wn, sn) + x- f^T(Wp, sn).
  With x >= 0 (all layers but the first) only the x+ terms remain. The full bias (b + g b+) sits
  in the denominator, so a negative bias ADDS relevance (sum R_in can exceed sum R).
- ZBox(L, H): zennit computes f(x; W, b) - f(L; W+, b+) - f(H; W-, b-), where the bias cancels, so
  z = f(x; W, 0) - f(L; W+, 0) - f(H; W-, 0) >= 0; R_in = x f^T(W, s) - L f^T(W+, s) - H f^T(W-, s),
  s = R / stab(z); L and H are broadcast to the input's shape and zero-padded like x (only in-image
  positions count). Conservative.
- Flat: z = f(1; 1, 0) = number of in-image inputs in the receptive field (all input channels;
  27 inside a 3x3x3 window, fewer at the zero-padded border); R_in = f^T(1, R / stab(z)); bias
  ignored; the three input channels get the same value. Conservative.
- WSquare (as used here, zero_params=['bias']): z = f(1; W*W, 0), R_in = f^T(W*W, R / stab(z));
  the denominator sums W*W over in-image inputs only. zennit's default WSquare() would also put
  b*b into z (it squares every parameter); the paper's rule has no bias. Conservative.
- Norm (Sum, AdaptiveAvgPool2d): z = f(x), R_in = x f^T(R / stab(z)). AdaptiveAvgPool2d(7) on
  VGG's 2x2 map at 64 px UPSAMPLES: output index i averages inputs floor(2i/7) .. ceil(2(i+1)/7)-1
  (i = 0,1,2 -> 0; i = 3 -> mean of 0 and 1; i = 4,5,6 -> 1, per axis); the 49 outputs send their
  relevance back to the 4 inputs. resnet18's AdaptiveAvgPool2d(1) is the global mean.
- ResNetCanonizer: BasicBlock forward becomes out = bn2(conv2(relu(bn1(conv1(x))))), identity = x
  or downsample(x), y = relu(Sum()(torch.stack([identity, out], dim=-1))): the residual sum is a
  Sum module with the Norm rule: R_identity = identity * R_y / stab(identity + out),
  R_out = out * R_y / stab(identity + out) (R_y passes the final ReLU); the block input gets
  R_in(conv1 branch) + R_in(downsample.0) (or + R_identity without downsample).
- BN merge (SequentialMergeBatchNorm / VGGCanonizer; every BN right after a conv in leaf order:
  all 8 of vgg11_bn, all 20 of resnet18 incl. downsample.1): scale = gamma / sqrt(running_var +
  eps), W' = W * scale (per output channel), b' = (b - running_mean) * scale + beta (b = 0 for
  bias-free convs). QUIRK: the BN module stays in the forward with mean 0, var 1, weight 1, bias 0
  but eps = 1e-5, i.e. it computes x / sqrt(1 + 1e-5), not x. So each merged BN scales the forward
  activations by (1 + 1e-5) ** -0.5 (relevance passes it unchanged), the canonized logits differ
  from the plain model's (see Logits), and the start relevance is the CANONIZED logit. To match
  these files to ~1e-10 a C++ version must keep that factor; an exact fold deviates by the
  "exact-BN-fold deviation" in the Sums table.
- Not conservative: Epsilon and ZPlus (bias absorbs), AlphaBeta (bias, and the alpha/beta split
  only sums to R when b = 0), Gamma (bias absorbs or adds). Conservative up to the 1e-6
  stabilizer: Flat, WSquare (no bias), ZBox, Norm, Pass, MaxPool (the script asserts this per
  layer in its explicit implementation).
- `_at_<layer>` files: relevance at that module's OUTPUT tensor (summed over all of its
  consumers), captured with a forward hook on the module (registered before zennit's hooks) that
  calls `output.register_hook(...)`, so it gets the full gradient of zennit's modified backward
  w.r.t. that tensor; equal to the explicit implementation's relevance at that point to 1e-10,
  and its sum is within 2% of the input relevance's (only ZPlus, absorbing via b+, and
  conservative steps lie below; see the ledgers).
  vgg11 `features.10` and vgg11_bn `features.14` are the MaxPool2d after the third stage's last
  ReLU (NOT ReLUs), [1, 256, 8, 8]; the relevance at that ReLU's output (16x16) is this routed to
  each 2x2 window's argmax. resnet18 `layer2` = output of layer2.1's final ReLU, [1, 128, 8, 8],
  consumed by layer3.0.conv1 and layer3.0.downsample.0.

## Classic collection (pytorch-cnn-visualizations src/LRP.py at ba22fa0) on alexnet, 224 px

`LRP(model).generate(x, target_class=3)`, loaded by path from $CLASSIC/src (not copied):
- layers = features[0..12] + classifier[0..6] (index k = 0..19); the forward runs each layer on the
  detached previous output, flattens the features output ([1, 9216]) before the classifier, and
  never calls `model.avgpool` (an identity at 224: 6x6 -> 6x6).
- LRP_per_layer[20] = output * one_hot, one_hot a float32 `torch.FloatTensor(1, 1000)`; float64
  times float32 promotes to float64, so the float64 model works unchanged and R_20 = logit_3 at
  class 3, 0 elsewhere.
- for k = 19 .. 1 (`range(1, 20)[::-1]`; layer 0 is never processed): for Linear, Conv2d and
  MaxPool2d, on a deep copy, weight and bias (if present; MaxPool has none) become
  p + 0.05 p.clamp(min=0); z = layer'(a) + 1e-9 (a plain +1e-9, not sign-aware);
  R_k = a * f'^T(R_{k+1} / z) (MaxPool: R/z routed to the argmax, summed over overlapping 3x3/2
  windows, times a). ReLU and Dropout: R_k = R_{k+1}. At k = 12, R_13 is first reshaped to
  [1, 256, 6, 6] (so the returned LRP_per_layer[13] has that shape).
- LRP_per_layer[k] = relevance at the INPUT of layer k = OUTPUT of layer k-1 (cnnvis name):
  k = 1: features.0 (the first conv; same values as features.1, the ReLU), [1, 64, 55, 55];
  k = 7: features.6 (the third conv; = features.7), [1, 384, 13, 13];
  k = 13: features.12 (last MaxPool; = avgpool, identity at 224) = input of classifier.0,
  [1, 256, 6, 6].
- The ReLU inplace flag makes no difference to this loop (checked bit-identical).
"""


if __name__ == "__main__":
    main()
