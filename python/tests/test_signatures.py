"""The callable route against the in-process oracle, and what the callable route promises."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import apsig
from numpy_targetnet import NumpyTargetNet


def same(a, b):
    np.testing.assert_array_equal(a.eps, b.eps)
    np.testing.assert_array_equal(a.censored, b.censored)
    np.testing.assert_array_equal(a.queries, b.queries)
    np.testing.assert_array_equal(a.indices, b.indices)


def test_a_numpy_model_through_the_callable_gives_the_in_process_signatures(images, model_file, dirs):
    model = apsig.Model.load(str(model_file))
    net = NumpyTargetNet(model_file)
    calls = []

    def classify(batch):
        calls.append(len(batch))
        return net.logits(batch)

    for method in ["change-bit", "white-box"]:
        calls.clear()
        inproc = apsig.signatures(model, images, dirs, method=method, progress=False)
        viacall = apsig.signatures(classify, images, dirs, method=method, progress=False)
        if method == "change-bit":
            same(viacall, inproc)  # bit for bit: the secrets' route sees only decisions
        else:
            # margins are real numbers from two implementations (NumPy in float64, apsig in
            # float32), and refinement branches on them (a bracket end within tolerance of the
            # interpolated zero gets one probe, else two): where rounding tips a branch, the
            # search spends a probe more or less and lands elsewhere within its 1% tolerance
            # above the same flip point; everywhere else it agrees to rounding
            differ = viacall.queries != inproc.queries
            assert differ.mean() <= 0.05, differ.mean()
            assert np.abs(viacall.queries.astype(int) - inproc.queries.astype(int)).max() <= 2
            np.testing.assert_array_equal(viacall.censored, inproc.censored)
            np.testing.assert_allclose(viacall.eps, inproc.eps, rtol=0.0101)
            np.testing.assert_allclose(viacall.eps[~differ], inproc.eps[~differ], rtol=1e-4)
        assert viacall.censored_fraction < 1.0 and inproc.eps.min() < 256
        # lockstep: one call for the images' classes, then about one per search round
        rounds = int(inproc.queries.max())
        assert len(calls) <= rounds + 1, (len(calls), rounds)
        assert max(calls) >= len(images) * dirs.k  # the first round: every direction of every image
        assert viacall.provenance["oracle"] == "python callable"
        assert viacall.provenance["directions"] == dirs.fingerprint


def test_labels_layouts_and_batch_sizes_do_not_change_a_bit(images, model_file, dirs):
    net = NumpyTargetNet(model_file)
    want = apsig.signatures(net.logits, images, dirs, progress=False)
    labels = apsig.signatures(lambda b: net.logits(b).argmax(1), images, dirs, progress=False)
    same(labels, want)
    nchw = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    seen = []

    def chw(batch):
        seen.append(batch.shape)
        return net.logits(np.ascontiguousarray(batch.transpose(0, 2, 3, 1)))

    same(apsig.signatures(chw, nchw, dirs, layout="nchw", batch_size=37, block=5, progress=False), want)
    assert all(s[1:] == (1, 28, 28) and s[0] <= 37 for s in seen)
    # images in either layout (told apart by shape), the callable's batches in `layout`
    seen.clear()
    same(apsig.signatures(chw, images, dirs, layout="nchw", progress=False), want)
    same(apsig.signatures(net.logits, nchw, dirs, progress=False), want)
    assert all(s[1:] == (1, 28, 28) for s in seen)


def test_predicted_brackets_from_the_adversarys_signatures(images, model_file, dirs):
    net = NumpyTargetNet(model_file)
    own = apsig.signatures(net.logits, images, dirs, method="white-box", progress=False)
    coarse = apsig.search_config(rel_tol=0.1)
    kw = dict(search=coarse, predict_from=own, predict_group=4, progress=False)
    predicted = apsig.signatures(net.logits, images, dirs, **kw)
    # the same searches in process and through the callable, bit for bit
    same(apsig.signatures(apsig.Model.load(str(model_file)), images, dirs, **kw), predicted)
    assert predicted.provenance["starts"].startswith("predicted:")
    # median checks: another prior, the same searches in process and through the callable
    checked = apsig.signatures(net.logits, images, dirs, median_checks=True, **kw)
    assert checked.provenance["starts"].startswith("predicted-anchored:")
    same(apsig.signatures(apsig.Model.load(str(model_file)), images, dirs, median_checks=True, **kw), checked)
    assert checked.eps.shape == predicted.eps.shape and np.all(checked.queries >= 0)
    with pytest.raises(apsig.ApsigError, match="predict_from"):
        apsig.signatures(net.logits, images, dirs, median_checks=True, progress=False)
    # the flip points within the coarse tolerance of the white-box ones (1e-2), where both flip
    both = (predicted.censored == 0) & (own.censored == 0)
    ratio = predicted.eps[both] / own.eps[both]
    assert both.mean() > 0.5 and np.mean((ratio > 0.985) & (ratio < 1.115)) > 0.9, ratio
    with pytest.raises(apsig.ApsigError, match="not both"):
        apsig.signatures(net.logits, images, dirs, starts=own.median_eps(), predict_from=own, progress=False)
    other = apsig.Directions.generate("gaussian", k=8, seed=1, shape=(28, 28, 1))
    with pytest.raises(apsig.ApsigError, match="K = 16"):
        apsig.signatures(net.logits, images, other, predict_from=own, progress=False)


def test_the_prior_and_the_search_config_reach_the_search(images, model_file, dirs):
    net = NumpyTargetNet(model_file)
    base = apsig.signatures(net.logits, images, dirs, method="white-box", progress=False)
    prior = apsig.signatures(net.logits, images, dirs, starts=base.median_eps(), progress=False)
    assert prior.total_queries < apsig.signatures(net.logits, images, dirs, progress=False).total_queries
    plain = apsig.search_config("plain", eps_max=64.0)
    s = apsig.signatures(net.logits, images, dirs, search=plain, progress=False)
    assert s.eps.max() <= 64.0
    assert '"rel_tol":0.001' in s.provenance["extract"]


def test_progress_reports_every_image(images, model_file, dirs):
    net = NumpyTargetNet(model_file)
    seen = []
    apsig.signatures(net.logits, images, dirs, block=4, progress=lambda *a: seen.append(a))
    assert seen[0] == ("signatures", 0, len(images))
    assert seen[-1] == ("signatures", len(images), len(images))


def test_ctrl_c_stops_within_a_second_and_keeps_finished_blocks(images, model_file, dirs, tmp_path):
    net = NumpyTargetNet(model_file)
    parts = tmp_path / "parts"
    calls = [0]
    sent = []

    def classify(batch):
        calls[0] += 1
        if calls[0] == 30 and not sent:
            sent.append(time.monotonic())
            os.kill(os.getpid(), signal.SIGINT)
        return net.logits(batch)

    # Python's own Ctrl-C handler, even where the test runner was started with SIGINT ignored
    # (a background job of a non-interactive shell is)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            apsig.signatures(classify, images, dirs, block=3, parts_dir=parts, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - sent[0] < 1.0
    kept = sorted(p.name for p in parts.iterdir())
    assert kept and kept[0] == "part-0000000-0000003.safetensors", kept
    # the rerun measures only what is missing and gives the uninterrupted result
    calls[0] = -(10**9)
    resumed = apsig.signatures(classify, images, dirs, block=3, parts_dir=parts, progress=False)
    same(resumed, apsig.signatures(net.logits, images, dirs, block=3, progress=False))


def test_the_gil_is_released_while_rust_works(images, model_file, dirs):
    model = apsig.Model.load(str(model_file))
    ticks = [0]
    done = threading.Event()

    def tick():
        while not done.is_set():
            ticks[0] += 1
            time.sleep(0.001)

    t = threading.Thread(target=tick)
    t.start()
    t0 = time.monotonic()
    big = np.concatenate([images] * 4)
    apsig.signatures(model, big, apsig.Directions.generate("gaussian", 64, 2, (28, 28, 1)), progress=False)
    elapsed = time.monotonic() - t0
    done.set()
    t.join()
    # with the GIL held by Rust the other thread could not tick at all meanwhile
    assert ticks[0] >= max(20, 0.1 * elapsed / 0.001), (ticks[0], elapsed)
