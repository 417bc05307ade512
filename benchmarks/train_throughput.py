"""Training throughput: self-play moves and learner updates per second, the one-process trainer
against self-play workers (in this process, and as Ray actors), in the same run.

    .venv/bin/python benchmarks/train_throughput.py [--workloads zoo:mlp_train,zoo:gpt2_train]
        [--capacities 10%,25%,50%] [--modes trainer,local:1,ray:1,ray:2] [--steps 300]
        [--json out/train_throughput.json]

Every mode trains the agent of ``mallocgame train`` (its default network, search and replay
ratio: 0.5 updates per batched move of 32 games) on the same problems, from scratch: first
``--warm`` updates (compiles, the replay filling to its minimum), then ``--steps`` updates,
timed. Reported: single-game moves per second that reached the learner, updates per second,
and their ratio to the one-process trainer. Modes: ``trainer`` (agent.trainer.Trainer),
``local:N`` (AsyncTrainer, N workers taking turns in this process), ``ray:N`` (N Ray actors,
``--ray-cpus`` each, on a Ray started here with ``--ray-total-cpus``; the learner stays in
this process).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

from agent.distributed import AsyncTrainer, LocalLauncher, RayLauncher
from agent.trainer import Trainer
from mallocgame import api
from mallocgame.io import atomic_write_text, describe_host
from mallocgame.memory.env import PreparedProblem
from mallocgame.memory.train import EnvFactory, TrainOptions, make_config


def build(mode: str, factory: EnvFactory, o: TrainOptions, ray_cpus: float):
    cfg = make_config(o)
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, checkpoint_path=None))
    if mode == "trainer":
        return Trainer(factory, cfg, seed=0)
    kind, _, n = mode.partition(":")
    launcher = LocalLauncher() if kind == "local" else RayLauncher(num_cpus=ray_cpus)
    return AsyncTrainer(factory, cfg, seed=0, workers=int(n or 1), launcher=launcher)


def measure(trainer, warm: int, steps: int) -> dict:
    trainer.train(warm)
    m0, u0, t0 = trainer.moves, trainer.updates, time.perf_counter()
    trainer.train(steps)
    dt = time.perf_counter() - t0
    out = {
        "moves_per_s": (trainer.moves - m0) / dt,
        "updates_per_s": (trainer.updates - u0) / dt,
        "seconds": dt,
        "updates": trainer.updates - u0,
    }
    if isinstance(trainer, AsyncTrainer):
        lags = [r["param_lag"] for r in trainer.curves if r.get("param_lag") == r.get("param_lag")]
        out["param_lag"] = sum(lags) / len(lags) if lags else None
        out["worker_failures"] = trainer.worker_failures
        out["stale_dropped"] = trainer.stale_dropped
        trainer.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="zoo:mlp_train,zoo:gpt2_train")
    ap.add_argument("--capacities", default="10%,25%,50%")
    ap.add_argument("--modes", default="trainer,local:1,ray:1,ray:2")
    ap.add_argument("--warm", type=int, default=50)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--ray-cpus", type=float, default=1.0)
    ap.add_argument("--ray-total-cpus", type=int, default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    problems = [
        PreparedProblem(api.make_problem(api.load_workload(w), c))
        for w in args.workloads.split(",")
        for c in args.capacities.split(",")
    ]
    o = TrainOptions(out="/tmp/never")
    factory = EnvFactory(problems, o.reward_scale)
    modes = args.modes.split(",")
    if any(m.startswith("ray") for m in modes):
        import ray

        ray.init(num_cpus=args.ray_total_cpus, include_dashboard=False, logging_level="WARNING")
    rows = []
    for mode in modes:
        t = time.perf_counter()
        trainer = build(mode, factory, o, args.ray_cpus)
        setup_s = time.perf_counter() - t
        r = {"mode": mode, "setup_s": setup_s, **measure(trainer, args.warm, args.steps)}
        rows.append(r)
        print(json.dumps(r), flush=True)
    ref = next((r for r in rows if r["mode"] == "trainer"), rows[0])
    print(f"\n{len(problems)} problems ({args.workloads} x {args.capacities}); {describe_host()}")
    print("| mode | moves/s | updates/s | vs trainer (moves) | vs trainer (updates) | lag |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        lag = r.get("param_lag")
        print(
            f"| {r['mode']} | {r['moves_per_s']:.0f} | {r['updates_per_s']:.1f} | "
            f"{r['moves_per_s'] / ref['moves_per_s']:.2f}x | "
            f"{r['updates_per_s'] / ref['updates_per_s']:.2f}x | "
            f"{'-' if lag is None else f'{lag:.2f}'} |"
        )
    if args.json:
        payload = {"rows": rows, "machine": describe_host(), "args": vars(args)}
        atomic_write_text(args.json, json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
