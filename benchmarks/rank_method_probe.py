"""The same SmolLM2 rank configs under each way of learning the bases (``--method``).

    .venv/bin/python benchmarks/rank_method_probe.py \
        --init-json runs/issue4/groups-cpu.json --init-solver refine+groups --budget 0.3

Rows: the same rank everywhere (``--uniform``, default 16) and the config of the
``--init-solver`` row of a ``bench_rank_fidelity.py`` JSON (its per-group ranks included),
each under every method of ``--methods``: attention FLOPs (fraction of full at L = 512) and
held-out loss, log(ppl / full) on the first ``--eval-windows`` 512-token windows of the
evaluation text (the bench's held-out text). No search: how much a method changes the loss of
fixed ranks, and so the ratio to the same-rank baseline.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mallocgame.rank import text
from mallocgame.rank.calibration import CalibSpec, RankSetup, load_setup
from mallocgame.rank.config import METHODS, RankConfig, config_entries
from mallocgame.rank.evaluator import Evaluator
from mallocgame.rank.models import smollm2 as sm
from mallocgame.rank.runtime import attention_flops

GROUPS = ("qk_groups", "v_groups")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--init-json", required=True)
    ap.add_argument("--init-solver", default="refine+groups")
    ap.add_argument("--budget", type=float, default=0.3)
    ap.add_argument("--uniform", type=int, default=16, help="rank of the same-rank row")
    ap.add_argument("--methods", default="whitened,whitened+vheads,whitened+heads")
    ap.add_argument("--eval-windows", type=int, default=16)
    ap.add_argument("--cal-bases", type=int, default=8)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    methods = a.methods.split(",")
    for m in methods:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; expected some of {list(METHODS)}")
    rows = json.loads(Path(a.init_json).read_text())["rows"]
    row = next((r for r in rows if r["solver"] == a.init_solver and r["budget"] == a.budget), None)
    if row is None:
        raise SystemExit(f"{a.init_json}: no {a.init_solver} row at budget {a.budget:g}")
    out = []
    held = None
    for method in methods:
        # bases from the first --cal-bases calibration windows (loss windows unused here;
        # 4 as in the bench, so that its cached calibration serves)
        spec = CalibSpec("smollm2", bases=a.cal_bases, loss=4, method=method)
        s = load_setup(spec)
        if held is None:
            split = text.background_split()
            held = text.token_windows(
                lambda t, m=s.model: sm.encode(m, t), split.evaluation, 512, a.eval_windows
            )
        # the evaluator's loss on the held-out windows: mean NLL - the full model's
        ev = Evaluator(RankSetup(s.model, spec, s.calib, s.bases, held))
        u = RankConfig.uniform("smollm2", s.model.model_hash, a.uniform, a.uniform, method=method)
        groups = {k: tuple(map(tuple, row[k])) if row.get(k) else None for k in GROUPS}
        c = RankConfig(
            "smollm2", s.model.model_hash, row["r_qk"], row["r_v"], 512, method=method, **groups
        )
        losses = {}
        for name, cfg in (("uniform", u), (a.init_solver, c)):
            t0 = time.perf_counter()
            losses[name] = ev.loss_of_ranks(config_entries(cfg))
            out.append(
                {
                    "method": method,
                    "config": name,
                    "flops_fraction": attention_flops(cfg)["fraction"],
                    "heldout_loss": losses[name],
                    "seconds": time.perf_counter() - t0,
                }
            )
        out[-1]["vs_uniform"] = losses[a.init_solver] / losses["uniform"]
        print(
            f"{method:16s} uniform {losses['uniform']:.4f} (FLOPs {out[-2]['flops_fraction']:.3f})"
            f"  {a.init_solver} {losses[a.init_solver]:.4f} (FLOPs {out[-1]['flops_fraction']:.3f})"
            f"  ratio {out[-1]['vs_uniform']:.3f}",
            flush=True,
        )
    if a.json:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
