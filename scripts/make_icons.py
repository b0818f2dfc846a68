#!/usr/bin/env python3
"""Draws Keyshift's app icons (public/icons/*.png) with the standard library only.

The motif: two keyframe diamonds joined by an eased curve, violet to cyan, on the app's dark
background. `maskable` keeps the motif inside the central 80 % safe zone on a full-bleed background.
Run from the repository root: python3 scripts/make_icons.py
"""
import math
import struct
import zlib

BG = (0x14, 0x16, 0x1C)
A = (0x9B, 0x6B, 0xFF)  # violet
B = (0x2E, 0xD3, 0xE6)  # cyan


def mix(c0, c1, t):
    return tuple(round(a + (b - a) * t) for a, b in zip(c0, c1))


def coverage(x, y, scale):
    """Colour of the motif at (x, y) in [0,1]^2 units, or None outside it."""
    # Motif drawn in a box [0.15, 0.85] scaled around the centre by `scale`.
    u = (x - 0.5) / scale + 0.5
    v = (y - 0.5) / scale + 0.5
    # Keyframe diamonds.
    for cx, cy, col in ((0.27, 0.70, A), (0.73, 0.30, B)):
        if abs(u - cx) + abs(v - cy) < 0.13:
            return col
    # Smoothstep curve between them, as a thick stroke.
    if 0.27 <= u <= 0.73:
        t = (u - 0.27) / 0.46
        s = t * t * (3 - 2 * t)
        cy = 0.70 + (0.30 - 0.70) * s
        if abs(v - cy) < 0.035:
            return mix(A, B, t)
    return None


def render(size, scale, rounded):
    rows = []
    ss = 4
    radius = 0.18 if rounded else 0.0
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(ss):
                for sx in range(ss):
                    x = (px + (sx + 0.5) / ss) / size
                    y = (py + (sy + 0.5) / ss) / size
                    if rounded and outside_rounded(x, y, radius):
                        continue
                    col = coverage(x, y, scale) or BG
                    acc[0] += col[0]
                    acc[1] += col[1]
                    acc[2] += col[2]
                    acc[3] += 255
            n = ss * ss
            alpha = acc[3] / n
            if alpha > 0:
                row += bytes(round(c / (acc[3] / 255)) for c in acc[:3])
            else:
                row += bytes(3)
            row.append(round(alpha))
        rows.append(bytes(row))
    return png(size, b"".join(rows))


def outside_rounded(x, y, r):
    cx = min(max(x, r), 1 - r)
    cy = min(max(y, r), 1 - r)
    return math.hypot(x - cx, y - cy) > r


def png(size, raw):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main():
    outputs = {
        "public/icons/icon-192.png": render(192, 1.0, True),
        "public/icons/icon-512.png": render(512, 1.0, True),
        "public/icons/maskable-512.png": render(512, 0.72, False),
    }
    for path, data in outputs.items():
        with open(path, "wb") as f:
            f.write(data)
        print(path, len(data), "bytes")


if __name__ == "__main__":
    main()
