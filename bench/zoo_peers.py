#!/usr/bin/python3
"""The Python tools on torchvision's models, timed as their users call them (issue 17's table):
the same architecture and seeded weights as `cnnvis bench --model ARCH --random-weights 0`
(tests/python/cnnvis_random_weights.py), the same seeded input (torch.rand with seed 0, then
ImageNet's normalization, as cnnvis bench without --image), target class 3, batch 1, 224 x 224,
at the layer cnnvis uses by default (VGG16 features.29, ResNets layer4). One warm-up call, then
REPEAT timed calls; prints {"tool:method": median ms} as JSON for the ROWS asked:
  captum:vanilla captum:guided-backprop captum:grad-cam (LayerGradCam + interpolate)
  captum:integrated-gradients (50 steps, internal batch 10) captum:smoothgrad (NoiseTunnel over
  Saliency, 50 samples, batch 10) captum:occlusion (window 16, stride 8, 32 per evaluation)
  pgc:grad-cam pgc:grad-cam++ pgc:score-cam pgc:ablation-cam (batch 32) zennit:lrp
  (EpsilonPlusFlat with the VGG or ResNet canonizer, its context open) classic:vanilla
  classic:grad-cam (the classic collection's VanillaBackprop and GradCam, VGG only; their
  hooks stay on the model, so these rows come last) forward (inference mode)
    CAPTUM=... PGC=... TTACH=... ZENNIT=... CLASSIC=... /usr/bin/python3 bench/zoo_peers.py ARCH REPEAT THREADS ROW...
(bench/peers.sh runs it, alternating with cnnvis; ../shared/REFERENCES.md has the revisions)."""
import json
import sys
import warnings

from peer_common import median_ms as median_ms_of, use_checkouts

use_checkouts("zoo_peers.py", ("CAPTUM", "PGC", "TTACH", "ZENNIT", "CLASSIC"))

import torch  # noqa: E402
import torchvision  # noqa: E402
from cnnvis_random_weights import randomize_weights  # noqa: E402

arch, repeat, threads, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]
torch.set_num_threads(threads)
model = getattr(torchvision.models, arch)()
randomize_weights(model, 0)
model.eval()  # parameters keep requires_grad, as a user's model has them
layer = model.features[29] if arch.startswith("vgg") else model.layer4
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
x = (torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0)) - mean) / std
target = 3


def median_ms(f):
    return median_ms_of(f, repeat)


def make(row):
    tool, method = row.split(":", 1) if ":" in row else ("", row)
    if row == "forward":
        def forward():
            with torch.inference_mode():
                model(x)
        return forward
    if tool == "captum":
        from captum import attr
        if method == "vanilla":
            s = attr.Saliency(model)
            return lambda: s.attribute(x, target=target)
        if method == "guided-backprop":
            g = attr.GuidedBackprop(model)
            return lambda: g.attribute(x, target=target)
        if method == "grad-cam":
            c = attr.LayerGradCam(model, layer)
            return lambda: attr.LayerAttribution.interpolate(c.attribute(x, target=target), (224, 224))
        if method == "integrated-gradients":
            ig = attr.IntegratedGradients(model)
            return lambda: ig.attribute(x, target=target, n_steps=50, internal_batch_size=10)
        if method == "smoothgrad":
            nt = attr.NoiseTunnel(attr.Saliency(model))
            return lambda: nt.attribute(x, nt_type="smoothgrad", nt_samples=50,
                                        nt_samples_batch_size=10, target=target)
        if method == "occlusion":
            o = attr.Occlusion(model)
            return lambda: o.attribute(x, target=target, sliding_window_shapes=(3, 16, 16),
                                       strides=(3, 8, 8), perturbations_per_eval=32)
    if tool == "pgc":
        import pytorch_grad_cam as pgc
        from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
        kind = {"grad-cam": pgc.GradCAM, "grad-cam++": pgc.GradCAMPlusPlus,
                "score-cam": pgc.ScoreCAM, "ablation-cam": pgc.AblationCAM}[method]
        cam = kind(model=model, target_layers=[layer])
        cam.batch_size = 32
        return lambda: cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])
    if tool == "zennit" and method == "lrp":
        from zennit.attribution import Gradient
        from zennit.composites import EpsilonPlusFlat
        from zennit.torchvision import ResNetCanonizer, VGGCanonizer
        canonizer = VGGCanonizer() if arch.startswith("vgg") else ResNetCanonizer()
        attributor = Gradient(model=model, composite=EpsilonPlusFlat(canonizers=[canonizer]))
        one_hot = torch.eye(1000)[[target]]

        class Open:  # the context stays open while timing, as a user explaining many images
            def __enter__(self):
                self.a = attributor.__enter__()
                return lambda: self.a(x, one_hot)

            def __exit__(self, *args):
                attributor.__exit__(*args)
        return Open()
    if tool == "classic" and arch.startswith("vgg"):
        # Its scripts take an input that requires grad (misc_functions.preprocess_image) and
        # run the full backward, weight gradients included, as its users run it.
        xg = x.clone().requires_grad_()
        if method == "vanilla":
            from vanilla_backprop import VanillaBackprop
            v = VanillaBackprop(model)
            return lambda: v.generate_gradients(xg, target)
        if method == "grad-cam":
            from gradcam import GradCam
            g = GradCam(model, target_layer=29)
            return lambda: g.generate_cam(xg, target)
    sys.exit(f"zoo_peers.py: unknown row {row}")


result = {}
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    for row in rows:
        f = make(row)
        if hasattr(f, "__enter__"):
            with f as call:
                result[row] = median_ms(call)
        else:
            result[row] = median_ms(f)
print(json.dumps(result))
