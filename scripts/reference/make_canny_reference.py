#!/usr/bin/env python3
"""Canny hint references: OpenCV's grey conversion and Canny(50, 200), as Attention-Interpolation's
CannyProcessor runs them (cv2.cvtColor(RGB2GRAY), cv2.Canny(image, 50, 200)), on test images.

Images: scikit-image's astronaut and coffee photos resized to 96x72 and 88x64 (cv2 INTER_AREA),
and a synthetic 80x60 picture (shapes, a thin line, a soft gradient, seeded Gaussian noise).
Also Canny(100, 20) (thresholds given the wrong way round; OpenCV swaps them) on the astronaut.

Outputs in crates/core/tests/data/canny/: NAME.png (RGB input), NAME.grey.png, NAME.canny.png
(0/255), astronaut.swapped.canny.png. Run from the repository root (opencv-python-headless,
scikit-image, numpy): python scripts/reference/make_canny_reference.py
"""
import os

import cv2
import numpy as np
from skimage import data

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "core", "tests", "data", "canny")
os.makedirs(OUT, exist_ok=True)


def synthetic():
    rng = np.random.default_rng(7)
    h, w = 60, 80
    y, x = np.mgrid[0:h, 0:w]
    img = np.zeros((h, w, 3), np.float64)
    img[..., 0] = 40 + 120 * x / w
    img[..., 1] = 60 + 80 * y / h
    img[..., 2] = 90
    img[(x - 25) ** 2 + (y - 30) ** 2 < 14 ** 2] = (220, 200, 40)
    img[8:22, 48:72] = (30, 160, 230)
    img[np.abs(y - (0.5 * x + 20)) < 0.8] = (250, 250, 250)
    img += rng.normal(0, 6, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def write(name, rgb):
    cv2.imwrite(os.path.join(OUT, f"{name}.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    cv2.imwrite(os.path.join(OUT, f"{name}.grey.png"), grey)
    edges = cv2.Canny(grey, 50, 200)
    cv2.imwrite(os.path.join(OUT, f"{name}.canny.png"), edges)
    print(name, rgb.shape, "edge pixels:", int((edges > 0).sum()))
    return grey


images = {
    "astronaut": cv2.resize(data.astronaut(), (96, 72), interpolation=cv2.INTER_AREA),
    "coffee": cv2.resize(data.coffee(), (88, 64), interpolation=cv2.INTER_AREA),
    "synthetic": synthetic(),
}
for name, rgb in images.items():
    grey = write(name, rgb)
    if name == "astronaut":
        cv2.imwrite(os.path.join(OUT, "astronaut.swapped.canny.png"), cv2.Canny(grey, 100, 20))
print("opencv", cv2.__version__)
