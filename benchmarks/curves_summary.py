r"""Summaries of training curves (``RUN/curves.csv`` of ``mallocgame train``) by ranges of
updates: the held-out monitor (``eval_*``) of two runs side by side at the same update counts,
self-play against ``msa``, and the validation score (``val_*``).

    mallocgame train --out runs/a --split train --reward ranked --seed 0 --minutes 30 \
        --eval-every 1000 --val-every 500
    mallocgame train --out runs/b --split train-wide --reward ranked --seed 0 --minutes 30 \
        --eval-every 1000 --val-every 500
    .venv/bin/python benchmarks/curves_summary.py runs/a/curves.csv runs/b/curves.csv

The inputs are the ``curves.csv`` that ``mallocgame train --out RUN`` writes (``RUN/curves.csv``);
the update ranges are fixed bins (the last ends at the end of the run).
"""

from __future__ import annotations

import argparse
import csv
import sys

import numpy as np


def load(path: str) -> list[dict]:
    return list(csv.DictReader(open(path)))


def monitor(rows: list[dict]) -> dict[int, tuple[float, float]]:
    return {
        int(r["step"]): (float(r["eval_gap_vs_msa"]), float(r["eval_not_worse_rate"]))
        for r in rows
        if r.get("eval_gap_vs_msa")
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("old")
    ap.add_argument("new")
    args = ap.parse_args(argv)
    old, new = load(args.old), load(args.new)
    eo, en = monitor(old), monitor(new)
    print(
        "held-out monitor (greedy - msa, % of all-slow time), evaluations at multiples of "
        "1000 updates (+50):"
    )
    for lo, hi in [(1000, 5000), (5001, 10000), (10001, 20000), (20001, 26450), (26451, 10**9)]:

        def agg(e, lo=lo, hi=hi):
            ks = [k for k in e if lo <= k <= hi and k % 1000 in (0, 50)]
            if not ks:
                return "-"
            g = np.array([e[k][0] for k in ks])
            nw = np.array([e[k][1] for k in ks])
            return (
                f"{100 * g.mean():+.1f}% (worst {100 * g.min():+.1f}%), "
                f"not worse {100 * nw.mean():.0f}% [{len(ks)} evals]"
            )

        print(f"  {lo}-{hi}: old {agg(eo)} | new {agg(en)}")

    def selfplay(rows, lo, hi):
        sel = [r for r in rows if lo <= int(r["step"]) <= hi]
        if not sel:
            return "-"
        g = (
            np.mean([float(r["return"]) - float(r["baseline"]) for r in sel]) / 10
        )  # reward scale 10
        w = np.mean([float(r["win_rate"]) for r in sel])
        nw = np.mean([float(r["not_worse_rate"]) for r in sel])
        return f"{100 * g:+.2f}% wins {100 * w:.0f}% not worse {100 * nw:.0f}%"

    print("self-play - msa (% of all-slow time):")
    for lo, hi in [
        (0, 2500),
        (2500, 5000),
        (5000, 10000),
        (10000, 20000),
        (20000, 30000),
        (30000, 40000),
        (40000, 10**9),
    ]:
        print(f"  {lo}-{hi}: new {selfplay(new, lo, hi)} | old {selfplay(old, lo, hi)}")
    vals = [
        (
            int(r["step"]),
            float(r["val_score"]),
            float(r["val_loss_rate"]),
            float(r.get("val_s") or "nan"),
        )
        for r in new
        if r.get("val_score")
    ]
    if vals:
        secs = [v[3] for v in vals if v[3] == v[3]]
        print(
            f"validation (new run): {len(vals)} evaluations, {min(secs):.1f}-{max(secs):.1f} s each"
        )
        for lo, hi in [
            (500, 5000),
            (5500, 10000),
            (10500, 20000),
            (20500, 30000),
            (30500, 40000),
            (40500, 10**9),
        ]:
            v = [x for x in vals if lo <= x[0] <= hi]
            if v:
                print(
                    f"  {lo}-{hi}: mean {np.mean([x[1] for x in v]):.4f} "
                    f"min {min(x[1] for x in v):.4f} "
                    f"max {max(x[1] for x in v):.4f} losses {100 * np.mean([x[2] for x in v]):.0f}%"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
