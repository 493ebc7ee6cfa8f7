"""Every bad input raises a clear exception and writes nothing."""

import numpy as np
import pytest

import apsig
from numpy_targetnet import NumpyTargetNet


@pytest.fixture
def net(model_file):
    return NumpyTargetNet(model_file)


def refuses(match, f, *args, **kw):
    with pytest.raises(apsig.ApsigError, match=match):
        f(*args, **kw)


def test_bad_images_are_refused_before_any_call(images, dirs, tmp_path):
    called = []

    def classify(b):
        called.append(1)
        return np.zeros(len(b), dtype=np.int64)

    parts = tmp_path / "parts"
    kw = dict(parts_dir=parts, progress=False)
    refuses(r"images: shape \[12, 27, 28, 1\] does not fit images of 28x28x1", apsig.signatures, classify, images[:, 1:], dirs, **kw)
    refuses(r"images: shape \[12, 28, 1, 28\] does not fit", apsig.signatures, classify, images.transpose(0, 1, 3, 2), dirs, **kw)
    refuses(r"images: dtype float64, expected float32", apsig.signatures, classify, images.astype(np.float64), dirs, **kw)
    refuses(r"images: expected a NumPy array, got list", apsig.signatures, classify, images.tolist(), dirs, **kw)
    bad = images.copy()
    bad[3, 4, 5, 0] = np.nan
    refuses(r"images: contains a non-finite value", apsig.signatures, classify, bad, dirs, **kw)
    refuses(r"images: no images", apsig.signatures, classify, images[:0], dirs, **kw)
    refuses(r"invalid layout", apsig.signatures, classify, images, dirs, layout="hwcn", **kw)
    refuses(r"invalid method", apsig.signatures, classify, images, dirs, method="oracle", **kw)
    refuses(r"starts: need 16 positive", apsig.signatures, classify, images, dirs, starts=np.ones(3, np.float32), **kw)
    refuses(r"invalid search config", apsig.signatures, classify, images, dirs, search={"start": 1}, **kw)
    refuses(r"need growth > 1", apsig.signatures, classify, images, dirs, search=apsig.search_config(growth=0.5), **kw)
    refuses(r"unknown keys", apsig.search_config, grow=2.0)
    refuses(r"batch_size and block", apsig.signatures, classify, images, dirs, batch_size=0, **kw)
    refuses(r"neither a callable nor", apsig.signatures, 42, images, dirs, **kw)
    assert not called and not parts.exists()


def test_bad_callables_are_clear_errors_and_write_nothing(images, dirs, net, tmp_path):
    parts = tmp_path / "parts"
    kw = dict(parts_dir=parts, progress=False)

    def raises(b):
        raise RuntimeError("the model server is down")

    with pytest.raises(RuntimeError, match="the model server is down"):
        apsig.signatures(raises, images, dirs, **kw)
    refuses(r"returned 11 answers for a batch of 12 inputs", apsig.signatures, lambda b: net.logits(b)[:-1], images, dirs, **kw)
    refuses(r"returned 13 answers", apsig.signatures, lambda b: np.zeros(len(b) + 1, np.int64), images, dirs, **kw)

    def nan_logits(b):
        z = net.logits(b)
        z[0, 0] = np.nan
        return z

    refuses(r"non-finite score", apsig.signatures, nan_logits, images, dirs, **kw)
    refuses(r"logits of shape \[12, 10, 1\]", apsig.signatures, lambda b: net.logits(b)[..., None], images, dirs, **kw)
    refuses(r"not labels or logits", apsig.signatures, lambda b: np.array(["a"] * len(b)), images, dirs, **kw)
    refuses(r"negative label", apsig.signatures, lambda b: -np.ones(len(b), np.int64), images, dirs, **kw)
    refuses(
        r"white-box route needs logits",
        apsig.signatures,
        lambda b: np.zeros(len(b), np.int64),
        images,
        dirs,
        method="white-box",
        **kw,
    )
    assert not parts.exists()


def test_bad_files_and_arguments_name_the_problem(tmp_path, images):
    missing = tmp_path / "none.safetensors"
    for cls in [apsig.Directions, apsig.SignatureSet, apsig.Decoder, apsig.Model]:
        refuses(str(missing), cls.load, str(missing))
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a tensor file")
    refuses("junk.safetensors", apsig.SignatureSet.load, str(junk))
    d = apsig.Directions.generate("gaussian", 4, 1, (28, 28, 1))
    d.save(str(tmp_path / "d.safetensors"))
    refuses("not an apsig signature file", apsig.SignatureSet.load, str(tmp_path / "d.safetensors"))
    refuses(r"unknown strategy `gauss`", apsig.Directions.generate, "gauss", 4, 1, (28, 28, 1))
    refuses(r"needs the adversary's training data", apsig.Directions.generate, "principal", 4, 1, (28, 28, 1))
    refuses(r"K = 0", apsig.Directions.generate, "gaussian", 0, 1, (28, 28, 1))
    refuses(r"invalid architecture", apsig.Model.init, "resnet")
    refuses(r"invalid preset", apsig.run_config, "huge")
    refuses(r"invalid run config", apsig.run, {"dataset": "mnist"}, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    study = apsig.study_config("smoke", seed=2)
    assert study["seed"] == 2 and study["datasets"]
    refuses(r"invalid study config", apsig.study, {"datasets": ["mnist"]}, str(tmp_path / "study"))
    refuses(r"invalid study preset", apsig.study, "huge", str(tmp_path / "study"))
    assert not (tmp_path / "study").exists()
    refuses(r"labels: expected a 1-D integer array", apsig.identification, images, images, np.zeros(12))
    refuses(r"11 reconstructions, 12 originals", apsig.identification, images[:11], images, np.zeros(12, np.uint8))
