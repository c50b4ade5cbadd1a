#!/usr/bin/python3
"""Writes the TorchScript test models of tests/test_script.cpp into OUT (once: a stamp holds
this script's hash, so a second call returns at once). torchvision's ResNet-18 with
cnnvis_random_weights(1234), the weights the zoo tests give the native model, scripted and
traced; the same network frozen (refused by cnnvis); its state_dict (not TorchScript); a
small scripted model that returns a dict; a custom model and PyTorch's numbers for it
(save_custom); the architectures of script_models.py scripted as <name>_script.pt (the
reference numbers for them are committed: tests/fixtures/script/).
    /usr/bin/python3 tests/python/save_torchscript.py OUT
"""
import hashlib
import os
import sys


def save_custom(torch, out, save):
    """custom_script.pt: an in-place ReLU module called twice (the second time on a residual
    sum), a nested submodule (body.conv), a functional in-place ReLU, dropout; in float64 with
    random BatchNorm statistics and biases. Beside it, PyTorch's own numbers for it (eager mode,
    float64): custom_x.npy (input [2, 3, 12, 12]), custom_logits.npy, the output of each module
    (forward hooks, cloned when the module returns: later in-place ops do not reach them),
    custom_vanilla.npy (d logit 1 / d x) and custom_guided.npy (the same with every ReLU guided,
    F.relu, torch.relu and torch.relu_ alike)."""
    import numpy
    nn = torch.nn

    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 6, 3, padding=1)
            self.act = nn.ReLU(inplace=True)
            self.body = nn.Module()
            self.body.conv = nn.Conv2d(6, 6, 3, padding=1)
            self.body.bn = nn.BatchNorm2d(6)
            self.drop = nn.Dropout(0.5)
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            y = self.act(self.stem(x))
            z = self.body.bn(self.body.conv(y))
            z = self.act(z + y)
            z = torch.relu_(z - 0.1)
            return self.fc(self.drop(z.mean([2, 3])))

    torch.manual_seed(1)
    model = Custom().double().eval()
    with torch.no_grad():
        model.body.bn.running_mean.uniform_(-0.3, 0.3)
        model.body.bn.running_var.uniform_(0.5, 1.5)
        model.body.bn.weight.uniform_(0.5, 1.5)
        model.body.bn.bias.uniform_(-0.2, 0.2)
    save(torch.jit.script(model), "custom_script.pt")

    def npy(name, t):
        tmp = os.path.join(out, name + ".tmp-%d.npy" % os.getpid())
        numpy.save(tmp, t.detach().numpy())
        os.replace(tmp, os.path.join(out, name + ".npy"))

    # float32-representable, since cnnvis::load_npy reads into float32
    x = torch.randn(2, 3, 12, 12, generator=torch.Generator().manual_seed(2)).double()
    outputs = {}
    for name in ["stem", "act", "body.conv", "body.bn", "fc"]:
        module = model.get_submodule(name)
        module.register_forward_hook(
            lambda m, i, o, name=name: outputs.__setitem__(name, o.detach().clone()))
    xv = x.clone().requires_grad_(True)
    logits = model(xv)
    logits[:, 1].sum().backward()
    npy("custom_x", x)
    npy("custom_logits", logits)
    for name, value in outputs.items():
        npy("custom_tap_" + name, value)
    npy("custom_vanilla", xv.grad)

    from script_models import every_relu_guided
    with every_relu_guided():
        xg = x.clone().requires_grad_(True)
        model(xg)[:, 1].sum().backward()
    npy("custom_guided", xg.grad)


def save_newer_op(out):
    """newer_op.pt: tiny_dict_script.pt whose code calls an operator that no PyTorch has
    (torch.sub renamed), as a file saved by a newer PyTorch looks to an older LibTorch."""
    import zipfile
    src = os.path.join(out, "tiny_dict_script.pt")
    tmp = os.path.join(out, "newer_op.pt.tmp-%d" % os.getpid())
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(tmp, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info.filename)
            if info.filename.endswith("/code/__torch__.py.debug_pkl"):
                continue  # source ranges of the original text
            if info.filename.endswith("/code/__torch__.py"):
                data = data.replace(b"torch.sub(", b"torch.sub_from_a_newer_pytorch(")
                assert b"sub_from_a_newer_pytorch" in data
            info.filename = info.filename.replace("tiny_dict_script.pt/", "newer_op.pt/")
            zout.writestr(info, data)
    os.replace(tmp, os.path.join(out, "newer_op.pt"))


def main():
    out = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for name in ("save_torchscript.py", "script_models.py", "cnnvis_random_weights.py"):
        with open(os.path.join(here, name), "rb") as f:
            digest.update(f.read())
    stamp = digest.hexdigest()
    stamp_path = os.path.join(out, ".stamp")
    if os.path.exists(stamp_path) and open(stamp_path).read() == stamp:
        return
    import torch
    import torchvision

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from cnnvis_random_weights import randomize_weights

    torch.set_num_threads(1)
    os.makedirs(out, exist_ok=True)

    def save(module, name):
        tmp = os.path.join(out, name + ".tmp-%d" % os.getpid())  # concurrent callers
        module.save(tmp)
        os.replace(tmp, os.path.join(out, name))

    resnet = torchvision.models.resnet18()
    randomize_weights(resnet, 1234)
    resnet.eval()
    save(torch.jit.script(resnet), "resnet18_script.pt")
    with torch.no_grad():
        save(torch.jit.trace(resnet, torch.zeros(1, 3, 64, 64)), "resnet18_trace.pt")
    save(torch.jit.freeze(torch.jit.script(resnet)), "resnet18_frozen.pt")
    # A small custom model returning a dict, with a functional ReLU on a nested module's output.
    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.body = torch.nn.Sequential(
                torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
            self.head = torch.nn.Conv2d(8, 5, 1)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x):
            f = torch.nn.functional.relu(self.body(x) - 0.05)
            return {"aux": self.head(f), "logits": self.fc(f.mean([2, 3]))}

    torch.manual_seed(0)
    tiny = Tiny().eval()
    with torch.no_grad():
        tiny.body[1].running_mean.uniform_(-0.2, 0.2)
        tiny.body[1].running_var.uniform_(0.5, 1.5)
    save(torch.jit.script(tiny), "tiny_dict_script.pt")
    save_custom(torch, out, save)
    save_newer_op(out)
    import warnings
    from script_models import ARCHITECTURES, build
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's notes on scripting Inception-v3
        for name in ARCHITECTURES:
            save(torch.jit.script(build(torchvision, name)), name + "_script.pt")
    tmp = os.path.join(out, "resnet18_state_dict.pth.tmp-%d" % os.getpid())
    torch.save(resnet.state_dict(), tmp)
    os.replace(tmp, os.path.join(out, "resnet18_state_dict.pth"))
    tmp = stamp_path + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(stamp)
    os.replace(tmp, stamp_path)


if __name__ == "__main__":
    main()
