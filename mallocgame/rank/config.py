"""The rank config: which rank each attention layer keeps (versioned JSON, written atomically).

Example (``layers`` has one entry per transformer layer, in order)::

    {
      "format": "mallocgame-ranks",
      "version": 1,
      "model": "smollm2",
      "model_hash": "b179c9523d0e6a0f",
      "seq_len": 512,
      "method": "whitened",
      "budget": {"fraction": 0.5},
      "layers": [{"r_qk": 32, "r_v": 32}, ...],
      "meta": {"player": "msa", "note": "free-form"}
    }

- ``model``: ``"smollm2"`` or ``"minilm"``; its shape (layers, heads, head dim) is fixed by
  :data:`MODEL_SHAPES`, so a config alone determines its attention FLOPs.
- ``model_hash``: the short sha256 of the weight file (:func:`mallocgame.rank.models.file_hash`);
  the runtime refuses a config whose hash differs from the loaded model's.
- ``r_qk``: dims of the query-key product per head (1..head_dim), ``r_v``: value dims per head.
  ``r == head_dim`` means that layer runs as in the original model.
- ``qk_groups`` / ``v_groups`` (optional, version 2; grouped-query models, i.e. SmolLM2): the
  ranks of the layer's key-value head groups, one per group, when they differ; their mean is
  ``r_qk`` / ``r_v`` (so the FLOPs are those of ``r_qk`` / ``r_v`` in every group). Absent: every
  group keeps ``r_qk`` / ``r_v``. With a method that fits a part's bases per query head
  (``"whitened+heads"``: both, ``"whitened+vheads"``: values) the part's list may instead hold
  one rank per query head (9 for SmolLM2, group-major). A group or head may keep rank 0:
  query-key 0 attends uniformly to the causal prefix, value 0 outputs the head's mean value
  (the head is pruned). A config without them is written as version 1.
- ``seq_len``: the sequence length the budget refers to; ``budget``: optional, ``fraction`` of
  the full model's attention FLOPs and/or absolute ``flops``; ``method``: how the runtime
  learns its bases (see :mod:`mallocgame.rank.runtime`); ``meta``: free-form provenance.
- ``context_buckets`` (optional, version 3; causal decoders, i.e. SmolLM2): ranks by context
  length, ``[{"up_to": 1024, "layers": [...]}, {"up_to": 8192, "layers": [...]}]``. A bucket
  holds the contexts of ``previous up_to + 1 .. up_to`` tokens; ``up_to`` ascends strictly, the
  last is at least the model's context (:attr:`ModelShape.max_context`), and no bucket keeps a
  larger rank in any layer and part than the bucket before it (a decode cache only loses rank
  when it switches, :mod:`mallocgame.rank.buckets`). The top-level ``layers`` are the ranks of
  the bucket holding ``seq_len`` (so FLOPs and budgets at ``seq_len`` read as without buckets);
  per-group ranks do not combine with buckets. A config without them is written as before.

Per-group ranks of a config are carried to another config by :func:`inherit_groups` (with
:func:`rescale_groups`), and a config's ranks as the calibration evaluator's canonical per-layer
entries are :func:`config_entries` (:func:`layer_entry`).

The document's checks are :mod:`mallocgame.rank.config_checks`; the model shapes, methods and
budget kinds :mod:`mallocgame.rank.shapes` (both re-exported here).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError, MallocGameError
from mallocgame.io import atomic_write_text
from mallocgame.rank.config_checks import (
    FORMAT_NAME,
    FORMAT_VERSION,
    READ_VERSIONS,
    shape_or_error,
    validate_document,
)
from mallocgame.rank.shapes import (
    BUDGET_KINDS,
    METHODS,
    MODEL_SHAPES,
    PER_HEAD_PARTS,
    RANK_MULTIPLES,
    ModelShape,
    head_ranks_allowed,
    per_head,
    per_head_keys,
)

__all__ = [
    "BUDGET_KINDS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "METHODS",
    "MODEL_SHAPES",
    "PER_HEAD_PARTS",
    "RANK_MULTIPLES",
    "READ_VERSIONS",
    "ContextBucket",
    "ModelMismatchError",
    "ModelShape",
    "RankConfig",
    "config_entries",
    "full_config",
    "head_ranks_allowed",
    "inherit_groups",
    "layer_entry",
    "load_rank_config",
    "loads_rank_config",
    "per_head",
    "per_head_keys",
    "ranks_from_lists",
    "rescale_groups",
    "save_rank_config",
]


class ModelMismatchError(MallocGameError):
    """A rank config names another model (or another file of weights) than the loaded one."""


@dataclasses.dataclass(frozen=True)
class ContextBucket:
    """The ranks a config keeps for contexts of at most ``up_to`` tokens (and more than the
    previous bucket's ``up_to``)."""

    up_to: int
    r_qk: tuple[int, ...]
    r_v: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "up_to", int(self.up_to))
        object.__setattr__(self, "r_qk", tuple(int(r) for r in self.r_qk))
        object.__setattr__(self, "r_v", tuple(int(r) for r in self.r_v))

    def to_dict(self) -> dict[str, Any]:
        return {
            "up_to": self.up_to,
            "layers": [{"r_qk": a, "r_v": b} for a, b in zip(self.r_qk, self.r_v, strict=True)],
        }


@dataclasses.dataclass(frozen=True)
class RankConfig:
    """Per-layer ranks of a model's attention (see the module doc for the JSON)."""

    model: str
    model_hash: str
    r_qk: tuple[int, ...]
    r_v: tuple[int, ...]
    seq_len: int
    method: str = "whitened"
    budget: dict[str, float] | None = None
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)
    #: per layer, the ranks of each key-value group (None: every group at r_qk / r_v)
    qk_groups: tuple[tuple[int, ...], ...] | None = None
    v_groups: tuple[tuple[int, ...], ...] | None = None
    #: every rank (and group rank) is a multiple of this (``--rank-multiple``; 1 = any)
    rank_multiple: int = 1
    #: ranks by context length (None: the same ranks at every length); see the module doc
    context_buckets: tuple[ContextBucket, ...] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "r_qk", tuple(int(r) for r in self.r_qk))
        object.__setattr__(self, "r_v", tuple(int(r) for r in self.r_v))
        if self.context_buckets is not None:
            object.__setattr__(self, "context_buckets", tuple(self.context_buckets) or None)
        for k in ("qk_groups", "v_groups"):
            g = getattr(self, k)
            if g is not None:
                g = tuple(tuple(int(r) for r in layer) for layer in g)
                base = self.r_qk if k == "qk_groups" else self.r_v
                if len(g) != len(base):
                    raise InputError(f"{k} lists {len(g)} layers, the config {len(base)}", field=k)
                if all(len(set(x)) == 1 and x[0] == b for x, b in zip(g, base, strict=False)):
                    g = None  # equal split everywhere: the plain form
            object.__setattr__(self, k, g)
        validate_document(self.to_dict(), None)

    def groups(self, i: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Layer ``i``'s per-group ranks ``(qk, v)`` (the equal split when none are set)."""
        G = self.shape.n_kv_heads
        qk = self.qk_groups[i] if self.qk_groups is not None else (self.r_qk[i],) * G
        v = self.v_groups[i] if self.v_groups is not None else (self.r_v[i],) * G
        return tuple(qk), tuple(v)

    def groups_list(self, kind: str) -> list[tuple[int, ...]]:
        """Every layer's per-group ranks of ``kind`` (``"qk"`` or ``"v"``)."""
        k = {"qk": 0, "v": 1}[kind]
        return [self.groups(i)[k] for i in range(len(self.r_qk))]

    @property
    def budget_kind(self) -> str:
        """What the budget counts: ``"flops"`` (attention FLOPs; also configs without a
        ``budget.kind``) or ``"kv-cache"`` (KV-cache bytes per token)."""
        return str((self.budget or {}).get("kind", "flops"))

    @property
    def bucketed(self) -> bool:
        """True when the config keeps ranks per context-length bucket."""
        return self.context_buckets is not None

    def bucket_index(self, length: int) -> int:
        """The index of the bucket holding a context of ``length`` tokens (the first whose
        ``up_to`` is at least ``length``); 0 for a config without buckets. ``ValueError``
        beyond the last bucket."""
        if self.context_buckets is None:
            return 0
        for i, b in enumerate(self.context_buckets):
            if length <= b.up_to:
                return i
        raise ValueError(
            f"a context of {length} tokens is beyond the last bucket "
            f"(up to {self.context_buckets[-1].up_to})"
        )

    def for_context(self, length: int) -> RankConfig:
        """The plain config (no buckets) of the ranks kept for a context of ``length`` tokens:
        itself without buckets, else its bucket's ranks (``meta.context_bucket`` says which)."""
        if self.context_buckets is None:
            return self
        i = self.bucket_index(length)
        return self.bucket_config(i)

    def bucket_config(self, i: int) -> RankConfig:
        """Bucket ``i``'s ranks as a plain config (``meta.context_bucket``: its index and
        ``up_to``)."""
        assert self.context_buckets is not None
        b = self.context_buckets[i]
        meta = dict(self.meta) | {"context_bucket": {"index": i, "up_to": b.up_to}}
        return dataclasses.replace(self, r_qk=b.r_qk, r_v=b.r_v, meta=meta, context_buckets=None)

    @property
    def grouped(self) -> bool:
        """True when some layer's groups keep different ranks."""
        return self.qk_groups is not None or self.v_groups is not None

    @property
    def shape(self) -> ModelShape:
        return MODEL_SHAPES[self.model]

    def to_dict(self) -> dict[str, Any]:
        layers = []
        for i, (a, b) in enumerate(zip(self.r_qk, self.r_v, strict=False)):
            layer: dict[str, Any] = {"r_qk": a, "r_v": b}
            for key, g, r in (("qk_groups", self.qk_groups, a), ("v_groups", self.v_groups, b)):
                if g is not None and any(x != r for x in g[i]):
                    layer[key] = list(g[i])
            layers.append(layer)
        out = {
            "format": FORMAT_NAME,
            "version": 3 if self.bucketed else 2 if self.grouped else 1,
            "model": self.model,
            "model_hash": self.model_hash,
            "seq_len": self.seq_len,
            "method": self.method,
            "budget": None if self.budget is None else dict(self.budget),
            "layers": layers,
            "meta": dict(self.meta),
        } | ({"rank_multiple": self.rank_multiple} if self.rank_multiple != 1 else {})
        if self.context_buckets is not None:
            out["context_buckets"] = [b.to_dict() for b in self.context_buckets]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: Any, where: str | None = None) -> RankConfig:
        validate_document(d, where)
        layers = d["layers"]
        G = MODEL_SHAPES[d["model"]].n_kv_heads

        def groups(key: str, base: str) -> tuple[tuple[int, ...], ...] | None:
            if not any(key in x for x in layers):
                return None
            return tuple(tuple(x.get(key, [x[base]] * G)) for x in layers)

        return cls(
            model=d["model"],
            model_hash=d["model_hash"],
            r_qk=tuple(x["r_qk"] for x in layers),
            r_v=tuple(x["r_v"] for x in layers),
            seq_len=d["seq_len"],
            method=d.get("method", "whitened"),
            budget=d.get("budget"),
            meta=d.get("meta", {}) or {},
            qk_groups=groups("qk_groups", "r_qk"),
            v_groups=groups("v_groups", "r_v"),
            rank_multiple=d.get("rank_multiple", 1),
            context_buckets=_buckets_of(d.get("context_buckets")),
        )

    @classmethod
    def with_buckets(
        cls, base: RankConfig, buckets: Sequence[ContextBucket], **kw: Any
    ) -> RankConfig:
        """``base`` (model, hash, method, ...; ``kw`` replaces fields) with ranks per context
        bucket, its top-level ranks those of the bucket holding its ``seq_len``."""
        buckets = tuple(buckets)
        seq_len = kw.get("seq_len", base.seq_len)
        i = next((j for j, b in enumerate(buckets) if seq_len <= b.up_to), len(buckets) - 1)
        return dataclasses.replace(
            base, r_qk=buckets[i].r_qk, r_v=buckets[i].r_v, context_buckets=buckets, **kw
        )

    @classmethod
    def uniform(
        cls,
        model: str,
        model_hash: str,
        r_qk: int | None = None,
        r_v: int | None = None,
        seq_len: int = 512,
        **kw: Any,
    ) -> RankConfig:
        """The same ranks in every layer (default: full, i.e. the original model)."""
        s = shape_or_error(model, None)
        n = s.n_layers
        return cls(
            model, model_hash, (r_qk or s.head_dim,) * n, (r_v or s.head_dim,) * n, seq_len, **kw
        )

    def check_model(self, model: str, model_hash: str, where: str | None = None) -> None:
        """Raise :class:`ModelMismatchError` unless this config is for ``model``/``model_hash``."""
        src = f"rank config {where}" if where else "rank config"
        if self.model != model:
            raise ModelMismatchError(f"{src} is for model {self.model!r}, not {model!r}")
        if self.model_hash != model_hash:
            raise ModelMismatchError(
                f"{src} is for {self.model} weights with hash {self.model_hash} (expected), "
                f"but the loaded model has hash {model_hash} (actual); re-derive the config for "
                "these weights"
            )


def _buckets_of(raw: Any) -> tuple[ContextBucket, ...] | None:
    """The validated ``context_buckets`` of a config dict as :class:`ContextBucket` s."""
    if raw is None:
        return None
    return tuple(
        ContextBucket(
            b["up_to"], tuple(x["r_qk"] for x in b["layers"]), tuple(x["r_v"] for x in b["layers"])
        )
        for b in raw
    )


def loads_rank_config(text: str, where: str | None = None) -> RankConfig:
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(
            f"not valid JSON: {e.msg} (column {e.colno})", where, line=e.lineno
        ) from None
    except RecursionError:
        raise InputError("not valid JSON: nested too deeply", where, line=1) from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        msg = " ".join(str(e).split())[:160]
        raise InputError(f"not valid JSON: {msg}", where, line=1) from None
    return RankConfig.from_dict(d, where)


def load_rank_config(
    path: str | os.PathLike, model: str | None = None, model_hash: str | None = None
) -> RankConfig:
    """Read and validate a rank config; with ``model``/``model_hash``, refuse another model's."""
    p = str(path)
    try:
        raw = Path(p).read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", p) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputError(
            f"not a text file: invalid UTF-8 byte 0x{raw[e.start]:02x}",
            p,
            line=raw[: e.start].count(b"\n") + 1,
        ) from None
    cfg = loads_rank_config(text, p)
    if model_hash is not None:
        cfg.check_model(model or cfg.model, model_hash, p)
    elif model is not None and model != cfg.model:
        raise ModelMismatchError(f"rank config {p} is for model {cfg.model!r}, not {model!r}")
    return cfg


def save_rank_config(cfg: RankConfig, path: str | os.PathLike) -> Path:
    """Write atomically: a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    atomic_write_text(path, cfg.to_json())
    return path


def full_config(model: str, model_hash: str, seq_len: int = 512) -> RankConfig:
    """The config that keeps every rank (runs the original model)."""
    return RankConfig.uniform(model, model_hash, seq_len=seq_len)


def ranks_from_lists(
    model: str,
    model_hash: str,
    r_qk: Sequence[int],
    r_v: Sequence[int],
    seq_len: int = 512,
    **kw: Any,
) -> RankConfig:
    return RankConfig(model, model_hash, tuple(r_qk), tuple(r_v), seq_len, **kw)


# ----------------------------------------------------------------------------- per-group ranks


def rescale_groups(groups: Sequence[int], rank: int, head_dim: int) -> tuple[int, ...]:
    """A part's group (or head) ranks ``groups`` brought to the layer rank ``rank``: in
    proportion to the old ones (a group at 0 stays at 0), each at most ``head_dim``, summing to
    ``len(groups) * rank`` (the leftover dims go to the largest remainders)."""
    g = np.asarray(groups, np.float64)
    total = len(g) * rank
    if g.sum() <= 0 or not 0 <= rank <= head_dim:
        raise ValueError(f"cannot rescale {tuple(groups)} to rank {rank}")
    target = np.minimum(g * total / g.sum(), head_dim)
    out = np.floor(target).astype(np.int64)
    while out.sum() < total:
        room = out < head_dim
        # the largest remainders first; where every target is spent, the widest live group
        want = np.where(room, target - out + 1e-9 * (g > 0) + 1e-12 * g, -np.inf)
        out[int(np.argmax(want))] += 1
    return tuple(int(x) for x in out)


def inherit_groups(
    config: RankConfig, init: RankConfig, rescale: bool = False
) -> tuple[RankConfig, int]:
    """``config`` with ``init``'s per-group ranks in the parts (layer and kind) where both keep
    the same rank, the other parts split equally (or, with ``rescale``, ``init``'s split
    brought to the new rank by :func:`rescale_groups`); and how many parts were kept. For going
    on with a split search after a solver changed some of ``init``'s ranks (or its method)."""
    if (init.model, len(init.r_qk)) != (config.model, len(config.r_qk)):
        raise ValueError(f"init is for {init.model}, the config for {config.model}")
    hd = config.shape.head_dim
    kept = 0
    out = {}
    for kind in ("qk", "v"):
        ours, theirs = getattr(config, f"r_{kind}"), getattr(init, f"r_{kind}")
        rows = []
        for r, t, g in zip(ours, theirs, init.groups_list(kind), strict=True):
            kept += r == t
            if r == t:
                rows.append(tuple(g))
            else:
                rows.append(rescale_groups(g, r, hd) if rescale else (r,) * len(g))
        out[f"{kind}_groups"] = tuple(rows)
    return dataclasses.replace(config, **out), kept


def layer_entry(
    rq: int, rv: int, qk_groups: Sequence[int] | None = None, v_groups: Sequence[int] | None = None
) -> tuple:
    """One layer's entry of a ranks tuple for the calibration evaluator
    (:meth:`mallocgame.rank.evaluator.Evaluator.loss_of_ranks`): ``(rq, rv)``, or ``(rq, rv,
    qk_groups, v_groups)`` when some group differs (one canonical form, so that the memo and the
    prefix caches see equal configs as equal)."""
    qg = None if qk_groups is None or len(set(qk_groups)) == 1 else tuple(int(r) for r in qk_groups)
    vg = None if v_groups is None or len(set(v_groups)) == 1 else tuple(int(r) for r in v_groups)
    if qg is None and vg is None:
        return (int(rq), int(rv))
    return (int(rq), int(rv), qg, vg)


def config_entries(cfg: RankConfig) -> tuple[tuple, ...]:
    """A :class:`RankConfig` as per-layer entries (:func:`layer_entry`)."""
    return tuple(layer_entry(cfg.r_qk[i], cfg.r_v[i], *cfg.groups(i)) for i in range(len(cfg.r_qk)))
