"""The memory report's pictures: objective against time, performance profiles, the IQM of
the score, and the memory map of each task's best mapping."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.bench import stats, suites
from mallocgame.bench.records import best_paths
from mallocgame.bench.render import save_png
from mallocgame.bench.scores import Task, per_task, tasks_of
from mallocgame.memory import cost
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.show import draw_memory_map
from mallocgame.memory.targets import load_target


def write_pictures(
    out: Path,
    runs: list[dict[str, Any]],
    tasks: list[Task],
    solvers: list[str],
    mode: str,
    reps: int,
) -> dict[str, str]:
    """Every picture of the memory report under ``OUT/pictures/``; returns ``{name: path}``."""
    import matplotlib  # deferred: matplotlib, only when pictures are asked for

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pdir = out / "pictures"
    pics: dict[str, str] = {}
    colors = {s: plt.cm.tab10(i % 10) for i, s in enumerate(solvers)}

    # Objective (gap to the best bound) against solve time.
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in solvers:
        rs = [r for r in runs if r["solver"] == s]
        xs = np.array([max(r.get("wall_s") or 1e-6, 1e-6) for r in rs])
        ys = np.array(
            [100 * r["final_gap"] if r.get("final_gap") is not None else np.nan for r in rs]
        )
        ok = np.isfinite(ys)
        if ok.any():
            ax.scatter(xs[ok], ys[ok], s=14, alpha=0.5, color=colors[s])
            ax.scatter(
                [np.median(xs[ok])],
                [np.median(ys[ok])],
                s=90,
                marker="D",
                color=colors[s],
                edgecolor="black",
                label=s,
            )
        if (~ok).any():
            ax.scatter(
                xs[~ok],
                np.full((~ok).sum(), np.nanmax(ys) * 1.1 + 1 if ok.any() else 100),
                marker="x",
                color=colors[s],
            )
    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=0.1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("solver wall time (s)")
    ax.set_ylabel(
        "gap to the best bound (%)" + ("" if mode == "malloc" else ", peak; x = not solved")
    )
    ax.set_title("objective vs solve time (diamond: median per solver)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    pics["objective vs time"] = save_png(fig, pdir / "objective_vs_time.png")

    # Performance profiles (Dolan-More) over the ratio to the best bound.
    finite = [r["ratio"] for r in runs if math.isfinite(r.get("ratio", math.inf))]
    hi = max(finite) * 1.02 if finite else 2.0
    taus = np.geomspace(1.0, max(hi, 1.001), 200)
    fig, ax = plt.subplots(figsize=(8, 5))
    for s in solvers:
        rs = [r for r in runs if r["solver"] == s]
        ts = tasks_of(rs)
        ratios = per_task(rs, s, "ratio", ts)
        if not ratios:
            continue
        prof, lo, hi_ = stats.performance_profile_ci(ratios, taus, reps=reps, seed=3)
        ax.plot(taus, prof, color=colors[s], label=s, drawstyle="steps-post")
        ax.fill_between(taus, lo, hi_, color=colors[s], alpha=0.15, step="post")
    if taus[-1] > 3:
        ax.set_xscale("log")
    ax.set_xlabel("tau: objective / best bound" + (" (time)" if mode == "malloc" else " (peak)"))
    ax.set_ylabel("fraction of runs with ratio <= tau")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("performance profiles (95% bootstrap bands)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    pics["performance profiles"] = save_png(fig, pdir / "performance_profile.png")

    # IQM of the normalised score with CIs.
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(solvers) + 1.5))
    for i, s in enumerate(solvers):
        rs = [r for r in runs if r["solver"] == s]
        sc = per_task(rs, s, "score", tasks_of(rs))
        if not sc:
            continue
        e = stats.stratified_bootstrap_ci(sc, reps=reps, seed=1)
        ax.barh(i, e.value, color=colors[s], alpha=0.7)
        ax.errorbar(e.value, i, xerr=[[e.value - e.lo], [e.hi - e.value]], color="black", capsize=3)
    ax.set_yticks(range(len(solvers)), solvers)
    ax.set_xlim(0, 1.05)
    ax.set_xlabel("IQM of the normalised score (95% CI)")
    ax.grid(alpha=0.3, axis="x")
    pics["IQM score"] = save_png(fig, pdir / "score_iqm.png")

    # The memory map of the best solution per task.
    for t in tasks:
        p = draw_best(out, t, mode)
        if p:
            pics[f"best map {t[0]} @ {t[1]}"] = p
    return pics


def draw_best(out: Path, task: Task, mode: str) -> str | None:
    """The memory map of ``task``'s best mapping (``solutions/``), or None without one."""
    csv_path, json_path = best_paths(out, task[0], task[1])
    if not (csv_path.exists() and json_path.exists()):
        return None
    try:
        meta = json.loads(json_path.read_text())
        wl, offsets = read_csv(csv_path)
    except Exception:
        return None
    if offsets is None:
        return None
    benefit = None
    try:
        kind = (
            "zoo"
            if str(meta.get("source", "")).startswith("zoo")
            else ("tiny" if str(meta.get("source", "")).startswith("tiny:") else "file")
        )
        full, _ = suites.load_instance(
            suites.InstanceSpec(task[0], meta["source"], kind), out / "workloads"
        )
        if full.num_buffers == wl.num_buffers:
            benefit = (
                cost.solo_benefit(full, load_target(meta.get("target", "tpuv4i"))) / full.sizes
            )
    except Exception:
        benefit = None
    fast = offsets >= 0
    peak = int(np.max(offsets[fast] + wl.sizes[fast])) if fast.any() else 0
    cap = max(int(meta.get("capacity_bytes") or 1), peak)
    obj = meta.get("objective")
    what = (
        f"time {obj * 1e6:.3f} us"
        if (mode == "malloc" and obj is not None)
        else (f"peak {obj:.0f} B" if obj is not None else "")
    )
    title = (
        f"{task[0]} @ {task[1]}: best = {meta.get('solver')} seed {meta.get('seed')}, {what}; "
        f"{int(fast.sum())}/{len(offsets)} fast"
    )
    path = out / "pictures" / "maps" / f"{csv_path.name[: -len('.best.csv')]}.png"
    draw_memory_map(wl.starts, wl.ends, wl.sizes, offsets, cap, path, benefit=benefit, title=title)
    return str(path)
