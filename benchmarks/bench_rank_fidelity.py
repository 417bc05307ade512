"""Fidelity of every rank solver at attention-FLOP budgets, on held-out text.

    python benchmarks/bench_rank_fidelity.py                                  # both models
    python benchmarks/bench_rank_fidelity.py --models minilm --budgets 0.5,0.3 --json-out r.json
    python benchmarks/bench_rank_fidelity.py --models smollm2 --eval-windows 8 --max-evals 60
    python benchmarks/bench_rank_fidelity.py --models smollm2 --cal-loss 4 --max-evals 600
    python benchmarks/bench_rank_fidelity.py --models smollm2 --cal-loss 4 \
        --solvers uniform,refine,refine:agree=1 --init-json old.json --refine-evals 300

For each model: the rank tables (measured on the calibration half of ``lee_background.cor``,
cached under ``$MALLOCGAME_CACHE/rank``), then each solver at each budget, then fidelity on
held-out text that no solver saw:

- SmolLM2: perplexity on the first ``--eval-windows`` 512-token windows of the evaluation half
  of ``lee_background.cor``; loss = ``log(ppl) - log(ppl_full)``.
- MiniLM: the 50 ``lee.cor`` documents; loss = ``1 - mean cosine`` to the full embeddings;
  Pearson / Spearman against the human similarity scores are reported too.

``vs uniform`` = the solver's held-out loss divided by the ``uniform`` solver's at the same
budget (the goal: below 0.5). A solver may carry keyword arguments, ``NAME:key=value:...``
(e.g. ``refine:agree=1``, numbers parsed), and its row is named by that whole string.
``--init-json`` starts ``refine`` from the config of another run's ``--init-solver`` row
(default greedy) at the same model and budget, instead of running greedy first.
``--group-split SECONDS`` (SmolLM2) adds a ``NAME+groups`` row after each measuring solver: its
layers' ranks split among the key-value groups by :func:`mallocgame.rank.search.group_split`
(same FLOPs), starting from the equal split, or from the init row's groups when the init row is
itself a ``+groups`` row with the same layer ranks (so a split can go on where a capped one
stopped). Rows are written to ``--json-out`` after each one (atomically); ``--resume`` skips
rows already there. ``--cal-bases`` / ``--cal-loss`` choose the calibration text (as in
``mallocgame rank``): more loss windows make the tables and greedy's measurements less specific
to one window of text (and cost proportionally more). The same measurement with seeds,
statistics, pictures and a README section:
``mallocgame bench rank minilm smollm2 --budgets 0.5,0.3``.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from mallocgame.bench.rank import HeldOut, solve_and_judge
from mallocgame.cli.argtypes import positive_int
from mallocgame.cli.rank import add_calibration_args, add_group_split_args, split_options
from mallocgame.io import atomic_write_text
from mallocgame.rank import solvers
from mallocgame.rank.calibration import CalibSpec, load_setup
from mallocgame.rank.config import METHODS
from mallocgame.rank.evaluator import Evaluator
from mallocgame.rank.measure import build_tables, cost_only_tables
from mallocgame.rank.search import group_split


def markdown(rows: list[dict[str, Any]]) -> str:
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == model]
        if model == "smollm2":
            full = rs[0]["heldout"]["ppl_full"]
            out.append(
                f"**SmolLM2** (held-out perplexity, {rs[0]['eval_windows']} windows of 512 "
                f"tokens; full model {full:.2f})\n"
            )
            out.append(
                "| budget | solver | attention FLOPs | perplexity | loss: log(ppl / full) "
                "| vs uniform | calibration loss |"
            )
            out.append("|---|---|---|---|---|---|---|")
        else:
            out.append(
                f"**MiniLM** (50 lee.cor documents; full model Pearson "
                f"{rs[0]['heldout']['pearson_full']:.3f}, Spearman "
                f"{rs[0]['heldout']['spearman_full']:.3f})\n"
            )
            out.append(
                "| budget | solver | attention FLOPs | mean / min cosine to full | loss: 1 - cos "
                "| vs uniform | Pearson / Spearman | calibration loss |"
            )
            out.append("|---|---|---|---|---|---|---|---|")
        for r in rs:
            h = r["heldout"]
            u = next(
                (x for x in rs if x["budget"] == r["budget"] and x["solver"] == "uniform"), None
            )
            vs = f"{h['loss'] / u['heldout']['loss']:.2f}" if u and u["heldout"]["loss"] > 0 else ""
            cal = "" if r["calibration_loss"] is None else f"{r['calibration_loss']:.4f}"
            if model == "smollm2":
                out.append(
                    f"| {r['budget']:g} | {r['solver']} | {r['flops_fraction']:.3f} | "
                    f"{h['ppl']:.2f} | {h['loss']:.4f} | {vs} | {cal} |"
                )
            else:
                out.append(
                    f"| {r['budget']:g} | {r['solver']} | {r['flops_fraction']:.3f} | "
                    f"{h['cos_mean']:.4f} / {h['cos_min']:.4f} | {h['loss']:.4f} | {vs} | "
                    f"{h['pearson']:.3f} / {h['spearman']:.3f} | {cal} |"
                )
        out.append("")
    return "\n".join(out)


def parse_solver(name: str) -> tuple[str, dict[str, Any]]:
    """``"refine:agree=1:min_gain=0.01"`` -> ``("refine", {"agree": 1.0, "min_gain": 0.01})``."""
    base, *opts = name.split(":")
    kw: dict[str, Any] = {}
    for o in opts:
        k, sep, v = o.partition("=")
        if not sep:
            raise SystemExit(f"bad solver option {o!r} in {name!r}: expected key=value")
        try:
            kw[k] = int(v) if v.lstrip("-").isdigit() else float(v)
        except ValueError:
            kw[k] = v
    return base, kw


def init_row(
    rows: list[dict[str, Any]], model: str, budget: float, solver: str, groups: bool = False
) -> dict[str, Any]:
    """``solver``'s row at ``model`` / ``budget`` in an earlier run (one with per-group ranks
    if ``groups``)."""
    for r in rows:
        if r["model"] == model and r["budget"] == budget and r["solver"] == solver:
            if groups and "qk_groups" not in r:
                raise SystemExit(f"--init-json: the {solver} row has no per-group ranks")
            return r
    raise SystemExit(f"--init-json: no {solver} row for {model} at budget {budget:g}")


def init_config(rows: list[dict[str, Any]], tables: Any, model: str, budget: float, solver: str):
    """Choice indices of ``solver``'s config at ``model`` / ``budget`` in an earlier run."""
    import numpy as np

    r = init_row(rows, model, budget, solver)
    if r["model_hash"] != tables.model_hash:
        raise SystemExit(f"--init-json: {solver} row is for other weights ({model})")
    ch = list(tables.choices)
    return np.asarray(
        [ch.index(x) for pair in zip(r["r_qk"], r["r_v"], strict=True) for x in pair], np.int64
    )


def groups_config(row: dict[str, Any], seq_len: int, method: str):
    """The rank config (per-group ranks included) of a bench row with groups."""
    from mallocgame.rank.config import RankConfig

    return RankConfig(
        row["model"],
        row["model_hash"],
        row["r_qk"],
        row["r_v"],
        seq_len,
        method=method,
        qk_groups=tuple(map(tuple, row["qk_groups"])),
        v_groups=tuple(map(tuple, row["v_groups"])),
    )


def group_row(
    row: dict[str, Any],
    tables: Any,
    setup: Any,
    ev: Any,
    held: Any,
    a: Any,
    start_from: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The row of ``row``'s config with its ranks split among the key-value groups, starting
    from the equal split, or from ``start_from``'s groups (an earlier ``+groups`` row) in the
    layers and parts where the solver kept the init's rank."""
    from mallocgame.rank.config import RankConfig
    from mallocgame.rank.runtime import attention_flops, lowrank_params

    cfg = RankConfig(
        row["model"],
        row["model_hash"],
        row["r_qk"],
        row["r_v"],
        tables.seq_len,
        method=tables.method,
    )
    init = None
    if start_from is not None:
        init = groups_config(
            start_from,
            cfg.seq_len,
            (start_from.get("calibration") or {}).get("method", "whitened"),
        )
    res, start = group_split(ev, cfg, split_options(a), init)
    g = res.config
    return {
        **row,
        "solver": row["solver"] + "+groups",
        "flops_fraction": attention_flops(g)["fraction"],
        "qk_groups": [list(x) for x in g.groups_list("qk")],
        "v_groups": [list(x) for x in g.groups_list("v")],
        "calibration_loss": res.loss,
        "solve_seconds": res.seconds,
        "solver_evaluations": res.evaluations,
        "group_split": {
            **res.summary(),
            "time_limit": a.group_split,
            "start": start,
            "screen": a.group_screen,
            "heads": a.group_heads,
            "start_layer": a.group_start_layer,
            "min_rank": a.group_min_rank,
        },
        "heldout": held(lowrank_params(setup.model, setup.calib, g, bases=setup.bases)),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="minilm,smollm2")
    ap.add_argument("--budgets", default="0.5,0.3")
    ap.add_argument(
        "--solvers",
        default=None,
        help="default uniform,spectral,fisher,greedy (+agent if importable)",
    )
    ap.add_argument("--eval-windows", type=int, default=16, help="SmolLM2 held-out windows")
    ap.add_argument("--max-evals", type=int, default=150, help="greedy: calibration evaluations")
    ap.add_argument("--top-k", type=int, default=3, help="greedy: candidates measured per move")
    ap.add_argument("--time-limit", type=float, default=None, help="per solver run, seconds")
    ap.add_argument("--refine-evals", type=int, default=200, help="refine: evaluations")
    ap.add_argument("--refine-top-k", type=int, default=4, help="refine: candidates per round")
    ap.add_argument(
        "--init-json",
        default=None,
        help="refine starts from the --init-solver row of this earlier bench JSON (same budget)",
    )
    ap.add_argument("--init-solver", default="greedy")
    ap.add_argument(
        "--refine-keep-groups",
        action="store_true",
        help="refine on the layer ranks with the --init-solver row's per-group split in place "
        "(parts whose rank changes keep it in proportion); the row then lists its groups",
    )
    add_group_split_args(
        ap,
        "; here after each solver that measures (greedy, refine, agent), adding a row NAME+groups",
    )
    ap.add_argument(
        "--choices",
        default=None,
        help="comma-separated ranks (one model; default: the model's default choices); tables "
        "of new ranks reuse the cached default tables' shared columns",
    )
    ap.add_argument(
        "--no-calib-loss", action="store_true", help="skip each answer's calibration loss"
    )
    ap.add_argument(
        "--method",
        default="whitened",
        choices=list(METHODS),
        help="how the runtime learns its bases (whitened+heads: one per query head)",
    )
    ap.add_argument(
        "--cost-only",
        action="store_true",
        help="tables with the FLOP costs only (no per-part measurements, which take most of a "
        "new method's first run): for refine from --init-json, which measures what it needs",
    )
    add_calibration_args(ap)
    ap.add_argument("--json-out", default="rank_fidelity.json")
    ap.add_argument("--md-out", default=None, help="markdown table (default: JSON path with .md)")
    ap.add_argument(
        "--eval-batch",
        type=positive_int,
        default=2,
        help="loss windows per forward pass of the calibration evaluator (default 2; a GPU "
        "wants more)",
    )
    ap.add_argument("--resume", action="store_true", help="keep rows already in --json-out")
    a = ap.parse_args(argv)

    command = "python benchmarks/bench_rank_fidelity.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    print(command, flush=True)
    names = (
        a.solvers.split(",")
        if a.solvers
        else ["uniform", "spectral", "fisher", "greedy"]
        + (["agent"] if solvers.available("agent") else [])
    )
    budgets = [float(b) for b in a.budgets.split(",")]
    out_json = Path(a.json_out)
    rows: list[dict[str, Any]] = []
    if a.resume and out_json.is_file():
        rows = json.loads(out_json.read_text())["rows"]
    done = {(r["model"], r["budget"], r["solver"]) for r in rows}
    init_rows = json.loads(Path(a.init_json).read_text())["rows"] if a.init_json else []

    def save() -> None:
        doc = {
            "command": command,
            "machine": platform.processor() or platform.machine(),
            "python": sys.version.split()[0],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "rows": rows,
        }
        atomic_write_text(out_json, json.dumps(doc, indent=1) + "\n")
        atomic_write_text(Path(a.md_out or out_json.with_suffix(".md")), markdown(rows) + "\n")

    for model_name in a.models.split(","):
        t0 = time.perf_counter()
        d = CalibSpec.default(model_name, a.method)
        spec = CalibSpec(
            model_name, a.cal_bases or d.bases, a.cal_loss or d.loss, d.window, d.method
        )
        choices = tuple(int(c) for c in a.choices.split(",")) if a.choices else None
        if a.cost_only:
            tables = cost_only_tables(model_name, spec.method, choices)
        else:
            tables = build_tables(model_name, spec=spec, choices=choices)
        setup = load_setup(spec)
        ev = Evaluator(setup, tables.choices, batch_size=a.eval_batch)
        held = HeldOut(setup.model, model_name, a.eval_windows, spec.window)
        print(
            f"{model_name}: tables and full model in {time.perf_counter() - t0:.0f} s", flush=True
        )
        for b in budgets:
            for name in names:
                if (model_name, b, name) in done:
                    continue
                t1 = time.perf_counter()
                base, kw = parse_solver(name)
                if base == "refine":
                    kw = {"refine_evals": a.refine_evals, "refine_top_k": a.refine_top_k} | kw
                    if a.init_json:
                        kw["init"] = init_config(init_rows, tables, model_name, b, a.init_solver)
                    if a.refine_keep_groups:
                        ev.group_template = groups_config(
                            init_row(init_rows, model_name, b, a.init_solver, groups=True),
                            tables.seq_len,
                            tables.method,
                        )
                r = solve_and_judge(
                    tables,
                    setup,
                    ev,
                    held,
                    b,
                    base,
                    time_limit=a.time_limit,
                    max_evals=a.max_evals,
                    top_k=a.top_k,
                    calibration_loss=not a.no_calib_loss,
                    solver_kw=kw,
                )
                ev.group_template = None
                h, t_solve = r["heldout"], r.pop("solve_s")
                rows.append(
                    {
                        "model": model_name,
                        "model_hash": tables.model_hash,
                        "budget": b,
                        "solver": name,
                        **r,
                        "solve_seconds": t_solve,
                        "eval_windows": a.eval_windows if model_name == "smollm2" else None,
                        "calibration": spec.to_dict(),
                        "choices": list(tables.choices),
                        "max_evals": a.max_evals if base in ("greedy", "refine") else None,
                        "solver_kw": {k: v for k, v in kw.items() if k != "init"},
                        "init": (f"{a.init_json}:{a.init_solver}" if "init" in kw else None),
                    }
                )
                save()
                print(
                    f"{model_name} budget {b:g} {name:8s} flops {rows[-1]['flops_fraction']:.3f} "
                    f"held-out loss {h['loss']:.4f} (solve {t_solve:.0f} s, "
                    f"{time.perf_counter() - t1:.0f} s)",
                    flush=True,
                )
                if (
                    a.group_split > 0
                    and model_name == "smollm2"
                    and base in solvers.USES_EVALUATOR
                    and (model_name, b, name + "+groups") not in done
                ):
                    prev = rows[-1]  # refine kept a split: go on from it
                    if "qk_groups" not in prev:
                        prev = next(
                            (
                                r
                                for r in init_rows
                                if "qk_groups" in r
                                and r["solver"] == a.init_solver
                                and (r["model"], r["budget"]) == (model_name, b)
                            ),
                            None,
                        )
                    rows.append(group_row(rows[-1], tables, setup, ev, held, a, prev))
                    save()
                    g = rows[-1]
                    print(
                        f"{model_name} budget {b:g} {g['solver']} held-out loss "
                        f"{g['heldout']['loss']:.4f} (calibration {g['calibration_loss']:.4f} "
                        f"from {g['group_split']['start_loss']:.4f}, "
                        f"{g['solver_evaluations']} evaluations, {g['solve_seconds']:.0f} s)",
                        flush=True,
                    )
    save()
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
