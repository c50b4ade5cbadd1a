#!/usr/bin/python3
"""Writes the TorchScript test models of tests/test_script.cpp into OUT (once: a stamp holds
this script's hash, so a second call returns at once). torchvision's ResNet-18 with
cnnvis_random_weights(1234), the weights the zoo tests give the native model, scripted and
traced; the same network frozen (refused by cnnvis); its state_dict (not TorchScript); a
small scripted model that returns a dict.
    /usr/bin/python3 tests/python/save_torchscript.py OUT
"""
import hashlib
import os
import sys


def main():
    out = sys.argv[1]
    with open(__file__, "rb") as f:
        stamp = hashlib.sha256(f.read()).hexdigest()
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
    tmp = os.path.join(out, "resnet18_state_dict.pth.tmp-%d" % os.getpid())
    torch.save(resnet.state_dict(), tmp)
    os.replace(tmp, os.path.join(out, "resnet18_state_dict.pth"))
    tmp = stamp_path + ".tmp-%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(stamp)
    os.replace(tmp, stamp_path)


if __name__ == "__main__":
    main()
