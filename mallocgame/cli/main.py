"""The ``mallocgame`` command line: one command, a subcommand per job, ``--help`` on each.

Exit codes: 0 success; 1 the result is invalid or a check failed; 2 bad input or usage.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mallocgame.errors import InputError, MallocGameError

DEFAULT_WORKLOAD = "zoo:mlp_train"


# --------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def progress(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner on stderr while something takes seconds (silent when not a terminal)."""
    if quiet or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(message):
        yield


def _err(msg: str) -> None:
    print(f"mallocgame: error: {msg}", file=sys.stderr)


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def _add_problem_args(p: argparse.ArgumentParser, capacity_default: str | None = "25%") -> None:
    p.add_argument(
        "input",
        help="workload file (*.workload.json[.gz]), minimalloc CSV, XLA dump folder, or zoo:NAME",
    )
    p.add_argument(
        "--capacity",
        default=capacity_default,
        help="fast-memory capacity: bytes (1048576, 4MiB) or a percentage of peak live bytes (25%%); "
        "default: the number in a minimalloc file name (A.1048576.csv), else 25%%",
    )
    p.add_argument(
        "--target",
        default="tpuv4i",
        help="target preset (see `mallocgame list targets`) or target JSON file",
    )
    p.add_argument(
        "--objective",
        default="time",
        choices=["time", "fit-all"],
        help="minimise time, or place every buffer (default: time)",
    )
    p.add_argument(
        "--alignment", type=int, default=None, help="override the target's alignment in bytes"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _problem_from_args(args: argparse.Namespace):
    from mallocgame.memory import sources as api

    with progress(f"loading {args.input}", quiet=args.json):
        wl = api.load_workload(args.input)
    capacity = args.capacity
    if capacity is None:
        from_name = api.capacity_from_name(args.input)
        capacity = from_name if from_name is not None else "25%"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = api.make_problem(wl, capacity, args.target, args.objective, args.alignment)
    for w in caught:
        print(f"mallocgame: warning: {w.message}", file=sys.stderr)
    return problem


# --------------------------------------------------------------------------- subcommands
def cmd_extract(args: argparse.Namespace) -> int:
    from mallocgame.memory import sources as api

    src = args.source
    if not src.startswith("zoo:") and not Path(src).exists():
        from workloads import zoo

        if src in zoo.ZOO:
            src = "zoo:" + src
    with progress(f"compiling and reading {src}", quiet=args.json):
        t0 = time.perf_counter()
        wl = api.load_workload(src)
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
            f"peak live {_fmt_bytes(info['peak_live_bytes'])}, {info['total_flops']:.3g} FLOPs -> {out}"
        )
    return 0


def cmd_solve(args: argparse.Namespace) -> int:
    from mallocgame.memory import emit, solvers

    problem = _problem_from_args(args)
    with progress(f"solving with {args.solver}", quiet=args.json):
        solution = solvers.solve(problem, args.solver, seed=args.seed, time_limit=args.time_limit)
    summary = solution.summary()
    summary["input"] = str(args.input)
    order = solutions_order(problem, args.solver)
    paths = emit.write_outputs(solution, args.out, summary, order=order) if args.out else {}
    summary["outputs"] = paths
    if args.json:
        print(emit.dumps(summary))
    else:
        _print_summary(summary)
    if not summary["valid"]:
        _err("the mapping is invalid: " + "; ".join(summary["problems"][:3]))
        return 1
    return 0


def solutions_order(problem, solver: str) -> np.ndarray | None:
    from mallocgame.memory import solvers

    if solver in ("msa", "msa-skip"):
        return solvers.msa_order(problem)
    if solver == "greedy-size":
        return solvers.size_order(problem)
    return None


def _print_summary(s: dict) -> None:
    print(
        f"workload  {s['workload']}  ({s['num_buffers']} buffers, peak live {_fmt_bytes(s['peak_live_bytes'])})"
    )
    print(
        f"target    {s['target']}  capacity {_fmt_bytes(s['capacity'])}  objective {s['objective']}"
    )
    print(f"solver    {s['solver']}  ({s['wall_s']:.3f} s)")
    print(
        f"placed    {s['placed_buffers']} buffers, {_fmt_bytes(s['placed_bytes'])} in fast memory"
    )
    print(
        f"time      {s['time_s'] * 1e6:.3f} us  (all slow {s['all_slow_time_s'] * 1e6:.3f} us, "
        f"unlimited fast {s['lower_bound_time_s'] * 1e6:.3f} us)"
    )
    print(
        f"speed-up  {s['speedup_vs_all_slow']:.4f}x vs all-slow; {100 * s['gap_to_lower_bound']:.2f}% above the lower bound"
    )
    if "solved" in s:
        print(f"fit-all   {'solved' if s['solved'] else 'NOT solved'}")
    print(f"valid     {'yes' if s['valid'] else 'NO: ' + '; '.join(s['problems'][:3])}")
    for k, v in s.get("outputs", {}).items():
        print(f"wrote     {k}: {v}")


def cmd_compare(args: argparse.Namespace) -> int:
    """Every named solver on one problem, side by side (what `make run` prints)."""
    from mallocgame.memory import emit, solvers

    problem = _problem_from_args(args)
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
        f"{_fmt_bytes(w.peak_live_bytes())}; target {problem.target.name}, fast capacity "
        f"{_fmt_bytes(problem.capacity)} ({args.capacity})"
    )
    print(
        f"all slow {problem.all_slow_time * 1e6:.3f} us; unlimited fast memory {problem.lower_bound_time * 1e6:.3f} us"
    )
    header = f"{'solver':<12} {'time (us)':>12} {'speed-up':>9} {'gap to LB':>10} {'fast bytes':>12} {'valid':>6} {'wall (s)':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['solver']:<12} {r['time_s'] * 1e6:>12.3f} {r['speedup_vs_all_slow']:>8.4f}x "
            f"{100 * r['gap_to_lower_bound']:>9.2f}% {_fmt_bytes(r['placed_bytes']):>12} "
            f"{'yes' if r['valid'] else 'NO':>6} {r['wall_s']:>9.3f}"
        )
    return 0 if all(r["valid"] for r in rows) else 1


def cmd_show(args: argparse.Namespace) -> int:
    from mallocgame.memory import cost
    from mallocgame.memory import sources as api
    from mallocgame.memory.csvio import read_csv
    from mallocgame.memory.show import draw_memory_map

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
            full = api.load_workload(source)
            if full.num_buffers == wl.num_buffers and np.array_equal(full.ids, wl.ids):
                benefit = cost.solo_benefit(full, api.load_target(target)) / full.sizes
        except MallocGameError as e:
            print(f"mallocgame: warning: cannot colour by benefit ({e})", file=sys.stderr)
    if benefit is None:
        benefit = cost.solo_benefit(wl, api.load_target(target)) / wl.sizes
    title = f"{summary.get('workload', wl.name)}: {summary.get('solver', '')} — {int((offsets >= 0).sum())} of {len(offsets)} buffers in fast memory"
    draw_memory_map(
        wl.starts, wl.ends, wl.sizes, offsets, capacity, args.out, benefit=benefit, title=title
    )
    print(f"wrote {args.out}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from mallocgame.memory.csvio import read_csv
    from mallocgame.memory.validate import validate

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


def cmd_list(args: argparse.Namespace) -> int:
    from mallocgame.memory import solvers, targets

    what = args.what
    if what == "solvers":
        items = solvers.list_solvers()
    elif what == "targets":
        items = targets.list_presets()
    else:
        from workloads import zoo

        items = [f"{k}: {v[1]}" for k, v in zoo.ZOO.items()]
    print("\n".join(items))
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mallocgame",
        description="Memory mapping of compiled ML programs as a game: extract workloads from XLA, solve, check, draw.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "extract", help="compile a zoo program (or read an XLA dump folder) into a workload file"
    )
    p.add_argument(
        "source",
        help="zoo entry (see `mallocgame list zoo`), zoo:NAME, or an XLA dump folder (--xla_dump_to)",
    )
    p.add_argument("--out", help="output workload file (default NAME.workload.json.gz)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(fn=cmd_extract)

    p = sub.add_parser("solve", help="solve one workload with one solver; write the mapping")
    _add_problem_args(p, capacity_default=None)
    p.add_argument(
        "--solver",
        default="msa",
        help="msa, msa-skip, greedy-size, random, all-slow, restarts (see `mallocgame list solvers`)",
    )
    p.add_argument(
        "--time-limit", type=float, default=None, help="seconds, for search solvers (restarts)"
    )
    p.add_argument(
        "--out",
        help="mapping CSV (id,lower,upper,size,offset); OUT.json and OUT.msa_overrides.txtpb are written beside it",
    )
    p.set_defaults(fn=cmd_solve)

    p = sub.add_parser("compare", help="several solvers on one workload, side by side")
    _add_problem_args(p, capacity_default=None)
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

    from mallocgame.cli import agent as agent_cli
    from mallocgame.cli import bench as bench_cli
    from mallocgame.cli import rank as rank_cli

    agent_cli.add_parsers(sub)
    bench_cli.add_parser(sub)
    rank_cli.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except InputError as e:
        _err(str(e))
        return 2
    except MallocGameError as e:
        _err(str(e))
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
