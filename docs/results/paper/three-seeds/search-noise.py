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
import json, struct, sys
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
