"""Round trips of every artefact, the metrics, every direction strategy, and a whole run
whose files (the CLI's) load into Python and back."""

import json
import shutil

import numpy as np
import pytest

import apsig
from conftest import data_dir, needs_mnist


def test_directions_round_trip_and_every_strategy(images, tmp_path, model_file):
    labels = np.arange(len(images), dtype=np.uint8) % 3
    model = apsig.Model.load(str(model_file))
    for strategy in apsig.STRATEGIES:
        d = apsig.Directions.generate(strategy, 8, 5, (28, 28, 1), images=images, labels=labels, model=model)
        assert d.strategy == strategy and d.array.shape == (8, 28, 28, 1) and d.array.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(d.array.reshape(8, -1), axis=1), 1.0, rtol=1e-3)
        path = tmp_path / f"{strategy}.safetensors"
        d.save(str(path))
        back = apsig.Directions.load(str(path))
        assert back.fingerprint == d.fingerprint and back.k == 8 and back.seed == 5
        np.testing.assert_array_equal(back.array, d.array)
        np.testing.assert_array_equal(d.prefix(3).array, d.array[:3])


def test_tinted_directions_paint_one_pattern_in_one_colour():
    d = apsig.Directions.generate("low-frequency-tinted", 6, 2, (12, 10, 3)).array
    assert d.shape == (6, 12, 10, 3)
    for row in d:
        # each pixel is the pattern times the direction's colour: the channels are parallel
        flat = row.reshape(-1, 3)
        assert np.linalg.matrix_rank(flat, tol=1e-5) == 1
    grey = apsig.Directions.generate("low-frequency-tinted", 4, 2, (12, 10, 1)).array
    np.testing.assert_array_equal(grey, apsig.Directions.generate("low-frequency", 4, 2, (12, 10, 1)).array)


def test_model_signatures_and_decoder_round_trip(images, tmp_path, model_file, dirs):
    model = apsig.Model.load(str(model_file))
    model.save(str(tmp_path / "m.safetensors"))
    back = apsig.Model.load(str(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(back.logits(images), model.logits(images))
    assert model.arch == "targetnet-s" and model.classes == 10 and model.shape == (28, 28, 1)

    sigs = apsig.signatures(model, images, dirs, method="white-box", provenance={"dataset": "blobs"}, progress=False)
    sigs.save(str(tmp_path / "s.safetensors"))
    again = apsig.SignatureSet.load(str(tmp_path / "s.safetensors"))
    assert again == sigs and again.provenance["dataset"] == "blobs"
    assert again.eps.shape == (12, 16) and again.censored.dtype == np.bool_

    dec = apsig.Decoder.fit(sigs, images, width=4, epochs=2, batch=4, progress=False)
    dec.save(str(tmp_path / "dec.safetensors"))
    loaded = apsig.Decoder.load(str(tmp_path / "dec.safetensors"))
    r = dec.reconstruct(sigs)
    assert r.shape == (12, 28, 28, 1) and 0 <= r.min() and r.max() <= 1
    np.testing.assert_array_equal(loaded.reconstruct(sigs), r)
    assert loaded.k == 16 and loaded.directions == dirs.fingerprint
    # `hidden=None` is run's decoder (a 512-wide hidden layer); 0 the paper's, without it
    def fit(**kw):
        return apsig.Decoder.fit(sigs, images, width=4, epochs=2, batch=4, progress=False, **kw)

    np.testing.assert_array_equal(fit(hidden=512).reconstruct(sigs), r)
    assert not np.array_equal(fit(hidden=0).reconstruct(sigs), r)
    # the class guide: the model reads each reconstruction against the images' classes
    labels = (np.arange(len(images)) % 10).astype(np.uint8)
    guided = fit(hidden=512, labels=labels, critic=model, class_weight=0.5).reconstruct(sigs)
    assert guided.shape == r.shape and not np.array_equal(guided, r)
    np.testing.assert_array_equal(fit(hidden=512, labels=labels, critic=model, class_weight=0.0).reconstruct(sigs), r)
    # the L1 loss paints other images; a loss it does not know is refused by name
    assert not np.array_equal(fit(hidden=512, loss="l1").reconstruct(sigs), r)
    with pytest.raises(apsig.ApsigError, match="l3"):
        fit(loss="l3")
    with pytest.raises(apsig.ApsigError, match="needs both"):
        fit(critic=model, class_weight=0.5)
    with pytest.raises(apsig.ApsigError, match="class_weight"):
        fit(class_weight=0.5)
    other = apsig.signatures(model, images, apsig.Directions.generate("rademacher", 16, 1, (28, 28, 1)), progress=False)
    with pytest.raises(apsig.ApsigError, match="other directions"):
        dec.reconstruct(other)


def test_metrics(images):
    labels = np.arange(len(images), dtype=np.uint8) % 2
    ident = apsig.identification(images, images, labels)
    assert ident == {"overall": 1.0, "within_class": 1.0, "chance_overall": 1 / 12, "chance_within_class": 1 / 6}
    evaluator = apsig.Model.init("evalnet", seed=1)
    q = apsig.quality(images, images, labels, evaluator)
    assert q["mse"] == 0 and abs(q["ssim"] - 1) < 1e-9 and 0 <= q["class_recovery"] <= 1
    flat = np.full_like(images, 0.5)
    assert apsig.quality(flat, images, labels, evaluator)["mse"] > 0.01
    glob, per_class = apsig.baselines(images, labels)
    np.testing.assert_allclose(glob[0], images.mean(0), atol=1e-6)
    np.testing.assert_allclose(per_class[1], images[1::2].mean(0), atol=1e-6)


def test_palette_decides_the_colours_and_refuses_data_without_one(tmp_path, model_file, dirs):
    model = apsig.Model.load(str(model_file))
    # twelve two-colour images: a square in 0.9 on 0.1, or in 0.1 on 0.9
    squares = np.zeros((12, 28, 28, 1), dtype=np.float32)
    for i, img in enumerate(squares):
        fg, bg = (0.9, 0.1) if i % 2 else (0.1, 0.9)
        img[:] = bg
        img[6 + i % 5 : 18 + i % 5, 8:20] = fg
    sigs = apsig.signatures(model, squares, dirs, method="white-box", progress=False)
    dec = apsig.Decoder.fit(sigs, squares, width=4, epochs=2, batch=4, palette=True, progress=False)
    assert dec.palette_entries == 2
    decided, mean = dec.reconstruct(sigs), dec.reconstruct_mean(sigs)
    assert decided.shape == mean.shape and not np.array_equal(decided, mean)
    # every decided pixel lies between the two palette colours
    assert decided.min() >= 0.1 - 1e-5 and decided.max() <= 0.9 + 1e-5
    dec.save(str(tmp_path / "p.safetensors"))
    loaded = apsig.Decoder.load(str(tmp_path / "p.safetensors"))
    assert loaded.palette_entries == 2
    np.testing.assert_array_equal(loaded.reconstruct(sigs), decided)
    plain = apsig.Decoder.fit(sigs, squares, width=4, epochs=2, batch=4, progress=False)
    assert plain.palette_entries == 0
    np.testing.assert_array_equal(plain.reconstruct(sigs), plain.reconstruct_mean(sigs))
    # noise has no palette: refused before training
    noise = np.random.default_rng(1).random((12, 28, 28, 1)).astype(np.float32)
    with pytest.raises(apsig.ApsigError, match="palette"):
        apsig.Decoder.fit(sigs, noise, width=4, epochs=2, batch=4, palette=True, progress=False)


def tiny_run_config(seed, decoder_epochs):
    """The smoke preset cut to seconds: 600 adversary images, K = 8, 40 secrets."""
    cfg = apsig.run_config("smoke", seed=seed)
    cfg.update(train_limit=600)
    cfg["target"]["epochs"] = cfg["evaluator"]["epochs"] = 1
    cfg["directions"]["k"] = 8
    cfg["train_signatures"]["count"] = 300
    cfg["test_signatures"]["count"] = 40
    cfg["decoder"].update(width=4)
    cfg["decoder"]["train"]["epochs"] = decoder_epochs
    return cfg


@needs_mnist
def test_a_run_in_python_writes_the_cli_files_which_load_back(tmp_path):
    cfg = tiny_run_config(seed=3, decoder_epochs=1)
    out = tmp_path / "run"
    metrics = apsig.run(cfg, out, data_dir=data_dir(), progress=False)
    assert metrics["k"] == 8 and metrics["test_signatures"]["images"] == 40
    assert json.loads((out / "metrics.json").read_text()) == metrics
    run = apsig.load_run(out)
    assert run.test_signatures.n == 40 and run.directions.k == 8
    # the decoder, the signatures and the evaluator of the run reproduce its metrics
    data = apsig.load_dataset("mnist", data_dir=data_dir())
    secrets = data.test_images[:40]
    recon = run.decoder.reconstruct(run.test_signatures)
    q = apsig.quality(recon, secrets, data.test_labels[:40], run.evaluator)
    want = dict(metrics["decoder"])
    assert q.pop("identification") == want.pop("identification")
    assert q == pytest.approx(want, rel=1e-5)
    # the secrets' signatures again, through the target as a callable, with the run's search
    # (predicted brackets from its training signatures): the same file content
    again = apsig.signatures(
        run.target.logits,
        secrets,
        run.directions,
        search=cfg["test_signatures"]["extract"]["search"],
        predict_from=run.train_signatures,
        predict_group=cfg["predict_group"],
        progress=False,
    )
    close = np.isclose(again.eps, run.test_signatures.eps, rtol=0.011)
    assert close.mean() > 0.97
    # and back: Python saves files the run (and the CLI) reads
    run.test_signatures.save(str(out / "signatures-test.safetensors"))
    run.decoder.save(str(out / "decoder.safetensors"))
    assert apsig.run(cfg, out, data_dir=data_dir(), progress=False)["decoder"] == metrics["decoder"]


@needs_mnist
def test_compare_scores_two_runs_on_the_same_secrets(tmp_path):
    cfg = tiny_run_config(seed=1, decoder_epochs=2)
    reference, candidate = tmp_path / "ref", tmp_path / "cand"
    ref_metrics = apsig.run(cfg, reference, data_dir=data_dir(), progress=False)
    # the candidate differs in its decoder only: the earlier stages are copied and reused
    candidate.mkdir()
    for f in ["target", "evaluator", "directions", "signatures-train", "signatures-test"]:
        shutil.copy(reference / f"{f}.safetensors", candidate / f"{f}.safetensors")
    cfg["decoder"]["train"]["seed"] += 1
    cand_metrics = apsig.run(cfg, candidate, data_dir=data_dir(), progress=False)

    c = apsig.compare(reference, candidate, data_dir=data_dir(), progress=False)
    assert set(c.winners) == {"mse", "identified", "class-recovered"}
    assert set(c.winners.values()) <= {"candidate", "reference", "no winner"}
    (pair,) = c.pairs
    assert pair["secrets"] == 40 and pair["same_evaluator"]
    assert pair["queries_per_secret"][0] == pytest.approx(ref_metrics["test_signatures"]["queries_per_image"])
    # compare's own scoring gives back what each run reported
    for side, m in [("reference", ref_metrics), ("candidate", cand_metrics)]:
        got = [d[side] for d in pair["differences"]]
        want = [m["decoder"]["mse"], m["decoder"]["identification"]["overall"], m["decoder"]["class_recovery"]]
        assert got == pytest.approx(want, abs=1e-6)
    for d in pair["differences"]:
        i = d["interval"]
        assert i["low"] <= i["estimate"] <= i["high"]
        assert i["estimate"] == pytest.approx(d["candidate"] - d["reference"], abs=1e-9)
    assert "Winner on MSE:" in c.markdown
    # a run against itself: every difference is zero and nothing wins; lists pair by position
    same = apsig.compare([reference, candidate], [str(reference), candidate], data_dir=data_dir(), progress=False)
    assert [d["interval"]["estimate"] for d in same.pairs[0]["differences"]] == [0.0, 0.0, 0.0]
    assert same.winners == {"mse": "no winner", "identified": "no winner", "class-recovered": "no winner"}

    with pytest.raises(apsig.ApsigError, match="1 reference runs but 2 candidate runs"):
        apsig.compare(reference, [candidate, candidate], data_dir=data_dir())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(apsig.ApsigError, match="not a run directory"):
        apsig.compare(reference, empty, data_dir=data_dir())
    (candidate / "evaluator.safetensors").unlink()
    with pytest.raises(apsig.ApsigError, match="evaluator.safetensors: missing"):
        apsig.compare(reference, candidate, data_dir=data_dir())
