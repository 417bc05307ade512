"""A seeded synthetic trace in minimalloc's CSV format, for scale runs beyond the zoo: ``--long``
buffers live across most of the schedule (weights, optimizer state) and the rest short-lived
(activations, geometric lengths), sizes log-uniform from 64 B to 1 MiB. Not a real program: the
scale figures of real ones come from the large zoo entries (workloads/large.py). Usage::

    .venv/bin/python benchmarks/synthetic_trace.py --buffers 62185 --out out/scale/synthetic.csv
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

from mallocgame.io import atomic_write_text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--buffers", type=int, default=62185)
    ap.add_argument("--long", type=int, default=3000, help="buffers live across the schedule")
    ap.add_argument("--positions", type=int, default=60000, help="schedule length")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    n, t, m = a.buffers, a.positions, min(a.long, a.buffers)
    starts = np.empty(n, np.int64)
    ends = np.empty(n, np.int64)
    starts[:m] = rng.integers(0, t // 10, m)
    ends[:m] = t - rng.integers(0, t // 10, m)
    s = rng.integers(0, t - 5, n - m)
    starts[m:] = s
    ends[m:] = s + 1 + rng.geometric(0.05, n - m).clip(1, 2000)
    sizes = (2 ** rng.uniform(6, 20, n)).astype(np.int64)
    buf = io.StringIO()
    buf.write("id,lower,upper,size\n")
    for i in range(n):
        buf.write(f"{i},{starts[i]},{ends[i]},{sizes[i]}\n")
    atomic_write_text(Path(a.out), buf.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
