"""Why predicted brackets lost quality on Fashion-MNIST at paper scale (median-checks.txt).

Usage: python median-checks.py FD FP TRAIN_LABELS OUT_DIR
  FD: a run with predicted brackets (its signatures-train and signatures-test are read)
  FP: the same run with the median-started search on the secrets (its signatures-test)
  TRAIN_LABELS: train-labels-idx1-ubyte.gz of the data set
Prints where the two searches disagree and writes into OUT_DIR the predicted signatures with
the disagreeing entries (or only some of them) replaced by the median-started ones, to decode
with `apsig reconstruct --decoder FD/decoder.safetensors --signatures OUT_DIR/<name>`.
"""
import gzip, os, sys
import numpy as np

from safetensors_np import load, save


fd, fp, labels, out = sys.argv[1:5]
_, train = load(f"{fd}/signatures-train.safetensors")
meta, pred = load(f"{fd}/signatures-test.safetensors")
_, med = load(f"{fp}/signatures-test.safetensors")
tr, trc = train["eps"][1].astype(np.float64), train["censored"][1].astype(bool)
pe, pc = pred["eps"][1].astype(np.float64), pred["censored"][1].astype(bool)
me, mc = med["eps"][1].astype(np.float64), med["censored"][1].astype(bool)
k = tr.shape[1]

# 1. censoring is one class per direction
y = np.frombuffer(gzip.open(labels).read()[8:], np.uint8)[train["indices"][1]]
share = [trc[y == np.bincount(y[trc[:, d]], minlength=10).argmax(), d].sum() / max(1, trc[:, d].sum()) for d in range(k)]
print(f"training eps censored {trc.mean():.4f}; median direction: {np.median(share):.4f} of its censored eps in one class")

# 2. where the searches disagree
both = ~pc & ~mc
far = both & (np.abs(np.log(pe / me)) > 0.3)
print(f"secret eps: censored predicted {pc.mean():.4f}, median-started {mc.mean():.4f}; censored by predicted only {(pc & ~mc).mean():.4f}, "
      f"median-started only {(~pc & mc).mean():.4f}; both flip but differ by > 35%: {far.mean():.4f}")

# 3. the predicted search's first probe (its Gaussian model, as EpsPredictor fits it, groups of 10)
z = np.log(tr)
mu = z.mean(0)
cov = np.cov(z, rowvar=False)
cov += 1e-3 * np.trace(cov) / k * np.eye(k)
chol = np.linalg.cholesky(cov)
w = np.linalg.solve(chol, (np.log(pe) - mu).T).T
first = np.zeros_like(pe)
for g in range(0, k, 10):
    for i in range(g, min(k, g + 10)):
        first[:, i] = np.exp(mu[i] + w[:, :g] @ chol[i, :g])
start = np.broadcast_to(np.median(tr, 0), pe.shape)
x = pc & ~mc
print(f"censored by predicted only: first probe / median start, percentiles 10 50 90: {np.percentile((first / start)[x], [10, 50, 90]).round(2)}; "
      f"median-started eps below the median start: {(me[x] < start[x]).mean():.3f}")

# 4. hybrids for the decoder
os.makedirs(out, exist_ok=True)
cases = {
    "all-disagreements": (pc != mc) | far,
    "censored-only": pc != mc,
    "censored-above-start": pc & ~mc & (me < start),
}
cases["plus-low-first-change"] = cases["censored-above-start"] | (far & (first < start / 2.56))
for name, sel in cases.items():
    eps, cen = pred["eps"][1].copy(), pred["censored"][1].copy()
    eps[sel], cen[sel] = med["eps"][1][sel], med["censored"][1][sel]
    save(f"{out}/{name}.safetensors", meta, {**pred, "eps": ("F32", eps), "censored": (pred["censored"][0], cen)})
    print(f"{name}: {sel.mean():.4f} of the entries replaced -> {out}/{name}.safetensors")
