"""The largest single-buffer saving per problem of a split: ``msa``'s line is played and, at
each move, the observation's ``buffer.benefit`` (the share of the all-slow time that placing
the current buffer fast would save, clipped to [-1, 1]; ``docs/game.md``) is read.

    .venv/bin/python benchmarks/max_benefit.py heldout train train-wide validation --capacity 25%
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mallocgame.memory import splits  # noqa: E402
from mallocgame.memory.env import PreparedProblem  # noqa: E402


def max_benefit(pp: PreparedProblem) -> float:
    lay = pp.instance.observation_layout()
    at = lay["buffer"][0] + 5  # buffer.benefit
    g = pp.new_game()
    obs = np.zeros(pp.instance.observation_size, np.float32)
    best = 0.0
    while not g.done:
        g.observe(obs)
        best = max(best, float(obs[at]))
        m = g.legal_mask()
        g.step(1 if m[1] else 0)
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("splits", nargs="+")
    ap.add_argument("--capacity", default="25%")
    ap.add_argument("--max-buffers", type=int, default=400)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    for name in args.splits:
        vals = []
        for spec, wl in splits.load_split(name, max_buffers=args.max_buffers):
            for _, _, p in splits.make_problems([wl], [args.capacity]):
                v = max_benefit(PreparedProblem(p))
                vals.append(v)
                print(
                    f"{name:11s} {spec.title[:48]:48s} {wl.num_buffers:5d} buffers  "
                    f"max benefit {v:.3f}"
                )
        if vals:
            print(
                f"{name}: {len(vals)} problems at {args.capacity}, "
                f"max benefit median {np.median(vals):.3f}, "
                f"max {max(vals):.3f}, problems >= 0.18: {sum(v >= 0.18 for v in vals)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
