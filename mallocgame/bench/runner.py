"""The bench runner: every (instance, capacity, solver, seed) run, isolated, recorded, resumable.

Each run happens in a forked child process (``isolate=True``), so that a crash, a runaway
solver (killed after ``hard_timeout``) or a leak cannot take the bench down, and so that the
child's peak RSS belongs to that run. The parent loads workloads, computes nothing heavy
itself (bounds are computed in a child too), evaluates each returned mapping with the cost
model and the independent validator, and appends one JSON line per run to ``runs.jsonl``
(flushed and fsynced), so an interrupted bench resumes with ``resume=True`` and skips the
(instance, solver, seed, capacity) runs already there.

Memory: ``peak_rss_mib`` is the run process's ``ru_maxrss`` (Linux: KiB, high-water mark of
the resident set) from ``resource.getrusage(RUSAGE_SELF)`` in the child; a forked child starts
with the parent's resident pages (interpreter, libraries, the loaded workload), so
``rss_growth_mib`` (peak minus the resident size when the run began) is what the solver itself
added. Not ``tracemalloc``: it would slow the Python solvers and miss native allocations.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import multiprocessing
import os
import resource
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame import io
from mallocgame.bench import exact, peers, suites
from mallocgame.errors import InputError, MallocGameError
from mallocgame.memory import cost
from mallocgame.memory.problem import Problem
from mallocgame.memory.validate import validate

SCHEMA = 1
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
# Solvers whose result does not depend on the seed: one run per (instance, capacity) is
# enough, but they run every seed anyway unless ``deterministic_once`` (timing samples).
DETERMINISTIC = ("all-slow", "msa", "greedy-size", "msa-skip")
# Names that are known but may not be registered in this installation.
KNOWN_OPTIONAL = {"agent": "the agent solver is not registered (it needs a trained checkpoint)"}


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

    def effective_alignment(self) -> int | None:
        """``pack`` defaults to alignment 1 (minimalloc's problem has none); ``malloc`` uses
        the target's."""
        if self.alignment is not None:
            return self.alignment
        return 1 if self.mode == "pack" else None


@dataclasses.dataclass
class BenchOutcome:
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


# --------------------------------------------------------------------------- solver plan
def plan_solvers(names: list[str] | None, mode: str) -> tuple[list[str], dict[str, str]]:
    """``(runnable, unavailable)``: the solvers to run and, for the others, why not.

    Unknown names raise :class:`InputError` (field ``solvers``)."""
    from mallocgame.memory import solvers as _solvers

    import_bench_solvers()
    _solvers._load_plugins()
    explicit = names is not None
    if names is None:
        # The defaults, plus whatever else registered itself (the agent, once trained).
        names = list(DEFAULT_SOLVERS[mode]) + [
            n for n in sorted(_solvers.SOLVERS) if n not in BUILTIN
        ]
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
        elif n in _solvers.SOLVERS:
            if mode == "pack" and n == "all-slow":
                unavailable[n] = "places nothing, so it cannot play fit-all (pack)"
            else:
                runnable.append(n)
        elif n in KNOWN_OPTIONAL:
            unavailable[n] = KNOWN_OPTIONAL[n]
        else:
            known = sorted(set(_solvers.SOLVERS) | set(KNOWN_OPTIONAL)) + ["omnimalloc:NAME"]
            raise InputError(
                f"unknown solver {n!r}; choose from {', '.join(known)}", field="solvers"
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


def import_bench_solvers() -> None:
    """Register ``cpsat`` into :data:`mallocgame.memory.solvers.SOLVERS` (idempotent)."""
    import mallocgame.bench  # noqa: F401  (registers on import)


# --------------------------------------------------------------------------- child processes
def _rss_kib() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _child_entry(conn: Any, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills us if needed
    try:
        rss0 = _rss_kib()
        ru0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            payload = fn(*args)
        ru = resource.getrusage(resource.RUSAGE_SELF)
        payload["_proc"] = {
            "process_wall_s": time.perf_counter() - t0,
            "cpu_s": (ru.ru_utime - ru0.ru_utime) + (ru.ru_stime - ru0.ru_stime),
            "peak_rss_mib": ru.ru_maxrss / 1024.0,
            "rss_start_mib": rss0 / 1024.0,
        }
        conn.send(("ok", payload))
    except MallocGameError as e:  # the solver refused on purpose (bad input, no policy, ...)
        conn.send(("refused", f"{type(e).__name__}: {e}"))
    except BaseException as e:  # report everything, including SystemExit from a library
        conn.send(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=8)}"))
    finally:
        conn.close()


def execute(
    fn: Callable[..., dict[str, Any]],
    args: tuple[Any, ...],
    isolate: bool,
    hard_timeout: float,
    tick: Callable[[], None] = lambda: None,
) -> tuple[str, Any]:
    """Run ``fn(*args)`` in a forked child; ``("ok", payload)``, ``("error", message)``,
    ``("refused", message)`` (it raised a :class:`MallocGameError`: declined on purpose) or
    ``("timeout", message)``. ``isolate=False`` runs it here (for debugging)."""
    if not isolate:
        rss0 = _rss_kib()
        t0 = time.perf_counter()
        try:
            payload = fn(*args)
        except MallocGameError as e:
            return "refused", f"{type(e).__name__}: {e}"
        ru = resource.getrusage(resource.RUSAGE_SELF)
        payload["_proc"] = {
            "process_wall_s": time.perf_counter() - t0,
            "cpu_s": None,
            "peak_rss_mib": ru.ru_maxrss / 1024.0,
            "rss_start_mib": rss0 / 1024.0,
        }
        return "ok", payload
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_entry, args=(send, fn, args), daemon=True)
    with warnings.catch_warnings():
        # JAX warns on every fork once imported (pytest sessions that ran JAX tests). The bench
        # command keeps JAX out of its own process (zoo programs compile in a subprocess), and
        # a child that needs JAX (the agent) imports it afresh.
        warnings.filterwarnings(
            "ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning
        )
        proc.start()
    send.close()
    deadline = time.monotonic() + hard_timeout
    try:
        while True:
            if recv.poll(0.1):
                try:
                    status, payload = recv.recv()
                except EOFError:
                    proc.join(5)
                    return "error", f"the run process died (exit code {proc.exitcode})"
                proc.join(10)
                return status, payload
            if not proc.is_alive():
                if recv.poll(0):
                    continue
                return (
                    "error",
                    f"the run process died (exit code {proc.exitcode}, signal {-proc.exitcode if proc.exitcode and proc.exitcode < 0 else 0})",
                )
            if time.monotonic() > deadline:
                proc.kill()
                proc.join(5)
                return "timeout", f"killed after the hard timeout of {hard_timeout:.0f} s"
            tick()
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join(5)
        recv.close()


def _solver_job(
    problem: Problem, solver: str, seed: int, time_limit: float, threads: int
) -> dict[str, Any]:
    exact.NUM_WORKERS = threads
    if peers.is_peer(solver):
        offsets, extra, wall = peers.solve_peer(
            problem, solver, seed=seed, time_limit=time_limit, threads=threads
        )
    else:
        from mallocgame.memory.solvers import solve

        sol = solve(problem, solver, seed=seed, time_limit=time_limit)
        offsets, extra, wall = sol.offsets, sol.extra, sol.wall_s
    return {
        "offsets": np.asarray(offsets, dtype=np.int64),
        "extra": _jsonable(extra),
        "wall_s": float(wall),
    }


def _bounds_job(problem: Problem, mode: str, time_limit: float) -> dict[str, Any]:
    if mode == "pack":
        bounds = [exact.peak_bound(problem)]
    else:
        bounds = [
            exact.unlimited_fast_bound(problem),
            exact.knapsack_bound(problem, integral=False, time_limit=time_limit),
        ]
        bounds.append(exact.knapsack_bound(problem, integral=True, time_limit=time_limit))
    return {"bounds": [dataclasses.asdict(b) for b in bounds]}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist() if x.size <= 64 else f"<array {x.shape}>"
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating,)):
        return _num(float(x))
    if isinstance(x, float):
        return _num(x)
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return repr(x)


def _num(v: float | None) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return v


# --------------------------------------------------------------------------- evaluation
def evaluate(problem: Problem, mode: str, solver: str, offsets: np.ndarray) -> dict[str, Any]:
    """Judge a mapping with the cost model and the independent validator."""
    w, t = problem.workload, problem.target
    offsets = np.asarray(offsets, dtype=np.int64)
    fast = offsets >= 0
    placed = int(fast.sum())
    peak = int(np.max(offsets[fast] + w.sizes[fast])) if placed else 0
    capacity = problem.capacity
    check_cap = max(capacity, peak) if peers.is_peer(solver) else capacity
    if offsets.shape != (w.num_buffers,):
        report_valid, problems = (
            False,
            [f"mapping has {offsets.shape} entries, expected {w.num_buffers}"],
        )
    else:
        rep = validate(w.ids, w.sizes, w.starts, w.ends, offsets, check_cap, t.alignment_bytes)
        report_valid, problems = rep.valid, rep.problems
    rec: dict[str, Any] = {
        "valid": bool(report_valid),
        "problems": problems[:5],
        "placed_buffers": placed,
        "placed_bytes": int(w.sizes[fast].sum()),
        "peak_bytes": peak,
    }
    if mode == "malloc":
        time_s = cost.program_time(w, t, fast) if offsets.shape == (w.num_buffers,) else math.nan
        rec.update(
            {
                "objective": time_s if report_valid else None,
                "time_s": time_s,
                "all_slow_time_s": problem.all_slow_time,
                "speedup": problem.all_slow_time / time_s if time_s > 0 else 1.0,
            }
        )
    else:
        solved = bool(report_valid and placed == w.num_buffers and peak <= capacity)
        rec.update(
            {
                "solved": solved,
                "objective": float(peak) if (report_valid and placed == w.num_buffers) else None,
            }
        )
    return rec


def best_bound(bounds: list[dict[str, Any]]) -> tuple[float | None, str | None]:
    """The largest proven lower bound and its kind."""
    best, kind = None, None
    for b in bounds:
        v = b.get("value")
        if v is not None and b.get("proven", True) and (best is None or v > best):
            best, kind = float(v), str(b.get("kind"))
    return best, kind


def gap(objective: float | None, bound: float | None) -> float | None:
    if objective is None or bound is None:
        return None
    if bound <= 0:
        return 0.0 if objective <= 0 else None
    return max(0.0, (objective - bound) / bound)


# --------------------------------------------------------------------------- files
class RunLog:
    """``runs.jsonl``: one JSON object per finished run; append, flush and fsync per line."""

    def __init__(self, path: Path):
        self.path = path
        self.records: list[dict[str, Any]] = read_jsonl(path)

    def keys(self) -> set[tuple[str, str, int, str]]:
        return {run_key(r) for r in self.records}

    def append(self, rec: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        needs_newline = (
            self.path.exists()
            and self.path.stat().st_size > 0
            and not _ends_with_newline(self.path)
        )
        with open(self.path, "a") as f:
            if needs_newline:
                f.write("\n")  # a line cut short by a kill: keep it apart from the new one
            f.write(json.dumps(rec, separators=(",", ":")) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(rec)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The parseable lines of a JSONL file (a line cut short by a kill is skipped)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            d = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(d, dict):
            out.append(d)
    return out


def run_key(r: dict[str, Any]) -> tuple[str, str, int, str]:
    return (str(r["instance"]), str(r["solver"]), int(r["seed"]), str(r["capacity"]))


def host_info() -> dict[str, Any]:
    """:func:`mallocgame.io.host_info` plus the versions of the bench's optional peers."""
    info = io.host_info()
    info["omnimalloc"] = peers.omnimalloc_version()
    try:
        import ortools

        info["ortools"] = ortools.__version__
    except Exception:
        info["ortools"] = None
    return info


# --------------------------------------------------------------------------- progress
class Progress:
    """A rich progress bar on stderr (refreshed by hand: no thread exists when we fork), or one
    line per run when stderr is not a terminal; silent when disabled."""

    def __init__(self, total: int, enabled: bool):
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self._p: Any = None
        self._task: Any = None
        self._last = 0.0
        self.total = total
        self.count = 0
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._p = RichProgress(
                TextColumn("[bold]bench[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.description}"),
                console=Console(stderr=True),
                auto_refresh=False,
            )
            self._task = self._p.add_task("", total=total)

    def __enter__(self) -> Progress:
        if self._p is not None:
            self._p.start()
            self._p.refresh()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._p is not None:
            self._p.refresh()
            self._p.stop()

    def describe(self, text: str) -> None:
        if self._p is not None:
            self._p.update(self._task, description=text)
            self._p.refresh()

    def tick(self) -> None:
        if self._p is not None and time.monotonic() - self._last > 0.5:
            self._last = time.monotonic()
            self._p.refresh()

    def advance(self, line: str | None = None, n: int = 1) -> None:
        self.count += n
        if self._p is not None:
            self._p.advance(self._task, n)
            self._p.refresh()
        elif self.enabled and line:
            print(f"[{self.count}/{self.total}] {line}", file=sys.stderr, flush=True)

    def note(self, text: str) -> None:
        if not self.enabled:
            return
        if self._p is not None:
            self._p.console.print(text)
        else:
            print(text, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- the bench
def _seeds_for(solver: str, cfg: BenchConfig) -> list[int]:
    n = cfg.cpsat_seeds if solver == "cpsat" else cfg.seeds
    return list(range(max(1, n)))


def _check_config(cfg: BenchConfig) -> None:
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
    if cfg.suite is not None and cfg.suite not in suites.SUITES:
        raise InputError(
            f"unknown suite {cfg.suite!r}; choose one of {', '.join(suites.SUITES)}", field="suite"
        )


def _prepare_out(cfg: BenchConfig, host: dict[str, Any]) -> None:
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
    from mallocgame.io import atomic_write_text

    atomic_write_text(
        cfg_path, json.dumps({"schema": SCHEMA, "mode": cfg.mode, "invocations": history}, indent=2)
    )


def iter_jobs(
    instances: list[suites.InstanceSpec], caps: list[str], solvers: list[str], cfg: BenchConfig
) -> Iterator[tuple[suites.InstanceSpec, str, str, int]]:
    for spec in instances:
        for cap in caps:
            for s in solvers:
                for seed in _seeds_for(s, cfg):
                    yield spec, cap, s, seed


def run_bench(cfg: BenchConfig) -> BenchOutcome:
    """Run the bench that ``cfg`` describes; write ``runs.jsonl``, ``bounds.jsonl``,
    ``results.md`` and pictures under ``cfg.out``."""
    from mallocgame.bench import report
    from mallocgame.memory.sources import make_problem

    _check_config(cfg)
    cfg.out = Path(cfg.out)
    caps = suites.parse_capacities(cfg.capacities, cfg.mode)
    solver_list, unavailable = plan_solvers(cfg.solvers, cfg.mode)
    instances = suites.resolve_instances(cfg.instances, cfg.suite, cfg.mode)
    host = host_info()
    _prepare_out(cfg, host)
    runs = RunLog(cfg.out / "runs.jsonl")
    bounds_log = RunLog(cfg.out / "bounds.jsonl")
    done = runs.keys()
    alignment = cfg.effective_alignment()
    bound_limit = cfg.bound_time_limit if cfg.bound_time_limit is not None else cfg.time_limit
    hard = cfg.hard_timeout if cfg.hard_timeout is not None else 3.0 * cfg.time_limit + 120.0
    if unavailable:
        _write_json(cfg.out / "unavailable.json", unavailable)

    jobs = list(iter_jobs(instances, caps, solver_list, cfg))
    disabled: dict[str, str] = {}
    outcome = BenchOutcome(cfg.out, 0, 0, 0, 0, False, unavailable, [], {})
    best = _load_best(cfg.out)
    with Progress(len(jobs), cfg.progress) as ui:
        for name, why in unavailable.items():
            ui.note(f"unavailable: {name}: {why}")
        try:
            for spec in instances:
                ui.describe(f"loading {spec.name}")
                try:
                    wl, extract_s = suites.load_instance(spec, cfg.out / "workloads")
                except MallocGameError as e:
                    outcome.skipped_instances.append(f"{spec.name}: {e}")
                    n = sum(len(_seeds_for(s, cfg)) for s in solver_list) * len(caps)
                    ui.note(f"skipped {spec.name}: {e}")
                    ui.advance(None, n)
                    continue
                if extract_s:
                    ui.note(f"compiled {spec.name} in {extract_s:.1f} s ({wl.num_buffers} buffers)")
                for cap in caps:
                    n_runs = sum(len(_seeds_for(s, cfg)) for s in solver_list)
                    try:
                        cap_b = suites.capacity_bytes(cap, wl, spec, cfg.mode, alignment or 1)
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore")
                            problem = make_problem(
                                wl, cap_b, cfg.target, OBJECTIVE[cfg.mode], alignment
                            )
                    except InputError as e:
                        outcome.skipped_instances.append(f"{spec.name} @ {cap}: {e}")
                        ui.note(f"skipped {spec.name} @ {cap}: {e}")
                        ui.advance(None, n_runs)
                        continue
                    ctx = {"instance": spec.name, "capacity": cap}
                    have = [
                        b
                        for b in bounds_log.records
                        if b.get("instance") == spec.name and b.get("capacity") == cap
                    ]
                    if not any(b.get("kind") != "cpsat" for b in have):
                        ui.describe(f"{spec.name} @ {cap}: bounds")
                        status, payload = execute(
                            _bounds_job,
                            (problem, cfg.mode, bound_limit),
                            cfg.isolate,
                            hard,
                            ui.tick,
                        )
                        if status == "ok":
                            for b in payload["bounds"]:
                                rec = dict(
                                    ctx,
                                    capacity_bytes=cap_b,
                                    **{k: _jsonable(v) for k, v in b.items()},
                                )
                                bounds_log.append(rec)
                        else:
                            ui.note(
                                f"bounds failed on {spec.name} @ {cap}: {str(payload).splitlines()[0]}"
                            )
                    for solver in solver_list:
                        for seed in _seeds_for(solver, cfg):
                            key = (spec.name, solver, seed, cap)
                            if solver in disabled:
                                ui.advance(None)
                                continue
                            if key in done:
                                outcome.runs_skipped += 1
                                ui.advance(None)
                                continue
                            ui.describe(f"{spec.name} @ {cap}: {solver} seed {seed}")
                            rec, offsets = _one_run(
                                cfg,
                                spec,
                                cap,
                                cap_b,
                                problem,
                                solver,
                                seed,
                                hard,
                                ui,
                                bounds_log,
                                extract_s,
                            )
                            why = _configuration_failure(rec)
                            if why is not None:
                                # A registered solver that cannot start here (the agent without
                                # a trained policy): unavailable, not a failed run; not logged,
                                # so a later --resume runs it once it can.
                                disabled[solver] = unavailable[solver] = why
                                _write_json(cfg.out / "unavailable.json", unavailable)
                                ui.note(f"unavailable: {solver}: {why}")
                                ui.advance(None)
                                continue
                            runs.append(rec)
                            done.add(key)
                            outcome.runs_done += 1
                            if rec["status"] != "ok":
                                outcome.errors += 1
                            elif not rec["valid"]:
                                outcome.invalid += 1
                            if offsets is not None:
                                _update_best(cfg, best, rec, problem, spec, cap, offsets)
                            ui.advance(_line(rec))
        except KeyboardInterrupt:
            outcome.interrupted = True
            ui.note("interrupted: finished runs are in runs.jsonl; continue with --resume")
    outcome.report = report.write_report(cfg.out, pictures=cfg.pictures)
    return outcome


BUILTIN = ("msa", "greedy-size", "random", "all-slow", "restarts", "cpsat", "msa-skip")


def _configuration_failure(rec: dict[str, Any]) -> str | None:
    """The reason when a registered, non-built-in solver failed on purpose (it raised one of
    mallocgame's own errors, e.g. no trained policy), else None."""
    solver = rec["solver"]
    if rec.get("status") != "error" or solver in BUILTIN or peers.is_peer(solver):
        return None
    if not rec.get("refused"):
        return None
    err = str(rec.get("error", "")).strip()
    return err.splitlines()[0] if err else "refused to run"


def _line(rec: dict[str, Any]) -> str:
    obj = rec.get("objective")
    g = rec.get("gap_to_bound")
    return (
        f"{rec['instance']} @ {rec['capacity']} {rec['solver']} seed {rec['seed']}: {rec['status']}"
        f"{'' if rec.get('valid', True) else ' INVALID'} objective {obj if obj is None else f'{obj:.6g}'}"
        f"{'' if g is None else f' gap {100 * g:.2f}%'} wall {rec.get('wall_s') or 0:.2f}s"
    )


def _one_run(
    cfg: BenchConfig,
    spec: suites.InstanceSpec,
    cap: str,
    cap_b: int,
    problem: Problem,
    solver: str,
    seed: int,
    hard: float,
    ui: Progress,
    bounds_log: RunLog,
    extract_s: float,
) -> tuple[dict[str, Any], np.ndarray | None]:
    w = problem.workload
    rec: dict[str, Any] = {
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
    status, payload = execute(
        _solver_job,
        (problem, solver, seed, cfg.time_limit, cfg.threads),
        cfg.isolate,
        hard,
        ui.tick,
    )
    if status == "refused":
        status, rec["refused"] = "error", True
    rec["status"] = status
    if status != "ok":
        rec.update({"error": str(payload)[-2000:], "valid": False, "objective": None})
        rec["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
        return rec, None
    rec.update(evaluate(problem, cfg.mode, solver, payload["offsets"]))
    rec["wall_s"] = payload["wall_s"]
    rec.update({k: _num(v) if isinstance(v, float) else v for k, v in payload["_proc"].items()})
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
                    "instance": spec.name,
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
        b for b in bounds_log.records if b.get("instance") == spec.name and b.get("capacity") == cap
    ]
    bnd, kind = best_bound(have)
    obj = rec.get("objective")
    if obj is not None and bnd is not None and obj < bnd * (1 - 1e-6):
        # A valid mapping below a proven bound means a bug in a bound or in the validator.
        rec["below_bound"] = True
    rec["bound"] = bnd
    rec["bound_kind"] = kind
    rec["gap_to_bound"] = gap(rec.get("objective"), bnd)
    if extract_s:
        rec["extract_s"] = extract_s
    rec["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    return rec, payload["offsets"]


# --------------------------------------------------------------------------- best solutions
def _best_paths(out: Path, instance: str, cap: str) -> tuple[Path, Path]:
    safe = instance.replace("/", "_")
    stem = f"{safe}@{suites.capacity_label(cap)}"
    return out / "solutions" / f"{stem}.best.csv", out / "solutions" / f"{stem}.best.json"


def _load_best(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    best: dict[tuple[str, str], dict[str, Any]] = {}
    folder = out / "solutions"
    if folder.is_dir():
        for p in folder.glob("*.best.json"):
            try:
                d = json.loads(p.read_text())
                best[(d["instance"], d["capacity"])] = d
            except (json.JSONDecodeError, KeyError, OSError):
                continue
    return best


def _rank(rec: dict[str, Any], mode: str) -> tuple[float, ...]:
    """Smaller is better."""
    if mode == "malloc":
        return (rec["objective"],)
    return (
        0.0 if rec.get("solved") else 1.0,
        rec["objective"] if rec.get("objective") is not None else math.inf,
        -float(rec.get("placed_bytes", 0)),
    )


def _update_best(
    cfg: BenchConfig,
    best: dict[tuple[str, str], dict[str, Any]],
    rec: dict[str, Any],
    problem: Problem,
    spec: suites.InstanceSpec,
    cap: str,
    offsets: np.ndarray,
) -> None:
    if rec.get("status") != "ok" or not rec.get("valid"):
        return
    if cfg.mode == "malloc" and rec.get("objective") is None:
        return
    key = (spec.name, cap)
    cur = best.get(key)
    if cur is not None and tuple(cur["rank"]) <= _rank(rec, cfg.mode):
        return
    from mallocgame.memory.csvio import write_solution_csv

    csv_path, json_path = _best_paths(cfg.out, spec.name, cap)
    write_solution_csv(csv_path, problem.workload, offsets)
    d = {
        "instance": spec.name,
        "capacity": cap,
        "capacity_bytes": rec["capacity_bytes"],
        "solver": rec["solver"],
        "seed": rec["seed"],
        "objective": rec["objective"],
        "rank": list(_rank(rec, cfg.mode)),
        "source": spec.source,
        "target": problem.target.name,
        "alignment": rec["alignment"],
        "mode": cfg.mode,
        "csv": csv_path.name,
    }
    _write_json(json_path, d)
    best[key] = d


def _write_json(path: Path, obj: Any) -> None:
    from mallocgame.io import atomic_write_text

    atomic_write_text(path, json.dumps(obj, indent=2, default=str))
