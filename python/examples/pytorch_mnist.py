"""A PyTorch CNN trained on MNIST, attacked through a Python callable with apsig.

The whole attack of the CLI's quick run (`apsig run`), with the target M a PyTorch module
instead of apsig's own TargetNet-S: the same architecture, data, directions, search, prior,
decoder and metrics, so the figures are comparable with docs/results/quick/metrics.json.

    pip install ./python torch        # from the repository root
    python python/examples/pytorch_mnist.py --data-dir ../shared/data --out runs/pytorch

Writes OUT/metrics.json and OUT/fig2.png (test originals over their reconstructions).
`--small` runs a tenth of the quick run's size in a few minutes.
"""

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F

import apsig
from figure import write_outputs


class TargetNetS(torch.nn.Module):
    """apsig's TargetNet-S: conv 16 k5, pool, ReLU; conv 32 k5, pool, ReLU; 512 -> 128 -> 10."""

    def __init__(self):
        super().__init__()
        self.c1 = torch.nn.Conv2d(1, 16, 5)
        self.c2 = torch.nn.Conv2d(16, 32, 5)
        self.f1 = torch.nn.Linear(512, 128)
        self.f2 = torch.nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(F.max_pool2d(self.c1(x), 2))
        x = F.relu(F.max_pool2d(self.c2(x), 2))
        return self.f2(F.relu(self.f1(x.flatten(1))))


def train(model, images, labels, epochs, seed):
    """Adam with a cosine decay, batches of 128 (the CLI's schedule)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels.astype(np.int64))
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * ((len(x) + 127) // 128)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps, eta_min=2e-3 * 0.02)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 128):
            b = order[i : i + 128]
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.4f}")
    model.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="runs/pytorch")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="a tenth of the quick run's size")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(args.seed)
    torch.set_num_threads(os.cpu_count() or 1)
    cfg = apsig.run_config("quick", seed=args.seed)  # the sizes of the CLI's quick run
    n_train, n_test = cfg["train_signatures"]["count"], cfg["test_signatures"]["count"]
    epochs, dec_epochs = cfg["target"]["epochs"], cfg["decoder"]["train"]["epochs"]
    if args.small:
        n_train, n_test, epochs, dec_epochs = n_train // 10, n_test // 10, 2, 10
    t_all = time.time()
    data = apsig.load_dataset("mnist", data_dir=args.data_dir)

    # the target M: a PyTorch module, known to apsig only through `classify`
    model = TargetNetS()
    train(model, data.train_images, data.train_labels, epochs, args.seed)

    @torch.inference_mode()
    def classify(batch):  # float32 [n, 1, 28, 28] -> logits [n, 10]
        return model(torch.from_numpy(batch))

    acc = (classify(np.ascontiguousarray(data.test_images.transpose(0, 3, 1, 2))).argmax(1).numpy() == data.test_labels).mean()
    print(f"target M (PyTorch): test accuracy {100 * acc:.2f}%")

    # the independent evaluator: apsig's EvalNet, another architecture and seed
    evaluator = apsig.Model.train(
        data.train_images, data.train_labels, arch="evalnet", epochs=cfg["evaluator"]["epochs"], seed=args.seed + 1000
    )

    dirs = apsig.Directions.generate("gaussian", k=cfg["directions"]["k"], seed=args.seed, shape=(28, 28, 1))
    search = cfg["train_signatures"]["extract"]["search"]
    own = data.train_images[:n_train]
    # the adversary's own images: white-box (margins of its copy of M), started at a pilot's medians
    t0 = time.time()
    pilot = apsig.signatures(classify, own[:256], dirs, method="white-box", search=search, layout="nchw")
    train_sigs = apsig.signatures(
        classify, own, dirs, method="white-box", search=search, starts=pilot.median_eps(), layout="nchw"
    )
    t_train = time.time() - t0
    # the secrets: change bits only, started at the training signatures' medians (the prior)
    secrets, labels = data.test_images[:n_test], data.test_labels[:n_test]
    t0 = time.time()
    test_sigs = apsig.signatures(classify, secrets, dirs, search=search, starts=train_sigs.median_eps(), layout="nchw")
    t_test = time.time() - t0

    d = cfg["decoder"]
    decoder = apsig.Decoder.fit(
        train_sigs, own, width=d["width"], use_mask=d["use_mask"], epochs=dec_epochs, seed=d["train"]["seed"]
    )
    recons = decoder.reconstruct(test_sigs)
    glob, per_class = apsig.baselines(data.train_images, data.train_labels)
    metrics = {
        "target_test_accuracy": float(acc),
        "k": dirs.k,
        "train_images": n_train,
        "test_images": n_test,
        "test_queries_per_image": test_sigs.total_queries / n_test,
        "test_censored_fraction": test_sigs.censored_fraction,
        "decoder": apsig.quality(recons, secrets, labels, evaluator),
        "global_mean_baseline": apsig.quality(np.repeat(glob, n_test, 0), secrets, labels, evaluator),
        "class_mean_baseline": apsig.quality(per_class[labels], secrets, labels, evaluator),
        "seconds": {"train_signatures": t_train, "test_signatures": t_test, "total": time.time() - t_all},
    }
    write_outputs(args.out, metrics, secrets, recons)


if __name__ == "__main__":
    main()
