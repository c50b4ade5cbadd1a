#!/usr/bin/python3
"""Reference attributions of the gradient family for the C++ tests, from Captum 0.8.0.

torchvision's vgg11_bn and resnet18 with cnnvis_random_weights(1234), in float64 and eval mode,
on one seeded 1x3x32x32 normalized-space input
    x = torch.randn((1, 3, 32, 32), generator=torch.Generator().manual_seed(7)).double()
and target class 3. Every nn.ReLU gets inplace=False before Captum sees the model. Outputs go to
tests/fixtures/gradients/ (see the README.md there for the file list). Needs a checkout of
pytorch/captum at faac08773131888714b15709b28494ebeea7f6eb (0.8.0, see ../shared/REFERENCES.md)
and Debian's python3-torch, python3-torchvision, python3-tqdm:
    CAPTUM=/path/to/captum /usr/bin/python3 tests/python/make_gradient_fixtures.py
Every Captum result is also recomputed here by hand (plain autograd) and asserted equal, so the
conventions written below are checked, not just read off Captum's source.

Conventions the C++ side must reproduce
---------------------------------------
Guided backprop (Captum GuidedBackprop): at every nn.ReLU, the gradient w.r.t. the ReLU input
    becomes relu(grad_out * [relu_in > 0]). Deconvolution: relu(grad_out) (the forward mask is
    ignored). Captum installs these as tensor hooks from forward(-pre) hooks; it clones the ReLU
    input in the pre-hook, and it only sees nn.ReLU *modules* (F.relu is not overridden).
    In resnet18 one nn.ReLU module is called twice per BasicBlock; both calls are overridden.
Integrated gradients (Captum IntegratedGradients, multiply_by_inputs=True):
    IG = (x - b) * sum_k w_k * grad F(b + a_k (x - b)), all gradients in one batch of n_steps.
    Quirks: the weights w_k are passed through float32 (`torch.tensor(step_sizes).float()`),
    i.e. w_k = float(float32(w_k)), then multiplied into the float64 gradients.
      gausslegendre: a_k = 0.5 (1 + t_k), w_k = 0.5 v_k with numpy leggauss(n) nodes t / weights
        v (float64 alphas; weights rounded to float32).
      riemann_*: w_k = 1/n (trapezoid: first and last halved), rounded to float32; alphas come
        from torch.linspace in float32 (default dtype) then .tolist():
        trapezoid linspace(0, 1, n), left linspace(0, 1 - 1/n, n),
        middle linspace(1/(2n), 1 - 1/(2n), n), right linspace(1/n, 1, n)
        (the float32 linspace values, i.e. what torch::linspace(..., kFloat32) gives).
    Measured effect of this rounding on these fixtures: using exact float64 weights/alphas
    instead changes IG by max rel 1.8e-9 (gausslegendre, 50) and 1.5e-8 (riemann_trapezoid, 20).
    Convergence delta = sum(IG) - (F(x)[target] - F(b)[target]), per example, shape [N].
NoiseTunnel (fixed-noise convention of cnnvis): for an input batch of N images,
    noise = torch.randn((N, S, 3, H, W), generator=Generator().manual_seed(SEED_NT),
                        dtype=float32).double(),
    sigma_i = noise_level * (x[i].max() - x[i].min()), noisy copy (i, s) = x[i] + sigma_i *
    noise[i, s], batched image-major (the order of x.repeat_interleave(S, 0)), which is the order
    Captum uses. Captum draws its noise in NoiseTunnel._add_noise_to_input with
    `torch.normal(0, stdev_expanded)`; during the NoiseTunnel calls we replace torch.normal by a
    function that checks it got (0, a tensor of 1.0 of shape (N*S, 3, H, W)) (we pass stdevs=1.0)
    and returns (sigma[:, None] * noise).reshape(N*S, 3, H, W).
    smoothgrad = mean_s g_s, smoothgrad_sq = mean_s g_s^2, vargrad = mean_s g_s^2 - (mean_s g_s)^2
    (g_s the attribution of copy s: Saliency(abs=False) = plain gradient, or guided backprop).
Occlusion (Captum Occlusion -> FeatureAblation with use_weights=True), per image, with window
    shape w = (wc, wh, ww) and strides s over the (C, H, W) dims:
    * Along each dim d of length L_d: n_d = ceil((L_d - w_d) / s_d) + 1 window positions, starts
      k * s_d for k = 0 .. n_d - 1 (requires s_d <= w_d unless L_d == w_d). If (L_d - w_d) is not
      a multiple of s_d the last window starts past L_d - w_d and is CLIPPED at the border
      (F.pad with a negative amount); so every element is covered by at least one window and no
      trailing element is left out / 0 / NaN.
    * For each window: x_occ = x * (1 - mask) + baseline * mask (mask = 1 inside the window),
      diff = F(x)[target] - F(x_occ)[target] (positive when occluding lowers the score).
    * attribution[e] = (sum of diff over the windows containing element e)
                       / (number of windows containing element e).
    * Quirk: the division is `total.float() / count` with a float32 count, so Captum's result is
      float32 even for a float64 model (the sums are float64, rounded to float32 before dividing).
      The fixtures are that float32 result widened to float64: compare with ~1e-6 relative
      tolerance, or round the same way.
Layer-unit target: model.features[14] of vgg11_bn is
    MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)
    (the third max pool, output [N, 256, 4, 4] at 32x32; cnnvis layer name "features.14").
    Captum's Neuron* methods accept a callable neuron_selector (0.8.0: _verify_select_neuron) that
    is applied to the layer's OUTPUT (forward hook output); with selector
    out[:, 5].abs().sum((1, 2)) (one value per example) the attribution is the gradient of that
    scalar w.r.t. the input (NeuronGradient), or the same with the guided-backprop ReLU rule at
    every ReLU (NeuronGuidedBackprop; only ReLUs before features.14 matter).
"""
import math
import os
import sys
import warnings

import numpy as np
import torch
import torchvision

sys.path.insert(0, os.environ["CAPTUM"])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from captum.attr import (  # noqa: E402
    Deconvolution,
    GuidedBackprop,
    InputXGradient,
    IntegratedGradients,
    NeuronGradient,
    NeuronGuidedBackprop,
    NoiseTunnel,
    Occlusion,
    Saliency,
)
from captum.attr._utils.approximation_methods import approximation_parameters  # noqa: E402
from cnnvis_random_weights import randomize_weights  # noqa: E402

SEED, INPUT_SEED, SIZE, TARGET = 1234, 7, 32, 3
SEED_NT, NT_SAMPLES, NOISE_LEVEL = 5, 4, 0.15
UNIT_LAYER, UNIT_CHANNEL = 14, 5
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "gradients")
README_LINES = []


def save(name, tensor, how):
    arr = tensor.detach().numpy().astype(np.float64) if torch.is_tensor(tensor) else tensor
    np.save(os.path.join(OUT, name), arr.astype(np.float64))
    README_LINES.append(f"| `{name}` | {list(arr.shape)} | {how} |")
    print(f"{name:40s} {list(arr.shape)} max|.| {float(np.abs(arr).max()):.6g}")


def check(name, ours, theirs, tol):
    err = float((ours - theirs).abs().max() / max(float(theirs.abs().max()), 1e-300))
    print(f"  check {name}: max rel err {err:.3g}")
    assert err <= tol, (name, err)


def make_model(name):
    model = getattr(torchvision.models, name)()
    randomize_weights(model, SEED)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    return model.double().eval()


# ---- hand-made references (plain autograd) -------------------------------------------------
def grad_of(model, x, score_fn=None):
    x = x.detach().clone().requires_grad_(True)
    out = model(x)
    score = out[:, TARGET].sum() if score_fn is None else score_fn(out)
    return torch.autograd.grad(score, x)[0]


class _ModReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, inp, rule):
        out = inp.clamp_min(0)
        ctx.save_for_backward(inp)
        ctx.rule = rule
        return out

    @staticmethod
    def backward(ctx, g):
        (inp,) = ctx.saved_tensors
        if ctx.rule == "guided":
            return (g * (inp > 0).to(g.dtype)).clamp_min(0), None
        return g.clamp_min(0), None  # deconvolution


def modified_relu_grad(model, x, rule, score_fn=None):
    relus = [m for m in model.modules() if isinstance(m, torch.nn.ReLU)]
    for m in relus:
        m.forward = lambda inp, rule=rule: _ModReLU.apply(inp, rule)
    try:
        return grad_of(model, x, score_fn)
    finally:
        for m in relus:
            del m.forward


def hand_ig(model, x, baseline, n_steps, method):
    step_sizes_fn, alphas_fn = approximation_parameters(method)
    # Captum's rounding: weights through float32; riemann alphas are float32 linspace values.
    w = torch.tensor(step_sizes_fn(n_steps)).float().double()
    if method == "gausslegendre":
        t, v = np.polynomial.legendre.leggauss(n_steps)
        alphas = torch.tensor(0.5 * (1 + t), dtype=torch.float64)
        assert torch.equal(w, torch.tensor(0.5 * v).float().double())
    else:
        n = n_steps
        lo, hi = {"riemann_trapezoid": (0, 1), "riemann_left": (0, 1 - 1 / n),
                  "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)),
                  "riemann_right": (1 / n, 1)}[method]
        alphas = torch.linspace(lo, hi, n, dtype=torch.float32).double()
    total = torch.zeros_like(x)
    for a, wk in zip(alphas, w):
        total += wk * grad_of(model, baseline + a * (x - baseline))
    return total * (x - baseline)


def hand_occlusion(model, x, window, strides, baseline=0.0):
    with torch.no_grad():
        f0 = model(x)[:, TARGET]
        dims = x.shape[1:]
        counts = [math.ceil((L - w) / s) + 1 for L, w, s in zip(dims, window, strides)]
        total = torch.zeros_like(x)
        hits = torch.zeros_like(x)
        for kc in range(counts[0]):
            for kh in range(counts[1]):
                for kw in range(counts[2]):
                    mask = torch.zeros_like(x)
                    c0, h0, w0 = kc * strides[0], kh * strides[1], kw * strides[2]
                    mask[:, c0:c0 + window[0], h0:h0 + window[1], w0:w0 + window[2]] = 1
                    diff = f0 - model(x * (1 - mask) + baseline * mask)[:, TARGET]
                    total += diff.view(-1, 1, 1, 1) * mask
                    hits += mask
        assert bool((hits > 0).all())
        return total / hits


def fixed_noise(x):
    n = x.shape[0]
    noise = torch.randn((n, NT_SAMPLES) + tuple(x.shape[1:]),
                        generator=torch.Generator().manual_seed(SEED_NT),
                        dtype=torch.float32).double()
    flat = x.reshape(n, -1)
    sigma = NOISE_LEVEL * (flat.max(1).values - flat.min(1).values)
    return (sigma.view(n, 1, 1, 1, 1) * noise).reshape((n * NT_SAMPLES,) + tuple(x.shape[1:]))


def noise_tunnel(method, x, nt_type, **kwargs):
    """Captum NoiseTunnel with torch.normal replaced by the fixed-noise convention."""
    scaled = fixed_noise(x)
    real_normal = torch.normal

    def fake_normal(mean, std, *args, **kw):
        assert not args and not kw and mean == 0 and torch.is_tensor(std)
        assert tuple(std.shape) == tuple(scaled.shape) and bool((std == 1.0).all())
        return scaled.clone()

    torch.normal = fake_normal
    try:
        return NoiseTunnel(method).attribute(x, nt_type=nt_type, nt_samples=NT_SAMPLES,
                                             stdevs=1.0, target=TARGET, **kwargs)
    finally:
        torch.normal = real_normal


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    warnings.simplefilter("always")
    x = torch.randn((1, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(INPUT_SEED),
                    dtype=torch.float32).double()
    save("input_x.npy", x, "the input: randn((1,3,32,32), seed 7, float32) -> float64")

    models = {name: make_model(name) for name in ["vgg11_bn", "resnet18"]}
    vgg = models["vgg11_bn"]
    print("vgg11_bn.features[14] =", vgg.features[UNIT_LAYER])

    # 1-2: guided backprop, deconvolution
    for name, model in models.items():
        g = GuidedBackprop(model).attribute(x, target=TARGET)
        check(f"{name} guided", modified_relu_grad(model, x, "guided"), g, 1e-12)
        save(f"{name}_guided.npy", g, "GuidedBackprop(model).attribute(x, target=3)")
        d = Deconvolution(model).attribute(x, target=TARGET)
        check(f"{name} deconv", modified_relu_grad(model, x, "deconv"), d, 1e-12)
        save(f"{name}_deconv.npy", d, "Deconvolution(model).attribute(x, target=3)")

    # 3: input x gradient
    ixg = InputXGradient(vgg).attribute(x, target=TARGET)
    check("vgg11_bn input_x_gradient", x * grad_of(vgg, x), ixg, 1e-12)
    save("vgg11_bn_input_x_gradient.npy", ixg, "InputXGradient(model).attribute(x, target=3)")

    # 4: integrated gradients
    ig_runs = [("ig_gausslegendre", torch.zeros_like(x), 50, "gausslegendre", True),
               ("ig_riemann_trapezoid", torch.zeros_like(x), 20, "riemann_trapezoid", False),
               ("ig_riemann_left", torch.zeros_like(x), 20, "riemann_left", False),
               ("ig_riemann_right", torch.zeros_like(x), 20, "riemann_right", False),
               ("ig_riemann_middle", torch.zeros_like(x), 20, "riemann_middle", False),
               ("ig_baseline_const", torch.full_like(x, -0.5), 16, "gausslegendre", False)]
    for tag, base, n_steps, method, want_delta in ig_runs:
        attr, delta = IntegratedGradients(vgg).attribute(
            x, baselines=base, target=TARGET, n_steps=n_steps, method=method,
            return_convergence_delta=True)
        check(f"vgg11_bn {tag}", hand_ig(vgg, x, base, n_steps, method), attr, 1e-12)
        with torch.no_grad():
            hand_delta = attr.sum() - (vgg(x)[0, TARGET] - vgg(base)[0, TARGET])
        assert abs(float(hand_delta - delta[0])) < 1e-10
        bl = "zeros" if float(base.abs().max()) == 0 else "full_like(x, -0.5)"
        print(f"  {tag}: convergence delta {float(delta[0]):.10g}  (sum IG {float(attr.sum()):.10g})")
        save(f"vgg11_bn_{tag}.npy", attr, f"IntegratedGradients, baselines={bl}, "
             f"n_steps={n_steps}, method=\"{method}\", target=3")
        if want_delta:
            save(f"vgg11_bn_{tag}_delta.npy", delta.reshape(1),
                 f"its convergence delta (return_convergence_delta=True)")

    # 5: noise tunnel with the fixed noise
    noisy = x.repeat_interleave(NT_SAMPLES, 0) + fixed_noise(x)
    grads = torch.stack([grad_of(vgg, noisy[s:s + 1])[0] for s in range(NT_SAMPLES)])
    hand = {"smoothgrad": grads.mean(0, keepdim=True),
            "smoothgrad_sq": (grads ** 2).mean(0, keepdim=True)}
    hand["vargrad"] = hand["smoothgrad_sq"] - hand["smoothgrad"] ** 2
    for nt_type in ["smoothgrad", "smoothgrad_sq", "vargrad"]:
        a = noise_tunnel(Saliency(vgg), x, nt_type, abs=False)
        check(f"vgg11_bn {nt_type} vanilla", hand[nt_type], a, 1e-12)
        save(f"vgg11_bn_{nt_type}_vanilla.npy", a,
             f"NoiseTunnel(Saliency(model)), nt_type=\"{nt_type}\", abs=False, fixed noise")
    a = noise_tunnel(GuidedBackprop(vgg), x, "smoothgrad")
    hand_guided = torch.stack([modified_relu_grad(vgg, noisy[s:s + 1], "guided")[0]
                               for s in range(NT_SAMPLES)]).mean(0, keepdim=True)
    check("vgg11_bn smoothgrad guided", hand_guided, a, 1e-12)
    save("vgg11_bn_smoothgrad_guided.npy", a,
         "NoiseTunnel(GuidedBackprop(model)), nt_type=\"smoothgrad\", fixed noise")

    # 6: occlusion
    for tag, window, strides in [("w8_s4", (3, 8, 8), (3, 4, 4)), ("w8_s8", (3, 8, 8), (3, 8, 8)),
                                 (None, (3, 8, 8), (3, 5, 5))]:
        a = Occlusion(vgg).attribute(x, target=TARGET, sliding_window_shapes=window,
                                     strides=strides, baselines=0)
        print(f"  occlusion {window} {strides}: Captum dtype {a.dtype}")
        check(f"vgg11_bn occlusion {window} {strides}", hand_occlusion(vgg, x, window, strides),
              a.double(), 1e-6)
        if tag is not None:
            save(f"vgg11_bn_occlusion_{tag}.npy", a,
                 f"Occlusion, sliding_window_shapes={window}, strides={strides}, baselines=0, "
                 "target=3 (float32 result)")

    # 7: layer-unit target: |activation| sum of channel 5 of features.14
    def selector(out):
        return out[:, UNIT_CHANNEL].abs().sum((1, 2))

    def unit_score(model_out):  # hand version: hook the layer output
        return captured["sel"].sum()

    captured = {}
    handle = vgg.features[UNIT_LAYER].register_forward_hook(
        lambda m, i, o: captured.__setitem__("sel", selector(o)))
    try:
        hand_unit = grad_of(vgg, x, unit_score)
        hand_unit_guided = modified_relu_grad(vgg, x, "guided", unit_score)
    finally:
        handle.remove()
    layer = vgg.features[UNIT_LAYER]
    a = NeuronGuidedBackprop(vgg, layer).attribute(x, neuron_selector=selector)
    check("vgg11_bn unit guided", hand_unit_guided, a, 1e-12)
    save("vgg11_bn_unit_guided_f14_5_abssum.npy", a,
         "NeuronGuidedBackprop(model, features[14]), selector out[:, 5].abs().sum((1, 2))")
    a = NeuronGradient(vgg, layer).attribute(x, neuron_selector=selector)
    check("vgg11_bn unit grad", hand_unit, a, 1e-12)
    save("vgg11_bn_unit_grad_f14_5_abssum.npy", a,
         "NeuronGradient(model, features[14]), selector out[:, 5].abs().sum((1, 2))")

    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("# Gradient-family reference fixtures (Captum 0.8.0)\n\n"
                "Made by `tests/python/make_gradient_fixtures.py` (its docstring states the exact\n"
                "conventions: IG weight rounding, fixed NoiseTunnel noise, occlusion windows).\n"
                "torchvision vgg11_bn / resnet18, `randomize_weights(model, 1234)`, float64, eval,\n"
                "every nn.ReLU set to inplace=False; input `input_x.npy`; target class 3.\n"
                "NoiseTunnel: SEED_NT=5, S=4 samples, noise_level=0.15 (sigma = 0.15*(max-min)).\n"
                "Unit target: layer \"features.14\" (MaxPool2d), channel 5, sum of |activation|.\n"
                "All arrays are float64 .npy.\n\n"
                "Regenerate (Captum checkout at faac08773131888714b15709b28494ebeea7f6eb):\n\n"
                "    CAPTUM=/path/to/captum /usr/bin/python3 tests/python/make_gradient_fixtures.py\n\n"
                "| file | shape | how |\n|---|---|---|\n")
        f.write("\n".join(README_LINES) + "\n")


if __name__ == "__main__":
    main()
