#!/usr/bin/env python3
"""Reference data for Deforum's 2D motion steps (crates/core/tests/data/warp).

- warp: OpenCV's warpPerspective(img, R·T, INTER_LINEAR, BORDER_REPLICATE | BORDER_WRAP), where R is
  getRotationMatrix2D((W//2, H//2), angle, zoom) and T the translation, both 3×3 (as Deforum's
  anim_frame_warp_2d).
- colour: scikit-image's match_histograms(channel_axis=-1) on 8-bit L*a*b* (OpenCV's layout:
  L·255/100, a+128, b+128; the float sRGB/D65 formula below), back to RGB; and, for the record,
  Deforum's own path through cv2.cvtColor. Attention-Interpolation's other two spaces: the same
  matching on the RGB bytes, and on OpenCV's 8-bit HSV (H in 0..180) through cv2.cvtColor both ways.
- noise: Deforum's add_noise (white): torch.randn((3, H, W)) from the seed, to bytes, then
  cv2.addWeighted on the BGR buffer.

Needs numpy, opencv-python-headless, scikit-image, torch and Pillow (PyPI).
"""
import json
import pathlib

import cv2
import numpy as np
import torch
from PIL import Image
from skimage.exposure import match_histograms

OUT = pathlib.Path(__file__).resolve().parents[2] / "crates/core/tests/data/warp"
W, H = 64, 48

M = np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
              [0.019334, 0.119193, 0.950227]])
WHITE = np.array([0.950456, 1.0, 1.088754])


def save(name, rgb):
    Image.fromarray(rgb.astype(np.uint8), "RGB").save(OUT / name)


def source(seed):
    """A smooth picture with edges and a little texture."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float64)
    r = 128 + 100 * np.sin(xs / 7 + seed) * np.cos(ys / 9)
    g = np.where((xs - 30) ** 2 + (ys - 20) ** 2 < 150, 220, 40 + 2 * ys)
    b = (xs * 3 + ys * 2 + 40 * seed) % 256
    img = np.stack([r, g, b], -1) + rng.normal(0, 6, (H, W, 3))
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def matrix(angle, zoom, tx, ty):
    rot = np.vstack([cv2.getRotationMatrix2D((W // 2, H // 2), angle, zoom), [0, 0, 1]])
    trans = np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64)
    return rot @ trans


def rgb_to_lab(img):
    c = img.astype(np.float64) / 255
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = lin @ M.T / WHITE
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    lum = np.where(xyz[..., 1] > 0.008856, 116 * f[..., 1] - 16, 903.3 * xyz[..., 1])
    lab = np.stack([lum * 255 / 100, 500 * (f[..., 0] - f[..., 1]) + 128,
                    200 * (f[..., 1] - f[..., 2]) + 128], -1)
    return np.clip(np.round(lab), 0, 255).astype(np.uint8)


def lab_to_rgb(lab):
    lab = lab.astype(np.float64)
    lum, a, b = lab[..., 0] * 100 / 255, lab[..., 1] - 128, lab[..., 2] - 128
    fy = (lum + 16) / 116

    def finv(t):
        return np.where(t > 6 / 29, t ** 3, (t - 16 / 116) / 7.787)

    y = np.where(lum > 8, fy ** 3, lum / 903.3)
    xyz = np.stack([finv(fy + a / 500) * WHITE[0], y, finv(fy - b / 200) * WHITE[2]], -1)
    lin = np.clip(xyz @ np.linalg.inv(M).T, 0, 1)
    c = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return np.clip(np.round(c * 255), 0, 255).astype(np.uint8)


def add_noise(rgb, amount, seed):
    bgr = rgb[..., ::-1].copy()
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    noise = torch.randn((3, H, W), generator=gen).numpy().transpose(1, 2, 0)
    noise = ((noise * 0.5 + 0.5).clip(0, 1) * 255).astype(np.uint8)
    out = cv2.addWeighted(bgr, 1 - amount, noise, amount, 0)
    return out[..., ::-1]


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    src, other = source(1), source(2)[::-1, :, ::-1].copy()
    save("source.png", src)
    save("other.png", other)
    cases = {"warp": [], "colour": [], "noise": []}
    motions = [(0, 1.05, 0, 0), (0, 0.9, 0, 0), (7.5, 1, 0, 0), (-30, 1, 0, 0),
               (0, 1, 2.3, -1.7), (0, 1, -5, 3), (12, 0.93, 3.1, 2.2), (45, 1.2, -4.5, 6.25)]
    for i, (angle, zoom, tx, ty) in enumerate(motions):
        for border, mode in (("replicate", cv2.BORDER_REPLICATE), ("wrap", cv2.BORDER_WRAP)):
            out = cv2.warpPerspective(src, matrix(angle, zoom, tx, ty), (W, H),
                                      flags=cv2.INTER_LINEAR, borderMode=mode)
            name = f"warp-{i}-{border}.png"
            save(name, out)
            cases["warp"].append({"file": name, "angle": angle, "zoom": zoom, "tx": tx,
                                  "ty": ty, "border": border})
    for name, (a, b) in {"colour-src-other.png": (src, other),
                         "colour-other-src.png": (other, src)}.items():
        save(name, lab_to_rgb(match_histograms(rgb_to_lab(a), rgb_to_lab(b), channel_axis=-1)))
        cv = cv2.cvtColor(match_histograms(cv2.cvtColor(a, cv2.COLOR_RGB2LAB),
                                           cv2.cvtColor(b, cv2.COLOR_RGB2LAB), channel_axis=-1),
                          cv2.COLOR_LAB2RGB)
        save("opencv-" + name, cv)
        cases["colour"].append({"file": name, "opencv": "opencv-" + name,
                                "image": "source.png" if a is src else "other.png",
                                "reference": "other.png" if a is src else "source.png"})
        # Attention-Interpolation's hist_normalize rgb and hsv (its correct_colors_hist).
        hsv = cv2.cvtColor(match_histograms(cv2.cvtColor(a, cv2.COLOR_RGB2HSV),
                                            cv2.cvtColor(b, cv2.COLOR_RGB2HSV), channel_axis=-1),
                           cv2.COLOR_HSV2RGB)
        for space, out in (("rgb", match_histograms(a, b, channel_axis=-1)), ("hsv", hsv)):
            save(f"{space}-{name}", out)
            cases.setdefault("spaces", []).append({
                "space": space, "file": f"{space}-{name}",
                "image": "source.png" if a is src else "other.png",
                "reference": "other.png" if a is src else "source.png"})
    save("hsv-source.png", cv2.cvtColor(src, cv2.COLOR_RGB2HSV))
    save("rgb-from-hsv-source.png", cv2.cvtColor(cv2.cvtColor(src, cv2.COLOR_RGB2HSV), cv2.COLOR_HSV2RGB))
    save("lab-source.png", rgb_to_lab(src))
    save("opencv-lab-source.png", cv2.cvtColor(src, cv2.COLOR_RGB2LAB))
    for amount, seed in ((0.08, 42), (0.3, 1234567)):
        name = f"noise-{seed}.png"
        save(name, add_noise(src, amount, seed))
        cases["noise"].append({"file": name, "amount": amount, "seed": seed})
    (OUT / "cases.json").write_text(json.dumps(cases, indent=1) + "\n")


if __name__ == "__main__":
    main()
