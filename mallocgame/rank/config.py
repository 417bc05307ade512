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

Per-group ranks of a config are carried to another config by :func:`inherit_groups` (with
:func:`rescale_groups`), and a config's ranks as the calibration evaluator's canonical per-layer
entries are :func:`config_entries` (:func:`layer_entry`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError, MallocGameError, short_repr
from mallocgame.io import atomic_write_text

#: what a budget counts (``budget.kind``; absent = attention FLOPs)
BUDGET_KINDS = ("flops", "kv-cache")
#: ``rank_multiple`` values (every rank a multiple of it, so that kernels can use the widths)
RANK_MULTIPLES = (1, 8, 16, 32)

FORMAT_NAME = "mallocgame-ranks"
FORMAT_VERSION = 2
#: versions this reader accepts (1: one rank per layer and part; 2: adds per-group ranks)
READ_VERSIONS = (1, 2)
#: how the runtime learns its bases (see :mod:`mallocgame.rank.runtime`); ``"whitened+heads"``:
#: whitened bases per query head instead of per key-value group, for queries-keys and values;
#: ``"whitened+vheads"``: per query head for the values only (SmolLM2; both the same as
#: ``"whitened"`` where every query head has its own keys and values, as in MiniLM)
METHODS = ("whitened", "pca", "whitened+heads", "whitened+vheads")


def per_head(method: str) -> bool:
    """Whether ``method`` learns some bases per query head (not per key-value group)."""
    return method in ("whitened+heads", "whitened+vheads")


def per_head_keys(method: str) -> bool:
    """Whether ``method`` maps the keys once per query head (not per key-value group)."""
    return method == "whitened+heads"


#: which parts each per-head method fits per query head (and may rank per query head)
PER_HEAD_PARTS = {"whitened+heads": ("qk", "v"), "whitened+vheads": ("v",)}


def head_ranks_allowed(shape: ModelShape, method: str, kind: str) -> bool:
    """Whether a ``kind`` (``"qk"``/``"v"``) part may keep one rank per query head under
    ``method`` (its basis is per query head), besides one per key-value group."""
    return kind in PER_HEAD_PARTS.get(method, ()) and shape.n_kv_heads != shape.n_heads


@dataclasses.dataclass(frozen=True)
class ModelShape:
    """What attention FLOPs depend on. ``rope``: the query-key basis is applied after RoPE at
    run time (costs a projection); otherwise it is folded into the q/k weights (free)."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    d_model: int
    rope: bool
    causal: bool

    def key_maps(self, method: str) -> int:
        """How many key projections into the query-key basis a layer computes at run time: one
        per key-value group, or one per query head with a per-head ``method``."""
        return self.n_heads if per_head_keys(method) else self.n_kv_heads

    def value_maps(self, method: str) -> int:
        """How many value projections a low-rank layer computes (per group or per head)."""
        return self.n_heads if per_head(method) else self.n_kv_heads


MODEL_SHAPES: dict[str, ModelShape] = {
    "smollm2": ModelShape(30, 9, 3, 64, 576, rope=True, causal=True),
    "minilm": ModelShape(6, 12, 12, 32, 384, rope=False, causal=False),
}


class ModelMismatchError(MallocGameError):
    """A rank config names another model (or another file of weights) than the loaded one."""


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "r_qk", tuple(int(r) for r in self.r_qk))
        object.__setattr__(self, "r_v", tuple(int(r) for r in self.r_v))
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
        _validate(self.to_dict(), None)

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
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION if self.grouped else 1,
            "model": self.model,
            "model_hash": self.model_hash,
            "seq_len": self.seq_len,
            "method": self.method,
            "budget": None if self.budget is None else dict(self.budget),
            "layers": layers,
            "meta": dict(self.meta),
        } | ({"rank_multiple": self.rank_multiple} if self.rank_multiple != 1 else {})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1) + "\n"

    @classmethod
    def from_dict(cls, d: Any, where: str | None = None) -> RankConfig:
        _validate(d, where)
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
        s = _shape_or_error(model, None)
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


def _shape_or_error(model: Any, where: str | None) -> ModelShape:
    if not isinstance(model, str) or model not in MODEL_SHAPES:
        raise InputError(
            f"unknown model {short_repr(model)}; expected one of {sorted(MODEL_SHAPES)}",
            where,
            field="model",
        )
    return MODEL_SHAPES[model]


def _key(k: str) -> str:
    """A JSON key as part of a field name: as is when short and printable, else quoted."""
    return k if k.isprintable() and 0 < len(k) <= 40 else short_repr(k, 40)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _validate(d: Any, where: str | None) -> None:
    def bad(field: str, msg: str) -> InputError:
        return InputError(msg, where, field=field)

    if not isinstance(d, dict):
        raise InputError(
            f"expected a JSON object, got {type(d).__name__}", where, line=1 if where else None
        )
    for key in ("format", "version", "model", "model_hash", "seq_len", "layers"):
        if key not in d:
            raise bad(key, "missing")
    if d["format"] != FORMAT_NAME:
        raise bad("format", f"expected {FORMAT_NAME!r}, got {short_repr(d['format'])}")
    if not _is_int(d["version"]) or d["version"] not in READ_VERSIONS:
        raise bad(
            "version",
            f"unsupported version {short_repr(d['version'])}; "
            f"this reader knows {list(READ_VERSIONS)}",
        )
    shape = _shape_or_error(d["model"], where)
    h = d["model_hash"]
    if not isinstance(h, str) or not h or any(c not in "0123456789abcdef" for c in h):
        raise bad("model_hash", f"expected a lower-case hex string, got {short_repr(h)}")
    if not _is_int(d["seq_len"]) or d["seq_len"] <= 0:
        raise bad("seq_len", f"expected a positive integer, got {short_repr(d['seq_len'])}")
    method = d.get("method", "whitened")
    if not isinstance(method, str) or method not in METHODS:
        raise bad("method", f"expected one of {list(METHODS)}, got {short_repr(method)}")
    budget = d.get("budget")
    if budget is not None:
        if not isinstance(budget, dict):
            raise bad("budget", f"expected an object or null, got {short_repr(budget)}")
        for k, v in budget.items():
            if k not in ("fraction", "flops", "kind"):
                raise bad(
                    f"budget.{_key(k)}", "unknown key; expected 'fraction', 'flops' and/or 'kind'"
                )
            if k == "kind":
                if v not in BUDGET_KINDS:
                    raise bad(
                        "budget.kind", f"expected one of {list(BUDGET_KINDS)}, got {short_repr(v)}"
                    )
                continue
            if not _is_num(v) or not math.isfinite(v) or v <= 0 or (k == "fraction" and v > 1):
                raise bad(
                    f"budget.{k}",
                    f"expected a number in {'(0, 1]' if k == 'fraction' else '(0, inf)'}, "
                    f"got {short_repr(v)}",
                )
    multiple = d.get("rank_multiple", 1)
    if not _is_int(multiple) or multiple not in RANK_MULTIPLES:
        raise bad(
            "rank_multiple", f"expected one of {list(RANK_MULTIPLES)}, got {short_repr(multiple)}"
        )
    meta = d.get("meta", {})
    if meta is not None and not isinstance(meta, dict):
        raise bad("meta", f"expected an object, got {short_repr(meta)}")
    layers = d["layers"]
    if not isinstance(layers, list):
        raise bad("layers", f"expected a list, got {type(layers).__name__}")
    if len(layers) != shape.n_layers:
        raise bad("layers", f"{d['model']} has {shape.n_layers} layers, config lists {len(layers)}")
    for i, layer in enumerate(layers):
        if not isinstance(layer, dict):
            raise bad(f"layers[{i}]", f"expected an object, got {short_repr(layer)}")
        for k in ("r_qk", "r_v"):
            if k not in layer:
                raise bad(f"layers[{i}].{k}", "missing")
            r = layer[k]
            if not _is_int(r) or not 1 <= r <= shape.head_dim:
                raise bad(
                    f"layers[{i}].{k}",
                    f"expected an integer in 1..{shape.head_dim}, got {short_repr(r)}",
                )
            if r % multiple:
                raise bad(f"layers[{i}].{k}", f"{r} is not a multiple of rank_multiple {multiple}")
        for key, base in (("qk_groups", "r_qk"), ("v_groups", "r_v")):
            if key not in layer:
                continue
            f = f"layers[{i}].{key}"
            if d["version"] < 2:
                raise bad(f, "per-group ranks need format version 2")
            if shape.n_kv_heads == shape.n_heads:
                raise bad(
                    f,
                    f"{d['model']} has no grouped key-value heads; per-group ranks apply to "
                    "smollm2",
                )
            g = layer[key]
            G = shape.n_kv_heads
            units = (G, shape.n_heads) if head_ranks_allowed(shape, method, key[:-7]) else (G,)
            if not isinstance(g, list) or len(g) not in units:
                per_head_note = (
                    f" or {shape.n_heads} (one per query head)"
                    if len(units) > 1
                    else f" (one per query head needs a per-head method: {PER_HEAD_PARTS})"
                )
                raise bad(
                    f,
                    f"expected a list of {G} ranks (one per key-value group){per_head_note}, "
                    f"got {short_repr(g)}",
                )
            if not all(_is_int(r) and 0 <= r <= shape.head_dim for r in g):
                raise bad(f, f"expected integers in 0..{shape.head_dim}, got {short_repr(g)}")
            if any(r % multiple for r in g):
                raise bad(f, f"{short_repr(g)}: not all multiples of rank_multiple {multiple}")
            if sum(g) != len(g) * layer[base]:
                raise bad(
                    f,
                    f"the group ranks {g} must average {base} = {layer[base]} "
                    f"(sum {len(g) * layer[base]}), got sum {sum(g)}",
                )
        extra = set(layer) - {"r_qk", "r_v", "qk_groups", "v_groups"}
        if extra:
            raise bad(f"layers[{i}].{_key(sorted(extra)[0])}", "unknown key")


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
