"""Helpers shared by the subcommand modules of the ``mallocgame`` CLI: the progress spinner,
error lines on stderr, byte formatting, a rank config argument and the problem options
(workload, capacity, target...)."""

from __future__ import annotations

import argparse
import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mallocgame.errors import InputError
from mallocgame.memory import sources
from mallocgame.memory.problem import Problem

if TYPE_CHECKING:
    from mallocgame.rank.config import RankConfig

__all__ = [
    "add_problem_args",
    "err",
    "fmt_bytes",
    "load_rank_config_arg",
    "problem_from_args",
    "progress",
    "warn",
]


@contextlib.contextmanager
def progress(message: str, quiet: bool = False) -> Iterator[None]:
    """A spinner on stderr while something takes seconds (silent when not a terminal)."""
    if quiet or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console  # deferred: only on a terminal, keeps `--help` fast

    with Console(stderr=True).status(message):
        yield


def err(msg: str) -> None:
    """``mallocgame: error: MSG`` on stderr."""
    print(f"mallocgame: error: {msg}", file=sys.stderr)


def warn(msg: str) -> None:
    """``mallocgame: warning: MSG`` on stderr."""
    print(f"mallocgame: warning: {msg}", file=sys.stderr)


def load_rank_config_arg(path: str) -> RankConfig:
    """The rank config at ``path`` (a command's argument): ``InputError`` naming the file for a
    missing or binary file, and the field for a bad one (:func:`load_rank_config`)."""
    from mallocgame.rank.config import load_rank_config

    p = Path(path)
    if not p.is_file():
        raise InputError("no such file", path)
    try:
        return load_rank_config(p)
    except UnicodeDecodeError:
        raise InputError("not a text file", path) from None


def fmt_bytes(n: float) -> str:
    """``512 B``, ``1.50 KiB``, ``4.00 MiB``, ``2.00 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return str(n)


def add_problem_args(p: argparse.ArgumentParser, capacity_default: str | None = "25%") -> None:
    """The options that make a problem: input, --capacity, --target, --objective, --alignment,
    --seed, --json (read back by :func:`problem_from_args`)."""
    p.add_argument(
        "input",
        help="workload file (*.workload.json[.gz]), minimalloc CSV, XLA dump folder, or zoo:NAME",
    )
    p.add_argument(
        "--capacity",
        default=capacity_default,
        help="fast-memory capacity: bytes (1048576, 4MiB) or a percentage of peak live bytes "
        "(25%%); default: the number in a minimalloc file name (A.1048576.csv), else 25%%",
    )
    p.add_argument(
        "--target",
        default="tpuv4i",
        help="target preset (see `mallocgame list targets`) or target JSON file",
    )
    p.add_argument(
        "--objective",
        default="time",
        choices=["time", "fit-all"],
        help="minimise time, or place every buffer (default: time)",
    )
    p.add_argument(
        "--alignment", type=int, default=None, help="override the target's alignment in bytes"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def problem_from_args(args: argparse.Namespace) -> Problem:
    """Load the workload and make the problem named by :func:`add_problem_args`' options;
    the warnings of making it are printed on stderr."""
    with progress(f"loading {args.input}", quiet=args.json):
        wl = sources.load_workload(args.input)
    capacity = args.capacity
    if capacity is None:
        from_name = sources.capacity_from_name(args.input)
        capacity = from_name if from_name is not None else "25%"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        problem = sources.make_problem(wl, capacity, args.target, args.objective, args.alignment)
    for w in caught:
        warn(str(w.message))
    return problem


def _cpus(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of CPUs, got {text!r}") from None
    return v


def add_ray_args(p: argparse.ArgumentParser, what: str, cpus_help: str) -> None:
    """``--ray [auto|ADDRESS]`` and ``--ray-cpus N`` (read back by :func:`ray_args`)."""
    p.add_argument(
        "--ray",
        nargs="?",
        const="auto",
        default=None,
        metavar="auto|ADDRESS",
        help=f"{what}, on the cluster that `ray start` began (auto, the default; without one, "
        "a Ray started on this machine) or at ADDRESS (HEAD:6379); needs the ray extra",
    )
    p.add_argument(
        "--ray-cpus", type=_cpus, default=None, metavar="N", help=f"with --ray: {cpus_help}"
    )


def ray_args(args: argparse.Namespace) -> tuple[str | None, float]:
    """``--ray`` and ``--ray-cpus``, checked: an address that is an instance (``--ray`` took
    the word after it) and ``--ray-cpus`` without ``--ray`` are bad input."""
    ray = getattr(args, "ray", None)
    cpus = getattr(args, "ray_cpus", None)
    if ray is None:
        if cpus is not None:
            raise InputError("needs --ray", field="ray-cpus")
        return None, 1.0
    if not ray.strip():
        raise InputError("empty address; give auto or HEAD:PORT", field="ray")
    if ray.startswith(("zoo:", "zoo-small:", "tiny:")) or Path(ray).exists():
        raise InputError(
            f"{ray!r} is an instance, not a cluster address: write --ray auto (or --ray after "
            "the instances)",
            field="ray",
        )
    if cpus is not None and not cpus > 0:
        raise InputError(f"must be positive, got {cpus:g}", field="ray-cpus")
    return ray, 1.0 if cpus is None else cpus
