#!/usr/bin/python3
"""Reference values for cnnvis evaluate's newer metrics (tests/fixtures/metrics/, listed in the
README.md there), from the public implementations:

- ROAD: pytorch-grad-cam 1.5.5's NoisyLinearImputer (its road.py, taken from
  tleemann/road_evaluation) with noise 0, and its PerturbationConfidenceMetric with
  RemoveMostRelevantFirst / RemoveLeastRelevantFirst and ClassifierOutputSoftmaxTarget
  (return_diff=False: the target's probability after imputation);
- confidence: pytorch-grad-cam's CamMultImageConfidenceChange (p(x * map) - p(x));
- Captum 0.8.0's sensitivity_max and infidelity (normalize=True), with perturbation functions
  that draw the noise from a seeded torch.Generator exactly as cnnvis does;
- Quantus (85bc29d) Sparseness, Complexity (abs and normalise_by_max, its defaults) and its
  ssim similarity function (skimage's structural_similarity).

The model is a tiny linear classifier in float32, logits = x.flatten(1) @ W.T + b, with 4 classes
on inputs [1, 3, 12, 10]; the C++ test builds the same model from W and b.

    PGC=/path/to/pytorch-grad-cam TTACH=/path/to/ttach CAPTUM=/path/to/captum \\
    QUANTUS=/path/to/quantus /usr/bin/python3 tests/python/make_metric_fixtures.py
(revisions as in ../shared/REFERENCES.md; Quantus needs Debian's python3-pandas, python3-scipy,
python3-skimage, python3-sklearn, python3-matplotlib, python3-tqdm; pytorch-grad-cam
python3-opencv.)
"""
import os
import sys

for var in ("PGC", "TTACH", "CAPTUM", "QUANTUS"):
    sys.path.insert(0, os.environ[var])

import numpy as np
import torch
from captum.metrics import infidelity, sensitivity_max
from pytorch_grad_cam.metrics.perturbation_confidence import (
    PerturbationConfidenceMetric, RemoveLeastRelevantFirst, RemoveMostRelevantFirst)
from pytorch_grad_cam.metrics.cam_mult_image import CamMultImageConfidenceChange
from pytorch_grad_cam.metrics.road import NoisyLinearImputer
from pytorch_grad_cam.utils.model_targets import ClassifierOutputSoftmaxTarget
import quantus
from quantus.functions.similarity_func import ssim

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "metrics")
os.makedirs(OUT, exist_ok=True)
H, W, C = 12, 10, 4
TARGET = 2
FRACTIONS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def gen(seed):
    return torch.Generator().manual_seed(seed)


def save(name, array):
    np.save(os.path.join(OUT, name + ".npy"), np.ascontiguousarray(array))


x = torch.randn((1, 3, H, W), generator=gen(11))
weight = torch.randn((C, 3 * H * W), generator=gen(12)) * 0.05
bias = torch.randn((C,), generator=gen(13)) * 0.1
saliency = torch.randn((H, W), generator=gen(14))  # distinct values: no ties
second = torch.randn((H, W), generator=gen(15)) + 0.5 * saliency


class Linear(torch.nn.Module):
    def forward(self, t):
        return t.flatten(1) @ weight.T + bias


model = Linear().eval()
save("input", x.numpy())
save("weight", weight.numpy())
save("bias", bias.numpy())
save("map", saliency.numpy())
save("second_map", second.numpy())

# ---- noisy linear imputation, noise 0: the 30% of pixels where the map is largest ----
threshold = np.percentile(saliency.numpy(), 70)
keep = torch.from_numpy(np.float32(saliency.numpy() < threshold))
imputed = NoisyLinearImputer(noise=0)(x[0], keep)
save("imputation_keep", keep.numpy())
save("imputation_result", imputed.numpy())

# ---- ROAD curves (noise 0): the target's probability after removing each fraction ----
n = H * W
curves = []
for remover in (RemoveMostRelevantFirst, RemoveLeastRelevantFirst):
    curve = []
    for f in FRACTIONS:
        percentile = 100 * (1 - f)
        # the number of pixels removed is round(f * n), as cnnvis removes
        m = saliency.numpy() if remover is RemoveMostRelevantFirst else 1 - saliency.numpy()
        removed = int((m >= np.percentile(m, percentile)).sum())
        assert removed == round(f * n), (f, removed)
        metric = PerturbationConfidenceMetric(remover(percentile, NoisyLinearImputer(noise=0)))
        p = metric(x, saliency.numpy()[None], [ClassifierOutputSoftmaxTarget(TARGET)], model,
                   return_diff=False)
        curve.append(float(p[0]))
    curves.append(curve)
save("road_curves", np.array(curves, dtype=np.float64))  # [MoRF, LeRF] x fractions


# ---- confidence: pytorch-grad-cam's CamMultImageConfidenceChange (the normalized input times
# the map scaled to [0, 1], min-max as cnnvis scales it): p(x * map) - p(x) ----
m = saliency.numpy()
scaled = (m - m.min()) / (m.max() - m.min())
change = CamMultImageConfidenceChange()(x, scaled[None], [ClassifierOutputSoftmaxTarget(TARGET)], model)
save("confidence_change", np.array([float(change[0])], dtype=np.float64))

# ---- Captum sensitivity_max: the explanation (x * W[t]) summed over channels ----
def one(inputs):  # Captum passes tuples of tensors
    return inputs[0] if isinstance(inputs, tuple) else inputs


def explanation(inputs):  # a tuple for a tuple, as Captum's attribute() returns
    e = (one(inputs) * weight[TARGET].view(1, 3, H, W)).sum(1, keepdim=True)
    return (e,) if isinstance(inputs, tuple) else e


def uniform_noise(inputs, perturb_radius=0.02):
    t = one(inputs)
    assert t.shape[0] == 10  # all samples in one call, as cnnvis draws them
    return t + (torch.rand(t.shape, generator=gen(21)) * 2 - 1) * perturb_radius


sens = sensitivity_max(explanation, x, perturb_func=uniform_noise, perturb_radius=0.02,
                       n_perturb_samples=10)
save("max_sensitivity", np.array([float(sens[0])], dtype=np.float64))


# ---- Captum infidelity (normalized) of the map, shared by the channels ----
def gaussian(inputs):
    t = one(inputs)
    assert t.shape[0] == 10
    noise = torch.randn(t.shape, generator=gen(22)) * 0.1
    return noise, t - noise


def probabilities(t):
    return torch.softmax(model(t), dim=1)


attribution = saliency.view(1, 1, H, W).expand(1, 3, H, W).contiguous()
infid = infidelity(probabilities, gaussian, x, attribution, target=TARGET, n_perturb_samples=10,
                   normalize=True)
save("infidelity", np.array([float(infid[0])], dtype=np.float64))

# ---- Quantus: sparseness, complexity (abs, normalise_by_max) and SSIM ----
x_np = x.numpy().astype(np.float64)
y_np = np.array([TARGET])
for name, metric in (("sparseness", quantus.Sparseness), ("complexity", quantus.Complexity)):
    scores = []
    for a in (saliency.numpy(), second.numpy()):
        scores.append(metric(disable_warnings=True)(
            model=None, x_batch=x_np, y_batch=y_np, a_batch=a[None, None].astype(np.float64))[0])
    save(name, np.array(scores, dtype=np.float64))
a = quantus.normalise_func.normalise_by_max(saliency.numpy().astype(np.float64))
b = quantus.normalise_func.normalise_by_max(second.numpy().astype(np.float64))
save("ssim", np.array([ssim(a, b)], dtype=np.float64))
print("wrote", sorted(os.listdir(OUT)))
