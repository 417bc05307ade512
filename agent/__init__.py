"""Game-agnostic MuZero (JAX, dm-haiku, mctx, optax) for single-player batched games.

Games are seen only through :class:`agent.env.BatchedEnv`. Entry points:

- :class:`Trainer` -- ``Trainer(env_factory, config, seed).train(num_steps, callback)``,
  ``act(obs, legal, moves_left)``, ``save(path)``, ``Trainer.resume(path, env_factory)``;
- :class:`AsyncTrainer` -- the same training with self-play workers beside one learner, in
  this process or as Ray actors (``launcher=RayLauncher()``);
- :func:`load_policy` -- ``load_policy(path).search(obs, legal, moves_left)``.

See docs/agent.md.
"""

from agent.config import (
    Config,
    NetworkConfig,
    ReplayConfig,
    SearchConfig,
    SupportConfig,
    TrainConfig,
)
from agent.distributed import AsyncTrainer, LocalLauncher, RayLauncher
from agent.env import BatchedEnv, KnapsackEnv, check_env
from agent.search import SearchOutput, make_search_fn, run_search
from agent.selfplay import evaluate, random_act_fn
from agent.trainer import Policy, Trainer, load_policy, write_curves_csv

__all__ = [
    "AsyncTrainer",
    "BatchedEnv",
    "Config",
    "KnapsackEnv",
    "LocalLauncher",
    "NetworkConfig",
    "Policy",
    "RayLauncher",
    "ReplayConfig",
    "SearchConfig",
    "SearchOutput",
    "SupportConfig",
    "TrainConfig",
    "Trainer",
    "check_env",
    "evaluate",
    "load_policy",
    "make_search_fn",
    "random_act_fn",
    "run_search",
    "write_curves_csv",
]
