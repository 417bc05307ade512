r"""Scores policies on the validation split the way ``mallocgame train --val-every`` does
(one greedy game per problem, all in one batch; geometric-mean speed-up over ``msa``), and
prints per-problem speed-ups.

    .venv/bin/python benchmarks/validate_policy.py mallocgame/memory/pretrained/policy.npz \
        runs/mine/last-policy.npz

(``runs/mine`` from ``mallocgame train --out runs/mine ...``, which writes ``policy.npz``, the
update picked on validation, and ``last-policy.npz``.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mallocgame.memory.solvers.policy import load_agent  # noqa: E402
from mallocgame.memory.train import TrainOptions, build_val_pool, play_pool, validation_metrics  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("policies", nargs="+")
    ap.add_argument("--split", default="validation")
    ap.add_argument("--copies", type=int, default=1)
    ap.add_argument("--per-problem", action="store_true")
    args = ap.parse_args(argv)
    pool, names = build_val_pool(TrainOptions(val_split=args.split), log=lambda *a: None)
    base = np.array([pp.msa_return for pp in pool])
    for path in args.policies:
        agent = load_agent(path)
        t = time.perf_counter()
        r = play_pool(agent, pool, copies=args.copies)
        m = validation_metrics(r, pool)
        m["seconds"] = time.perf_counter() - t
        print(path, json.dumps({k: round(v, 4) for k, v in m.items()}))
        if args.per_problem:
            for n, x, b in zip(names, r.max(axis=1), base, strict=True):
                print(f"  {n:50s} {(1 - b) / (1 - x):.4f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
