"""How much the split of one layer's rank among SmolLM2's key-value groups matters.

    .venv/bin/python benchmarks/rank_group_probe.py --layers 1,3,10,20 --part qk \
        --splits 8/8/8,16/4/4,4/16/4,4/4/16,12/8/4,4/8/12

Each row: the calibration loss (mean next-token NLL over the loss windows minus the full
model's, nats per token; the evaluator of ``mallocgame rank``) with one layer's query-key (or
value) ranks at the given per-group split and every other part full. Splits of one row set
keep the same sum, so the same FLOPs.
"""

from __future__ import annotations

import argparse
import json
import time

from mallocgame.rank.calibration import CalibSpec, load_setup
from mallocgame.rank.config import layer_entry
from mallocgame.rank.evaluator import Evaluator


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", default="1,3,10,20")
    ap.add_argument("--part", choices=["qk", "v"], default="qk")
    ap.add_argument("--splits", default="8/8/8,16/4/4,4/16/4,4/4/16,12/8/4,4/8/12")
    ap.add_argument("--cal-bases", type=int, default=8)
    ap.add_argument("--cal-loss", type=int, default=4)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    splits = [tuple(int(r) for r in s.split("/")) for s in a.splits.split(",")]
    spec = CalibSpec("smollm2", bases=a.cal_bases, loss=a.cal_loss)
    ev = Evaluator(load_setup(spec))
    full = [(64, 64)] * ev.n_layers
    rows = []
    for layer in (int(x) for x in a.layers.split(",")):
        for g in splits:
            r = sum(g) // len(g)
            entry = layer_entry(r, 64, g, None) if a.part == "qk" else layer_entry(64, r, None, g)
            ranks = list(full)
            ranks[layer] = entry
            t = time.perf_counter()
            loss = ev.loss_of_ranks(tuple(ranks))
            rows.append({"layer": layer, "part": a.part, "groups": list(g), "loss": loss})
            if not a.json:
                print(
                    f"layer {layer:2d} {a.part} {'/'.join(map(str, g)):>10s}  loss {loss:.4f}  "
                    f"({time.perf_counter() - t:.1f} s)",
                    flush=True,
                )
    if a.json:
        print(json.dumps({"calibration": spec.to_dict(), "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
