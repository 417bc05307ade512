"""Resident memory of the rank game's calibration evaluator during a long search.

    .venv/bin/python benchmarks/rank_evaluator_memory.py --init-json runs/heads/v30-refg.json \
        --init-solver refine --cal-loss 8 --evals 40
    .venv/bin/python benchmarks/rank_evaluator_memory.py ... --no-trim    # glibc keeps freed pages

Runs SmolLM2's ``refine`` from a bench row (its per-group split kept, as the bench's
``--refine-keep-groups``) for ``--evals`` evaluations (no time limit: the same configs every
run) and prints, every ``--every`` evaluations, the process's resident memory beside what the
evaluator's caches hold: live JAX arrays, prefix-cached and pinned layer states, cached layer
parameters. ``--no-trim`` turns off the evaluator's heap trimming (``malloc_trim``), to see
how much resident memory is freed heap that glibc did not give back.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
from bench_rank_fidelity import groups_config  # beside this script

from mallocgame.rank import evaluator as rank_evaluator
from mallocgame.rank import solvers
from mallocgame.rank.calibration import CalibSpec, load_setup
from mallocgame.rank.config import METHODS
from mallocgame.rank.evaluator import Evaluator
from mallocgame.rank.measure import cost_only_tables


def resident_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e6
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init-json", required=True, help="a bench_rank_fidelity.py output")
    ap.add_argument("--init-solver", default="refine", help="its row with per-group ranks")
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--method", default="whitened+vheads", choices=list(METHODS))
    ap.add_argument("--cal-bases", type=int, default=8)
    ap.add_argument("--cal-loss", type=int, default=8)
    ap.add_argument("--evals", type=int, default=40)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--no-trim", action="store_true", help="keep freed heap pages (no malloc_trim)")
    a = ap.parse_args(argv)
    rows = json.loads(Path(a.init_json).read_text())["rows"]
    row = next((r for r in rows if r["solver"] == a.init_solver and r["budget"] == a.budget), None)
    if row is None or "qk_groups" not in row:
        raise SystemExit(f"{a.init_json}: no {a.init_solver} row with groups at {a.budget:g}")
    if a.no_trim:
        rank_evaluator._MALLOC_TRIM = None
    spec = CalibSpec("smollm2", bases=a.cal_bases, loss=a.cal_loss, method=a.method)
    tables = cost_only_tables("smollm2", spec.method)
    choices = tables.choices
    t0 = time.perf_counter()
    setup = load_setup(spec)
    ev = Evaluator(setup, choices)
    ev.group_template = groups_config(row, tables.seq_len, a.method)
    ch = list(choices)
    start = [ch.index(x) for pair in zip(row["r_qk"], row["r_v"], strict=True) for x in pair]
    print(
        f"{a.init_json}:{a.init_solver}, {a.cal_loss} loss windows, trim "
        f"{'off' if a.no_trim else 'on'}; set up in {time.perf_counter() - t0:.0f} s, "
        f"resident {resident_gb():.2f} GB",
        flush=True,
    )
    print("| s | evaluations | resident GB | live arrays GB | prefix states | pinned | layers |")
    print("|---|---|---|---|---|---|---|")
    measure = ev.window_losses_of_ranks
    t1 = time.perf_counter()

    def states_gb(d: dict) -> float:
        return sum(x.nbytes for xs in d.values() for x in xs) / 1e9

    def logged(ranks):
        out = measure(ranks)
        if ev.n_evaluated % a.every == 0:
            live = sum(x.nbytes for x in jax.live_arrays()) / 1e9
            print(
                f"| {time.perf_counter() - t1:.0f} | {ev.n_evaluated} | {resident_gb():.2f} | "
                f"{live:.2f} | {len(ev._prefix)} ({states_gb(ev._prefix):.2f} GB) | "
                f"{len(ev._pinned)} ({states_gb(ev._pinned):.2f} GB) | {len(ev._layers)} |",
                flush=True,
            )
        return out

    ev.window_losses_of_ranks = logged
    solvers.refine(tables, a.budget, start, ev, max_evals=a.evals)
    print(
        f"{ev.n_evaluated} evaluations in {time.perf_counter() - t1:.0f} s, resident "
        f"{resident_gb():.2f} GB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
