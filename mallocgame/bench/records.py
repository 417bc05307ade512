"""What a bench folder records, and how it is read back: the run log (``runs.jsonl``, and
``bounds.jsonl`` in the same form), the best proven bound and a run's gap to it, the best
mapping found per task (``solutions/``), and the host a bench ran on.

Both the runner and the reports use these, so that a report rebuilt from the folder alone
(``--report-only``, a resumed bench) reads exactly what the runner wrote.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame import io
from mallocgame.bench import peers, suites
from mallocgame.io import atomic_write_text
from mallocgame.memory.csvio import write_solution_csv
from mallocgame.memory.problem import Problem

SCHEMA = 1
RunKey = tuple[str, str, int, str]  # (instance, solver, seed, capacity)


# --------------------------------------------------------------------------- the run log
class RunLog:
    """``runs.jsonl``: one JSON object per finished run; append, flush and fsync per line."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = read_jsonl(path)

    def keys(self) -> set[RunKey]:
        return {run_key(r) for r in self.records}

    def append(self, rec: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = (
            self.path.exists()
            and self.path.stat().st_size > 0
            and not _ends_with_newline(self.path)
        )
        with open(self.path, "a") as f:
            if needs_newline:
                f.write("\n")  # a line cut short by a kill: keep it apart from the new one
            f.write(_line(rec))
            f.flush()
            os.fsync(f.fileno())
        self.records.append(rec)

    def rewrite(self, records: list[dict[str, Any]]) -> None:
        """Replace the log by ``records`` (the same lines, e.g. in another order), atomically."""
        atomic_write_text(self.path, "".join(_line(r) for r in records))
        self.records = list(records)


def _line(rec: dict[str, Any]) -> str:
    return json.dumps(rec, separators=(",", ":")) + "\n"


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The parseable lines of a JSONL file (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def run_key(r: dict[str, Any]) -> RunKey:
    """What identifies a run for ``--resume``: (instance, solver, seed, capacity)."""
    return (str(r["instance"]), str(r["solver"]), int(r["seed"]), str(r["capacity"]))


def jsonable(x: Any) -> Any:
    """``x`` as plain JSON values: numpy scalars to numbers, small arrays to lists (large ones
    to a placeholder), non-finite floats to None, anything else to its ``repr``."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist() if x.size <= 64 else f"<array {x.shape}>"
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return finite(float(x))
    if isinstance(x, float):
        return finite(x)
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return repr(x)


def finite(v: float | None) -> float | None:
    """``v``, or None when it is None, infinite or NaN (JSON has no such numbers)."""
    if v is None or not math.isfinite(v):
        return None
    return v


def write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def host_info() -> dict[str, Any]:
    """:func:`mallocgame.io.host_info` plus the versions of the bench's optional peers."""
    info = io.host_info()
    info["omnimalloc"] = peers.omnimalloc_version()
    try:
        import ortools  # deferred: optional (the bench extra), only its version is read

        info["ortools"] = ortools.__version__
    except Exception:
        info["ortools"] = None
    return info


# --------------------------------------------------------------------------- bounds and gaps
def best_bound(bounds: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    """The largest proven lower bound and its kind."""
    best, kind = None, None
    for b in bounds:
        v = b.get("value")
        if v is not None and b.get("proven", True) and (best is None or v > best):
            best, kind = float(v), str(b.get("kind"))
    return best, kind


# How far a valid objective may lie below a proven bound before the bench calls it a bug, relative
# to the bound, by the bound's kind: the bounds are computed in floating point by solvers with
# tolerances of their own. HiGHS (the knapsack LP and MILP) accepts a solution that violates
# each row by up to its primal feasibility tolerance (1e-7) and each integrality by up to its
# MIP feasibility tolerance (1e-6); summed over thousands of rows, its dual bound can sit a few
# 1e-6 above the true optimum even after ``exact.LP_SAFETY`` is taken off. CP-SAT works on
# integer coefficients scaled by ``sigma`` and rounded (``cpsat._time_scale``); the cost model
# sums in float64. Unknown kinds get the default.
BOUND_TOLERANCE: dict[str, float] = {
    "knapsack-lp": 1e-4,
    "knapsack-milp": 1e-4,
    "cpsat": 1e-5,
    "unlimited-fast": 1e-9,
    "peak-live": 0.0,
}
DEFAULT_BOUND_TOLERANCE = 1e-6


def bounds_violated(objective: float | None, bounds: list[dict[str, Any]]) -> list[str]:
    """The kinds of the proven bounds that ``objective`` lies below by more than their
    tolerance (:data:`BOUND_TOLERANCE`): a valid mapping there means a bug in a bound or in the
    validator. Empty when none is, or when the objective is unknown."""
    if objective is None:
        return []
    out = []
    for b in bounds:
        v = b.get("value")
        if v is None or not b.get("proven", True):
            continue
        kind = str(b.get("kind"))
        tol = BOUND_TOLERANCE.get(kind, DEFAULT_BOUND_TOLERANCE)
        if objective < float(v) - tol * abs(float(v)):
            out.append(kind)
    return out


def gap(objective: float | None, bound: float | None) -> float | None:
    """``(objective - bound) / bound``, at least 0; None when either is unknown."""
    if objective is None or bound is None:
        return None
    if bound <= 0:
        return 0.0 if objective <= 0 else None
    return max(0.0, (objective - bound) / bound)


# --------------------------------------------------------------------------- best solutions
BestTable = dict[tuple[str, str], dict[str, Any]]  # (instance, capacity) -> the best's summary


def best_paths(out: Path, instance: str, cap: str) -> tuple[Path, Path]:
    """The best mapping's CSV and its summary JSON for the task (``instance``, ``cap``)."""
    safe = instance.replace("/", "_")
    stem = f"{safe}@{suites.capacity_label(cap)}"
    return out / "solutions" / f"{stem}.best.csv", out / "solutions" / f"{stem}.best.json"


def load_best(out: Path) -> BestTable:
    best: BestTable = {}
    folder = out / "solutions"
    if folder.is_dir():
        for p in folder.glob("*.best.json"):
            try:
                d = json.loads(p.read_text())
                best[(d["instance"], d["capacity"])] = d
            except (json.JSONDecodeError, KeyError, OSError):
                continue
    return best


def best_rank(rec: dict[str, Any], mode: str) -> tuple[float, ...]:
    """How good a run is for the best-solution table; smaller is better."""
    if mode == "malloc":
        return (rec["objective"],)
    return (
        0.0 if rec.get("solved") else 1.0,
        rec["objective"] if rec.get("objective") is not None else math.inf,
        -float(rec.get("placed_bytes", 0)),
    )


def update_best(
    out: Path,
    mode: str,
    best: BestTable,
    rec: dict[str, Any],
    problem: Problem,
    spec: suites.InstanceSpec,
    cap: str,
    offsets: np.ndarray,
) -> None:
    """Keep ``rec``'s mapping as its task's best (CSV and summary) if it beats the one kept."""
    if rec.get("status") != "ok" or not rec.get("valid"):
        return
    if mode == "malloc" and rec.get("objective") is None:
        return
    key = (spec.name, cap)
    cur = best.get(key)
    if cur is not None and tuple(cur["rank"]) <= best_rank(rec, mode):
        return
    csv_path, json_path = best_paths(out, spec.name, cap)
    write_solution_csv(csv_path, problem.workload, offsets)
    d = {
        "instance": spec.name,
        "capacity": cap,
        "capacity_bytes": rec["capacity_bytes"],
        "solver": rec["solver"],
        "seed": rec["seed"],
        "objective": rec["objective"],
        "rank": list(best_rank(rec, mode)),
        "source": spec.source,
        "target": problem.target.name,
        "alignment": rec["alignment"],
        "mode": mode,
        "csv": csv_path.name,
    }
    write_json(json_path, d)
    best[key] = d
