"""The ``agent`` rank solver: a small MuZero learns the rank game of one model and budget.

:func:`solve` (the registry's ``agent``, ``mallocgame.rank.agent:solve``):

1. **Train.** A :class:`agent.Trainer` (``gumbel_muzero``, few simulations) plays
   :class:`~mallocgame.rank.env.RankEnv` (the tables at the budget, optionally also at
   ``extra_budgets`` to generalise) for about ``train_fraction`` of ``time_limit``. The first
   ``surrogate_fraction`` of that time its games are scored by the free additive surrogate
   (:func:`~mallocgame.rank.env.additive_surrogate`: the one-part sensitivities added up,
   anchored at the measured uniform config), so it learns the knapsack side of the game from
   thousands of games; after that every game it finishes is measured by the evaluator
   (calibration loss, memoised).
2. **Play.** The trained agent plays ``num_envs`` copies of the game with batched search: copy 0
   greedily (the most weighted move of the improved policy), the others sampled, round after
   round until the time limit (at least one round; a round's measurements may overrun it).
3. **Return** the config with the lowest measured calibration loss among everything played
   (training and play) and the uniform config (the env's baseline). All of them are measured
   on calibration text only, so picking the best is part of the solver, not a peek at the test.

:func:`train_and_play` returns the whole :class:`AgentResult` (agent-only best, greedy line,
uniform loss, evaluations, curve).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mallocgame.rank.env import Evaluator, RankEnv, RankTask, additive_surrogate
from mallocgame.rank.tables import RankTables

#: seconds of training + play when ``time_limit`` is None
DEFAULT_TIME_LIMIT = 60.0


@dataclasses.dataclass
class AgentResult:
    """What :func:`train_and_play` found.

    ``choice`` / ``loss``: the best config and its calibration loss; ``source``: ``"agent"``
    (played by the agent, in training or in play) or ``"uniform"``. ``agent_choice`` /
    ``agent_loss``: the best config the agent played; ``greedy_choice`` / ``greedy_loss``: the
    last greedy line; ``uniform_choice`` / ``uniform_loss``: the baseline.
    """

    choice: np.ndarray
    loss: float
    source: str
    agent_choice: np.ndarray
    agent_loss: float
    greedy_choice: np.ndarray
    greedy_loss: float
    uniform_choice: np.ndarray
    uniform_loss: float
    fraction: float
    evaluations: int
    games: int
    surrogate_games: int
    rounds: int
    updates: int
    train_s: float
    play_s: float
    curve: list[dict[str, float]]


class SurrogateEnvFactory:
    """``factory(num_envs, seed)`` -> the surrogate :class:`RankEnv` of ``tasks`` (picklable:
    the tables and the additive surrogates travel to the self-play workers)."""

    def __init__(self, tasks: list[RankTask], shaping: bool) -> None:
        self.tasks, self.shaping = tasks, shaping

    def __call__(self, num_envs: int, seed: int) -> RankEnv:
        return RankEnv(self.tasks, num_envs=num_envs, seed=seed, shaping=self.shaping)


def _train_on_workers(
    trainer: Any,
    surrogate_env: RankEnv,
    shaping: bool,
    config: Any,
    seed: int,
    workers: int,
    ray: bool,
    ray_cpus: float,
    until: float,
    cap: float,
    min_updates: int,
) -> int:
    """The surrogate part of training on self-play workers sharing ``trainer``'s learner, until
    ``until`` (or ``cap`` updates; at least ``min_updates``); returns the games played."""
    from agent.distributed import AsyncTrainer, LocalLauncher, RayLauncher

    launcher = RayLauncher(num_cpus=ray_cpus) if ray else LocalLauncher()
    factory = SurrogateEnvFactory([p.task for p in surrogate_env.pool], shaping)
    async_trainer = AsyncTrainer(
        factory, config, seed, workers=workers, launcher=launcher, learner=trainer.learner
    )
    try:
        budget = 10**9 if not np.isfinite(cap) else max(int(cap) - trainer.updates, 0)
        async_trainer.train(budget, deadline=until)
        if trainer.updates < min_updates:
            async_trainer.train(min(min_updates, budget) - trainer.updates)
    finally:
        async_trainer.close()
    return async_trainer.games


def agent_config(
    num_envs: int = 16,
    num_simulations: int = 8,
    hidden_size: int = 256,
    latent_size: int = 128,
    num_parts: int = 12,
    batch_size: int = 64,
    unroll_steps: int = 3,
    learning_rate: float = 3e-3,
) -> Any:
    """The small :class:`agent.Config` the solver trains (learning starts after one round of
    games, ``num_envs * num_parts`` positions)."""
    from agent.config import Config, NetworkConfig, ReplayConfig, SearchConfig, TrainConfig

    return Config(
        network=NetworkConfig(hidden_size=hidden_size, latent_size=latent_size),
        search=SearchConfig(policy="gumbel", num_simulations=num_simulations),
        replay=ReplayConfig(capacity=50_000, min_size=num_envs * num_parts),
        train=TrainConfig(
            num_envs=num_envs,
            batch_size=batch_size,
            unroll_steps=unroll_steps,
            learning_rate=learning_rate,
            warmup_steps=20,
            log_every=0,
            updates_per_actor_step=1.0,
        ),
    )


def solve(
    tables: RankTables,
    budget: float,
    *,
    evaluator: Evaluator,
    seed: int = 0,
    time_limit: float | None = None,
    **kw: Any,
) -> np.ndarray:
    """int64[P]: one choice index per part, within ``budget`` (a fraction of the full
    attention FLOPs), the best measured config of a MuZero agent trained for about
    ``time_limit`` seconds (default :data:`DEFAULT_TIME_LIMIT`). ``kw``: see
    :func:`train_and_play`."""
    return train_and_play(
        tables, budget, evaluator=evaluator, seed=seed, time_limit=time_limit, **kw
    ).choice


def train_and_play(
    tables: RankTables,
    budget: float,
    *,
    evaluator: Evaluator,
    seed: int = 0,
    time_limit: float | None = None,
    num_envs: int = 16,
    num_simulations: int = 8,
    hidden_size: int = 256,
    latent_size: int = 128,
    train_fraction: float = 0.8,
    surrogate_fraction: float = 0.5,
    min_updates: int = 0,
    max_updates: int | None = None,
    max_rounds: int | None = None,
    extra_budgets: Sequence[float] = (),
    shaping: bool = True,
    config: Any = None,
    progress: Callable[[dict[str, float]], Any] | None = None,
    workers: int = 0,
    ray: bool = False,
    ray_cpus: float = 1.0,
) -> AgentResult:
    """Trains, plays and picks (module doc).

    Training runs until ``train_fraction * time_limit`` seconds after the call (the first
    ``surrogate_fraction`` of what is left once the trainer is built on the additive
    surrogate), but for at
    least ``min_updates`` and at most ``max_updates`` learner updates (``min_updates`` may
    overrun the time limit: for runs that must learn a fixed amount whatever the machine's
    load, e.g. tests). Play stops at the time limit or after ``max_rounds`` rounds (one at
    least). ``config`` (an :class:`agent.Config`) overrides the small default of
    :func:`agent_config`; ``progress(record)`` is called about once a second of training with
    ``{"time", "updates", "games", "best_loss", "evaluations"}``.

    ``workers`` > 0: the surrogate part of training plays on that many self-play workers beside
    the learner (:class:`agent.distributed.AsyncTrainer` sharing the trainer's learner), as
    Ray actors of ``ray_cpus`` CPUs on the cluster this process joined when ``ray`` (else in
    this process); the measured part stays here, where the evaluator is.
    """
    start = time.perf_counter()
    limit = DEFAULT_TIME_LIMIT if time_limit is None else float(time_limit)
    if not np.isfinite(limit) or limit <= 0:
        raise ValueError(f"time_limit must be a positive number of seconds, got {time_limit}")
    if not 0.0 <= train_fraction <= 1.0:
        raise ValueError(f"train_fraction must be in [0, 1], got {train_fraction}")
    if not 0.0 <= surrogate_fraction <= 1.0:
        raise ValueError(f"surrogate_fraction must be in [0, 1], got {surrogate_fraction}")
    tasks = [RankTask(tables, float(budget))] + [RankTask(tables, float(b)) for b in extra_budgets]

    # One env for the whole run, so its memo and records hold every game the agent plays.
    env = RankEnv(tasks, evaluator=evaluator, num_envs=num_envs, seed=seed, shaping=shaping)
    if config is None:
        config = agent_config(
            num_envs=num_envs,
            num_simulations=num_simulations,
            hidden_size=hidden_size,
            latent_size=latent_size,
            num_parts=tables.num_parts,
        )
    elif config.train.num_envs != num_envs:
        config = config.replace(train__num_envs=num_envs)

    # The first part of training plays against the additive surrogate (free to evaluate), with
    # the same scale and offset as the measured env, so its returns are on the same footing.
    surrogate_env = None
    if surrogate_fraction > 0:
        surrogate_env = RankEnv(
            [
                RankTask(
                    p.tables,
                    p.budget_fraction,
                    additive_surrogate(p.tables, p.uniform, p.uniform_loss),
                )
                for p in env.pool
            ],
            num_envs=num_envs,
            seed=seed,
            shaping=shaping,
        )

    def factory(n: int, _seed: int) -> RankEnv:
        if n != env.num_envs:
            raise ValueError(f"the trainer asks for {n} games, the env has {env.num_envs}")
        return surrogate_env if surrogate_env is not None else env

    from agent.selfplay import Actor
    from agent.trainer import Trainer

    trainer = Trainer(factory, config, seed=seed)
    task0 = env.task(0)
    # the surrogate's share of the training time left once the trainer is built (its first
    # compilations fall in it too: surrogate games are free, measured ones are not)
    ready = time.perf_counter()
    surrogate_end = ready + surrogate_fraction * max(start + train_fraction * limit - ready, 0.0)
    surrogate_games = 0

    # -- 1. train
    train_end = start + train_fraction * limit
    cap = np.inf if max_updates is None else int(max_updates)

    def training() -> bool:
        if trainer.updates >= cap:
            return False
        return trainer.updates < min_updates or time.perf_counter() < train_end

    curve: list[dict[str, float]] = []
    credit = 0.0
    last_report = time.perf_counter()
    if workers > 0 and surrogate_env is not None:
        surrogate_games = _train_on_workers(
            trainer,
            surrogate_env,
            shaping,
            config,
            seed,
            workers,
            ray,
            ray_cpus,
            surrogate_end,
            cap,
            min_updates,
        )
        trainer.actor = Actor(env, trainer.search_fn, trainer.replay, config.train)
        trainer.env, surrogate_env = env, None
    while training():
        if surrogate_env is not None and time.perf_counter() >= surrogate_end:
            # from here on, the games are measured by the evaluator
            trainer.actor.flush()  # the surrogate games that ended at the last move
            surrogate_games = surrogate_env.games
            trainer.env = env
            trainer.actor = Actor(env, trainer.search_fn, trainer.replay, config.train)
            surrogate_env = None
        trainer.collect(1)
        if len(trainer.replay) >= config.replay.min_size:
            credit += config.train.updates_per_actor_step
            while credit >= 1.0 and training():
                credit -= 1.0
                trainer.learn_step()
        now = time.perf_counter()
        if now - last_report >= 1.0:
            last_report = now
            record = {
                "time": now - start,
                "updates": float(trainer.updates),
                "games": float(env.games),
                "best_loss": env.best(0)[1],
                "evaluations": float(env.evaluations),
            }
            curve.append(record)
            if progress is not None:
                progress(record)
    train_s = time.perf_counter() - start
    if surrogate_env is not None:  # training ended before the switch
        surrogate_games = surrogate_env.games

    # -- 2. play: copy 0 greedy, the others sampled, until the deadline (one round at least)
    from mallocgame import _native

    greedy_choice = task0.uniform.copy()
    greedy_loss = task0.uniform_loss
    play_start = time.perf_counter()
    greedy = np.zeros(num_envs, np.bool_)
    greedy[0] = True  # one greedy line among sampled ones, in one search call
    rounds = 0
    while rounds == 0 or (
        time.perf_counter() < start + limit and (max_rounds is None or rounds < max_rounds)
    ):
        games = [task0.new_game() for _ in range(num_envs)]
        batch = _native.BatchedRankGames(games)
        obs = np.zeros((num_envs, env.observation_size), np.float32)
        legal = np.zeros((num_envs, env.num_actions), np.bool_)
        reward = np.zeros(num_envs, np.float32)
        done = np.zeros(num_envs, np.bool_)
        batch.observe(obs, legal, done)
        while not done.all():
            out = trainer.search(obs, legal, np.maximum(batch.moves_left(), 1), greedy=greedy)
            act = np.asarray(out.action, np.int32).copy()
            # never expected (the search masks illegal moves), but a game must not get stuck
            bad = ~legal[np.arange(num_envs), act]
            act[bad] = np.argmax(legal[bad], axis=1)
            batch.step(act, obs, legal, reward, done)
        configs = batch.choices()
        losses = env.evaluate(0, configs)
        greedy_choice, greedy_loss = configs[0].copy(), float(losses[0])
        rounds += 1
    play_s = time.perf_counter() - play_start

    # the best played config that also passes the rank solvers' check (fraction <= budget +
    # 1e-12; the game's own tolerance is the same up to rounding)
    agent_choice, agent_loss = greedy_choice, greedy_loss
    for key, value in sorted(env.seen[0].items(), key=lambda kv: kv[1]):
        if tables.fraction(key) <= budget + 1e-12:
            agent_choice, agent_loss = np.array(key, np.int64), value
            break
    if agent_loss <= task0.uniform_loss or tables.fraction(task0.uniform) > budget + 1e-12:
        choice, loss, source = agent_choice, agent_loss, "agent"
    else:
        choice, loss, source = task0.uniform.copy(), task0.uniform_loss, "uniform"
    return AgentResult(
        choice=np.asarray(choice, np.int64),
        loss=float(loss),
        source=source,
        agent_choice=np.asarray(agent_choice, np.int64),
        agent_loss=float(agent_loss),
        greedy_choice=np.asarray(greedy_choice, np.int64),
        greedy_loss=float(greedy_loss),
        uniform_choice=task0.uniform.copy(),
        uniform_loss=float(task0.uniform_loss),
        fraction=float(tables.fraction(choice)),
        evaluations=int(env.evaluations),
        games=int(env.games) + rounds * num_envs,
        surrogate_games=int(surrogate_games),
        rounds=rounds,
        updates=int(trainer.updates),
        train_s=float(train_s),
        play_s=float(play_s),
        curve=curve,
    )
