"""What a rank config's models and methods are: the attention shapes of the models
(:data:`MODEL_SHAPES`), the methods the runtime learns its bases by (:data:`METHODS`), what a
budget counts (:data:`BUDGET_KINDS`) and the rank multiples kernels want
(:data:`RANK_MULTIPLES`). Re-exported by :mod:`mallocgame.rank.config`."""

from __future__ import annotations

import dataclasses

#: what a budget counts (``budget.kind``; absent = attention FLOPs)
BUDGET_KINDS = ("flops", "kv-cache")
#: ``rank_multiple`` values (every rank a multiple of it, so that kernels can use the widths)
RANK_MULTIPLES = (1, 8, 16, 32)

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
    #: the longest context the model takes (SmolLM2: 8192; MiniLM: 512 positions)
    max_context: int = 512

    def key_maps(self, method: str) -> int:
        """How many key projections into the query-key basis a layer computes at run time: one
        per key-value group, or one per query head with a per-head ``method``."""
        return self.n_heads if per_head_keys(method) else self.n_kv_heads

    def value_maps(self, method: str) -> int:
        """How many value projections a low-rank layer computes (per group or per head)."""
        return self.n_heads if per_head(method) else self.n_kv_heads


MODEL_SHAPES: dict[str, ModelShape] = {
    "smollm2": ModelShape(30, 9, 3, 64, 576, rope=True, causal=True, max_context=8192),
    "minilm": ModelShape(6, 12, 12, 32, 384, rope=False, causal=False, max_context=512),
}
