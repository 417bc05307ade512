"""Configuration dataclasses for the MuZero agent.

All configs are frozen (hashable) dataclasses so that they can be closed over by jitted
functions and used as cache keys, and they round-trip through plain dicts (JSON) so that a
checkpoint carries the exact config it was trained with.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Literal

PolicyName = Literal["gumbel", "muzero"]
RewardMode = Literal["dense", "ranked"]
RankedReference = Literal["quantile", "baseline", "max"]


@dataclass(frozen=True)
class SupportConfig:
    """A categorical support for scalar targets (values, rewards).

    A scalar ``x`` is mapped to ``h(x)`` (the MuZero invertible transform, if
    ``use_h_transform``), clipped to ``[-bound, bound]`` and encoded two-hot over
    ``num_bins`` evenly spaced atoms. The decoder takes the expectation over the atoms and
    applies ``h^-1``. With the h-transform, ``bound=5`` reaches ``|x| ~ 35``; the default
    atom spacing (0.05 in h-space, ~0.1 near x = 0) keeps returns in [0, 1] learnable -- a
    coarse support (e.g. MuZero's unit spacing) learned such small returns far slower.
    """

    bound: float = 5.0
    num_bins: int = 201
    use_h_transform: bool = True
    epsilon: float = 1e-3


@dataclass(frozen=True)
class NetworkConfig:
    """Sizes of the representation, dynamics and prediction MLPs."""

    hidden_size: int = 256
    latent_size: int = 128
    num_blocks: int = 0  # extra residual blocks in each of the three networks
    value_support: SupportConfig = field(default_factory=SupportConfig)
    reward_support: SupportConfig = field(default_factory=SupportConfig)


@dataclass(frozen=True)
class SearchConfig:
    """mctx search settings, checked on construction (``ValueError`` naming the field).

    ``max_num_considered_actions`` (Gumbel MuZero's sequential-halving width) may not exceed
    ``num_simulations``: mctx never visits more distinct root actions than it runs
    simulations. ``None`` (the default) means ``min(16, num_simulations)``, so
    ``SearchConfig(num_simulations=8)`` is valid and changing ``num_simulations`` (e.g.
    ``Config.replace(search__num_simulations=4)``) re-derives it; read the effective value
    from :attr:`considered_actions`.
    """

    policy: PolicyName = "gumbel"
    num_simulations: int = 16
    max_depth: int | None = None  # static cap; the per-game moves-left counter also bounds depth
    discount: float = 1.0
    # gumbel_muzero_policy
    max_num_considered_actions: int | None = None  # None: min(16, num_simulations)
    gumbel_scale: float = 1.0
    # muzero_policy
    dirichlet_alpha: float = 0.3
    dirichlet_fraction: float = 0.25
    pb_c_init: float = 1.25
    pb_c_base: float = 19652.0
    temperature: float = 1.0

    def __post_init__(self) -> None:
        if self.policy not in ("gumbel", "muzero"):
            raise ValueError(
                f"SearchConfig.policy must be 'gumbel' or 'muzero', got {self.policy!r}"
            )
        _check_int("num_simulations", self.num_simulations, 1)
        if self.max_depth is not None:
            _check_int("max_depth", self.max_depth, 1)
        m = self.max_num_considered_actions
        if m is not None:
            _check_int("max_num_considered_actions", m, 1)
            if m > self.num_simulations:
                raise ValueError(
                    f"SearchConfig.max_num_considered_actions must be <= num_simulations "
                    f"({self.num_simulations}), got {m} (mctx visits at most one root action "
                    "per simulation; leave it None for min(16, num_simulations))"
                )
        _check_range("discount", self.discount, 0.0, 1.0)
        _check_range("gumbel_scale", self.gumbel_scale, 0.0, math.inf)
        _check_range("dirichlet_alpha", self.dirichlet_alpha, 0.0, math.inf, low_open=True)
        _check_range("dirichlet_fraction", self.dirichlet_fraction, 0.0, 1.0)
        _check_range("pb_c_init", self.pb_c_init, 0.0, math.inf)
        _check_range("pb_c_base", self.pb_c_base, 0.0, math.inf, low_open=True)
        _check_range("temperature", self.temperature, 0.0, math.inf)

    @property
    def considered_actions(self) -> int:
        """The effective ``max_num_considered_actions``."""
        m = self.max_num_considered_actions
        return min(16, self.num_simulations) if m is None else m


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"SearchConfig.{name} must be an integer, got {value!r}")
    if value < low:
        raise ValueError(f"SearchConfig.{name} must be >= {low}, got {value}")


def _check_range(name: str, value: Any, low: float, high: float, low_open: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        raise ValueError(f"SearchConfig.{name} must be a number, got {value!r}")
    if (value <= low if low_open else value < low) or value > high:
        lo = "(" if low_open else "["
        raise ValueError(f"SearchConfig.{name} must be in {lo}{low}, {high}], got {value}")


@dataclass(frozen=True)
class ReplayConfig:
    """Prioritised replay (proportional) over positions."""

    capacity: int = 100_000  # positions
    alpha: float = 0.6  # priority exponent (0 = uniform)
    beta: float = 0.4  # importance-sampling exponent
    epsilon: float = 1e-3  # added to |value error| to form a priority
    min_size: int = 1_000  # positions before learning starts


@dataclass(frozen=True)
class TrainConfig:
    """Learner, actor and bookkeeping settings."""

    num_envs: int = 64  # games stepped together by the actor
    batch_size: int = 128
    unroll_steps: int = 5  # K
    td_steps: int | None = None  # n for n-step targets; None = Monte-Carlo episode returns
    discount: float = 1.0
    learning_rate: float = 3e-3
    warmup_steps: int = 100  # linear learning-rate warm-up
    weight_decay: float = 1e-4
    max_grad_norm: float = 5.0
    value_loss_weight: float = 0.5
    reward_loss_weight: float = 1.0
    policy_loss_weight: float = 1.0
    updates_per_actor_step: float = 1.0  # learner updates per batched env step
    # optional reanalyse of stored positions with the latest network
    reanalyse_every: int = 0  # updates between reanalyse passes (0 = off)
    # reward shaping: "dense" = the env's rewards, "ranked" = Ranked Reward (Laterre et al.)
    reward_mode: RewardMode = "dense"
    ranked_reference: RankedReference = "quantile"
    ranked_quantile: float = 0.75
    ranked_window: int = 256  # recent games whose return quantile is the reference
    ranked_tie_tolerance: float = 1e-6
    # bookkeeping
    log_every: int = 50  # updates between training-curve records
    checkpoint_every: int = 0  # updates between checkpoints (0 = only when asked)
    checkpoint_path: str | None = None
    checkpoint_replay: bool = True  # include the replay buffer in checkpoints


@dataclass(frozen=True)
class Config:
    network: NetworkConfig = field(default_factory=NetworkConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Config:
        return _from_dict(cls, d)

    def replace(self, **sections: Any) -> Config:
        """Returns a copy with whole sections or ``section__field=value`` items replaced.

        ``cfg.replace(search__num_simulations=8, train=TrainConfig(...))``
        """
        out = self
        for key, value in sections.items():
            if "__" in key:
                section, name = key.split("__", 1)
                sub = dataclasses.replace(getattr(out, section), **{name: value})
                out = dataclasses.replace(out, **{section: sub})
            else:
                out = dataclasses.replace(out, **{key: value})
        return out


def _from_dict(cls: type, d: dict[str, Any]) -> Any:
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue  # older checkpoints: fall back to the default
        value = d[f.name]
        sub = _DATACLASS_FIELDS.get((cls.__name__, f.name))
        kwargs[f.name] = _from_dict(sub, value) if sub is not None else value
    if cls is SearchConfig:
        # Older files stored max_num_considered_actions=16 whatever num_simulations was. mctx
        # considers at most num_simulations root actions, so capping it searches identically.
        m, n = kwargs.get("max_num_considered_actions"), kwargs.get("num_simulations", 16)
        if isinstance(m, int) and isinstance(n, int) and n >= 1 and m > n:
            kwargs["max_num_considered_actions"] = n
    return cls(**kwargs)


_DATACLASS_FIELDS: dict[tuple[str, str], type] = {
    ("Config", "network"): NetworkConfig,
    ("Config", "search"): SearchConfig,
    ("Config", "replay"): ReplayConfig,
    ("Config", "train"): TrainConfig,
    ("NetworkConfig", "value_support"): SupportConfig,
    ("NetworkConfig", "reward_support"): SupportConfig,
}
