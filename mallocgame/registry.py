"""One registry of the solvers of both games.

Each solver is a :class:`SolverSpec`: its game, where its function lives (``module:attribute``,
imported the first time it is used, so that JAX, OR-Tools or a trained policy are loaded only by
the solvers that need them), whether its answer depends on the seed, and what it needs beyond
the core install. A solver module that fails to import raises its real ``ImportError`` naming
the module, never "unknown solver".

The table names modules of the games by string: this module sits below them (the games import
it to find their solvers), and the import happens only when a solver is asked for.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from typing import Any

from mallocgame.errors import InputError

GAMES = ("memory", "rank")


@dataclasses.dataclass(frozen=True)
class SolverSpec:
    name: str
    game: str  # "memory" or "rank"
    target: str  # "package.module:function", imported on first use
    summary: str  # one line for --help and listings
    deterministic: bool = False  # the same answer for every seed (one run per instance is enough)
    needs_policy: bool = False  # plays a trained agent checkpoint
    extra: str | None = None  # the pyproject extra its dependencies come from, if not the core

    @property
    def module(self) -> str:
        return self.target.split(":", 1)[0]

    def load(self) -> Callable[..., Any]:
        """The solver's function. An import error inside its module propagates as it is, with
        the module's name in front."""
        module, attr = self.target.split(":", 1)
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            raise ImportError(f"solver {self.name!r}: cannot import {module}: {e}") from e
        try:
            return getattr(mod, attr)
        except AttributeError:
            raise ImportError(f"solver {self.name!r}: {module} has no {attr}") from None


_M = "mallocgame.memory.solvers"
_R = "mallocgame.rank"
SPECS: tuple[SolverSpec, ...] = (
    # memory game
    SolverSpec(
        "all-slow", "memory", f"{_M}.heuristics:all_slow", "every buffer in slow memory", True
    ),
    SolverSpec(
        "msa", "memory", f"{_M}.heuristics:msa", "XLA's memory-space assignment, ported", True
    ),
    SolverSpec(
        "greedy-size", "memory", f"{_M}.heuristics:greedy_size", "largest first, best fit", True
    ),
    SolverSpec(
        "msa-skip", "memory", f"{_M}.heuristics:msa_skip", "msa's order, best skip fraction", True
    ),
    SolverSpec("random", "memory", f"{_M}.heuristics:random_order", "random order, best fit"),
    SolverSpec(
        "restarts",
        "memory",
        f"{_M}.heuristics:restarts",
        "msa, then perturbed orders until the time limit",
    ),
    SolverSpec(
        "local-search",
        "memory",
        f"{_M}.local_search:solve",
        "the agent's local search without the agent",
    ),
    SolverSpec("pack", "memory", f"{_M}.packing:solve_pack", "exact fit-all packing search"),
    SolverSpec(
        "pack-peak",
        "memory",
        f"{_M}.packing:solve_pack_peak",
        "exact minimum-peak packing search",
    ),
    SolverSpec(
        "cpsat",
        "memory",
        f"{_M}.cpsat:solve",
        "OR-Tools CP-SAT on the whole problem",
        extra="bench",
    ),
    SolverSpec(
        "agent",
        "memory",
        f"{_M}.agent:solve",
        "the trained MuZero agent plus local search",
        needs_policy=True,
    ),
    # rank game
    SolverSpec("uniform", "rank", f"{_R}.solvers:solve_uniform", "the same rank everywhere", True),
    SolverSpec(
        "spectral", "rank", f"{_R}.solvers:solve_spectral", "ranks by kept spectral energy", True
    ),
    SolverSpec("fisher", "rank", f"{_R}.solvers:solve_fisher", "ranks by Fisher sensitivity", True),
    SolverSpec(
        "greedy",
        "rank",
        f"{_R}.solvers:solve_greedy",
        "greedy moves measured on calibration text",
        True,
    ),
    SolverSpec(
        "refine", "rank", f"{_R}.solvers:solve_refine", "pairwise moves from a start config", True
    ),
    SolverSpec("agent", "rank", f"{_R}.agent:solve", "the MuZero agent on the rank game"),
)
_BY_KEY = {(s.game, s.name): s for s in SPECS}


def specs(game: str) -> list[SolverSpec]:
    """The solvers of ``game``, in the table's order."""
    if game not in GAMES:
        raise ValueError(f"unknown game {game!r}; expected one of {GAMES}")
    return [s for s in SPECS if s.game == game]


def names(game: str) -> list[str]:
    return sorted(s.name for s in specs(game))


def spec(game: str, name: str) -> SolverSpec:
    """The spec of solver ``name`` of ``game``; an unknown name is an :class:`InputError` on the
    field ``solver`` that lists the known ones."""
    try:
        return _BY_KEY[(game, name)]
    except KeyError:
        raise InputError(
            f"unknown {game} solver {name!r}; choose one of {', '.join(names(game))}",
            field="solver",
        ) from None


def load(game: str, name: str) -> Callable[..., Any]:
    return spec(game, name).load()


def ensure(spec: SolverSpec) -> None:
    """Add ``spec`` to this process's table unless a solver of its game and name is there
    already: a solver registered at run time elsewhere (a plugin or a test's fake, in the
    bench's driver) reaching the process that runs it (a Ray worker)."""
    global SPECS
    if (spec.game, spec.name) not in _BY_KEY:
        SPECS = (*SPECS, spec)
        _BY_KEY[(spec.game, spec.name)] = spec
