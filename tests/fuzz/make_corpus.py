#!/usr/bin/python3
"""Writes the seed corpora and the crafted inputs of the fuzz harnesses (tests/fuzz/*.cpp).

Run with Debian's python3 (torch 1.13, numpy, PIL):
    /usr/bin/python3 tests/fuzz/make_corpus.py OUT        (scripts/fuzz.sh uses build-fuzz)
Writes OUT/corpus/<harness>/ (tiny valid files, the fuzzers' starting points) and
OUT/crafted/<harness>/ (the hostile files of issue 15, run once by scripts/fuzz.sh as
regression inputs; some are hundreds of KB, which is why they are generated, not committed).
Everything is deterministic: the same script writes the same bytes.
"""
import io
import json
import os
import struct
import sys
import zipfile
import zlib
from collections import OrderedDict

import numpy as np
import torch

try:
    from PIL import Image
except ImportError:  # PNG and BMP are written by hand below; JPEG/TIFF/WebP need PIL
    Image = None

HARNESSES = ("weights", "pickle", "npy", "image")

# The legacy format's first three pickles (torch/serialization.py _legacy_save): the magic
# number 0x1950a86a20f9469cfc6c, the protocol version 1001 and a sys_info dict (its content is
# not read by cnnvis).
LEGACY_MAGIC = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
LEGACY_VERSION = b"\x80\x02M\xe9\x03."
LEGACY_SYS_INFO = b"\x80\x02}q\x00."


class Writer:
    def __init__(self, root):
        self.root = root
        self.count = 0

    def put(self, kind, harness, name, data):
        folder = os.path.join(self.root, kind, harness)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, name), "wb") as f:
            f.write(data)
        self.count += 1

    def seed(self, harness, name, data):
        self.put("corpus", harness, name, data)

    def crafted(self, harness, name, data):
        self.put("crafted", harness, name, data)


# ---- PyTorch files ----

def torch_save(obj, zip_format):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=zip_format)
    return buf.getvalue()


def data_pkl(zip_bytes):
    """The data.pkl record of a torch.save zip archive."""
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        return z.read(name)


def torch_zip(pkl, records=()):
    """A zip archive as torch.save writes it (PyTorch's own writer), holding `pkl` as data.pkl
    and the given (name, bytes) records."""
    buf = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(buf)
    writer.write_record("data.pkl", pkl, len(pkl))
    for name, data in records:
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    del writer
    return buf.getvalue()


def legacy_file(root_pkl, keys=(), storages=b""):
    """A legacy torch.save file around the root pickle `root_pkl`: the key list pickle and the
    raw storage section follow it."""
    keys_pkl = b"\x80\x02](" + b"".join(b"X" + struct.pack("<I", len(k)) + k.encode()
                                         for k in keys) + b"e."
    return LEGACY_MAGIC + LEGACY_VERSION + LEGACY_SYS_INFO + root_pkl + keys_pkl + storages


def state_dicts():
    """Tiny state_dicts covering what the readers handle: every dtype, 0-d and empty tensors,
    non-contiguous and shared storages, parameters, a training checkpoint."""
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    yield "plain", OrderedDict([("conv.weight", torch.randn(2, 3, generator=g)),
                                ("conv.bias", torch.randn(2, generator=g))])
    yield "dtypes", OrderedDict(
        [("f16", torch.randn(3, generator=g).half()), ("bf16", torch.randn(3).bfloat16()),
         ("f64", torch.randn(2, 2, dtype=torch.float64, generator=g)),
         ("i64", torch.arange(3)), ("i32", torch.arange(3, dtype=torch.int32)),
         ("i16", torch.arange(3, dtype=torch.int16)), ("i8", torch.arange(3, dtype=torch.int8)),
         ("u8", torch.arange(3, dtype=torch.uint8)), ("b", torch.tensor([True, False]))])
    yield "shapes", OrderedDict([("scalar", torch.tensor(1.5)), ("empty", torch.zeros(0, 3)),
                                 ("deep", torch.ones(1, 2, 1, 2, 1))])
    yield "views", OrderedDict([("t", base.t()), ("row", base[1]), ("col", base[:, 2]),
                                ("strided", base[::2, 1::3]), ("whole", base)])
    yield "parameter", OrderedDict([("w", torch.nn.Parameter(torch.randn(2, 2, generator=g)))])
    yield "checkpoint", {"epoch": 3, "arch": "tiny", "lr": 0.1, "best": (1, 2.5, None, True),
                         "state_dict": OrderedDict([("fc.weight", torch.randn(2, 2, generator=g)),
                                                    ("bn.num_batches_tracked",
                                                     torch.tensor(7))]),
                         "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "ids": [0]}]},
                         "names": ["a", "b"], "blob": b"\x00\x01", "set": {1, 2}}
    yield "model_key", {"model": OrderedDict([("a", torch.ones(2))]), "meta": {"k": [1, 2]}}
    module = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    yield "module", module.state_dict()


def safetensors(tensors, metadata=None, pad=0, order=None):
    """A safetensors file written by hand: 8-byte LE header length, JSON header, data."""
    names = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16",
             torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
             torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
    header, data = {}, b""
    for name, t in tensors.items():
        t = t.contiguous()
        raw = t.reshape(-1).view(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    keys = order or list(header)
    text = json.dumps({k: header[k] for k in keys}, separators=(",", ":")).encode()
    text += b" " * pad
    return struct.pack("<Q", len(text)) + text + data


def safetensors_raw(header, data):
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def weights_and_pickles(w):
    for name, sd in state_dicts():
        z = torch_save(sd, True)
        w.seed("weights", name + ".pth", z)
        w.seed("weights", name + "_legacy.pth", torch_save(sd, False))
        w.seed("pickle", name + ".pkl", data_pkl(z))
    # A protocol-4 pickle (FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL) inside a zip.
    buf = io.BytesIO()
    torch.save({"a": torch.ones(2)}, buf, pickle_protocol=4)
    w.seed("weights", "protocol4.pth", buf.getvalue())
    w.seed("pickle", "protocol4.pkl", data_pkl(buf.getvalue()))
    buf = io.BytesIO()
    torch.save({"a": torch.ones(2)}, buf, pickle_protocol=4, _use_new_zipfile_serialization=False)
    w.seed("weights", "protocol4_legacy.pth", buf.getvalue())

    g = torch.Generator().manual_seed(1)
    w.seed("weights", "plain.safetensors",
           safetensors({"w": torch.randn(2, 3, generator=g), "b": torch.randn(3, generator=g)},
                       {"format": "pt"}))
    w.seed("weights", "dtypes.safetensors", safetensors(
        {"f16": torch.ones(2).half(), "bf16": torch.ones(2).bfloat16(),
         "f64": torch.ones(1, dtype=torch.float64), "i64": torch.arange(2),
         "i32": torch.arange(2, dtype=torch.int32), "i16": torch.arange(2, dtype=torch.int16),
         "i8": torch.arange(2, dtype=torch.int8), "u8": torch.arange(2, dtype=torch.uint8),
         "b": torch.tensor([True])}))
    w.seed("weights", "shapes_padded.safetensors",
           safetensors({"scalar": torch.tensor(2.0), "empty": torch.zeros(0, 2),
                        "x": torch.ones(1, 1, 2)}, pad=5, order=["x", "scalar", "empty"]))

    # ---- the hostile files of issue 15 ----
    # A tuple nested 200 000 deep in a legacy file (freed recursively: stack overflow).
    deep_tuple = b"\x80\x02)" + b"\x85" * 200000 + b"."
    w.crafted("weights", "nested_tuple_200k_legacy.pth", legacy_file(deep_tuple))
    w.crafted("pickle", "nested_tuple_200k.pkl", deep_tuple)
    # Lists nested 200 000 deep in a zip file (400 KB).
    deep_list = b"\x80\x02" + b"]" * 200000 + b"a" * 199999 + b"."
    w.crafted("weights", "nested_list_200k.pth", torch_zip(deep_list))
    w.crafted("pickle", "nested_list_200k.pkl", deep_list)
    # Dicts nested 100 000 deep: {"k": {"k": ...}}.
    deep_dict = b"\x80\x02" + b"}X\x01\x00\x00\x00k" * 100000 + b"}" + b"s" * 100000 + b"."
    w.crafted("pickle", "nested_dict_100k.pkl", deep_dict)
    # The memo lets a few bytes repeat set(L): L holds 1000 strings of 1000 bytes (1 MB of
    # values); each 6-byte call set(L) copies it and the outer list keeps every copy: 50 000
    # calls in a 300 KB pickle ask for 50 GB.
    amplify = (b"\x80\x02cbuiltins\nset\nq\x00"            # memo 0 = set
               b"X\xe8\x03\x00\x00" + b"s" * 1000 + b"q\x01" b"0"  # memo 1 = the string
               b"]q\x02(" + b"h\x01" * 1000 + b"e" b"0"   # memo 2 = [string] * 1000
               b"](" + b"h\x00h\x02\x85R" * 50000 + b"e.")
    w.crafted("weights", "set_amplification.pth", torch_zip(amplify))
    w.crafted("pickle", "set_amplification.pkl", amplify)
    # The same with DUP and no memo of the result: time, not memory (each set() is freed).
    spin = (b"\x80\x02cbuiltins\nset\nq\x00]q\x01(" + b"K\x01" * 20000 + b"e0" +
            b"h\x00h\x01\x85R0" * 50000 + b"N.")
    w.crafted("weights", "set_repeat_legacy.pth", legacy_file(spin))
    w.crafted("pickle", "set_repeat.pkl", spin)
    # Reference cycles: a list appended into itself, a dict holding itself (leaked).
    self_list = b"\x80\x02]q\x00h\x00a."
    w.crafted("weights", "self_list_legacy.pth", legacy_file(self_list))
    w.crafted("weights", "self_list.pth", torch_zip(self_list))
    w.crafted("pickle", "self_list.pkl", self_list)
    self_dict = b"\x80\x02}q\x00X\x01\x00\x00\x00kh\x00s."
    w.crafted("weights", "self_dict_legacy.pth", legacy_file(self_dict))
    w.crafted("pickle", "self_dict.pkl", self_dict)
    # A dict holding itself next to a real tensor (the state_dict is read, the cycle stays).
    with_tensor = data_pkl(torch_save({"a": torch.ones(2)}, True))
    assert with_tensor.startswith(b"\x80\x02}q\x00") and with_tensor.endswith(b"s.")
    cyc = with_tensor[:-1] + b"X\x04\x00\x00\x00selfh\x00s."  # d["self"] = d before STOP
    w.crafted("pickle", "self_dict_with_tensor.pkl", cyc)
    # Safetensors whose byte ranges overlap (the format forbids it).
    w.crafted("weights", "overlap.safetensors", safetensors_raw(
        {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
         "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]}}, bytes(24)))
    # A header length past the end, a shape whose byte count overflows.
    w.crafted("weights", "header_past_end.safetensors",
              struct.pack("<Q", 1 << 62) + b'{"a":1}')
    w.crafted("weights", "shape_overflow.safetensors", safetensors_raw(
        {"a": {"dtype": "F64", "shape": [1 << 31, 1 << 31, 4], "data_offsets": [0, 0]}}, b""))
    # A tensor claiming far more elements than its storage holds.
    assert with_tensor.count(b"K\x02\x85") == 1
    big = with_tensor.replace(b"K\x02\x85", b"J\x00\x00\x00\x40\x85")  # size (2,) -> (2**30,)
    w.crafted("weights", "tensor_past_storage.pth", torch_zip(big, [("data/0", bytes(8))]))
    # A stride-0 view: 2**30 elements of one 4-byte storage element, 4 GB once made contiguous.
    assert big.count(b"K\x01\x85") == 1
    expand = big.replace(b"K\x01\x85", b"K\x00\x85")
    w.crafted("weights", "stride0_4gb.pth", torch_zip(expand, [("data/0", bytes(8))]))
    w.crafted("pickle", "stride0_4gb.pkl", expand)


# ---- .npy ----

def npy_header(header_text, version=(1, 0)):
    h = header_text.encode("latin1")
    prefix = 10 if version[0] == 1 else 12
    h += b" " * ((64 - (prefix + len(h) + 1) % 64) % 64) + b"\n"
    length = struct.pack("<H", len(h)) if version[0] == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes(version) + length + h


def npys(w):
    def save(name, a, **kw):
        buf = io.BytesIO()
        if kw:
            np.lib.format.write_array(buf, a, **kw)
        else:
            np.save(buf, a)
        w.seed("npy", name + ".npy", buf.getvalue())

    rng = np.random.default_rng(0)
    save("f32_2d", rng.standard_normal((2, 3)).astype(np.float32))
    save("f32_4d", rng.standard_normal((1, 3, 2, 2)).astype(np.float32))
    save("f64_1d", rng.standard_normal(5))
    save("i64", np.arange(6, dtype=np.int64).reshape(3, 2))
    save("i32", np.arange(4, dtype=np.int32))
    save("u8", np.arange(5, dtype=np.uint8))
    save("bool", np.array([True, False, True]))
    save("scalar_0d", np.array(3.5, dtype=np.float32))
    save("empty_1d", np.zeros(0, dtype=np.float32))
    save("empty_3d", np.zeros((2, 0, 3), dtype=np.float64))
    save("fortran", np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
    save("big_endian", np.ones(3, dtype=">f4"))
    save("f16", np.ones(3, dtype=np.float16))
    save("v2", np.ones((2, 2), dtype=np.float32), version=(2, 0))
    save("v3", np.ones(2, dtype=np.float32), version=(3, 0))
    # Crafted: a 128-byte file whose header asks for 4 TB, an empty file, a junk shape.
    w.crafted("npy", "4tb.npy",
              npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576), }"))
    w.crafted("npy", "huge_dims.npy", npy_header(
        "{'descr': '<f8', 'fortran_order': False, 'shape': (9223372036854775807, 2), }"))
    w.crafted("npy", "dim_overflow.npy", npy_header(
        "{'descr': '<i8', 'fortran_order': False, 'shape': (4294967296, 4294967296, 16), }"))
    w.crafted("npy", "empty_file.npy", b"")
    w.crafted("npy", "empty_array.npy",
              npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }"))
    w.crafted("npy", "junk_shape.npy",
              npy_header("{'descr': '<f4', 'fortran_order': False, 'shape': (2x, 3junk), }") +
              bytes(24))
    w.crafted("npy", "header_past_end.npy", b"\x93NUMPY\x02\x00\xff\xff\xff\x7f{")
    w.crafted("npy", "magic_only.npy", b"\x93NUMPY\x01\x00")


# ---- images ----

def png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png(width, height, rows, color_type=2, bit_depth=8, extra=b"", compressed=None):
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    idat = compressed if compressed is not None else zlib.compress(
        b"".join(b"\x00" + r for r in rows), 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", idat) +
            png_chunk(b"IEND", b""))


def bmp(width, height, pixels_bgr):
    row = (width * 3 + 3) // 4 * 4
    data = b""
    for y in range(height - 1, -1, -1):  # bottom-up
        r = b"".join(bytes(p) for p in pixels_bgr[y])
        data += r + b"\x00" * (row - len(r))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, len(data), 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 14 + 40 + len(data), 0, 0, 54) + info + data


def bomb_png(width, height):
    """A gray PNG of zero pixels, compressed row by row (20000x20000 -> about 400 KB)."""
    c = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    out = [c.compress(row) for _ in range(height)]
    out.append(c.flush())
    return png(width, height, None, color_type=0, compressed=b"".join(out))


def images(w):
    w.seed("image", "rgb_3x2.png", png(3, 2, [bytes(range(9)), bytes(range(100, 109))]))
    w.seed("image", "gray_4x4.png", png(4, 4, [bytes([16 * i] * 4) for i in range(4)], 0))
    w.seed("image", "rgba_2x2.png", png(2, 2, [bytes(range(8)), bytes(range(8, 16))], 6))
    w.seed("image", "gray16_2x2.png", png(2, 2, [b"\x00\x01\xff\xff", b"\x80\x00\x00\x00"], 0, 16))
    w.seed("image", "palette_2x2.png",
           png(2, 2, [b"\x00\x01", b"\x01\x00"], 3,
               extra=png_chunk(b"PLTE", b"\xff\x00\x00\x00\x00\xff")))
    w.seed("image", "rgb_2x2.bmp",
           bmp(2, 2, [[(0, 0, 255), (0, 255, 0)], [(255, 0, 0), (9, 9, 9)]]))
    if Image is not None:
        im = Image.frombytes("RGB", (8, 6), bytes((i * 7) % 256 for i in range(8 * 6 * 3)))
        for name, fmt, kw in [("rgb.jpg", "JPEG", {"quality": 80}),
                              ("progressive.jpg", "JPEG", {"progressive": True}),
                              ("rgb.tiff", "TIFF", {}), ("rgb.webp", "WEBP", {"quality": 50}),
                              ("rgb_pil.bmp", "BMP", {})]:
            buf = io.BytesIO()
            try:
                im.save(buf, fmt, **kw)
            except (KeyError, OSError):  # a PIL without this codec
                continue
            w.seed("image", name, buf.getvalue())
        buf = io.BytesIO()
        im.convert("L").save(buf, "JPEG")
        w.seed("image", "gray.jpg", buf.getvalue())
        buf = io.BytesIO()  # EXIF orientation 6 (rotate 90), applied by the loader
        exif = Image.Exif()
        exif[0x0112] = 6
        im.save(buf, "JPEG", exif=exif.tobytes())
        w.seed("image", "exif_rotated.jpg", buf.getvalue())
    # Crafted: decompression bombs (from the header: 20000x20000 PNG, BMP and JPEG), a 0x0 PNG,
    # a bad CRC, a cut-off file.
    w.crafted("image", "bomb_20000x20000.png", bomb_png(20000, 20000))
    w.crafted("image", "bomb_header_only.png", png(60000, 60000, None, 2, compressed=b"x\x9c"))
    w.crafted("image", "bomb_30000x30000.bmp", b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) +
              struct.pack("<IiiHHIIiiII", 40, 30000, 30000, 1, 24, 0, 0, 2835, 2835, 0, 0) +
              bytes(64))
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, 65000, 65000, 3) + \
        b"\x01\x11\x00\x02\x11\x01\x03\x11\x01"
    w.crafted("image", "bomb_65000x65000.jpg", b"\xff\xd8" + sof + b"\xff\xd9")
    w.crafted("image", "zero_size.png", png(0, 0, []))
    good = png(3, 2, [bytes(range(9)), bytes(range(100, 109))])
    w.crafted("image", "bad_crc.png", good[:29] + b"\x00\x00\x00\x00" + good[33:])
    w.crafted("image", "truncated.png", good[:40])
    w.crafted("image", "empty.png", b"")


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_corpus.py OUT (e.g. build-fuzz)")
    torch.manual_seed(0)
    w = Writer(sys.argv[1])
    weights_and_pickles(w)
    npys(w)
    images(w)
    print(f"make_corpus.py: {w.count} files under {sys.argv[1]}/corpus and "
          f"{sys.argv[1]}/crafted")


if __name__ == "__main__":
    main()
