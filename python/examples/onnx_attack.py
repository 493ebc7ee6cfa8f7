"""An ONNX classifier attacked with apsig, without PyTorch: onnxruntime runs the model, apsig
sees it only through a callable returning logits.

Any MNIST classifier with one NCHW float32 input [N, 1, 28, 28] and logits out will do: the
PyTorch-exported model the tests use (crates/apsig-onnx/tests/fixtures/grey-target.onnx), the
target of a CLI run exported by apsig, or `torch.onnx.export` of the PyTorch example's:

    cargo run -p apsig-cli -- export-onnx --model runs/quick/target.safetensors -o runs/target.onnx
    pip install ./python onnxruntime
    python python/examples/onnx_attack.py --onnx runs/target.onnx --data-dir ../shared/data --out runs/onnx

Writes OUT/metrics.json and OUT/fig2.png (secrets over their reconstructions).
"""

import argparse
import os

import onnxruntime

import apsig
from figure import write_outputs


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--onnx", required=True, help="an ONNX classifier of [N, 1, 28, 28] MNIST images")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default="runs/onnx")
    ap.add_argument("--train", type=int, default=3000, help="the adversary's own images")
    ap.add_argument("--test", type=int, default=300, help="secrets")
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--evaluator-epochs", type=int, default=3)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    data = apsig.load_dataset("mnist", data_dir=args.data_dir)
    session = onnxruntime.InferenceSession(args.onnx, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    print(f"{args.onnx}: input {name} {session.get_inputs()[0].shape}")

    def classify(batch):  # float32 [n, 1, 28, 28] -> logits [n, classes]
        return session.run(None, {name: batch})[0]

    evaluator = apsig.Model.train(data.train_images, data.train_labels, arch="evalnet", epochs=args.evaluator_epochs, seed=args.seed + 1000)
    dirs = apsig.Directions.generate("gaussian", k=args.k, seed=args.seed, shape=(28, 28, 1))
    own = data.train_images[: args.train]
    train = apsig.signatures(classify, own, dirs, method="white-box", layout="nchw")
    secrets, labels = data.test_images[: args.test], data.test_labels[: args.test]
    test = apsig.signatures(classify, secrets, dirs, starts=train.median_eps(), layout="nchw")
    decoder = apsig.Decoder.fit(train, own, width=32, epochs=10)
    recons = decoder.reconstruct(test)
    _, per_class = apsig.baselines(data.train_images, data.train_labels)
    metrics = {
        "queries_per_secret": test.total_queries / test.n,
        "decoder": apsig.quality(recons, secrets, labels, evaluator),
        "class_mean_baseline": apsig.quality(per_class[labels], secrets, labels, evaluator),
    }
    write_outputs(args.out, metrics, secrets, recons)


if __name__ == "__main__":
    main()
