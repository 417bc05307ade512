"""Shared by the XLA reader's tests: the checked-in dump, fresh compilations with known shapes
(compiled once per session), and copies of the checked-in dump to break."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from mallocgame.memory import xla
from mallocgame.memory.workload import Workload

DATA = Path(__file__).resolve().parents[2] / "data" / "xla" / "matmul_tanh"
PREFIX = "module_0000.jit_f.cpu_after_optimizations"
M, K, N = 64, 128, 32


@pytest.fixture(scope="session")
def dumps(tmp_path_factory) -> dict[str, Path]:
    """Dump folders of small programs: matmul, fori (7 trips), scan, while (unknown trips), dus
    (the functions' names give the module names: ``jit__fori``, ...)."""
    jax = pytest.importorskip("jax")
    jnp = jax.numpy

    def sds(*shape: int, dtype=jnp.float32) -> jax.ShapeDtypeStruct:
        return jax.ShapeDtypeStruct(shape, dtype)

    def _matmul_tanh(x, w):
        return jnp.tanh(x @ w)

    def _fori(x):
        return jax.lax.fori_loop(0, 7, lambda i, c: jnp.tanh(c @ c), x)

    def _scan(h, xs):
        def step(h, x):
            h = jnp.tanh(h @ x)
            return h, h[0]

        return jax.lax.scan(step, h, xs)

    def _while_unknown(x):
        return jax.lax.while_loop(lambda c: jnp.sum(c) < 1e6, lambda c: c * 2.0 + 1.0, x)

    def _dus(x, v, i):
        return jax.lax.dynamic_update_slice(x @ x, v, (i, 0))

    def compile_(fn, args, folder: Path) -> Path:
        xla.compile_to_dump(jax.jit(fn), args, folder)
        return folder

    root = tmp_path_factory.mktemp("xla")
    return {
        "matmul": compile_(_matmul_tanh, (sds(M, K), sds(K, N)), root / "matmul"),
        "fori": compile_(_fori, (sds(64, 64),), root / "fori"),
        "scan": compile_(_scan, (sds(16, 16), sds(11, 16, 16)), root / "scan"),
        "while": compile_(_while_unknown, (sds(8, 8),), root / "while"),
        "dus": compile_(_dus, (sds(64, 64), sds(4, 64), sds(dtype=jnp.int32)), root / "dus"),
    }


@pytest.fixture
def copy(tmp_path) -> Path:
    """A copy of the checked-in dump folder, to break."""
    folder = tmp_path / "dump"
    shutil.copytree(DATA, folder)
    return folder


def dump_lines(folder: Path, suffix: str) -> tuple[Path, list[str]]:
    """The path and lines of the checked-in module's file ``suffix`` ("", "-live-range", ...)."""
    p = folder / f"{PREFIX}{suffix}.txt"
    return p, p.read_text().splitlines()


def hlo_of(wl: Workload) -> xla.HloModule:
    return xla.parse_hlo_module(Path(wl.source["files"]["hlo"]))


def check_matmul_tanh(wl: Workload) -> None:
    """``tanh(x @ w)`` with x M x K and w K x N, float32."""
    assert wl.num_buffers == 4  # x, w, dot output, tanh output
    assert wl.num_instructions == 4
    assert sorted(wl.sizes.tolist()) == sorted([M * K * 4, K * N * 4, M * N * 4, M * N * 4])
    assert np.all(wl.ends > wl.starts)
    assert wl.starts.min() == 0 and wl.ends.max() == wl.num_instructions
    dot_flops = 2 * M * N * K
    assert wl.instr_flops.max() == dot_flops
    assert wl.instr_flops.sum() == dot_flops + M * N  # + one tanh per element
    touched = set(wl.access_buffer.tolist())
    assert touched == set(range(wl.num_buffers))
    # The dot reads x and w in full and writes its output.
    i = int(np.argmax(wl.instr_flops))
    got = sorted(wl.access_bytes[wl.access_ptr[i] : wl.access_ptr[i + 1]].tolist())
    assert got == sorted([M * K * 4.0, K * N * 4.0, M * N * 4.0])
    # Every access of a buffer happens while it is live.
    ptr, instr, _ = wl.accesses_of()
    for b in range(wl.num_buffers):
        at = instr[ptr[b] : ptr[b + 1]]
        assert np.all((at >= wl.starts[b]) & (at < wl.ends[b]))
    # XLA's own peak (HloLiveRange, inclusive ends) for a program without tuples is ours.
    assert wl.peak_live_bytes() == wl.source["xla_peak_live_bytes"]
    wl.check()
