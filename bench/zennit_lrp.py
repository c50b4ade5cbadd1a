#!/usr/bin/python3
"""zennit's LRP timed the way `cnnvis bench lrp` times cnnvis (docs/BENCHMARKS.md): median of 5
after a warm-up, 2 threads, torchvision model with default init, the attributor's context open.
    ZENNIT=/path/to/zennit /usr/bin/python3 bench/zennit_lrp.py   (zennit 0.5.1, 3121bb2)"""
import os
import sys, time, torch, torchvision
sys.path.insert(0, os.path.join(os.environ.get('ZENNIT', '/tmp/zennit'), 'src'))
from zennit.composites import EpsilonPlusFlat, EpsilonGammaBox
from zennit.torchvision import VGGCanonizer, ResNetCanonizer
from zennit.attribution import Gradient
torch.set_num_threads(2)
for name in ['vgg16', 'resnet50']:
    m = getattr(torchvision.models, name)().eval()
    for p in m.parameters(): p.requires_grad_(False)
    x = torch.randn(1, 3, 224, 224)
    can = [VGGCanonizer()] if name.startswith('vgg') else [ResNetCanonizer()]
    def fwd():
        with torch.inference_mode(): m(x)
    def med(f, n=5):
        f(); ts=[]
        for _ in range(n):
            t=time.perf_counter(); f(); ts.append(time.perf_counter()-t)
        ts.sort(); return ts[n//2]*1000
    tf = med(fwd)
    for cname, comp in [('epsilon-plus-flat', EpsilonPlusFlat(canonizers=can)),
                        ('epsilon-gamma-box', EpsilonGammaBox(low=-3., high=3., canonizers=can))]:
        with Gradient(model=m, composite=comp) as attributor:
            tl = med(lambda: attributor(x, torch.eye(1000)[[3]]))
        print(f'zennit {name} {cname}: forward {tf:.0f} ms, lrp {tl:.0f} ms, ratio {tl/tf:.2f}')
