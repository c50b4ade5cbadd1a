#!/usr/bin/python3
"""Reference maps of the CAM family for the C++ tests, from pytorch-grad-cam and Captum 0.8.0.

torchvision's vgg11_bn and resnet18 with cnnvis_random_weights(1234), in float64 and eval mode,
every nn.ReLU set to inplace=False, on one seeded 1x3x64x64 input
    x = torch.randn((1, 3, 64, 64), generator=torch.Generator().manual_seed(7)).double()
and target class 3 (pytorch_grad_cam ClassifierOutputTarget(3): the raw logit, no softmax).
For vgg11_bn at features.27 and target 3 every pixel of the Grad-CAM / XGrad-CAM map is negative
before the ReLU, so those raw maps (and the Grad-CAM final map and Captum's Grad-CAMs) are all
zero; the gradient methods, AblationCAM and Captum are therefore also run on vgg11_bn with
target class 4 (files vgg11_bn_t4_*), whose maps are partly positive and whose logit is > 0.
Target layers: vgg11_bn model.features[27] (ReLU after the last conv/BN, before the last max pool,
output [1, 512, 4, 4]; cnnvis "features.27"), resnet18 model.layer4 (output of the last
BasicBlock, [1, 512, 2, 2]; cnnvis "layer4"), and for LayerCAM also vgg11_bn model.features[13]
(ReLU before the third max pool, [1, 256, 16, 16]; cnnvis "features.13").
Outputs go to tests/fixtures/cam/ (README.md there lists the files).

Needs pytorch-grad-cam at 084273b3f30b54ad0c64cf8020a4337d979a66e0, ttach at
94e579e59a21cbdfbb4f5790502e648008ecf64e, Captum at faac08773131888714b15709b28494ebeea7f6eb
(0.8.0), and Debian's python3-torch, python3-torchvision, python3-tqdm, python3-opencv,
python3-sklearn:
    PGC=/path/to/pytorch-grad-cam TTACH=/path/to/ttach CAPTUM=/path/to/captum \\
        /usr/bin/python3 tests/python/make_cam_fixtures.py
Every map is also recomputed here by hand (numpy / plain autograd) from the activations A and
gradients G of the target layer and asserted equal, so the conventions below are checked.

"raw" maps: what BaseCAM.compute_cam_per_layer has after `cam = get_cam_image(...)` and
`cam = np.maximum(cam, 0)`, just before `scale_cam_image(cam, target_size)`; captured by wrapping
pytorch_grad_cam.base_cam.scale_cam_image during the real `cam(input_tensor=x, targets=...)`
call. Shape [1, h, w] at the layer's resolution, not normalized.
Side facts of these models: vgg11_bn features.27 feeds a 2x2 max pool, so G is nonzero at one
pixel per 2x2 window only; resnet18 layer4 feeds a global average pool, so G_kij = fc.weight[t, k]
/ (h*w) is spatially constant and Grad-CAM == HiResCAM (== XGrad-CAM up to its 1e-7).

Conventions of this pytorch-grad-cam revision (A_k, G_k: activation / gradient of the target
logit for channel k, sums and means over the spatial positions ij; relu(t) = max(t, 0))
-------------------------------------------------------------------------------------------
Every method: raw = relu(sum_k w_k A_k) (per-pixel weights for HiResCAM / LayerCAM).
Grad-CAM:   w_k = mean_ij G_k.
HiResCAM:   raw = relu(sum_k G_k * A_k).
XGrad-CAM:  w_k = sum_ij (G_k * A_k / (sum_ij A_k + 1e-7))   (eps 1e-7 added to the channel sum).
Grad-CAM++: a_kij = G^2 / (2 G^2 + (sum_ij A_k) * G^3 + 1e-6), then a_kij = 0 where G_kij == 0
            (np.where(grads != 0, ...); the comment says "where the activations are 0" but the
            code tests the GRADIENT), w_k = sum_ij relu(G_kij) * a_kij. Raw logits (no exp), and
            sum_ij A_k is the plain channel sum.
LayerCAM:   raw = relu(sum_k relu(G_k) * A_k).
EigenCAM:   no gradients. M = A reshaped to [h*w, C], columns centred (M - M.mean(axis=0), i.e.
            each channel minus its spatial mean); U, S, VT = np.linalg.svd(M, full_matrices=True);
            projection = M @ VT[0] (= S[0] U[:, 0]), reshaped to [h, w], cast to float32
            (np.float32), then relu. The SIGN IS NOT FIXED: it is whatever LAPACK's gesdd
            returns for VT[0] (utils/svd_on_activations.get_2d_projection). The sign-corrected
            variant get_2d_projection_with_sign_correction (flip when |min| > |max|) exists in
            that file but is used only by SegEigenCAM, not EigenCAM. The signed float32
            projection is saved too (<model>_eigencam_projection.npy); compare up to sign.
ScoreCAM:   masks m_k = UpsamplingBilinear2d(size=input HxW)(A) (bilinear, ALIGN_CORNERS=TRUE),
            normalized per channel m_k = (m_k - min m_k) / (max m_k - min m_k + 1e-8);
            s_k = logit_3(model(x * m_k)) (no channel is skipped: a constant channel gives
            m_k = 0 and scores the all-zero input); the scores go through torch.Tensor(scores),
            i.e. are ROUNDED TO FLOAT32, and w = softmax_k(s) over the channels, in float32.
            raw = relu(sum_k w_k A_k) with float32 w times float64 A.
AblationCAM: the target layer is replaced by an AblationLayer that returns the cached activations
            with channel k set to 0 if min(output) == 0 (ReLU outputs, the case here); otherwise
            to min(output) - 1e7, where min is taken over the whole ablation batch AFTER the
            previous rows were modified, so row i of a batch gets (batch min) - (i+1)*1e7.
            Layers before the target are still recomputed. s0 = logit_3 unablated, s_k = logit_3
            with channel k ablated, both rounded to FLOAT32 (np.float32), and
            w_k = (s0 - s_k) / s0 in float32 (divided by s0 itself, not |s0|: a negative s0
            flips every weight). ratio_channels_to_ablate = 1.0 (default): all channels ablated,
            no skipping (a skipped channel would get s_k = s0, i.e. w_k = 0).
final:      cam(...) = scale(mean over layers of relu(resize(scale(raw)))), with
            scale(img) = (img - min) / (1e-7 + max(img - min)) per image, and resize =
            cv2.resize(np.float32(img), (W, H)) (INTER_LINEAR, half-pixel centres, the same as
            torch bilinear align_corners=False for this upsampling), float32 result. The second
            scale matters: the resized map's max is generally < 1.
Captum LayerGradCam(relu_attributions=True): relu(sum_k mean_ij(G_k) A_k), shape [1, 1, h, w].
Captum GuidedGradCam: guided-backprop input gradient (Captum GuidedBackprop, as in
            make_gradient_fixtures.py) times LayerGradCam(relu_attributions=True) upsampled with
            F.interpolate(mode="nearest") (default interpolate_mode; legacy nearest,
            src = floor(dst * in / out); here integer factors, i.e. block replication), no
            normalization; shape [1, 3, 64, 64].
"""
import os
import sys
import warnings

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
for var in ["TTACH", "PGC", "CAPTUM"]:
    sys.path.insert(0, os.environ[var])
sys.path.insert(0, HERE)
import cv2  # noqa: E402,F401  (pytorch-grad-cam needs it)
import pytorch_grad_cam.base_cam as pgc_base  # noqa: E402
from pytorch_grad_cam import (  # noqa: E402
    AblationCAM,
    EigenCAM,
    GradCAM,
    GradCAMPlusPlus,
    HiResCAM,
    LayerCAM,
    ScoreCAM,
    XGradCAM,
)
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402
from captum.attr import GuidedGradCam, LayerGradCam  # noqa: E402
from cnnvis_random_weights import randomize_weights  # noqa: E402
from make_gradient_fixtures import modified_relu_grad  # noqa: E402

SEED, INPUT_SEED, SIZE, TARGET = 1234, 7, 64, 3
TARGET_VGG_EXTRA = 4
SCORECAM_BATCH = 16
OUT = os.path.join(HERE, "..", "fixtures", "cam")
README_LINES = []
METHODS = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "xgradcam": XGradCAM,
           "hirescam": HiResCAM, "layercam": LayerCAM, "eigencam": EigenCAM,
           "scorecam": ScoreCAM, "ablationcam": AblationCAM}


def save(name, arr, how):
    arr = arr.detach().numpy() if torch.is_tensor(arr) else np.asarray(arr)
    arr = arr.astype(np.float64)
    np.save(os.path.join(OUT, name), arr)
    README_LINES.append(f"| `{name}` | {list(arr.shape)} | {how} |")
    print(f"{name:40s} {list(arr.shape)} max|.| {float(np.abs(arr).max()):.6g}")


def check(name, ours, theirs, tol):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
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


# ---- running pytorch-grad-cam, capturing the raw (pre-normalization) map --------------------
_captured = []
_orig_scale_cam_image = pgc_base.scale_cam_image


def _capturing_scale_cam_image(cam, target_size=None):
    if target_size is not None:  # the call in compute_cam_per_layer (not aggregate_multi_layers)
        _captured.append(np.array(cam, copy=True))
    return _orig_scale_cam_image(cam, target_size)


pgc_base.scale_cam_image = _capturing_scale_cam_image


def run_pgc(cls, model, layer, x, target, **attrs):
    cam = cls(model=model, target_layers=[layer])
    for key, value in attrs.items():
        setattr(cam, key, value)
    try:
        _captured.clear()
        final = cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
        assert len(_captured) == 1
        raw = _captured[0]
        acts = cam.activations_and_grads.activations[0].numpy().copy()
        grads = [g.numpy().copy() for g in cam.activations_and_grads.gradients]
    finally:
        cam.activations_and_grads.release()
    assert raw.ndim == 3 and raw.shape == (1,) + acts.shape[2:], raw.shape
    return raw, final, acts, (grads[0] if grads else None)


# ---- hand-made references ---------------------------------------------------------------------
def layer_act_grad(model, layer, x, target):
    """A = layer output, G = d logit_target / d A, by plain autograd."""
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    try:
        out = model(x)
    finally:
        handle.remove()
    grad = torch.autograd.grad(out[0, target], store["a"])[0]
    return store["a"].detach().numpy(), grad.numpy()


def relu(t):
    return np.maximum(t, 0)


def weighted(w, a):
    return relu((w[:, :, None, None] * a).sum(1))


def hand_gradcampp(a, g):
    g2, g3 = g ** 2, g ** 3
    alpha = g2 / (2 * g2 + a.sum((2, 3))[:, :, None, None] * g3 + 1e-6)
    alpha = np.where(g != 0, alpha, 0)
    return weighted((relu(g) * alpha).sum((2, 3)), a)


def hand_eigen_projection(a):
    m = a[0].reshape(a.shape[1], -1).T
    m = m - m.mean(axis=0)
    _, _, vt = np.linalg.svd(m, full_matrices=False)
    return (m @ vt[0]).reshape(1, *a.shape[2:])


def score_of(model, inp, target):
    with torch.no_grad():
        return model(inp)[:, target]


def hand_scorecam(model, x, a, target):
    acts = torch.from_numpy(a)
    up = F.interpolate(acts, size=x.shape[-2:], mode="bilinear", align_corners=True)
    flat = up.flatten(2)
    lo, hi = flat.min(-1)[0][:, :, None, None], flat.max(-1)[0][:, :, None, None]
    masks = (up - lo) / (hi - lo + 1e-8)
    inputs = x[:, None] * masks[:, :, None]
    scores = torch.cat([score_of(model, inputs[0, i:i + SCORECAM_BATCH], target)
                        for i in range(0, inputs.shape[1], SCORECAM_BATCH)])
    w32 = torch.softmax(scores.float(), dim=-1).numpy()[None]  # pytorch-grad-cam's rounding
    w64 = torch.softmax(scores, dim=-1).numpy()[None]
    return weighted(w32, a), weighted(w64, a), scores


def hand_ablationcam(head, a, target):
    acts = torch.from_numpy(a)
    assert float(acts.min()) == 0.0  # -> the "set to 0" branch of AblationLayer
    s0 = score_of(head, acts, target)[0]
    ablated = acts.repeat(acts.shape[1], 1, 1, 1)
    for k in range(acts.shape[1]):
        ablated[k, k] = 0
    sk = torch.cat([score_of(head, ablated[i:i + 64], target) for i in range(0, len(ablated), 64)])
    s0_32, sk_32 = np.float32(s0), sk.numpy().astype(np.float32)
    w32 = ((s0_32 - sk_32) / s0_32)[None]  # float32 arithmetic, as in pytorch-grad-cam
    w64 = ((s0 - sk) / s0).numpy()[None]
    return weighted(w32, a), weighted(w64, a), float(s0)


def hand_final(raw):
    def scale(img):
        img = img - img.min()
        return img / (1e-7 + img.max())
    up = F.interpolate(torch.from_numpy(scale(raw[0]))[None, None], size=(SIZE, SIZE),
                       mode="bilinear", align_corners=False)[0, 0].numpy()
    return scale(relu(up))[None]


def run_model(name, model, layer, cname, head, x, target, methods, prefix):
    """All maps of one model / layer / target; files are named <prefix>_<method>_..."""
    a, g = layer_act_grad(model, layer, x, target)
    print(f"{prefix}: layer {cname} = {type(layer).__name__}, output {list(a.shape)}, "
          f"min {a.min():.3g}; logit_{target} = {float(score_of(model, x, target)[0]):.10g}")
    hand = {"gradcam": weighted(g.mean((2, 3)), a),
            "hirescam": relu((g * a).sum(1)),
            "xgradcam": weighted((g * a).sum((2, 3)) / (a.sum((2, 3)) + 1e-7), a),
            "gradcampp": hand_gradcampp(a, g),
            "layercam": relu((relu(g) * a).sum(1))}
    tgt = f"target={target}"
    for method in methods:
        cls = METHODS[method]
        extra = {"batch_size": SCORECAM_BATCH} if method == "scorecam" else {}
        try:
            raw, final, pa, pg = run_pgc(cls, model, layer, x, target, **extra)
        except Exception as exc:  # noqa: BLE001
            print(f"!! {prefix} {method} failed: {exc!r}; skipped")
            continue
        check(f"{prefix} {method} activations", pa, a, 1e-14)
        if pg is not None:
            check(f"{prefix} {method} gradients", pg, g, 1e-12)
        how = f"{cls.__name__} at {cname}, {tgt}: relu(get_cam_image), before scale_cam_image"
        if method in hand:
            check(f"{prefix} {method} raw", raw, hand[method], 1e-12)
        elif method == "eigencam":
            proj = pgc_base.get_2d_projection(a)
            ours = hand_eigen_projection(a)
            sign = 1.0 if np.abs(proj - ours).max() <= np.abs(proj + ours).max() else -1.0
            check(f"{prefix} eigencam projection (sign {sign:+.0f} vs ours)", proj, sign * ours,
                  1e-5)
            print(f"  eigencam projection: min {proj.min():.4g} max {proj.max():.4g} "
                  f"(|min| > |max|: {abs(proj.min()) > abs(proj.max())})")
            check(f"{prefix} eigencam raw", raw, relu(proj), 0)
            save(f"{prefix}_eigencam_projection.npy", proj,
                 f"get_2d_projection(A) at {cname}: signed float32 first-PC projection "
                 "(sign as LAPACK gives it)")
            how = f"EigenCAM at {cname}: relu(projection), float32"
        elif method == "scorecam":
            r32, r64, scores = hand_scorecam(model, x, a, target)
            check(f"{prefix} scorecam raw (float32 scores)", raw, r32, 1e-6)
            check(f"{prefix} scorecam raw vs pure float64", raw, r64, 1e-3)
            print(f"  scorecam scores: min {float(scores.min()):.4g} "
                  f"max {float(scores.max()):.4g}")
            how += f", batch_size={SCORECAM_BATCH}; float32 weights"
        elif method == "ablationcam":
            r32, r64, s0 = hand_ablationcam(head, a, target)
            check(f"{prefix} ablationcam raw (float32 scores)", raw, r32, 1e-6)
            err = float(np.abs(raw - r64).max() / np.abs(r64).max())
            print(f"  ablationcam: s0 = {s0:.10g}; PGC vs pure float64: max rel err {err:.3g}")
            how += f", default settings; float32 weights; s0 = {s0:.4f}"
        save(f"{prefix}_{method}_raw.npy", raw, how)
        if method == "gradcam":
            check(f"{prefix} gradcam final", final, hand_final(raw), 1e-6)
            save(f"{prefix}_gradcam_final.npy", final,
                 f"GradCAM(...)(input_tensor=x, targets=[ClassifierOutputTarget({target})]), "
                 "float32")
            if name == "vgg11_bn":
                suffix = "" if target == TARGET else f"_t{target}"
                if target == TARGET:
                    save("vgg11_bn_f27_activations.npy", pa, "A: output of features.27")
                save(f"vgg11_bn_f27_gradients{suffix}.npy", pg,
                     f"G: d logit_{target} / d A at features.27")
        if name == "vgg11_bn" and method == "layercam" and target == TARGET:
            layer13 = model.features[13]
            a13, g13 = layer_act_grad(model, layer13, x, target)
            print(f"vgg11_bn features.13 = {layer13}, output {list(a13.shape)}")
            raw13, _, pa13, pg13 = run_pgc(LayerCAM, model, layer13, x, target)
            check("vgg11_bn features.13 activations", pa13, a13, 1e-14)
            check("vgg11_bn layercam f13 raw", raw13, relu((relu(g13) * a13).sum(1)), 1e-12)
            save("vgg11_bn_layercam_f13_raw.npy", raw13,
                 f"LayerCAM at features.13, {tgt}: raw, as above")

    # Captum
    lgc = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    check(f"{prefix} captum LayerGradCam", lgc[:, 0].detach().numpy(), hand["gradcam"], 1e-12)
    save(f"{prefix}_captum_layergradcam.npy", lgc,
         f"Captum LayerGradCam(model, {cname}).attribute(x, {tgt}, relu_attributions=True)")
    ggc = GuidedGradCam(model, layer).attribute(x, target=target)
    ours = modified_relu_grad(model, x, "guided",
                              lambda out: out[:, target].sum()) * F.interpolate(
        torch.from_numpy(hand["gradcam"])[None], size=(SIZE, SIZE), mode="nearest")
    check(f"{prefix} captum GuidedGradCam", ggc.detach().numpy(), ours.numpy(), 1e-12)
    save(f"{prefix}_captum_guidedgradcam.npy", ggc,
         f"Captum GuidedGradCam(model, {cname}).attribute(x, {tgt}) (nearest upsampling)")


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(1)
    warnings.simplefilter("always")
    x = torch.randn((1, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(INPUT_SEED),
                    dtype=torch.float32).double()
    save("input_x.npy", x, "the input: randn((1,3,64,64), seed 7, float32) -> float64")

    vgg, res = make_model("vgg11_bn"), make_model("resnet18")
    vgg_head = lambda t: vgg.classifier(torch.flatten(vgg.avgpool(vgg.features[28:](t)), 1))  # noqa
    res_head = lambda t: res.fc(torch.flatten(res.avgpool(t), 1))  # noqa: E731
    run_model("vgg11_bn", vgg, vgg.features[27], "features.27", vgg_head, x, TARGET,
              list(METHODS), "vgg11_bn")
    run_model("resnet18", res, res.layer4, "layer4", res_head, x, TARGET, list(METHODS),
              "resnet18")
    # For target 3 the vgg11_bn Grad-CAM / XGrad-CAM maps are all zero (every pixel negative
    # before the ReLU), so also a target whose maps are partly positive and whose logit is > 0.
    run_model("vgg11_bn", vgg, vgg.features[27], "features.27", vgg_head, x, TARGET_VGG_EXTRA,
              ["gradcam", "gradcampp", "xgradcam", "hirescam", "layercam", "ablationcam"],
              f"vgg11_bn_t{TARGET_VGG_EXTRA}")

    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"total size of {OUT}: {total} bytes")
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write(README_HEAD + "| file | shape | how |\n|---|---|---|\n")
        f.write("\n".join(README_LINES) + "\n\n" + README_TAIL)


README_HEAD = """# CAM-family reference fixtures (pytorch-grad-cam, Captum 0.8.0)

Made by `tests/python/make_cam_fixtures.py` (its docstring states the conventions in full;
every file is also recomputed there by hand and asserted equal).
torchvision vgg11_bn / resnet18, `randomize_weights(model, 1234)`, float64, eval, every nn.ReLU
set to inplace=False; input `input_x.npy` (1x3x64x64); target class 3 (raw logit).
For vgg11_bn the class-3 Grad-CAM / XGrad-CAM maps are all zero (negative everywhere before the
ReLU), so `vgg11_bn_t4_*` repeat the gradient methods, AblationCAM and Captum for class 4.
Layers: vgg11_bn `features.27` (ReLU before the last max pool, [1, 512, 4, 4]) and, for LayerCAM
only, `features.13` (ReLU before the third max pool, [1, 256, 16, 16]); resnet18 `layer4`
([1, 512, 2, 2]). "raw" = BaseCAM.compute_cam_per_layer's `np.maximum(get_cam_image(...), 0)`,
at layer resolution, before scale_cam_image (no normalization, no resize).
All arrays are float64 .npy (float32 results widened where noted).

Regenerate (pytorch-grad-cam 084273b3f30b54ad0c64cf8020a4337d979a66e0, ttach
94e579e59a21cbdfbb4f5790502e648008ecf64e, Captum faac08773131888714b15709b28494ebeea7f6eb;
Debian python3-torch, -torchvision, -tqdm, -opencv, -sklearn):

    PGC=/path/to/pytorch-grad-cam TTACH=/path/to/ttach CAPTUM=/path/to/captum \\
        /usr/bin/python3 tests/python/make_cam_fixtures.py

"""

README_TAIL = """## Conventions (pytorch-grad-cam 084273b, checked by the script)

A_k, G_k: activation / gradient of the target logit at the layer for channel k; sums/means over
pixels ij. Every raw map is relu(sum_k w_k A_k) (per-pixel weights for HiResCAM / LayerCAM).
vgg11_bn features.27 feeds a 2x2 max pool, so G is nonzero at one pixel per 2x2 window; resnet18
layer4 feeds the global average pool, so G is spatially constant there and Grad-CAM == HiResCAM
(== XGrad-CAM up to its 1e-7).

- Grad-CAM: w_k = mean_ij G_k. HiResCAM: relu(sum_k G_k A_k). LayerCAM: relu(sum_k relu(G_k) A_k).
- XGrad-CAM: w_k = sum_ij G_k A_k / (sum_ij A_k + 1e-7).
- Grad-CAM++: alpha = G^2 / (2 G^2 + (sum_ij A_k) G^3 + 1e-6); alpha := 0 where G == 0 (the
  gradient, despite the code comment about activations); w_k = sum_ij relu(G) alpha.
- EigenCAM: M = A as [h*w, C], each channel minus its spatial mean; projection = M @ VT[0]
  (np.linalg.svd), cast to float32, then relu. Sign NOT fixed (LAPACK's choice);
  `*_eigencam_projection.npy` is the signed projection: compare up to sign.
- ScoreCAM: masks = bilinear upsample of A to 64x64 with align_corners=True
  (nn.UpsamplingBilinear2d), per channel (m - min) / (max - min + 1e-8); s_k = logit(x * m_k),
  no channel skipped; scores rounded to float32 (torch.Tensor(list)); w = softmax over the
  channels of s, in float32. Compare with ~1e-6 relative tolerance or round the same way
  (pure float64 scores/softmax differ from these files by max rel 1.7e-7).
- AblationCAM: the channel is set to 0 when min(layer output) == 0 (ReLU outputs: the case for
  both layers here), else to (batch min) - 1e7, compounding by 1e7 per row in the ablation batch;
  w_k = (s0 - s_k) / s0 with s0, s_k the float32-rounded logits and float32 arithmetic (divided
  by s0, not |s0|); all channels ablated (ratio 1.0, no skipping). The float32 subtraction
  loses digits: pure float64 weights differ from these files by max rel 2.2e-6 (vgg11_bn),
  1.0e-6 (resnet18), 3.0e-7 (vgg11_bn_t4); round the same way or use ~1e-5. s0 < 0 for class 3
  on both models, so those weights have the opposite sign of "score drop / |s0|".
- final: scale(relu(resize(scale(raw)))) with scale(m) = (m - min) / (1e-7 + max(m - min)),
  resize = cv2.resize INTER_LINEAR on float32 (= torch bilinear, align_corners=False).
- Captum LayerGradCam(relu_attributions=True) == Grad-CAM raw, shape [1, 1, h, w].
- Captum GuidedGradCam = GuidedBackprop(x) * F.interpolate(LayerGradCam, (64, 64),
  mode="nearest") (legacy nearest, src = floor(dst * in / out); integer factors here).
"""


if __name__ == "__main__":
    main()
