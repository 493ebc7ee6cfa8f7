"""Reading and writing safetensors files as NumPy arrays, for the analysis scripts beside
result files (median-checks.py, ../paper/three-seeds/search-noise.py)."""
import json, struct

import numpy as np

DT = {"F32": np.float32, "U8": np.uint8, "U32": np.uint32}


def load(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8 : 8 + n])
    t = {}
    for k, v in head.items():
        if k != "__metadata__":
            a, b = v["data_offsets"]
            t[k] = (v["dtype"], np.frombuffer(raw[8 + n + a : 8 + n + b], DT[v["dtype"]]).reshape(v["shape"]).copy())
    return head.get("__metadata__", {}), t


def save(path, meta, t):
    head, off, blobs = {"__metadata__": meta}, 0, []
    for k, (dt, a) in t.items():
        b = a.tobytes()
        head[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(head).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    open(path, "wb").write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
