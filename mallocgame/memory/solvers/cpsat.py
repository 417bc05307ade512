"""The optimum as the ceiling: exact models of the memory game solved with OR-Tools CP-SAT.

Two CP-SAT models of the same rules as the game and the validator:

- **time** (:func:`solve_time`): a Boolean ``x_b`` per buffer (fast or slow) and an address
  ``offset_b = U * k_b``; the boxes ``[start_b, end_b) x [offset_b, offset_b + size_b)`` of fast
  buffers must not overlap (``AddNoOverlap2D`` over optional intervals, plus the same as a 1-D
  ``AddNoOverlap`` of addresses on every maximal set of buffers live together, which is
  equivalent for intervals and propagates better), ``offset_b + size_b <= capacity``. The
  objective is the roofline program time ``sum_i max(compute_i, memory_i(x))``, linear in ``x``
  once a variable ``t_i >= compute_i, t_i >= memory_i(x)`` stands for each instruction whose
  max can switch sides: exact, because each term is a max of linear functions. Redundant
  knapsack rows (on every maximal clique of live buffers, fast bytes <= capacity) give the LP
  relaxation its strength.
- **fit-all** (:func:`solve_fit_all`): every buffer placed; minimise the peak
  ``max_b offset_b + size_b`` (at most the capacity). With the peak's lower bound (the most
  bytes live at once) as its floor this is minimalloc's decision problem when they coincide.

Units. Addresses are in units ``U``: when every size is a multiple of ``g = gcd(sizes)`` and the
alignment divides ``g``, ``U = g`` loses nothing (round any packing's offsets down to multiples
of ``g``: order, capacity and alignment are kept); otherwise ``U = alignment`` and a buffer
covers ``ceil(size / U)`` units, which is exact for aligned offsets. Schedule positions are
compressed to the ranks of the distinct interval ends.

Times are integers for CP-SAT: one unit is ``1 / sigma`` seconds with ``sigma = fast_bandwidth
* 2**m`` (one byte at fast bandwidth, refined until the all-slow time is >= 1e9 units). Every
coefficient is rounded **down**, so the integer model is a relaxation and its proven bound,
divided by ``sigma``, is a valid lower bound on the true optimum. When the coefficients are
integers already (trace workloads on a target whose bandwidth ratio is an integer) the integer
model is the cost model exactly (``info["exact_scaling"]``). The objective of a solution is
always re-evaluated with :func:`mallocgame.memory.cost.program_time`.

The solver ``cpsat`` (:func:`solve`) plays either model with ``NUM_WORKERS`` workers (the bench
sets it from ``--threads``). The cheaper lower bounds of the bench live in
:mod:`mallocgame.bench.exact`.
"""

from __future__ import annotations

import dataclasses
import math
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from mallocgame.memory import cost
from mallocgame.memory.problem import Problem

if TYPE_CHECKING:
    from ortools.sat.python.cp_model import CpModel, CpSolver, IntervalVar, IntVar

DEFAULT_TIME_LIMIT = 10.0
# CP-SAT workers for the ``cpsat`` solver; the bench sets it from ``--threads``.
NUM_WORKERS = 2
# geometry="auto" adds AddNoOverlap2D (beside the per-clique constraints) up to this many boxes:
# above it, CP-SAT 9.15 spends its whole budget setting the 2-D constraint up (1042 boxes of
# resnet50: no search step in 60 s), while the equivalent per-clique form solves.
NO_OVERLAP_2D_LIMIT = 100


@dataclasses.dataclass
class ExactResult:
    """What CP-SAT found and proved. ``objective`` and ``bound`` are in seconds (time) or
    bytes (fit-all peak); ``offsets[b]`` is -1 for slow (or unplaced) buffers."""

    offsets: np.ndarray
    status: str
    objective: float | None
    bound: float | None
    proved_optimal: bool
    wall_s: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def gap(self) -> float | None:
        if self.objective is None or self.bound is None or self.bound <= 0:
            return None
        return max(0.0, (self.objective - self.bound) / self.bound)


# --------------------------------------------------------------------------- geometry helpers
def address_units(sizes: np.ndarray, alignment: int) -> tuple[int, np.ndarray, bool]:
    """``(U, size_in_units, exact)``: see the module doc."""
    sizes = np.asarray(sizes, dtype=np.int64)
    g = int(np.gcd.reduce(sizes)) if sizes.size else 1
    a = max(1, int(alignment))
    if g % a == 0:
        return g, sizes // g, True
    return a, -(-sizes // a), False


def maximal_cliques(
    starts: np.ndarray, ends: np.ndarray, subset: np.ndarray | None = None
) -> list[np.ndarray]:
    """The maximal sets of buffers (indices) live at one schedule position, among ``subset``.

    For intervals these are the live sets at the start positions after which the next event
    is an end; every pair of conflicting buffers lies in at least one of them."""
    idx = np.arange(len(starts)) if subset is None else np.asarray(subset, dtype=np.int64)
    if idx.size == 0:
        return []
    s, e = np.asarray(starts)[idx], np.asarray(ends)[idx]
    points = np.unique(s)
    out: list[np.ndarray] = []
    for j, p in enumerate(points.tolist()):
        live = (s <= p) & (e > p)
        ends_live = e[live]
        last = j + 1 == points.size
        if last or ends_live.min() <= points[j + 1]:
            out.append(idx[live])
    return out


def peak_live_bound(problem: Problem) -> int:
    """The most bytes live at one position: a lower bound on the peak of any packing."""
    return problem.workload.peak_live_bytes()


def _compress_time(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pts = np.unique(np.concatenate([starts, ends]))
    return np.searchsorted(pts, starts), np.searchsorted(pts, ends)


def _add_geometry(
    m: CpModel,
    geometry: str,
    tiv: list[IntervalVar],
    aiv: list[IntervalVar],
    members: np.ndarray,
    cliques: list[np.ndarray],
) -> str:
    """Non-overlap of the boxes ``time x address``. ``"2d"``: one ``AddNoOverlap2D``;
    ``"cliques"``: ``AddNoOverlap`` of the address intervals on every maximal clique of live
    buffers (equivalent: two intervals overlap iff they share a maximal clique); ``"both"``;
    ``"auto"``: both up to ``NO_OVERLAP_2D_LIMIT`` boxes, else cliques. Returns the choice."""
    if geometry == "auto":
        geometry = "both" if len(tiv) <= NO_OVERLAP_2D_LIMIT else "cliques"
    if geometry not in ("2d", "cliques", "both"):
        raise ValueError(f"geometry must be auto, 2d, cliques or both, not {geometry!r}")
    if geometry in ("2d", "both"):
        m.add_no_overlap_2d(tiv, aiv)
    if geometry in ("cliques", "both"):
        pos = {int(b): j for j, b in enumerate(np.asarray(members).tolist())}
        for q in cliques:
            if q.size >= 2:
                m.add_no_overlap([aiv[pos[int(b)]] for b in q.tolist()])
    return geometry


# --------------------------------------------------------------------------- cost-model terms
@dataclasses.dataclass
class CostTerms:
    """The roofline cost split for a model: see :func:`cost_terms`."""

    cand: np.ndarray  # buffers that may be fast (fit, and save time alone)
    compute: np.ndarray  # [I] seconds
    slow_total: np.ndarray  # [I] seconds, every buffer slow
    slow_fixed: np.ndarray  # [I] seconds of non-candidate buffers
    # [I] 0 constant (compute-bound always), 1 linear (memory-bound always), 2 mixed
    kind: np.ndarray
    pairs_i: np.ndarray  # merged accesses of candidates: instruction
    pairs_b: np.ndarray  # buffer
    pairs_bytes: np.ndarray


def cost_terms(problem: Problem) -> CostTerms:
    w, t = problem.workload, problem.target
    n = w.num_buffers
    counts = np.diff(w.access_ptr)
    instr = np.repeat(np.arange(w.num_instructions, dtype=np.int64), counts)
    benefit = cost.solo_benefit(w, t)
    # A buffer's marginal saving never exceeds its solo saving (max(c, m) is convex in m), so
    # buffers that save nothing alone never help: they stay slow without loss of optimality.
    cand_mask = (w.sizes <= problem.capacity) & (benefit > 0)
    cand = np.flatnonzero(cand_mask)
    key = instr * max(n, 1) + w.access_buffer
    ukey, inv = np.unique(key, return_inverse=True)
    nbytes = np.bincount(inv, weights=w.access_bytes, minlength=ukey.size)
    pi, pb = ukey // max(n, 1), ukey % max(n, 1)
    slow_bw, fast_bw = t.slow_bandwidth_bytes_per_s, t.fast_bandwidth_bytes_per_s
    compute = w.instr_flops / t.peak_flops_per_s
    slow_total = np.bincount(pi, weights=nbytes / slow_bw, minlength=w.num_instructions)
    nc = ~cand_mask[pb]
    slow_fixed = np.bincount(pi[nc], weights=nbytes[nc] / slow_bw, minlength=w.num_instructions)
    c = ~nc
    all_fast = slow_fixed + np.bincount(
        pi[c], weights=nbytes[c] / fast_bw, minlength=w.num_instructions
    )
    kind = np.where(compute >= slow_total, 0, np.where(compute <= all_fast, 1, 2))
    return CostTerms(cand, compute, slow_total, slow_fixed, kind, pi[c], pb[c], nbytes[c])


def _integral(x: np.ndarray, tol: float = 1e-9) -> bool:
    x = np.asarray(x, dtype=np.float64)
    return bool(np.all(np.abs(x - np.round(x)) <= tol * np.maximum(1.0, np.abs(x))))


def _time_scale(problem: Problem) -> float:
    fast_bw = problem.target.fast_bandwidth_bytes_per_s
    total = problem.all_slow_time
    if total <= 0:
        return fast_bw
    sigma = fast_bw
    while sigma * total < 1e9:
        sigma *= 2.0
    while sigma * total > 2.0**52:
        sigma /= 2.0
    return sigma


# --------------------------------------------------------------------------- CP-SAT: time
def _new_model() -> tuple[ModuleType, CpModel]:
    from ortools.sat.python import cp_model  # ortools: the bench extra, needed only to solve

    return cp_model, cp_model.CpModel()


def _status_name(cp_model: ModuleType, status: int) -> str:
    return {
        cp_model.OPTIMAL: "OPTIMAL",
        cp_model.FEASIBLE: "FEASIBLE",
        cp_model.INFEASIBLE: "INFEASIBLE",
        cp_model.MODEL_INVALID: "MODEL_INVALID",
    }.get(status, "UNKNOWN")


def _cp_solver(cp_model: ModuleType, time_limit: float, num_workers: int, seed: int) -> CpSolver:
    s = cp_model.CpSolver()
    s.parameters.max_time_in_seconds = float(time_limit)
    s.parameters.num_workers = max(1, int(num_workers))
    s.parameters.random_seed = int(seed) % (2**31 - 1)
    s.parameters.log_search_progress = False
    return s


def solve_time(
    problem: Problem,
    time_limit: float = DEFAULT_TIME_LIMIT,
    num_workers: int = NUM_WORKERS,
    seed: int = 0,
    hint: np.ndarray | None = None,
    geometry: str = "auto",
    log: bool = False,
) -> ExactResult:
    """Minimise program time (objective ``time``) with CP-SAT; see the module doc and
    :func:`_add_geometry` for ``geometry``."""
    t0 = time.perf_counter()
    w, tg = problem.workload, problem.target
    n = w.num_buffers
    cap = int(problem.capacity)
    terms = cost_terms(problem)
    cand = terms.cand
    offsets = np.full(n, -1, dtype=np.int64)
    info: dict[str, Any] = {"model": "cpsat-time", "candidates": int(cand.size), "buffers": n}
    if cand.size == 0:
        obj = cost.program_time(w, tg, offsets >= 0)
        return ExactResult(offsets, "OPTIMAL", obj, obj, True, time.perf_counter() - t0, info)

    unit, size_u, exact_units = address_units(w.sizes, tg.alignment_bytes)
    kmax = (cap - w.sizes) // unit
    cap_u = int(np.max(kmax[cand] + size_u[cand]))
    ts, te = _compress_time(w.starts, w.ends)
    sigma = _time_scale(problem)
    info.update({"address_unit": unit, "exact_units": exact_units, "sigma": sigma})

    cp_model, m = _new_model()
    x: dict[int, IntVar] = {}
    k: dict[int, IntVar] = {}
    tiv, aiv = [], []
    for b in cand.tolist():
        x[b] = m.new_bool_var(f"x{b}")
        k[b] = m.new_int_var(0, int(kmax[b]), f"k{b}")
        tiv.append(
            m.new_optional_fixed_size_interval_var(int(ts[b]), int(te[b] - ts[b]), x[b], f"t{b}")
        )
        aiv.append(m.new_optional_fixed_size_interval_var(k[b], int(size_u[b]), x[b], f"a{b}"))
    cliques = maximal_cliques(w.starts, w.ends, cand)
    info["geometry"] = _add_geometry(m, geometry, tiv, aiv, cand, cliques)
    for q in cliques:
        if q.size >= 2 and int(size_u[q].sum()) > cap_u:
            m.add(sum(int(size_u[b]) * x[b] for b in q.tolist()) <= cap_u)
    info["cliques"] = len(cliques)

    # Objective, integer-scaled and rounded down (a relaxation; exact when integral).
    raw = [sigma * terms.compute, sigma * terms.slow_fixed]
    slow_c = sigma * terms.pairs_bytes / tg.slow_bandwidth_bytes_per_s
    fast_c = sigma * terms.pairs_bytes / tg.fast_bandwidth_bytes_per_s
    kind = terms.kind
    relevant = kind[terms.pairs_i] != 0
    exact_scaling = _integral(slow_c[relevant]) and _integral(fast_c[relevant])
    exact_scaling = exact_scaling and _integral(raw[1][kind != 0])
    exact_scaling = exact_scaling and _integral(raw[0][kind != 1])
    ls = np.floor(slow_c + 1e-9 * np.maximum(1.0, slow_c)).astype(np.int64)
    lf = np.floor(fast_c + 1e-9 * np.maximum(1.0, fast_c)).astype(np.int64)
    comp = np.floor(raw[0] + 1e-9 * np.maximum(1.0, raw[0])).astype(np.int64)
    fixed = np.floor(raw[1] + 1e-9 * np.maximum(1.0, raw[1])).astype(np.int64)
    const = 0
    linear: dict[int, int] = {}
    by_instr: dict[int, list[int]] = {}
    for j, i in enumerate(terms.pairs_i.tolist()):
        by_instr.setdefault(i, []).append(j)
    const += int(comp[kind == 0].sum())
    mixed_vars = []
    for i in np.flatnonzero(kind != 0).tolist():
        js = by_instr.get(i, [])
        base = int(fixed[i]) + int(sum(int(ls[j]) for j in js))
        if kind[i] == 1:
            const += base
            for j in js:
                b = int(terms.pairs_b[j])
                linear[b] = linear.get(b, 0) - int(ls[j] - lf[j])
        else:
            lo = int(comp[i])
            ti = m.new_int_var(lo, max(lo, base), f"T{i}")
            m.add(ti + sum(int(ls[j] - lf[j]) * x[int(terms.pairs_b[j])] for j in js) >= base)
            mixed_vars.append(ti)
    info["mixed_instructions"] = len(mixed_vars)
    info["exact_scaling"] = bool(exact_scaling)
    m.minimize(const + sum(c * x[b] for b, c in linear.items() if c) + sum(mixed_vars))

    if hint is not None:
        hint = np.asarray(hint, dtype=np.int64)
        for b in cand.tolist():
            on = bool(hint[b] >= 0)
            m.add_hint(x[b], on)
            m.add_hint(k[b], int(hint[b] // unit) if on else 0)
        info["hint"] = True

    solver = _cp_solver(cp_model, time_limit, num_workers, seed)
    if log:
        solver.parameters.log_search_progress = True
        solver.log_callback = lambda line: print(line, flush=True)
    status = solver.solve(m)
    name = _status_name(cp_model, status)
    wall = time.perf_counter() - t0
    bound_int = solver.best_objective_bound if name in ("OPTIMAL", "FEASIBLE", "UNKNOWN") else None
    bound = None
    if bound_int is not None and math.isfinite(bound_int):
        bound = math.ceil(bound_int - 1e-6) / sigma
        bound = max(bound, problem.lower_bound_time)
    objective = None
    if name in ("OPTIMAL", "FEASIBLE"):
        for b in cand.tolist():
            if solver.boolean_value(x[b]):
                offsets[b] = int(solver.value(k[b])) * unit
        objective = cost.program_time(w, tg, offsets >= 0)
        if bound is not None:
            bound = min(bound, objective)
    proved = (
        name == "OPTIMAL"
        and objective is not None
        and bound is not None
        and (exact_scaling or objective - bound <= 1e-6 * objective)
    )
    info.update({"solver_wall_s": solver.wall_time, "branches": solver.num_branches})
    return ExactResult(offsets, name, objective, bound, bool(proved), wall, info)


# --------------------------------------------------------------------------- CP-SAT: fit-all
def solve_fit_all(
    problem: Problem,
    time_limit: float = DEFAULT_TIME_LIMIT,
    num_workers: int = NUM_WORKERS,
    seed: int = 0,
    hint: np.ndarray | None = None,
    geometry: str = "auto",
) -> ExactResult:
    """Place every buffer within the capacity, minimising the peak; see the module doc.

    Branches on the lowest free offset first (bottom-left placements, as minimalloc's canonical
    solutions), value min first."""
    t0 = time.perf_counter()
    w, tg = problem.workload, problem.target
    n = w.num_buffers
    cap = int(problem.capacity)
    offsets = np.full(n, -1, dtype=np.int64)
    live_lb = peak_live_bound(problem)
    info: dict[str, Any] = {"model": "cpsat-fit-all", "buffers": n, "peak_live_bytes": live_lb}
    if n == 0:
        return ExactResult(offsets, "OPTIMAL", 0.0, 0.0, True, time.perf_counter() - t0, info)
    unit, size_u, exact_units = address_units(w.sizes, tg.alignment_bytes)
    kmax = (cap - w.sizes) // unit
    if np.any(kmax < 0) or live_lb > cap:
        info["reason"] = "a buffer, or the bytes live at once, exceed the capacity"
        return ExactResult(
            offsets, "INFEASIBLE", None, float(cap + 1), True, time.perf_counter() - t0, info
        )
    ts, te = _compress_time(w.starts, w.ends)
    info.update({"address_unit": unit, "exact_units": exact_units})
    cp_model, m = _new_model()
    k, tiv, aiv = [], [], []
    for b in range(n):
        kb = m.new_int_var(0, int(kmax[b]), f"k{b}")
        k.append(kb)
        tiv.append(m.new_fixed_size_interval_var(int(ts[b]), int(te[b] - ts[b]), f"t{b}"))
        aiv.append(m.new_fixed_size_interval_var(kb, int(size_u[b]), f"a{b}"))
    cliques = maximal_cliques(w.starts, w.ends)
    info["geometry"] = _add_geometry(m, geometry, tiv, aiv, np.arange(n), cliques)
    info["cliques"] = len(cliques)
    m.add_decision_strategy(k, cp_model.CHOOSE_LOWEST_MIN, cp_model.SELECT_MIN_VALUE)
    lo = max(live_lb, int(w.sizes.max()))
    peak = m.new_int_var(lo, cap, "peak")
    for b in range(n):
        m.add(peak >= unit * k[b] + int(w.sizes[b]))
    m.minimize(peak)
    if hint is not None:
        hint = np.asarray(hint, dtype=np.int64)
        for b in np.flatnonzero(hint >= 0).tolist():
            m.add_hint(k[b], int(hint[b] // unit))
        info["hint"] = True
    solver = _cp_solver(cp_model, time_limit, num_workers, seed)
    status = solver.solve(m)
    name = _status_name(cp_model, status)
    wall = time.perf_counter() - t0
    objective: float | None = None
    bound: float | None = float(lo)
    if name in ("OPTIMAL", "FEASIBLE"):
        offsets = np.array([int(solver.value(kb)) * unit for kb in k], dtype=np.int64)
        objective = float(np.max(offsets + w.sizes))
        proven = max(float(lo), float(math.ceil(solver.best_objective_bound - 1e-6)))
        proved = name == "OPTIMAL" or objective <= proven
        bound = min(proven, objective)
    elif name == "INFEASIBLE":
        bound = float(cap + 1)  # nothing fits within the capacity
        proved = True
    else:
        proved = False
    info.update({"solver_wall_s": solver.wall_time, "branches": solver.num_branches})
    return ExactResult(offsets, name, objective, bound, bool(proved), wall, info)


def solve_exact(
    problem: Problem,
    time_limit: float = DEFAULT_TIME_LIMIT,
    num_workers: int = NUM_WORKERS,
    seed: int = 0,
    hint: np.ndarray | None = None,
    geometry: str = "auto",
) -> ExactResult:
    """:func:`solve_time` or :func:`solve_fit_all`, by the problem's objective."""
    fn = solve_fit_all if problem.objective == "fit-all" else solve_time
    return fn(
        problem,
        time_limit=time_limit,
        num_workers=num_workers,
        seed=seed,
        hint=hint,
        geometry=geometry,
    )


# --------------------------------------------------------------------------- the solver
def solve(
    problem: Problem, rng: np.random.Generator, time_limit: float | None
) -> tuple[np.ndarray, dict[str, Any]]:
    """The ``cpsat`` solver: CP-SAT (objective ``time``: warm-started with the ``msa`` mapping
    when the native core is there), ``NUM_WORKERS`` workers, ``time_limit`` seconds (default
    10). ``extra`` carries the proven ``bound`` and ``status``."""
    limit = DEFAULT_TIME_LIMIT if time_limit is None else float(time_limit)
    start = time.perf_counter()
    hint = None
    if problem.objective == "time":
        # A complete mapping is a good start. Not for fit-all: msa's partial packing (it stops
        # at the first buffer that does not fit) misleads the search (challenging K: solved
        # in 1 s without it, not in 20 s with it).
        try:  # the heuristics need the native core, which CP-SAT does not
            from mallocgame.memory.order import msa_order
            from mallocgame.memory.solvers.heuristics import play_best_fit

            hint, _ = play_best_fit(problem, msa_order(problem))
        except Exception:  # the native core may be missing or older: no hint then
            hint = None
    remaining = max(0.1, limit - (time.perf_counter() - start))
    res = solve_exact(
        problem,
        time_limit=remaining,
        num_workers=NUM_WORKERS,
        seed=int(rng.integers(2**31 - 1)),
        hint=hint,
    )
    offsets = res.offsets
    fallback = False
    if res.objective is None and hint is not None:
        # CP-SAT found nothing in time: hand back its warm start (say so) rather than nothing.
        offsets, fallback = np.asarray(hint, dtype=np.int64), True
    extra = {
        "status": res.status,
        "bound": res.bound,
        "proved_optimal": res.proved_optimal,
        "model_objective": res.objective,
        "workers": NUM_WORKERS,
        "returned_hint": fallback,
    }
    extra.update({f"cpsat_{k}": v for k, v in res.info.items()})
    return offsets, extra
