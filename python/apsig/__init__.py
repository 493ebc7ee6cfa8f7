"""apsig: how much a classifier leaks about its secret inputs through a change bit.

The Rust engine of the ``apsig`` CLI, with NumPy in and out. The attack in five lines::

    import apsig
    dirs = apsig.Directions.generate("gaussian", k=100, seed=1, shape=(28, 28, 1))
    train = apsig.signatures(my_model_logits, own_images, dirs, method="white-box")
    decoder = apsig.Decoder.fit(train, own_images)
    secrets = apsig.signatures(my_model_logits, secret_images, dirs, starts=train.median_eps())
    recons = decoder.reconstruct(secrets)

``classify`` is any callable from a float32 batch (``[n, h, w, c]``, or ``[n, c, h, w]`` with
``layout="nchw"``) to int labels ``[n]`` or float logits ``[n, classes]`` (NumPy arrays or
PyTorch tensors). Image arrays may come in either layout (told apart by their shape). apsig asks it in large batches: every pending probe of a block of images,
across all directions, in one call of at most ``batch_size`` inputs. Probes are ``x + eps *
n_dir`` and are not clipped to [0, 1] (the threat model: a server under homomorphic
encryption cannot clip). Every error is an :class:`ApsigError` with apsig's one-line message;
an exception raised by ``classify`` (and Ctrl-C) reaches the caller unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _native
from ._native import ApsigError, Decoder, Directions, Model, SignatureSet

__all__ = [
    "ApsigError",
    "Dataset",
    "Decoder",
    "Directions",
    "Model",
    "Run",
    "SignatureSet",
    "STRATEGIES",
    "Comparison",
    "baselines",
    "compare",
    "identification",
    "load_dataset",
    "load_run",
    "quality",
    "run",
    "run_config",
    "search_config",
    "signatures",
    "study",
    "study_config",
]

#: Every direction strategy (the values of a run config's ``directions.strategy``; the first
#: four need no data and are the CLI's ``apsig directions --strategy`` values).
STRATEGIES = (
    "gaussian",
    "rademacher",
    "low-frequency",
    "low-frequency-tinted",
    "centroid-differences",
    "adversarial",
    "principal",
)

PathLike = Union[str, "os.PathLike[str]"]
Progress = Union[bool, None, Callable[[str, int, int], Any]]


def _f32(name: str, a: Any) -> np.ndarray:
    """``a`` as a float32 array, refusing other dtypes instead of converting silently."""
    if not isinstance(a, np.ndarray):
        raise ApsigError(f"{name}: expected a NumPy array, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise ApsigError(f"{name}: dtype {a.dtype}, expected float32 (use .astype(np.float32))")
    return a


def _labels(name: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ApsigError(f"{name}: expected a 1-D integer array, got {a.dtype} of shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() > 255):
        raise ApsigError(f"{name}: labels must lie in 0..255")
    return a.astype(np.uint8)


class _Bars:
    """apsig's progress reports as tqdm bars (one per stage), messages as tqdm.write lines."""

    def __init__(self) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        self._bar = None
        self._stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if total == 0:
            self._tqdm.write(stage)
            return
        if self._bar is None or stage != self._stage:
            self.close()
            self._bar = self._tqdm(total=total, desc=stage, unit="item", leave=False)
            self._stage = stage
        self._bar.update(done - self._bar.n)
        if done >= total:
            self.close()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _progress(progress: Progress) -> Optional[Callable[[str, int, int], Any]]:
    """The progress callback for ``progress``: ``True`` gives tqdm bars when tqdm is
    importable (else none), a callable ``(stage, done, total)`` is used as it is (a stage with
    ``total == 0`` is a message). The native module calls this for ``True``."""
    if callable(progress):
        return progress
    if progress:
        try:
            return _Bars()
        except ImportError:
            return None
    return None


def _adapt(classify: Callable[[np.ndarray], Any]) -> Callable[[np.ndarray], np.ndarray]:
    """The user's callable, its answers made NumPy: int64 labels or float32 logits."""

    def call(batch: np.ndarray) -> np.ndarray:
        out = classify(batch)
        if hasattr(out, "detach"):  # a PyTorch tensor, possibly on a GPU
            out = out.detach().cpu().numpy()
        out = np.asarray(out)
        if np.issubdtype(out.dtype, np.integer) or out.dtype == np.bool_:
            return out.astype(np.int64, copy=False)
        if np.issubdtype(out.dtype, np.floating):
            return out.astype(np.float32, copy=False)
        raise ApsigError(f"classify returned an array of dtype {out.dtype}, not labels or logits")

    return call


def search_config(preset: str = "decoder-grade", eps_max: float = 256.0, **overrides: float) -> Dict[str, float]:
    """The eps search: ``decoder-grade`` (growth 1.6, 1% precision: the runs' default) or
    ``plain`` (doubling, 0.1%), with any of ``start``, ``growth``, ``eps_max``, ``eps_min``,
    ``rel_tol`` overridden."""
    cfg = json.loads(_native.search_config(preset, float(eps_max)))
    unknown = set(overrides) - set(cfg)
    if unknown:
        raise ApsigError(f"invalid search config: unknown keys {sorted(unknown)} (known: {sorted(cfg)})")
    cfg.update(overrides)
    return cfg


def signatures(
    classify: Union[Callable[[np.ndarray], Any], Model],
    images: np.ndarray,
    directions: Directions,
    *,
    method: str = "change-bit",
    search: Optional[Dict[str, float]] = None,
    starts: Optional[np.ndarray] = None,
    batch_size: int = 8192,
    block: int = 256,
    layout: str = "nhwc",
    parts_dir: Optional[PathLike] = None,
    provenance: Optional[Dict[str, str]] = None,
    progress: Progress = True,
    predict_from: Optional[SignatureSet] = None,
    predict_group: int = 10,
    median_checks: bool = False,
) -> SignatureSet:
    """Signatures (K flip points each) of ``images`` along ``directions``.

    ``classify`` is a callable (see the module docs) or an in-process :class:`Model` (then
    exactly what ``apsig signatures`` measures). ``method="change-bit"`` uses only whether the
    decision changed: the one route allowed for secrets. ``method="white-box"`` also uses the
    margin of the logits, for the adversary's own images (``classify`` must return logits).
    ``starts`` gives each direction's first eps (e.g. ``train.median_eps()``, the prior of the
    runs). Images are measured in blocks of ``block`` (a callable is asked for the probes of a
    whole block at once, in calls of at most ``batch_size`` inputs; a :class:`Model` works in
    the CLI's blocks of 256 on all cores); with ``parts_dir`` each finished block is kept
    there, so an interrupted extraction (Ctrl-C) resumes where it stopped. ``progress``:
    ``True`` for tqdm bars (when tqdm is installed), a callable ``(stage, done, total)``, or
    ``False``.

    ``predict_from`` (the adversary's own signatures, e.g. ``train``) replaces ``starts`` by
    predicted brackets: the directions are measured in groups of ``predict_group``, each
    group's searches bisecting in probability under a Gaussian model of ``ln eps`` given the
    eps already measured on the same image. Pair it with a coarser tolerance
    (``search_config(rel_tol=0.1)``): on MNIST it takes about half the queries of
    the default search for the same reconstruction quality. ``median_checks=True`` also probes
    each direction's median eps in ``predict_from`` where a prediction jumped past it, so the
    eps found is the crossing a search started there finds (a ray may change its decision over
    a bounded stretch only), walking up to two grid steps up from a median that does not change
    either; on MNIST at paper scale the check and the walk together cost 29 to 31 queries per
    secret and lowered the decoder's MSE by 1.4% to 4.0%, most at the seed that lost most.
    """
    if predict_from is not None and starts is not None:
        raise ApsigError("starts and predict_from: give one, not both")
    images = _f32("images", images)
    if starts is not None:
        starts = _f32("starts", np.ascontiguousarray(starts))
    cfg = json.dumps(search if search is not None else search_config())
    target = classify if isinstance(classify, Model) else _adapt(classify) if callable(classify) else classify
    parts = os.fspath(parts_dir) if parts_dir is not None else None
    return _native.signatures(
        target,
        images,
        directions,
        method,
        cfg,
        starts,
        batch_size,
        block,
        layout,
        parts,
        provenance,
        progress,
        predict_from,
        predict_group,
        median_checks,
    )


def quality(reconstructions: np.ndarray, originals: np.ndarray, labels: np.ndarray, evaluator: Model) -> Dict[str, float]:
    """METHOD.md's image metrics: per-pixel MSE, PSNR (dB), SSIM, class recovery (the
    fraction the independent ``evaluator`` assigns the true label), and ``identification``
    (as :func:`identification` gives it)."""
    r, o = _f32("reconstructions", reconstructions), _f32("originals", originals)
    return json.loads(_native.quality(r, o, _labels("labels", labels), evaluator))


def identification(reconstructions: np.ndarray, originals: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """METHOD.md's identification: the fraction of reconstructions whose nearest original is
    their own secret (``overall``), the same among secrets of one class (``within_class``),
    and both chance levels (``chance_overall``, ``chance_within_class``)."""
    r, o = _f32("reconstructions", reconstructions), _f32("originals", originals)
    return json.loads(_native.identification(r, o, _labels("labels", labels)))


def baselines(images: np.ndarray, labels: np.ndarray):
    """The baselines of METHOD.md from the adversary's training data: the global mean image
    ``[1, h, w, c]`` and the class means ``[classes, h, w, c]``."""
    return _native.baselines(_f32("images", images), _labels("labels", labels))


@dataclass
class Dataset:
    """A data set's two splits, images ``[n, h, w, c]`` float32 in [0, 1]."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_dataset(name: str, data_dir: Optional[PathLike] = None, download: bool = False) -> Dataset:
    """A data set by name (``mnist``, ``fashion-mnist``) or IDX directory, found as the CLI
    finds it (``data_dir``, ``$APSIG_DATA_DIR``, the cache; ``download`` fetches and verifies)."""
    d = os.fspath(data_dir) if data_dir is not None else None
    a, b, c, e, name = _native.load_dataset(name, d, download)
    return Dataset(name, a, b, c, e)


def run_config(preset: str = "quick", seed: int = 1) -> Dict[str, Any]:
    """A run configuration (the CLI's presets ``quick``, ``paper``, ``smoke``) as a dict, the
    same keys as a run directory's ``config.toml``."""
    return json.loads(_native.run_config(preset, seed))


def study_config(preset: str = "small", seed: int = 1) -> Dict[str, Any]:
    """A study configuration (presets ``small``, ``full``, ``smoke``) as a dict."""
    return json.loads(_native.study_config(preset, seed))


def _config(config: Union[str, Dict[str, Any]], kind: Callable[[str, int], Dict[str, Any]]) -> str:
    return json.dumps(kind(config, 1) if isinstance(config, str) else config)


def run(
    config: Union[str, Dict[str, Any]],
    out: PathLike,
    data_dir: Optional[PathLike] = None,
    download: bool = False,
    progress: Progress = True,
) -> Dict[str, Any]:
    """The whole attack (``apsig run``) into ``out``: a preset name or a config dict. Returns
    ``metrics.json``; a rerun reuses every finished stage."""
    d = os.fspath(data_dir) if data_dir is not None else None
    return json.loads(_native.run(_config(config, run_config), os.fspath(out), d, download, progress))


def study(
    config: Union[str, Dict[str, Any]],
    out: PathLike,
    data_dir: Optional[PathLike] = None,
    download: bool = False,
    progress: Progress = True,
) -> Dict[str, Any]:
    """A study (``apsig study``) into ``out``: a preset name or a config dict. Returns its summary."""
    d = os.fspath(data_dir) if data_dir is not None else None
    return json.loads(_native.study(_config(config, study_config), os.fspath(out), d, download, progress))


@dataclass
class Comparison:
    """Candidate runs against reference runs on the same secrets (:func:`compare`)."""

    #: Per measure (``"mse"``, ``"identified"``, ``"class-recovered"``): ``"candidate"`` or
    #: ``"reference"`` where every pair's 95% interval leaves zero out on that side, else
    #: ``"no winner"``.
    winners: Dict[str, str]
    #: One dict per pair of runs (a seed): ``reference``, ``candidate``, ``secrets``,
    #: ``same_evaluator``, ``queries_per_secret`` and ``differences``, each measure's two means
    #: and the ``interval`` (``estimate``, ``low``, ``high``) of candidate minus reference.
    pairs: List[Dict[str, Any]]
    #: Bootstrap resamples behind each interval.
    resamples: int
    #: The comparison as ``apsig compare`` prints it.
    markdown: str


def compare(
    reference: Union[PathLike, Sequence[PathLike]],
    candidate: Union[PathLike, Sequence[PathLike]],
    seed: int = 1,
    data_dir: Optional[PathLike] = None,
    download: bool = False,
    progress: Progress = True,
) -> Comparison:
    """Is the candidate configuration better than the reference on the same secrets
    (``apsig compare``)? Finished run directories, paired by position: one pair per seed, a
    path alone is one pair. Each run's reconstructions are scored again secret by secret (MSE,
    identification, class recovery by the run's own evaluator) and each difference gets a 95%
    paired bootstrap interval over the secrets (resampling seeded by ``seed``). A change to the
    decoder alone costs only the decoder: copy the reference run's directory and run the changed
    config into the copy. Runs judged by a user-supplied ONNX evaluator: use the CLI."""

    def dirs(x: Union[PathLike, Sequence[PathLike]]) -> List[str]:
        if isinstance(x, (str, os.PathLike)):
            return [os.fspath(x)]
        return [os.fspath(p) for p in x]

    d = os.fspath(data_dir) if data_dir is not None else None
    text, markdown = _native.compare(dirs(reference), dirs(candidate), seed, d, download, progress)
    c = json.loads(text)
    side = {"first": "candidate", "second": "reference", "no-winner": "no winner"}
    return Comparison(
        winners={measure: side[v] for measure, v in c["verdicts"]},
        pairs=c["pairs"],
        resamples=c["resamples"],
        markdown=markdown,
    )


@dataclass
class Run:
    """The artefacts of a run directory (``apsig run --out DIR``), loaded."""

    config: Dict[str, Any]
    target: Model
    evaluator: Model
    directions: Directions
    train_signatures: SignatureSet
    test_signatures: SignatureSet
    decoder: Decoder
    metrics: Dict[str, Any]


def load_run(directory: PathLike) -> Run:
    """Loads every artefact of a finished run directory (the very files the CLI wrote)."""
    d = os.fspath(directory)

    def p(name: str) -> str:
        return os.path.join(d, name)

    try:
        import tomllib  # Python >= 3.11

        with open(p("config.toml"), "rb") as f:
            config = tomllib.load(f)
    except ImportError:
        config = {}
    with open(p("metrics.json")) as f:
        metrics = json.load(f)
    return Run(
        config=config,
        target=Model.load(p("target.safetensors")),
        evaluator=Model.load(p("evaluator.safetensors")),
        directions=Directions.load(p("directions.safetensors")),
        train_signatures=SignatureSet.load(p("signatures-train.safetensors")),
        test_signatures=SignatureSet.load(p("signatures-test.safetensors")),
        decoder=Decoder.load(p("decoder.safetensors")),
        metrics=metrics,
    )
