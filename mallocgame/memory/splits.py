"""Named workload sets for training and evaluating the agent, with an on-disk cache.

Five splits; ``train`` / ``train-wide`` are disjoint by program from ``validation`` and
``heldout`` / ``heldout-large``, and those from each other:

- ``train``: variants of the zoo programs ``mlp_train``, ``gpt2_forward`` and ``attention_long``
  (different widths, depths, sequence lengths, optimizers), plus random trace-like workloads
  generated from a seed (:func:`random_trace`);
- ``train-wide``: ``train`` plus more variants of the same three zoo programs and more generated
  workloads (:func:`random_trace` and the training-step-like :func:`layered_trace`, up to 320
  buffers);
- ``validation``: for choosing a checkpoint (never trained on, never reported as the held-out
  result): the zoo programs ``conv_train`` and ``embed_train``, the external trace
  ``iree_mobilebert.csv`` and generated workloads from seeds no training split uses;
- ``heldout``: variants of ``resnet_train``, ``rnn_scan`` and ``gpt2_train``, and the external
  traces ``iree_mobilenet.csv`` and ``resnet50.csv`` (read from the shared datasets folder);
- ``heldout-large``: held-out programs of 800-1900 buffers, twice the largest training
  workload and more: ``gpt2_train`` at its zoo default and the external traces ``G_1.csv`` and
  ``tiny_bert.csv`` (a separate split, so that the ``heldout`` figures stay comparable).

No program (zoo entry or trace file) and no generated workload (generator and seed) is in two
of the groups train / validation / held-out (:func:`check_disjoint`, run at import).

Each workload is used at every capacity of :data:`CAPACITIES` (fractions of its peak live
bytes) on the ``tpuv4i`` target, which makes a *problem*.

Compiled zoo workloads are cached as ``*.workload.json.gz`` under
``$MALLOCGAME_CACHE/workloads`` (default ``~/.cache/mallocgame/workloads``), keyed by the
entry, its overrides and the jax version, so that training and benchmarks do not recompile.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.io import cache_dir, datasets_dir
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.sources import compile_zoo, make_problem
from mallocgame.memory.workload import Workload

CAPACITIES: tuple[str, ...] = ("10%", "25%", "50%")
DEFAULT_TARGET = "tpuv4i"


# --------------------------------------------------------------------------- cache
# --------------------------------------------------------------------------- specs
@dataclasses.dataclass(frozen=True)
class WorkloadSpec:
    """One workload of a split.

    ``kind``: ``"zoo"`` (``name`` is the zoo entry, ``overrides`` its builder arguments),
    ``"trace"`` (``name`` is a file under the shared ``ml-traces`` folder) or ``"random"``
    (a generated workload: ``name`` is the generator, ``"random"`` for :func:`random_trace`
    with ``overrides`` ``seed`` and ``n``, ``"layered"`` for :func:`layered_trace` with
    ``seed`` and ``layers``).
    """

    kind: str
    name: str
    overrides: tuple[tuple[str, Any], ...] = ()
    label: str = ""

    @property
    def program(self) -> str:
        """The program this workload comes from (the zoo entry or the trace file; for a
        generated workload, the generator and its seed: ``layered#3``)."""
        if self.kind == "random":
            return f"{self.name}#{dict(self.overrides)['seed']}"
        return self.name

    @property
    def title(self) -> str:
        return self.label or self.name

    def key(self) -> str:
        # JAX's version from its metadata (the cache key must not import JAX)
        blob = json.dumps(
            [self.kind, self.name, list(self.overrides), importlib.metadata.version("jax")],
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def load(self, use_cache: bool = True) -> Workload:
        if self.kind == "zoo":
            return _cached_zoo(self, use_cache)
        if self.kind == "trace":
            path = datasets_dir() / "ml-traces" / self.name
            if not path.exists():
                raise InputError("trace not found (shared datasets missing?)", str(path))
            wl = read_csv(path)[0]
            wl.name = self.title
            return wl
        if self.kind == "random":
            kw = dict(self.overrides)
            if self.name == "layered":
                return layered_trace(int(kw["seed"]), int(kw["layers"]), name=self.title)
            return random_trace(int(kw["seed"]), int(kw.get("n", 100)), name=self.title)
        raise ValueError(f"unknown workload kind {self.kind!r}")

    def available(self) -> bool:
        if self.kind == "trace":
            return (datasets_dir() / "ml-traces" / self.name).exists()
        return True


def zoo(name: str, label: str = "", **overrides: Any) -> WorkloadSpec:
    return WorkloadSpec(
        "zoo", name, tuple(sorted(overrides.items())), label or _label(name, overrides)
    )


def trace(filename: str) -> WorkloadSpec:
    return WorkloadSpec("trace", filename, (), filename)


def generated(seed: int, n: int) -> WorkloadSpec:
    return WorkloadSpec("random", "random", (("n", n), ("seed", seed)), f"random[n{n},s{seed}]")


def layered(seed: int, layers: int) -> WorkloadSpec:
    return WorkloadSpec(
        "random", "layered", (("layers", layers), ("seed", seed)), f"layered[L{layers},s{seed}]"
    )


def _label(name: str, overrides: dict[str, Any]) -> str:
    if not overrides:
        return name
    short = {
        "n_layers": "L",
        "seq_len": "T",
        "d_model": "d",
        "n_heads": "h",
        "vocab": "V",
        "batch": "b",
        "widths": "w",
        "optimizer": "",
        "hidden": "H",
        "input_size": "i",
        "image_size": "img",
        "depth": "depth",
        "small": "small",
    }
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
    wl = compile_zoo(spec.name, **dict(spec.overrides))
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
    sizes = (np.exp(rng.uniform(np.log(64), np.log(4 << 20), size=n)) // 64 + 1).astype(
        np.int64
    ) * 64
    return Workload.from_intervals(
        name or f"random[n{n},s{seed}]",
        np.arange(n),
        sizes,
        starts,
        ends,
        source={"generator": "mallocgame.memory.splits.random_trace", "seed": seed, "n": n},
    )


def layered_trace(seed: int, layers: int = 20, name: str | None = None) -> Workload:
    """A training-step-like trace (buffers only, the trace access proxy) drawn from ``seed``.

    A chain of ``layers`` layers of random widths (log-uniform, 16 to 2048 features) at a
    random batch: per layer a weight (live for the whole step), an activation (from its
    forward op until its backward op: kept for the backward pass) and one or two short
    temporaries; then the backward pass in reverse (an activation gradient passed to the next
    backward op, a weight gradient that lives until the optimizer), and the optimizer's update
    at the end (with Adam, two moment buffers per weight live for the whole step). With
    probability 0.25 the program is inference only (forward, activations freed after their
    consumer). About 2 to 7 buffers per layer."""
    rng = np.random.default_rng(seed)
    layers = max(int(layers), 1)
    train = rng.random() >= 0.25
    adam = train and rng.random() < 0.5
    batch = int(2 ** rng.integers(0, 9))
    widths = np.exp(rng.uniform(np.log(16), np.log(2048), size=layers + 1)).astype(np.int64)
    elt = 2 if rng.random() < 0.3 else 4
    bufs: list[tuple[int, int, int]] = []  # (size, start, end), end exclusive

    def nbytes(n: int) -> int:
        return max(64, (int(n) * elt + 63) // 64 * 64)

    horizon_fwd = 2 * layers + 1
    horizon = (4 * layers + 2 + 2 * layers) if train else horizon_fwd + 1
    act_end = np.zeros(layers, np.int64)
    t = 0
    fwd_t = np.zeros(layers, np.int64)
    for i in range(layers):
        t += 2
        fwd_t[i] = t
        w = nbytes(widths[i] * widths[i + 1])
        bufs.append((w, 0, horizon))  # the weight
        if adam:
            bufs += [(w, 0, horizon), (w, 0, horizon)]
        for _ in range(1 + int(rng.random() < 0.5)):  # temporaries of the op
            bufs.append((nbytes(batch * widths[i + 1] * rng.uniform(0.5, 4)), t, t + 1))
    bwd = t
    dw_start = np.zeros(layers, np.int64)
    for i in reversed(range(layers)):
        if train:
            bwd += 2
            dw_start[i] = bwd
            act_end[i] = bwd + 1
        else:
            act_end[i] = fwd_t[i] + 3  # read by the next layer's op
    for i in range(layers):
        bufs.append((nbytes(batch * widths[i + 1]), fwd_t[i], min(act_end[i], horizon)))
    if train:
        opt = bwd
        for i in range(layers):
            opt += 1
            bufs.append(
                (nbytes(widths[i] * widths[i + 1]), dw_start[i], min(opt + 1, horizon))
            )  # dW
            bufs.append(
                (nbytes(batch * widths[i]), dw_start[i], min(dw_start[i] + 3, horizon))
            )  # dA
            if rng.random() < 0.5:
                bufs.append(
                    (
                        nbytes(batch * widths[i + 1] * rng.uniform(0.5, 2)),
                        dw_start[i],
                        dw_start[i] + 1,
                    )
                )
        horizon = max(horizon, opt + 2)
    arr = np.array(bufs, dtype=np.int64)
    sizes, starts, ends = arr[:, 0], arr[:, 1], np.minimum(arr[:, 2], horizon)
    ends = np.maximum(ends, starts + 1)
    return Workload.from_intervals(
        name or f"layered[L{layers},s{seed}]",
        np.arange(len(arr)),
        sizes,
        starts,
        ends,
        source={
            "generator": "mallocgame.memory.splits.layered_trace",
            "seed": seed,
            "layers": layers,
        },
    )


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

# More variants of the training programs and more generated workloads (seeds 1-99 are the
# training generators' range; validation uses 1001+).
TRAIN_WIDE: tuple[WorkloadSpec, ...] = TRAIN + (
    zoo("mlp_train", batch=16, widths=(64, 128, 128, 10), optimizer="sgd"),
    zoo("mlp_train", batch=256, widths=(1024, 2048, 512, 256, 100)),
    zoo("mlp_train", batch=64, widths=(784, 512, 512, 512, 512, 512, 512, 10), optimizer="sgd"),
    zoo("gpt2_forward", n_layers=2, seq_len=32, d_model=64, n_heads=2, vocab=512),
    zoo("gpt2_forward", n_layers=6, seq_len=128, d_model=256, n_heads=4, vocab=2048),
    zoo("gpt2_forward", n_layers=2, seq_len=1024, d_model=128, n_heads=2, vocab=16384),
    zoo("attention_long", seq_len=256, d_model=256, n_heads=4),
    zoo("attention_long", seq_len=8192, d_model=256, n_heads=4),
    zoo("attention_long", seq_len=2048, d_model=768, n_heads=12, batch=2),
    *(generated(seed, n) for seed, n in ((4, 40), (5, 80), (6, 150), (7, 250), (8, 300), (9, 100))),
    *(
        layered(seed, n)
        for seed, n in (
            (1, 6),
            (2, 10),
            (3, 16),
            (4, 24),
            (5, 32),
            (6, 40),
            (7, 48),
            (8, 12),
            (9, 20),
            (10, 44),
        )
    ),
)

VALIDATION: tuple[WorkloadSpec, ...] = (
    zoo("conv_train"),
    zoo("conv_train", batch=16, channels=(16, 32, 64, 128), optimizer="adam"),
    zoo("embed_train"),
    zoo("embed_train", vocab=20000, dim=32, hidden=(512, 256, 128)),
    trace("iree_mobilebert.csv"),
    generated(1001, 90),
    generated(1002, 220),
    layered(1001, 14),
    layered(1002, 30),
    layered(1003, 44),
)

# Programs with loops (XLA while loops carrying the activations and the stacked weights): the
# held-out split has one (rnn_scan) and train-wide none; an agent trained on train-wide leaves
# their loop-carried buffers slow. Training gets scan_mlp, validation scan_glu.
TRAIN_LOOPS: tuple[WorkloadSpec, ...] = TRAIN_WIDE + (
    zoo("scan_mlp"),
    zoo("scan_mlp", layers=16, width=512),
    zoo("scan_mlp", layers=4, width=2048, batch=64),
    zoo("scan_mlp", layers=12, width=768, batch=32, optimizer="sgd"),
    zoo("scan_mlp", layers=6, width=256, d_in=64, batch=256, optimizer="sgd"),
    zoo("scan_mlp", layers=24, width=384, batch=16),
)

VALIDATION_LOOPS: tuple[WorkloadSpec, ...] = VALIDATION + (
    zoo("scan_glu"),
    zoo("scan_glu", layers=12, d_model=256, hidden=1024, optimizer="adam"),
)

HELDOUT_LARGE: tuple[WorkloadSpec, ...] = (
    zoo("gpt2_train"),
    trace("G_1.csv"),
    trace("tiny_bert.csv"),
)

SPLITS: dict[str, tuple[WorkloadSpec, ...]] = {
    "train": TRAIN,
    "train-wide": TRAIN_WIDE,
    "train-loops": TRAIN_LOOPS,
    "validation": VALIDATION,
    "validation-loops": VALIDATION_LOOPS,
    "heldout": HELDOUT,
    "heldout-large": HELDOUT_LARGE,
}


def check_disjoint(
    train: Iterable[WorkloadSpec] = TRAIN_LOOPS,
    heldout: Iterable[WorkloadSpec] = HELDOUT + HELDOUT_LARGE,
    validation: Iterable[WorkloadSpec] = VALIDATION_LOOPS,
) -> None:
    """Raises ``ValueError`` when a program (zoo entry or trace file; for a generated workload,
    its generator and seed) is in two of the groups train / validation / held-out. ``train``
    defaults to ``train-loops``, which contains ``train-wide`` and ``train``; ``validation`` to
    ``validation-loops``, which contains ``validation``."""
    groups = {"train": train, "validation": validation, "held-out": heldout}
    programs = {g: {s.program for s in specs} for g, specs in groups.items()}
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            clash = sorted(programs[a] & programs[b])
            if clash:
                raise ValueError(f"{b} program(s) in the {a} split: {clash}")


check_disjoint()


def get_split(name: str) -> tuple[WorkloadSpec, ...]:
    if name not in SPLITS:
        raise InputError(
            f"unknown split {name!r}; choose one of {', '.join(SPLITS)}", field="split"
        )
    return SPLITS[name]


def is_heldout_program(program: str) -> bool:
    return program in {s.program for s in HELDOUT + HELDOUT_LARGE}


def is_validation_program(program: str) -> bool:
    return program in {s.program for s in VALIDATION_LOOPS}


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
