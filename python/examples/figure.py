"""What both examples write: metrics.json and a grey PNG grid of images, with the standard
library only (no matplotlib needed)."""

import json
import os
import struct
import zlib

import numpy as np


def grid_png(path, rows, scale=3, gap=2):
    """Writes `rows` (a list of equally long lists of [h, w] or [h, w, 1] arrays in [0, 1]) as
    one grey PNG: a row of images per list, `scale` pixels per image pixel."""
    rows = [[np.asarray(im, dtype=np.float32).reshape(im.shape[0], im.shape[1]) for im in r] for r in rows]
    h, w = rows[0][0].shape
    cols = max(len(r) for r in rows)
    H, W = len(rows) * (h * scale + gap) + gap, cols * (w * scale + gap) + gap
    canvas = np.full((H, W), 255, dtype=np.uint8)
    for i, r in enumerate(rows):
        for j, im in enumerate(r):
            tile = np.kron(np.clip(im, 0, 1), np.ones((scale, scale)))
            y, x = gap + i * (h * scale + gap), gap + j * (w * scale + gap)
            canvas[y : y + h * scale, x : x + w * scale] = (255 * (1 - tile)).round().astype(np.uint8)

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + canvas[y].tobytes() for y in range(H))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", W, H, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def write_outputs(out_dir, metrics, secrets, recons):
    """Writes ``metrics.json`` and ``fig2.png`` (the first 16 secrets above their
    reconstructions) into ``out_dir``, and prints the metrics."""
    with open(os.path.join(out_dir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    grid_png(os.path.join(out_dir, "fig2.png"), [list(secrets[:16]), list(recons[:16])])
    print(json.dumps(metrics, indent=2))
