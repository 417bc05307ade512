"""Running one fuzz case and judging how it ended (issue 20, part 5).

No pytest and no hypothesis here: ``tests/fuzz/strategies.py`` generates :class:`Case` objects,
``tests/fuzz/test_*.py`` runs them under hypothesis, and ``benchmarks/fuzz_inputs.py`` runs them
by the hundred thousand in subprocesses (a case is plain, picklable data, so a case that kills
the interpreter can be saved and replayed with :func:`replay_file`).

The property every case must have (:func:`run_case`):

- either it succeeds, and the result is valid (the workload passes ``Workload.check``, a game
  played on it gives a mapping the independent validator accepts, a rank config round-trips);
- or it raises one of the project's declared errors with a one-line message: for input files an
  :class:`~mallocgame.errors.InputError` that names the file and the line or field (a few
  whole-file errors, such as corrupt gzip data, name the file only); for the native entry points
  a ``ValueError`` (an ``IndexError`` only where a call takes an index and says it is out of
  range).

Anything else is ``bad`` (a wrong exception type, a message of several lines or without its
place, an invalid result); an interpreter crash is seen only from outside, by the benchmark.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import pickle
import re
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame import _native
from mallocgame.errors import InputError, MallocGameError

#: The input paths, in the order the benchmark reports them (``cli``: the ``mallocgame``
#: command on CSV and workload files, end to end).
PATHS = ("csv", "workload", "xla", "rank", "native", "cli")

#: Whole-file errors: they name the file but no line or field, and cannot name one.
WHOLE_FILE = re.compile(
    r"cannot read|not a text file|corrupt gzip|not a folder|no XLA module dumps found|"
    r"no such file"
)


@dataclasses.dataclass
class Case:
    """One fuzz input: ``path`` (one of :data:`PATHS`), ``op`` (what is called) and the data."""

    path: str
    op: str
    payload: dict[str, Any]


@dataclasses.dataclass
class Outcome:
    """``status``: ``"ok"``, ``"clean"`` (a declared error) or ``"bad"``; ``reason``: a short
    label to count by; ``detail``: the exception and its message, or what was wrong."""

    status: str
    reason: str = ""
    detail: str = ""
    #: for a bad outcome of the native core that is known and reported (an id of
    #: :data:`KNOWN_NATIVE_ISSUES`); the native code is not this fuzzer's to fix
    known: str = ""


#: Bad outcomes of the native core found by this fuzzer and reported with minimal reproducers,
#: counted as bad, labelled, and not failed on by the tests while open. Each: id -> (regex on
#: reason + detail). None is open: the last one (pybind11's multi-line "incompatible function
#: arguments" TypeError for a non-str objective, a non-Game in BatchedGames, a non-bool pack
#: flag) is fixed by the bindings converting those arguments themselves (test_regressions.py).
KNOWN_NATIVE_ISSUES: dict[str, re.Pattern[str]] = {}


class Invalid(Exception):
    """A call succeeded with an invalid result (raised by the checks of :func:`run_case`)."""


# ----------------------------------------------------------------------------- scratch folders
_SCRATCH: Path | None = None
_COUNTER = itertools.count()
_CASE_DIRS: list[Path] = []


def _scratch_dir() -> Path:
    """A fresh empty folder under this process's scratch folder, removed when the case ends
    (:func:`run_case`); the scratch folder itself by :func:`cleanup`."""
    global _SCRATCH
    if _SCRATCH is None or not _SCRATCH.is_dir():
        _SCRATCH = Path(tempfile.mkdtemp(prefix="mallocgame-fuzz-"))
    d = _SCRATCH / f"c{next(_COUNTER)}"
    d.mkdir()
    _CASE_DIRS.append(d)
    return d


def cleanup() -> None:
    global _SCRATCH
    if _SCRATCH is not None:
        shutil.rmtree(_SCRATCH, ignore_errors=True)
        _SCRATCH = None


# ----------------------------------------------------------------------------- judging errors
def _describe(e: BaseException) -> str:
    msg = str(e)
    return f"{type(e).__name__}: {msg[:300]}" + ("..." if len(msg) > 300 else "")


def judge_file_error(e: BaseException, places: list[str]) -> Outcome:
    """An error raised while reading the files ``places`` (paths as the reader was given them)."""
    d = _describe(e)
    if not isinstance(e, (InputError, MallocGameError)):
        return Outcome("bad", f"wrong type {type(e).__name__}", d)
    msg = str(e)
    if "\n" in msg or "\r" in msg:
        return Outcome("bad", "multi-line message", d)
    if len(msg) > 2000:
        return Outcome("bad", "message over 2000 characters", d)
    if not any(p in msg for p in places):
        return Outcome("bad", "file not named", d)
    if isinstance(e, InputError) and e.line is None and e.field is None:
        if not WHOLE_FILE.search(e.message):
            return Outcome("bad", "no line or field named", d)
    return Outcome("clean", type(e).__name__, d)


def judge_native_error(e: BaseException, index_call: bool = False) -> Outcome:
    """An error raised by a native entry point: a one-line ``ValueError`` (``IndexError`` for
    calls that take an index, saying it is out of range)."""
    d = _describe(e)
    msg = str(e)
    ok_type = isinstance(e, ValueError) or (
        index_call and isinstance(e, IndexError) and "out of range" in msg
    )
    if not ok_type:
        first = msg.splitlines()[0][:60] if msg else ""
        return Outcome("bad", f"wrong type {type(e).__name__} ({first})", d)
    if "\n" in msg or "\r" in msg:
        return Outcome("bad", "multi-line message", d)
    if not msg.strip():
        return Outcome("bad", "empty message", d)
    return Outcome("clean", type(e).__name__, d)


# ----------------------------------------------------------------------------- checks of results
def check_mapping(sizes, starts, ends, offsets, capacity: int, alignment: int) -> None:
    """Raise :class:`Invalid` unless ``offsets`` (>= 0 fast, < 0 slow or undecided) is a
    feasible placement."""
    from mallocgame.memory.validate import validate

    sizes = np.asarray(sizes, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.shape != sizes.shape:
        raise Invalid(f"offsets have shape {offsets.shape}, sizes {sizes.shape}")
    if np.any(offsets < -2):
        raise Invalid(f"offset below -2: {offsets.min()}")
    rep = validate(
        np.arange(sizes.shape[0]),
        sizes,
        np.asarray(starts, dtype=np.int64),
        np.asarray(ends, dtype=np.int64),
        np.where(offsets < 0, -1, offsets),
        int(capacity),
        max(int(alignment), 1),
    )
    if not rep.valid:
        raise Invalid("infeasible mapping: " + "; ".join(rep.problems[:3]))


def check_workload_downstream(wl) -> None:
    """A workload a reader accepted must make a problem, a native instance and a game whose
    mapping is feasible, with finite times. Errors of making the problem (capacity) are
    declared; anything the native core refuses after a reader accepted it is not."""
    from mallocgame.memory import sources
    from mallocgame.memory.problem import Solution

    wl.check()
    if wl.num_buffers == 0:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            problem = sources.make_problem(wl, "50%")
    except InputError:
        return  # e.g. half of a tiny peak rounds to 0 bytes: a clean refusal
    try:
        inst = problem.instance(np.arange(wl.num_buffers))
    except ValueError as e:
        raise Invalid(f"the reader accepted a workload the native core refuses: {e}") from None
    g = _native.Game(inst)
    g.play_best_fit()
    offs = g.offsets()
    check_mapping(wl.sizes, wl.starts, wl.ends, offs, problem.capacity, inst.alignment)
    sol = Solution(problem, "fuzz", np.where(offs < 0, -1, offs), 0.0)
    s = sol.summary()
    for k in ("time_s", "all_slow_time_s", "lower_bound_time_s"):
        if not np.isfinite(s[k]) or s[k] < 0:
            raise Invalid(f"{k} = {s[k]}")
    if not s["valid"]:
        raise Invalid(f"summary says invalid: {s['problems'][:2]}")


# ----------------------------------------------------------------------------- file paths
def _write(folder: Path, name: str, data: bytes) -> Path:
    p = folder / name
    p.write_bytes(data)
    return p


def _run_csv(p: dict[str, Any]) -> Outcome:
    from mallocgame.memory.csvio import read_csv

    path = _write(_scratch_dir(), p["name"], p["data"])
    try:
        wl, offsets = read_csv(path)
    except Exception as e:  # noqa: BLE001 - judged
        return judge_file_error(e, [str(path)])
    if offsets is not None:
        if offsets.shape != (wl.num_buffers,) or np.any(offsets < -1):
            raise Invalid(f"offset column {offsets!r}")
    check_workload_downstream(wl)
    return Outcome("ok")


def _run_workload(p: dict[str, Any]) -> Outcome:
    from mallocgame.memory.workload import Workload

    path = _write(_scratch_dir(), p["name"], p["data"])
    try:
        wl = Workload.load(path)
    except Exception as e:  # noqa: BLE001 - judged
        return judge_file_error(e, [str(path)])
    check_workload_downstream(wl)
    return Outcome("ok")


def _run_xla(p: dict[str, Any]) -> Outcome:
    from mallocgame.memory import xla

    folder = _scratch_dir() / "dump"
    folder.mkdir()
    for name, data in p["files"].items():
        _write(folder, name, data)
    try:
        wl = xla.read_dump_folder(folder, module=p.get("module"))
    except Exception as e:  # noqa: BLE001 - judged
        return judge_file_error(e, [str(folder)])
    check_workload_downstream(wl)
    if wl.num_buffers and (wl.starts.min() < 0 or wl.ends.max() > wl.num_instructions):
        raise Invalid("XLA workload positions outside the schedule")
    return Outcome("ok")


def _run_rank(p: dict[str, Any]) -> Outcome:
    from mallocgame.rank.config import RankConfig, load_rank_config

    path = _write(_scratch_dir(), p["name"], p["data"])
    try:
        cfg = load_rank_config(path, model=p.get("model"), model_hash=p.get("model_hash"))
    except Exception as e:  # noqa: BLE001 - judged
        return judge_file_error(e, [str(path)])
    back = RankConfig.from_dict(cfg.to_dict())
    if back != cfg:
        raise Invalid("the config does not round-trip through to_dict/from_dict")
    sh = cfg.shape
    for i in range(sh.n_layers):
        qk, v = cfg.groups(i)
        if not all(0 <= r <= sh.head_dim for r in qk + v):
            raise Invalid(f"layer {i} ranks out of range: {qk} {v}")
    return Outcome("ok")


def _run_cli(p: dict[str, Any]) -> Outcome:
    """``mallocgame ARGV`` on a file: exit 0, 1 or 2; on 2 one error line on stderr and no
    output file; on 0 a mapping CSV that reads back."""
    import contextlib
    import io

    from mallocgame.cli.main import main
    from mallocgame.memory.csvio import read_csv

    folder = _scratch_dir()
    path = _write(folder, p["name"], p["data"])
    out = folder / "out" / "m.csv"
    argv = [a.format(input=path, out=out) for a in p["argv"]]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(argv)
    except SystemExit as e:  # argparse: a usage error prints the usage, then one error line
        last = err.getvalue().strip().splitlines()[-1:] or [""]
        if e.code == 2 and ": error: " in last[0]:
            return Outcome("clean", "usage error", last[0][:300])
        return Outcome("bad", f"SystemExit {e.code!r}", err.getvalue()[:300])
    except Exception as e:  # noqa: BLE001 - judged
        return Outcome("bad", f"uncaught {type(e).__name__} from the CLI", _describe(e))
    lines = [x for x in err.getvalue().splitlines() if not x.startswith("mallocgame: warning:")]
    written = sorted(q.name for q in folder.rglob("*") if q.is_file() and q != path)
    if rc == 2:
        if len(lines) != 1 or not lines[0].startswith("mallocgame: error:"):
            return Outcome("bad", "exit 2 without exactly one error line", err.getvalue()[:300])
        if written:
            return Outcome("bad", "exit 2 but files were written", ", ".join(written))
        return Outcome("clean", "exit 2", lines[0][:300])
    if rc not in (0, 1):
        return Outcome("bad", f"exit code {rc}", err.getvalue()[:300])
    if rc == 0 and argv[0] == "solve":
        wl, offsets = read_csv(out)
        if offsets is None or offsets.shape != (wl.num_buffers,):
            raise Invalid("solve wrote a mapping without one offset per buffer")
    return Outcome("ok")


# ----------------------------------------------------------------------------- native
def _call(fn, *args, index_call: bool = False, **kw) -> tuple[Any, Outcome | None]:
    """``fn(*args, **kw)``: (result, None) on success, (None, outcome) on an error."""
    try:
        return fn(*args, **kw), None
    except Exception as e:  # noqa: BLE001 - judged
        out = judge_native_error(e, index_call)
        return None, out


def _game_ops(g, ops: list[tuple], index_ops=("conflicts",)) -> Outcome | None:
    """Play ``ops`` on game ``g``; the first bad outcome, else None."""
    for op in ops:
        name, args = op[0], op[1:]
        if name == "conflicts":
            fn = g.instance.conflicts
        elif name == "clone":
            fn = g.clone
        else:
            fn = getattr(g, name)
        _, out = _call(fn, *args, index_call=name in index_ops)
        if out is not None and out.status == "bad":
            out.reason = f"{name}: {out.reason}"
            return out
    return None


def _run_instance(p: dict[str, Any]) -> Outcome:
    kw = p["kwargs"]
    inst, out = _call(_native.Instance, **kw)
    if out is not None:
        out.reason = f"Instance: {out.reason}"
        return out
    g = _native.Game(inst)
    bad = _game_ops(g, p.get("ops", []))
    if bad is not None:
        return bad
    sizes = np.asarray(kw["sizes"]).astype(np.int64)
    check_mapping(sizes, kw["starts"], kw["ends"], g.offsets(), inst.capacity, inst.alignment)
    if not np.isfinite(g.time()) or not np.isfinite(inst.all_slow_time):
        raise Invalid(f"time {g.time()}, all-slow {inst.all_slow_time}")
    return Outcome("ok")


def _check_batch_arrays(b, n: int, arrays: dict[str, Any]) -> dict[str, Any]:
    """The batched arrays to pass: the generated ones, or correct ones where none was given."""
    correct = {
        "actions": np.zeros(n, np.int64),
        "obs": np.zeros((n, b.observation_size), np.float32),
        "mask": np.zeros((n, b.num_actions), bool),
        "rewards": np.zeros(n, np.float32),
        "done": np.zeros(n, bool),
    }
    return {k: arrays.get(k, v) for k, v in correct.items()}


def _run_batched(p: dict[str, Any]) -> Outcome:
    kw = p["kwargs"]
    inst, out = _call(_native.Instance, **kw)
    if out is not None:
        out.reason = f"Instance: {out.reason}"
        return out
    games = [_native.Game(inst) for _ in range(p["num_games"])]
    if p.get("other_candidates"):  # a game of another instance shape (must be refused)
        other = dict(kw, num_candidates=p["other_candidates"])
        games.append(_native.Game(_native.Instance(**other)))
    if p.get("repeat") and games:  # the same game twice (must be refused)
        games.append(games[0])
    b, out = _call(_native.BatchedGames, games)
    if out is not None:
        out.reason = f"BatchedGames: {out.reason}"
        return out
    if p.get("other_candidates") or p.get("repeat"):
        raise Invalid("BatchedGames accepted games of different shapes, or one game twice")
    n = len(games)
    for call in p["calls"]:
        name = call[0]
        if name == "step":
            a = _check_batch_arrays(b, n, call[1])
            _, out = _call(b.step, a["actions"], a["obs"], a["mask"], a["rewards"], a["done"])
        elif name == "observe":
            a = _check_batch_arrays(b, n, call[1])
            _, out = _call(b.observe, a["obs"], a["mask"], a["done"])
        elif name == "reset":
            _, out = _call(b.reset, call[1], index_call=True)
        elif name == "game":
            _, out = _call(b.game, call[1], index_call=True)
        else:
            _, out = _call(getattr(b, name))
        if out is not None and out.status == "bad":
            out.reason = f"batched.{name}: {out.reason}"
            return out
    sizes = np.asarray(kw["sizes"]).astype(np.int64)
    for g in games:
        check_mapping(sizes, kw["starts"], kw["ends"], g.offsets(), inst.capacity, inst.alignment)
    return Outcome("ok")


def _run_pack(p: dict[str, Any]) -> Outcome:
    args, kw = p["args"], p["kwargs"]
    r, out = _call(_native.pack, *args, **kw)
    if out is not None:
        out.reason = f"pack: {out.reason}"
        return out
    if r["status"] not in ("solved", "infeasible", "timeout", "node_limit"):
        raise Invalid(f"pack status {r['status']!r}")
    sizes = np.asarray(args[0]).astype(np.int64)
    check_mapping(sizes, args[1], args[2], r["offsets"], int(args[3]), int(args[4]))
    if r["status"] == "solved" and np.any(r["offsets"] < 0):
        raise Invalid("pack solved but left buffers unplaced")
    return Outcome("ok")


def _run_rank_game(p: dict[str, Any]) -> Outcome:
    kw = p["kwargs"]
    inst, out = _call(_native.RankInstance, **kw)
    if out is not None:
        out.reason = f"RankInstance: {out.reason}"
        return out
    g = _native.RankGame(inst)
    bad = _game_ops(g, p.get("ops", []), index_ops=())
    if bad is not None:
        return bad
    ch = g.choices()
    if ch.shape != (inst.num_parts,) or np.any(ch < -1) or np.any(ch >= inst.num_choices):
        raise Invalid(f"choices {ch}")
    if p.get("batched"):
        games = [g, _native.RankGame(inst)]
        b = _native.BatchedRankGames(games)
        a = _check_batch_arrays(b, 2, p["batched"])
        _, out = _call(b.step, a["actions"], a["obs"], a["mask"], a["rewards"], a["done"])
        if out is not None and out.status == "bad":
            out.reason = f"BatchedRankGames.step: {out.reason}"
            return out
    if g.spent > inst.limit * (1 + 1e-9) + 1e-9 and np.isfinite(inst.limit):
        raise Invalid(f"spent {g.spent} over the limit {inst.limit}")
    return Outcome("ok")


_RUNNERS = {
    ("csv", "read"): _run_csv,
    ("workload", "load"): _run_workload,
    ("xla", "read"): _run_xla,
    ("rank", "load"): _run_rank,
    ("native", "instance"): _run_instance,
    ("native", "batched"): _run_batched,
    ("native", "pack"): _run_pack,
    ("native", "rank"): _run_rank_game,
    ("cli", "run"): _run_cli,
}


def run_case(case: Case) -> Outcome:
    """Run ``case`` and judge it (see the module doc). Never raises (short of a crash)."""
    try:
        out = _run(case)
    finally:
        while _CASE_DIRS:
            shutil.rmtree(_CASE_DIRS.pop(), ignore_errors=True)
    if out.status == "bad" and case.path == "native":
        for issue, regex in KNOWN_NATIVE_ISSUES.items():
            if regex.search(out.reason + " " + out.detail):
                out.known = issue
                break
    return out


def _run(case: Case) -> Outcome:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _RUNNERS[(case.path, case.op)](case.payload)
    except Invalid as e:
        return Outcome("bad", "invalid result", str(e)[:300])
    except RecursionError as e:
        return Outcome("bad", "RecursionError outside the reader", _describe(e))
    except Exception as e:  # noqa: BLE001 - an error in the checks themselves
        return Outcome("bad", f"unexpected {type(e).__name__} after success", _describe(e))


# ----------------------------------------------------------------------------- reproducers
def save_case(case: Case, path: str | os.PathLike[str]) -> None:
    """Pickle ``case`` (a reproducer: :func:`replay_file` runs it again)."""
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        pickle.dump(case, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(tmp, path)


def replay_file(path: str | os.PathLike[str]) -> Outcome:
    with open(path, "rb") as f:
        case = pickle.load(f)
    return run_case(case)
