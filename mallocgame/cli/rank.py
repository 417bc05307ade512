"""The rank game's subcommands of the ``mallocgame`` CLI: ``rank`` and ``rank-eval``.

``add_parsers(subparsers)`` registers them (called by :func:`mallocgame.cli.main.build_parser`).

- ``mallocgame rank --model smollm2 --budget 0.5 --solver greedy --out ranks.json``: measure
  (or load from the cache) the rank tables, run a solver, write the rank config atomically
  (budget, solver and calibration in it) and a heat map of the ranks beside it. The budget is
  a fraction of attention FLOPs (``--budget-kind flops``, the default) or of the KV cache's
  bytes per token (``--budget-kind kv-cache``); ``--rank-multiple M`` keeps every rank a
  multiple of ``M``.
- ``mallocgame rank-eval ranks.json``: fidelity on the evaluation text (SmolLM2: perplexity on
  the evaluation half of ``lee_background.cor``; MiniLM: cosine to the full embeddings and
  correlation with the human scores on ``lee.cor``), attention FLOPs, and with ``--latency``
  the measured attention time, each against full attention.
- ``python -m mallocgame.cli.rank --model smollm2 --ranks 64,32``: the fidelity of uniform
  ranks with a calibration of their own (:func:`sweep_main`).

The work happens in :mod:`mallocgame.rank` (tables: ``measure``; search: ``search``; fidelity:
``fidelity``; pictures: ``plots``); this module parses and prints.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mallocgame import registry
from mallocgame.cli.argtypes import fraction, positive_int
from mallocgame.cli.common import add_ray_args, load_rank_config_arg, progress, ray_args
from mallocgame.errors import InputError
from mallocgame.rank import solvers
from mallocgame.rank.config import (
    BUDGET_KINDS,
    METHODS,
    MODEL_SHAPES,
    RANK_MULTIPLES,
    save_rank_config,
)
from mallocgame.rank.tables import DEFAULT_SEQ_LEN, RankTables, choices_for_multiple

if TYPE_CHECKING:
    from mallocgame.rank.search import SplitOptions


def add_group_split_args(p: argparse.ArgumentParser, what: str = "") -> None:
    """The options of the per-group rank split (:func:`mallocgame.rank.search.split_groups`;
    read back by :func:`split_options`); ``what``: how a tool uses ``--group-split``, after the
    common text."""
    p.add_argument(
        "--group-split",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="smollm2: then split each layer's ranks among its key-value head groups by measured "
        "transfers, for up to this many seconds (same FLOPs; the config gains qk_groups / "
        f"v_groups; 0 = off){what}",
    )
    p.add_argument(
        "--group-step", type=int, default=4, help="ranks moved per group transfer (default 4)"
    )
    p.add_argument(
        "--group-min-rank",
        type=int,
        default=None,
        metavar="R",
        help="the least rank a group or head keeps (default: the step); 0 lets the split empty "
        "one: uniform attention (query-key) or a pruned head (values)",
    )
    p.add_argument(
        "--group-heads",
        action="store_true",
        help="with a per-head method: split a group's rank among its query heads too",
    )
    p.add_argument(
        "--group-start-layer",
        type=int,
        default=0,
        metavar="I",
        help="each split pass starts at layer I, then wraps around (to go on where a capped "
        "run stopped; default 0)",
    )
    p.add_argument(
        "--group-screen",
        type=positive_int,
        default=None,
        metavar="K",
        help="measure only the K transfers of a step whose one-layer output error is least "
        "(default: measure all)",
    )


def split_options(args: argparse.Namespace) -> SplitOptions:
    """The :class:`~mallocgame.rank.search.SplitOptions` that :func:`add_group_split_args`'s
    options give."""
    from mallocgame.rank.search import SplitOptions  # deferred: JAX and the models

    return SplitOptions(
        seconds=args.group_split,
        step=args.group_step,
        min_rank=args.group_min_rank,
        heads=args.group_heads,
        start_layer=args.group_start_layer,
        screen=args.group_screen,
    )


def add_budget_kind_args(p: argparse.ArgumentParser) -> None:
    """``--budget-kind`` and ``--rank-multiple`` (shared by ``mallocgame rank`` and
    ``mallocgame bench rank``; read back by :func:`rank_choices`)."""
    p.add_argument(
        "--budget-kind",
        default="flops",
        choices=list(BUDGET_KINDS),
        help="what the budget counts: attention FLOPs at --seq-len (default) or the KV cache's "
        "bytes per token of decoding (kv-cache: a part at rank r < head dim caches r numbers "
        "per key / value map)",
    )
    p.add_argument(
        "--rank-multiple",
        type=int,
        default=1,
        choices=list(RANK_MULTIPLES),
        help="every rank a multiple of this, so that kernels can use the widths (default 1: "
        "any; without --choices the choices become every multiple up to the head dim)",
    )


def rank_choices(model: str, text: str | None, multiple: int) -> tuple[int, ...]:
    """The rank choices of ``--choices`` (default: the model's) under ``--rank-multiple``;
    ``InputError`` naming ``choices`` for a choice that is not a multiple."""
    try:
        return choices_for_multiple(model, multiple, _parse_choices(text))
    except ValueError as e:
        raise InputError(str(e), field="choices") from None


def add_calibration_args(p: argparse.ArgumentParser) -> None:
    """``--cal-bases`` / ``--cal-loss``: the calibration text of the rank tables (shared by
    ``mallocgame rank`` and ``benchmarks/bench_rank_fidelity.py``)."""
    p.add_argument(
        "--cal-bases",
        type=positive_int,
        default=None,
        help="calibration windows (SmolLM2) / documents (MiniLM) that fit the bases "
        "(default 8 / 120)",
    )
    p.add_argument(
        "--cal-loss",
        type=positive_int,
        default=None,
        help="further calibration windows / documents that measure the loss (default 1 / 8)",
    )


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rank",
        help="choose per-layer attention ranks of a pretrained model under a FLOP or KV-cache "
        "budget",
        description="Measure the rank tables of the model on calibration text (cached under "
        "$MALLOCGAME_CACHE/rank), choose one query-key and one value rank per layer with a solver "
        "so that attention FLOPs at --seq-len (--budget-kind flops) or the KV cache's bytes per "
        "token (--budget-kind kv-cache) stay within --budget of the full model's, and write "
        "the rank config (JSON, atomically) and a heat map of the chosen ranks.",
    )
    p.add_argument("--model", required=True, choices=["minilm", "smollm2"])
    p.add_argument(
        "--budget",
        required=True,
        type=fraction,
        help="fraction of full attention FLOPs (or of the full KV cache's bytes per token with "
        "--budget-kind kv-cache), in (0, 1]",
    )
    add_budget_kind_args(p)
    p.add_argument(
        "--seq-len",
        type=positive_int,
        default=None,
        help="sequence length the budget refers to (default 512 SmolLM2, 256 MiniLM)",
    )
    p.add_argument(
        "--solver", default="greedy", choices=registry.names("rank"), help="default greedy"
    )
    p.add_argument("--out", required=True, help="rank config JSON to write")
    p.add_argument("--heatmap", default=None, help="heat map picture (default: OUT with .png)")
    p.add_argument(
        "--choices",
        default=None,
        help="comma-separated ranks, ascending, ending at the head dim, each a multiple of "
        "--rank-multiple (default 8..64 SmolLM2, 4..32 MiniLM; with --rank-multiple M > 1 "
        "M, 2M, ..., the head dim)",
    )
    p.add_argument(
        "--method",
        default="whitened",
        choices=list(METHODS),
        help="how the runtime's bases are learned (whitened+heads: one basis per query head; "
        "whitened+vheads: per query head for the values)",
    )
    add_calibration_args(p)
    p.add_argument(
        "--max-evals",
        type=int,
        default=150,
        help="greedy: calibration-loss evaluations (default 150)",
    )
    p.add_argument(
        "--refine-evals",
        type=int,
        default=200,
        help="refine: calibration-loss evaluations of the exchange moves (default 200)",
    )
    p.add_argument(
        "--refine-top-k",
        type=positive_int,
        default=4,
        help="refine: candidates measured per round (default 4)",
    )
    p.add_argument(
        "--agree",
        type=fraction_or_zero,
        default=0.0,
        help="refine: accept a move only if it lowers the loss on at least this share of the "
        "loss windows / documents (default 0: the mean decides; 1: every window)",
    )
    p.add_argument(
        "--init",
        default=None,
        help="refine: start from this rank config (same model, weights, method, --cal-bases "
        "and choices; --cal-loss may differ) instead of greedy's answer; its per-group split, "
        "if any, stays in place (rescaled in the parts whose rank refine changes)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="seconds for the solver's search (greedy: then by estimate)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="agent: play the surrogate part of training on this many self-play workers "
        "beside the learner (default none; 2 with --ray)",
    )
    add_ray_args(
        p,
        "agent: run those workers as Ray actors (the measured part stays here)",
        "the CPUs each worker asks Ray for (default 1)",
    )
    add_group_split_args(p)
    p.add_argument("--no-cache", action="store_true", help="re-measure the tables and calibration")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(fn=cmd_rank)


# --------------------------------------------------------------------------- rank
def _parse_choices(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(x) for x in text.split(","))
    except ValueError:
        raise InputError(
            f"expected comma-separated integers, got {text!r}", field="choices"
        ) from None


def fraction_or_zero(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return v


def cmd_rank(args: argparse.Namespace) -> int:
    # deferred: JAX and the models, kept out of `mallocgame --help`
    from mallocgame.rank import calibration, measure
    from mallocgame.rank.evaluator import Evaluator
    from mallocgame.rank.plots import write_heatmap
    from mallocgame.rank.search import group_split, init_choices

    t0 = time.perf_counter()
    kind, multiple = args.budget_kind, args.rank_multiple
    choices = rank_choices(args.model, args.choices, multiple)
    seq_len = args.seq_len or DEFAULT_SEQ_LEN[args.model]
    try:
        probe = RankTables.cost_only(args.model, "0", choices, seq_len, args.method)
    except ValueError as e:
        raise InputError(str(e), field="choices") from None
    probe = probe.with_budget_kind(kind)
    # Fail fast on an impossible budget, before any measurement.
    budget = solvers.check_budget(probe, args.budget)
    solvers.load(args.solver)  # "agent unavailable" before measuring anything
    ray, ray_cpus = ray_args(args)
    workers = args.workers if args.workers is not None else (2 if ray else 0)
    if (ray or args.workers is not None) and args.solver != "agent":
        raise InputError("--workers and --ray are for the agent solver", field="workers")
    if workers < 0 or (ray and workers == 0):
        raise InputError(f"must be positive with --ray, or >= 0, got {workers}", field="workers")
    if ray:
        from mallocgame.cluster import import_ray

        ray_module = import_ray()  # before anything is measured: without ray, nothing happens
    owns_ray = False
    if ray:  # joined before the solver's clock starts (Ray's own start takes seconds)
        from mallocgame.cluster import connect

        owns_ray = connect(ray_module, ray)
    if args.group_split < 0:
        raise InputError(f"must be >= 0, got {args.group_split:g}", field="group-split")
    if args.group_split > 0 and args.model != "smollm2":
        raise InputError(
            f"{args.model} has no grouped key-value heads; per-group ranks apply to smollm2",
            field="group-split",
        )
    if args.group_step < 1:
        raise InputError(f"must be >= 1, got {args.group_step}", field="group-step")
    hd = MODEL_SHAPES[args.model].head_dim
    if args.group_min_rank is not None and not 0 <= args.group_min_rank <= hd:
        raise InputError(f"must be in 0..{hd}, got {args.group_min_rank}", field="group-min-rank")
    if args.group_split > 0 and kind == "kv-cache":
        raise InputError(
            "per-group ranks keep the cache's bytes but the low-rank decode (rank-eval --decode) "
            "supports one rank per layer and part; not with --budget-kind kv-cache",
            field="group-split",
        )
    if args.group_split > 0 and multiple > 1:
        for name, v in (("group-step", args.group_step), ("group-min-rank", args.group_min_rank)):
            if v is not None and v % multiple:
                raise InputError(f"{v} is not a multiple of --rank-multiple {multiple}", field=name)
    d = calibration.CalibSpec.default(args.model, args.method)
    spec = calibration.CalibSpec(
        args.model, args.cal_bases or d.bases, args.cal_loss or d.loss, d.window, args.method
    )
    init = None
    if args.init is not None:
        if args.solver != "refine":
            raise InputError("--init is for --solver refine", field="init")
        init = init_choices(
            load_rank_config_arg(args.init),
            args.init,
            args.model,
            calibration.model_file_hash(args.model),
            choices,
            spec,
        )
    use_cache = not args.no_cache
    evaluator = None
    measured = solvers.needs_measured_tables(args.solver, init is not None)
    what = "rank tables" if measured else "model and calibration"
    with progress(f"{args.model}: {what} (calibration text)", quiet=args.json):
        if args.solver in solvers.USES_EVALUATOR or args.group_split > 0:
            evaluator = Evaluator(calibration.load_setup(spec, use_cache), choices)
        if measured:
            tables = measure.build_tables(
                args.model,
                choices=choices,
                seq_len=seq_len,
                spec=spec,
                evaluator=evaluator,
                use_cache=use_cache,
                progress=None if args.json else measure.progress_to_stderr,
            )
        else:  # the solver measures what it needs: the costs are enough
            tables = dataclasses.replace(probe, model_hash=calibration.model_file_hash(args.model))
        tables = tables.with_budget_kind(kind)
    init_cfg = load_rank_config_arg(args.init) if args.init is not None else None
    if init_cfg is not None and init_cfg.grouped:  # refine keeps the init's split in place
        evaluator.group_template = init_cfg
    t1 = time.perf_counter()
    with progress(f"solving with {args.solver}", quiet=args.json):
        kw: dict[str, Any] = {}
        if args.solver in ("greedy", "refine"):
            kw["max_evals"] = args.max_evals
        if args.solver == "refine":
            kw |= {
                "refine_evals": args.refine_evals,
                "refine_top_k": args.refine_top_k,
                "agree": args.agree,
            }
            if init is not None:
                kw["init"] = init
        if workers:
            kw |= {"workers": workers, "ray": bool(ray), "ray_cpus": ray_cpus}
        idx = solvers.solve(
            tables,
            budget,
            args.solver,
            evaluator=evaluator,
            seed=args.seed,
            time_limit=args.time_limit,
            **kw,
        )
        if owns_ray:
            ray_module.shutdown()
    t2 = time.perf_counter()
    calib_loss = float(evaluator(idx[None])[0]) if evaluator is not None else None
    meta = {
        "solver": args.solver,
        "seed": args.seed,
        "choices": list(choices),
        "calibration": spec.to_dict(),
        "budget_kind": kind,
        "flops_fraction": tables.with_budget_kind("flops").fraction(idx),
        "kv_cache_fraction": tables.with_budget_kind("kv-cache").fraction(idx),
        "calibration_loss": calib_loss,
        "tables_cached": bool(tables.meta.get("cached")),
        "tables_seconds": t1 - t0,
        "solve_seconds": t2 - t1,
        "solver_options": {k: v for k, v in kw.items() if k != "init"},
        "init": args.init,
        "evaluations": None if evaluator is None else evaluator.n_evaluated,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    cfg = tables.config(idx, budget=budget, rank_multiple=multiple, **meta)
    if evaluator is not None and evaluator.group_template is not None:
        cfg = evaluator.keep_groups(cfg)
        init_cfg, evaluator.group_template = cfg, None
    if args.group_split > 0:
        with progress(
            f"splitting ranks among key-value groups ({args.group_split:g} s)", quiet=args.json
        ):
            res, start = group_split(evaluator, cfg, split_options(args), init_cfg)
        meta["calibration_loss"] = res.loss
        meta["group_split"] = {**res.summary(), "start": start}
        meta["evaluations"] = evaluator.n_evaluated
        cfg = dataclasses.replace(res.config, meta={**res.config.meta, **meta})
    out = save_rank_config(cfg, args.out)
    heat = Path(args.heatmap) if args.heatmap else out.with_suffix(".png")
    if kind == "kv-cache":
        title = (
            f"{args.model} {args.solver}: KV-cache budget {budget:g}, cache bytes "
            f"{meta['kv_cache_fraction']:.3f}"
        )
    else:
        title = (
            f"{args.model} {args.solver}: budget {budget:g}, attention FLOPs "
            f"{meta['flops_fraction']:.3f} at L={seq_len}"
        )
    write_heatmap(cfg, heat, title)
    summary = {
        "out": str(out),
        "heatmap": str(heat),
        "model": args.model,
        "model_hash": cfg.model_hash,
        "budget": budget,
        "budget_of": tables.cost_label,
        "fraction": tables.fraction(idx),
        "rank_multiple": multiple,
        "seq_len": seq_len,
        "r_qk": list(cfg.r_qk),
        "r_v": list(cfg.r_v),
        **(
            {"qk_groups": cfg.groups_list("qk"), "v_groups": cfg.groups_list("v")}
            if cfg.grouped
            else {}
        ),
        **meta,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        if kind == "kv-cache":
            print(
                f"{args.model} ({cfg.model_hash}) {args.solver}: budget {budget:g} of "
                f"{tables.cost_label} (KV-cache bytes fraction) -> "
                f"{meta['kv_cache_fraction']:.4f}; attention FLOPs "
                f"{meta['flops_fraction']:.4f} at L={seq_len}"
            )
        else:
            print(
                f"{args.model} ({cfg.model_hash}) {args.solver}: budget {budget:g} of full "
                f"attention FLOPs (FLOPs fraction) at L={seq_len} -> "
                f"{meta['flops_fraction']:.4f}; KV-cache bytes {meta['kv_cache_fraction']:.4f}"
            )
        if multiple > 1:
            print(f"  every rank a multiple of {multiple} (choices {list(choices)})")
        print(f"  r_qk {' '.join(map(str, cfg.r_qk))}")
        print(f"  r_v  {' '.join(map(str, cfg.r_v))}")
        if cfg.grouped:
            for kind in ("qk", "v"):
                split = [
                    f"{i}:{'/'.join(map(str, g))}"
                    for i, g in enumerate(cfg.groups_list(kind))
                    if len(set(g)) > 1
                ]
                print(f"  {kind} groups (layer:ranks) {' '.join(split)}")
        if calib_loss is not None:
            print(
                f"  calibration loss {meta['calibration_loss']:.4g} "
                f"({evaluator.n_evaluated} evaluations)"
            )
        print(f"  wrote {out} and {heat}")
    return 0


# --------------------------------------------------------------------------- uniform sweep
def sweep_main(argv: Sequence[str] | None = None) -> int:
    """Fidelity of uniform ranks: ``python -m mallocgame.cli.rank --help``
    (:func:`mallocgame.rank.fidelity.uniform_sweep`)."""
    from mallocgame.rank.fidelity import uniform_sweep  # deferred: JAX and the models

    ap = argparse.ArgumentParser(
        prog="python -m mallocgame.cli.rank",
        description="Fidelity of the low-rank attention runtime on the Lee corpora "
        "(calibration: first half of lee_background.cor; evaluation: second half for SmolLM2, "
        "lee.cor + human similarities for MiniLM).",
    )
    ap.add_argument("--model", choices=sorted(MODEL_SHAPES), default="smollm2")
    ap.add_argument(
        "--ranks", default="64,48,32,16", help="comma-separated uniform ranks (r_qk = r_v)"
    )
    ap.add_argument(
        "--r-qk", type=int, default=None, help="only this r_qk (r_v full); overrides --ranks"
    )
    ap.add_argument(
        "--r-v", type=int, default=None, help="only this r_v (r_qk full); overrides --ranks"
    )
    ap.add_argument("--method", choices=["whitened", "pca"], default="whitened")
    ap.add_argument("--seq-len", type=int, default=512, help="SmolLM2 window length")
    ap.add_argument("--cal-windows", type=int, default=8, help="SmolLM2 calibration windows")
    ap.add_argument(
        "--eval-windows", type=int, default=None, help="SmolLM2 evaluation windows (default all)"
    )
    ap.add_argument("--cal-docs", type=int, default=150, help="MiniLM calibration documents")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)

    if a.r_qk is not None or a.r_v is not None:
        pairs = [(a.r_qk, a.r_v)]
    else:
        pairs = [(int(r), int(r)) for r in a.ranks.split(",")]
    out = uniform_sweep(
        a.model, pairs, a.method, a.seq_len, a.cal_windows, a.eval_windows, a.cal_docs
    )
    rows = out["rows"]
    if a.json:
        print(json.dumps(out))
    else:
        print({k: v for k, v in out.items() if k != "rows"})
        for r in rows:
            print(
                "  "
                + "  ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(sweep_main())
