"""Per-group ranks: split each layer's rank among its key-value head groups (SmolLM2).

A rank config gives each layer one query-key rank and one value rank, kept by every key-value
group of that layer. The groups are not equally important: in SmolLM2's layer 1, for one,
giving the first group 16 query-key dims and the other two 4 each loses 0.046 nats per token
on the calibration text where 8 / 8 / 8 (the same FLOPs) loses 0.213. :func:`split_groups`
keeps each layer's ranks (so the FLOPs: the groups' ranks average to the layer's) and moves
rank between the groups of a layer while the measured calibration loss falls:

- parts are visited in layer order, query-key then values, skipping full ones;
- at a part, every transfer of ``step`` dims from one group to another (each group keeping
  ``step`` .. head_dim) is measured in the context of the current config, and the best one is
  taken while it lowers the loss by more than ``min_gain``; then the next part;
- passes repeat until one changes nothing, the evaluations (``max_evals``) or the time
  (``time_limit``) run out.

The evaluator is :class:`mallocgame.rank.sensitivity.Evaluator` (the current config pinned, so
that a change at layer ``i`` recomputes layers ``i..`` only).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from mallocgame.rank.config import RankConfig
from mallocgame.rank.sensitivity import config_entries, layer_entry


@dataclasses.dataclass
class SplitResult:
    config: RankConfig
    loss: float  # calibration loss of ``config``
    start_loss: float  # of the equal split
    evaluations: int
    moves: int
    passes: int
    seconds: float
    complete: bool  # a full pass changed nothing (else stopped by time or evaluations)


def split_groups(
    evaluator: Any,
    config: RankConfig,
    *,
    step: int = 4,
    min_gain: float = 0.0,
    max_evals: int | None = None,
    time_limit: float | None = None,
    max_passes: int = 3,
    trace: list | None = None,
) -> SplitResult:
    """Per-group ranks for ``config`` (its layer ranks kept) by measured transfers (module doc)."""
    t0 = time.perf_counter()
    shape = config.shape
    G, hd = shape.n_kv_heads, shape.head_dim
    if G == shape.n_heads:
        raise ValueError(f"{config.model} has no grouped key-value heads to split ranks among")
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    n_layers = shape.n_layers
    qk = [list(config.groups(i)[0]) for i in range(n_layers)]
    v = [list(config.groups(i)[1]) for i in range(n_layers)]

    def entries() -> tuple[tuple, ...]:
        return tuple(
            layer_entry(config.r_qk[i], config.r_v[i], qk[i], v[i]) for i in range(n_layers)
        )

    n0 = evaluator.n_evaluated
    start = evaluator.loss_of_ranks(config_entries(config))
    cur = start
    moves = passes = 0
    complete = False

    def out_of_budget() -> bool:
        if max_evals is not None and evaluator.n_evaluated - n0 >= max_evals:
            return True
        return time_limit is not None and time.perf_counter() - t0 >= time_limit

    stopped = False
    while passes < max_passes and not stopped:
        passes += 1
        changed = False
        for i in range(n_layers):
            for kind, groups in (("qk", qk), ("v", v)):
                if all(r == hd for r in groups[i]):
                    continue
                evaluator.pin_ranks(entries())
                while True:
                    if out_of_budget():
                        stopped = True
                        break
                    best = None
                    for a in range(G):
                        for b in range(G):
                            g = groups[i]
                            if a == b or g[a] - step < step or g[b] + step > hd:
                                continue
                            g[a] -= step
                            g[b] += step
                            loss = evaluator.loss_of_ranks(entries())
                            g[a] += step
                            g[b] -= step
                            if best is None or loss < best[0]:
                                best = (loss, a, b)
                    if best is None or cur - best[0] <= min_gain:
                        break
                    loss, a, b = best
                    groups[i][a] -= step
                    groups[i][b] += step
                    cur = loss
                    moves += 1
                    changed = True
                    evaluator.pin_ranks(entries())
                    if trace is not None:
                        trace.append(
                            {
                                "layer": i,
                                "part": kind,
                                "groups": list(groups[i]),
                                "loss": cur,
                                "evals": evaluator.n_evaluated - n0,
                                "seconds": time.perf_counter() - t0,
                            }
                        )
                if stopped:
                    break
            if stopped:
                break
        if not changed and not stopped:
            complete = True
            break
    evaluator.pin_ranks(None)
    out = dataclasses.replace(
        config,
        qk_groups=tuple(tuple(g) for g in qk),
        v_groups=tuple(tuple(g) for g in v),
        meta={**config.meta, "group_split": {"step": step, "start_loss": start, "loss": cur}},
    )
    return SplitResult(
        out,
        cur,
        start,
        evaluator.n_evaluated - n0,
        moves,
        passes,
        time.perf_counter() - t0,
        complete,
    )
