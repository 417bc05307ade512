"""The memory game's subcommands of the ``mallocgame`` CLI: ``extract``, ``solve``, ``compare``,
``show``, ``validate`` and ``list``.

``add_parsers(subparsers)`` registers them (called by :func:`mallocgame.cli.main.build_parser`).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.cli.common import (
    add_problem_args,
    err,
    fmt_bytes,
    problem_from_args,
    progress,
    warn,
)
from mallocgame.errors import InputError, MallocGameError
from mallocgame.memory import cost, emit, solvers, sources, targets
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.order import msa_order, size_order
from mallocgame.memory.problem import Problem
from mallocgame.memory.show import draw_memory_map
from mallocgame.memory.validate import validate


# --------------------------------------------------------------------------- parsers
def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "extract", help="compile a zoo program (or read an XLA dump folder) into a workload file"
    )
    p.add_argument(
        "source",
        help="zoo entry (see `mallocgame list zoo`), zoo:NAME, or an XLA dump folder "
        "(--xla_dump_to)",
    )
    p.add_argument("--out", help="output workload file (default NAME.workload.json.gz)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_extract)

    p = sub.add_parser("solve", help="solve one workload with one solver; write the mapping")
    add_problem_args(p, capacity_default=None)
    p.add_argument(
        "--solver",
        default="msa",
        help="msa, msa-skip, greedy-size, random, all-slow, restarts "
        "(see `mallocgame list solvers`)",
    )
    p.add_argument(
        "--time-limit", type=float, default=None, help="seconds, for search solvers (restarts)"
    )
    p.add_argument(
        "--out",
        help="mapping CSV (id,lower,upper,size,offset); OUT.json and OUT.msa_overrides.txtpb "
        "are written beside it",
    )
    p.set_defaults(fn=cmd_solve)

    p = sub.add_parser("compare", help="several solvers on one workload, side by side")
    add_problem_args(p, capacity_default=None)
    p.add_argument("--solvers", default="all-slow,random,greedy-size,msa")
    p.add_argument("--time-limit", type=float, default=None)
    p.set_defaults(fn=cmd_compare)

    p = sub.add_parser("show", help="draw a mapping as rectangles in time x address")
    p.add_argument("mapping", help="mapping CSV written by `mallocgame solve --out`")
    p.add_argument("--out", required=True, help="picture file (PNG, SVG, PDF)")
    p.add_argument(
        "--capacity",
        type=int,
        default=None,
        help="bytes (default: from the summary JSON beside the mapping)",
    )
    p.add_argument(
        "--workload",
        default=None,
        help="the workload, to colour buffers by benefit (default: the summary's input)",
    )
    p.set_defaults(fn=cmd_show)

    p = sub.add_parser("validate", help="check a mapping CSV independently of the solvers")
    p.add_argument("mapping")
    p.add_argument("--capacity", type=int, required=True)
    p.add_argument("--alignment", type=int, default=1)
    p.add_argument("--fit-all", action="store_true", help="every buffer must be in fast memory")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_validate)

    p = sub.add_parser("list", help="list solvers, targets or zoo programs")
    p.add_argument("what", choices=["solvers", "targets", "zoo"])
    p.set_defaults(fn=cmd_list)


# --------------------------------------------------------------------------- extract
def cmd_extract(args: argparse.Namespace) -> int:
    src = args.source
    if not src.startswith("zoo:") and not Path(src).exists():
        from workloads import zoo  # deferred: imports JAX and haiku

        if src in zoo.ENTRIES:
            src = "zoo:" + src
    with progress(f"compiling and reading {src}", quiet=args.json):
        t0 = time.perf_counter()
        wl = sources.load_workload(src)
        wall = time.perf_counter() - t0
    out = Path(args.out) if args.out else Path(f"{wl.name}.workload.json.gz")
    wl.save(out)
    info = {
        "workload": wl.name,
        "out": str(out),
        "num_buffers": wl.num_buffers,
        "num_instructions": wl.num_instructions,
        "peak_live_bytes": wl.peak_live_bytes(),
        "total_flops": float(wl.instr_flops.sum()),
        "source": wl.source,
        "wall_s": wall,
    }
    if args.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        print(
            f"{wl.name}: {wl.num_buffers} buffers, {wl.num_instructions} instructions, "
            f"peak live {fmt_bytes(info['peak_live_bytes'])}, {info['total_flops']:.3g} FLOPs "
            f"-> {out}"
        )
    return 0


# --------------------------------------------------------------------------- solve
def cmd_solve(args: argparse.Namespace) -> int:
    problem = problem_from_args(args)
    with progress(f"solving with {args.solver}", quiet=args.json):
        solution = solvers.solve(problem, args.solver, seed=args.seed, time_limit=args.time_limit)
    summary = solution.summary()
    summary["input"] = str(args.input)
    order = _presentation_order(problem, args.solver)
    paths = emit.write_outputs(solution, args.out, summary, order=order) if args.out else {}
    summary["outputs"] = paths
    if args.json:
        print(emit.dumps(summary))
    else:
        _print_summary(summary)
    if not summary["valid"]:
        err("the mapping is invalid: " + "; ".join(summary["problems"][:3]))
        return 1
    return 0


def _presentation_order(problem: Problem, solver: str) -> np.ndarray | None:
    """The order the named heuristic presented the buffers in (for the overrides file), if it
    has one."""
    if solver in ("msa", "msa-skip"):
        return msa_order(problem)
    if solver == "greedy-size":
        return size_order(problem)
    return None


def _print_summary(s: dict[str, Any]) -> None:
    print(
        f"workload  {s['workload']}  ({s['num_buffers']} buffers, "
        f"peak live {fmt_bytes(s['peak_live_bytes'])})"
    )
    print(
        f"target    {s['target']}  capacity {fmt_bytes(s['capacity'])}  objective {s['objective']}"
    )
    print(f"solver    {s['solver']}  ({s['wall_s']:.3f} s)")
    print(f"placed    {s['placed_buffers']} buffers, {fmt_bytes(s['placed_bytes'])} in fast memory")
    print(
        f"time      {s['time_s'] * 1e6:.3f} us  (all slow {s['all_slow_time_s'] * 1e6:.3f} us, "
        f"unlimited fast {s['lower_bound_time_s'] * 1e6:.3f} us)"
    )
    print(
        f"speed-up  {s['speedup_vs_all_slow']:.4f}x vs all-slow; "
        f"{100 * s['gap_to_lower_bound']:.2f}% above the lower bound"
    )
    if "solved" in s:
        print(f"fit-all   {'solved' if s['solved'] else 'NOT solved'}")
    if s.get("method") and s.get("height") is not None:
        gap = s.get("gap_to_max_load")
        line = f"packing   height {fmt_bytes(s['height'])}"
        if gap is not None:
            line += f", {100 * gap:.2f}% above the max load {fmt_bytes(s['peak_live'])}"
        line += f"; {s['method']}" + (f" ({s['heuristic']})" if s.get("heuristic") else "")
        if s.get("fallback_reason"):
            line += f", because {s['fallback_reason']}"
        print(line)
    print(f"valid     {'yes' if s['valid'] else 'NO: ' + '; '.join(s['problems'][:3])}")
    for k, v in s.get("outputs", {}).items():
        print(f"wrote     {k}: {v}")


# --------------------------------------------------------------------------- compare
def cmd_compare(args: argparse.Namespace) -> int:
    """Every named solver on one problem, side by side (what `make run` prints)."""
    problem = problem_from_args(args)
    rows = []
    for name in args.solvers.split(","):
        with progress(f"solving with {name}", quiet=args.json):
            sol = solvers.solve(problem, name.strip(), seed=args.seed, time_limit=args.time_limit)
        rows.append(sol.summary())
    if args.json:
        print(emit.dumps({"results": rows}))
        return 0 if all(r["valid"] for r in rows) else 1
    w = problem.workload
    print(
        f"{w.name}: {w.num_buffers} buffers, {w.num_instructions} instructions, peak live "
        f"{fmt_bytes(w.peak_live_bytes())}; target {problem.target.name}, fast capacity "
        f"{fmt_bytes(problem.capacity)} ({args.capacity})"
    )
    print(
        f"all slow {problem.all_slow_time * 1e6:.3f} us; "
        f"unlimited fast memory {problem.lower_bound_time * 1e6:.3f} us"
    )
    header = (
        f"{'solver':<12} {'time (us)':>12} {'speed-up':>9} {'gap to LB':>10} "
        f"{'fast bytes':>12} {'valid':>6} {'wall (s)':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['solver']:<12} {r['time_s'] * 1e6:>12.3f} {r['speedup_vs_all_slow']:>8.4f}x "
            f"{100 * r['gap_to_lower_bound']:>9.2f}% {fmt_bytes(r['placed_bytes']):>12} "
            f"{'yes' if r['valid'] else 'NO':>6} {r['wall_s']:>9.3f}"
        )
    return 0 if all(r["valid"] for r in rows) else 1


# --------------------------------------------------------------------------- show
def cmd_show(args: argparse.Namespace) -> int:
    wl, offsets = read_csv(args.mapping)
    if offsets is None:
        raise InputError(
            "no 'offset' column: give a mapping written by `mallocgame solve --out`",
            args.mapping,
            line=1,
        )
    summary_path = Path(args.mapping).with_suffix(".json")
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    capacity = (
        args.capacity
        or summary.get("capacity")
        or int(np.max(np.where(offsets >= 0, offsets + wl.sizes, 0)))
    )
    capacity = int(capacity)
    benefit = None
    source = args.workload or summary.get("input")
    target = summary.get("target", "tpuv4i")
    if source:
        try:
            full = sources.load_workload(source)
            if full.num_buffers == wl.num_buffers and np.array_equal(full.ids, wl.ids):
                benefit = cost.solo_benefit(full, targets.load_target(target)) / full.sizes
        except MallocGameError as e:
            warn(f"cannot colour by benefit ({e})")
    if benefit is None:
        benefit = cost.solo_benefit(wl, targets.load_target(target)) / wl.sizes
    title = (
        f"{summary.get('workload', wl.name)}: {summary.get('solver', '')} — "
        f"{int((offsets >= 0).sum())} of {len(offsets)} buffers in fast memory"
    )
    draw_memory_map(
        wl.starts, wl.ends, wl.sizes, offsets, capacity, args.out, benefit=benefit, title=title
    )
    print(f"wrote {args.out}")
    return 0


# --------------------------------------------------------------------------- validate
def cmd_validate(args: argparse.Namespace) -> int:
    wl, offsets = read_csv(args.mapping)
    if offsets is None:
        raise InputError("no 'offset' column to validate", args.mapping, line=1)
    report = validate(
        wl.ids,
        wl.sizes,
        wl.starts,
        wl.ends,
        offsets,
        args.capacity,
        args.alignment,
        require_all_fast=args.fit_all,
    )
    if args.json:
        print(json.dumps({"valid": report.valid, "problems": report.problems}))
    else:
        print("valid" if report.valid else "INVALID:\n  " + "\n  ".join(report.problems))
    return 0 if report.valid else 1


# --------------------------------------------------------------------------- list
def cmd_list(args: argparse.Namespace) -> int:
    what = args.what
    if what == "solvers":
        items = solvers.list_solvers()
    elif what == "targets":
        items = targets.list_presets()
    else:
        from workloads import zoo  # deferred: imports JAX and haiku

        items = [f"{k}: {v}" for k, v in zoo.list_zoo()]
    print("\n".join(items))
    return 0
