"""Which calibration text the rank game's measurements use, and the calibrated model.

Everything here uses the **calibration** half of ``lee_background.cor`` only (never the
evaluation half, never ``lee.cor`` or the human scores). A :class:`CalibSpec` names which text:

- SmolLM2: the bases are fitted on the first ``bases`` windows of ``window`` tokens; the loss
  is measured on the next ``loss`` windows (disjoint from the bases' windows).
- MiniLM: the bases are fitted on the first ``bases`` documents; the loss is measured on the
  next ``loss`` documents.

:func:`load_setup` loads the model, its calibration (:func:`mallocgame.rank.runtime.calibrate`,
cached on disk under ``$MALLOCGAME_CACHE/rank``, default ``~/.cache/mallocgame/rank``, keyed by
the model hash and the bases' text: :func:`calib_path`), the full bases and the loss text: a
:class:`RankSetup`, which the evaluator (:mod:`mallocgame.rank.evaluator`) and the table
builders (:mod:`mallocgame.rank.measure`) share. :func:`spec_key` keys their cache files.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.io import atomic_write_bytes, cache_dir
from mallocgame.rank import text
from mallocgame.rank.config import METHODS, MODEL_SHAPES, RankConfig
from mallocgame.rank.models import minilm as _minilm
from mallocgame.rank.models import smollm2 as _smollm2
from mallocgame.rank.models.common import file_hash, minilm_dir, smollm2_gguf
from mallocgame.rank.runtime import Calibration, LayerBases, Model, calibrate, model_bases

#: version of the cache keys (calibrations and tables)
TABLES_VERSION = 1


# ----------------------------------------------------------------------------- spec


@dataclasses.dataclass(frozen=True)
class CalibSpec:
    """Which calibration text fits the bases and which measures the loss (see module doc).

    ``bases``/``loss``: SmolLM2 windows of ``window`` tokens, MiniLM documents.
    """

    model: str
    bases: int
    loss: int
    window: int = 512
    method: str = "whitened"

    def __post_init__(self) -> None:
        if self.model not in MODEL_SHAPES:
            raise ValueError(
                f"unknown model {self.model!r}; expected one of {sorted(MODEL_SHAPES)}"
            )
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; expected one of {list(METHODS)}")
        if self.bases < 1 or self.loss < 1 or self.window < 2:
            raise ValueError(f"calibration spec needs bases, loss >= 1 and window >= 2: {self}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def same_bases(self, other: CalibSpec) -> bool:
        """Whether ``other`` fits the runtime's bases as this does (model, method, the same
        bases windows): the loss windows only steer a search, not what a config means."""
        return dataclasses.replace(self, loss=other.loss) == other

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CalibSpec:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls) if f.name in d})

    @classmethod
    def default(cls, model: str, method: str = "whitened") -> CalibSpec:
        if model == "smollm2":
            return cls("smollm2", bases=8, loss=1, window=512, method=method)
        return cls("minilm", bases=120, loss=8, window=512, method=method)


# ----------------------------------------------------------------------------- setup


@dataclasses.dataclass(frozen=True, eq=False)
class RankSetup:
    """A loaded model with its calibration, full bases and calibration-loss text."""

    model: Model
    spec: CalibSpec
    calib: Calibration
    bases: tuple[LayerBases, ...]
    loss_data: np.ndarray | list[str]  # SmolLM2: int32[W, window]; MiniLM: documents

    @property
    def name(self) -> str:
        return self.spec.model


def load_model(name: str) -> Model:
    if name == "smollm2":
        return _smollm2.load_smollm2()
    if name == "minilm":
        return _minilm.load_minilm()
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_SHAPES)}")


def model_file_hash(name: str) -> str:
    """The model hash of ``name``'s weight file, without loading the model."""
    if name == "smollm2":
        return file_hash(smollm2_gguf())
    if name == "minilm":
        return file_hash(minilm_dir() / "model.safetensors")
    raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODEL_SHAPES)}")


def calibration_text(
    model: Model, spec: CalibSpec
) -> tuple[np.ndarray | list[str], np.ndarray | list[str]]:
    """(bases data, loss data) of the calibration split for ``spec``."""
    split = text.background_split()
    if spec.model == "smollm2":
        w = text.token_windows(
            lambda s: _smollm2.encode(model, s),
            split.calibration,
            spec.window,
            spec.bases + spec.loss,
        )
        if len(w) < spec.bases + spec.loss:
            raise ValueError(
                f"the calibration split has {len(w)} windows of {spec.window} tokens; "
                f"{spec.bases} + {spec.loss} requested"
            )
        return w[: spec.bases], w[spec.bases :]
    docs = list(split.calibration)
    if len(docs) < spec.bases + spec.loss:
        raise ValueError(
            f"the calibration split has {len(docs)} documents; {spec.bases} + {spec.loss} requested"
        )
    return docs[: spec.bases], docs[spec.bases : spec.bases + spec.loss]


def cache_key(fields: dict[str, Any]) -> str:
    """The short sha256 of ``fields`` (with :data:`TABLES_VERSION`): the cache files' key."""
    blob = json.dumps({"v": TABLES_VERSION, **fields}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def spec_key(model_hash: str, spec: CalibSpec, extra: dict[str, Any] | None = None) -> str:
    """The cache key of what ``spec`` measures on the weights ``model_hash`` (and ``extra``)."""
    return cache_key({"hash": model_hash, "spec": spec.to_dict(), **(extra or {})})


def calib_path(model_hash: str, spec: CalibSpec) -> Path:
    """The cached calibration of ``spec``: keyed by the model and the bases' text alone
    (``bases`` windows / documents of ``window`` tokens), so that runs with other loss windows
    or another method share it (the statistics do not depend on them)."""
    key = cache_key(
        {"hash": model_hash, "model": spec.model, "bases": spec.bases, "window": spec.window}
    )
    return cache_dir("rank") / f"calib-{spec.model}-{key}.npz"


@functools.lru_cache(maxsize=4)
def load_setup(spec: CalibSpec, use_cache: bool = True) -> RankSetup:
    """Model, calibration (cached on disk), bases and loss text for ``spec`` (memoised)."""
    model = load_model(spec.model)
    bases_data, loss_data = calibration_text(model, spec)
    path = calib_path(model.model_hash, spec)
    calib = None
    if use_cache and path.is_file():
        try:
            calib = Calibration.load(str(path))
        except (OSError, ValueError, KeyError):
            calib = None
        if calib is not None and calib.model_hash != model.model_hash:
            calib = None
    if calib is None:
        calib = calibrate(model, bases_data)
        if use_cache:
            buf = io.BytesIO()
            calib.save(buf)
            atomic_write_bytes(path, buf.getvalue())
    bases = tuple(model_bases(model, calib, spec.method))
    return RankSetup(model, spec, calib, bases, loss_data)


def spec_of(cfg: RankConfig, path: str) -> CalibSpec:
    """The calibration spec a rank config's bases were learnt with (``meta.calibration``, the
    model's default where absent); a bad one is an :class:`InputError` naming ``path``."""
    cal = cfg.meta.get("calibration")
    if cal is None:
        return CalibSpec.default(cfg.model, cfg.method)
    if not isinstance(cal, dict):
        raise InputError(f"expected an object, got {cal!r}", path, field="meta.calibration")
    try:
        spec = CalibSpec.from_dict({**CalibSpec.default(cfg.model, cfg.method).to_dict(), **cal})
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(str(e), path, field="meta.calibration") from None
    if spec.model != cfg.model or spec.method != cfg.method:
        raise InputError(
            f"calibration is for {spec.model}/{spec.method}, "
            f"the config for {cfg.model}/{cfg.method}",
            path,
            field="meta.calibration",
        )
    return spec
