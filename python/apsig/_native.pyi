"""Type stubs of the native module (Rust, PyO3). Use the package ``apsig``, which wraps it."""

from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, Union

import numpy as np

class ApsigError(Exception):
    """An error of apsig: its one-line message names the input or file at fault."""

class Directions:
    """K seeded unit-norm probe directions of the input's shape."""

    @staticmethod
    def generate(
        strategy: str,
        k: int,
        seed: int,
        shape: Tuple[int, int, int],
        images: Optional[np.ndarray] = None,
        labels: Optional[np.ndarray] = None,
        model: Optional[Model] = None,
    ) -> Directions:
        """Draws K directions; data-dependent strategies (centroid-differences, adversarial,
        principal) take the adversary's own images and labels, adversarial also its model."""
    @staticmethod
    def load(path: str) -> Directions: ...
    def save(self, path: str) -> None: ...
    def prefix(self, k: int) -> Directions: ...
    @property
    def array(self) -> np.ndarray:
        """``[k, h, w, c]`` float32."""
    @property
    def k(self) -> int: ...
    @property
    def shape(self) -> Tuple[int, int, int]: ...
    @property
    def strategy(self) -> str: ...
    @property
    def seed(self) -> int: ...
    @property
    def fingerprint(self) -> str: ...
    def __len__(self) -> int: ...

class Model:
    """An in-process classifier: an apsig model file (TargetNet-S, EvalNet)."""

    @staticmethod
    def load(path: str) -> Model: ...
    @staticmethod
    def init(arch: str, shape: Tuple[int, int, int] = ..., classes: int = ..., seed: int = ...) -> Model: ...
    @staticmethod
    def train(
        images: np.ndarray,
        labels: np.ndarray,
        arch: str = ...,
        epochs: int = ...,
        batch: int = ...,
        lr: float = ...,
        seed: int = ...,
        progress: Union[bool, None, Callable[[str, int, int], Any]] = ...,
    ) -> Model: ...
    def save(self, path: str) -> None: ...
    def logits(self, images: np.ndarray, layout: str = ...) -> np.ndarray:
        """``[n, classes]`` float32 logits."""
    @property
    def shape(self) -> Tuple[int, int, int]: ...
    @property
    def classes(self) -> int: ...
    @property
    def arch(self) -> str: ...
    @property
    def metadata(self) -> Dict[str, str]: ...

class SignatureSet:
    """Signatures of a set of images, and how they were measured."""

    @staticmethod
    def load(path: str) -> SignatureSet: ...
    def save(self, path: str) -> None: ...
    @property
    def eps(self) -> np.ndarray:
        """``[n, k]`` float32 flip points (eps_max where censored)."""
    @property
    def censored(self) -> np.ndarray:
        """``[n, k]`` bool."""
    @property
    def queries(self) -> np.ndarray:
        """``[n, k]`` uint32 probes per eps."""
    @property
    def indices(self) -> np.ndarray:
        """``[n]`` uint32."""
    @property
    def provenance(self) -> Dict[str, str]: ...
    @property
    def k(self) -> int: ...
    @property
    def n(self) -> int: ...
    @property
    def total_queries(self) -> int: ...
    @property
    def queries_per_eps(self) -> float: ...
    @property
    def censored_fraction(self) -> float: ...
    def median_eps(self) -> np.ndarray: ...
    def prefix(self, k: int, n: int) -> SignatureSet: ...
    def __len__(self) -> int: ...

class Decoder:
    """The DCGAN-style decoder from a signature to an image of the shape it was trained on."""

    @staticmethod
    def fit(
        signatures: SignatureSet,
        images: np.ndarray,
        width: int = ...,
        use_mask: bool = ...,
        epochs: int = ...,
        batch: int = ...,
        lr: float = ...,
        seed: int = ...,
        hidden: Optional[int] = ...,
        labels: Optional[np.ndarray] = ...,
        critic: Optional[Model] = ...,
        class_weight: float = ...,
        class_noise: float = ...,
        loss: Literal["l2", "l1"] = ...,
        palette: bool = ...,
        progress: Union[bool, None, Callable[[str, int, int], Any]] = ...,
    ) -> Decoder: ...
    @staticmethod
    def load(path: str) -> Decoder: ...
    def save(self, path: str) -> None: ...
    def reconstruct(self, signatures: SignatureSet) -> np.ndarray:
        """``[n, h, w, c]`` float32 in [0, 1], the shape the decoder was fitted on."""
    def reconstruct_mean(self, signatures: SignatureSet) -> np.ndarray:
        """The network's output alone, colours undecided by the palette."""
    @property
    def palette_entries(self) -> int:
        """Entries of the palette that decides the colours (0: none)."""
    @property
    def k(self) -> int: ...
    @property
    def directions(self) -> str: ...

def signatures(
    classify: Any,
    images: np.ndarray,
    directions: Directions,
    method: str,
    search: str,
    starts: Optional[np.ndarray] = ...,
    batch_size: int = ...,
    block: int = ...,
    layout: str = ...,
    parts_dir: Optional[str] = ...,
    provenance: Optional[Dict[str, str]] = ...,
    progress: Union[bool, None, Callable[[str, int, int], Any]] = ...,
    predict_from: Optional[SignatureSet] = ...,
    predict_group: int = ...,
    median_checks: bool = ...,
) -> SignatureSet: ...
def quality(reconstructions: np.ndarray, originals: np.ndarray, labels: np.ndarray, evaluator: Model) -> str: ...
def identification(reconstructions: np.ndarray, originals: np.ndarray, labels: np.ndarray) -> str: ...
def baselines(images: np.ndarray, labels: np.ndarray) -> Tuple[np.ndarray, np.ndarray]: ...
def load_dataset(
    name: str, data_dir: Optional[str] = ..., download: bool = ...
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, str]: ...
def run_config(preset: str, seed: int) -> str: ...
def study_config(preset: str, seed: int) -> str: ...
def search_config(kind: str, eps_max: float) -> str: ...
def run(
    config: str,
    out: str,
    data_dir: Optional[str] = ...,
    download: bool = ...,
    progress: Union[bool, None, Callable[[str, int, int], Any]] = ...,
) -> str: ...
def study(
    config: str,
    out: str,
    data_dir: Optional[str] = ...,
    download: bool = ...,
    progress: Union[bool, None, Callable[[str, int, int], Any]] = ...,
) -> str: ...
def compare(
    reference: List[str],
    candidate: List[str],
    seed: int = ...,
    data_dir: Optional[str] = ...,
    download: bool = ...,
    progress: Union[bool, None, Callable[[str, int, int], Any]] = ...,
) -> Tuple[str, str]: ...
