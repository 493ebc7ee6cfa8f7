"""What the secrets' search costs the decoder at seed 3 (README.md, "The search's share").

Usage: python search-noise.py SECRETS EXACT OUT_DIR
  SECRETS: the secrets' signatures (change-bit search), e.g. runs/mx-3/signatures-test.safetensors
  EXACT:   the same secrets measured white-box (margins, 1%), as the training signatures are:
           apsig signatures --split test --method white-box --growth 1.6 --rel-tol 0.01 --prior RUN/signatures-train.safetensors ...
Prints how the two disagree and writes two hybrids into OUT_DIR, each to decode with
`apsig reconstruct --decoder RUN/decoder.safetensors --signatures OUT_DIR/<name>.safetensors`:
  fix-big:   the change-bit eps with the entries that disagree grossly (censored on one side only,
             or more than 35% apart) replaced by the exact ones;
  fix-small: the other way round: the exact eps except where the two disagree grossly.
"""
import os, sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ab"))
from safetensors_np import load, save  # noqa: E402

secrets, exact, out = sys.argv[1:4]
meta, sec = load(secrets)
_, ex = load(exact)
assert (sec["indices"][1] == ex["indices"][1]).all(), "the two files hold other secrets"
se, sc = sec["eps"][1], sec["censored"][1].astype(bool)
xe, xc = ex["eps"][1], ex["censored"][1].astype(bool)
ratio = np.abs(np.log(se / xe))
gross = (sc != xc) | (ratio > np.log(1.35))
both = ~sc & ~xc
print(f"entries: {se.size}; censored by the search only {(sc & ~xc).mean():.4%}, by the exact only {(~sc & xc).mean():.4%}")
print(f"more than 35% apart (both measured): {((sc == xc) & (ratio > np.log(1.35))).mean():.4%}; gross in all {gross.mean():.4%}")
print(f"both measured: |ln(search / exact)| median {np.median(ratio[both]):.4f}, mean {ratio[both].mean():.4f}, 90th percentile {np.quantile(ratio[both], 0.9):.4f}")
for name, take_exact in [("fix-big", gross), ("fix-small", ~gross)]:
    eps = np.where(take_exact, xe, se).astype(np.float32)
    cen = np.where(take_exact, xc, sc).astype(sec["censored"][1].dtype)
    save(f"{out}/{name}.safetensors", meta, {**sec, "eps": ("F32", eps), "censored": (sec["censored"][0], cen)})
    print(f"{name}: {take_exact.mean():.4%} of the entries exact -> {out}/{name}.safetensors")
