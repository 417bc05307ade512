"""What emptying one group or head costs on a SmolLM2 rank config (``--group-min-rank 0``).

    .venv/bin/python benchmarks/rank_zero_probe.py \
        --init-json runs/heads/v30-heads2.json --init-solver refine+groups \
        --method whitened+vheads --layers 0,3,5,6,8,12,20,21,25,29

For each listed layer and part (query-key, values), the first group or head kept at the
smallest rank of that part (at most ``--max-rank``, default 4) is set to rank 0, everything
else as in the config (its FLOPs fall by that many dims), and the calibration loss (the
bench's 4 loss windows) is measured against the config's own. Rank 0 means uniform attention
over the causal prefix (query-key) or a pruned head (values). No search: a cheap look at
whether the split search should be allowed to empty groups.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mallocgame.rank.calibration import CalibSpec, load_setup
from mallocgame.rank.config import METHODS, layer_entry
from mallocgame.rank.evaluator import Evaluator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init-json", required=True)
    ap.add_argument("--init-solver", default="refine+groups")
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--method", default="whitened+vheads", choices=list(METHODS))
    ap.add_argument("--layers", default=None, help="comma-separated (default: all)")
    ap.add_argument("--max-rank", type=int, default=4)
    ap.add_argument("--cal-bases", type=int, default=8)
    a = ap.parse_args(argv)
    rows = json.loads(Path(a.init_json).read_text())["rows"]
    row = next((r for r in rows if r["solver"] == a.init_solver and r["budget"] == a.budget), None)
    if row is None or "qk_groups" not in row:
        raise SystemExit(f"{a.init_json}: no {a.init_solver} row with groups at {a.budget:g}")
    setup = load_setup(CalibSpec("smollm2", bases=a.cal_bases, loss=4, method=a.method))
    ev = Evaluator(setup)
    rq, rv = row["r_qk"], row["r_v"]
    parts = {"qk": [list(g) for g in row["qk_groups"]], "v": [list(g) for g in row["v_groups"]]}
    layers = [int(x) for x in a.layers.split(",")] if a.layers else range(len(rq))

    def loss() -> float:
        return ev.loss_of_ranks(
            tuple(layer_entry(rq[i], rv[i], parts["qk"][i], parts["v"][i]) for i in range(len(rq)))
        )

    t0 = time.perf_counter()
    base = loss()
    print(f"config: calibration loss {base:.4f} ({a.init_json}:{a.init_solver}, {a.method})")
    print("| layer | part | ranks | emptied | loss | change |")
    print("|---|---|---|---|---|---|")
    for i in layers:
        for kind, g in ((k, parts[k][i]) for k in ("qk", "v")):
            low = min(g)
            if low > a.max_rank:
                continue
            j = g.index(low)
            before = list(g)
            g[j] = 0
            try:
                x = loss()
            finally:
                g[j] = low
            print(f"| {i} | {kind} | {before} | {j} | {x:.4f} | {x - base:+.4f} |", flush=True)
    print(f"{ev.n_evaluated} evaluations, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
