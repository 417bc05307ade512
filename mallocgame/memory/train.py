"""Training driver: the MuZero agent (``agent/``) on a pool of mallocGame problems.

``train_run(TrainOptions(...))`` (and ``mallocgame train``) builds the problems of a split
(every workload x capacity on the target, see :mod:`mallocgame.memory.splits`), a
:class:`mallocgame.memory.env.MallocEnv` over them (rewards scaled by ``reward_scale``), the agent's
:class:`agent.config.Config` and :class:`agent.trainer.Trainer`, and trains with:

- periodic atomic checkpoints (``RUN/checkpoint.npz``; ``--resume`` continues a killed run
  from it; the shipped-size policy ``RUN/policy.npz`` is written beside it);
- a progress display (rich, on a terminal; one line per record otherwise);
- training curves: ``RUN/curves.csv`` and the picture ``RUN/curves.png``;
- an optional periodic greedy evaluation on held-out problems (monitoring only: the run never
  selects a checkpoint by it), recorded in the curves as ``eval_*``;
- an optional periodic greedy evaluation on the ``validation`` split (``val_every``; programs
  in neither the training nor the held-out split, :mod:`mallocgame.memory.splits`), recorded as
  ``val_*``: the run keeps the parameters that score best on it (checkpoint selection / early
  stopping by validation). With validation on, ``RUN/policy.npz`` is that best policy,
  ``RUN/last-policy.npz`` the latest one, and ``RUN/best.json`` says which update was picked.

The run folder also holds ``run.json``: the options, the seed, the machine and the wall time.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from agent.checkpoint import remove_stale_temps
from agent.config import Config, NetworkConfig, ReplayConfig, SearchConfig, TrainConfig
from agent.distributed import AsyncTrainer, LocalLauncher, RayLauncher
from agent.replay import Episode
from agent.trainer import Trainer
from mallocgame.cluster import connect, import_ray
from mallocgame.errors import InputError
from mallocgame.io import atomic_write_text, describe_host
from mallocgame.memory import splits
from mallocgame.memory.curves import Progress, write_curves
from mallocgame.memory.env import MallocEnv, PreparedProblem, new_batch
from mallocgame.memory.solvers.agent import play_agent
from mallocgame.memory.solvers.local_search import best_fit_line, improve
from mallocgame.memory.solvers.policy import Agent


# --------------------------------------------------------------------------- env
class ScaledMallocEnv(MallocEnv):
    """:class:`MallocEnv` with rewards (and the msa baseline return) multiplied by ``scale``:
    a game's return becomes ``scale`` x the fraction of the all-slow time saved, which keeps
    the value targets of order 1 for the learned model."""

    def __init__(self, problems: list, num_envs: int, seed: int = 0, scale: float = 10.0):
        super().__init__(problems, num_envs, seed)
        self.scale = float(scale)

    def step(self, actions: np.ndarray):
        obs, legal, reward, done = super().step(actions)
        return obs, legal, (reward * self.scale).astype(np.float32), done

    def baseline_return(self) -> np.ndarray:
        return (super().baseline_return() * self.scale).astype(np.float32)


class EnvFactory:
    """``factory(num_envs, seed)`` -> a :class:`ScaledMallocEnv` over ``problems``: picklable
    (the problems travel, their native instances are prepared where the env is built: in a
    Ray worker's process, once per process)."""

    def __init__(self, problems: list, scale: float):
        self.problems = [p.problem if isinstance(p, PreparedProblem) else p for p in problems]
        self.scale = float(scale)
        prepared = all(isinstance(p, PreparedProblem) for p in problems)
        self._pool = list(problems) if prepared and problems else None

    def __getstate__(self) -> dict[str, Any]:
        return {"problems": self.problems, "scale": self.scale, "_pool": None}

    def __call__(self, num_envs: int, seed: int) -> ScaledMallocEnv:
        if self._pool is None:
            self._pool = [PreparedProblem(p) for p in self.problems]
        return ScaledMallocEnv(self._pool, num_envs, seed, self.scale)


# --------------------------------------------------------------------------- options
@dataclasses.dataclass
class TrainOptions:
    out: str = "runs/agent"
    split: str = "train"
    capacities: tuple[str, ...] = ("10%", "25%", "50%")
    target: str = "tpuv4i"
    max_buffers: int = 400
    steps: int = 2000  # learner updates (total, over resumes)
    minutes: float | None = None  # stop after this much wall time in this process
    seed: int = 0
    resume: bool = False
    reward_mode: str = "dense"  # dense | ranked (against msa's return)
    reward_scale: float = 10.0
    num_envs: int = 32
    num_simulations: int = 8
    considered_actions: int = (
        4  # Gumbel search: actions considered at the root (<= simulations / 2)
    )
    hidden: int = 128
    latent: int = 64
    num_blocks: int = 1
    batch_size: int = 128
    unroll_steps: int = 5
    learning_rate: float = 2e-3
    updates_per_actor_step: float = 0.5
    replay_capacity: int = 50_000
    min_replay: int = 2_000
    log_every: int = 25
    checkpoint_every: int = 100
    checkpoint_replay: bool = True
    demos: bool = True  # seed the replay with msa's lines and locally improved lines
    demo_seconds: float = 0.3  # local-search time per training problem for the demonstrations
    demo_every: int = 500  # updates between re-injections of the demonstrations (0 = once)
    eval_every: int = 0  # updates between held-out evaluations (0 = off)
    eval_max_buffers: int = 100
    val_every: int = 0  # updates between validation evaluations, which select the policy (0 = off)
    val_split: str = "validation"
    val_max_buffers: int = 320
    val_copies: int = 1  # games per validation problem: 1 greedy (+ sampled ones); score = the best
    val_problems: list | None = None  # override the validation split (tests)
    workers: int = 0  # self-play workers beside the learner (0: the one-process Trainer)
    ray: str | None = None  # a Ray cluster for the workers (auto | ADDRESS); None: in process
    ray_cpus: float = 1.0  # CPUs each Ray worker asks for
    moves_per_task: int = 8  # batched moves in a worker's chunk
    publish_every: int = 10  # learner updates between publications of the parameters
    max_staleness: int = 4  # publications a rollout's parameters may be behind
    tiny: bool = False  # a tiny network and problems, for tests
    problems: list | None = None  # override the split (tests): Problems or PreparedProblems
    eval_problems: list | None = None
    quiet: bool = False


def make_config(o: TrainOptions):
    return Config(
        network=NetworkConfig(hidden_size=o.hidden, latent_size=o.latent, num_blocks=o.num_blocks),
        # Gumbel MuZero: sequential halving over the top-m actions; m must leave each of them
        # a few simulations (9 actions with 8 simulations could not even visit each once), and
        # SearchConfig rejects more than num_simulations (--simulations 1: m = 1).
        search=SearchConfig(
            num_simulations=o.num_simulations,
            max_num_considered_actions=min(
                o.num_simulations, max(2, min(o.considered_actions, o.num_simulations // 2))
            ),
        ),
        replay=ReplayConfig(capacity=o.replay_capacity, min_size=o.min_replay),
        train=TrainConfig(
            num_envs=o.num_envs,
            batch_size=o.batch_size,
            unroll_steps=o.unroll_steps,
            learning_rate=o.learning_rate,
            warmup_steps=min(100, max(o.steps // 10, 1)),
            updates_per_actor_step=o.updates_per_actor_step,
            reward_mode=o.reward_mode,
            ranked_reference="baseline",
            log_every=o.log_every,
            checkpoint_every=o.checkpoint_every,
            checkpoint_path=str(Path(o.out) / "checkpoint.npz"),
            checkpoint_replay=o.checkpoint_replay,
        ),
    )


def tiny_options(**kw: Any) -> TrainOptions:
    """Settings small enough for tests (seconds per run)."""
    base = dict(
        hidden=32,
        latent=16,
        num_envs=8,
        num_simulations=4,
        batch_size=16,
        unroll_steps=3,
        replay_capacity=4_000,
        min_replay=100,
        log_every=5,
        checkpoint_every=10,
        steps=20,
        demo_seconds=0.05,
        tiny=True,
        quiet=True,
    )
    base.update(kw)
    return TrainOptions(**base)


# --------------------------------------------------------------------------- problems
def build_pool(
    o: TrainOptions, log: Callable[..., None] = print
) -> tuple[list[PreparedProblem], list[str]]:
    """The training problems and their names (``workload@capacity``)."""

    if o.problems is not None:
        pool = [p if isinstance(p, PreparedProblem) else PreparedProblem(p) for p in o.problems]
        return pool, [f"{p.problem.workload.name}@{p.problem.capacity}" for p in pool]
    t0 = time.perf_counter()
    loaded, pool, names = _split_pool(o.split, o.max_buffers, o)
    log(
        f"{len(pool)} training problems from {len(loaded)} workloads of split {o.split!r} "
        f"(<= {o.max_buffers} buffers) in {time.perf_counter() - t0:.1f} s"
    )
    if not pool:
        raise InputError(
            f"split {o.split!r} has no problem with at most {o.max_buffers} buffers",
            field="max-buffers",
        )
    return pool, names


def _split_pool(split: str, max_buffers: int, o: TrainOptions) -> tuple[list, list, list[str]]:
    """(loaded workloads, prepared problems, names) of ``split`` at every capacity of ``o``."""
    loaded = splits.load_split(split, max_buffers=max_buffers)
    pool, names = [], []
    for spec, wl in loaded:
        for _, cap, p in splits.make_problems([wl], o.capacities, o.target):
            pool.append(PreparedProblem(p))
            names.append(f"{spec.title}@{cap}")
    return loaded, pool, names


def build_eval_pool(o: TrainOptions) -> list[PreparedProblem]:
    if o.eval_problems is not None:
        return [
            p if isinstance(p, PreparedProblem) else PreparedProblem(p) for p in o.eval_problems
        ]
    loaded = splits.load_split("heldout", max_buffers=o.eval_max_buffers)
    return [
        PreparedProblem(p)
        for _, _, p in splits.make_problems([wl for _, wl in loaded], o.capacities, o.target)
    ]


def build_val_pool(
    o: TrainOptions, log: Callable[..., None] = print
) -> tuple[list[PreparedProblem], list[str]]:
    """The validation problems (``o.val_split``, workloads of at most ``o.val_max_buffers``
    buffers, every capacity) and their names."""

    if o.val_problems is not None:
        pool = [p if isinstance(p, PreparedProblem) else PreparedProblem(p) for p in o.val_problems]
        return pool, [f"{p.problem.workload.name}@{p.problem.capacity}" for p in pool]
    loaded, pool, names = _split_pool(o.val_split, o.val_max_buffers, o)
    log(f"{len(pool)} validation problems from {len(loaded)} workloads of split {o.val_split!r}")
    return pool, names


def play_pool(
    agent: Agent, pool: list[PreparedProblem], copies: int = 1, seed: int = 0
) -> np.ndarray:
    """Plays every problem of ``pool`` ``copies`` times, all games in one native batch and one
    batched search per move (copy 0 of each problem greedy: no exploration noise; the others
    sampled). Returns float64[len(pool), copies]: each game's return (fraction of the
    problem's all-slow time saved)."""

    copies = max(int(copies), 1)
    games = [pp.new_game() for pp in pool for _ in range(copies)]
    n = len(games)
    if n == 0:
        return np.zeros((0, copies))
    inst = pool[0].instance
    batch, obs, legal, reward, done = new_batch(games, inst.observation_size, inst.num_actions)
    greedy = np.zeros(n, np.bool_)
    greedy[::copies] = True
    buffers = np.repeat([pp.instance.num_buffers for pp in pool], copies)
    for t in range(int(buffers.max())):
        if done.all():
            break
        search_legal = legal.copy()
        search_legal[done, 0] = (
            True  # finished games still need a legal row (their action is ignored)
        )
        moves_left = np.maximum(buffers - t, 1).astype(np.int32)
        out = agent.search(
            obs, search_legal, moves_left, greedy=greedy, seed=(seed * 1_000_003 + t) & 0x7FFFFFFF
        )
        act = np.asarray(out.action, np.int32).copy()
        bad = ~search_legal[np.arange(n), act]
        if bad.any():
            act[bad] = np.argmax(search_legal[bad], axis=1)
        batch.step(act, obs, legal, reward, done)
    return np.array([g.return_so_far for g in games], dtype=np.float64).reshape(len(pool), copies)


def validation_metrics(
    returns: np.ndarray, pool: list[PreparedProblem], prefix: str = "val_"
) -> dict[str, float]:
    """Scores of games on ``pool`` against ``msa``: ``returns`` is float[P, copies] (copy 0
    greedy). ``score``: the geometric mean over problems of the speed-up over ``msa`` under
    the cost model, ``(1 - msa return) / (1 - best return)`` (> 1: faster than msa), with
    the best of the copies (the agent alone, as ``agent_raw``); also the greedy game's."""
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    base = np.array([pp.msa_return for pp in pool], dtype=np.float64)
    best = r.max(axis=1)
    greedy = r[:, 0]

    def speedup(x):
        return (1.0 - base) / np.maximum(1.0 - x, 1e-12)

    return {
        f"{prefix}score": float(np.exp(np.mean(np.log(speedup(best))))),
        f"{prefix}greedy_score": float(np.exp(np.mean(np.log(speedup(greedy))))),
        f"{prefix}worst": float(speedup(best).min()),
        f"{prefix}gap_vs_msa": float((best - base).mean()),
        f"{prefix}win_rate": float((best > base + 1e-9).mean()),
        f"{prefix}loss_rate": float((best < base - 1e-9).mean()),
    }


class _LiveAgent:
    """One :class:`mallocgame.memory.solvers.agent.Agent` over a trainer, compiled once: each call
    returns it with the trainer's current parameters (a new Agent per evaluation would
    compile its search again)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        self.agent = None

    def __call__(self):
        if self.agent is None:
            self.agent = Agent.from_trainer(self.trainer)
        self.agent.policy.params = self.trainer.state.params
        return self.agent


def evaluate_greedy(agent: Agent, pool: list[PreparedProblem]) -> dict[str, float]:
    """One greedy agent game per problem: mean return, mean msa return, win/not-worse rates."""
    ret, base = [], []
    for pp in pool:
        line = play_agent(agent, pp.instance, copies=1, seed=0)[0]
        ret.append(line.ret)
        base.append(pp.msa_return)
    r, b = np.array(ret), np.array(base)
    return {
        "eval_return": float(r.mean()),
        "eval_msa_return": float(b.mean()),
        "eval_gap_vs_msa": float((r - b).mean()),
        "eval_win_rate": float((r > b + 1e-9).mean()),
        "eval_not_worse_rate": float((r >= b - 1e-9).mean()),
    }


# --------------------------------------------------------------------------- demonstrations
def demo_lines(pp: PreparedProblem, seconds: float, seed: int = 0) -> list[list[int]]:
    """Lines of play to imitate on one problem: ``msa``'s line and, when the exact local
    search of :mod:`mallocgame.memory.solvers.agent` finds one within ``seconds``, a better line."""
    msa = best_fit_line(pp.instance, "msa")
    lines = [msa.actions]
    if seconds > 0:
        best, _ = improve(
            None,
            pp.problem,
            pp.order,
            [msa],
            time.perf_counter() + seconds,
            seed,
            use_prior=False,
            reorder=False,
        )
        if best.ret > msa.ret + 1e-12:
            lines.append(best.actions)
    return lines


def demo_episode(
    pp: PreparedProblem, actions: list[int], scale: float, reward_mode: str, smoothing: float = 0.05
):
    """The :class:`agent.replay.Episode` of playing ``actions`` on ``pp`` (policy targets: the
    played move, smoothed over the legal ones)."""
    g = pp.new_game()
    t_max = len(actions)
    o, a = pp.instance.observation_size, pp.instance.num_actions
    obs = np.zeros((t_max, o), np.float32)
    legal = np.zeros((t_max, a), np.bool_)
    reward = np.zeros(t_max, np.float32)
    for t, act in enumerate(actions):
        g.observe(obs[t])
        legal[t] = g.legal_mask()
        reward[t] = g.step(int(act)) * scale
    ret = float(reward.sum())
    if reward_mode == "ranked":
        diff = ret - pp.msa_return * scale
        reward[:] = 0.0
        reward[-1] = 1.0 if diff > 1e-6 else (-1.0 if diff < -1e-6 else 0.0)
    policy = legal * (smoothing / np.maximum(legal.sum(axis=1, keepdims=True), 1))
    policy[np.arange(t_max), actions] += 1.0 - smoothing
    policy = (policy / policy.sum(axis=1, keepdims=True)).astype(np.float32)
    rtg = np.cumsum(reward[::-1])[::-1].astype(np.float32)
    moves_left = (pp.instance.num_buffers - np.arange(t_max)).astype(np.int32)
    return Episode(obs, legal, np.asarray(actions, np.int32), reward, policy, rtg, moves_left)


def make_demos(
    pool: list[PreparedProblem], o: TrainOptions, log: Callable[..., None] = print
) -> list:
    t0 = time.perf_counter()
    eps, better = [], 0
    for i, pp in enumerate(pool):
        lines = demo_lines(pp, o.demo_seconds, o.seed + i)
        better += len(lines) > 1
        eps += [demo_episode(pp, acts, o.reward_scale, o.reward_mode) for acts in lines]
    log(
        f"{len(eps)} demonstration games ({better} of {len(pool)} problems improved past msa "
        "by local search) "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    return eps


# --------------------------------------------------------------------------- the run
def _has_gpu() -> bool:
    try:
        return any(d.platform != "cpu" for d in jax.devices())
    except Exception:
        return False


def train_run(o: TrainOptions) -> dict[str, Any]:
    """Trains (or resumes) the run in ``o.out``; returns a summary dict."""
    out = Path(o.out)
    out.mkdir(parents=True, exist_ok=True)
    log = (
        (lambda *a, **k: None)
        if o.quiet
        else (lambda *a, **k: print(*a, file=sys.stderr, flush=True, **k))
    )
    ckpt = out / "checkpoint.npz"
    for name in ("checkpoint.npz", "policy.npz", "last-policy.npz"):
        # temporaries left by a process killed while writing (a live writer's are kept)
        remove_stale_temps(out / name)
    pool, names = build_pool(o, log)
    env_factory = EnvFactory(pool, o.reward_scale)
    scale = o.reward_scale
    trainer, resumed, owns_ray = _make_trainer(o, env_factory, ckpt, log)
    try:
        return _train(o, trainer, resumed, pool, names, out, ckpt, scale, log)
    finally:
        if isinstance(trainer, AsyncTrainer):
            trainer.close()
        if owns_ray:
            import ray

            ray.shutdown()


def _make_trainer(
    o: TrainOptions, env_factory: EnvFactory, ckpt: Path, log: Callable[..., None]
) -> tuple[Trainer | AsyncTrainer, bool, bool]:
    """The trainer of ``o`` (``Trainer``, or ``AsyncTrainer`` with workers), resumed from
    ``ckpt`` when asked; and whether it was resumed and whether this call started Ray."""
    owns_ray = False
    if o.ray or o.workers:
        launcher: Any = LocalLauncher()
        if o.ray:
            ray = import_ray()
            owns_ray = connect(ray, o.ray)
            launcher = RayLauncher(num_cpus=o.ray_cpus)
        kw = dict(
            workers=max(o.workers, 1),
            launcher=launcher,
            moves_per_task=o.moves_per_task,
            publish_every=o.publish_every,
            max_staleness=o.max_staleness,
        )
        if o.resume and ckpt.exists():
            trainer: Trainer | AsyncTrainer = AsyncTrainer.resume(ckpt, env_factory, **kw)
        else:
            return AsyncTrainer(env_factory, make_config(o), o.seed, **kw), False, owns_ray
    elif o.resume and ckpt.exists():
        trainer = Trainer.resume(ckpt, env_factory)
    else:
        return Trainer(env_factory, make_config(o), seed=o.seed), False, owns_ray
    log(f"resumed {ckpt} at update {trainer.updates} (resume #{trainer.resumes})")
    return trainer, True, owns_ray


def _train(
    o: TrainOptions,
    trainer: Trainer | AsyncTrainer,
    resumed: bool,
    pool: list[PreparedProblem],
    names: list[str],
    out: Path,
    ckpt: Path,
    scale: float,
    log: Callable[..., None],
) -> dict[str, Any]:
    eval_pool = build_eval_pool(o) if o.eval_every else []
    val_pool, val_names = build_val_pool(o, log) if o.val_every else ([], [])
    demos = make_demos(pool, o, log) if o.demos else []
    live = _LiveAgent(trainer)
    best_path = out / "best.json"
    best: dict[str, Any] | None = None
    if resumed and best_path.exists():
        best = json.loads(best_path.read_text())
    last_policy = out / ("last-policy.npz" if val_pool else "policy.npz")

    def inject() -> None:
        for ep in demos:
            trainer.replay.add(ep)

    if demos and not resumed:
        inject()
    last_demo = [trainer.updates]
    run_info = {
        "options": {
            k: v for k, v in dataclasses.asdict(o).items() if k not in ("problems", "eval_problems")
        },
        "seed": trainer.seed,
        "config": trainer.config.to_dict(),
        "problems": names,
        "validation_problems": val_names,
        "machine": describe_host(gpu=_has_gpu()),
        "python": platform.python_version(),
        "command": " ".join(sys.argv),
    }
    run_info["jax"] = jax.__version__
    title = f"mallocgame agent: {o.reward_mode} reward, seed {trainer.seed}"
    progress = Progress(o.steps, trainer.updates, o.quiet)
    start = time.perf_counter()
    deadline = start + 60 * o.minutes if o.minutes else None
    last_eval = [trainer.updates]
    last_val = [trainer.updates]

    def validate(record: dict[str, Any]) -> None:
        nonlocal best
        t = time.perf_counter()
        returns = play_pool(live(), val_pool, o.val_copies, seed=o.seed)
        m = validation_metrics(returns, val_pool)
        m["val_s"] = time.perf_counter() - t
        record.update(m)
        if best is None or m["val_score"] > best["val_score"] + 1e-9:
            best = {
                "step": record["step"],
                "wall_time": record.get("wall_time"),
                **m,
                "problems": len(val_pool),
                "copies": o.val_copies,
                "split": o.val_split,
            }
            trainer.save_policy(out / "policy.npz")
            atomic_write_text(best_path, json.dumps(best, indent=2) + "\n")
        record["val_best_step"] = best["step"]
        record["val_best_score"] = best["val_score"]

    def callback(record: dict[str, Any]) -> bool:
        if o.eval_every and eval_pool and record["step"] - last_eval[0] >= o.eval_every:
            last_eval[0] = record["step"]
            record.update(evaluate_greedy(live(), eval_pool))
        if val_pool and record["step"] - last_val[0] >= o.val_every:
            last_val[0] = record["step"]
            validate(record)
        if demos and o.demo_every and record["step"] - last_demo[0] >= o.demo_every:
            last_demo[0] = record["step"]
            inject()
        progress.update(record)
        at_checkpoint = o.checkpoint_every and record["step"] % o.checkpoint_every < o.log_every
        write_curves(trainer.curves, out, title, scale, picture=bool(at_checkpoint))
        if at_checkpoint:
            trainer.save_policy(last_policy)
        return deadline is not None and time.perf_counter() > deadline

    remaining = max(o.steps - trainer.updates, 0)
    try:
        if remaining:
            trainer.train(remaining, callback)
    finally:
        progress.close()
    trainer.save(ckpt)
    trainer.save_policy(last_policy)
    if val_pool and (best is None or last_val[0] != trainer.updates):
        # the final parameters are validated too, so that they can be picked
        record = dict(trainer.curves[-1]) if trainer.curves else {"step": trainer.updates}
        record["step"] = trainer.updates
        last_val[0] = trainer.updates
        validate(record)
        if trainer.curves and trainer.curves[-1]["step"] == trainer.updates:
            trainer.curves[-1].update({k: v for k, v in record.items() if k.startswith("val_")})
    write_curves(trainer.curves, out, title, scale)
    last = trainer.curves[-1] if trainer.curves else {}
    summary = {
        "out": str(out),
        "checkpoint": str(ckpt),
        "policy": str(out / "policy.npz"),
        "curves_csv": str(out / "curves.csv"),
        "curves_png": str(out / "curves.png"),
        "updates": trainer.updates,
        "env_moves": trainer.moves,
        "games": trainer.games,
        "wall_time_s": trainer.wall_time,
        "this_process_s": time.perf_counter() - start,
        "resumed": resumed,
        "resumes": trainer.resumes,
        "last_record": last,
        "policy_bytes": (out / "policy.npz").stat().st_size,
        "last_policy": str(last_policy),
        "selected": best,  # the update picked on validation (None: no validation)
        "workers": getattr(trainer, "num_workers", 0),
        "ray": o.ray,
        "worker_failures": getattr(trainer, "worker_failures", 0),
        "stale_dropped": getattr(trainer, "stale_dropped", 0),
    }
    run_info.update(
        {
            k: summary[k]
            for k in ("updates", "env_moves", "games", "wall_time_s", "resumes", "selected")
        }
    )
    atomic_write_text(out / "run.json", json.dumps(run_info, indent=2, default=str) + "\n")
    return summary
