"""Baselines of the rank game: choose one rank per part under a budget on attention FLOPs or
on KV-cache bytes per token (``tables.budget_kind``: the tables' ``cost`` counts one or the
other, and every solver reads only ``cost``, so each plays either budget unchanged).

Every solver has the signature ``solve(tables, budget, *, evaluator=None, seed=0,
time_limit=None, **kw) -> int64[P]`` (choice indices into ``tables.choices``, parts ordered as
in :mod:`mallocgame.rank.tables`) and returns a choice that fits: ``tables.fraction(idx) <=
budget``. A budget below the cheapest choice (every part at the smallest rank) raises
:class:`BudgetError`.

- ``uniform``: the largest single rank in every part that fits. The leftover budget is not
  used (it is the naive baseline).
- ``spectral``: one spectral-energy threshold ``t`` for all parts; each part takes the smallest
  rank that keeps at least ``t`` of its energy. The threshold is bisected over the table's
  energy values to the largest that fits.
- ``fisher``: ranks proportional to the part's Fisher-style sensitivity, as Palu allocates
  them (``r_p = s * F_p / mean(F)``, rounded down to a choice, clipped to the choices); the
  scale ``s`` is bisected over its breakpoints to the largest that fits.
- ``greedy``: start at full rank and repeatedly lower one part by one choice, the move with the
  smallest loss increase per FLOP saved, until within the budget (in the spirit of ASVD's
  sensitivity search). The cheap estimate of a move is the table's one-part-at-a-time
  marginal ``sens[p, c-1] - sens[p, c]``. With an evaluator, the *last* ``max_evals // top_k``
  moves are measured: at each of them the ``top_k`` moves ranked by the estimate are
  re-measured (calibration loss of the current config with that move) and the one with the
  smallest measured increase per FLOP saved is taken. The moves before are taken by the
  estimate alone; their number comes from a first, estimate-only pass, so the measurements go
  where lowered parts interact most. If the evaluations run out (``max_evals`` or
  ``time_limit``) before the budget is met, the rest is again by estimate. Deterministic for a
  given ``max_evals`` without ``time_limit``.
- ``agent``: :func:`mallocgame.rank.agent.solve`, loaded when asked for; if that module is
  missing :func:`load` raises :class:`SolverUnavailableError` ("agent unavailable").

The names and where each solver lives are the rank game's entries of :mod:`mallocgame.registry`.

Over 600 lines on purpose: every rank solver shares the budget checks and the move
bookkeeping kept here, and each is short.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mallocgame import registry
from mallocgame.errors import InputError, MallocGameError
from mallocgame.rank.tables import RankTables

Solver = Callable[..., np.ndarray]


class BudgetError(InputError):
    """The budget is not a fraction in (0, 1] or is below the cheapest rank choice."""


class SolverUnavailableError(MallocGameError):
    """A registered solver cannot be loaded (e.g. the agent's module is missing)."""


def min_fraction(tables: RankTables) -> float:
    return tables.fraction(np.zeros(tables.num_parts, np.int64))


def check_budget(tables: RankTables, budget: float) -> float:
    """Return ``budget`` as a float, or raise :class:`BudgetError` naming what fits."""
    try:
        b = float(budget)
    except (TypeError, ValueError):
        raise BudgetError(f"expected a number, got {budget!r}", field="budget") from None
    if not 0.0 < b <= 1.0 or not np.isfinite(b):
        raise BudgetError(
            f"expected a fraction of {tables.cost_label} in (0, 1], got {budget!r}",
            field="budget",
        )
    lo = min_fraction(tables)
    if b < lo - 1e-12:
        raise BudgetError(
            f"budget {b:g} is below the cheapest choice: every part at rank "
            f"{tables.choices[0]} costs {lo:.4f} of {tables.cost_label}"
            + (f" at seq_len {tables.seq_len}" if tables.budget_kind == "flops" else ""),
            field="budget",
        )
    return b


def _fits(tables: RankTables, idx: np.ndarray, budget: float) -> bool:
    return tables.fraction(idx) <= budget + 1e-12


# ----------------------------------------------------------------------------- uniform


def solve_uniform(tables: RankTables, budget: float, **_: Any) -> np.ndarray:
    """The largest single choice index in every part that fits (leftover unused)."""
    budget = check_budget(tables, budget)
    P, C = tables.num_parts, len(tables.choices)
    for c in range(C - 1, -1, -1):
        idx = np.full(P, c, np.int64)
        if _fits(tables, idx, budget):
            return idx
    raise AssertionError("check_budget guarantees the smallest choice fits")


# ----------------------------------------------------------------------------- spectral


def _spectral_config(energy: np.ndarray, t: float) -> np.ndarray:
    e = np.maximum.accumulate(np.nan_to_num(energy, nan=0.0), axis=1)
    e[:, -1] = np.inf  # full rank always qualifies
    return np.argmax(e >= t - 1e-12, axis=1).astype(np.int64)


def solve_spectral(tables: RankTables, budget: float, **_: Any) -> np.ndarray:
    """One energy threshold for all parts, the largest that fits (bisected)."""
    budget = check_budget(tables, budget)
    ts = np.unique(np.concatenate([[0.0], np.nan_to_num(tables.energy, nan=0.0).ravel()]))
    lo, hi = 0, len(ts) - 1  # ts[0] = 0 gives the smallest choices, which fit
    if _fits(tables, _spectral_config(tables.energy, ts[hi]), budget):
        lo = hi
    while hi - lo > 1:  # invariant: ts[lo] fits, ts[hi] does not
        mid = (lo + hi) // 2
        if _fits(tables, _spectral_config(tables.energy, ts[mid]), budget):
            lo = mid
        else:
            hi = mid
    return _spectral_config(tables.energy, ts[lo])


# ----------------------------------------------------------------------------- fisher


def _fisher_config(tables: RankTables, weight: np.ndarray, s: float) -> np.ndarray:
    ch = np.asarray(tables.choices, np.float64)
    r = s * weight
    idx = np.searchsorted(ch, r + 1e-9, side="right") - 1  # largest choice <= r
    return np.clip(idx, 0, len(ch) - 1).astype(np.int64)


def solve_fisher(tables: RankTables, budget: float, **_: Any) -> np.ndarray:
    """Ranks proportional to the Fisher sensitivity (Palu), scaled to the budget."""
    budget = check_budget(tables, budget)
    f = np.nan_to_num(np.asarray(tables.fisher, np.float64), nan=0.0)
    f = np.maximum(f, 0.0)
    if f.sum() <= 0:
        return solve_uniform(tables, budget)
    w = f / f.mean()
    ch = np.asarray(tables.choices, np.float64)
    # Each part changes choice where s * w_p crosses a choice: s = choice / w_p.
    with np.errstate(divide="ignore"):
        bps = np.unique((ch[None, :] / w[w > 0][:, None]).ravel())
    bps = np.concatenate([[0.0], bps])
    lo, hi = 0, len(bps) - 1
    if _fits(tables, _fisher_config(tables, w, bps[hi]), budget):
        return _fisher_config(tables, w, bps[hi])
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _fits(tables, _fisher_config(tables, w, bps[mid]), budget):
            lo = mid
        else:
            hi = mid
    return _fisher_config(tables, w, bps[lo])


# ----------------------------------------------------------------------------- greedy


def _moves(tables: RankTables, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parts that can be lowered, the estimated loss increase and the FLOPs saved of each."""
    P = tables.num_parts
    parts = np.nonzero(idx > 0)[0]
    c = idx[parts]
    d_loss = tables.sens[parts, c - 1] - tables.sens[parts, c]
    saved = tables.cost[parts, c] - tables.cost[parts, c - 1]
    keep = saved > 0
    assert P == len(idx)
    return parts[keep], d_loss[keep], saved[keep]


def _estimate_step(tables: RankTables, idx: np.ndarray) -> int:
    parts, d, saved = _moves(tables, idx)
    if len(parts) == 0:
        raise AssertionError("no move left above the budget; check_budget guarantees one")
    score = d / saved
    # ties: the earliest part (deterministic)
    return int(parts[np.lexsort((parts, score))[0]])


def solve_greedy(
    tables: RankTables,
    budget: float,
    *,
    evaluator: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
    time_limit: float | None = None,
    top_k: int = 3,
    max_evals: int = 150,
    trace: list | None = None,
    **_: Any,
) -> np.ndarray:
    """Lower the part with the smallest loss per FLOP saved until within budget (module doc).

    ``trace``: if a list, one dict per move is appended (part, new choice, fraction, and
    ``measured`` loss where measured).
    """
    budget = check_budget(tables, budget)
    if not np.all(np.isfinite(tables.sens)):
        raise ValueError("greedy needs a fully measured sens table (NaN found)")
    P, C = tables.num_parts, len(tables.choices)
    full = np.full(P, C - 1, np.int64)
    # Pass 1: estimate only, to count the moves.
    path = [full.copy()]
    idx = full.copy()
    while not _fits(tables, idx, budget):
        idx[_estimate_step(tables, idx)] -= 1
        path.append(idx.copy())
    if evaluator is None or max_evals <= 0 or top_k <= 0 or len(path) == 1:
        _trace_path(trace, tables, path)
        return idx
    n_measured = max(1, max_evals // top_k)
    start = max(0, len(path) - 1 - n_measured)
    _trace_path(trace, tables, path[: start + 1])
    idx = path[start].copy()
    t0 = time.perf_counter()
    evals = 0
    loss = float(evaluator(idx[None])[0])
    while not _fits(tables, idx, budget):
        out_of_time = time_limit is not None and time.perf_counter() - t0 > time_limit
        if evals + 1 > max_evals or out_of_time:
            p = _estimate_step(tables, idx)
            idx[p] -= 1
            if trace is not None:
                trace.append(_step(tables, idx, p, None))
            continue
        parts, d, saved = _moves(tables, idx)
        order = np.lexsort((parts, d / saved))[: min(top_k, max_evals - evals)]
        cands = np.repeat(idx[None], len(order), axis=0)
        cands[np.arange(len(order)), parts[order]] -= 1
        losses = np.asarray(evaluator(cands), np.float64)
        evals += len(order)
        best = int(np.argmin((losses - loss) / saved[order]))
        p = int(parts[order][best])
        idx = cands[best]
        loss = float(losses[best])
        if trace is not None:
            trace.append(_step(tables, idx, p, loss))
    return idx


def _step(tables: RankTables, idx: np.ndarray, p: int, measured: float | None) -> dict:
    return {
        "part": p,
        "choice": int(idx[p]),
        "fraction": tables.fraction(idx),
        "measured": measured,
    }


def _trace_path(trace: list | None, tables: RankTables, path: list[np.ndarray]) -> None:
    if trace is None:
        return
    for a, b in zip(path, path[1:], strict=False):
        p = int(np.nonzero(a != b)[0][0])
        trace.append(_step(tables, b, p, None))


# ----------------------------------------------------------------------------- refine


class TableLoss:
    """The tables' additive estimate as an evaluator: ``sum_p sens[p, idx[p]]`` (what
    ``refine`` measures with when no calibration evaluator is given)."""

    def __init__(self, tables: RankTables) -> None:
        self.sens = np.nan_to_num(np.asarray(tables.sens, np.float64), nan=np.inf)

    def __call__(self, idx: np.ndarray) -> np.ndarray:
        idx = np.atleast_2d(np.asarray(idx, np.int64))
        return self.sens[np.arange(idx.shape[1])[None, :], idx].sum(1)


def _measure(evaluator: Callable, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean loss float64[N], per-window losses float64[N, W]) of choice rows; an evaluator
    without ``window_losses`` counts as one window."""
    rows = np.atleast_2d(np.asarray(rows, np.int64))
    wl = getattr(evaluator, "window_losses", None)
    if wl is not None:
        w = np.asarray(wl(rows), np.float64)
        return w.mean(1), w
    m = np.asarray(evaluator(rows), np.float64)
    return m, m[:, None]


def trim_to_budget(
    tables: RankTables,
    budget: float,
    start: np.ndarray,
    evaluator: Callable[[np.ndarray], np.ndarray],
    *,
    trace: list | None = None,
) -> np.ndarray:
    """``start`` lowered until it fits ``budget`` (a config made for another method, sequence
    length or budget): each step lowers by one choice the part whose *measured* loss increase
    per FLOP saved is smallest. The first step measures every part's lowering from ``start``;
    later steps re-measure the new config and the part just lowered and keep the others'
    increases (a lowering elsewhere changes them little): a trim of ``k`` steps costs about
    ``P + 2 k`` runs."""
    budget = check_budget(tables, budget)
    idx = np.asarray(start, np.int64).copy()
    if (idx == 0).all() and not _fits(tables, idx, budget):
        raise ValueError(f"the budget {budget:g} is below the lowest ranks' FLOPs")
    cost = tables.cost
    P = tables.num_parts
    pin = getattr(evaluator, "pin", None)
    if pin is not None:
        pin(idx)
    base = float(_measure(evaluator, idx[None])[0][0])
    rise = np.full(P, np.inf)

    def measure(parts: list[int]) -> None:
        rows = np.repeat(idx[None], len(parts), 0)
        rows[np.arange(len(parts)), parts] -= 1
        for p, loss in zip(parts, _measure(evaluator, rows)[0], strict=True):
            saved = cost[p, idx[p]] - cost[p, idx[p] - 1]
            rise[p] = max(float(loss) - base, 0.0) / max(saved, 1e-30)

    measure([p for p in range(P) if idx[p] > 0])
    while not _fits(tables, idx, budget):
        p = int(np.argmin(rise))
        if not np.isfinite(rise[p]):
            raise ValueError(f"the budget {budget:g} is below the lowest ranks' FLOPs")
        idx[p] -= 1
        if trace is not None:
            trace.append({"trim": p, "choice": int(idx[p]), "fraction": tables.fraction(idx)})
        rise[p] = np.inf
        if not _fits(tables, idx, budget):
            if pin is not None:
                pin(idx)
            base = float(_measure(evaluator, idx[None])[0][0])
            if idx[p] > 0:
                measure([p])
    if pin is not None:
        pin(None)
    return idx


def refine(
    tables: RankTables,
    budget: float,
    start: np.ndarray,
    evaluator: Callable[[np.ndarray], np.ndarray],
    *,
    max_evals: int = 200,
    time_limit: float | None = None,
    top_k: int = 4,
    agree: float = 0.0,
    min_gain: float = 0.0,
    trace: list | None = None,
) -> np.ndarray:
    """Exchange moves from a config that fits: raise one part by one choice and lower others
    by one choice each so that the budget still holds, accepted only when the *measured*
    calibration loss decreases.

    1. *Local marginals*: the measured loss change of raising and of lowering each part by one
       choice from the current config (up to ``2 P`` evaluations, deepest layers first;
       re-measured for the parts a move changed, the others kept). Until measured (too few
       evaluations), a part's marginals are the tables' ``sens[p, c +- 1] - sens[p, c]``.
    2. *Candidates*: for each part ``a`` that can be raised, the cheapest repair by the local
       marginals: the single part ``b`` whose lowering frees enough FLOPs with the smallest
       loss increase, or if none frees enough alone, parts in order of loss increase per FLOP
       saved until the move fits (a raise that fits the leftover budget needs no repair).
       Predicted change = marginal of the raise + marginals of the lowerings (additive).
    3. The ``top_k`` candidates predicted to help most (< 0) are measured on the current config;
       the best is accepted if its loss is lower by more than ``min_gain`` *and* it is lower on
       at least ``agree`` of the evaluator's loss windows (``window_losses``; 1.0 = on every
       window, a sign test against fitting one window's noise). Rejected candidates are not
       tried again.

    Stops when no candidate is predicted to help, or after ``max_evals`` evaluations (memo
    hits of the evaluator included) or ``time_limit`` seconds. Deterministic without
    ``time_limit``. ``trace``: one dict per accepted move.
    """
    budget = check_budget(tables, budget)
    P, C = tables.num_parts, len(tables.choices)
    idx = np.asarray(start, np.int64).copy()
    if not _fits(tables, idx, budget):
        idx = trim_to_budget(tables, budget, idx, evaluator, trace=trace)
    t0 = time.perf_counter()
    cost, limit = tables.cost, budget * tables.full_cost + 1e-12 * tables.full_cost
    pin = getattr(evaluator, "pin", None)
    evals = 0

    def left() -> int:
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            return 0
        return max_evals - evals

    cur, cur_w = (x[0] for x in _measure(evaluator, idx[None]))
    evals += 1
    sens = np.asarray(tables.sens, np.float64)
    up = np.full(P, np.nan)
    down = np.full(P, np.nan)

    def prior(ps: list[int]) -> None:  # the tables' estimate until measured
        for p in ps:
            c = idx[p]
            up[p] = sens[p, c + 1] - sens[p, c] if c < C - 1 else np.nan
            down[p] = sens[p, c - 1] - sens[p, c] if c > 0 else np.nan

    stale = list(range(P))
    prior(stale)
    tried: set[tuple[int, tuple[int, ...]]] = set()
    while left() > 0:
        if pin is not None:
            pin(idx)
        # 1. local marginals of the stale parts (deepest layers first: cheapest), leaving
        # evaluations for one round of candidates
        for p in sorted(stale, reverse=True):
            rows, kinds = [], []
            if idx[p] < C - 1:
                r = idx.copy()
                r[p] += 1
                rows.append(r)
                kinds.append(up)
            if idx[p] > 0:
                r = idx.copy()
                r[p] -= 1
                rows.append(r)
                kinds.append(down)
            if len(rows) > left() - top_k:
                break
            m, _ = _measure(evaluator, np.stack(rows)) if rows else (np.zeros(0), None)
            evals += len(rows)
            up[p] = down[p] = np.nan
            for arr, v in zip(kinds, m, strict=True):
                arr[p] = v - cur
            stale = [q for q in stale if q != p]
        # 2. candidates
        used = cost[np.arange(P), idx].sum()
        can_down = np.nonzero((idx > 0) & np.isfinite(down))[0]
        saved = cost[can_down, idx[can_down]] - cost[can_down, idx[can_down] - 1]
        cands: list[tuple[float, int, tuple[int, ...]]] = []
        for a in np.nonzero((idx < C - 1) & np.isfinite(up))[0]:
            need = used + cost[a, idx[a] + 1] - cost[a, idx[a]] - limit
            if need <= 0:
                cands.append((float(up[a]), int(a), ()))
                continue
            ok = can_down != a
            bs, sv, dv = can_down[ok], saved[ok], down[can_down[ok]]
            best: tuple[float, tuple[int, ...]] | None = None
            one = sv >= need
            if one.any():
                j = int(np.nonzero(one)[0][np.argmin(dv[one])])
                best = (float(dv[j]), (int(bs[j]),))
            order = np.lexsort((bs, dv / sv))
            acc, chosen, tot = 0.0, [], 0.0
            for j in order:
                chosen.append(int(bs[j]))
                acc += sv[j]
                tot += dv[j]
                if acc >= need:
                    break
            if acc >= need and (best is None or tot < best[0]):
                best = (float(tot), tuple(sorted(chosen)))
            if best is not None:
                cands.append((float(up[a]) + best[0], int(a), best[1]))
        cands = sorted(c for c in cands if c[0] < 0 and (c[1], c[2]) not in tried)
        if not cands:
            break
        batch = cands[: min(top_k, left())]
        if not batch:  # out of time since the loop's check
            break
        rows = []
        for _, a, bs in batch:
            r = idx.copy()
            r[a] += 1
            r[list(bs)] -= 1
            assert _fits(tables, r, budget)
            rows.append(r)
        m, w = _measure(evaluator, np.stack(rows))
        evals += len(rows)
        for _, a, bs in batch:
            tried.add((a, bs))
        j = int(np.argmin(m))
        better = float(np.mean(w[j] < cur_w)) if w.shape[1] == len(cur_w) else 0.0
        if cur - m[j] > min_gain and better >= agree - 1e-12:
            _, a, bs = batch[j]
            idx = rows[j]
            cur, cur_w = float(m[j]), w[j]
            stale = sorted(set(stale) | {a, *bs})
            prior([a, *bs])
            if trace is not None:
                trace.append(
                    {
                        "raise": a,
                        "lower": list(bs),
                        "predicted": batch[j][0],
                        "measured": cur,
                        "windows_better": better,
                        "fraction": tables.fraction(idx),
                        "evals": evals,
                    }
                )
    if pin is not None:
        pin(None)
    return idx


def solve_refine(
    tables: RankTables,
    budget: float,
    *,
    evaluator: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
    time_limit: float | None = None,
    init: np.ndarray | None = None,
    max_evals: int = 150,
    top_k: int = 3,
    refine_evals: int = 200,
    refine_top_k: int = 4,
    agree: float = 0.0,
    min_gain: float = 0.0,
    trace: list | None = None,
    **_: Any,
) -> np.ndarray:
    """``greedy`` (``max_evals``, ``top_k``), or the config ``init`` if given (trimmed to the
    budget by :func:`trim_to_budget` when it costs more: made for another budget or method), then
    :func:`refine` (``refine_evals``, ``refine_top_k``, ``agree``, ``min_gain``) with the
    calibration evaluator, or without one with the tables' additive estimate
    (:class:`TableLoss`). ``time_limit`` covers both; refine gets what greedy leaves."""
    budget = check_budget(tables, budget)
    t0 = time.perf_counter()
    if init is None:
        start = solve_greedy(
            tables,
            budget,
            evaluator=evaluator,
            seed=seed,
            time_limit=time_limit,
            max_evals=max_evals,
            top_k=top_k,
        )
    else:
        start = np.asarray(init, np.int64)
        if (
            start.shape != (tables.num_parts,)
            or start.min() < 0
            or start.max() >= len(tables.choices)
        ):
            raise InputError(
                f"expected {tables.num_parts} choice indices in 0..{len(tables.choices) - 1}",
                field="init",
            )
    rest = None if time_limit is None else max(0.0, time_limit - (time.perf_counter() - t0))
    return refine(
        tables,
        budget,
        start,
        evaluator if evaluator is not None else TableLoss(tables),
        max_evals=refine_evals,
        time_limit=rest,
        top_k=refine_top_k,
        agree=agree,
        min_gain=min_gain,
        trace=trace,
    )


# ----------------------------------------------------------------------------- registry

# Transitional: mallocgame/cli/rank.py still reads ``sorted(SOLVERS)`` for its ``--solver``
# choices; remove this once it uses ``registry.names("rank")``.
SOLVERS: tuple[str, ...] = tuple(registry.names("rank"))

#: solvers that use the calibration evaluator when one is given
USES_EVALUATOR = frozenset({"greedy", "refine", "agent"})


def needs_measured_tables(name: str, init: bool = False) -> bool:
    """Whether solver ``name`` reads the tables' measurements (energy, sensitivity, Fisher),
    not only their costs: all but ``uniform``, and ``refine`` from a start config (``init``),
    which measures its own marginals (the tables' are only a prior until then)."""
    return not (name == "uniform" or (name == "refine" and init))


def load(name: str) -> Solver:
    """The solve function of ``name`` (:mod:`mallocgame.registry`); an unknown name is an
    :class:`InputError`, a solver whose module cannot be imported (the agent's) a
    :class:`SolverUnavailableError` naming the module."""
    spec = registry.spec("rank", name)
    try:
        return spec.load()
    except ImportError as e:
        if e.__cause__ is None:  # the module imported but lacks the function
            attr = spec.target.split(":", 1)[1]
            raise SolverUnavailableError(
                f"{name} unavailable: {spec.module} has no {attr}()"
            ) from None
        raise SolverUnavailableError(
            f"{name} unavailable: cannot import {spec.module} ({e.__cause__})"
        ) from None


def available(name: str) -> bool:
    try:
        load(name)
    except SolverUnavailableError:
        return False
    return True


def solve(
    tables: RankTables,
    budget: float,
    solver: str = "greedy",
    *,
    evaluator: Callable[[np.ndarray], np.ndarray] | None = None,
    seed: int = 0,
    time_limit: float | None = None,
    **kw: Any,
) -> np.ndarray:
    """Run a registered solver and check its answer (shape, range, budget)."""
    budget = check_budget(tables, budget)
    fn = load(solver)
    idx = np.asarray(
        fn(tables, budget, evaluator=evaluator, seed=seed, time_limit=time_limit, **kw), np.int64
    )
    P, C = tables.num_parts, len(tables.choices)
    if idx.shape != (P,) or idx.min() < 0 or idx.max() >= C:
        raise MallocGameError(
            f"rank solver {solver!r} returned choices of shape {idx.shape} "
            f"outside 0..{C - 1} (expected {P} parts)"
        )
    if not _fits(tables, idx, budget):
        raise MallocGameError(
            f"rank solver {solver!r} exceeded the budget: {tables.fraction(idx):.4f} > {budget:g}"
        )
    return idx
