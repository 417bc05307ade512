"""The agent on the held-out split and on minimalloc's challenging suite (a script, not a test).

Held-out measurement: every held-out workload (``mallocgame.memory.splits.HELDOUT``; ``--split
heldout-large``: ``HELDOUT_LARGE``, 800-1900 buffers) at 10%, 25% and 50% of its peak live bytes
on ``tpuv4i``, for each seed:

- ``agent``: ``mallocgame.memory.solvers.agent.agent_solve`` with ``--budget`` seconds (the agent's
  batched-search games, then the exact local search it guides; setup = load + compile is done
  once per process and not counted);
- ``restarts``: the equal-time search baseline, given the agent's actual wall-clock (at least
  the budget);
- ``msa``: XLA's heuristic (deterministic);
- ``msa-skip``: msa with the lowest-density buffers left slow (deterministic; a stronger
  heuristic bar, ``mallocgame.memory.solvers``);
- ``local-search`` (with ``--ablation``): the agent's local search alone from the heuristics'
  lines (``msa``'s and ``msa-skip``'s),
  no agent games and no policy ordering its moves, given the agent's wall-clock as well --
  what the agent itself adds to ``agent``.

Scores per (workload, capacity) task and seed: the speed-up of the agent under the cost model
over ``msa`` (``msa time / agent time``) and over ``restarts``, and the same for ``agent_raw``
(the agent's own games, no heuristic, no local search). Reported as the interquartile mean
over all runs with a 95% stratified-bootstrap interval (``mallocgame.bench.stats``, resampling
the seeds within each task).

fit-all: every file of ``minimalloc-challenging`` (capacity in the file name) played by the
same agent and search with objective ``fit-all``; solved or not, and the wall time.

    .venv/bin/python benchmarks/bench_agent.py --seeds 5 --budget 5 --out runs/bench-agent
    .venv/bin/python benchmarks/bench_agent.py --fit-all-only --fit-all-budget 60
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mallocgame import api  # noqa: E402
from mallocgame.io import datasets_dir  # noqa: E402
from mallocgame.memory import solvers, splits  # noqa: E402
from mallocgame.memory.solvers.agent import agent_solve  # noqa: E402
from mallocgame.memory.solvers.policy import load_agent  # noqa: E402


def iqm_ci(tasks: list[np.ndarray], seed: int = 0) -> tuple[float, float, float]:
    try:
        from mallocgame.bench.stats import stratified_bootstrap_ci

        e = stratified_bootstrap_ci(tasks, reps=2000, seed=seed)
        return e.value, e.lo, e.hi
    except ImportError:  # the stats module is not there: the same in numpy
        from scipy.stats import trim_mean

        rng = np.random.default_rng(seed)
        pooled = np.concatenate(tasks)
        reps = [
            trim_mean(np.concatenate([t[rng.integers(0, t.size, t.size)] for t in tasks]), 0.25)
            for _ in range(2000)
        ]
        lo, hi = np.quantile(reps, [0.025, 0.975])
        return float(trim_mean(pooled, 0.25)), float(lo), float(hi)


def heldout(args, agent, log) -> dict:
    caps = [c.strip() for c in args.capacities.split(",")]
    items = splits.load_split(args.split, max_buffers=args.max_buffers)
    if args.workloads:
        keep = set(args.workloads.split(","))
        items = [(s, w) for s, w in items if s.title in keep or s.program in keep]
    rows = []
    for spec, wl in items:
        for _, cap, p in splits.make_problems([wl], caps, args.target):
            msa = solvers.solve(p, "msa")
            skip = solvers.solve(p, "msa-skip")
            for seed in range(args.seeds):
                t0 = time.perf_counter()
                off, extra = agent_solve(
                    p, budget=args.budget, seed=seed, copies=args.copies, agent=agent
                )
                wall = time.perf_counter() - t0 - extra["setup_s"]
                from mallocgame.memory.problem import Solution

                sol = Solution(p, "agent", off, wall, extra)
                rs = solvers.solve(p, "restarts", seed=seed, time_limit=max(args.budget, wall))
                ls = (
                    solvers.solve(p, "local-search", seed=seed, time_limit=max(args.budget, wall))
                    if args.ablation
                    else None
                )
                raw_t = p.all_slow_time * (1 - extra["agent_raw"])
                row = {
                    "workload": spec.title,
                    "buffers": wl.num_buffers,
                    "capacity": cap,
                    "seed": seed,
                    "msa_time": msa.time_s,
                    "msa_skip_time": skip.time_s,
                    "agent_time": sol.time_s,
                    "agent_raw_time": raw_t,
                    "restarts_time": rs.time_s,
                    "agent_wall": wall,
                    "restarts_wall": rs.wall_s,
                    "agent_valid": sol.check().valid,
                    "best_source": extra["best_source"],
                    "restarts_tries": rs.extra.get("restarts"),
                    "evaluations": extra["improve_evaluations"],
                    "all_slow_time": p.all_slow_time,
                    # the split of the budget (agent solvers that report it)
                    "agent_s": extra.get("split", {}).get("agent_s", extra.get("agent_wall_s")),
                    "improve_s": extra.get("split", {}).get("improve_s"),
                    "agent_games": extra.get("agent_games"),
                }
                if ls is not None:
                    row["local_time"] = ls.time_s
                rows.append(row)
                vs_ls = "" if ls is None else f"vs local-search {ls.time_s / sol.time_s:.4f}x "
                log(
                    f"{spec.title:38s} {cap:>4} s{seed} vs msa {msa.time_s / sol.time_s:.4f}x "
                    f"vs restarts {rs.time_s / sol.time_s:.4f}x "
                    f"{vs_ls}raw/msa {msa.time_s / raw_t:.4f}x "
                    f"raw/msa-skip {skip.time_s / raw_t:.4f}x "
                    f"({extra['best_source']}, agent {wall:.1f}s restarts {rs.wall_s:.1f}s)"
                )
    return summarise(rows, caps)


def summarise(rows: list[dict], caps: list[str]) -> dict:
    out = {"rows": rows, "summary": {}}
    groups = {"all": caps, **{c: [c] for c in caps}}
    for gname, gcaps in groups.items():
        sel = [r for r in rows if r["capacity"] in gcaps]
        tasks: dict[tuple, list[dict]] = {}
        for r in sel:
            tasks.setdefault((r["workload"], r["capacity"]), []).append(r)
        res = {}
        for name, num, den in (
            ("agent_vs_msa", "msa_time", "agent_time"),
            ("agent_vs_restarts", "restarts_time", "agent_time"),
            ("agent_raw_vs_msa", "msa_time", "agent_raw_time"),
            ("restarts_vs_msa", "msa_time", "restarts_time"),
            ("agent_vs_local_search", "local_time", "agent_time"),
            ("agent_vs_msa_skip", "msa_skip_time", "agent_time"),
            ("agent_raw_vs_msa_skip", "msa_skip_time", "agent_raw_time"),
            ("msa_skip_vs_msa", "msa_time", "msa_skip_time"),
        ):
            t = [np.array([x[num] / x[den] for x in v]) for v in tasks.values() if num in v[0]]
            if t:
                v, lo, hi = iqm_ci(t)
                wins = float(np.mean(np.concatenate(t) > 1 + 1e-9))
                losses = float(np.mean(np.concatenate(t) < 1 - 1e-9))
                res[name] = {"iqm": v, "ci95": [lo, hi], "win_rate": wins, "loss_rate": losses}
        res["tasks"] = len(tasks)
        res["runs"] = len(sel)
        out["summary"][gname] = res
    return out


def fit_all(args, agent, log) -> dict:
    folder = datasets_dir() / "minimalloc-challenging"
    files = sorted(folder.glob("*.csv"))
    rows = []
    for f in files:
        wl = api.load_workload(f)
        cap = api.capacity_from_name(f)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p = api.make_problem(wl, cap, args.target, objective="fit-all", alignment=1)
        msa = solvers.solve(p, "msa")
        t0 = time.perf_counter()
        off, extra = agent_solve(
            p, budget=args.fit_all_budget, seed=0, copies=args.copies, agent=agent
        )
        wall = time.perf_counter() - t0 - extra["setup_s"]
        from mallocgame.memory.problem import Solution

        sol = Solution(p, "agent", off, wall, extra)
        s = sol.summary()
        row = {
            "file": f.name,
            "buffers": wl.num_buffers,
            "capacity": cap,
            "solved": bool(s["solved"]),
            "valid": s["valid"],
            "placed": s["placed_buffers"],
            "wall_s": wall,
            "agent_raw_solved": extra.get("agent_raw_solved"),
            "agent_raw_placed": extra.get("agent_raw_placed"),
            "msa_solved": bool(msa.summary()["solved"]),
            "msa_placed": int((msa.offsets >= 0).sum()),
            "best_source": extra["best_source"],
            "pack_status": (extra.get("pack_search") or {}).get("search_status"),
            "pack_heuristic": (extra.get("pack_search") or {}).get("heuristic"),
            "pack_wall_s": (extra.get("pack_search") or {}).get("search_wall_s"),
            "agent_s": extra["split"]["agent_s"],
        }
        rows.append(row)
        log(
            f"{f.name:18s} {wl.num_buffers:4d} buffers: "
            f"{'SOLVED' if row['solved'] else 'not solved'} "
            f"({row['placed']} placed) in {wall:.1f}s "
            f"(agent games {row['agent_s']:.1f}s, packing search "
            f"{row['pack_status']} in {row['pack_wall_s'] or 0:.2f}s, "
            f"order {row['pack_heuristic']}); "
            f"agent alone {row['agent_raw_placed']} placed; "
            f"msa {'solved' if row['msa_solved'] else 'not solved'} ({row['msa_placed']} placed)"
        )
    return {
        "rows": rows,
        "solved": sum(r["solved"] for r in rows),
        "files": len(rows),
        "budget_s": args.fit_all_budget,
    }


def markdown(res: dict, args) -> str:
    lines = []
    if "heldout" in res:
        lines += [
            "| capacity | agent vs msa (IQM [95% CI]) | agent vs restarts | agent_raw vs msa "
            "| restarts vs msa | agent vs local-search | msa-skip vs msa | agent vs msa-skip "
            "| agent_raw vs msa-skip | runs |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for g, r in res["heldout"]["summary"].items():

            def f(k, r=r):
                e = r.get(k)
                return (
                    "-"
                    if e is None
                    else f"{e['iqm']:.4f}x [{e['ci95'][0]:.4f}, {e['ci95'][1]:.4f}] "
                    f"(wins {100 * e['win_rate']:.0f}%, losses {100 * e['loss_rate']:.0f}%)"
                )

            lines.append(
                f"| {g} | {f('agent_vs_msa')} | {f('agent_vs_restarts')} "
                f"| {f('agent_raw_vs_msa')} | {f('restarts_vs_msa')} "
                f"| {f('agent_vs_local_search')} | {f('msa_skip_vs_msa')} "
                f"| {f('agent_vs_msa_skip')} | {f('agent_raw_vs_msa_skip')} | {r['runs']} |"
            )
    if "fit_all" in res:
        fa = res["fit_all"]
        lines += [
            "",
            f"fit-all on minimalloc-challenging: {fa['solved']} of {fa['files']} solved "
            f"(budget {fa['budget_s']} s each)",
            "",
            "| file | buffers | solved | placed | wall (s) | agent games (s) "
            "| packing search (s, order that finished) | agent alone placed | msa |",
            "|---|---:|---|---:|---:|---:|---|---:|---|",
        ]
        for r in fa["rows"]:
            ps = (
                "-"
                if r.get("pack_status") is None
                else f"{r['pack_status']} {r['pack_wall_s']:.2f} ({r['pack_heuristic']})"
            )
            lines.append(
                f"| {r['file']} | {r['buffers']} | {'yes' if r['solved'] else 'no'} "
                f"| {r['placed']} | {r['wall_s']:.1f} | "
                f"{r['agent_s']:.1f} | {ps} | {r['agent_raw_placed']} "
                f"| {'solved' if r['msa_solved'] else 'not solved'} ({r['msa_placed']}) |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--policy", default=None)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--capacities", default="10%,25%,50%")
    ap.add_argument("--target", default="tpuv4i")
    ap.add_argument("--max-buffers", type=int, default=None)
    ap.add_argument(
        "--split",
        default="heldout",
        choices=["heldout", "heldout-large"],
        help="held-out workloads to measure on (heldout-large: 800-1900 buffers)",
    )
    ap.add_argument(
        "--workloads", default=None, help="comma-separated held-out workload titles or programs"
    )
    ap.add_argument("--fit-all-budget", type=float, default=30.0)
    ap.add_argument("--no-fit-all", action="store_true")
    ap.add_argument(
        "--ablation",
        action="store_true",
        help="also run the local search without the agent (solver local-search) "
        "at equal wall-clock",
    )
    ap.add_argument("--fit-all-only", action="store_true")
    ap.add_argument("--out", default="runs/bench-agent")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def log(msg: str) -> None:
        print(msg, flush=True)

    agent = load_agent(args.policy)
    agent.warmup(args.copies)
    res: dict = {
        "args": vars(args),
        "policy": str(agent.path),
        "machine": f"{platform.machine()} {platform.node()}",
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    if not args.fit_all_only:
        res["heldout"] = heldout(args, agent, log)
    if not args.no_fit_all:
        res["fit_all"] = fit_all(args, agent, log)
    (out / "results.json").write_text(json.dumps(res, indent=2, default=float) + "\n")
    md = markdown(res, args)
    (out / "results.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
