"""The ``bench`` subcommand: ``mallocgame bench {malloc,pack} [INSTANCES...] [options]``.

Wired into the main CLI by ``mallocgame.cli.bench.add_parser(subparsers)``; the handler takes
the parsed ``args`` and returns an exit code (0: every run valid; 1: a run crashed, timed out
or returned an invalid mapping, or an instance was skipped; 130: interrupted, resume with
``--resume``), and raises :class:`mallocgame.errors.InputError` naming the field for bad input.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from mallocgame.bench import (
    distributed,
    rank,
    rank_distributed,
    rank_report,
    render,
    report,
    runner,
)
from mallocgame.bench.plan import BenchConfig
from mallocgame.bench.rank import DEFAULT_BUDGETS, RankBenchConfig
from mallocgame.cli.common import add_ray_args, ray_args
from mallocgame.errors import InputError, MallocGameError
from mallocgame.rank.config import MODEL_SHAPES

DESCRIPTION = """\
Benchmark solvers side by side on many instances, capacities and seeds, with the best
provable bound as the ceiling. malloc: minimise program time (fast/slow memory mapping);
pack: fit every buffer within the capacity (minimalloc's problem) and report the peak.

Writes OUT/runs.jsonl (one JSON line per run), OUT/bounds.jsonl, OUT/results.md, OUT/summary.json,
OUT/pictures/*.png and OUT/solutions/ (best mapping per task). Interrupt with Ctrl-C and
continue with --resume: finished (instance, solver, seed, capacity) runs are skipped.

examples:
  mallocgame bench pack ../shared/datasets/minimalloc-challenging --solvers msa,greedy-size,omnimalloc:supermalloc
  mallocgame bench malloc --suite zoo --capacities 10%,25%,50% --seeds 5
  mallocgame bench malloc ../shared/datasets/ml-traces --solvers msa,restarts,cpsat --time-limit 10
  mallocgame bench rank minilm smollm2 --budgets 0.5,0.3 --solvers uniform,spectral,fisher,greedy
  mallocgame bench malloc ../shared/datasets/ml-traces --solvers msa,restarts --ray auto

rank: a task is a model at a FLOP budget (--budget-kind kv-cache: KV-cache bytes); every rank
solver picks ranks from calibration-text measurements and is judged on held-out text (loss
relative to `uniform`). Writes the same files (runs.jsonl, results.md, summary.json, pictures/
with heat maps of the best configs).
"""  # noqa: E501 (an example command line, kept whole)


def _int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    return v


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``bench`` on the main CLI's subparsers (``set_defaults(fn=cmd_bench)``)."""
    p = subparsers.add_parser(
        "bench",
        help="benchmark solvers (and peers, and CP-SAT's bound) over suites, capacities and seeds",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(p)
    p.set_defaults(fn=cmd_bench)
    return p


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "mode",
        choices=["malloc", "pack", "rank"],
        help="malloc: time objective; pack: fit-all at the capacity; "
        "rank: attention ranks under a FLOP budget",
    )
    p.add_argument(
        "instances",
        nargs="*",
        metavar="INSTANCE",
        help="zoo:NAME (or a zoo name), zoo-small:NAME, tiny:K, a minimalloc CSV or workload "
        "file, or a folder of them (default: the mode's suite: zoo for malloc, challenging for "
        "pack); rank: model names (minilm, smollm2; default minilm)",
    )
    p.add_argument(
        "--suite",
        default=None,
        help="zoo, zoo-small, challenging, traces, tiny (added to INSTANCES)",
    )
    p.add_argument(
        "--solvers",
        default=None,
        help="comma-separated: msa, msa-skip, greedy-size, random, all-slow, restarts, cpsat, "
        "agent (when registered), omnimalloc:NAME (pack only) (default: all baselines, "
        "restarts and cpsat; pack adds omnimalloc peers)",
    )
    p.add_argument(
        "--capacities",
        default=None,
        help="comma-separated: 10%% (of peak live bytes), bytes (1048576, 4MiB), auto (the "
        "number in a minimalloc file name, else 25%% / 100%%), inf (pack: minimise the peak) "
        "(default malloc 10%%,25%%,50%%; pack auto)",
    )
    p.add_argument(
        "--seeds", type=_int, default=3, help="seeds per (instance, capacity, solver) (default 3)"
    )
    p.add_argument(
        "--cpsat-seeds", type=_int, default=1, help="seeds for cpsat, the ceiling (default 1)"
    )
    p.add_argument(
        "--time-limit",
        type=_float,
        default=None,
        help="seconds per run for search solvers (restarts, cpsat, agent, omnimalloc's) "
        "(default 5; rank: none, each solver's own default)",
    )
    p.add_argument(
        "--bound-time-limit",
        type=_float,
        default=None,
        help="seconds for the knapsack MILP bound (default: --time-limit)",
    )
    p.add_argument(
        "--hard-timeout",
        type=_float,
        default=None,
        help="kill a run after this many seconds (default 3 x time limit + 120)",
    )
    p.add_argument(
        "--threads", type=_int, default=2, help="threads for CP-SAT and omnimalloc (default 2)"
    )
    p.add_argument("--target", default="tpuv4i", help="target preset or file (default tpuv4i)")
    p.add_argument(
        "--alignment",
        type=_int,
        default=None,
        help="bytes (default: the target's for malloc, 1 for pack, as minimalloc)",
    )
    p.add_argument(
        "--budgets",
        default=None,
        help="rank: comma-separated fractions of full attention FLOPs, or of the KV cache's bytes "
        "with --budget-kind kv-cache (default 0.5,0.3)",
    )
    p.add_argument(
        "--budget-kind",
        default="flops",
        choices=["flops", "kv-cache"],
        help="rank: what --budgets count: attention FLOPs (default) or the KV cache's bytes per "
        "token (kv-cache)",
    )
    p.add_argument(
        "--eval-windows",
        type=_int,
        default=16,
        help="rank: SmolLM2 held-out 512-token windows (default 16 of 73)",
    )
    p.add_argument(
        "--max-evals",
        type=_int,
        default=150,
        help="rank: greedy's calibration-loss evaluations (default 150)",
    )
    p.add_argument("--out", default=None, help="output folder (default bench-MODE)")
    p.add_argument(
        "--resume", action="store_true", help="continue the bench in --out, skipping finished runs"
    )
    p.add_argument(
        "--report-only",
        action="store_true",
        help="rebuild results.md and pictures from --out's runs.jsonl",
    )
    p.add_argument("--no-pictures", action="store_true", help="skip the pictures")
    p.add_argument(
        "--readme",
        nargs="?",
        const="README.md",
        default=None,
        metavar="PATH",
        help="also write the aggregate table, with the commands that produced it, into PATH's "
        "marked section for this mode (default README.md; markers are added under '## Results' "
        "the first time)",
    )
    p.add_argument(
        "--no-isolate",
        action="store_true",
        help="run solvers in this process (debugging; no per-run RSS)",
    )
    add_ray_args(
        p,
        "make every run a Ray task (malloc, pack: isolated as here; rank: on actors that load "
        "the model once)",
        "the CPUs each run asks Ray for (default 1; give CP-SAT its --threads)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _split(text: str | None, field: str) -> list[str] | None:
    if text is None:
        return None
    items = [t.strip() for t in text.split(",")]
    if any(not t for t in items):
        raise InputError(f"empty entry in {text!r}", field=field)
    return items


def config_from_args(args: argparse.Namespace, argv: list[str] | None = None) -> BenchConfig:
    for field, v in (
        ("seeds", args.seeds),
        ("cpsat-seeds", args.cpsat_seeds),
        ("threads", args.threads),
    ):
        if v < 1:
            raise InputError(f"must be at least 1, got {v}", field=field)
    if args.alignment is not None and args.alignment < 1:
        raise InputError(f"must be positive, got {args.alignment}", field="alignment")
    for field, v in (
        ("time-limit", args.time_limit),
        ("bound-time-limit", args.bound_time_limit),
        ("hard-timeout", args.hard_timeout),
    ):
        if v is not None and not v > 0:
            raise InputError(f"must be positive, got {v}", field=field)
    ray, ray_cpus = ray_args(args)
    command = "mallocgame bench " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:])
    )
    return BenchConfig(
        mode=args.mode,
        out=Path(args.out or f"bench-{args.mode}"),
        instances=list(args.instances),
        suite=args.suite,
        solvers=_split(args.solvers, "solvers"),
        capacities=_split(args.capacities, "capacities"),
        seeds=args.seeds,
        time_limit=5.0 if args.time_limit is None else args.time_limit,
        resume=args.resume,
        target=args.target,
        alignment=args.alignment,
        threads=args.threads,
        cpsat_seeds=args.cpsat_seeds,
        bound_time_limit=args.bound_time_limit,
        hard_timeout=args.hard_timeout,
        isolate=not args.no_isolate,
        progress=not (args.quiet or args.json),
        pictures=not args.no_pictures,
        command=command,
        ray=ray,
        ray_cpus=ray_cpus,
    )


def rank_config_from_args(
    args: argparse.Namespace, argv: list[str] | None = None
) -> RankBenchConfig:
    budgets = []
    for b in _split(args.budgets, "budgets") or [f"{x:g}" for x in DEFAULT_BUDGETS]:
        try:
            budgets.append(float(b))
        except ValueError:
            raise InputError(
                f"expected a fraction such as 0.5, got {b!r}", field="budgets"
            ) from None
    for field, v in (("eval-windows", args.eval_windows), ("max-evals", args.max_evals)):
        if v < 1:
            raise InputError(f"must be at least 1, got {v}", field=field)
    if args.time_limit is not None and not args.time_limit > 0:
        raise InputError(f"must be positive, got {args.time_limit}", field="time-limit")
    names = _split(args.solvers, "solvers") or rank.default_solvers()
    ray, ray_cpus = ray_args(args)
    if ray in MODEL_SHAPES:
        raise InputError(
            f"{ray!r} is a model, not a cluster address: write --ray auto (or --ray after the "
            "models)",
            field="ray",
        )
    command = "mallocgame bench " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:])
    )
    return RankBenchConfig(
        out=Path(args.out or "bench-rank"),
        models=list(args.instances) or ["minilm"],
        budgets=budgets,
        solvers=names,
        seeds=args.seeds,
        time_limit=args.time_limit,
        eval_windows=args.eval_windows,
        max_evals=args.max_evals,
        budget_kind=args.budget_kind,
        resume=args.resume,
        pictures=not args.no_pictures,
        progress=not (args.quiet or args.json),
        command=command,
        ray=ray,
        ray_cpus=ray_cpus,
    )


def cmd_rank_bench(args: argparse.Namespace) -> int:
    out = Path(args.out or "bench-rank")
    if args.report_only:
        paths = rank_report.write_rank_report(out, pictures=not args.no_pictures)
        if args.readme:
            paths["readme"] = _write_readme(args.readme, "rank", out)
        print(
            json.dumps(paths, indent=2)
            if args.json
            else f"wrote {paths['results']}"
            + (f"; updated {paths['readme']}" if "readme" in paths else "")
        )
        return 0
    cfg = rank_config_from_args(args, getattr(args, "argv", None))
    outcome = rank_distributed.run_rank_bench(cfg) if cfg.ray else rank.run_rank_bench(cfg)
    if args.readme:
        outcome["report"]["readme"] = _write_readme(args.readme, "rank", out)
    if args.json:
        print(json.dumps(outcome, indent=2))
    else:
        print(
            f"{outcome['runs_done']} runs done, {outcome['runs_skipped']} already finished; "
            f"{outcome['errors']} raised an error"
        )
        for k, v in outcome["unavailable"].items():
            print(f"unavailable: {k}: {v}")
        print(f"wrote {outcome['report']['results']}")
    return 1 if outcome["errors"] or outcome["unavailable"] else 0


def cmd_bench(args: argparse.Namespace) -> int:
    if args.mode == "rank":
        return cmd_rank_bench(args)

    if args.report_only:
        out = Path(args.out or f"bench-{args.mode}")
        if not (out / "runs.jsonl").exists():
            raise InputError(f"no runs.jsonl in {out}", field="out")
        paths = report.write_report(out, pictures=not args.no_pictures)
        if args.readme:
            paths["readme"] = _write_readme(args.readme, args.mode, out)
        if args.json:
            print(json.dumps(paths, indent=2))
        else:
            print(
                f"wrote {paths['results']}"
                + (f"; updated {paths['readme']}" if "readme" in paths else "")
            )
        return 0
    cfg = config_from_args(args, getattr(args, "argv", None))
    outcome = distributed.run_bench(cfg) if cfg.ray else runner.run_bench(cfg)
    summary = {
        "out": str(outcome.out),
        "runs_done": outcome.runs_done,
        "runs_skipped_as_finished": outcome.runs_skipped,
        "invalid": outcome.invalid,
        "errors": outcome.errors,
        "interrupted": outcome.interrupted,
        "unavailable": outcome.unavailable,
        "skipped_instances": outcome.skipped_instances,
        "outputs": outcome.report,
    }
    if args.readme and outcome.runs_done + outcome.runs_skipped > 0:
        summary["outputs"]["readme"] = _write_readme(args.readme, args.mode, outcome.out)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{outcome.runs_done} runs done, {outcome.runs_skipped} already finished; "
            f"{outcome.errors} crashed or timed out, {outcome.invalid} invalid"
        )
        for k, v in outcome.unavailable.items():
            print(f"unavailable: {k}: {v}")
        for s in outcome.skipped_instances:
            print(f"skipped: {s}")
        print(f"wrote {outcome.report.get('results')}")
        if summary["outputs"].get("readme"):
            print(f"updated {summary['outputs']['readme']}")
    return outcome.exit_code


def _write_readme(readme: str, mode: str, out: Path) -> str:
    section = rank_report.readme_section(out) if mode == "rank" else report.readme_section(out)
    render.update_readme(readme, mode, section)
    return readme


def main(argv: list[str] | None = None) -> int:
    """``python -m mallocgame.cli.bench MODE ...``: the subcommand on its own (until the main
    CLI wires it in, and for scripts)."""
    parser = argparse.ArgumentParser(
        prog="mallocgame bench",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.argv = argv
    try:
        return cmd_bench(args)
    except InputError as e:
        print(f"mallocgame: error: {e}", file=sys.stderr)
        return 2
    except MallocGameError as e:
        print(f"mallocgame: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
