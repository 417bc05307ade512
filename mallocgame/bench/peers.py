"""Peers: other people's allocators, run on the same instances in the same bench.

``omnimalloc`` (PyPI, optional: ``pip install 'mallocgame[peers]'`` or ``pip install
omnimalloc``) packs buffers to minimise the peak (no capacity, no slow memory, no alignment).
Its allocators are named ``omnimalloc:NAME`` with ``NAME`` one of
``omnimalloc.available_allocators()`` (``supermalloc``, ``telamalloc``, ``greedy_by_size``,
``greedy_by_all``, ``minimalloc`` when its optional extension is present, ...). They play the
``pack`` suite only: a packing is judged by our validator and counts as solved when its peak
``max(offset + size)`` is within the capacity.

Budgets: ``timeout`` (the bench's ``--time-limit``), ``seed`` and ``num_threads`` (the bench's
``--threads``) are passed to the allocators whose constructors take them. Alignment: sizes are
rounded up to the alignment before packing (the validator then checks the offsets).
"""

from __future__ import annotations

import inspect
import time
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.memory.problem import Problem

PREFIX = "omnimalloc:"


def is_peer(name: str) -> bool:
    return name.startswith(PREFIX)


def omnimalloc_version() -> str | None:
    """The installed omnimalloc version, or None when it cannot be imported."""
    try:
        import omnimalloc
    except Exception:
        return None
    return str(getattr(omnimalloc, "__version__", "?"))


def available_peers() -> list[str]:
    """``omnimalloc:NAME`` for every allocator the installed omnimalloc registers (empty when
    omnimalloc is not installed)."""
    try:
        import omnimalloc
    except Exception:
        return []
    return [PREFIX + n for n in omnimalloc.available_allocators()]


def unavailable_reason(name: str, mode: str) -> str | None:
    """None when ``name`` can run in ``mode`` (``malloc`` or ``pack``); otherwise why not.

    Raises :class:`InputError` (field ``solvers``) when omnimalloc is installed but has no
    allocator of that name: a typo, not a missing peer."""
    if mode != "pack":
        return (
            "omnimalloc minimises peak memory; it has no slow memory or time objective (pack only)"
        )
    version = omnimalloc_version()
    if version is None:
        return "omnimalloc is not installed (pip install omnimalloc)"
    alg = name[len(PREFIX) :]
    import omnimalloc

    names = omnimalloc.available_allocators()
    if alg not in names:
        raise InputError(
            f"unknown omnimalloc allocator {alg!r}; omnimalloc {version} has {', '.join(names)}",
            field="solvers",
        )
    try:
        _make(alg, seed=0, time_limit=1.0, threads=1)
    except Exception as e:  # e.g. 'minimalloc' needs an optional extension
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"omnimalloc:{alg} cannot start: {first}"
    return None


def _make(alg: str, seed: int, time_limit: float | None, threads: int) -> Any:
    from omnimalloc.allocators import BaseAllocator

    cls = BaseAllocator.registry()[alg]
    params = inspect.signature(cls.__init__).parameters
    kwargs: dict[str, Any] = {}
    if "timeout" in params and time_limit is not None:
        kwargs["timeout"] = float(time_limit)
    if "seed" in params:
        kwargs["seed"] = int(seed)
    if "num_threads" in params:
        kwargs["num_threads"] = int(threads)
    return cls(**kwargs)


def solve_peer(
    problem: Problem, name: str, seed: int = 0, time_limit: float | None = None, threads: int = 1
) -> tuple[np.ndarray, dict[str, Any], float]:
    """Pack ``problem``'s buffers with ``omnimalloc:NAME``. Returns ``(offsets, extra,
    wall_s)``; ``offsets`` covers every buffer (it may exceed the capacity)."""
    import omnimalloc
    from omnimalloc import Allocation

    alg = name[len(PREFIX) :]
    w = problem.workload
    a = max(1, int(problem.target.alignment_bytes))
    sizes = -(-w.sizes // a) * a
    allocs = [
        Allocation(int(i), int(s), int(b), int(e))
        for i, s, b, e in zip(
            range(w.num_buffers), sizes.tolist(), w.starts.tolist(), w.ends.tolist(), strict=True
        )
    ]
    try:
        omnimalloc.set_max_threads(int(threads))
    except Exception:
        pass
    allocator = _make(alg, seed, time_limit, threads)
    extra: dict[str, Any] = {
        "peer": "omnimalloc",
        "peer_version": omnimalloc_version(),
        "allocator": repr(allocator),
    }
    t0 = time.perf_counter()
    if hasattr(allocator, "solve") and alg == "supermalloc":
        res = allocator.solve(tuple(allocs))
        placed = res.allocations
        extra.update(
            {
                "peer_lower_bound": int(res.lower_bound),
                "peer_proved_optimal": bool(res.proved_optimal),
            }
        )
    else:
        placed = omnimalloc.allocate(allocs, allocator=allocator)
    wall = time.perf_counter() - t0
    offsets = np.full(w.num_buffers, -1, dtype=np.int64)
    for al in placed:
        offsets[int(al.id)] = -1 if al.offset is None else int(al.offset)
    return offsets, extra, wall
