"""The XLA dump reader: fresh compilations with known shapes, a checked-in dump, bad inputs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mallocgame.errors import InputError
from mallocgame.memory import xla
from mallocgame.memory.workload import Workload

jax = pytest.importorskip("jax")
jnp = jax.numpy

DATA = Path(__file__).resolve().parents[2] / "data" / "xla" / "matmul_tanh"
PREFIX = "module_0000.jit_f.cpu_after_optimizations"
M, K, N = 64, 128, 32


def _sds(*shape: int, dtype=jnp.float32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(shape, dtype)


def _compile(fn, args, folder: Path) -> Path:
    xla.compile_to_dump(jax.jit(fn), args, folder)
    return folder


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


@pytest.fixture(scope="module")
def dumps(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("xla")
    return {
        "matmul": _compile(_matmul_tanh, (_sds(M, K), _sds(K, N)), root / "matmul"),
        "fori": _compile(_fori, (_sds(64, 64),), root / "fori"),
        "scan": _compile(_scan, (_sds(16, 16), _sds(11, 16, 16)), root / "scan"),
        "while": _compile(_while_unknown, (_sds(8, 8),), root / "while"),
        "dus": _compile(_dus, (_sds(64, 64), _sds(4, 64), _sds(dtype=jnp.int32)), root / "dus"),
    }


def _hlo(wl: Workload) -> xla.HloModule:
    return xla.parse_hlo_module(Path(wl.source["files"]["hlo"]))


def _check_matmul_tanh(wl: Workload) -> None:
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


def test_fresh_matmul_tanh(dumps):
    wl = xla.read_dump_folder(dumps["matmul"])
    _check_matmul_tanh(wl)
    src = wl.source
    assert src["reader"] == "mallocgame.memory.xla.read_dump_folder"
    assert src["jax"] == jax.__version__ and src["jaxlib"]
    assert src["xla_module"] == "jit__matmul_tanh" == wl.name
    for kind in ("hlo", "buffer_assignment", "values", "live_range"):
        assert Path(src["files"][kind]).is_file()


def test_checked_in_dump(tmp_path):
    wl = xla.read_dump_folder(DATA)
    _check_matmul_tanh(wl)
    assert wl.source["xla_module"] == "jit_f"
    assert wl.source["xla_peak_live_bytes"] == 65536
    # Live ranges: XLA's inclusive [start, end] become [start, end + 1).
    by_name = dict(
        zip(wl.names, zip(wl.starts.tolist(), wl.ends.tolist(), strict=True), strict=True)
    )
    # Live-out values end at XLA's 'max' (after the last instruction): clamped to I.
    assert by_name == {"x.1": (0, 4), "w.1": (0, 4), "ynn_fusion": (2, 4), "wrapped_tanh": (3, 4)}
    wl.save(tmp_path / "w.workload.json.gz")
    back = Workload.load(tmp_path / "w.workload.json.gz")
    assert np.array_equal(back.access_bytes, wl.access_bytes) and back.names == wl.names


def test_while_carry_is_one_buffer_spanning_the_loop(dumps):
    wl = xla.read_dump_folder(dumps["fori"])
    hlo = _hlo(wl)
    (loop,) = wl.source["while_loops"]
    assert loop["trip_count"] == 7 and loop["known"]
    pos = {n: t for t, n in enumerate(wl.instr_names)}
    w = next(pos[i.name] for i in hlo.instructions.values() if i.opcode == "while")
    body = hlo.computations[hlo.instructions[loop["while"]].attrs["body"].lstrip("%")]
    body_pos = [pos[i.name] for i in body.instructions]
    # Flops inside the loop count trip-count times.
    assert wl.instr_flops.max() == 7 * 2 * 64**3
    dot = int(np.argmax(wl.instr_flops))
    assert dot in body_pos
    reads = wl.access_buffer[wl.access_ptr[dot] : wl.access_ptr[dot + 1]]
    carry = min(reads.tolist(), key=lambda b: wl.starts[b])
    assert wl.sizes[carry] == 64 * 64 * 4
    # The carry starts before the loop (its init copy) and ends after the while instruction.
    assert wl.starts[carry] < min(body_pos) and wl.ends[carry] > w
    # ... and is the only 64x64 buffer other than the parameter that lives across the loop.
    across = [
        b
        for b in range(wl.num_buffers)
        if wl.sizes[b] == 64 * 64 * 4 and wl.starts[b] < min(body_pos) and wl.ends[b] > w
    ]
    assert len(across) == 2 and carry in across
    assert wl.source["alias_edges_confirmed"] >= 4
    assert wl.source["alias_edges_unconfirmed"] == 0


def test_scan_stacked_output_updated_in_place(dumps):
    wl = xla.read_dump_folder(dumps["scan"])
    (loop,) = wl.source["while_loops"]
    assert loop["trip_count"] == 11
    stacked = np.flatnonzero(wl.sizes == 11 * 16 * 4)
    assert stacked.size == 1  # the ys buffer: in-place dynamic-update-slice, one buffer
    b = int(stacked[0])
    ptr, instr, nbytes = wl.accesses_of()
    hlo = _hlo(wl)
    body = hlo.computations[hlo.instructions[loop["while"]].attrs["body"].lstrip("%")]
    body_names = {i.name for i in body.instructions}
    pairs = zip(instr[ptr[b] : ptr[b + 1]], nbytes[ptr[b] : ptr[b + 1]], strict=True)
    in_loop = [x for i, x in pairs if wl.instr_names[i] in body_names]
    # Each of the 11 iterations writes one 16-float row, nothing more.
    assert sum(in_loop) == 11 * 16 * 4
    wl.check()


def test_dynamic_update_slice_merged_with_its_operand(dumps):
    wl = xla.read_dump_folder(dumps["dus"])
    # x, v, i, and ONE buffer for the dot output updated in place by dynamic-update-slice.
    assert wl.num_buffers == 4
    assert sorted(wl.sizes.tolist()) == [4, 4 * 64 * 4, 64 * 64 * 4, 64 * 64 * 4]
    assert wl.source["alias_edges_confirmed"] == 1
    last = wl.num_instructions - 1  # the update writes only the 4 updated rows
    acc = dict(
        zip(
            wl.access_buffer[wl.access_ptr[last] :].tolist(),
            wl.access_bytes[wl.access_ptr[last] :].tolist(),
            strict=True,
        )
    )
    merged = int(np.flatnonzero((wl.sizes == 64 * 64 * 4) & (wl.starts > 0))[0])
    assert acc[merged] == 4 * 64 * 4


def test_unknown_trip_count_counts_once(dumps):
    wl = xla.read_dump_folder(dumps["while"])
    (loop,) = wl.source["while_loops"]
    assert loop == {"while": loop["while"], "trip_count": None, "known": False}
    assert wl.source["while_loops_unknown_trip_count"] == 1
    # The body's multiply-add (2 ops on 64 elements) and the condition's sum and compare,
    # each counted for one execution.
    assert wl.instr_flops.sum() == 2 * 64 + 64 + 1
    wl.check()


def test_shape_parser():
    s = xla.parse_shape("(s32[], f32[64,64]{1,0}, /*index=2*/bf16[3,5]{1,0:T(8,128)}, (pred[2]))")
    assert s.is_tuple and len(s.elements) == 4
    assert s.nbytes == 4 + 64 * 64 * 4 + 3 * 5 * 2 + 2
    assert [i for i, _ in s.leaves()] == [(0,), (1,), (2,), (3, 0)]
    assert xla.parse_shape("f32[<=10,3]{1,0}").dims == (10, 3)


# ------------------------------------------------------------------------ module selection
def test_module_selection(dumps, tmp_path):
    folder = tmp_path / "many"
    shutil.copytree(DATA, folder)
    for f in dumps["fori"].iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)
    mods = xla.find_modules(folder)
    assert len(mods) == 2
    wl = xla.read_dump_folder(folder)  # the largest
    assert wl.source["xla_module"] == "jit__fori"
    assert wl.source["module_selection"] == "largest by value count"
    assert len(wl.source["module_candidates"]) == 2
    assert xla.read_dump_folder(folder, module="jit_f").source["xla_module"] == "jit_f"
    assert xla.read_dump_folder(folder, module="module_0000").source["xla_module"] == "jit_f"
    with pytest.raises(InputError, match="no module matching 'nope'.*jit_f"):
        xla.read_dump_folder(folder, module="nope")


def test_xla_flags_dump_folder(tmp_path):
    """Folders made with XLA_FLAGS hold every module the process compiled."""
    folder = tmp_path / "flags"
    code = (
        "import jax, jax.numpy as jnp\n"
        "s = jax.ShapeDtypeStruct((32, 32), jnp.float32)\n"
        "jax.jit(lambda a: jnp.tanh(a @ a)).lower(s).compile()\n"
        "def big(a):\n"
        "    return jax.lax.fori_loop(0, 3, lambda i, c: jnp.sin(c @ c), a)\n"
        "jax.jit(big).lower(s).compile()\n"
    )
    env = dict(
        os.environ, XLA_FLAGS=f"--xla_dump_to={folder} --xla_dump_hlo_as_text", JAX_PLATFORMS="cpu"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=120)
    assert len(xla.find_modules(folder)) >= 2
    wl = xla.read_dump_folder(folder)
    assert wl.source["xla_module"] == "jit_big"
    assert wl.source["while_loops"][0]["trip_count"] == 3
    lam = xla.read_dump_folder(folder, module="lambda")
    assert lam.instr_flops.max() == 2 * 32**3


# ------------------------------------------------------------------------------ bad input
@pytest.fixture
def copy(tmp_path) -> Path:
    folder = tmp_path / "dump"
    shutil.copytree(DATA, folder)
    return folder


def _lines(folder: Path, suffix: str) -> tuple[Path, list[str]]:
    p = folder / f"{PREFIX}{suffix}.txt"
    return p, p.read_text().splitlines()


def test_truncated_live_range(copy):
    p, lines = _lines(copy, "-live-range")
    p.write_text("\n".join(lines[:9]) + "\n")  # stops inside BufferLiveRange
    with pytest.raises(InputError) as e:
        xla.read_dump_folder(copy)
    assert e.value.where == str(p) and e.value.line == 10
    assert "truncated" in str(e.value) and "Live ranges at N (peak)" in str(e.value)
    assert str(e.value).startswith(f"{p}:10: field 'BufferLiveRange': ")


def test_truncated_instruction_sequence(copy):
    p, lines = _lines(copy, "-live-range")
    p.write_text("\n".join(lines[:4]) + "\n")
    with pytest.raises(InputError, match=r"-live-range\.txt:5: .*truncated"):
        xla.read_dump_folder(copy)


def test_malformed_live_range_line(copy):
    p, lines = _lines(copy, "-live-range")
    n = next(i for i, s in enumerate(lines) if s.strip().startswith("ynn_fusion{}:"))
    lines[n] = "    ynn_fusion{}:2-"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError) as e:
        xla.read_dump_folder(copy)
    assert str(e.value).startswith(
        f"{p}:{n + 1}: field 'BufferLiveRange': expected NAME{{INDEX}}:START-END, got 'ynn_fusion{{}}:2-'"
    )


def test_malformed_buffer_assignment_line(copy):
    p, lines = _lines(copy, "-buffer-assignment")
    n = next(i for i, s in enumerate(lines) if "w.1" in s and "value:" in s)
    lines[n] = lines[n].replace("size=16384,", "size=,")
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputError, match=rf"-buffer-assignment\.txt:{n + 1}: field 'value': expected"
    ):
        xla.read_dump_folder(copy)


def test_truncated_hlo(copy):
    p, lines = _lines(copy, "")
    n = next(i for i, s in enumerate(lines) if s.startswith("ENTRY"))
    p.write_text("\n".join(lines[: n + 3]) + "\n")
    with pytest.raises(
        InputError, match=rf"after_optimizations\.txt:{n + 4}: file ends inside computation"
    ):
        xla.read_dump_folder(copy)


def test_missing_buffer_assignment_file(copy):
    p, _ = _lines(copy, "-buffer-assignment")
    p.unlink()
    with pytest.raises(
        InputError, match=r"-buffer-assignment\.txt: field 'buffer_assignment': missing"
    ):
        xla.read_dump_folder(copy)


def test_empty_and_missing_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=rf"^{empty}: no XLA module dumps found"):
        xla.read_dump_folder(empty)
    with pytest.raises(InputError, match="not a folder"):
        xla.read_dump_folder(tmp_path / "absent")


def test_live_range_naming_unknown_instruction(copy):
    p, lines = _lines(copy, "-live-range")
    lines[4] = "    2:no_such_instruction"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        InputError, match=r"-live-range\.txt:5: field 'InstructionSequence': scheduled instruction"
    ):
        xla.read_dump_folder(copy)
