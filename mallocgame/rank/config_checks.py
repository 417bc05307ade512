"""The checks of a rank config document (the JSON of :mod:`mallocgame.rank.config`): format
name and versions, every field, the per-group ranks and the context buckets; each refusal one
:class:`~mallocgame.errors.InputError` naming the file and the field."""

from __future__ import annotations

import math
from typing import Any

from mallocgame.errors import InputError, short_repr
from mallocgame.rank.shapes import (
    BUDGET_KINDS,
    METHODS,
    MODEL_SHAPES,
    PER_HEAD_PARTS,
    RANK_MULTIPLES,
    ModelShape,
    head_ranks_allowed,
)

FORMAT_NAME = "mallocgame-ranks"
FORMAT_VERSION = 3
#: versions this reader accepts (1: one rank per layer and part; 2: adds per-group ranks;
#: 3: adds ranks per context-length bucket, ``context_buckets``)
READ_VERSIONS = (1, 2, 3)


def shape_or_error(model: Any, where: str | None) -> ModelShape:
    if not isinstance(model, str) or model not in MODEL_SHAPES:
        raise InputError(
            f"unknown model {short_repr(model)}; expected one of {sorted(MODEL_SHAPES)}",
            where,
            field="model",
        )
    return MODEL_SHAPES[model]


def field_key(k: str) -> str:
    """A JSON key as part of a field name: as is when short and printable, else quoted."""
    return k if k.isprintable() and 0 < len(k) <= 40 else short_repr(k, 40)


def is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate_document(d: Any, where: str | None) -> None:
    """Refuse a config document (parsed JSON) that is not a valid rank config: an
    :class:`InputError` naming ``where`` (the file) and the first bad field."""

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
    if not is_int(d["version"]) or d["version"] not in READ_VERSIONS:
        raise bad(
            "version",
            f"unsupported version {short_repr(d['version'])}; "
            f"this reader knows {list(READ_VERSIONS)}",
        )
    shape = shape_or_error(d["model"], where)
    h = d["model_hash"]
    if not isinstance(h, str) or not h or any(c not in "0123456789abcdef" for c in h):
        raise bad("model_hash", f"expected a lower-case hex string, got {short_repr(h)}")
    if not is_int(d["seq_len"]) or d["seq_len"] <= 0:
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
                    f"budget.{field_key(k)}",
                    "unknown key; expected 'fraction', 'flops' and/or 'kind'",
                )
            if k == "kind":
                if v not in BUDGET_KINDS:
                    raise bad(
                        "budget.kind", f"expected one of {list(BUDGET_KINDS)}, got {short_repr(v)}"
                    )
                continue
            if not is_num(v) or not math.isfinite(v) or v <= 0 or (k == "fraction" and v > 1):
                raise bad(
                    f"budget.{k}",
                    f"expected a number in {'(0, 1]' if k == 'fraction' else '(0, inf)'}, "
                    f"got {short_repr(v)}",
                )
    multiple = d.get("rank_multiple", 1)
    if not is_int(multiple) or multiple not in RANK_MULTIPLES:
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
            if not is_int(r) or not 1 <= r <= shape.head_dim:
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
            if not all(is_int(r) and 0 <= r <= shape.head_dim for r in g):
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
            raise bad(f"layers[{i}].{field_key(sorted(extra)[0])}", "unknown key")
    if d.get("context_buckets") is not None:
        validate_buckets(d, shape, multiple, bad)


def validate_buckets(d: dict, shape: ModelShape, multiple: int, bad: Any) -> None:
    """The ``context_buckets`` of a config dict ``d`` whose other fields are valid (see the
    module doc); ``bad(field, message)`` makes the error."""
    buckets = d["context_buckets"]
    if d["version"] < 3:
        raise bad("context_buckets", "context buckets need format version 3")
    if not shape.causal:
        raise bad(
            "context_buckets",
            f"{d['model']} is not a causal decoder; context buckets apply to smollm2",
        )
    if not isinstance(buckets, list) or not buckets:
        raise bad("context_buckets", f"expected a non-empty list, got {short_repr(buckets)}")
    for i, layer in enumerate(d["layers"]):
        for key in ("qk_groups", "v_groups"):
            if key in layer:
                raise bad(
                    f"layers[{i}].{key}", "per-group ranks do not combine with context_buckets"
                )
    prev_up_to = 0
    for j, b in enumerate(buckets):
        f = f"context_buckets[{j}]"
        if not isinstance(b, dict):
            raise bad(f, f"expected an object, got {short_repr(b)}")
        for key in ("up_to", "layers"):
            if key not in b:
                raise bad(f"{f}.{key}", "missing")
        extra = set(b) - {"up_to", "layers"}
        if extra:
            raise bad(
                f"{f}.{field_key(sorted(extra)[0])}", "unknown key; expected 'up_to' and 'layers'"
            )
        up_to = b["up_to"]
        if not is_int(up_to) or up_to < 1:
            raise bad(f"{f}.up_to", f"expected a positive integer, got {short_repr(up_to)}")
        if up_to <= prev_up_to:
            raise bad(
                f"{f}.up_to",
                f"{up_to} is not above the previous bucket's {prev_up_to}: buckets ascend "
                "strictly in up_to",
            )
        prev_up_to = up_to
        layers = b["layers"]
        if not isinstance(layers, list) or len(layers) != shape.n_layers:
            n = len(layers) if isinstance(layers, list) else short_repr(layers)
            raise bad(f"{f}.layers", f"expected a list of {shape.n_layers} layers, got {n}")
        for i, layer in enumerate(layers):
            if not isinstance(layer, dict):
                raise bad(f"{f}.layers[{i}]", f"expected an object, got {short_repr(layer)}")
            extra = set(layer) - {"r_qk", "r_v"}
            if extra:
                raise bad(f"{f}.layers[{i}].{field_key(sorted(extra)[0])}", "unknown key")
            for k in ("r_qk", "r_v"):
                ff = f"{f}.layers[{i}].{k}"
                if k not in layer:
                    raise bad(ff, "missing")
                r = layer[k]
                if not is_int(r) or not 1 <= r <= shape.head_dim:
                    raise bad(
                        ff, f"expected an integer in 1..{shape.head_dim}, got {short_repr(r)}"
                    )
                if r % multiple:
                    raise bad(ff, f"{r} is not a multiple of rank_multiple {multiple}")
                if j and r > buckets[j - 1]["layers"][i][k]:
                    raise bad(
                        ff,
                        f"{r} is larger than context_buckets[{j - 1}]'s "
                        f"{buckets[j - 1]['layers'][i][k]}: a bucket keeps no more rank than the "
                        "one before it (a cache only loses rank when it switches)",
                    )
    if prev_up_to < shape.max_context:
        raise bad(
            f"context_buckets[{len(buckets) - 1}].up_to",
            f"the last bucket ends at {prev_up_to}, short of {d['model']}'s context of "
            f"{shape.max_context} tokens",
        )
    holder = (
        next(j for j, b in enumerate(buckets) if d["seq_len"] <= b["up_to"])
        if (d["seq_len"] <= prev_up_to)
        else len(buckets) - 1
    )
    for i, (top, ours) in enumerate(zip(d["layers"], buckets[holder]["layers"], strict=True)):
        for k in ("r_qk", "r_v"):
            if top[k] != ours[k]:
                raise bad(
                    f"layers[{i}].{k}",
                    f"a bucketed config's layers are the ranks of the bucket holding seq_len "
                    f"{d['seq_len']} (context_buckets[{holder}], {k} {ours[k]}), got {top[k]}",
                )
