"""What a report computes from the run log: each run's final gap to the best bound, its
normalised score and ratio (see :mod:`mallocgame.bench.report`), and runs grouped by task."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from mallocgame.bench.records import best_bound, gap

Task = tuple[str, str]  # (instance, capacity)


def enrich(
    runs: list[dict[str, Any]], bounds: list[dict[str, Any]], mode: str
) -> dict[Task, tuple[float | None, str | None]]:
    """Add ``final_bound``, ``final_gap``, ``score``, ``ratio`` to each run; return the best
    bound per task."""
    by_task: dict[Task, list[dict[str, Any]]] = defaultdict(list)
    for b in bounds:
        by_task[(b["instance"], b["capacity"])].append(b)
    best = {t: best_bound(bs) for t, bs in by_task.items()}
    for r in runs:
        t = (r["instance"], r["capacity"])
        bnd, _ = best.get(t, (None, None))
        obj = r.get("objective") if r.get("status") == "ok" and r.get("valid") else None
        r["final_bound"] = bnd
        r["final_gap"] = gap(obj, bnd)
        if mode == "malloc":
            slow = r.get("all_slow_time_s")
            if obj is None or slow is None:
                r["score"], r["ratio"] = 0.0, math.inf
            else:
                denom = slow - bnd if bnd is not None else 0.0
                r["score"] = float(np.clip((slow - obj) / denom, 0.0, 1.0)) if denom > 0 else 1.0
                r["ratio"] = obj / bnd if bnd else math.inf
        else:
            if obj is None or not r.get("solved"):
                r["score"], r["ratio"] = 0.0, math.inf
            else:
                r["score"] = float(bnd / obj) if bnd and obj > 0 else 1.0
                r["ratio"] = obj / bnd if bnd else math.inf
    return best


def solver_order(runs: list[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for r in runs:
        if r["solver"] not in seen:
            seen.append(r["solver"])
    return seen


def tasks_of(runs: list[dict[str, Any]]) -> list[Task]:
    seen: list[Task] = []
    for r in runs:
        t = (r["instance"], r["capacity"])
        if t not in seen:
            seen.append(t)
    return seen


def per_task(
    runs: list[dict[str, Any]], solver: str, field: str, tasks: list[Task]
) -> list[np.ndarray]:
    out = []
    for t in tasks:
        vals = [
            r[field] for r in runs if r["solver"] == solver and (r["instance"], r["capacity"]) == t
        ]
        if not vals:
            return []
        out.append(np.asarray(vals, dtype=np.float64))
    return out
