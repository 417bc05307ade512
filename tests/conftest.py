from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mallocgame.memory.workload import Workload

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "datasets"


@pytest.fixture(scope="module")
def ray_cluster():
    """One Ray instance of 2 CPUs on this machine for the tests of a module that need Ray
    (Ray's start costs seconds; tests/native ran 12.5 s instead of 11.3 s beside an idle Ray);
    the ``ray`` module."""
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def datasets() -> Path:
    if not SHARED.is_dir():
        pytest.skip(f"shared benchmark instances not found at {SHARED}")
    return SHARED


def tiny_workload() -> Workload:
    """Four buffers, three instructions, hand-checkable.

    b0 [0,2) 100 B, b1 [1,3) 200 B, b2 [2,3) 50 B, b3 [0,3) 400 B.
    i0 touches b0 (100) and b3 (400); i1 touches b0, b1; i2 touches b1, b2, b3.
    """
    return Workload(
        name="tiny",
        ids=[10, 11, 12, 13],
        sizes=[100, 200, 50, 400],
        starts=[0, 1, 2, 0],
        ends=[2, 3, 3, 3],
        instr_flops=[1000.0, 0.0, 50.0],
        access_ptr=[0, 2, 4, 7],
        access_buffer=[0, 3, 0, 1, 1, 2, 3],
        access_bytes=[100.0, 400.0, 100.0, 200.0, 200.0, 50.0, 400.0],
        names=["a{}", "b{}", "c{0}", "d{}"],
    )


@pytest.fixture
def tiny() -> Workload:
    return tiny_workload()


def random_workload(rng: np.random.Generator, n: int = 40, horizon: int = 30) -> Workload:
    starts = rng.integers(0, horizon - 1, size=n)
    ends = starts + rng.integers(1, 8, size=n)
    sizes = rng.integers(1, 64, size=n) * 16
    return Workload.from_intervals("random", np.arange(n), sizes, starts, ends)
