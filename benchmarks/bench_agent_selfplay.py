"""Self-play throughput of the agent vs. bare mctx search, same network and batch.

    .venv/bin/python benchmarks/bench_agent_selfplay.py [--num-envs 128] [--simulations 16]
    .venv/bin/python benchmarks/bench_agent_selfplay.py --env malloc --workload zoo:mlp_train \
        --capacity 25% --hidden 128 --latent 64

"bare" runs the jitted search (representation + mctx + dynamics/prediction) back to back on
device-resident inputs and blocks on the result: the ceiling for one search per move.
"self-play" runs :class:`agent.selfplay.Actor` on the reference :class:`agent.KnapsackEnv`
(``--env knapsack``, tiny games: many finish every move) or on the mallocGame itself
(``--env malloc``: :class:`mallocgame.memory.env.MallocEnv`, native games of one workload at one
capacity, the shipped agent's network shape with ``--hidden 128 --latent 64``): search, host
transfer, env step, trajectory recording, replay insertion of finished games.
The ratio self-play / bare is the fraction of search throughput the actor keeps (goal >= 0.5).
Both are measured in the same process, alternating, after a warm-up compile.
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

from agent.config import NetworkConfig, ReplayConfig, SearchConfig, TrainConfig
from agent.env import KnapsackEnv
from agent.networks import init_params, make_networks, num_params
from agent.replay import ReplayBuffer
from agent.search import make_search_fn
from agent.selfplay import Actor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-envs", type=int, default=128)
    ap.add_argument("--env", choices=["knapsack", "malloc"], default="knapsack")
    ap.add_argument("--num-items", type=int, default=8, help="knapsack: items per game")
    ap.add_argument("--workload", default="zoo:mlp_train", help="malloc: the workload")
    ap.add_argument("--capacity", default="25%", help="malloc: fast-memory capacity")
    ap.add_argument("--simulations", type=int, default=16)
    ap.add_argument("--policy", choices=["gumbel", "muzero"], default="gumbel")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--latent", type=int, default=128)
    ap.add_argument("--seconds", type=float, default=5.0, help="per measurement round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()

    if args.env == "malloc":
        from mallocgame import api
        from mallocgame.memory.env import MallocEnv

        problem = api.make_problem(api.load_workload(args.workload), args.capacity)
        env = MallocEnv([problem], args.num_envs, seed=0)
    else:
        env = KnapsackEnv(args.num_envs, num_items=args.num_items, seed=0)
    net_cfg = NetworkConfig(hidden_size=args.hidden, latent_size=args.latent)
    networks = make_networks(env.observation_size, env.num_actions, net_cfg)
    params = init_params(networks, jax.random.PRNGKey(0))
    search = make_search_fn(
        networks, SearchConfig(policy=args.policy, num_simulations=args.simulations)
    )
    replay = ReplayBuffer(env.observation_size, env.num_actions, ReplayConfig(capacity=200_000))
    actor = Actor(env, search, replay, TrainConfig(num_envs=args.num_envs))

    obs, legal = env.reset()
    dev = jax.device_put((obs, legal, env.moves_left()))
    key = jax.random.PRNGKey(1)
    t0 = time.perf_counter()
    jax.block_until_ready(search(params, key, *dev))
    compile_s = time.perf_counter() - t0
    actor.step(params, key)

    def bare(seconds: float) -> float:
        n, start = 0, time.perf_counter()
        k = key
        while time.perf_counter() - start < seconds:
            k, sub = jax.random.split(k)
            jax.block_until_ready(search(params, sub, *dev))
            n += 1
        return n * args.num_envs / (time.perf_counter() - start)

    def selfplay(seconds: float) -> float:
        moves0, start = actor.moves, time.perf_counter()
        k = key
        while time.perf_counter() - start < seconds:
            k, sub = jax.random.split(k)
            actor.step(params, sub)
        return (actor.moves - moves0) / (time.perf_counter() - start)

    bare_rates, play_rates = [], []
    for _ in range(args.rounds):
        bare_rates.append(bare(args.seconds))
        play_rates.append(selfplay(args.seconds))
    b, p = float(np.median(bare_rates)), float(np.median(play_rates))
    result = {
        "device": str(jax.devices()[0]),
        "env": args.env if args.env == "knapsack" else f"malloc {args.workload} {args.capacity}",
        "num_envs": args.num_envs,
        "simulations": args.simulations,
        "policy": args.policy,
        "params": num_params(params),
        "compile_s": round(compile_s, 2),
        "bare_moves_per_s": round(b, 1),
        "selfplay_moves_per_s": round(p, 1),
        "ratio": round(p / b, 3),
        "games_finished": actor.games,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")


if __name__ == "__main__":
    main()
