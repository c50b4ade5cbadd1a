"""Python mirror of cnnvis::randomize_weights (src/models/zoo.cpp): the same seed gives the same
tensors in PyTorch and in cnnvis, so fixtures can hold a seed instead of weights."""
import math

import torch


def randomize_weights(model: torch.nn.Module, seed: int) -> None:
    state = model.state_dict(keep_vars=True)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key in sorted(state):
            t = state[key]
            if key.endswith("num_batches_tracked"):
                continue
            r = torch.rand(t.shape, generator=gen, dtype=torch.float32)
            if key.endswith("running_var"):
                value = r + 0.5
            elif key.endswith("weight") and t.dim() >= 2:
                fan_in = float(t.numel() // t.shape[0])
                value = (r * 2 - 1) * math.sqrt(6.0 / fan_in)
            elif key.endswith("weight"):
                value = (r * 2 - 1) * 0.1 + 1
            else:
                value = (r * 2 - 1) * 0.1
            t.copy_(value)
