"""Loss of fidelity runs' configs on *validation* windows of the calibration text.

    python benchmarks/rank_validation.py RUN.json [RUN2.json ...] --val-windows 4 \
        --json-out val.json

For SmolLM2 rows of ``benchmarks/bench_rank_fidelity.py`` outputs: the validation windows are
the calibration half's windows right after the bases' and the loss windows (with bases 8 and
loss 4: windows 12..15 of the calibration half). Neither the tables nor any solver's
measurements saw them, and they are not the evaluation half: choosing a solver variant by this
loss is choosing on calibration text, not on the held-out perplexity. Loss as the evaluator's:
``log(ppl) - log(ppl_full)`` on those windows; ``vs uniform`` = loss / the uniform row's (same
file and budget).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.io import atomic_write_text
from mallocgame.rank.calibration import CalibSpec, calibration_text, load_setup
from mallocgame.rank.evaluator import Evaluator
from mallocgame.rank.tables import DEFAULT_CHOICES


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="bench_rank_fidelity.py JSON outputs")
    ap.add_argument("--val-windows", type=int, default=4)
    ap.add_argument("--json-out", default="rank_validation.json")
    a = ap.parse_args(argv)
    command = "python benchmarks/rank_validation.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    print(command, flush=True)
    evaluators: dict[Any, Evaluator] = {}
    out: list[dict[str, Any]] = []
    for path in a.runs:
        for r in json.loads(Path(path).read_text())["rows"]:
            if r["model"] != "smollm2":
                continue
            spec = CalibSpec.from_dict(r["calibration"])
            choices = tuple(r.get("choices") or DEFAULT_CHOICES["smollm2"])
            key = (spec, choices)
            if key not in evaluators:
                setup = load_setup(spec)
                more = dataclasses.replace(spec, loss=spec.loss + a.val_windows)
                val = calibration_text(setup.model, more)[1][spec.loss :]
                assert len(val) == a.val_windows
                evaluators[key] = Evaluator(dataclasses.replace(setup, loss_data=val), choices)
            ev = evaluators[key]
            ch = list(choices)
            idx = [ch.index(x) for pair in zip(r["r_qk"], r["r_v"], strict=True) for x in pair]
            t0 = time.perf_counter()
            w = ev.window_losses(np.asarray(idx))[0]
            out.append(
                {
                    "file": path,
                    "budget": r["budget"],
                    "solver": r["solver"],
                    "flops_fraction": r["flops_fraction"],
                    "calibration_loss": r["calibration_loss"],
                    "validation_loss": float(w.mean()),
                    "validation_windows": w.tolist(),
                    "heldout_loss": r["heldout"]["loss"],
                    "heldout_ppl": r["heldout"]["ppl"],
                }
            )
            print(
                f"{path} {r['budget']:g} {r['solver']}: validation {w.mean():.4f} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    for o in out:
        u = next(
            (
                x
                for x in out
                if x["file"] == o["file"]
                and x["budget"] == o["budget"]
                and x["solver"] == "uniform"
            ),
            None,
        )
        for k in ("calibration", "validation", "heldout"):
            o[f"{k}_vs_uniform"] = (
                None if u is None or o[f"{k}_loss"] is None else o[f"{k}_loss"] / u[f"{k}_loss"]
            )
    doc = {
        "command": command,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "val_windows": a.val_windows,
        "rows": out,
    }
    atomic_write_text(Path(a.json_out), json.dumps(doc, indent=1) + "\n")
    print(
        "| file | budget | solver | calibration (vs uniform) | validation (vs uniform) "
        "| held-out (vs uniform) |"
    )
    print("|---|---|---|---|---|---|")
    for o in out:
        cells = []
        for k in ("calibration", "validation", "heldout"):
            v, q = o[f"{k}_loss"], o[f"{k}_vs_uniform"]
            cells.append("" if v is None else f"{v:.4f}" + ("" if q is None else f" ({q:.3f})"))
        print(f"| {o['file']} | {o['budget']:g} | {o['solver']} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
