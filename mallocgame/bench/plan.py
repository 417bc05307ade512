"""Which runs a memory bench makes: its configuration, the solvers that can run (and why the
others cannot), and the (instance, capacity, solver, seed) runs.

Solver metadata comes from :mod:`mallocgame.registry`; which solvers a bench runs by default
is the bench's own choice (:data:`DEFAULT_SOLVERS`, per mode).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

from mallocgame import registry
from mallocgame.bench import peers, suites
from mallocgame.errors import InputError

MODES = ("malloc", "pack")
OBJECTIVE = {"malloc": "time", "pack": "fit-all"}
DEFAULT_SOLVERS = {
    "malloc": ("all-slow", "random", "greedy-size", "msa", "restarts", "cpsat"),
    "pack": (
        "random",
        "greedy-size",
        "msa",
        "restarts",
        "cpsat",
        "omnimalloc:supermalloc",
        "omnimalloc:telamalloc",
        "omnimalloc:greedy_by_size",
        "omnimalloc:greedy_by_all",
    ),
}


@dataclasses.dataclass
class BenchConfig:
    """Everything a bench needs; :mod:`mallocgame.cli.bench` builds it from the command line."""

    mode: str
    out: Path
    instances: list[str] = dataclasses.field(default_factory=list)
    suite: str | None = None
    solvers: list[str] | None = None
    capacities: list[str] | None = None
    seeds: int = 3
    time_limit: float = 5.0
    resume: bool = False
    target: str = "tpuv4i"
    alignment: int | None = None
    threads: int = 2
    cpsat_seeds: int = 1
    bound_time_limit: float | None = None
    hard_timeout: float | None = None
    isolate: bool = True
    progress: bool = True
    pictures: bool = True
    command: str = ""
    ray: str | None = None  # run on a Ray cluster: "auto" or its address (distributed.run_bench)
    ray_cpus: float = 1.0  # the CPUs each run asks Ray for

    def effective_alignment(self) -> int | None:
        """``pack`` defaults to alignment 1 (minimalloc's problem has none); ``malloc`` uses
        the target's."""
        if self.alignment is not None:
            return self.alignment
        return 1 if self.mode == "pack" else None


def check_config(cfg: BenchConfig) -> None:
    """Bad settings are an :class:`InputError` naming the field."""
    if cfg.mode not in MODES:
        raise InputError(f"unknown mode {cfg.mode!r}; choose malloc or pack", field="mode")
    if cfg.seeds < 1:
        raise InputError(f"need at least one seed, got {cfg.seeds}", field="seeds")
    if cfg.cpsat_seeds < 1:
        raise InputError(f"need at least one seed, got {cfg.cpsat_seeds}", field="cpsat-seeds")
    if not cfg.time_limit > 0:
        raise InputError(f"must be positive, got {cfg.time_limit}", field="time-limit")
    if cfg.threads < 1:
        raise InputError(f"must be at least 1, got {cfg.threads}", field="threads")
    if cfg.alignment is not None and cfg.alignment < 1:
        raise InputError(f"must be positive, got {cfg.alignment}", field="alignment")
    if not cfg.ray_cpus > 0:
        raise InputError(f"must be positive, got {cfg.ray_cpus}", field="ray-cpus")
    if cfg.suite is not None and cfg.suite not in suites.SUITES:
        raise InputError(
            f"unknown suite {cfg.suite!r}; choose one of {', '.join(suites.SUITES)}", field="suite"
        )


# --------------------------------------------------------------------------- solvers
def is_baseline(name: str, mode: str) -> bool:
    """A solver the bench counts on in ``mode``: one of its defaults, or a one-pass heuristic
    (deterministic in the registry). A baseline that raises is a failed run; any other
    registered solver that refuses on purpose is reported unavailable instead, and those
    others join the default list."""
    if name in DEFAULT_SOLVERS[mode]:
        return True
    return name in registry.names("memory") and registry.spec("memory", name).deterministic


def plan_solvers(names: list[str] | None, mode: str) -> tuple[list[str], dict[str, str]]:
    """``(runnable, unavailable)``: the solvers to run and, for the others, why not.

    Unknown names raise :class:`InputError` (field ``solvers``)."""
    known = registry.names("memory")
    explicit = names is not None
    if names is None:
        # The defaults, plus every registered solver that is not a baseline (the agent, ...).
        names = list(DEFAULT_SOLVERS[mode]) + [n for n in known if not is_baseline(n, mode)]
    if not names:
        raise InputError("the solver list is empty", field="solvers")
    if len(set(names)) != len(names):
        raise InputError(f"repeated solver in {','.join(names)}", field="solvers")
    runnable: list[str] = []
    unavailable: dict[str, str] = {}
    for n in names:
        if peers.is_peer(n):
            why = peers.unavailable_reason(n, mode)
            if why is None:
                runnable.append(n)
            else:
                unavailable[n] = why
        elif n in known:
            if mode == "pack" and n == "all-slow":
                unavailable[n] = "places nothing, so it cannot play fit-all (pack)"
            else:
                runnable.append(n)
        else:
            raise InputError(
                f"unknown solver {n!r}; choose from {', '.join([*known, 'omnimalloc:NAME'])}",
                field="solvers",
            )
    if not runnable and explicit:
        raise InputError(
            "none of the solvers can run here: "
            + "; ".join(f"{k}: {v}" for k, v in unavailable.items()),
            field="solvers",
        )
    # The ceiling first, so that later runs already see its bound.
    runnable.sort(key=lambda s: 0 if s == "cpsat" else 1)
    return runnable, unavailable


# --------------------------------------------------------------------------- runs
def seeds_for(solver: str, cfg: BenchConfig) -> list[int]:
    """The seeds ``solver`` runs: ``cpsat_seeds`` for the ceiling, ``seeds`` for the others
    (deterministic ones too: their repeats are timing samples)."""
    n = cfg.cpsat_seeds if solver == "cpsat" else cfg.seeds
    return list(range(max(1, n)))


def runs_per_capacity(solvers: list[str], cfg: BenchConfig) -> int:
    return sum(len(seeds_for(s, cfg)) for s in solvers)


def iter_jobs(
    instances: list[suites.InstanceSpec], caps: list[str], solvers: list[str], cfg: BenchConfig
) -> Iterator[tuple[suites.InstanceSpec, str, str, int]]:
    """Every (instance, capacity, solver, seed) run, in the order the bench makes them."""
    for spec in instances:
        for cap in caps:
            for s in solvers:
                for seed in seeds_for(s, cfg):
                    yield spec, cap, s, seed
