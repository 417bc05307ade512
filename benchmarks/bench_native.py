"""Game steps per second: the native core (mallocgame._native) against the Python reference.

The workload is the resnet50 trace (1042 buffers, minimalloc CSV ``id,lower,upper,size`` with
half-open live ranges ``[lower, upper)``), with the trace access proxy of
``Workload.from_intervals`` and a fast memory of 25% of the peak live bytes. One game decides
every buffer with "action 1 (best fit) if legal, else action 0".

Run: ``.venv/bin/pytest benchmarks/bench_native.py --benchmark-enable -s``. The last test
prints steps/s of each variant and checks that the native core is at least 50x faster than the
reference, both driven by the same Python loop.
"""

from __future__ import annotations

import csv
import importlib.util
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from mallocgame._native import BatchedGames, Game, Instance

from mallocgame.memory.workload import Workload

REPO = Path(__file__).resolve().parents[1]
DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
TRACE = DATASETS / "ml-traces" / "resnet50.csv"
REQUIRED_SPEEDUP = 50.0

# Target numbers for the benchmark (only their ratios matter for the game).
FAST_BANDWIDTH = 1.0e12
SLOW_BANDWIDTH = 1.0e11
PEAK_FLOPS = 1.0e14
ALIGNMENT = 64
NUM_CANDIDATES = 8


def load_reference() -> ModuleType:
    """tests/native/reference_game.py, loaded by path (benchmarks/ and tests/ are not on
    sys.path)."""
    spec = importlib.util.spec_from_file_location(
        "reference_game", REPO / "tests" / "native" / "reference_game.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_trace(path: Path) -> Workload:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    ids = np.array([int(r["id"]) for r in rows], dtype=np.int64)
    lower = np.array([int(r["lower"]) for r in rows], dtype=np.int64)
    upper = np.array([int(r["upper"]) for r in rows], dtype=np.int64)
    size = np.array([int(r["size"]) for r in rows], dtype=np.int64)
    return Workload.from_intervals(path.stem, ids, size, lower, upper, source={"path": str(path)})


@pytest.fixture(scope="module")
def problem() -> dict[str, Any]:
    if not TRACE.is_file():
        pytest.skip(f"dataset not found: {TRACE}")
    w = load_trace(TRACE)
    assert w.num_buffers >= 1000
    return dict(
        sizes=w.sizes,
        starts=w.starts,
        ends=w.ends,
        instr_flops=w.instr_flops,
        access_ptr=w.access_ptr,
        access_buffer=w.access_buffer,
        access_bytes=w.access_bytes,
        capacity=w.peak_live_bytes() // 4,
        alignment=ALIGNMENT,
        fast_bandwidth=FAST_BANDWIDTH,
        slow_bandwidth=SLOW_BANDWIDTH,
        peak_flops=PEAK_FLOPS,
        order=np.arange(w.num_buffers, dtype=np.int64),
        num_candidates=NUM_CANDIDATES,
        objective="time",
        grid=16,
    )


@pytest.fixture(scope="module")
def instance(problem: dict[str, Any]) -> Instance:
    return Instance(**problem)


@pytest.fixture(scope="module")
def reference(problem: dict[str, Any]) -> Any:
    module = load_reference()
    as_lists = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in problem.items()}
    return module.ReferenceGame(**as_lists)


def play_python_loop(game: Any) -> int:
    """One game driven from Python: action 1 if legal, else 0. Returns the number of steps."""
    game.reset()
    steps = 0
    while not game.done:
        game.step(1 if game.legal_mask()[1] else 0)
        steps += 1
    return steps


def play_native_loop_in_cpp(game: Game) -> int:
    """The same game in one call: play_best_fit (action 1 if legal else 0, looped in C++)."""
    game.reset()
    game.play_best_fit()
    return game.turn


def best_rate(play: Callable[[], int], repeats: int) -> float:
    """Steps per second of the fastest of `repeats` runs."""
    best = float("inf")
    steps = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        steps = play()
        best = min(best, time.perf_counter() - t0)
    return steps / best


def record(benchmark: Any, steps: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is not None:
        benchmark.extra_info["steps_per_game"] = steps
        benchmark.extra_info["steps_per_second"] = steps / stats.stats.min


def test_native_python_loop(benchmark: Any, instance: Instance) -> None:
    game = Game(instance)
    steps = benchmark(play_python_loop, game)
    assert steps == instance.num_buffers
    record(benchmark, steps)


def test_native_play_best_fit(benchmark: Any, instance: Instance) -> None:
    game = Game(instance)
    steps = benchmark(play_native_loop_in_cpp, game)
    assert steps == instance.num_buffers
    record(benchmark, steps)


def test_native_batched(benchmark: Any, instance: Instance) -> None:
    """Eight games stepped together, observations and masks written into numpy arrays."""
    n = 8
    batch = BatchedGames([Game(instance) for _ in range(n)])
    obs = np.zeros((n, batch.observation_size), np.float32)
    mask = np.zeros((n, batch.num_actions), np.bool_)
    rewards = np.zeros(n, np.float32)
    done = np.zeros(n, np.bool_)

    def play() -> int:
        batch.reset()
        batch.observe(obs, mask, done)
        steps = 0
        while not done.all():
            actions = mask[:, 1].astype(np.int32)
            batch.step(actions, obs, mask, rewards, done)
            steps += n
        return steps

    steps = benchmark(play)
    assert steps == n * instance.num_buffers
    record(benchmark, steps)


def test_reference(benchmark: Any, reference: Any, instance: Instance) -> None:
    steps = benchmark.pedantic(play_python_loop, args=(reference,), rounds=3, iterations=1)
    assert steps == instance.num_buffers
    record(benchmark, steps)


def test_native_and_reference_agree(instance: Instance, reference: Any) -> None:
    native = Game(instance)
    play_python_loop(native)
    play_python_loop(reference)
    assert native.offsets().tolist() == reference.offsets
    assert native.return_so_far == pytest.approx(reference.return_so_far, rel=1e-9)
    in_cpp = Game(instance)
    in_cpp.play_best_fit()
    assert in_cpp.offsets().tolist() == reference.offsets
    # Under the trace proxy every placement pays, so play_greedy is the same policy here.
    greedy = Game(instance)
    greedy.play_greedy()
    assert greedy.offsets().tolist() == reference.offsets


def test_speedup(instance: Instance, reference: Any) -> None:
    native = Game(instance)
    rates = {
        "native, Python loop (legal_mask + step)": best_rate(lambda: play_python_loop(native), 7),
        "native, play_best_fit (C++ loop)": best_rate(lambda: play_native_loop_in_cpp(native), 7),
        "reference, Python loop": best_rate(lambda: play_python_loop(reference), 2),
    }
    ref_rate = rates["reference, Python loop"]
    print(
        f"\nresnet50: {instance.num_buffers} buffers, capacity {instance.capacity} B (25% of peak)"
    )
    for name, rate in rates.items():
        print(f"  {name:42s} {rate:12,.0f} steps/s  {rate / ref_rate:8.1f}x reference")
    ratio = rates["native, Python loop (legal_mask + step)"] / ref_rate
    assert ratio >= REQUIRED_SPEEDUP, f"native is only {ratio:.1f}x faster than the reference"
