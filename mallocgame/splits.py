"""Named workload sets for training and evaluating the agent, with an on-disk cache.

Two splits, disjoint by program:

- ``train``: variants of the zoo programs ``mlp_train``, ``gpt2_forward`` and ``attention_long``
  (different widths, depths, sequence lengths, optimizers), plus random trace-like workloads
  generated from a seed (:func:`random_trace`);
- ``heldout``: variants of ``resnet_train``, ``rnn_scan`` and ``gpt2_train``, and the external
  traces ``iree_mobilenet.csv`` and ``resnet50.csv`` (read from the shared datasets folder). No
  zoo program of the held-out split is ever in the train split (:func:`check_disjoint`).

Each workload is used at every capacity of :data:`CAPACITIES` (fractions of its peak live
bytes) on the ``tpuv4i`` target, which makes a *problem*.

Compiled zoo workloads are cached as ``*.workload.json.gz`` under
``$MALLOCGAME_CACHE/workloads`` (default ``~/.cache/mallocgame/workloads``), keyed by the
entry, its overrides and the jax version, so that training and benchmarks do not recompile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.workload import Workload

CAPACITIES: tuple[str, ...] = ("10%", "25%", "50%")
DEFAULT_TARGET = "tpuv4i"
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


# --------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    """``$MALLOCGAME_CACHE`` or ``~/.cache/mallocgame`` (created on demand)."""
    root = os.environ.get("MALLOCGAME_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mallocgame"
    return base


def datasets_dir() -> Path:
    """The shared benchmark instances (``$MALLOCGAME_DATASETS`` overrides)."""
    root = os.environ.get("MALLOCGAME_DATASETS")
    return Path(root).expanduser() if root else DATASETS


# --------------------------------------------------------------------------- specs
@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    """One workload of a split.

    ``kind``: ``"zoo"`` (``name`` is the zoo entry, ``overrides`` its builder arguments),
    ``"trace"`` (``name`` is a file under the shared ``ml-traces`` folder) or ``"random"``
    (``overrides`` holds ``seed`` and ``n``: :func:`random_trace`).
    """

    kind: str
    name: str
    overrides: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    @property
    def program(self) -> str:
        """The program this workload comes from (the zoo entry or the trace file)."""
        return self.name

    @property
    def title(self) -> str:
        return self.label or self.name

    def key(self) -> str:
        import jax

        blob = json.dumps([self.kind, self.name, list(self.overrides), jax.__version__], default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def load(self, use_cache: bool = True) -> Workload:
        if self.kind == "zoo":
            return _cached_zoo(self, use_cache)
        if self.kind == "trace":
            from mallocgame.csvio import read_csv

            path = datasets_dir() / "ml-traces" / self.name
            if not path.exists():
                raise InputError("trace not found (shared datasets missing?)", str(path))
            wl = read_csv(path)[0]
            wl.name = self.title
            return wl
        if self.kind == "random":
            kw = dict(self.overrides)
            return random_trace(int(kw["seed"]), int(kw.get("n", 100)), name=self.title)
        raise ValueError(f"unknown workload kind {self.kind!r}")

    def available(self) -> bool:
        if self.kind == "trace":
            return (datasets_dir() / "ml-traces" / self.name).exists()
        return True


def zoo(name: str, label: str = "", **overrides: Any) -> WorkloadSpec:
    return WorkloadSpec("zoo", name, tuple(sorted(overrides.items())), label or _label(name, overrides))


def trace(filename: str) -> WorkloadSpec:
    return WorkloadSpec("trace", filename, (), filename)


def generated(seed: int, n: int) -> WorkloadSpec:
    return WorkloadSpec("random", "random", (("n", n), ("seed", seed)), f"random[n{n},s{seed}]")


def _label(name: str, overrides: dict[str, Any]) -> str:
    if not overrides:
        return name
    short = {"n_layers": "L", "seq_len": "T", "d_model": "d", "n_heads": "h", "vocab": "V",
             "batch": "b", "widths": "w", "optimizer": "", "hidden": "H", "input_size": "i",
             "image_size": "img", "depth": "depth", "small": "small"}
    parts = []
    for k, v in sorted(overrides.items()):
        if isinstance(v, (tuple, list)):
            v = "x".join(str(x) for x in v)
        if v is True:
            parts.append(short.get(k, k))
        else:
            parts.append(f"{short.get(k, k)}{v}")
    return f"{name}[{','.join(parts)}]"


def _cached_zoo(spec: WorkloadSpec, use_cache: bool) -> Workload:
    path = cache_dir() / "workloads" / f"{spec.name}-{spec.key()}.workload.json.gz"
    if use_cache and path.exists():
        try:
            wl = Workload.load(path)
            wl.name = spec.title
            return wl
        except InputError:
            path.unlink(missing_ok=True)  # a corrupt cache entry: recompile
    from workloads import zoo as zoo_mod

    wl = zoo_mod.extract(spec.name, **dict(spec.overrides))
    wl.name = spec.title
    if use_cache:
        try:
            wl.save(path)
        except OSError:
            pass  # a read-only home: work without the cache
    return wl


# --------------------------------------------------------------------------- generated
def random_trace(seed: int, n: int = 100, name: str | None = None) -> Workload:
    """A trace-like workload (buffers only, the trace access proxy) drawn from ``seed``:
    log-uniform sizes (64 B to 4 MiB, 64-byte multiples), mostly short live ranges with a few
    long ones (weights, activations kept for a backward pass), on a schedule of ``2n`` steps."""
    rng = np.random.default_rng(seed)
    horizon = 2 * n
    starts = rng.integers(0, horizon - 1, size=n)
    short = rng.geometric(0.25, size=n)
    long = rng.integers(1, horizon, size=n)
    dur = np.where(rng.random(n) < 0.2, long, short)
    ends = np.minimum(starts + dur, horizon)
    sizes = (np.exp(rng.uniform(np.log(64), np.log(4 << 20), size=n)) // 64 + 1).astype(np.int64) * 64
    return Workload.from_intervals(name or f"random[n{n},s{seed}]", np.arange(n), sizes, starts, ends,
                                   source={"generator": "mallocgame.splits.random_trace", "seed": seed, "n": n})


# --------------------------------------------------------------------------- the splits
TRAIN: tuple[WorkloadSpec, ...] = (
    zoo("mlp_train"),
    zoo("mlp_train", batch=64, widths=(256, 512, 512, 10)),
    zoo("mlp_train", batch=128, widths=(784, 1024, 1024, 1024, 1024, 10), optimizer="sgd"),
    zoo("mlp_train", batch=32, widths=(128, 256, 256, 256, 10)),
    zoo("mlp_train", batch=512, widths=(512, 4096, 1024, 10)),
    zoo("gpt2_forward", n_layers=1, seq_len=64, d_model=128, n_heads=2, vocab=1024),
    zoo("gpt2_forward", n_layers=2, seq_len=128, d_model=256, n_heads=4, vocab=8192),
    zoo("gpt2_forward", n_layers=3, seq_len=512, d_model=256, n_heads=4, vocab=4096),
    zoo("gpt2_forward", n_layers=4, seq_len=256, d_model=384, n_heads=6, vocab=8192),
    zoo("attention_long", seq_len=512),
    zoo("attention_long", seq_len=1024),
    zoo("attention_long", seq_len=2048, d_model=512, n_heads=8),
    zoo("attention_long", seq_len=4096),
    generated(1, 60),
    generated(2, 120),
    generated(3, 200),
)

HELDOUT: tuple[WorkloadSpec, ...] = (
    zoo("rnn_scan"),
    zoo("rnn_scan", seq_len=64, hidden=512, input_size=128, batch=16),
    zoo("resnet_train", small=True),
    zoo("gpt2_train", n_layers=2, seq_len=128, d_model=256, n_heads=4, vocab=8192),
    trace("iree_mobilenet.csv"),
    trace("resnet50.csv"),
)

SPLITS: dict[str, tuple[WorkloadSpec, ...]] = {"train": TRAIN, "heldout": HELDOUT}


def check_disjoint(train: Iterable[WorkloadSpec] = TRAIN, heldout: Iterable[WorkloadSpec] = HELDOUT) -> None:
    """Raises ``ValueError`` when a program of the held-out split is in the train split."""
    held = {s.program for s in heldout if s.kind != "random"}
    clash = sorted({s.program for s in train if s.kind != "random"} & held)
    if clash:
        raise ValueError(f"held-out program(s) in the train split: {clash}")


check_disjoint()


def get_split(name: str) -> tuple[WorkloadSpec, ...]:
    if name not in SPLITS:
        raise InputError(f"unknown split {name!r}; choose one of {', '.join(SPLITS)}", field="split")
    return SPLITS[name]


def is_heldout_program(program: str) -> bool:
    return program in {s.program for s in HELDOUT}


def load_split(
    name: str | Iterable[WorkloadSpec],
    max_buffers: int | None = None,
    use_cache: bool = True,
) -> list[tuple[WorkloadSpec, Workload]]:
    """The split's available workloads (traces skipped when the datasets are missing),
    optionally only those with at most ``max_buffers`` buffers."""
    specs = get_split(name) if isinstance(name, str) else tuple(name)
    out = []
    for spec in specs:
        if not spec.available():
            continue
        wl = spec.load(use_cache=use_cache)
        if max_buffers is not None and wl.num_buffers > max_buffers:
            continue
        out.append((spec, wl))
    return out


def make_problems(
    workloads: Iterable[Workload],
    capacities: Iterable[str] = CAPACITIES,
    target: str = DEFAULT_TARGET,
    num_candidates: int = 8,
):
    """``[(workload, capacity, Problem)]`` for every workload x capacity (problems in which no
    buffer fits are skipped)."""
    import warnings

    from mallocgame.api import make_problem

    out = []
    for wl in workloads:
        for cap in capacities:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                p = make_problem(wl, cap, target, num_candidates=num_candidates)
            if p.fitting_buffers() == 0:
                continue
            out.append((wl, cap, p))
    return out
