import os
from pathlib import Path

import numpy as np
import pytest

import apsig


@pytest.fixture(scope="session")
def images():
    """Twelve synthetic 28x28 grey images in [0, 1] (no data set needed)."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:28, 0:28]
    out = []
    for _ in range(12):
        cy, cx, r = rng.uniform(8, 20), rng.uniform(8, 20), rng.uniform(3, 8)
        blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))
        out.append(np.clip(blob + 0.1 * rng.random((28, 28)), 0, 1))
    return np.asarray(out, dtype=np.float32)[..., None]


@pytest.fixture(scope="session")
def model_file(tmp_path_factory):
    """An untrained TargetNet-S saved in apsig's model format."""
    path = tmp_path_factory.mktemp("model") / "target.safetensors"
    apsig.Model.init("targetnet-s", seed=3).save(str(path))
    return path


@pytest.fixture(scope="session")
def dirs():
    return apsig.Directions.generate("gaussian", k=16, seed=1, shape=(28, 28, 1))


def data_dir():
    """The shared data sets (MNIST), if this machine has them."""
    for d in [os.environ.get("APSIG_DATA_DIR"), Path(__file__).resolve().parents[2].parent / "shared" / "data"]:
        if d and (Path(d) / "mnist").is_dir():
            return str(d)
    return None


needs_mnist = pytest.mark.skipif(data_dir() is None, reason="MNIST not found (set APSIG_DATA_DIR)")
