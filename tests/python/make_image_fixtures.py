#!/usr/bin/python3
"""Writes the image fixtures of tests/test_image.cpp into tests/fixtures/image/.

Run with Debian's python3 (torch, torchvision, numpy, PIL, matplotlib):
    /usr/bin/python3 tests/python/make_image_fixtures.py
All images are tiny synthetic ones (16 wide, 12 high); references are NumPy .npy files.
"""
import os

import matplotlib
import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "image")
COLORMAPS = ["jet", "turbo", "viridis", "hsv", "gray", "seismic", "bwr"]  # enum order
# Values where rounding (round(v * 255)) and matplotlib's int(v * 256) pick different entries.
POINTS = [0.0, 0.1, 0.25, 0.3, 0.5, 0.61, 0.7, 0.9, 0.999, 1.0]


def save(name, array):
    np.save(os.path.join(OUT, name), np.ascontiguousarray(array, dtype=np.float32))


def rgb_image():
    # Smooth gradients plus noise: downscaling must actually average neighbours.
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:12, 0:16]
    img = np.stack([x * 16, y * 20, (x * y) % 256], axis=-1).astype(np.float64)
    img += rng.integers(-40, 40, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), "RGB")


def main():
    os.makedirs(OUT, exist_ok=True)
    img = rgb_image()
    img.save(os.path.join(OUT, "rgb.png"))
    tensor = TF.to_tensor(img)  # [3, 12, 16] in [0, 1]
    save("rgb.npy", tensor.numpy())

    # Resize((8, 8)), Resize((20, 20)) and Resize(9) + CenterCrop(7): by PIL (rounds to uint8)
    # and by torchvision on float tensors with antialias (what cnnvis does).
    cases = {"size8": lambda t, **aa: TF.resize(t, [8, 8], **aa),
             "size20": lambda t, **aa: TF.resize(t, [20, 20], **aa),
             "resize9_crop7": lambda t, **aa: TF.center_crop(TF.resize(t, 9, **aa), 7)}
    for name, f in cases.items():
        save("resize_%s_pil.npy" % name, TF.to_tensor(f(img)).numpy())
        save("resize_%s_tensor.npy" % name, f(tensor, antialias=True).numpy())

    # Colormaps at POINTS: [7, len(POINTS), 3].
    save("colormap_points.npy", np.array(POINTS))
    save("colormap_values.npy",
         np.stack([matplotlib.colormaps[n](np.array(POINTS, np.float32))[:, :3]
                   for n in COLORMAPS]))

    # Other layouts: RGBA, 8-bit gray, 16-bit gray, and a JPEG with EXIF orientation 6.
    rgba = np.dstack([np.asarray(img), np.full((12, 16), 128, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "rgba.png"))
    gray = (np.mgrid[0:12, 0:16][1] * 17).astype(np.uint8)  # column x has value 17 x
    Image.fromarray(gray, "L").save(os.path.join(OUT, "gray.png"))
    # 4000 x is no multiple of 257: an 8-bit conversion would be off by up to 1/255.
    gray16 = (np.mgrid[0:12, 0:16][1] * 4000).astype(np.uint16)
    Image.fromarray(gray16.astype(np.int32), "I").convert("I;16").save(
        os.path.join(OUT, "gray16.png"))
    # Stored 16 x 12, left half red, right half blue. Orientation 6 = rotate 90 degrees
    # clockwise to display: the shown image is 12 wide, 16 high, red on top, blue below.
    halves = np.zeros((12, 16, 3), np.uint8)
    halves[:, :8, 0] = 255
    halves[:, 8:, 2] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(halves, "RGB").save(os.path.join(OUT, "exif_rotate90.jpg"), quality=95,
                                        exif=exif)
    # A plain JPEG, for the truncated-JPEG test.
    img.save(os.path.join(OUT, "rgb.jpg"), quality=90)
    for f in sorted(os.listdir(OUT)):
        print("%6d  %s" % (os.path.getsize(os.path.join(OUT, f)), f))


if __name__ == "__main__":
    main()
