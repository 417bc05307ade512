"""The rank game's subcommands of the ``mallocgame`` CLI: ``rank`` and ``rank-eval``.

``add_parsers(subparsers)`` registers them (called by :func:`mallocgame.cli.main.build_parser`).

- ``mallocgame rank --model smollm2 --budget 0.5 --solver greedy --out ranks.json``: measure
  (or load from the cache) the rank tables, run a solver, write the rank config atomically
  (budget, solver and calibration in it) and a heat map of the ranks beside it.
- ``mallocgame rank-eval ranks.json``: fidelity on the evaluation text (SmolLM2: perplexity on
  the evaluation half of ``lee_background.cor``; MiniLM: cosine to the full embeddings and
  correlation with the human scores on ``lee.cor``), attention FLOPs, and with ``--latency``
  the measured attention time, each against full attention.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.cli.argtypes import fraction, positive_int
from mallocgame.errors import InputError
from mallocgame.rank.config import METHODS, MODEL_SHAPES

_RANK_FIELDS = ("r_qk", "r_v")


def add_group_split_args(p: argparse.ArgumentParser, what: str = "") -> None:
    """The options of the per-group rank split (``mallocgame.rank.groups``); ``what``: how a
    tool uses ``--group-split``, after the common text."""
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


def group_split(evaluator: Any, cfg: Any, args: argparse.Namespace, init: Any = None) -> tuple:
    """``(SplitResult, start)``: ``cfg``'s ranks split among groups as ``args`` say (see
    :func:`add_group_split_args`), from ``init``'s groups where it keeps their rank
    (``start`` says which), else from the equal split."""
    from mallocgame.rank.groups import inherit_groups, split_groups

    start = "equal"
    if init is not None:
        cfg, kept = inherit_groups(cfg, init)
        parts = 2 * len(cfg.r_qk)
        start = "init" if kept == parts else f"init ({kept}/{parts} parts kept)"
    res = split_groups(
        evaluator,
        cfg,
        step=args.group_step,
        time_limit=args.group_split,
        screen=args.group_screen,
        heads=args.group_heads,
        start_layer=args.group_start_layer,
        min_rank=args.group_min_rank,
    )
    return res, start


def add_calibration_args(p: Any) -> None:
    """``--cal-bases`` / ``--cal-loss``: the calibration text of the rank tables (shared by
    ``mallocgame rank`` and ``benchmarks/bench_rank_fidelity.py``)."""
    p.add_argument(
        "--cal-bases",
        type=positive_int,
        default=None,
        help="calibration windows (SmolLM2) / documents (MiniLM) that fit the bases (default 8 / 120)",
    )
    p.add_argument(
        "--cal-loss",
        type=positive_int,
        default=None,
        help="further calibration windows / documents that measure the loss (default 1 / 8)",
    )


def add_parsers(sub: Any) -> None:
    from mallocgame.rank.solvers import SOLVERS

    p = sub.add_parser(
        "rank",
        help="choose per-layer attention ranks of a pretrained model under a FLOP budget",
        description="Measure the rank tables of the model on calibration text (cached under "
        "$MALLOCGAME_CACHE/rank), choose one query-key and one value rank per layer with a solver "
        "so that attention FLOPs at --seq-len stay within --budget of full attention, and write "
        "the rank config (JSON, atomically) and a heat map of the chosen ranks.",
    )
    p.add_argument("--model", required=True, choices=["minilm", "smollm2"])
    p.add_argument(
        "--budget",
        required=True,
        type=fraction,
        help="fraction of full attention FLOPs, in (0, 1]",
    )
    p.add_argument(
        "--seq-len",
        type=positive_int,
        default=None,
        help="sequence length the budget refers to (default 512 SmolLM2, 256 MiniLM)",
    )
    p.add_argument("--solver", default="greedy", choices=sorted(SOLVERS), help="default greedy")
    p.add_argument("--out", required=True, help="rank config JSON to write")
    p.add_argument("--heatmap", default=None, help="heat map picture (default: OUT with .png)")
    p.add_argument(
        "--choices",
        default=None,
        help="comma-separated ranks, ascending, ending at the head dim (default 8..64 SmolLM2, 4..32 MiniLM)",
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
    add_group_split_args(p)
    p.add_argument("--no-cache", action="store_true", help="re-measure the tables and calibration")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(fn=cmd_rank)

    p = sub.add_parser(
        "rank-eval",
        help="fidelity, attention FLOPs and latency of a rank config against full attention",
        description="Load the model the rank config names (refused for other weights), apply the "
        "ranks with the bases of the config's calibration, and report fidelity on the evaluation "
        "text (SmolLM2: perplexity on the evaluation half of lee_background.cor; MiniLM: cosine to "
        "the full embeddings and Pearson/Spearman against the human scores on lee.cor), attention "
        "FLOPs and, with --latency, measured attention time, each against full attention.",
    )
    p.add_argument("config", help="rank config JSON (from `mallocgame rank`)")
    p.add_argument(
        "--eval-windows",
        type=positive_int,
        default=16,
        help="SmolLM2 evaluation windows (default 16 of 73)",
    )
    p.add_argument(
        "--eval-docs",
        type=positive_int,
        default=None,
        help="MiniLM: only the first N lee.cor documents (default all 50)",
    )
    p.add_argument(
        "--latency", action="store_true", help="also time attention (jitted, batch 1) vs full"
    )
    p.add_argument(
        "--latency-seq-len",
        type=positive_int,
        default=None,
        help="sequence length of the timing (default: the config's)",
    )
    p.add_argument(
        "--repeats", type=positive_int, default=3, help="timed repeats (median; default 3)"
    )
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    p.set_defaults(fn=cmd_rank_eval)


# --------------------------------------------------------------------------- heat map
def heatmap_bytes(
    r_qk: list[int],
    r_v: list[int],
    head_dim: int,
    title: str,
    fmt: str,
    groups: tuple[list, list] | None = None,
    kv_groups: int | None = None,
) -> bytes:
    """A layers x {qk, v} heat map of the ranks (``fmt``: png, svg or pdf); with ``groups``
    (per-layer group ranks of q-k and of v), one row per part and key-value group."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if groups is None:
        m = np.asarray([r_qk, r_v], np.float64)
        labels = ["q-k", "v"]
    else:

        def rows(per_layer: list) -> np.ndarray:  # [units, layers]; per-group rows repeated
            w = max(len(g) for g in per_layer)  # where some layer ranks per query head
            return np.asarray([np.repeat(g, w // len(g)) for g in per_layer], np.float64).T

        qk, v = (rows(g) for g in groups)
        m = np.concatenate([qk, v])
        unit = lambda k: "h" if k > (kv_groups or k) else "g"  # noqa: E731 (query head / group)
        labels = [f"q-k {unit(len(qk))}{g}" for g in range(len(qk))] + [
            f"v {unit(len(v))}{g}" for g in range(len(v))
        ]
    n = m.shape[1]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.32 * n + 1.5), 1.4 + 0.4 * len(labels)))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=head_dim, aspect="auto")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks(range(n), [str(i) for i in range(n)], fontsize=7)
    ax.set_xlabel("layer")
    for (i, j), r in np.ndenumerate(m):
        ax.text(
            j,
            i,
            str(int(r)),
            ha="center",
            va="center",
            fontsize=6,
            color="white" if r < 0.6 * head_dim else "black",
        )
    fig.colorbar(im, ax=ax, label="rank", fraction=0.03, pad=0.01)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format=fmt, dpi=150)
    plt.close(fig)
    return buf.getvalue()


def write_heatmap(cfg: Any, path: str | Path, title: str) -> Path:
    from mallocgame.io import atomic_write_bytes

    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    if fmt not in ("png", "svg", "pdf"):
        raise InputError(
            f"unsupported picture format {fmt!r}; use .png, .svg or .pdf",
            str(path),
            field="heatmap",
        )
    groups = (cfg.groups_list("qk"), cfg.groups_list("v")) if cfg.grouped else None
    atomic_write_bytes(
        path,
        heatmap_bytes(
            list(cfg.r_qk),
            list(cfg.r_v),
            cfg.shape.head_dim,
            title,
            fmt,
            groups,
            cfg.shape.n_kv_heads,
        ),
    )
    return path


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


def _init_choices(
    path: str, model: str, model_hash: str, choices: tuple[int, ...], spec: Any
) -> np.ndarray:
    """Choice indices of the rank config at ``path`` (refine's ``--init``), checked against
    this run's model, weights, method, bases' calibration text and choices (its loss windows
    may differ: they steered the search that made the config, not the config)."""
    cfg = _load_config(path)
    if cfg.model != model or cfg.model_hash != model_hash:
        raise InputError(
            f"the config is for {cfg.model} ({cfg.model_hash}), this run for {model} "
            f"({model_hash})",
            path,
            field="model_hash",
        )
    if cfg.method != spec.method or not _spec_of(cfg, path).same_bases(spec):
        raise InputError(
            f"the config's method / bases' calibration ({cfg.method}, "
            f"{cfg.meta.get('calibration')}) differ from this run's ({spec.to_dict()})",
            path,
            field="meta.calibration",
        )
    ch = list(choices)
    out = []
    for i, pair in enumerate(zip(cfg.r_qk, cfg.r_v, strict=True)):
        for kind, r in zip(("r_qk", "r_v"), pair, strict=True):
            if r not in ch:
                raise InputError(
                    f"rank {r} is not one of the choices {ch}", path, field=f"layers[{i}].{kind}"
                )
            out.append(ch.index(r))
    return np.asarray(out, np.int64)


def cmd_rank(args: argparse.Namespace) -> int:
    from mallocgame.cli.main import progress
    from mallocgame.rank import sensitivity as sv
    from mallocgame.rank import solvers
    from mallocgame.rank.config import save_rank_config
    from mallocgame.rank.tables import DEFAULT_CHOICES, RankTables

    t0 = time.perf_counter()
    choices = _parse_choices(args.choices) or DEFAULT_CHOICES[args.model]
    seq_len = args.seq_len or sv.DEFAULT_SEQ_LEN[args.model]
    try:
        probe = RankTables.cost_only(args.model, "0", choices, seq_len, args.method)
    except ValueError as e:
        raise InputError(str(e), field="choices") from None
    # Fail fast on an impossible budget, before any measurement.
    budget = solvers.check_budget(probe, args.budget)
    solvers.load(args.solver)  # "agent unavailable" before measuring anything
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
    d = sv.CalibSpec.default(args.model, args.method)
    spec = sv.CalibSpec(
        args.model, args.cal_bases or d.bases, args.cal_loss or d.loss, d.window, args.method
    )
    init = None
    if args.init is not None:
        if args.solver != "refine":
            raise InputError("--init is for --solver refine", field="init")
        init = _init_choices(args.init, args.model, sv.model_file_hash(args.model), choices, spec)
    use_cache = not args.no_cache
    evaluator = None
    measure = solvers.needs_measured_tables(args.solver, init is not None)
    what = "rank tables" if measure else "model and calibration"
    with progress(f"{args.model}: {what} (calibration text)", quiet=args.json):
        if args.solver in solvers.USES_EVALUATOR or args.group_split > 0:
            evaluator = sv.Evaluator(sv.load_setup(spec, use_cache), choices)
        if measure:
            tables = sv.build_tables(
                args.model,
                choices=choices,
                seq_len=seq_len,
                spec=spec,
                evaluator=evaluator,
                use_cache=use_cache,
                progress=None if args.json else sv._progress_to_stderr,
            )
        else:  # the solver measures what it needs: the costs are enough
            tables = dataclasses.replace(probe, model_hash=sv.model_file_hash(args.model))
    init_cfg = _load_config(args.init) if args.init is not None else None
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
        idx = solvers.solve(
            tables,
            budget,
            args.solver,
            evaluator=evaluator,
            seed=args.seed,
            time_limit=args.time_limit,
            **kw,
        )
    t2 = time.perf_counter()
    calib_loss = float(evaluator(idx[None])[0]) if evaluator is not None else None
    meta = {
        "solver": args.solver,
        "seed": args.seed,
        "choices": list(choices),
        "calibration": spec.to_dict(),
        "flops_fraction": tables.fraction(idx),
        "calibration_loss": calib_loss,
        "tables_cached": bool(tables.meta.get("cached")),
        "tables_seconds": t1 - t0,
        "solve_seconds": t2 - t1,
        "solver_options": {k: v for k, v in kw.items() if k != "init"},
        "init": args.init,
        "evaluations": None if evaluator is None else evaluator.n_evaluated,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    cfg = tables.config(idx, budget=budget, **meta)
    if evaluator is not None and evaluator.group_template is not None:
        cfg = evaluator.keep_groups(cfg)
        init_cfg, evaluator.group_template = cfg, None
    if args.group_split > 0:
        with progress(
            f"splitting ranks among key-value groups ({args.group_split:g} s)", quiet=args.json
        ):
            res, start = group_split(evaluator, cfg, args, init_cfg)
        meta["calibration_loss"] = res.loss
        meta["group_split"] = {**res.summary(), "start": start}
        meta["evaluations"] = evaluator.n_evaluated
        cfg = dataclasses.replace(res.config, meta={**res.config.meta, **meta})
    out = save_rank_config(cfg, args.out)
    heat = Path(args.heatmap) if args.heatmap else out.with_suffix(".png")
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
        print(
            f"{args.model} ({cfg.model_hash}) {args.solver}: budget {budget:g} of full attention FLOPs "
            f"at L={seq_len} -> {meta['flops_fraction']:.4f}"
        )
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


# --------------------------------------------------------------------------- rank-eval
def _load_config(path: str) -> Any:
    from mallocgame.rank.config import load_rank_config

    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", path)
    try:
        return load_rank_config(p)
    except UnicodeDecodeError:
        raise InputError("not a text file", path) from None


def _spec_of(cfg: Any, path: str) -> Any:
    from mallocgame.rank.sensitivity import CalibSpec

    cal = cfg.meta.get("calibration")
    if cal is None:
        return CalibSpec.default(cfg.model, cfg.method)
    if not isinstance(cal, dict):
        raise InputError(f"expected an object, got {cal!r}", path, field="meta.calibration")
    try:
        spec = CalibSpec.from_dict({**CalibSpec.default(cfg.model, cfg.method).to_dict(), **cal})
    except (TypeError, ValueError, KeyError) as e:
        raise InputError(str(e), path, field="meta.calibration") from None
    if spec.model != cfg.model or spec.method != cfg.method:
        raise InputError(
            f"calibration is for {spec.model}/{spec.method}, the config for {cfg.model}/{cfg.method}",
            path,
            field="meta.calibration",
        )
    return spec


def evaluate_config(
    cfg: Any,
    path: str,
    eval_windows: int = 16,
    latency: bool = False,
    latency_seq_len: int | None = None,
    repeats: int = 3,
    eval_docs: int | None = None,
) -> dict[str, Any]:
    """Fidelity, FLOPs and (optionally) latency of a rank config against full attention."""
    from mallocgame.rank import text
    from mallocgame.rank.config import ModelMismatchError
    from mallocgame.rank.lowrank import attention_flops, lowrank_params, minilm_fidelity
    from mallocgame.rank.models import smollm2 as sm
    from mallocgame.rank.sensitivity import load_model, load_setup, model_file_hash

    try:  # the weight file's hash first: refuse before loading the model
        cfg.check_model(cfg.model, model_file_hash(cfg.model), path)
        model = load_model(cfg.model)
        cfg.check_model(model.config.name, model.model_hash, path)
    except ModelMismatchError as e:
        raise InputError(str(e), path, field="model_hash") from None
    spec = _spec_of(cfg, path)
    setup = load_setup(spec)
    params = lowrank_params(model, setup.calib, cfg, bases=setup.bases)
    fl = attention_flops(cfg)
    out: dict[str, Any] = {
        "config": path,
        "model": cfg.model,
        "model_hash": cfg.model_hash,
        "seq_len": cfg.seq_len,
        "method": cfg.method,
        "budget": cfg.budget,
        "solver": cfg.meta.get("solver"),
        "r_qk": list(cfg.r_qk),
        "r_v": list(cfg.r_v),
        "calibration": spec.to_dict(),
        "flops_fraction": fl["fraction"],
        "attention_flops": fl["total"],
        "attention_flops_full": fl["full"],
    }
    t0 = time.perf_counter()
    if cfg.model == "smollm2":
        split = text.background_split()
        w = text.token_windows(
            lambda s: sm.encode(model, s), split.evaluation, spec.window, eval_windows
        )
        full = sm.perplexity(model, w)
        low = sm.perplexity(model, w, params=params)
        out.update(
            eval_windows=len(w),
            window=spec.window,
            ppl_full=full,
            ppl=low,
            loss=float(np.log(low) - np.log(full)),
        )
    else:
        docs, human = text.lee_docs(), text.lee_human_similarity()
        if eval_docs is not None:
            docs, human = docs[:eval_docs], human[:eval_docs, :eval_docs]
        f = minilm_fidelity(model, params, docs, human)
        out.update(eval_docs=len(docs), **f, loss=1.0 - f["cos_mean"])
    out["fidelity_seconds"] = time.perf_counter() - t0
    if latency:
        from mallocgame.rank.latency import attention_latency

        L = latency_seq_len or cfg.seq_len
        lat = attention_latency(model, {"full": model.params, "lowrank": params}, L, repeats)
        out["latency"] = {
            "seq_len": L,
            "repeats": repeats,
            "full_s": lat["full"]["seconds"],
            "lowrank_s": lat["lowrank"]["seconds"],
            "ratio": lat["lowrank"]["seconds"] / lat["full"]["seconds"],
            "flops_fraction": attention_flops(cfg, seq_len=L)["fraction"],
        }
    return out


def cmd_rank_eval(args: argparse.Namespace) -> int:
    from mallocgame.cli.main import progress

    cfg = _load_config(args.config)
    with progress(f"evaluating {args.config}", quiet=args.json):
        r = evaluate_config(
            cfg,
            args.config,
            args.eval_windows,
            args.latency,
            args.latency_seq_len,
            args.repeats,
            args.eval_docs,
        )
    if args.json:
        print(json.dumps(r, indent=1))
        return 0
    solver = f" ({r['solver']})" if r["solver"] else ""
    print(
        f"{args.config}: {r['model']} {r['model_hash']}{solver}, attention FLOPs "
        f"{r['flops_fraction']:.4f} of full at L={r['seq_len']}"
    )
    if r["model"] == "smollm2":
        print(
            f"  perplexity {r['ppl']:.3f} vs full {r['ppl_full']:.3f} "
            f"({r['eval_windows']} evaluation windows of {r['window']} tokens; "
            f"log ratio {r['loss']:.4f})"
        )
    else:
        print(
            f"  cosine to full embeddings: mean {r['cos_mean']:.4f}, min {r['cos_min']:.4f} "
            f"({r['eval_docs']} lee.cor documents)"
        )
        print(
            f"  human scores: Pearson {r['pearson']:.3f} (full {r['pearson_full']:.3f}), "
            f"Spearman {r['spearman']:.3f} (full {r['spearman_full']:.3f})"
        )
    if "latency" in r:
        lat = r["latency"]
        print(
            f"  attention latency at L={lat['seq_len']}: {lat['lowrank_s'] * 1e3:.1f} ms vs full "
            f"{lat['full_s'] * 1e3:.1f} ms (ratio {lat['ratio']:.3f}, FLOPs {lat['flops_fraction']:.3f}; "
            f"median of {lat['repeats']})"
        )
    sys.stdout.flush()
    return 0
