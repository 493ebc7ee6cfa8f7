"""Overhead of apsig's callable route: signatures of 1,000 secrets through a callable wrapping
a PyTorch TargetNet-S, against the same PyTorch model called in a plain batched loop over
the very same probes (recorded during the apsig run, replayed in the same batches).

    python python/bench/callable_overhead.py --data-dir ../shared/data

Prints both throughputs (probes per second) and their ratio; the bar is a ratio >= 0.80.
"""

import argparse
import os
import platform
import sys
import time

import numpy as np
import torch

import apsig

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "examples"))
from pytorch_mnist import TargetNetS, train  # noqa: E402


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--secrets", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=8192)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    threads = torch.get_num_threads()
    data = apsig.load_dataset("mnist", data_dir=args.data_dir)
    model = TargetNetS()
    train(model, data.train_images[:20000], data.train_labels[:20000], 1, args.seed)
    dirs = apsig.Directions.generate("gaussian", k=args.k, seed=args.seed, shape=(28, 28, 1))
    secrets = data.test_images[: args.secrets]

    @torch.inference_mode()
    def logits(batch):
        return model(torch.from_numpy(batch))

    # the prior of the runs: medians of the adversary's own (white-box) signatures
    prior = apsig.signatures(logits, data.train_images[:256], dirs, method="white-box", layout="nchw", progress=False)
    recorded = []
    in_model = [0.0]

    @torch.inference_mode()
    def classify(batch):
        recorded.append(batch.copy())
        t0 = time.perf_counter()
        out = model(torch.from_numpy(batch))
        in_model[0] += time.perf_counter() - t0
        return out

    t0 = time.perf_counter()
    sigs = apsig.signatures(
        classify, secrets, dirs, starts=prior.median_eps(), layout="nchw", batch_size=args.batch_size, progress=False
    )
    t_apsig = time.perf_counter() - t0
    probes = sum(len(b) for b in recorded) - len(secrets)  # the first call classifies the secrets
    assert probes == sigs.total_queries, (probes, sigs.total_queries)

    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in recorded:
            model(torch.from_numpy(b))
    t_plain = time.perf_counter() - t0

    n_all = probes + len(secrets)
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({threads} threads), load average {os.getloadavg()[0]:.1f}")
    print(f"secrets {len(secrets)}, K {dirs.k}, probes {probes} ({sigs.queries_per_eps:.2f} per eps), {len(recorded)} calls, batch <= {args.batch_size}")
    print(f"apsig signatures through the callable: {t_apsig:.2f} s, {n_all / t_apsig:,.0f} inputs/s ({in_model[0]:.2f} s inside the model)")
    print(f"plain batched loop over the same inputs: {t_plain:.2f} s, {n_all / t_plain:,.0f} inputs/s")
    print(f"throughput ratio (apsig / plain): {t_plain / t_apsig:.3f}")
    # robust to load that changes between the two timed parts: apsig's own share of its run
    print(f"apsig's own time (outside the model): {t_apsig - in_model[0]:.2f} s = {100 * (t_apsig - in_model[0]) / t_apsig:.1f}% of its run")


if __name__ == "__main__":
    main()
