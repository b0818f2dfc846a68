"""SSIM reference values from torchmetrics, for crates/core/tests/ssim.rs.

Writes image pairs as 8-bit RGB PNGs and `cases.json` with the SSIM that torchmetrics'
StructuralSimilarityIndexMeasure(data_range=1.0) gives for each pair, fed the way shift-attention
feeds it (ToTensor: uint8 / 255, shape [1, 3, H, W]), computed as shift-attention runs it (f32)
and in f64.

    pip install torch torchmetrics numpy
    python scripts/reference/make_ssim_reference.py crates/core/tests/data/ssim
"""

import json
import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import torch
import torchmetrics
from torchmetrics.image import StructuralSimilarityIndexMeasure


def write_png(path: Path, rgb: np.ndarray) -> None:
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].astype(np.uint8).tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    path.write_bytes(png)


def box_blur(img: np.ndarray, r: int) -> np.ndarray:
    out = img.astype(np.float64)
    for axis in (0, 1):
        acc = np.zeros_like(out)
        for d in range(-r, r + 1):
            acc += np.roll(out, d, axis=axis)
        out = acc / (2 * r + 1)
    return out


def pairs(rng: np.random.Generator):
    yy, xx = np.mgrid[0:64, 0:64]
    smooth = np.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1).clip(0, 255)
    noise = rng.integers(0, 256, (64, 64, 3))
    yield "noise-vs-noise", noise, rng.integers(0, 256, (64, 64, 3))
    yield "noise-vs-blurred", noise, box_blur(noise, 2)
    yield "gradient-vs-noisy", smooth, (smooth + rng.normal(0, 20, smooth.shape)).clip(0, 255)
    yield "gradient-vs-shifted", smooth, np.roll(smooth, 3, axis=1)
    yield "identical", noise, noise
    yield "flat-vs-flat", np.full((64, 64, 3), 128), np.full((64, 64, 3), 131)
    blobs = box_blur(rng.integers(0, 256, (48, 80, 3)), 4)
    yield "blobs-80x48-vs-jitter", blobs, (blobs + rng.normal(0, 6, blobs.shape)).clip(0, 255)
    odd = rng.integers(0, 256, (17, 23, 3))
    yield "odd-23x17", odd, box_blur(odd, 1)
    yield "inverted", smooth, 255 - smooth


def main() -> None:
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20261205)
    cases = []
    for name, a, b in pairs(rng):
        a = np.asarray(a).round().astype(np.uint8)
        b = np.asarray(b).round().astype(np.uint8)
        write_png(out / f"{name}-a.png", a)
        write_png(out / f"{name}-b.png", b)
        ta = torch.from_numpy(a).permute(2, 0, 1).float().div(255).unsqueeze(0)
        tb = torch.from_numpy(b).permute(2, 0, 1).float().div(255).unsqueeze(0)
        value = float(StructuralSimilarityIndexMeasure(data_range=1.0)(ta, tb))
        exact = float(StructuralSimilarityIndexMeasure(data_range=1.0).double()(ta.double(), tb.double()))
        case = {"name": name, "a": f"{name}-a.png", "b": f"{name}-b.png", "ssim": value, "ssim_f64": exact}
        if name.startswith("flat"):
            # Zero variance: torch's f32 sums cancel to noise of about 1e-7, which the small C2
            # (9e-4) turns into an error of a few 1e-4 in the f32 result.
            case["f32_cancellation"] = True
        cases.append(case)
        print(f"{name}: {value} (f64: {exact})")
    meta = {"torch": torch.__version__, "torchmetrics": torchmetrics.__version__, "cases": cases}
    (out / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
