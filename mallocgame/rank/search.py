"""Searches over rank configs beyond the solvers: the per-group rank split, and the configs that
searches leave behind (a refine's start config, a fidelity bench row).

**Per-group ranks** (SmolLM2): split each layer's rank among its key-value head groups.

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

The evaluator is :class:`mallocgame.rank.evaluator.Evaluator` (the current config pinned, so
that a change at layer ``i`` recomputes layers ``i..`` only). :func:`group_split` runs the
split as ``mallocgame rank --group-split`` and ``benchmarks/bench_rank_fidelity.py`` ask
(:class:`SplitOptions`), from a start config's groups where it keeps their rank.

**Start configs and bench rows**: :func:`init_choices` checks a rank config against a run and
gives its choice indices (``mallocgame rank --solver refine --init``); :func:`row_config` makes
a rank config of a ``bench_rank_fidelity.py`` row, :func:`row_config_from_run` finds the row
in a bench output (``benchmarks/rank_row_config.py``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.rank.calibration import CalibSpec, spec_of
from mallocgame.rank.config import (
    RankConfig,
    config_entries,
    head_ranks_allowed,
    inherit_groups,
    layer_entry,
)
from mallocgame.rank.evaluator import Evaluator
from mallocgame.rank.tables import DEFAULT_SEQ_LEN

# ----------------------------------------------------------------------------- per-group split


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


@dataclasses.dataclass(frozen=True)
class SplitOptions:
    """How :func:`group_split` splits (the ``--group-*`` options; see :func:`split_groups`)."""

    seconds: float = 0.0  # the time limit (``--group-split``); 0 = no split
    step: int = 4
    min_rank: int | None = None
    heads: bool = False
    start_layer: int = 0
    screen: int | None = None


def split_groups(
    evaluator: Evaluator,
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
    trace: list[dict[str, Any]] | None = None,
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

    def score(g: list[int], a: int, b: int, fn: Callable[[tuple[tuple, ...]], float]) -> float:
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


def group_split(
    evaluator: Evaluator,
    cfg: RankConfig,
    options: SplitOptions,
    init: RankConfig | None = None,
) -> tuple[SplitResult, str]:
    """``(SplitResult, start)``: ``cfg``'s ranks split among groups as ``options`` say, from
    ``init``'s groups where it keeps their rank (``start`` says which), else from the equal
    split."""
    start = "equal"
    if init is not None:
        cfg, kept = inherit_groups(cfg, init)
        parts = 2 * len(cfg.r_qk)
        start = "init" if kept == parts else f"init ({kept}/{parts} parts kept)"
    res = split_groups(
        evaluator,
        cfg,
        step=options.step,
        time_limit=options.seconds,
        screen=options.screen,
        heads=options.heads,
        start_layer=options.start_layer,
        min_rank=options.min_rank,
    )
    return res, start


# ----------------------------------------------------------------------------- start configs


def init_choices(
    cfg: RankConfig,
    path: str,
    model: str,
    model_hash: str,
    choices: tuple[int, ...],
    spec: CalibSpec,
) -> np.ndarray:
    """Choice indices of the rank config ``cfg`` read from ``path`` (refine's ``--init``),
    checked against this run's model, weights, method, bases' calibration text and choices (its
    loss windows may differ: they steered the search that made the config, not the config)."""
    if cfg.model != model or cfg.model_hash != model_hash:
        raise InputError(
            f"the config is for {cfg.model} ({cfg.model_hash}), this run for {model} "
            f"({model_hash})",
            path,
            field="model_hash",
        )
    if cfg.method != spec.method or not spec_of(cfg, path).same_bases(spec):
        raise InputError(
            f"the config's method / bases' calibration ({cfg.method}, "
            f"{cfg.meta.get('calibration')}) differ from this run's ({spec.to_dict()})",
            path,
            field="meta.calibration",
        )
    ch = list(choices)
    out = []
    for i, pair in enumerate(zip(cfg.r_qk, cfg.r_v, strict=True)):
        for kind, r in zip(("r_qk", "r_v"), pair, strict=True):
            if r not in ch:
                raise InputError(
                    f"rank {r} is not one of the choices {ch}", path, field=f"layers[{i}].{kind}"
                )
            out.append(ch.index(r))
    return np.asarray(out, np.int64)


# ----------------------------------------------------------------------------- bench rows


def row_config(row: dict[str, Any], source: str) -> RankConfig:
    """The rank config of a bench row (``source`` is recorded in its meta)."""
    cal = row.get("calibration") or {}
    groups = {}
    if "qk_groups" in row:
        groups = {
            "qk_groups": tuple(map(tuple, row["qk_groups"])),
            "v_groups": tuple(map(tuple, row["v_groups"])),
        }
    return RankConfig(
        row["model"],
        row["model_hash"],
        tuple(row["r_qk"]),
        tuple(row["r_v"]),
        DEFAULT_SEQ_LEN[row["model"]],
        method=cal.get("method", "whitened"),
        budget={"fraction": float(row["budget"])},
        meta={
            "solver": row["solver"],
            "from": source,
            "calibration": cal,
            "choices": row.get("choices"),
            "flops_fraction": row.get("flops_fraction"),
            "calibration_loss": row.get("calibration_loss"),
            "heldout": row.get("heldout"),
        },
        **groups,
    )


def row_config_from_run(run: str | Path, model: str, budget: float, solver: str) -> RankConfig:
    """The rank config of ``solver``'s row at ``model`` / ``budget`` in the
    ``bench_rank_fidelity.py`` output ``run``; a file that is no such output, a missing row or
    a row without ranks is an :class:`InputError` that names the file (and the row)."""
    try:
        rows = json.loads(Path(run).read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise InputError(f"not a bench output with rows ({e})", str(run)) from None
    for i, r in enumerate(rows):
        if (r.get("model"), r.get("budget"), r.get("solver")) == (model, budget, solver):
            try:
                return row_config(r, f"{run}:{solver}")
            except (KeyError, TypeError, ValueError) as e:
                raise InputError(f"rows[{i}] ({solver}): {e}", str(run)) from None
    raise InputError(f"no {solver} row for {model} at budget {budget:g}", str(run))
