"""TargetNet-S re-implemented in NumPy from an apsig model file (safetensors read by hand),
so that the tests compare two independent implementations of the same network."""

import json
import struct

import numpy as np


def read_safetensors(path):
    """The tensors (float32) and metadata of a safetensors file."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, t in header.items():
        assert t["dtype"] == "F32", t
        a, b = t["data_offsets"]
        tensors[name] = np.frombuffer(raw[base + a : base + b], dtype="<f4").reshape(t["shape"])
    return tensors, meta


def conv(x, w, b, k):
    """Valid convolution, NHWC; weight [k*k*cin, cout] with rows in (ky, kx, c) order."""
    n, h, wd, c = x.shape
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # [n, oh, ow, c, k, k]
    cols = win.transpose(0, 1, 2, 4, 5, 3).reshape(n, h - k + 1, wd - k + 1, k * k * c)
    return cols @ w + b


def pool(x):
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


class NumpyTargetNet:
    """conv 16 k5, pool, ReLU; conv 32 k5, pool, ReLU; linear 128, ReLU; linear classes."""

    def __init__(self, path):
        t, meta = read_safetensors(path)
        assert meta["architecture"] == "targetnet-s"
        self.p = {k: v.astype(np.float64) for k, v in t.items()}

    def logits(self, x):
        p = self.p
        x = x.astype(np.float64)
        x = np.maximum(pool(conv(x, p["layers.0.weight"], p["layers.0.bias"], 5)), 0)
        x = np.maximum(pool(conv(x, p["layers.3.weight"], p["layers.3.bias"], 5)), 0)
        x = x.reshape(len(x), -1)
        x = np.maximum(x @ p["layers.6.weight"] + p["layers.6.bias"], 0)
        return (x @ p["layers.8.weight"] + p["layers.8.bias"]).astype(np.float32)
