"""PyTorch peer for `apsig bench`: the same TargetNet-S forward pass and the same plain eps
search, on the same weights and inputs, so apsig's figures can be printed as ratios.

A measuring stick only: nothing in apsig depends on it.
usage: torch_peer.py MODEL.safetensors INPUTS.safetensors EPS_OUT.bin
"""
import json
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

torch.set_num_threads(2)


def read_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        assert info["dtype"] == "F32"
        out[name] = torch.from_numpy(np.frombuffer(raw[base + a : base + b], dtype="<f4").copy()).reshape(info["shape"])
    return out


class TargetNetS(torch.nn.Module):
    """apsig stores conv weights channels-last as [k*k*cin, cout]; convert to OIHW."""

    def __init__(self, t):
        super().__init__()
        conv = lambda w, k, cin: w.reshape(k, k, cin, -1).permute(3, 2, 0, 1).contiguous()
        self.w1, self.b1 = conv(t["layers.0.weight"], 5, 1), t["layers.0.bias"]
        self.w2, self.b2 = conv(t["layers.3.weight"], 5, 16), t["layers.3.bias"]
        self.w3, self.b3 = t["layers.6.weight"], t["layers.6.bias"]
        self.w4, self.b4 = t["layers.8.weight"], t["layers.8.bias"]

    def forward(self, x):  # x: [n, 1, 28, 28]
        x = F.relu(F.max_pool2d(F.conv2d(x, self.w1, self.b1), 2))
        x = F.relu(F.max_pool2d(F.conv2d(x, self.w2, self.b2), 2))
        x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)  # apsig flattens channels-last
        x = F.relu(x @ self.w3 + self.b3)
        return x @ self.w4 + self.b4


def forward_rate(model, x, secs=2.0):
    with torch.inference_mode():
        model(x)
        t0, calls = time.perf_counter(), 0
        while time.perf_counter() - t0 < secs or calls < 3:
            model(x)
            calls += 1
        return calls * x.shape[0] / (time.perf_counter() - t0)


def plain_search(model, images, dirs, start=0.5, growth=2.0, eps_max=64.0, eps_min=1e-4, tol=1e-3, chunk=4096):
    """The same state machine as apsig's EpsSearch (change bits only), vectorised over all
    (image, direction) pairs."""
    n, k = images.shape[0], dirs.shape[0]
    with torch.inference_mode():
        cls = model(images.reshape(n, 1, 28, 28)).argmax(1)
        img = torch.arange(n).repeat_interleave(k)
        dr = torch.arange(k).repeat(n)
        UP, DOWN, REFINE, DONE = 0, 1, 2, 3
        phase = torch.zeros(n * k, dtype=torch.long)
        nxt = torch.full((n * k,), start)
        lo = torch.zeros(n * k)
        hi = torch.full((n * k,), float("inf"))
        eps_out = torch.full((n * k,), float("nan"))
        queries = torch.zeros(n * k, dtype=torch.long)
        while True:
            done_now = (phase == REFINE) & (hi <= lo * (1 + tol))
            eps_out[done_now] = hi[done_now]
            phase[done_now] = DONE
            active = (phase != DONE).nonzero().flatten()
            if active.numel() == 0:
                break
            probe = torch.where(phase[active] == REFINE, (lo[active] * hi[active]).sqrt(), nxt[active])
            flips = torch.empty(active.numel(), dtype=torch.bool)
            for s in range(0, active.numel(), chunk):
                a = active[s : s + chunk]
                x = images[img[a]] + probe[s : s + chunk, None] * dirs[dr[a]]
                flips[s : s + chunk] = model(x.reshape(-1, 1, 28, 28)).argmax(1) != cls[img[a]]
            queries[active] += 1
            ph = phase[active]
            for p_, f_ in ((UP, True), (UP, False), (DOWN, True), (DOWN, False), (REFINE, True), (REFINE, False)):
                m = (ph == p_) & (flips == f_)
                idx, e = active[m], probe[m]
                if idx.numel() == 0:
                    continue
                if p_ == UP and f_:
                    hi[idx] = e
                    phase[idx] = torch.where(lo[idx] == 0, DOWN, REFINE)
                    nxt[idx] = e / growth
                elif p_ == UP:
                    cens = e >= eps_max
                    eps_out[idx[cens]] = eps_max
                    phase[idx[cens]] = DONE
                    lo[idx[~cens]] = e[~cens]
                    nxt[idx[~cens]] = torch.clamp(e[~cens] * growth, max=eps_max)
                elif p_ == DOWN and f_:
                    hi[idx] = e
                    floor = e <= eps_min
                    eps_out[idx[floor]] = e[floor]
                    phase[idx[floor]] = DONE
                    nxt[idx[~floor]] = torch.clamp(e[~floor] / growth, min=eps_min)
                elif p_ == DOWN:
                    lo[idx] = e
                    phase[idx] = REFINE
                elif f_:
                    hi[idx] = e
                else:
                    lo[idx] = e
        return eps_out, queries


def main():
    model = TargetNetS(read_safetensors(sys.argv[1]))
    inputs = read_safetensors(sys.argv[2])
    images, dirs = inputs["images"], inputs["directions"]
    fw = []
    for b in (256, 1024, 4096):
        x = torch.rand(b, 1, 28, 28)
        fw.append({"batch": b, "images_per_sec": forward_rate(model, x)})
    t0 = time.perf_counter()
    eps, q = plain_search(model, images, dirs)
    secs = time.perf_counter() - t0
    eps.numpy().astype("<f4").tofile(sys.argv[3])
    print(json.dumps({
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "forward": fw,
        "signatures": {"images": images.shape[0], "seconds": secs, "images_per_sec": images.shape[0] / secs,
                       "queries_per_eps": q.float().mean().item()},
    }))


if __name__ == "__main__":
    main()
