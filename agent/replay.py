"""Prioritised replay of whole episodes, sampled as K-step unrolls.

A numpy ring buffer of ``capacity`` positions. Episodes are stored contiguously (modulo the
ring) and evicted whole, oldest first, so every stored position can be unrolled to the end of
its episode. Sampling is proportional to ``priority ** alpha`` with importance weights
``(size * P(i)) ** -beta`` normalised by the batch maximum (Schaul et al. 2016).

Value targets are formed at sample time from the stored rewards and search root values, so
that reanalyse (which refreshes root values and policies) changes them:

- ``td_steps=None``: the (discounted) return from the position to the end of the episode;
- ``td_steps=n``: ``sum_{j<n} discount^j r_{t+j} + discount^n v_{t+n}`` (0 past the end).

Unroll steps past the end of an episode are absorbing: random action, reward 0, value 0,
policy loss masked.

Shapes: ``B`` batch, ``K`` unroll steps, ``O`` observation size, ``A`` actions, ``T`` an
episode's length.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import numpy as np

from agent.config import ReplayConfig


class Episode(NamedTuple):
    """One finished game; all arrays have leading dimension T (moves played)."""

    obs: np.ndarray  # float32[T, O]: observation before each move
    legal: np.ndarray  # bool[T, A]
    action: np.ndarray  # int32[T]
    reward: np.ndarray  # float32[T]: the (possibly ranked) reward of each move
    policy: np.ndarray  # float32[T, A]: the search policy
    root_value: np.ndarray  # float32[T]
    moves_left: np.ndarray  # int32[T]: the env's bound before each move (for reanalyse)


class Batch(NamedTuple):
    """A sampled minibatch of K-step unrolls."""

    obs: np.ndarray  # float32[B, O]: the observation at the first position
    actions: np.ndarray  # int32[B, K]
    target_reward: np.ndarray  # float32[B, K]: reward of actions[:, k]
    target_value: np.ndarray  # float32[B, K+1]
    target_policy: np.ndarray  # float32[B, K+1, A]
    policy_mask: np.ndarray  # float32[B, K+1]: 1 where the position is inside the episode
    weights: np.ndarray  # float32[B]: importance weights
    indices: np.ndarray  # int64[B]: buffer slots (for priority updates)


_FIELDS = ("obs", "legal", "action", "reward", "policy", "root_value", "moves_left")


class ReplayBuffer:
    def __init__(
        self,
        observation_size: int,
        num_actions: int,
        config: ReplayConfig,
        discount: float = 1.0,
        seed: int = 0,
    ) -> None:
        c = self.config = config
        self.discount = float(discount)
        self.observation_size = int(observation_size)
        self.num_actions = int(num_actions)
        cap = int(c.capacity)
        self.obs = np.zeros((cap, observation_size), np.float32)
        self.legal = np.zeros((cap, num_actions), bool)
        self.action = np.zeros(cap, np.int32)
        self.reward = np.zeros(cap, np.float32)
        self.policy = np.zeros((cap, num_actions), np.float32)
        self.root_value = np.zeros(cap, np.float32)
        self.moves_left = np.zeros(cap, np.int32)
        self.return_to_go = np.zeros(cap, np.float32)
        self.episode_start = np.zeros(cap, np.int64)  # absolute position of the episode start
        self.episode_len = np.zeros(cap, np.int32)
        self.position = np.full(cap, -1, np.int64)  # absolute position stored in each slot
        self.priority = np.zeros(cap, np.float64)  # already raised to alpha; 0 = empty
        self.max_priority = 1.0
        self.next_position = 0  # absolute position of the next write
        self.episodes: deque[tuple[int, int]] = deque()  # (absolute start, length), oldest first
        self.size = 0  # stored positions
        self.num_episodes_added = 0
        self.rng = np.random.default_rng(seed)

    @property
    def capacity(self) -> int:
        return int(self.config.capacity)

    def __len__(self) -> int:
        return self.size

    def add(self, episode: Episode, priority: np.ndarray | float | None = None) -> None:
        """Stores a finished episode (evicting the oldest ones if needed)."""
        t = int(len(episode.action))
        if t == 0:
            return
        if t > self.capacity:
            raise ValueError(f"episode of {t} moves does not fit a buffer of {self.capacity}")
        while self.episodes and self.next_position + t - self.episodes[0][0] > self.capacity:
            start, length = self.episodes.popleft()
            slots = np.arange(start, start + length) % self.capacity
            self.priority[slots] = 0.0
            self.position[slots] = -1
            self.size -= length
        start = self.next_position
        slots = np.arange(start, start + t) % self.capacity
        for name in _FIELDS:
            getattr(self, name)[slots] = getattr(episode, name)
        self.return_to_go[slots] = discounted_returns(episode.reward, self.discount)
        self.episode_start[slots] = start
        self.episode_len[slots] = t
        self.position[slots] = np.arange(start, start + t)
        if priority is None:
            self.priority[slots] = self.max_priority
        else:
            self.priority[slots] = self._power(np.broadcast_to(priority, (t,)))
        self.episodes.append((start, t))
        self.next_position += t
        self.size += t
        self.num_episodes_added += 1

    def _power(self, p: np.ndarray) -> np.ndarray:
        return (np.abs(np.asarray(p, np.float64)) + self.config.epsilon) ** self.config.alpha

    def update_priorities(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Sets raw priorities (e.g. |value error|) for the given slots; stale slots are skipped."""
        indices = np.asarray(indices)
        p = self._power(priorities)
        live = self.position[indices] >= 0
        self.priority[indices[live]] = p[live]
        if live.any():
            self.max_priority = max(self.max_priority, float(p[live].max()))

    def sample_slots(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Samples slots by priority; returns ``(slots int64[B], probabilities float64[B])``."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        cum = np.cumsum(self.priority)
        total = cum[-1]
        u = (self.rng.random(batch_size) + np.arange(batch_size)) / batch_size * total
        slots = np.minimum(np.searchsorted(cum, u, side="right"), self.capacity - 1)
        # guard against landing on an empty slot at a float boundary
        empty = self.priority[slots] <= 0
        if empty.any():
            live = np.flatnonzero(self.priority > 0)
            slots[empty] = live[np.searchsorted(live, slots[empty]) % len(live)]
        return slots, self.priority[slots] / total

    def sample(self, batch_size: int, unroll_steps: int, td_steps: int | None = None) -> Batch:
        """Samples ``batch_size`` K-step unrolls (see the module docstring for the targets)."""
        slots, probs = self.sample_slots(batch_size)
        weights = (self.size * probs) ** (-self.config.beta)
        weights = (weights / weights.max()).astype(np.float32)
        return self.make_batch(slots, unroll_steps, td_steps, weights)

    def make_batch(
        self,
        slots: np.ndarray,
        unroll_steps: int,
        td_steps: int | None,
        weights: np.ndarray | None = None,
    ) -> Batch:
        """Builds the unroll targets starting at the given slots."""
        k = int(unroll_steps)
        cap = self.capacity
        b = len(slots)
        pos = self.position[slots]
        if (pos < 0).any():
            raise ValueError("sampled an empty slot")
        start = self.episode_start[slots]
        length = self.episode_len[slots].astype(np.int64)
        offset = pos - start  # index in the episode
        steps = offset[:, None] + np.arange(k + 1)  # [B, K+1] index in the episode
        inside = steps < length[:, None]
        idx = (start[:, None] + np.minimum(steps, length[:, None] - 1)) % cap  # [B, K+1]

        random_actions = self.rng.integers(0, self.num_actions, size=(b, k), dtype=np.int32)
        actions = np.where(inside[:, :k], self.action[idx[:, :k]], random_actions)
        target_reward = np.where(inside[:, :k], self.reward[idx[:, :k]], 0.0)
        uniform = np.full(self.num_actions, 1.0 / self.num_actions, np.float32)
        target_policy = np.where(inside[..., None], self.policy[idx], uniform)
        if td_steps is None:
            target_value = np.where(inside, self.return_to_go[idx], 0.0)
        else:
            target_value = self._n_step_values(start, length, steps, int(td_steps))
        return Batch(
            obs=self.obs[slots],
            actions=actions.astype(np.int32),
            target_reward=target_reward.astype(np.float32),
            target_value=target_value.astype(np.float32),
            target_policy=target_policy.astype(np.float32),
            policy_mask=inside.astype(np.float32),
            weights=np.ones(b, np.float32) if weights is None else weights.astype(np.float32),
            indices=slots.astype(np.int64),
        )

    def _n_step_values(
        self, start: np.ndarray, length: np.ndarray, steps: np.ndarray, n: int
    ) -> np.ndarray:
        cap = self.capacity
        j = np.arange(n)
        u = steps[..., None] + j  # [B, K+1, n]
        ok = u < length[:, None, None]
        r_idx = (start[:, None, None] + np.minimum(u, length[:, None, None] - 1)) % cap
        disc = self.discount**j
        value = np.sum(np.where(ok, self.reward[r_idx], 0.0) * disc, axis=-1)
        boot = steps + n
        ok_b = boot < length[:, None]
        b_idx = (start[:, None] + np.minimum(boot, length[:, None] - 1)) % cap
        value = value + np.where(ok_b, self.root_value[b_idx], 0.0) * self.discount**n
        return value

    def sample_positions(self, count: int) -> np.ndarray:
        """Uniformly random stored slots (e.g. for reanalyse): int64[count]."""
        live = np.flatnonzero(self.position >= 0)
        return self.rng.choice(live, size=count, replace=len(live) < count)

    # -- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """All contents as numpy arrays (for :mod:`agent.checkpoint`)."""
        out = {
            name: getattr(self, name)
            for name in (
                *_FIELDS,
                "return_to_go",
                "episode_start",
                "episode_len",
                "position",
                "priority",
            )
        }
        out["episodes"] = np.asarray(list(self.episodes), np.int64).reshape(-1, 2)
        out["scalars"] = np.asarray(
            [self.next_position, self.size, self.num_episodes_added], np.int64
        )
        out["max_priority"] = np.asarray(self.max_priority, np.float64)
        return out

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        for name in (*_FIELDS, "return_to_go", "episode_start", "episode_len", "position"):
            getattr(self, name)[...] = state[name]
        self.priority[...] = state["priority"]
        self.episodes = deque((int(s), int(t)) for s, t in np.asarray(state["episodes"]))
        self.next_position, self.size, self.num_episodes_added = (int(x) for x in state["scalars"])
        self.max_priority = float(state["max_priority"])


def discounted_returns(rewards: np.ndarray, discount: float) -> np.ndarray:
    """Return-to-go of each position: float[T] -> float32[T]."""
    rewards = np.asarray(rewards, np.float64)
    if discount == 1.0:
        return np.cumsum(rewards[::-1])[::-1].astype(np.float32)
    out = np.zeros_like(rewards)
    acc = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        acc = rewards[i] + discount * acc
        out[i] = acc
    return out.astype(np.float32)
