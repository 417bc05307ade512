"""The trained policy behind the ``agent`` solver: where it is, loading it (once per process),
JAX's compilation cache, and the check that it fits the game it is asked to play.

The policy comes from ``$MALLOCGAME_POLICY`` if set, else the agent shipped in
``mallocgame/memory/pretrained/policy.npz``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mallocgame.errors import InputError, MallocGameError
from mallocgame.io import cache_dir

if TYPE_CHECKING:
    from agent.trainer import Policy, Trainer
    from mallocgame import _native

PRETRAINED_DIR = Path(__file__).resolve().parents[1] / "pretrained"
PRETRAINED_POLICY = PRETRAINED_DIR / "policy.npz"


def policy_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The policy to load: ``path``, else ``$MALLOCGAME_POLICY``, else the shipped one."""
    if path is not None:
        return Path(path)
    env = os.environ.get("MALLOCGAME_POLICY")
    return Path(env) if env else PRETRAINED_POLICY


def _enable_compilation_cache() -> None:
    """Keep jitted searches on disk so that a second run does not compile again — only when
    ``MALLOCGAME_JAX_CACHE=1``: JAX's persistent cache is process-wide, and a cache hit skips
    XLA's passes and so the dump files that workload extraction reads (a later `extract` in the
    same process would fail)."""
    if os.environ.get("MALLOCGAME_JAX_CACHE") != "1":
        return
    try:
        import jax  # jax: heavy, loaded only when an agent is

        jax.config.update("jax_compilation_cache_dir", str(cache_dir() / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    except Exception:  # an old jax or a read-only home: compile every time
        pass


class Agent:
    """A loaded policy: batched search (``search``) and the policy prior (``prior``)."""

    def __init__(self, policy: Policy, path: Path | None = None):
        import jax  # jax: heavy, loaded only when an agent is

        self.policy = policy
        self.path = path
        self.num_actions = int(policy.num_actions)
        self.observation_size = int(policy.observation_size)
        nets = policy.networks
        self._warm: set[int] = set()
        self.search_s: dict[int, float] = {}  # batch -> seconds per search call, once compiled
        self._prior = jax.jit(
            lambda params, obs: jax.nn.softmax(nets.initial_inference(params, obs).policy_logits)
        )

    @classmethod
    def from_trainer(cls, trainer: Trainer) -> Agent:
        """An agent over a live :class:`agent.trainer.Trainer`'s current parameters."""
        from agent.trainer import Policy  # jax and the trainer: heavy, loaded with an agent

        return cls(Policy(trainer.networks, trainer.state.params, trainer.config.search, {}))

    def warmup(self, batch: int) -> float:
        """Compiles the search for ``batch`` games (and the prior) and measures a compiled
        search (``search_s[batch]``); returns the seconds spent."""
        if batch in self._warm:
            return 0.0
        t = time.perf_counter()
        obs = np.zeros((batch, self.observation_size), np.float32)
        legal = np.ones((batch, self.num_actions), np.bool_)
        moves = np.full(batch, 8, np.int32)
        self.search(obs, legal, moves, greedy=False, seed=0)
        self.prior(obs[:1])
        t1 = time.perf_counter()
        for i in range(3):
            self.search(obs, legal, moves, greedy=False, seed=i + 1)
        self.search_s[batch] = (time.perf_counter() - t1) / 3
        self._warm.add(batch)
        return time.perf_counter() - t

    def search(
        self, obs: np.ndarray, legal: np.ndarray, moves_left: np.ndarray, greedy: bool, seed: int
    ):
        return self.policy.search(obs, legal, moves_left, greedy=greedy, seed=seed)

    def prior(self, obs: np.ndarray) -> np.ndarray:
        """float32[N, A] policy-network probabilities (no search)."""
        return np.asarray(
            self._prior(
                self.policy.params, np.asarray(obs, np.float32).reshape(-1, self.observation_size)
            )
        )


_AGENTS: dict[tuple[str, int | None], Agent] = {}


def load_agent(
    path: str | os.PathLike[str] | None = None, num_simulations: int | None = None
) -> Agent:
    """Loads (once per process) the policy at :func:`policy_path`."""
    p = policy_path(path)
    key = (str(p.resolve()) if p.exists() else str(p), num_simulations)
    if key in _AGENTS:
        return _AGENTS[key]
    if not p.exists():
        raise MallocGameError(
            f"no trained agent at {p}: train one with `mallocgame train` and pass --policy, "
            "or set MALLOCGAME_POLICY"
        )
    _enable_compilation_cache()
    from agent.trainer import load_policy  # jax and the trainer: heavy, loaded with an agent

    try:
        policy = load_policy(p, num_simulations=num_simulations)
    except (ValueError, KeyError, OSError) as e:
        raise InputError(f"not an agent checkpoint: {e}", str(p)) from None
    agent = Agent(policy, p)
    _AGENTS[key] = agent
    return agent


def check_compatible(agent: Agent, instance: _native.Instance) -> None:
    """An :class:`InputError` (field ``num_candidates``) unless ``agent`` was trained on
    observations and actions of ``instance``'s sizes."""
    if (instance.observation_size, instance.num_actions) != (
        agent.observation_size,
        agent.num_actions,
    ):
        raise InputError(
            f"the agent was trained on observations of {agent.observation_size} values and "
            f"{agent.num_actions} actions, this game has {instance.observation_size} and "
            f"{instance.num_actions} (use the same number of candidates, "
            f"K = {agent.num_actions - 1})",
            field="num_candidates",
        )
