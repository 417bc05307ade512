"""The agent's subcommands of the ``mallocgame`` CLI: ``train`` and ``optimize``.

``add_parsers(subparsers)`` registers them (called by :func:`mallocgame.cli.main.build_parser`).
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from mallocgame.cli.argtypes import fraction, nonnegative_float
from mallocgame.cli.common import (
    add_problem_args,
    add_ray_args,
    err,
    fmt_bytes,
    problem_from_args,
    progress,
    ray_args,
)
from mallocgame.errors import InputError
from mallocgame.memory import emit, solvers, splits
from mallocgame.memory.problem import Solution


# --------------------------------------------------------------------------- parsers
def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "optimize",
        help="map a workload with the trained agent (search + improvement within a budget), "
        "next to msa",
        description="Play the workload with the trained MuZero agent (batched search over its "
        "learned model: one greedy and several sampled games), keep improving within --budget "
        "seconds by an exact local search guided by the agent's policy, and write the best valid "
        "mapping found. Prints the agent's own result and msa's side by side.",
    )
    add_problem_args(p, capacity_default=None)
    p.add_argument(
        "--budget",
        type=nonnegative_float,
        default=10.0,
        help="seconds of wall-clock (default 10; 0 = the agent's games only). The agent's games "
        "take at most --agent-share of it (the greedy game always completes), the local search "
        "the rest and at least (1 - share) x budget",
    )
    p.add_argument(
        "--agent-share",
        type=fraction,
        default=None,
        help="fraction of the budget the agent's games may take before the local search "
        "(default 0.5)",
    )
    p.add_argument(
        "--out", help="mapping CSV; OUT.json and OUT.msa_overrides.txtpb are written beside it"
    )
    p.add_argument(
        "--policy",
        default=None,
        help="agent checkpoint (default: $MALLOCGAME_POLICY, else the shipped "
        "mallocgame/memory/pretrained/policy.npz)",
    )
    p.add_argument(
        "--copies",
        type=int,
        default=8,
        help="games the agent plays at once: 1 greedy + the rest sampled (default 8)",
    )
    p.add_argument(
        "--simulations",
        type=int,
        default=None,
        help="search simulations per move (default: as trained)",
    )
    p.add_argument(
        "--no-improve",
        action="store_true",
        help="only the agent's own games (more sampled games within the budget)",
    )
    p.add_argument(
        "--compare-restarts",
        action="store_true",
        help="also run the restarts baseline with the same wall-clock, for the table",
    )
    p.set_defaults(fn=cmd_optimize)

    p = sub.add_parser(
        "train",
        help="train the MuZero agent on the training split (checkpoints, resume, curves)",
        description="Self-play training of the MuZero agent on the problems of a split (every "
        "workload x capacity). Writes OUT/checkpoint.npz (atomically, every --checkpoint-every "
        "updates; --resume continues from it), OUT/policy.npz (the small inference checkpoint), "
        "OUT/curves.csv and OUT/curves.png.",
    )
    p.add_argument("--out", default="runs/agent", help="run folder (default runs/agent)")
    p.add_argument(
        "--split",
        default="train",
        help="workload split (train | train-wide | validation | heldout); default train",
    )
    p.add_argument(
        "--capacities",
        default="10%,25%,50%",
        help="fractions of peak live bytes (default 10%%,25%%,50%%)",
    )
    p.add_argument("--target", default="tpuv4i")
    p.add_argument(
        "--max-buffers",
        type=int,
        default=400,
        help="skip workloads with more buffers (default 400)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=2000,
        help="learner updates in total, over resumes (default 2000)",
    )
    p.add_argument(
        "--minutes", type=nonnegative_float, default=None, help="stop after this much wall time"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--resume", action="store_true", help="continue from OUT/checkpoint.npz if it exists"
    )
    p.add_argument(
        "--reward",
        choices=["dense", "ranked"],
        default="dense",
        help="dense: time saved per move; ranked: +1/-1/0 per game against msa's return",
    )
    p.add_argument("--num-envs", type=int, default=32)
    p.add_argument("--simulations", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--latent", type=int, default=64)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument(
        "--eval-every",
        type=int,
        default=500,
        help="held-out greedy evaluation every N updates (0 = off; monitoring only)",
    )
    p.add_argument(
        "--val-every",
        type=int,
        default=0,
        help="validation every N updates (0 = off): OUT/policy.npz is then the policy that "
        "scores best on the validation split (OUT/best.json says which update), "
        "OUT/last-policy.npz the last",
    )
    p.add_argument(
        "--val-split",
        default="validation",
        help="the split that selects the policy (default validation)",
    )
    p.add_argument(
        "--val-copies",
        type=int,
        default=1,
        help="games per validation problem, 1 greedy + sampled; the best counts (default 1)",
    )
    p.add_argument(
        "--no-demos",
        action="store_true",
        help="do not seed the replay with msa / locally improved lines",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="self-play workers beside one learner (default: none, the one-process trainer; "
        "2 with --ray); without --ray they take turns in this process",
    )
    add_ray_args(
        p,
        "run the self-play workers as Ray actors (the learner stays here)",
        "the CPUs each worker asks Ray for (default 1)",
    )
    p.add_argument(
        "--moves-per-task",
        type=int,
        default=8,
        help="batched moves a worker plays between two parameter updates (default 8)",
    )
    p.add_argument(
        "--publish-every",
        type=int,
        default=10,
        help="learner updates between publications of the parameters (default 10)",
    )
    p.add_argument(
        "--max-staleness",
        type=int,
        default=4,
        help="publications a worker's parameters may be behind; older games are dropped "
        "(default 4)",
    )
    p.add_argument("--json", action="store_true", help="print the run summary as JSON")
    p.set_defaults(fn=cmd_train)


# --------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    from mallocgame.memory.train import TrainOptions, train_run  # deferred: imports JAX

    splits.get_split(args.split)
    if args.val_every:
        splits.get_split(args.val_split)
        if args.val_split == args.split:
            raise InputError(
                "the validation split must differ from the training split", field="val-split"
            )
    caps = tuple(c.strip() for c in args.capacities.split(",") if c.strip())
    if not caps:
        raise InputError("no capacity given", field="capacities")
    for name, v in (
        ("steps", args.steps),
        ("num-envs", args.num_envs),
        ("simulations", args.simulations),
        ("hidden", args.hidden),
        ("latent", args.latent),
        ("max-buffers", args.max_buffers),
        ("val-copies", args.val_copies),
        ("moves-per-task", args.moves_per_task),
        ("publish-every", args.publish_every),
    ):
        if v <= 0:
            raise InputError(f"must be positive, got {v}", field=name)
    if args.max_staleness < 0:
        raise InputError(f"must be >= 0, got {args.max_staleness}", field="max-staleness")
    ray, ray_cpus = ray_args(args)
    workers = args.workers if args.workers is not None else (2 if ray else 0)
    if workers < 0 or (ray and workers == 0):
        raise InputError(
            f"must be positive{' with --ray' if ray else ' (or 0: none)'}, got {workers}",
            field="workers",
        )
    o = TrainOptions(
        out=args.out,
        split=args.split,
        capacities=caps,
        target=args.target,
        max_buffers=args.max_buffers,
        steps=args.steps,
        minutes=args.minutes,
        seed=args.seed,
        resume=args.resume,
        reward_mode=args.reward,
        num_envs=args.num_envs,
        num_simulations=args.simulations,
        hidden=args.hidden,
        latent=args.latent,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        val_every=max(args.val_every, 0),
        val_split=args.val_split,
        val_copies=args.val_copies,
        demos=not args.no_demos,
        workers=workers,
        ray=ray,
        ray_cpus=ray_cpus,
        moves_per_task=args.moves_per_task,
        publish_every=args.publish_every,
        max_staleness=args.max_staleness,
        quiet=args.json,
    )
    summary = train_run(o)
    if args.json:
        print(emit.dumps(summary))
    else:
        last = summary["last_record"]
        nan = float("nan")
        print(
            f"trained {summary['updates']} updates, {summary['games']} games, "
            f"{summary['env_moves']} moves in {summary['wall_time_s']:.0f} s "
            f"(this process {summary['this_process_s']:.0f} s)"
            + (
                f", {summary['workers']} workers{' on Ray' if summary['ray'] else ''} "
                f"({summary['worker_failures']} lost chunks, {summary['stale_dropped']} stale)"
                if summary["workers"]
                else ""
            )
        )
        if last:
            print(
                f"last record: return {last.get('return', nan):.3f} "
                f"vs msa {last.get('baseline', nan):.3f} (scaled), not worse than msa in "
                f"{100 * last.get('not_worse_rate', nan):.0f}% of recent games"
            )
        sel = summary.get("selected")
        if sel:
            print(
                f"picked on validation ({sel['split']}, {sel['problems']} problems): "
                f"update {sel['step']}, speed-up over msa {sel['val_score']:.4f}x "
                f"(geometric mean), wins {100 * sel['val_win_rate']:.0f}%, "
                f"losses {100 * sel['val_loss_rate']:.0f}%"
            )
        for k in ("checkpoint", "policy", "last_policy", "curves_csv", "curves_png"):
            print(f"wrote     {k}: {summary[k]}")
    return 0


# --------------------------------------------------------------------------- optimize
def _row(
    name: str, time_s: float, all_slow: float, msa_time: float, wall: float | None, note: str = ""
) -> dict[str, Any]:
    return {
        "solver": name,
        "time_s": time_s,
        "speedup_vs_all_slow": all_slow / time_s if time_s > 0 else 1.0,
        "speedup_vs_msa": msa_time / time_s if time_s > 0 else 1.0,
        "wall_s": wall,
        "note": note,
    }


def cmd_optimize(args: argparse.Namespace) -> int:
    # deferred: the agent's modules import JAX and haiku
    from mallocgame.memory.solvers.agent import AGENT_SHARE, agent_solve
    from mallocgame.memory.solvers.policy import load_agent

    if args.copies < 1:
        raise InputError(f"must be at least 1, got {args.copies}", field="copies")
    if args.simulations is not None and args.simulations < 1:
        raise InputError(f"must be at least 1, got {args.simulations}", field="simulations")
    problem = problem_from_args(args)
    with progress("loading the agent", quiet=args.json):
        agent = load_agent(args.policy, args.simulations)
    with progress(
        f"agent playing ({args.copies} games) and improving for {args.budget:g} s", quiet=args.json
    ):
        t0 = time.perf_counter()
        share = AGENT_SHARE if args.agent_share is None else args.agent_share
        offsets, extra = agent_solve(
            problem,
            budget=args.budget,
            seed=args.seed,
            copies=args.copies,
            improve_search=not args.no_improve,
            agent=agent,
            agent_share=share,
        )
        wall = time.perf_counter() - t0 - extra["setup_s"]
    order = extra.pop("order", None)
    solution = Solution(problem, "agent", offsets, wall, extra)
    msa = solvers.solve(problem, "msa", seed=args.seed)
    all_slow = problem.all_slow_time
    msa_time = msa.time_s
    best_time = solution.time_s

    def t_of(ret: float) -> float:  # a game's return is the fraction of the all-slow time saved
        return all_slow * (1.0 - ret)

    rows = []
    if problem.objective == "time":
        rows.append(
            _row(
                "agent (greedy game)",
                t_of(extra["agent_greedy"]),
                all_slow,
                msa_time,
                None,
                "one greedy search game",
            )
        )
        rows.append(
            _row(
                "agent_raw",
                t_of(extra["agent_raw"]),
                all_slow,
                msa_time,
                extra["agent_wall_s"],
                f"best of the agent's {extra['agent_games']} games, no heuristic",
            )
        )
    rows.append(
        _row(
            "best (agent + search)",
            best_time,
            all_slow,
            msa_time,
            wall,
            f"written; from {extra['best_source']}",
        )
    )
    rows.append(_row("msa", msa_time, all_slow, msa_time, msa.wall_s, "XLA's heuristic"))
    if problem.objective == "time":
        rows.append(
            _row(
                "msa-skip",
                t_of(extra["msa_skip_return"]),
                all_slow,
                msa_time,
                None,
                "msa, lowest-density buffers left slow",
            )
        )
    restarts = None
    if args.compare_restarts:
        with progress(f"restarts for {wall:.1f} s", quiet=args.json):
            restarts = solvers.solve(
                problem, "restarts", seed=args.seed, time_limit=max(wall, args.budget)
            )
        rows.append(
            _row(
                "restarts", restarts.time_s, all_slow, msa_time, restarts.wall_s, "same wall-clock"
            )
        )

    summary = solution.summary()
    summary["input"] = str(args.input)
    summary["budget_s"] = args.budget
    summary["msa"] = msa.summary()
    summary["agent"] = {
        k: extra[k]
        for k in ("agent_greedy", "agent_raw", "agent_games", "agent_wall_s", "policy")
        if k in extra
    }
    if problem.objective == "time":
        summary["agent"]["agent_raw_time_s"] = t_of(extra["agent_raw"])
        summary["agent"]["agent_raw_speedup_vs_msa"] = msa_time / t_of(extra["agent_raw"])
    summary["split"] = extra["split"]  # measured time of the agent's games and of the local search
    summary["speedup_vs_msa"] = msa_time / best_time if best_time > 0 else 1.0
    summary["comparison"] = rows
    if restarts is not None:
        summary["restarts"] = restarts.summary()
    summary["note"] = (
        "agent_raw: the agent's own games only; best: the best of the agent's games, msa's and "
        "msa-skip's lines and the local search guided by the agent (never worse than msa)"
    )
    paths = emit.write_outputs(solution, args.out, summary, order=order) if args.out else {}
    summary["outputs"] = paths
    if args.json:
        print(emit.dumps(summary))
    else:
        w = problem.workload
        print(
            f"{w.name}: {w.num_buffers} buffers, peak live {fmt_bytes(w.peak_live_bytes())}; "
            f"target {problem.target.name}, fast capacity {fmt_bytes(problem.capacity)}; "
            f"objective {problem.objective}; budget {args.budget:g} s"
        )
        print(
            f"all slow {all_slow * 1e6:.3f} us; "
            f"unlimited fast memory {problem.lower_bound_time * 1e6:.3f} us; "
            f"agent setup (load + compile, not in the budget) {extra['setup_s']:.1f} s"
        )
        header = (
            f"{'solver':<24} {'time (us)':>12} {'speed-up':>9} {'vs msa':>8} {'wall (s)':>9}  note"
        )
        sp = extra["split"]
        print(
            f"split     agent games {sp['agent_s']:.2f} s ({extra['agent_games']} games"
            + (
                f", sampled copies dropped at move {sp['sampled_dropped_at_move']}"
                if sp["sampled_dropped_at_move"]
                else ""
            )
            + f"), local search {sp['improve_s']:.2f} s "
            f"({extra['improve_evaluations']} evaluations)"
            + (
                f"; {sp['over_budget_s']:.2f} s over the budget (the greedy game is always played)"
                if sp["over_budget_s"] > 0.05
                else ""
            )
        )
        print(header)
        print("-" * (len(header) + 30))
        for r in rows:
            wall_txt = f"{r['wall_s']:.2f}" if r["wall_s"] is not None else "-"
            print(
                f"{r['solver']:<24} {r['time_s'] * 1e6:>12.3f} {r['speedup_vs_all_slow']:>8.4f}x "
                f"{r['speedup_vs_msa']:>7.4f}x {wall_txt:>9}  {r['note']}"
            )
        if problem.objective == "fit-all":
            print(
                f"fit-all   agent {'solved' if summary.get('solved') else 'NOT solved'} "
                f"({summary['placed_buffers']} of {w.num_buffers} placed); msa "
                f"{'solved' if summary['msa'].get('solved') else 'NOT solved'} "
                f"({summary['msa']['placed_buffers']} placed)"
            )
        problems = "; ".join(summary["problems"][:3])
        print(f"valid     {'yes' if summary['valid'] else 'NO: ' + problems}")
        for k, v in paths.items():
            print(f"wrote     {k}: {v}")
    if not summary["valid"]:
        err("the mapping is invalid: " + "; ".join(summary["problems"][:3]))
        return 1
    return 0
