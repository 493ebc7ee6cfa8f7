"""PyTorch peer for `apsig bench`: the same TargetNet-S forward pass, the same plain eps
search and the same training (TargetNet-S and the decoder, Adam, batch 128), on the same
weights and inputs, so apsig's figures can be printed as ratios.

The peer is the fastest plain PyTorch a researcher would write: each workload is timed as
written with functional calls, as a standard `nn.Module` (conv, ReLU, pool), channels-last, and
under `torch.compile`; the best variant counts and its name is reported.

A measuring stick only: nothing in apsig depends on it.
usage: torch_peer.py MODEL.safetensors INPUTS.safetensors  (then requests on stdin; see `main`)
"""
import json
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

# the same threads as apsig (the bench passes its rayon thread count)
torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))


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
        dtype = {"F32": "<f4", "U8": "u1"}[info["dtype"]]
        out[name] = torch.from_numpy(np.frombuffer(raw[base + a : base + b], dtype=dtype).copy()).reshape(info["shape"])
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


def standard_module(t):
    """TargetNet-S as a researcher writes it: conv, ReLU, pool (the same function as apsig's
    pool-then-ReLU; both are monotone), the same weights."""
    m = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(512, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10),
    )
    ref = TargetNetS(t)
    with torch.no_grad():
        m[0].weight.copy_(ref.w1), m[0].bias.copy_(ref.b1)
        m[3].weight.copy_(ref.w2), m[3].bias.copy_(ref.b2)
        # apsig flattens channels-last (h, w, c); nn.Flatten flattens (c, h, w)
        w3 = ref.w3.reshape(4, 4, 32, 128).permute(2, 0, 1, 3).reshape(512, 128)
        m[7].weight.copy_(w3.T), m[7].bias.copy_(ref.b3)
        m[9].weight.copy_(ref.w4.T), m[9].bias.copy_(ref.b4)
    return m


def timed_rate(step, items, secs):
    """Items per second of `step()` over at least `secs` seconds, after two warm-up calls."""
    step(), step()
    t0, calls = time.perf_counter(), 0
    while time.perf_counter() - t0 < secs or calls < 3:
        step()
        calls += 1
    return calls * items / (time.perf_counter() - t0)


def compiled(m):
    try:
        return torch.compile(m)
    except Exception:  # no compiler toolchain: the variant is skipped
        return None


def best_of(variants, measure):
    """Measures every variant, returns (best rate, its name, all rates)."""
    rates = {}
    for name, v in variants:
        if v is None or (isinstance(v, tuple) and v[0] is None):
            continue
        try:
            rates[name] = measure(v)
        except Exception as e:  # e.g. torch.compile without a working C++ toolchain
            print(f"variant {name} failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}", file=sys.stderr)
    best = max(rates, key=rates.get)
    return rates[best], best, rates


def forward_variants(t):
    std = standard_module(t).eval()
    with torch.inference_mode():  # the variants compute the same function
        x = torch.rand(8, 1, 28, 28)
        assert torch.allclose(std(x), TargetNetS(t)(x), atol=1e-4), "nn.Module variant differs from the model"
    cl = standard_module(t).eval().to(memory_format=torch.channels_last)
    return [
        ("functional", (TargetNetS(t), False)),
        ("nn.Module", (std, False)),
        ("nn.Module channels-last", (cl, True)),
        ("torch.compile nn.Module", (compiled(std), False)),
        ("torch.compile channels-last", (compiled(cl), True)),
    ]


def forward_rate(variant, batch, secs):
    model, channels_last = variant
    x = torch.rand(batch, 1, 28, 28)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        with torch.inference_mode():
            model(x)

    return timed_rate(step, batch, secs)


def decoder_module(k_in, width=64):
    """The reference decoder: Linear -> BN -> ReLU -> ConvT -> BN -> ReLU -> ConvT -> Sigmoid."""
    return torch.nn.Sequential(
        torch.nn.Linear(k_in, 2 * width * 49), torch.nn.BatchNorm1d(2 * width * 49), torch.nn.ReLU(),
        torch.nn.Unflatten(1, (2 * width, 7, 7)),
        torch.nn.ConvTranspose2d(2 * width, width, 4, 2, 1), torch.nn.BatchNorm2d(width), torch.nn.ReLU(),
        torch.nn.ConvTranspose2d(width, 1, 4, 2, 1), torch.nn.Sigmoid(), torch.nn.Flatten(),
    )


def train_rate(make, x, y, loss_fn, secs, batch=128, channels_last=False, compile_=False):
    """Images/s of Adam training (lr 2e-3, batch 128, shuffled) on (x, y)."""
    torch.manual_seed(0)
    model = make().train()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    fwd = torch.compile(model) if compile_ else model
    n = x.shape[0]
    state = {"order": torch.randperm(n), "at": 0}

    def step():
        a = state["at"]
        if a + batch > n:
            state["order"], a = torch.randperm(n), 0
        idx = state["order"][a : a + batch]
        state["at"] = a + batch
        xb = x[idx]
        if channels_last and xb.dim() == 4:
            xb = xb.contiguous(memory_format=torch.channels_last)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(fwd(xb), y[idx])
        loss.backward()
        opt.step()

    return timed_rate(step, batch, secs)


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


class Peer:
    """The workloads, each measured on request. The first request for a workload times every
    variant and keeps the fastest; later requests time only that one, so the bench can
    alternate short rounds of apsig and the peer on a noisy machine."""

    def __init__(self, model_path, inputs_path):
        t = read_safetensors(model_path)
        self.t = t
        self.model = TargetNetS(t)
        inputs = read_safetensors(inputs_path)
        self.images, self.dirs = inputs["images"], inputs["directions"]
        self.forward_variants = forward_variants(t)
        self.train_x = inputs["train_images"].reshape(-1, 1, 28, 28)
        self.train_y = inputs["train_labels"].long()
        self.dec_x, self.dec_y = inputs["decoder_inputs"], inputs["train_images"]
        self.chosen = {}  # workload -> name of its fastest variant

    def measure(self, workload, variants, rate_of):
        if workload in self.chosen:
            name = self.chosen[workload]
            return {"images_per_sec": rate_of(dict(variants)[name]), "variant": name}
        rate, name, rates = best_of(variants, rate_of)
        self.chosen[workload] = name
        return {"images_per_sec": rate, "variant": name, "variants": rates}

    def forward(self, batch, secs):
        return self.measure(f"forward {batch}", self.forward_variants, lambda m: forward_rate(m, batch, secs))

    def train_targetnet(self, secs):
        variants = [
            ("nn.Module", dict()),
            ("nn.Module channels-last", dict(channels_last=True)),
            ("torch.compile nn.Module", dict(compile_=True)),
            ("torch.compile channels-last", dict(channels_last=True, compile_=True)),
        ]
        make = lambda: standard_module(self.t)
        ce = torch.nn.functional.cross_entropy
        return self.measure("train targetnet", variants,
                            lambda kw: train_rate(make, self.train_x, self.train_y, ce, secs, **kw))

    def train_decoder(self, secs):
        variants = [
            ("nn.Module", dict()),
            ("nn.Module channels-last", dict(channels_last=True)),
            ("torch.compile nn.Module", dict(compile_=True)),
        ]
        make = lambda: decoder_module(self.dec_x.shape[1])
        mse = torch.nn.functional.mse_loss
        return self.measure("train decoder", variants,
                            lambda kw: train_rate(make, self.dec_x, self.dec_y, mse, secs, **kw))

    def signatures(self, eps_out):
        t0 = time.perf_counter()
        eps, q = plain_search(self.model, self.images, self.dirs)
        secs = time.perf_counter() - t0
        eps.numpy().astype("<f4").tofile(eps_out)
        n = self.images.shape[0]
        return {"images": n, "seconds": secs, "images_per_sec": n / secs, "queries_per_eps": q.float().mean().item()}


def main():
    """One JSON request per line on stdin, one JSON reply per line on stdout:
    {"run": "forward", "batch": 256, "secs": 2}, {"run": "train_targetnet", "secs": 2},
    {"run": "train_decoder", "secs": 2}, {"run": "signatures", "eps_out": PATH}.
    The first line out says the peer is ready; end of input ends it."""
    peer = Peer(sys.argv[1], sys.argv[2])
    print(json.dumps({"ready": True, "torch_version": torch.__version__, "threads": torch.get_num_threads()}),
          flush=True)
    for line in sys.stdin:
        req = json.loads(line)
        run = req["run"]
        if run == "forward":
            reply = peer.forward(int(req["batch"]), float(req["secs"]))
        elif run == "train_targetnet":
            reply = peer.train_targetnet(float(req["secs"]))
        elif run == "train_decoder":
            reply = peer.train_decoder(float(req["secs"]))
        elif run == "signatures":
            reply = peer.signatures(req["eps_out"])
        else:
            raise ValueError(f"unknown request {run!r}")
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
