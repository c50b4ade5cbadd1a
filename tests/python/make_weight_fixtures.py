#!/usr/bin/python3
"""Writes the weight-file fixtures of tests/test_weights.cpp into tests/fixtures/weights/.

Run with Debian's python3 (torch 1.13): /usr/bin/python3 tests/python/make_weight_fixtures.py
The same tiny model is saved in every format cnnvis reads; expected.json holds every value so
the C++ test can check all readers against Python's numbers exactly.
"""
import json
import os
import struct
import sys
from collections import OrderedDict

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "weights")


def tiny_model():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                            torch.nn.Flatten(), torch.nn.Linear(16, 3))
    with torch.no_grad():  # make the BatchNorm statistics non-trivial
        m[1].weight.uniform_(0.5, 1.5)
        m[1].bias.uniform_(-0.5, 0.5)
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
        m[1].num_batches_tracked.fill_(7)
    return m


def views_dict():
    # Tensors sharing one storage, with offsets and strides, plus every supported dtype.
    big = torch.arange(60, dtype=torch.float32).reshape(6, 10) / 4
    return OrderedDict([
        ("whole", big),
        ("strided", big[1:, ::2]),      # storage offset 10, strides (10, 2)
        ("row", big[2]),                # storage offset 20
        ("transposed", big.t()),
        ("f64", torch.linspace(-1, 1, 5, dtype=torch.float64)),
        ("f16", torch.tensor([0.5, -2.25, 1000.0], dtype=torch.float16)),
        ("bf16", torch.tensor([1.5, -3.0], dtype=torch.bfloat16)),
        ("i64", torch.tensor([-(2**40), 0, 7], dtype=torch.int64)),
        ("i32", torch.tensor([[1, -2], [3, -4]], dtype=torch.int32)),
        ("u8", torch.tensor([0, 255, 17], dtype=torch.uint8)),
        ("b", torch.tensor([True, False, True])),
        ("scalar", torch.tensor(3.25)),
        ("empty", torch.zeros(0, 3)),
    ])


ST_DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
             torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8",
             torch.bool: "BOOL"}


def save_safetensors(sd, path):
    header, blobs, offset = OrderedDict(), [], 0
    for name, t in sd.items():
        t = t.contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def save_raw_zip(records, path):
    # A torch zip archive with hand-made records (used for the malicious/corrupt pickles).
    writer = torch._C.PyTorchFileWriter(path)
    for name, data in records.items():
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))  # pickled, never called


def expected_json(sd):
    return {name: {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape),
                   "values": [float(v) for v in t.double().flatten().tolist()]}
            for name, t in sd.items()}


def path(name):
    return os.path.join(OUT, name)


def main():
    os.makedirs(OUT, exist_ok=True)
    model = tiny_model().eval()
    sd = model.state_dict()
    with torch.no_grad():  # the model's output for a fixed input, for an end-to-end check
        forward = model(torch.arange(48, dtype=torch.float32).reshape(1, 3, 4, 4) / 10)
    legacy = dict(_use_new_zipfile_serialization=False)

    torch.save(sd, path("tiny_zip.pth"))
    torch.save(sd, path("tiny_legacy.pth"), **legacy)
    torch.save({"state_dict": sd, "epoch": 3, "arch": "tiny"}, path("tiny_ckpt_state_dict.pth"))
    torch.save({"model": sd, "lr": 0.1}, path("tiny_ckpt_model.pth"), **legacy)
    save_safetensors(sd, path("tiny.safetensors"))
    half = OrderedDict((k, v.half() if v.is_floating_point() else v) for k, v in sd.items())
    double = OrderedDict((k, v.double() if v.is_floating_point() else v) for k, v in sd.items())
    # Protocol 4 exercises FRAME, SHORT_BINUNICODE, STACK_GLOBAL and MEMOIZE.
    torch.save(sd, path("tiny_protocol4.pth"), pickle_protocol=4)
    torch.save(sd, path("tiny_legacy_protocol4.pth"), pickle_protocol=4, **legacy)
    torch.save(half, path("tiny_fp16.pth"))
    torch.save(double, path("tiny_fp64_legacy.pth"), **legacy)
    save_safetensors(half, path("tiny_fp16.safetensors"))
    torch.save(OrderedDict(("module." + k, v) for k, v in sd.items()),
               path("tiny_dataparallel.pth"))

    views = views_dict()
    torch.save(views, path("views_zip.pth"))
    torch.save(views, path("views_legacy.pth"), **legacy)
    save_safetensors(views, path("views.safetensors"))

    # Weights that do not fit the tiny model.
    torch.manual_seed(1)
    wrong = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5), torch.nn.BatchNorm2d(4),
                                torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16, 3))
    torch.save(wrong.state_dict(), path("wrong_shape.pth"))
    other = OrderedDict([("conv1.weight", torch.zeros(2, 3, 1, 1)),
                         ("fc.weight", torch.zeros(2, 2)), ("fc.bias", torch.zeros(2))])
    torch.save(other, path("other_arch.pth"))

    # Bad inputs.
    with open(path("tiny_zip.pth"), "rb") as f:
        data = f.read()
    with open(path("truncated_zip.pth"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(path("tiny_legacy.pth"), "rb") as f:
        data = f.read()
    with open(path("truncated_legacy.pth"), "wb") as f:
        f.write(data[: len(data) - 100])
    with open(path("truncated_legacy_pickle.pth"), "wb") as f:
        f.write(data[:300])
    with open(path("random.bin"), "wb") as f:
        f.write(torch.randint(0, 256, (256,), generator=torch.Generator().manual_seed(5),
                              dtype=torch.uint8).numpy().tobytes())
    open(path("empty.pth"), "wb").close()
    with open(path("bad_header.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", 4096) + b'{"a": {"dtype": "F32", "shape": [2], ')
    with open(path("bad_offsets.safetensors"), "wb") as f:
        text = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})
        f.write(struct.pack("<Q", len(text)) + text.encode() + b"\0" * 8)
    torch.save(OrderedDict([("weight", torch.ones(2)), ("evil", Evil())]),
               path("forbidden_global.pth"))
    torch.save([Evil()], path("forbidden_global_legacy.pth"), **legacy)
    save_raw_zip({"data.pkl": b"\x80\x02\xff.", "version": b"3\n"}, path("bad_opcode.pth"))

    with open(path("expected.json"), "w") as f:
        json.dump({"tiny": expected_json(sd), "views": expected_json(views),
                   "forward": forward.flatten().tolist()}, f)
    print("wrote", sorted(os.listdir(OUT)), file=sys.stderr)


if __name__ == "__main__":
    main()
