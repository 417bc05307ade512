"""Every baseline on every zoo workload and shared trace at 10%, 25% and 50% of peak live bytes.

Prints a markdown table: speed-up over all-slow under the cost model, and the gap to the
lower bound (unlimited fast memory). Usage::

    .venv/bin/python benchmarks/baselines_table.py [--target tpuv4i]
        [--solvers msa,greedy-size,random] [--capacities 10%,25%,50%]
        [--zoo-only | --traces-only] [--out table.md]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from mallocgame import api
from mallocgame.io import atomic_write_text, describe_host
from mallocgame.memory import solvers

DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def instances(zoo: bool, traces: bool):
    if zoo:
        from workloads import zoo as z

        for name in z.ZOO:
            t0 = time.perf_counter()
            wl = z.extract(name)
            print(f"compiled {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
            yield f"zoo:{name}", wl
    if traces:
        for p in sorted((DATASETS / "ml-traces").glob("*.csv")):
            yield p.name, api.load_workload(p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="tpuv4i")
    ap.add_argument("--solvers", default="random,greedy-size,msa")
    ap.add_argument("--capacities", default="10%,25%,50%")
    ap.add_argument("--zoo-only", action="store_true")
    ap.add_argument("--traces-only", action="store_true")
    ap.add_argument("--out", default=None, help="also write the table to this file")
    args = ap.parse_args(argv)
    names = args.solvers.split(",")
    caps = args.capacities.split(",")
    lines = [
        f"Target `{args.target}`; machine: {describe_host()}; restarts get 1 s each.",
        "Each cell: speed-up over all-slow (gap to the unlimited-fast lower bound).",
        "",
        "| workload | buffers | capacity | " + " | ".join(names) + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for label, wl in instances(not args.traces_only, not args.zoo_only):
        for cap in caps:
            problem = api.make_problem(wl, cap, args.target)
            cells = []
            for s in names:
                sol = solvers.solve(problem, s, seed=0)
                d = sol.summary()
                if not d["valid"]:
                    raise SystemExit(
                        f"invalid mapping from {s} on {label} at {cap}: {d['problems'][:2]}"
                    )
                cells.append(
                    f"{d['speedup_vs_all_slow']:.3f}x ({100 * d['gap_to_lower_bound']:.1f}%)"
                )
            lines.append(f"| {label} | {wl.num_buffers} | {cap} | " + " | ".join(cells) + " |")
            print(lines[-1], file=sys.stderr)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        atomic_write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
