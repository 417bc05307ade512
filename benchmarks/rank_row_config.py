"""Write one row of a fidelity bench run as a rank config (the file ``mallocgame rank`` writes).

    .venv/bin/python benchmarks/rank_row_config.py runs/heads/b32l16.json --solver refine \
        --budget 0.3 --out smollm2-30.json
    .venv/bin/mallocgame rank-eval smollm2-30.json --eval-windows 16

The config keeps the row's per-layer ranks, its per-group / per-head split where it has one,
its method and the calibration its bases are learnt from (``meta.calibration``), so that
``mallocgame rank-eval``, ``benchmarks/bench_rank_latency.py`` and the runtime
(:func:`mallocgame.rank.lowrank.lowrank_params`) load it as they load the CLI's configs.
Written atomically; a missing row or a row without ranks is an error that names the file.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mallocgame.rank.config import RankConfig, save_rank_config
from mallocgame.rank.sensitivity import DEFAULT_SEQ_LEN


def row_config(row: dict, source: str) -> RankConfig:
    """The rank config of a bench row (``source`` is recorded in its meta)."""
    cal = row.get("calibration") or {}
    groups = {}
    if "qk_groups" in row:
        groups = {
            "qk_groups": tuple(map(tuple, row["qk_groups"])),
            "v_groups": tuple(map(tuple, row["v_groups"])),
        }
    return RankConfig(
        row["model"],
        row["model_hash"],
        tuple(row["r_qk"]),
        tuple(row["r_v"]),
        DEFAULT_SEQ_LEN[row["model"]],
        method=cal.get("method", "whitened"),
        budget={"fraction": float(row["budget"])},
        meta={
            "solver": row["solver"],
            "from": source,
            "calibration": cal,
            "choices": row.get("choices"),
            "flops_fraction": row.get("flops_fraction"),
            "calibration_loss": row.get("calibration_loss"),
            "heldout": row.get("heldout"),
        },
        **groups,
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a bench_rank_fidelity.py JSON output")
    ap.add_argument("--solver", required=True, help="the row's solver name, e.g. refine+groups")
    ap.add_argument("--budget", type=float, required=True)
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    try:
        rows = json.loads(Path(a.run).read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"error: {a.run}: not a bench output with rows ({e})", file=sys.stderr)
        return 2
    for i, r in enumerate(rows):
        if (r.get("model"), r.get("budget"), r.get("solver")) == (a.model, a.budget, a.solver):
            try:
                cfg = row_config(r, f"{a.run}:{a.solver}")
            except (KeyError, TypeError, ValueError) as e:
                print(f"error: {a.run}: rows[{i}] ({a.solver}): {e}", file=sys.stderr)
                return 2
            save_rank_config(cfg, a.out)
            print(f"wrote {a.out}: {a.model} {a.solver} at budget {a.budget:g}")
            return 0
    print(
        f"error: {a.run}: no {a.solver} row for {a.model} at budget {a.budget:g}", file=sys.stderr
    )
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
