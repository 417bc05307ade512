r"""Two held-out runs of ``benchmarks/bench_agent.py`` (e.g. two policies, same settings) side
by side: per capacity, ``agent_raw`` vs ``msa`` and ``best`` vs ``restarts`` (IQM with a 95%
stratified-bootstrap interval, wins / losses), and per problem the median over seeds.

    .venv/bin/python benchmarks/bench_agent.py --seeds 5 --budget 5 --no-fit-all \
        --out runs/bench-shipped
    .venv/bin/python benchmarks/bench_agent.py --policy runs/mine/policy.npz --seeds 5 --budget 5 \
        --no-fit-all --out runs/bench-mine
    .venv/bin/python benchmarks/compare_agent_runs.py runs/bench-shipped runs/bench-mine \
        --names shipped,mine

(``runs/mine`` from ``mallocgame train --out runs/mine ...``; the first run uses the shipped
policy, ``mallocgame/memory/pretrained/policy.npz``.) Prints markdown tables.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bench_agent import iqm_ci  # noqa: E402

METRICS = (
    ("agent_raw vs msa", "msa_time", "agent_raw_time"),
    ("best vs restarts", "restarts_time", "agent_time"),
    ("best vs msa", "msa_time", "agent_time"),
)


def load_rows(folder: str | Path) -> list[dict]:
    res = json.loads((Path(folder) / "results.json").read_text())
    return res["heldout"]["rows"]


def per_capacity(rows: list[dict], num: str, den: str) -> dict[str, tuple]:
    caps = sorted({r["capacity"] for r in rows}, key=lambda c: float(c.rstrip("%")))
    out = {}
    for g, gc in [("all", caps)] + [(c, [c]) for c in caps]:
        tasks: dict[tuple, list[float]] = {}
        for r in rows:
            if r["capacity"] in gc:
                tasks.setdefault((r["workload"], r["capacity"]), []).append(r[num] / r[den])
        t = [np.array(v) for v in tasks.values()]
        v, lo, hi = iqm_ci(t)
        flat = np.concatenate(t)
        out[g] = (
            v,
            lo,
            hi,
            float((flat > 1 + 1e-9).mean()),
            float((flat < 1 - 1e-9).mean()),
            flat.size,
        )
    return out


def per_problem(rows: list[dict], num: str, den: str) -> dict[tuple, float]:
    tasks: dict[tuple, list[float]] = {}
    for r in rows:
        tasks.setdefault((r["workload"], r["buffers"], r["capacity"]), []).append(r[num] / r[den])
    return {k: float(np.median(v)) for k, v in tasks.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("runs", nargs="+", help="bench_agent.py output folders (results.json)")
    ap.add_argument("--names", default=None, help="comma-separated names of the runs")
    args = ap.parse_args(argv)
    names = args.names.split(",") if args.names else [Path(r).name for r in args.runs]
    rows = {n: load_rows(r) for n, r in zip(names, args.runs, strict=True)}
    seeds = {n: len({r["seed"] for r in v}) for n, v in rows.items()}
    described = ", ".join(
        f"{n} = {r} ({len(rows[n])} runs, {seeds[n]} seeds)"
        for n, r in zip(names, args.runs, strict=True)
    )
    print(f"runs: {described}")
    print()
    print("| metric | capacity | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for label, num, den in METRICS:
        pcs = {n: per_capacity(v, num, den) for n, v in rows.items()}
        for g in pcs[names[0]]:
            cells = []
            for n in names:
                v, lo, hi, w, lz, k = pcs[n][g]
                cells.append(
                    f"{v:.4f}x [{lo:.4f}, {hi:.4f}] (wins {100 * w:.0f}%, losses {100 * lz:.0f}%)"
                )
            print(f"| {label} | {g} | " + " | ".join(cells) + " |")
    print()
    print("Median over seeds per problem:")
    print()
    hdr = " | ".join(f"{lab} ({n})" for lab, _, _ in METRICS[:2] for n in names)
    print(f"| workload | buffers | capacity | {hdr} |")
    print("|---|---:|---:|" + "---:|" * (2 * len(names)))
    pp = {(lab, n): per_problem(rows[n], num, den) for lab, num, den in METRICS[:2] for n in names}
    for key in pp[(METRICS[0][0], names[0])]:
        cells = [
            f"{pp[(lab, n)].get(key, float('nan')):.4f}x"
            for lab, _, _ in METRICS[:2]
            for n in names
        ]
        print(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
