"""The memory bench's report: ``results.md``, ``summary.json`` and pictures, rebuilt from
``runs.jsonl`` and ``bounds.jsonl`` alone (so a resumed or merged bench reports the same way).

Per task (an instance at a capacity) the **best bound** is the largest proven lower bound in
``bounds.jsonl`` (unlimited fast memory, knapsack LP/MILP, CP-SAT's proven bound; for ``pack``
the peak live bytes and CP-SAT's bound). Every run's **gap** is ``(objective - best bound) /
best bound``, recomputed here with the final best bound.

Normalised **score** of a run, higher is better, in [0, 1]:

- ``malloc``: the share of the attainable saving it captures,
  ``(T_all_slow - T) / (T_all_slow - best bound)`` (1 at the bound, 0 for all-slow);
- ``pack``: ``best bound / peak`` when it fits every buffer within the capacity, else 0.

An invalid mapping, a crash or a timeout scores 0 and has ratio ``inf`` in the profiles.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.bench import stats
from mallocgame.bench.pictures import write_pictures
from mallocgame.bench.records import read_jsonl
from mallocgame.bench.render import fmt, fmt_bytes, pct
from mallocgame.bench.scores import Task, enrich, per_task, solver_order, tasks_of
from mallocgame.errors import InputError
from mallocgame.io import atomic_write_text


def write_report(out: str | Path, pictures: bool = True, reps: int = 2000) -> dict[str, str]:
    """Write ``OUT/results.md`` (and ``OUT/pictures/*.png``); returns ``{name: path}``."""
    out = Path(out)
    runs = read_jsonl(out / "runs.jsonl")
    bounds = read_jsonl(out / "bounds.jsonl")
    cfg = {}
    if (out / "config.json").exists():
        try:
            cfg = json.loads((out / "config.json").read_text())
        except json.JSONDecodeError:
            cfg = {}
    unavailable: dict[str, str] = {}
    if (out / "unavailable.json").exists():
        try:
            unavailable = json.loads((out / "unavailable.json").read_text())
        except json.JSONDecodeError:
            unavailable = {}
    mode = cfg.get("mode") or (runs[0]["mode"] if runs else "malloc")
    best = enrich(runs, bounds, mode)
    tasks = tasks_of(runs)
    solvers = solver_order(runs)
    ok_runs = [r for r in runs if r.get("status") == "ok"]
    paths: dict[str, str] = {}
    pics: dict[str, str] = {}
    if pictures and runs:
        pics = write_pictures(out, runs, tasks, solvers, mode, reps=min(reps, 500))
        paths.update(pics)
    md = _markdown(out, cfg, runs, bounds, best, tasks, solvers, unavailable, mode, pics, reps)
    atomic_write_text(out / "results.md", md)
    paths["results"] = str(out / "results.md")
    summary = _summary_json(runs, tasks, solvers, mode)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
    paths["summary"] = str(out / "summary.json")
    del ok_runs
    return paths


def _summary_json(
    runs: list[dict[str, Any]], tasks: list[Task], solvers: list[str], mode: str
) -> dict[str, Any]:
    out: dict[str, Any] = {"mode": mode, "tasks": len(tasks), "solvers": {}}
    for s in solvers:
        rs = [r for r in runs if r["solver"] == s]
        scores = np.array([r["score"] for r in rs])
        gaps = [r["final_gap"] for r in rs if r.get("final_gap") is not None]
        out["solvers"][s] = {
            "runs": len(rs),
            "valid": sum(1 for r in rs if r.get("valid")),
            "solved": sum(1 for r in rs if r.get("solved")) if mode == "pack" else None,
            "iqm_score": float(stats.iqm(scores)) if scores.size else None,
            "median_gap": float(np.median(gaps)) if gaps else None,
            "median_wall_s": float(np.median([r.get("wall_s") or 0.0 for r in rs])) if rs else None,
        }
    return out


# --------------------------------------------------------------------------- markdown
def _markdown(
    out: Path,
    cfg: dict[str, Any],
    runs: list[dict[str, Any]],
    bounds: list[dict[str, Any]],
    best: dict[Task, tuple[float | None, str | None]],
    tasks: list[Task],
    solvers: list[str],
    unavailable: dict[str, str],
    mode: str,
    pics: dict[str, str],
    reps: int,
) -> str:
    L: list[str] = []
    title = (
        "time objective (fast/slow memory mapping)"
        if mode == "malloc"
        else "fit-all packing at the capacity"
    )
    L.append(f"# mallocgame bench `{mode}`: {title}\n")
    inv = cfg.get("invocations", [])
    if inv:
        last = inv[-1]
        c = last.get("config", {})
        h = last.get("host", {})
        L.append(
            f"- command: `{last.get('command') or '(API)'}`"
            + (f" ({len(inv)} invocations, resumed)" if len(inv) > 1 else "")
        )
        L.append(
            f"- machine: {h.get('cpus')} CPUs ({h.get('cpu_model') or '?'}), load average at start "
            f"{', '.join(f'{x:.2f}' for x in (h.get('loadavg_at_start') or []))}; "
            f"{h.get('platform')}"
        )
        L.append(
            f"- software: Python {h.get('python')}, numpy {h.get('numpy')}, "
            f"OR-Tools {h.get('ortools')}, omnimalloc {h.get('omnimalloc') or 'not installed'}"
        )
        alignment = c.get("alignment")
        if alignment is None:
            alignment = "1 (pack default)" if mode == "pack" else "of the target"
        L.append(
            f"- target `{c.get('target')}`, alignment {alignment}, "
            f"time limit {c.get('time_limit')} s per run, "
            f"{c.get('threads')} threads for parallel solvers, "
            f"{c.get('seeds')} seeds ({c.get('cpsat_seeds')} for cpsat)"
        )
        L.append(
            f"- started {inv[0].get('started')}; {len(runs)} runs on {len(tasks)} tasks "
            "(instance x capacity)"
        )
    if unavailable:
        L.append("\n**Unavailable solvers** (requested, not run):\n")
        for k, v in unavailable.items():
            L.append(f"- `{k}`: {v}")
    bad = [r for r in runs if r.get("status") != "ok"]
    inval = [r for r in runs if r.get("status") == "ok" and not r.get("valid")]
    below = [r for r in runs if r.get("below_bound")]
    if bad or inval or below:
        L.append(
            "\n**Failures**: "
            + f"{len(bad)} runs crashed or timed out, {len(inval)} returned an invalid mapping"
            + (f", {len(below)} claimed an objective below a proven bound (a bug)" if below else "")
            + "."
        )
        for r in below[:10]:
            L.append(
                f"- `{r.get('solver')}` on {r.get('instance')} at {r.get('capacity')}: objective "
                f"{r.get('objective')} below the {', '.join(r.get('below_bound_kinds') or [])} "
                "bound by more than its tolerance"
            )
        for r in (bad + inval)[:10]:
            why = r.get("error") or "; ".join(r.get("problems") or [])
            L.append(
                f"  - {r['instance']} @ {r['capacity']} `{r['solver']}` seed {r['seed']}: "
                f"{r['status']}: {why.splitlines()[0] if why else ''}"
            )
    if not runs:
        L.append("\nNo runs yet.")
        return "\n".join(L) + "\n"

    # ---- aggregate
    L.append("\n## Aggregate over all tasks\n")
    L.extend(aggregate_lines(runs, tasks, solvers, mode, reps))

    # ---- bounds
    L.append("\n## Bounds per task\n")
    by_task: dict[Task, list[dict[str, Any]]] = defaultdict(list)
    for b in bounds:
        by_task[(b["instance"], b["capacity"])].append(b)
    first_run = {}
    for r in runs:
        first_run.setdefault((r["instance"], r["capacity"]), r)
    if mode == "malloc":
        L.append(
            "Times in microseconds. all-slow: nothing in fast memory (upper frame). "
            "Lower bounds: unlimited fast memory; knapsack LP / MILP (capacity per maximal clique "
            "of live buffers, no geometry; MILP = HiGHS dual bound within the bound time limit); "
            "CP-SAT's proven bound. best = the largest.\n"
        )
        L.append(
            "| instance | capacity | bytes | buffers | all-slow | unlimited fast | knapsack LP | "
            "knapsack MILP | CP-SAT bound | best bound (kind) |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for t in tasks:
            bs = by_task.get(t, [])
            r0 = first_run[t]

            def val(kind: str, bs: list[dict[str, Any]] = bs) -> float | None:
                vs = [
                    b["value"] for b in bs if b.get("kind") == kind and b.get("value") is not None
                ]
                return max(vs) if vs else None

            bb, kind = best.get(t, (None, None))
            L.append(
                f"| {t[0]} | {t[1]} | {fmt_bytes(r0.get('capacity_bytes'))} |"
                f" {r0.get('num_buffers')} |"
                f" {fmt(r0.get('all_slow_time_s'), '.3f', 1e6)} |"
                f" {fmt(val('unlimited-fast'), '.3f', 1e6)} |"
                f" {fmt(val('knapsack-lp'), '.3f', 1e6)} |"
                f" {fmt(val('knapsack-milp'), '.3f', 1e6)} |"
                f" {fmt(val('cpsat'), '.3f', 1e6)} | {fmt(bb, '.3f', 1e6)} ({kind or '-'}) |"
            )
    else:
        L.append(
            "Peak in bytes. Lower bounds: the most bytes live at once (peak live); "
            "CP-SAT's proven bound on the peak. A task is feasible only if best bound <= "
            "capacity.\n"
        )
        L.append(
            "| instance | capacity | bytes | buffers | peak live | CP-SAT bound | best bound | "
            "solved by |"
        )
        L.append("|---|---|---|---|---|---|---|---|")
        for t in tasks:
            bs = by_task.get(t, [])
            r0 = first_run[t]
            cps = [
                b["value"] for b in bs if b.get("kind") == "cpsat" and b.get("value") is not None
            ]
            bb, _ = best.get(t, (None, None))
            solved_by = sorted(
                {
                    r["solver"]
                    for r in runs
                    if (r["instance"], r["capacity"]) == t and r.get("solved")
                }
            )
            L.append(
                f"| {t[0]} | {t[1]} | {r0.get('capacity_bytes')} | {r0.get('num_buffers')} |"
                f" {r0.get('peak_live_bytes')} |"
                f" {fmt(max(cps) if cps else None, '.0f')} | {fmt(bb, '.0f')} |"
                f" {', '.join(f'`{s}`' for s in solved_by) or 'none'} |"
            )

    # ---- per task
    L.append("\n## Results per task\n")
    if mode == "malloc":
        L.append(
            "time: program time under the roofline cost model (us), best and median over seeds; "
            "speed-up vs all-slow (median); gap to the best bound (median; best); "
            "optimal: runs with gap 0 (to 1e-6) or proven by CP-SAT; "
            "wall: solver wall time (median s); RSS: median peak RSS of the run process (MiB).\n"
        )
        L.append(
            "| instance | capacity | solver | runs | valid | time best | time median | speed-up | "
            "gap median | gap best | optimal | wall s | RSS MiB |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    else:
        L.append(
            "solved: runs that place every buffer within the capacity; "
            "peak: max(offset + size) of complete packings (best / median), "
            "gap: to the best bound; wall: solver wall time (median s).\n"
        )
        L.append(
            "| instance | capacity | solver | runs | valid | solved | placed (median) "
            "| peak best | peak median | gap best | wall s | RSS MiB |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for t in tasks:
        for s in solvers:
            rs = [r for r in runs if r["solver"] == s and (r["instance"], r["capacity"]) == t]
            if not rs:
                continue
            objs = [r["objective"] for r in rs if r.get("objective") is not None and r.get("valid")]
            gaps = [r["final_gap"] for r in rs if r.get("final_gap") is not None]
            walls = [r.get("wall_s") for r in rs if r.get("wall_s") is not None]
            rss = [r.get("peak_rss_mib") for r in rs if r.get("peak_rss_mib") is not None]
            nvalid = sum(1 for r in rs if r.get("valid"))
            wall = fmt(float(np.median(walls)) if walls else None, ".3f")
            rs_mib = fmt(float(np.median(rss)) if rss else None, ".0f")
            if mode == "malloc":
                sp = [
                    r.get("speedup") for r in rs if r.get("valid") and r.get("speedup") is not None
                ]
                optimal = sum(
                    1
                    for r in rs
                    if (r.get("final_gap") is not None and r["final_gap"] <= 1e-6)
                    or r.get("proved_optimal")
                )
                L.append(
                    f"| {t[0]} | {t[1]} | `{s}` | {len(rs)} | {nvalid} |"
                    f" {fmt(min(objs) if objs else None, '.3f', 1e6)} |"
                    f" {fmt(float(np.median(objs)) if objs else None, '.3f', 1e6)} |"
                    f" {fmt(float(np.median(sp)) if sp else None, '.4f', suffix='x')} |"
                    f" {pct(float(np.median(gaps)) if gaps else None)} |"
                    f" {pct(min(gaps) if gaps else None)} | {optimal}/{len(rs)} |"
                    f" {wall} | {rs_mib} |"
                )
            else:
                solved = sum(1 for r in rs if r.get("solved"))
                placed = [
                    r.get("placed_buffers") for r in rs if r.get("placed_buffers") is not None
                ]
                placed_s = f"{int(np.median(placed))}/{rs[0].get('num_buffers')}" if placed else "-"
                L.append(
                    f"| {t[0]} | {t[1]} | `{s}` | {len(rs)} | {nvalid} | {solved}/{len(rs)} | "
                    f"{placed_s} | {fmt(min(objs) if objs else None, '.0f')} |"
                    f" {fmt(float(np.median(objs)) if objs else None, '.0f')} | "
                    f"{pct(min(gaps) if gaps else None)} | {wall} | {rs_mib} |"
                )

    if pics:
        L.append("\n## Pictures\n")
        for name, p in pics.items():
            rel = Path(p).relative_to(out)
            L.append(f"- {name}: ![{name}]({rel.as_posix()})")
    L.append("\nColumns, bounds and statistics are defined in `docs/bench.md`.")
    return "\n".join(L) + "\n"


def aggregate_lines(
    runs: list[dict[str, Any]], tasks: list[Task], solvers: list[str], mode: str, reps: int
) -> list[str]:
    """The aggregate table (one row per solver over all tasks) as markdown lines."""
    L: list[str] = []
    ref = "msa" if "msa" in solvers else solvers[0]
    L.append(
        "Score: "
        + (
            "share of the attainable saving, `(T_slow - T) / (T_slow - best bound)`"
            if mode == "malloc"
            else "`best bound / peak` when every buffer fits within the capacity, else 0"
        )
        + ". IQM = interquartile mean over all runs (seeds x tasks); 95% stratified-bootstrap CIs "
        f"({reps} resamples of seeds within tasks). P(> {ref}): probability that a run of the "
        f"solver scores higher than a run of `{ref}` on the same task (ties count half), "
        "averaged over the tasks both ran.\n"
    )
    head = (
        "| solver | runs | valid |"
        + (" solved |" if mode == "pack" else "")
        + " IQM score [95% CI] | median gap to best bound | optimal (gap 0) | time limit s | "
        "median wall s | median peak RSS MiB (growth) | P(> " + ref + ") [95% CI] |"
    )
    L.append(head)
    L.append("|" + "---|" * (head.count("|") - 1))
    for s in solvers:
        rs = [r for r in runs if r["solver"] == s]
        s_tasks = tasks_of(rs)
        sc = per_task(rs, s, "score", s_tasks)
        est = stats.stratified_bootstrap_ci(sc, reps=reps, seed=1) if sc else None
        gaps = [r["final_gap"] for r in rs if r.get("final_gap") is not None]
        opt = sum(1 for g in gaps if g <= 1e-6)
        walls = [r.get("wall_s") for r in rs if r.get("wall_s") is not None]
        rss = [r.get("peak_rss_mib") for r in rs if r.get("peak_rss_mib") is not None]
        growth = [r.get("rss_growth_mib") for r in rs if r.get("rss_growth_mib") is not None]
        common = [
            t
            for t in tasks
            if t in s_tasks
            and any(r["solver"] == ref and (r["instance"], r["capacity"]) == t for r in runs)
        ]
        poi = "-"
        if s != ref and common:
            x = per_task(runs, s, "score", common)
            y = per_task(runs, ref, "score", common)
            if x and y:
                poi = stats.probability_of_improvement_ci(x, y, reps=reps, seed=2).fmt(digits=2)
        row = f"| `{s}` | {len(rs)} | {sum(1 for r in rs if r.get('valid'))} |"
        if mode == "pack":
            row += f" {sum(1 for r in rs if r.get('solved'))} |"
        limits = sorted({r.get("time_limit_s") for r in rs if r.get("time_limit_s") is not None})
        row += (
            f" {est.fmt() if est else '-'} | {pct(float(np.median(gaps))) if gaps else '-'} |"
            f" {opt}/{len(rs)} |"
            f" {', '.join(f'{x:g}' for x in limits) or '-'} |"
            f" {fmt(float(np.median(walls)) if walls else None, '.3f')} |"
            f" {fmt(float(np.median(rss)) if rss else None, '.0f')} "
            f"({fmt(float(np.median(growth)) if growth else None, '.1f')}) | {poi} |"
        )
        L.append(row)

    return L


def readme_section(out: str | Path, reps: int = 2000) -> str:
    """A short markdown section (what was run, where, and the aggregate table) generated from
    the bench folder ``out``, for a project README; ``results.md`` keeps the full tables."""
    out = Path(out)
    runs = read_jsonl(out / "runs.jsonl")
    if not runs:
        raise InputError(f"no finished runs in {out / 'runs.jsonl'}", field="out")
    bounds = read_jsonl(out / "bounds.jsonl")
    cfg: dict[str, Any] = {}
    if (out / "config.json").exists():
        try:
            cfg = json.loads((out / "config.json").read_text())
        except json.JSONDecodeError as e:
            raise InputError(f"config.json is not JSON: {e}", out / "config.json") from None
    mode = cfg.get("mode") or runs[0]["mode"]
    enrich(runs, bounds, mode)
    tasks = tasks_of(runs)
    solvers = solver_order(runs)
    inv = cfg.get("invocations", [])
    title = "time objective (fast/slow memory mapping)" if mode == "malloc" else "fit-all packing"
    L = [f"#### `bench {mode}`: {title}\n"]
    if inv:
        h = inv[-1].get("host", {})
        cmds = list(dict.fromkeys(i.get("command") or "(API)" for i in inv))  # resumed reruns once
        L.append(
            f"Generated from the bench run started {inv[0].get('started')} on {h.get('cpus')} CPUs "
            f"({h.get('cpu_model') or '?'}), {len(runs)} runs on {len(tasks)} tasks (instance x "
            "capacity), by:\n"
        )
        L.append("```")
        L.extend(cmds)
        L.append(f"mallocgame bench {mode} --out {out.as_posix()} --report-only --readme")
        L.append("```\n")
    L.extend(aggregate_lines(runs, tasks, solvers, mode, reps))
    L.append(
        f"\nPer-task tables, bounds and pictures: `{(out / 'results.md').as_posix()}` after "
        "running the commands."
    )
    return "\n".join(L) + "\n"
