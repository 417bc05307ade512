"""Write one row of a fidelity bench run as a rank config (the file ``mallocgame rank`` writes).

    .venv/bin/python benchmarks/rank_row_config.py runs/heads/b32l16.json --solver refine \
        --budget 0.3 --out smollm2-30.json
    .venv/bin/mallocgame rank-eval smollm2-30.json --eval-windows 16

The config keeps the row's per-layer ranks, its per-group / per-head split where it has one,
its method and the calibration its bases are learnt from (``meta.calibration``), so that
``mallocgame rank-eval``, ``benchmarks/bench_rank_latency.py`` and the runtime
(:func:`mallocgame.rank.runtime.lowrank_params`) load it as they load the CLI's configs.
Written atomically; a missing row or a row without ranks is an error that names the file.
The work is :func:`mallocgame.rank.search.row_config_from_run`; this script parses and prints.
"""

from __future__ import annotations

import argparse
import sys

from mallocgame.errors import InputError
from mallocgame.rank.config import save_rank_config
from mallocgame.rank.search import row_config_from_run


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a bench_rank_fidelity.py JSON output")
    ap.add_argument("--solver", required=True, help="the row's solver name, e.g. refine+groups")
    ap.add_argument("--budget", type=float, required=True)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        cfg = row_config_from_run(a.run, a.model, a.budget, a.solver)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    save_rank_config(cfg, a.out)
    print(f"wrote {a.out}: {a.model} {a.solver} at budget {a.budget:g}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
