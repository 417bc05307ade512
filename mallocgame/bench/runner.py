"""The memory bench's runner: every (instance, capacity, solver, seed) run, isolated, recorded,
resumable (``mallocgame bench {malloc,pack}``).

The parent loads workloads, computes nothing heavy itself (bounds are computed in a child
too), runs each solver in a forked child (:mod:`~mallocgame.bench.isolation`), judges each
returned mapping with the cost model and the independent validator
(:mod:`~mallocgame.bench.evaluation`), and appends one JSON line per run to ``runs.jsonl``
(flushed and fsynced, :mod:`~mallocgame.bench.records`), so an interrupted bench resumes with
``resume=True`` and skips the (instance, solver, seed, capacity) runs already there. Which runs
to make: :mod:`~mallocgame.bench.plan`; the report: :mod:`~mallocgame.bench.report`.

The runs are made here, one after the other, unless :func:`run_bench` is given another
``drive`` (:mod:`~mallocgame.bench.distributed`: a Ray cluster); a drive uses the same steps of
:class:`Bench` (which problems, which runs are still to make, a run's record and its judgement,
the logs), so that its records are the local bench's.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.bench import peers, records, report, suites
from mallocgame.bench.evaluation import bounds_job, evaluate, solver_job
from mallocgame.bench.isolation import execute
from mallocgame.bench.plan import (
    OBJECTIVE,
    BenchConfig,
    check_config,
    is_baseline,
    iter_jobs,
    plan_solvers,
    runs_per_capacity,
    seeds_for,
)
from mallocgame.bench.progress import Progress
from mallocgame.bench.records import (
    SCHEMA,
    RunLog,
    best_bound,
    bounds_violated,
    finite,
    gap,
    host_info,
    jsonable,
    load_best,
    update_best,
    write_json,
)
from mallocgame.errors import InputError, MallocGameError
from mallocgame.io import atomic_write_text
from mallocgame.memory.problem import Problem
from mallocgame.memory.sources import make_problem

# How a bench's runs are made: given the bench, its instances and capacities (see run_bench).
Drive = Callable[["Bench", list[suites.InstanceSpec], list[str]], None]

__all__ = ["Bench", "BenchConfig", "BenchOutcome", "Drive", "run_bench"]


@dataclasses.dataclass
class BenchOutcome:
    """What a bench did: runs made and skipped as finished, failures, the solvers found
    unavailable (and why), instances skipped, and the report's files."""

    out: Path
    runs_done: int
    runs_skipped: int
    invalid: int
    errors: int
    interrupted: bool
    unavailable: dict[str, str]
    skipped_instances: list[str]
    report: dict[str, str]

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return 130
        return 1 if (self.invalid or self.errors or self.skipped_instances) else 0


def _prepare_out(cfg: BenchConfig, host: dict[str, Any]) -> None:
    """Refuse a folder that holds a bench unless resuming (and then one of another mode, target
    or alignment); record this invocation in ``config.json``."""
    out = cfg.out
    runs = out / "runs.jsonl"
    cfg_path = out / "config.json"
    if runs.exists() and runs.stat().st_size > 0 and not cfg.resume:
        raise InputError(
            f"{runs} exists: pass --resume to continue that bench, or choose another --out",
            field="out",
        )
    out.mkdir(parents=True, exist_ok=True)
    history: list[dict[str, Any]] = []
    invocation = {
        "started": _dt.datetime.now().isoformat(timespec="seconds"),
        "command": cfg.command,
        "config": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(cfg).items()
        },
        "host": host,
    }
    if cfg_path.exists():
        try:
            old = json.loads(cfg_path.read_text())
            history = list(old.get("invocations", []))
        except (json.JSONDecodeError, OSError):
            history = []
        if history:
            first = history[0]["config"]
            for key in ("mode", "target", "alignment"):
                if first.get(key) != invocation["config"].get(key):
                    raise InputError(
                        f"this folder's bench ran with {key}={first.get(key)!r}; resuming with "
                        f"{invocation['config'].get(key)!r} would mix results",
                        field=key,
                    )
    history.append(invocation)
    atomic_write_text(
        cfg_path, json.dumps({"schema": SCHEMA, "mode": cfg.mode, "invocations": history}, indent=2)
    )


def run_bench(cfg: BenchConfig, drive: Drive | None = None) -> BenchOutcome:
    """Run the bench that ``cfg`` describes; write ``runs.jsonl``, ``bounds.jsonl``,
    ``results.md`` and pictures under ``cfg.out``. ``drive`` makes the runs (default: one after
    the other here, :meth:`Bench.instance`)."""
    check_config(cfg)
    cfg.out = Path(cfg.out)
    caps = suites.parse_capacities(cfg.capacities, cfg.mode)
    solver_list, unavailable = plan_solvers(cfg.solvers, cfg.mode)
    instances = suites.resolve_instances(cfg.instances, cfg.suite, cfg.mode)
    host = host_info()
    _prepare_out(cfg, host)
    if unavailable:
        write_json(cfg.out / "unavailable.json", unavailable)
    jobs = list(iter_jobs(instances, caps, solver_list, cfg))
    outcome = BenchOutcome(cfg.out, 0, 0, 0, 0, False, unavailable, [], {})
    with Progress(len(jobs), cfg.progress) as ui:
        bench = Bench(cfg, solver_list, outcome, ui)
        for name, why in unavailable.items():
            ui.note(f"unavailable: {name}: {why}")
        try:
            if drive is None:
                for spec in instances:
                    bench.instance(spec, caps)
            else:
                drive(bench, instances, caps)
        except KeyboardInterrupt:
            outcome.interrupted = True
            ui.note("interrupted: finished runs are in runs.jsonl; continue with --resume")
    outcome.report = report.write_report(cfg.out, pictures=cfg.pictures)
    return outcome


class Bench:
    """One bench's state while it runs: the logs, the runs done, the best mappings, the
    solvers disabled on the way, and the outcome so far; and the steps of a run (which problems,
    whether a run is still to make, its record, its judgement, the logs), which a drive calls."""

    def __init__(
        self, cfg: BenchConfig, solvers: list[str], outcome: BenchOutcome, ui: Progress
    ) -> None:
        self.cfg, self.solvers, self.outcome, self.ui = cfg, solvers, outcome, ui
        self.runs = RunLog(cfg.out / "runs.jsonl")
        self.bounds_log = RunLog(cfg.out / "bounds.jsonl")
        self.done = self.runs.keys()
        self.best = load_best(cfg.out)
        self.disabled: dict[str, str] = {}
        self.alignment = cfg.effective_alignment()
        self.bound_limit = (
            cfg.bound_time_limit if cfg.bound_time_limit is not None else cfg.time_limit
        )
        self.hard = (
            cfg.hard_timeout if cfg.hard_timeout is not None else 3.0 * cfg.time_limit + 120.0
        )

    # ------------------------------------------------------------------ made here, in order
    def instance(self, spec: suites.InstanceSpec, caps: list[str]) -> None:
        """Every run on ``spec``, at every capacity, one after the other."""
        for cap, cap_b, problem, extract_s in self.problems(spec, caps):
            self.bounds(spec, cap, cap_b, problem)
            for solver in self.solvers:
                for seed in seeds_for(solver, self.cfg):
                    self.run(spec, cap, cap_b, problem, solver, seed, extract_s)

    def bounds(self, spec: suites.InstanceSpec, cap: str, cap_b: int, problem: Problem) -> None:
        """The task's lower bounds, computed in a child unless ``bounds.jsonl`` has them."""
        if not self.needs_bounds(spec, cap):
            return
        self.ui.describe(f"{spec.name} @ {cap}: bounds")
        status, payload = execute(
            bounds_job, self.bounds_args(problem), self.cfg.isolate, self.hard, self.ui.tick
        )
        self.log_bounds(spec, cap, cap_b, status, payload)

    def run(
        self,
        spec: suites.InstanceSpec,
        cap: str,
        cap_b: int,
        problem: Problem,
        solver: str,
        seed: int,
        extract_s: float,
    ) -> None:
        """One run, unless it is done already or its solver was disabled; logged."""
        if not self.pending(spec, cap, solver, seed):
            return
        self.ui.describe(f"{spec.name} @ {cap}: {solver} seed {seed}")
        status, payload = execute(
            solver_job,
            self.run_args(problem, solver, seed),
            self.cfg.isolate,
            self.hard,
            self.ui.tick,
        )
        rec = self.record(spec, cap, cap_b, problem, solver, seed)
        offsets = self.judge(rec, problem, status, payload, extract_s)
        self.log_run(rec, offsets, problem, spec, cap)

    # ------------------------------------------------------------------ the steps
    def problems(
        self, spec: suites.InstanceSpec, caps: list[str]
    ) -> Iterator[tuple[str, int, Problem, float]]:
        """Load ``spec`` (once; XLA programs are cached under ``OUT/workloads``) and yield
        ``(capacity, bytes, problem, extract_s)`` at each capacity it can be played at; an
        instance or capacity that cannot is recorded as skipped (its runs counted off)."""
        cfg, ui = self.cfg, self.ui
        ui.describe(f"loading {spec.name}")
        try:
            wl, extract_s = suites.load_instance(spec, cfg.out / "workloads")
        except MallocGameError as e:
            self.outcome.skipped_instances.append(f"{spec.name}: {e}")
            ui.note(f"skipped {spec.name}: {e}")
            ui.advance(None, runs_per_capacity(self.solvers, cfg) * len(caps))
            return
        if extract_s:
            ui.note(f"compiled {spec.name} in {extract_s:.1f} s ({wl.num_buffers} buffers)")
        for cap in caps:
            try:
                cap_b = suites.capacity_bytes(cap, wl, spec, cfg.mode, self.alignment or 1)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    problem = make_problem(
                        wl, cap_b, cfg.target, OBJECTIVE[cfg.mode], self.alignment
                    )
            except InputError as e:
                self.outcome.skipped_instances.append(f"{spec.name} @ {cap}: {e}")
                ui.note(f"skipped {spec.name} @ {cap}: {e}")
                ui.advance(None, runs_per_capacity(self.solvers, cfg))
                continue
            yield cap, cap_b, problem, extract_s

    def needs_bounds(self, spec: suites.InstanceSpec, cap: str) -> bool:
        """Whether the task's bounds are still to compute (``bounds.jsonl`` has only CP-SAT's)."""
        return not any(
            b.get("kind") != "cpsat"
            for b in self.bounds_log.records
            if b.get("instance") == spec.name and b.get("capacity") == cap
        )

    def bounds_args(self, problem: Problem) -> tuple[Any, ...]:
        """The arguments of :func:`~mallocgame.bench.evaluation.bounds_job` for ``problem``."""
        return (problem, self.cfg.mode, self.bound_limit)

    def log_bounds(
        self, spec: suites.InstanceSpec, cap: str, cap_b: int, status: str, payload: Any
    ) -> None:
        """Append the bounds that a bounds job returned (a failure is noted, not logged)."""
        if status != "ok":
            first = str(payload).splitlines()[0]
            self.ui.note(f"bounds failed on {spec.name} @ {cap}: {first}")
            return
        ctx = {"instance": spec.name, "capacity": cap}
        for b in payload["bounds"]:
            rec = dict(ctx, capacity_bytes=cap_b, **{k: jsonable(v) for k, v in b.items()})
            self.bounds_log.append(rec)

    def pending(self, spec: suites.InstanceSpec, cap: str, solver: str, seed: int) -> bool:
        """Whether the run is still to make; when not (done already, its solver disabled) it
        is counted off."""
        if solver in self.disabled:
            self.ui.advance(None)
            return False
        if (spec.name, solver, seed, cap) in self.done:
            self.outcome.runs_skipped += 1
            self.ui.advance(None)
            return False
        return True

    def run_args(self, problem: Problem, solver: str, seed: int) -> tuple[Any, ...]:
        """The arguments of :func:`~mallocgame.bench.evaluation.solver_job` for one run."""
        return (problem, solver, seed, self.cfg.time_limit, self.cfg.threads)

    def record(
        self,
        spec: suites.InstanceSpec,
        cap: str,
        cap_b: int,
        problem: Problem,
        solver: str,
        seed: int,
    ) -> dict[str, Any]:
        """What a run's record holds before it runs: the task, the solver, the settings."""
        cfg, w = self.cfg, problem.workload
        return {
            "schema": SCHEMA,
            "mode": cfg.mode,
            "instance": spec.name,
            "source": spec.source,
            "capacity": cap,
            "capacity_bytes": int(cap_b),
            "alignment": int(problem.target.alignment_bytes),
            "target": problem.target.name,
            "solver": solver,
            "seed": seed,
            "time_limit_s": cfg.time_limit,
            "threads": cfg.threads,
            "num_buffers": w.num_buffers,
            "peak_live_bytes": w.peak_live_bytes(),
            "objective_name": "time_s" if cfg.mode == "malloc" else "peak_bytes",
        }

    def judge(
        self,
        rec: dict[str, Any],
        problem: Problem,
        status: str,
        payload: Any,
        extract_s: float,
    ) -> np.ndarray | None:
        """Complete ``rec`` from what the run's child returned (:func:`isolation.execute`'s
        ``status, payload``): the mapping judged, its gap to the best bound known now; the
        mapping when it returned one. A cpsat run's proven bound goes into ``bounds.jsonl``."""
        cfg, bounds_log = self.cfg, self.bounds_log
        spec_name, cap, cap_b, solver = (
            rec["instance"],
            rec["capacity"],
            rec["capacity_bytes"],
            rec["solver"],
        )
        seed = rec["seed"]
        if status == "refused":
            status, rec["refused"] = "error", True
        rec["status"] = status
        if status != "ok":
            rec.update({"error": str(payload)[-2000:], "valid": False, "objective": None})
            rec["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
            return None
        rec.update(evaluate(problem, cfg.mode, solver, payload["offsets"]))
        rec["wall_s"] = payload["wall_s"]
        rec.update(
            {k: finite(v) if isinstance(v, float) else v for k, v in payload["_proc"].items()}
        )
        if rec.get("peak_rss_mib") is not None and rec.get("rss_start_mib") is not None:
            rec["rss_growth_mib"] = max(0.0, rec["peak_rss_mib"] - rec["rss_start_mib"])
        extra = payload.get("extra") or {}
        rec["extra"] = extra
        solver_bound = extra.get("bound") if solver == "cpsat" else None
        if solver == "cpsat":
            rec["solver_bound"] = solver_bound
            rec["proved_optimal"] = bool(extra.get("proved_optimal"))
            rec["cpsat_status"] = extra.get("status")
            if solver_bound is not None:
                bounds_log.append(
                    {
                        "instance": spec_name,
                        "capacity": cap,
                        "capacity_bytes": int(cap_b),
                        "kind": "cpsat",
                        "value": solver_bound,
                        "proven": True,
                        "wall_s": rec["wall_s"],
                        "seed": seed,
                        "info": {"status": extra.get("status")},
                    }
                )
        if (
            solver.startswith(peers.PREFIX)
            and extra.get("peer_lower_bound") is not None
            and cfg.mode == "pack"
        ):
            rec["solver_bound"] = extra.get("peer_lower_bound")
        have = [
            b
            for b in bounds_log.records
            if b.get("instance") == spec_name and b.get("capacity") == cap
        ]
        bnd, kind = best_bound(have)
        violated = bounds_violated(rec.get("objective"), have)
        if violated:
            # A valid mapping below a proven bound means a bug in a bound or in the validator.
            rec["below_bound"] = True
            rec["below_bound_kinds"] = violated
        rec["bound"] = bnd
        rec["bound_kind"] = kind
        rec["gap_to_bound"] = gap(rec.get("objective"), bnd)
        if extract_s:
            rec["extract_s"] = extract_s
        rec["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        return payload["offsets"]

    def log_run(
        self,
        rec: dict[str, Any],
        offsets: np.ndarray | None,
        problem: Problem,
        spec: suites.InstanceSpec,
        cap: str,
    ) -> None:
        """Append a judged run to ``runs.jsonl`` and count it (and keep its mapping if it is the
        task's best); a registered solver that refused to start is disabled instead."""
        cfg, ui, outcome = self.cfg, self.ui, self.outcome
        solver = rec["solver"]
        if solver in self.disabled:  # refused meanwhile (runs made side by side)
            ui.advance(None)
            return
        why = _configuration_failure(rec, cfg.mode)
        if why is not None:
            # A registered solver that cannot start here (the agent without a trained policy):
            # unavailable, not a failed run; not logged, so a later --resume runs it once it can.
            self.disabled[solver] = outcome.unavailable[solver] = why
            write_json(cfg.out / "unavailable.json", outcome.unavailable)
            ui.note(f"unavailable: {solver}: {why}")
            ui.advance(None)
            return
        self.runs.append(rec)
        self.done.add(records.run_key(rec))
        outcome.runs_done += 1
        if rec["status"] != "ok":
            outcome.errors += 1
        elif not rec["valid"]:
            outcome.invalid += 1
        if offsets is not None:
            update_best(cfg.out, cfg.mode, self.best, rec, problem, spec, cap, offsets)
        ui.advance(_line(rec))


def _configuration_failure(rec: dict[str, Any], mode: str) -> str | None:
    """The reason when a registered solver that is not a baseline (:func:`plan.is_baseline`)
    failed on purpose (it raised one of mallocgame's own errors, e.g. no trained policy),
    else None."""
    solver = rec["solver"]
    if rec.get("status") != "error" or is_baseline(solver, mode) or peers.is_peer(solver):
        return None
    if not rec.get("refused"):
        return None
    err = str(rec.get("error", "")).strip()
    return err.splitlines()[0] if err else "refused to run"


def _line(rec: dict[str, Any]) -> str:
    obj = rec.get("objective")
    g = rec.get("gap_to_bound")
    return (
        f"{rec['instance']} @ {rec['capacity']} {rec['solver']} seed {rec['seed']}: "
        f"{rec['status']}{'' if rec.get('valid', True) else ' INVALID'} "
        f"objective {obj if obj is None else f'{obj:.6g}'}"
        f"{'' if g is None else f' gap {100 * g:.2f}%'} wall {rec.get('wall_s') or 0:.2f}s"
    )
