"""The rank game's tables: what each move costs and what is known about it before playing.

A *part* is one attention layer's query-key basis (``"qk"``) or its value basis (``"v"``);
parts are ordered ``layer 0 qk, layer 0 v, layer 1 qk, ...`` (``P = 2 * n_layers``). Each
part takes one rank among ``choices`` (ascending, the last = the head dimension = full).

:class:`RankTables` is the contract between the measurements (``mallocgame.rank.measure``),
the baselines (``mallocgame.rank.solvers``) and the native game (``mallocgame._native.RankGame``):

- ``cost[p, c]``: attention FLOPs of part ``p`` at rank ``choices[c]`` at ``seq_len``, so that
  ``cost[arange(P), c].sum() == attention_flops(config)["total"]`` for the config those
  choices make (tested); ``full_cost`` = FLOPs of the original attention. Both are computed
  from the model, choices, ``seq_len`` and method (:func:`cost_table`), never stored.
- ``energy[p, c]``: fraction of the part's (whitened) spectral energy its rank keeps, in [0, 1],
  1 at full rank.
- ``sens[p, c]``: calibration loss increase measured with only part ``p`` lowered to
  ``choices[c]`` (0 at full rank). NaN where not measured.
- ``fisher[p]``: a Fisher-style sensitivity of the part (larger = more sensitive).
"""

from __future__ import annotations

import dataclasses
import io
from typing import Any

import numpy as np

from mallocgame.io import atomic_write_bytes
from mallocgame.rank.config import BUDGET_KINDS, MODEL_SHAPES, RANK_MULTIPLES, RankConfig

PART_KINDS = ("qk", "v")

#: default rank choices per model (ascending; the last is the head dimension)
DEFAULT_CHOICES: dict[str, tuple[int, ...]] = {
    "smollm2": (8, 16, 24, 32, 40, 48, 64),
    "minilm": (4, 8, 12, 16, 20, 24, 32),
}
#: default sequence length the FLOP costs (and a budget) refer to, per model
DEFAULT_SEQ_LEN: dict[str, int] = {"smollm2": 512, "minilm": 256}


def budget_dict(fraction: float, budget_kind: str = "flops") -> dict[str, Any]:
    """A config's ``budget`` field: the fraction, and its kind unless FLOPs (the default, so
    that FLOP-budget configs are written as before)."""
    out: dict[str, Any] = {"fraction": float(fraction)}
    if budget_kind != "flops":
        out["kind"] = budget_kind
    return out


def choices_for_multiple(model: str, multiple: int, choices: tuple[int, ...] | None = None):
    """The rank choices under ``--rank-multiple``: ``choices`` (default: the model's) checked
    to be multiples of ``multiple``; without ``choices`` and ``multiple > 1``, every multiple
    of it up to the head dim (8: 8, 16, ..., 64; 32: 32, 64). ``ValueError`` names the bad
    choice."""
    if multiple not in RANK_MULTIPLES:
        raise ValueError(f"expected one of {list(RANK_MULTIPLES)}, got {multiple}")
    hd = MODEL_SHAPES[model].head_dim
    if choices is None:
        if multiple == 1:
            return DEFAULT_CHOICES[model]
        return tuple(range(multiple, hd + 1, multiple))
    bad = [c for c in choices if c % multiple]
    if bad:
        raise ValueError(f"rank choice {bad[0]} is not a multiple of --rank-multiple {multiple}")
    return tuple(choices)


def parts(model: str) -> list[tuple[int, str]]:
    """``[(layer, kind), ...]`` in move order."""
    return [(i, k) for i in range(MODEL_SHAPES[model].n_layers) for k in PART_KINDS]


#: bytes of one cached number (the decode cache is float32)
CACHE_ITEM_BYTES = 4


def cost_table(
    model: str,
    choices: tuple[int, ...],
    seq_len: int,
    method: str = "whitened",
    budget_kind: str = "flops",
) -> tuple[np.ndarray, float]:
    """``(cost float64[P, C], full_cost)``.

    ``budget_kind="flops"``: the per-part split of ``attention_flops`` (the query-key basis
    projections depend on ``method``: per group or per query head). ``"kv-cache"``: bytes per
    token of the part's cache in one layer: a query-key part at rank ``r < hd`` caches ``r``
    numbers per key map (one per key-value group, or per query head with
    ``"whitened+heads"``), a value part ``r`` per value map (per group, or per query head with
    a per-head method); at full rank the layer keeps the model's keys / values (``G x hd``).
    ``full_cost``: the full model's (``2 x G x hd`` per layer). This is what
    :func:`mallocgame.rank.decode.cache_bytes` measures per token (tested)."""
    if budget_kind not in BUDGET_KINDS:
        raise ValueError(f"unknown budget kind {budget_kind!r}; expected one of {BUDGET_KINDS}")
    s = MODEL_SHAPES[model]
    if not choices or list(choices) != sorted(set(choices)) or choices[-1] != s.head_dim:
        raise ValueError(
            f"rank choices must be ascending, distinct and end at the head dimension "
            f"{s.head_dim}; got {list(choices)}"
        )
    if choices[0] < 1:
        raise ValueError(f"rank choices must be >= 1; got {list(choices)}")
    H, K, hd, L = s.n_heads, s.key_maps(method), s.head_dim, seq_len
    r = np.asarray(choices, np.float64)
    if budget_kind == "kv-cache":
        G, V, b = s.n_kv_heads, s.value_maps(method), float(CACHE_ITEM_BYTES)
        kq = np.where(r < hd, K * r, G * hd) * b
        kv = np.where(r < hd, V * r, G * hd) * b
        cost = np.stack([kq if k == "qk" else kv for _, k in parts(model)])
        return cost, 2.0 * G * hd * b * s.n_layers
    qk = 2.0 * H * L * L * r
    if s.rope:
        qk = qk + np.where(r < hd, 2.0 * L * hd * r * (H + K), 0.0)
    v = 2.0 * H * L * L * r
    cost = np.stack([qk if k == "qk" else v for _, k in parts(model)])
    full = 4.0 * H * L * L * hd * s.n_layers
    return cost, full


@dataclasses.dataclass
class RankTables:
    """The measured tables of one model (see the module doc); ``cost`` and ``full_cost`` follow
    from ``model``, ``choices``, ``seq_len`` and ``method``."""

    model: str
    model_hash: str
    seq_len: int
    method: str
    choices: tuple[int, ...]
    energy: np.ndarray
    sens: np.ndarray
    fisher: np.ndarray
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: what ``cost`` counts: ``"flops"`` or ``"kv-cache"`` (:data:`BUDGET_KINDS`)
    budget_kind: str = "flops"

    def __post_init__(self) -> None:
        self.choices = tuple(int(c) for c in self.choices)
        self._costs()  # validates the choices and the budget kind

    def _costs(self) -> tuple[np.ndarray, float]:
        return cost_table(self.model, self.choices, self.seq_len, self.method, self.budget_kind)

    @property
    def cost(self) -> np.ndarray:
        """``float64[P, C]``: what each part costs at each choice (:func:`cost_table`):
        attention FLOPs at ``seq_len``, or KV-cache bytes per token."""
        return self._costs()[0]

    @property
    def full_cost(self) -> float:
        """The original model's cost (attention FLOPs at ``seq_len`` or cache bytes per token)."""
        return self._costs()[1]

    def with_budget_kind(self, budget_kind: str) -> RankTables:
        """The same measurements, costs counted as ``budget_kind``."""
        return dataclasses.replace(self, budget_kind=budget_kind)

    @property
    def cost_label(self) -> str:
        """What a budget fraction is a fraction of, in words."""
        if self.budget_kind == "kv-cache":
            return "the full KV cache's bytes per token"
        return "full attention FLOPs"

    @classmethod
    def cost_only(
        cls, model: str, model_hash: str, choices: tuple[int, ...], seq_len: int, method: str
    ) -> RankTables:
        """Tables with the FLOP costs alone, nothing measured (energy, sensitivity and Fisher
        NaN): enough for a solver that measures what it needs (``uniform``, ``refine`` from a
        start config) and for checking a budget, without the per-part calibration runs that
        take most of a new calibration's first :func:`~mallocgame.rank.measure.build_tables`."""
        shape = (len(parts(model)), len(choices))
        nan = np.full(shape, np.nan)
        return cls(
            model,
            model_hash,
            seq_len,
            method,
            tuple(choices),
            nan,
            nan.copy(),
            np.full(shape[0], np.nan),
        )

    @property
    def parts(self) -> list[tuple[int, str]]:
        return parts(self.model)

    @property
    def num_parts(self) -> int:
        return len(self.parts)

    def config(
        self,
        choice_idx: np.ndarray | list[int],
        budget: float | None = None,
        *,
        rank_multiple: int = 1,
        **meta: Any,
    ) -> RankConfig:
        """The rank config of one choice index per part (its budget of this tables' kind;
        ``rank_multiple``: recorded, checked against the ranks)."""
        idx = np.asarray(choice_idx, np.int64)
        if idx.shape != (self.num_parts,):
            raise ValueError(f"expected {self.num_parts} choice indices, got shape {idx.shape}")
        ranks = np.asarray(self.choices)[idx]
        return RankConfig(
            self.model,
            self.model_hash,
            tuple(ranks[0::2]),
            tuple(ranks[1::2]),
            self.seq_len,
            method=self.method,
            budget=None if budget is None else budget_dict(budget, self.budget_kind),
            meta=dict(meta),
            rank_multiple=rank_multiple,
        )

    def fraction(self, choice_idx: np.ndarray | list[int]) -> float:
        """The cost of a choice vector as a fraction of the full model's."""
        idx = np.asarray(choice_idx, np.int64)
        cost, full = self._costs()
        return float(cost[np.arange(self.num_parts), idx].sum() / full)

    def save(self, path: str) -> None:
        """The measurements (energy, sensitivity, Fisher) and what they are of, atomically; not
        ``seq_len`` or the costs, which :meth:`load` is told or computes."""
        buf = io.BytesIO()
        np.savez(
            buf,
            energy=self.energy,
            sens=self.sens,
            fisher=self.fisher,
            choices=np.asarray(self.choices),
            header=np.asarray([self.model, self.model_hash, self.method]),
        )
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str, seq_len: int) -> RankTables:
        """The tables :meth:`save` wrote, their costs at ``seq_len`` (files of the older format,
        which also held the costs and a sequence length, read the same)."""
        with np.load(path) as z:
            header = [str(x) for x in z["header"]]
            if len(header) == 4:  # older files: model, hash, seq_len, method
                header = [header[0], header[1], header[3]]
            model, model_hash, method = header
            return cls(
                model,
                model_hash,
                int(seq_len),
                method,
                tuple(int(c) for c in z["choices"]),
                z["energy"],
                z["sens"],
                z["fisher"],
            )
