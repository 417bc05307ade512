"""The memory bench on a Ray cluster: ``mallocgame bench {malloc,pack} --ray [auto|ADDRESS]``.

Each run, and each task's bounds, becomes a Ray task (Ray Core) that asks for ``ray_cpus`` CPUs
and goes through the local bench's isolation inside it: :func:`~.isolation.execute` forks the
run from the Ray worker, so the time limit, the hard timeout, the run's own peak RSS and a crash
recorded as a failed run are those of the local bench. The driver loads each instance once
(XLA programs compiled once, cached under ``OUT/workloads``), ``ray.put`` s each (instance,
capacity) problem once, submits every run still to make, collects the results as they complete
(``ray.wait``) and judges and logs them with the local bench's own steps
(:class:`~.runner.Bench`): the same records in the same ``runs.jsonl``, so ``--resume`` works
across both (a folder begun locally resumes under ``--ray`` and back).

Order: a run's gap is taken to the bounds known when it is judged, and locally a task's bounds
job and CP-SAT's runs (the ceiling) come first. The driver holds a task's other results until
its ceiling is judged, CP-SAT's runs by seed, so that every record sees the bounds it would
have seen locally; once the bench is through, this invocation's records are put in the local
order (the plan's). Ray is optional (the ``ray`` extra) and imported only here, on this path.

What differs from the local bench: ``peak_rss_mib`` and ``rss_start_mib`` start from a Ray
worker's resident set rather than the bench process's (``rss_growth_mib``, what the solver
added, compares), and the runs share the machines with each other.
"""

from __future__ import annotations

import copy
import dataclasses
from types import ModuleType
from typing import Any

from mallocgame import registry
from mallocgame.bench import peers, runner, suites
from mallocgame.bench.evaluation import bounds_job, solver_job
from mallocgame.bench.isolation import Job, execute
from mallocgame.bench.plan import BenchConfig, iter_jobs, seeds_for
from mallocgame.bench.records import run_key
from mallocgame.cluster import RAY_MISSING, connect, import_ray
from mallocgame.errors import InputError
from mallocgame.memory.problem import Problem

__all__ = ["RAY_MISSING", "connect", "import_ray", "run_bench"]

BOUNDS = ("", -1)  # the key of a task's bounds job (a run's key is (solver, seed))
Key = tuple[str, int]


def run_bench(cfg: BenchConfig) -> runner.BenchOutcome:
    """:func:`runner.run_bench` with every run a Ray task on the cluster ``cfg.ray`` names."""
    if not cfg.ray:
        raise InputError("no Ray cluster given (auto or an address)", field="ray")
    ray = import_ray()  # before anything is written: without ray, nothing happens
    return runner.run_bench(cfg, drive=_RayDrive(ray, cfg).drive)


# --------------------------------------------------------------------------- in the worker
def _task(
    fn: Job,
    problem: Problem,
    args: tuple[Any, ...],
    isolate: bool,
    hard_timeout: float,
    spec: registry.SolverSpec | None,
) -> tuple[str, Any]:
    """A Ray task: ``fn(problem, *args)`` through :func:`execute`, as the local bench runs it.
    ``problem`` arrives from the object store with read-only arrays; the run gets a private
    writable copy, as a forked child of the local bench does. ``spec`` is the driver's registry
    entry of the run's solver (for a solver registered there at run time)."""
    problem = copy.deepcopy(problem)
    if spec is None:
        return execute(fn, (problem, *args), isolate, hard_timeout)
    return execute(_with_spec, (spec, fn, problem, *args), isolate, hard_timeout)


def _with_spec(spec: registry.SolverSpec, fn: Job, *args: Any) -> dict[str, Any]:
    registry.ensure(spec)  # in the run's child: the worker's own table stays as it was
    return fn(*args)


# --------------------------------------------------------------------------- in the driver
@dataclasses.dataclass
class _Cell:
    """One (instance, capacity) on the cluster: its problem (put once) and its results, judged
    in the local order: the ceiling (``gate``: the bounds job, CP-SAT's runs by seed) first,
    the other runs as they come once it is through."""

    spec: suites.InstanceSpec
    cap: str
    cap_b: int
    problem: Problem
    extract_s: float
    gate: list[Key] = dataclasses.field(default_factory=list)
    held: dict[Key, tuple[str, Any]] = dataclasses.field(default_factory=dict)


class _RayDrive:
    """Submits a bench's runs to Ray and logs their results (a :data:`runner.Drive`)."""

    def __init__(self, ray: ModuleType, cfg: BenchConfig) -> None:
        self.ray, self.cfg = ray, cfg
        self.pending: dict[Any, tuple[_Cell, Key]] = {}  # ObjectRef -> what it computes

    def drive(
        self, bench: runner.Bench, instances: list[suites.InstanceSpec], caps: list[str]
    ) -> None:
        ray, cfg = self.ray, self.cfg
        assert cfg.ray is not None
        bench.ui.describe(f"connecting to Ray ({cfg.ray})")
        owned = connect(ray, cfg.ray)
        n0 = len(bench.runs.records)
        try:
            self.remote = ray.remote(num_cpus=cfg.ray_cpus)(_task)
            for spec in instances:
                for cap, cap_b, problem, extract_s in bench.problems(spec, caps):
                    self.submit(bench, _Cell(spec, cap, cap_b, problem, extract_s))
                    self.collect(bench, timeout=0)  # runs finish while the next one loads
            while self.pending:
                self.collect(bench, timeout=0.2)
        except KeyboardInterrupt:
            for ref in self.pending:
                ray.cancel(ref)
            raise
        finally:
            if owned:
                ray.shutdown()
        _in_plan_order(bench, instances, caps, n0)

    def submit(self, bench: runner.Bench, cell: _Cell) -> None:
        """Put ``cell``'s problem in the object store and submit its runs still to make."""
        problem, spec, cap = cell.problem, cell.spec, cell.cap
        ref = self.ray.put(problem)
        isolate, hard = self.cfg.isolate, bench.hard
        if bench.needs_bounds(spec, cap):
            args = bench.bounds_args(problem)[1:]
            self.pending[self.remote.remote(bounds_job, ref, args, isolate, hard, None)] = (
                cell,
                BOUNDS,
            )
            cell.gate.append(BOUNDS)
        for solver in bench.solvers:
            entry = None if peers.is_peer(solver) else registry.spec("memory", solver)
            for seed in seeds_for(solver, self.cfg):
                if not bench.pending(spec, cap, solver, seed):
                    continue
                args = bench.run_args(problem, solver, seed)[1:]
                task = self.remote.remote(solver_job, ref, args, isolate, hard, entry)
                self.pending[task] = (cell, (solver, seed))
                if solver == "cpsat":
                    cell.gate.append((solver, seed))
        self.flush(bench, cell)

    def collect(self, bench: runner.Bench, timeout: float) -> None:
        """Log the results that are ready (waiting up to ``timeout`` s for the first)."""
        ray = self.ray
        refs = list(self.pending)
        if not refs:
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            cell, key = self.pending.pop(ref)
            try:
                cell.held[key] = ray.get(ref)
            except ray.exceptions.TaskCancelledError:
                cell.held[key] = ("cancelled", None)
            except ray.exceptions.RayError as e:  # the worker or its node died, an object lost
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                cell.held[key] = ("error", f"the Ray task failed: {type(e).__name__}: {first}")
            self.flush(bench, cell)
        bench.ui.describe(f"{len(self.pending)} runs on the Ray cluster")
        bench.ui.tick()

    def flush(self, bench: runner.Bench, cell: _Cell) -> None:
        """Judge and log ``cell``'s held results that the local order lets through."""
        while cell.gate and cell.gate[0] in cell.held:
            key = cell.gate.pop(0)
            self.log(bench, cell, key, *cell.held.pop(key))
        if not cell.gate:
            for key in list(cell.held):
                self.log(bench, cell, key, *cell.held.pop(key))

    def log(self, bench: runner.Bench, cell: _Cell, key: Key, status: str, payload: Any) -> None:
        spec, cap, cap_b, problem = cell.spec, cell.cap, cell.cap_b, cell.problem
        if key == BOUNDS:
            bench.log_bounds(spec, cap, cap_b, status, payload)
            return
        if status == "cancelled":  # its solver was disabled
            bench.ui.advance(None)
            return
        solver, seed = key
        rec = bench.record(spec, cap, cap_b, problem, solver, seed)
        offsets = bench.judge(rec, problem, status, payload, cell.extract_s)
        bench.log_run(rec, offsets, problem, spec, cap)
        if solver in bench.disabled:  # refused to start: its other runs need not run
            for ref, (_, (s, _)) in self.pending.items():
                if s == solver:
                    self.ray.cancel(ref)


def _in_plan_order(
    bench: runner.Bench, instances: list[suites.InstanceSpec], caps: list[str], n0: int
) -> None:
    """Put the records this invocation added (after the first ``n0``) in the plan's order, the
    one a local bench writes them in; the earlier ones stay as they were."""
    order = {
        (spec.name, solver, seed, cap): i
        for i, (spec, cap, solver, seed) in enumerate(
            iter_jobs(instances, caps, bench.solvers, bench.cfg)
        )
    }
    old, new = bench.runs.records[:n0], bench.runs.records[n0:]
    ranked = sorted(new, key=lambda r: order.get(run_key(r), len(order)))
    if ranked != new:
        bench.runs.rewrite(old + ranked)
