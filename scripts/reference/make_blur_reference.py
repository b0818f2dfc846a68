"""Pillow GaussianBlur and torchvision-style CenterCrop references, for crates/core/tests/blur.rs.

Writes a deterministic RGB test image and Pillow's `ImageFilter.GaussianBlur(radius)` of it for
several radii, and the centre crops prompt travel takes before SSIM, as PNGs with `cases.json`.

    pip install pillow numpy
    python scripts/reference/make_blur_reference.py crates/core/tests/data/blur
"""

import json
import sys
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageFilter

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
rng = np.random.RandomState(7)
h, w = 37, 53
y, x = np.mgrid[0:h, 0:w]
base = np.stack([(x * 5) % 256, (y * 7) % 256, ((x + y) * 3) % 256], axis=-1)
noise = rng.randint(0, 64, size=(h, w, 3))
img = Image.fromarray(((base + noise) % 256).astype(np.uint8), "RGB")
img.save(out / "source.png")
cases = {"pillow": PIL.__version__, "blur": [], "crop": []}
for radius in [0.5, 1, 2, 3.7, 10, 20]:
    name = f"blur-{radius}.png"
    img.filter(ImageFilter.GaussianBlur(radius=radius)).save(out / name)
    cases["blur"].append({"radius": radius, "file": name})
for pct in [10, 33, 50, 87.5]:
    ch, cw = h * pct / 100, w * pct / 100
    top, left = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0))
    box = tuple(int(round(v)) for v in (left, top, left + cw, top + ch))
    name = f"crop-{pct}.png"
    img.crop(box).save(out / name)
    cases["crop"].append({"percent": pct, "file": name, "box": box})
(out / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")
