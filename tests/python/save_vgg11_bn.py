#!/usr/bin/python3
"""Writes OUT/vgg11_bn_script.pt: torchvision's VGG11-BN with cnnvis_random_weights(1234) (the
zoo tests' weights), scripted, in eval mode; 530 MB, so not among save_torchscript.py's cached
models. Used by tests/script_files_test.sh and bench/script.sh.
    /usr/bin/python3 tests/python/save_vgg11_bn.py OUT
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch  # noqa: E402
import torchvision  # noqa: E402
from cnnvis_random_weights import randomize_weights  # noqa: E402

torch.set_num_threads(1)
model = torchvision.models.vgg11_bn()
randomize_weights(model, 1234)
out = os.path.join(sys.argv[1], "vgg11_bn_script.pt")
tmp = out + ".tmp-%d" % os.getpid()
torch.jit.script(model.eval()).save(tmp)
os.replace(tmp, out)
