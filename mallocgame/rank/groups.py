"""Per-group ranks: split each layer's rank among its key-value head groups (SmolLM2).

A rank config gives each layer one query-key rank and one value rank, kept by every key-value
group of that layer. The groups are not equally important: in SmolLM2's layer 1, for one,
giving the first group 16 query-key dims and the other two 4 each loses 0.046 nats per token
on the calibration text where 8 / 8 / 8 (the same FLOPs) loses 0.213. :func:`split_groups`
keeps each layer's ranks (so the FLOPs: the groups' ranks average to the layer's) and moves
rank between the groups of a layer while the measured calibration loss falls:

- parts are visited in layer order, query-key then values, skipping full ones;
- at a part, every transfer of ``step`` dims from one group to another (each group keeping
  ``min_rank`` .. head_dim; ``min_rank`` defaults to ``step``, and 0 lets a transfer empty a
  group or head: uniform attention or a pruned head, see :mod:`mallocgame.rank.config`) is
  measured in the context of the current config, and the best one is
  taken while it lowers the loss by more than ``min_gain``; then the next part. With
  ``screen = k``, only the ``k`` transfers whose layer output is closest to the original
  layer's are measured (a one-layer proxy, ``Evaluator.layer_error``), and with ``min_rank``
  0 also the best-screened transfer that empties a group;
- passes repeat until one changes nothing, the evaluations (``max_evals``) or the time
  (``time_limit``) run out.

The evaluator is :class:`mallocgame.rank.sensitivity.Evaluator` (the current config pinned, so
that a change at layer ``i`` recomputes layers ``i..`` only).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from mallocgame.rank.config import RankConfig, head_ranks_allowed
from mallocgame.rank.sensitivity import config_entries, layer_entry


@dataclasses.dataclass
class SplitResult:
    config: RankConfig
    loss: float  # calibration loss of ``config``
    start_loss: float  # of the config the search started from
    step: int
    evaluations: int
    moves: int
    passes: int
    seconds: float
    complete: bool  # a full pass changed nothing (else stopped by time or evaluations)

    def summary(self) -> dict[str, Any]:
        """Everything but the config, for a run's record (a rank config's ``meta``, a bench row)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "config"}


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


def split_groups(
    evaluator: Any,
    config: RankConfig,
    *,
    step: int = 4,
    min_gain: float = 0.0,
    max_evals: int | None = None,
    time_limit: float | None = None,
    max_passes: int = 3,
    screen: int | None = None,
    heads: bool = False,
    start_layer: int = 0,
    min_rank: int | None = None,
    trace: list | None = None,
) -> SplitResult:
    """Per-group ranks for ``config`` (its layer ranks kept) by measured transfers (module doc).

    ``screen``: measure only the ``screen`` transfers of a step whose layer output is closest
    to the original layer's (``evaluator.layer_error``: one layer's work each) instead of all.

    ``heads``: in the parts whose bases the config's method fits per query head (see
    :func:`mallocgame.rank.config.head_ranks_allowed`), move rank between the query heads of
    one key-value group instead (each part's group split kept; the other parts as above).

    ``start_layer``: each pass visits the layers from this one on, then those before it (to go
    on where a run capped by time stopped). ``min_rank``: the least rank a group or head keeps
    (default ``step``; 0 allows emptying one)."""
    t0 = time.perf_counter()
    shape = config.shape
    G, hd, H = shape.n_kv_heads, shape.head_dim, shape.n_heads
    n = H // G
    if G == shape.n_heads:
        raise ValueError(f"{config.model} has no grouped key-value heads to split ranks among")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    lo = step if min_rank is None else min_rank
    if not 0 <= lo <= hd:
        raise ValueError(f"min_rank must be in 0..{hd}, got {min_rank}")
    if screen is not None and screen < 1:
        raise ValueError(f"screen must be >= 1, got {screen}")
    n_layers = shape.n_layers
    qk = [list(config.groups(i)[0]) for i in range(n_layers)]
    v = [list(config.groups(i)[1]) for i in range(n_layers)]
    if not 0 <= start_layer < n_layers:
        raise ValueError(f"start_layer must be in 0..{n_layers - 1}, got {start_layer}")
    order = list(range(start_layer, n_layers)) + list(range(start_layer))
    parts = [(i, kind, groups[i]) for i in order for kind, groups in (("qk", qk), ("v", v))]
    if heads:  # one rank per query head where the method allows it
        for _, kind, g in parts:
            if head_ranks_allowed(shape, config.method, kind) and len(g) == G:
                g[:] = [r for r in g for _ in range(n)]

    def entries() -> tuple[tuple, ...]:
        return tuple(
            layer_entry(config.r_qk[i], config.r_v[i], qk[i], v[i]) for i in range(n_layers)
        )

    def out_of_budget() -> bool:
        if max_evals is not None and evaluator.n_evaluated - n0 >= max_evals:
            return True
        return time_limit is not None and time.perf_counter() - t0 >= time_limit

    def score(g: list[int], a: int, b: int, fn: Any) -> float:
        g[a] -= step
        g[b] += step
        try:
            return fn(entries())
        finally:
            g[a] += step
            g[b] -= step

    def best_transfer(i: int, g: list[int]) -> tuple[float, int, int] | None:
        """(loss, from, to) of the best transfer of ``step`` dims within layer ``i``'s ``g``,
        measured (after screening, if asked)."""
        per_head = len(g) == H  # then only between the heads of one group
        moves = [
            (a, b)
            for a in range(len(g))
            for b in range(len(g))
            if a != b
            and g[a] - step >= lo
            and g[b] + step <= hd
            and (not per_head or a // n == b // n)
        ]
        if screen is not None and len(moves) > screen:
            err = [score(g, a, b, lambda e: evaluator.layer_error(e, i)) for a, b in moves]
            order = sorted(range(len(moves)), key=err.__getitem__)
            keep = order[:screen]
            # an emptied group's lost output counts fully in the layer's error, though the
            # loss may not miss it (e.g. a head the model barely uses): measure the best such
            # move too
            if lo == 0:
                empty = next((k for k in order if g[moves[k][0]] == step), None)
                if empty is not None and empty not in keep:
                    keep.append(empty)
            moves = [moves[k] for k in keep]
        best = None
        for a, b in moves:
            loss = score(g, a, b, evaluator.loss_of_ranks)
            if best is None or loss < best[0]:
                best = (loss, a, b)
        return best

    n0 = evaluator.n_evaluated
    start = cur = evaluator.loss_of_ranks(config_entries(config))
    moves = passes = 0
    complete = stopped = False
    while passes < max_passes and not stopped:
        passes += 1
        changed = False
        for i, kind, g in parts:
            if all(r == hd for r in g):
                continue
            evaluator.pin_ranks(entries())
            while not (stopped := out_of_budget()):
                best = best_transfer(i, g)
                if best is None or cur - best[0] <= min_gain:
                    break
                cur, a, b = best
                g[a] -= step
                g[b] += step
                moves += 1
                changed = True
                evaluator.pin_ranks(entries())
                if trace is not None:
                    trace.append(
                        {
                            "layer": i,
                            "part": kind,
                            "groups": list(g),
                            "loss": cur,
                            "evals": evaluator.n_evaluated - n0,
                            "seconds": time.perf_counter() - t0,
                        }
                    )
            if stopped:
                break
        complete = not changed and not stopped
        if complete:
            break
    evaluator.pin_ranks(None)
    out = dataclasses.replace(
        config, qk_groups=tuple(map(tuple, qk)), v_groups=tuple(map(tuple, v))
    )
    return SplitResult(
        out,
        cur,
        start,
        step,
        evaluator.n_evaluated - n0,
        moves,
        passes,
        time.perf_counter() - t0,
        complete,
    )
