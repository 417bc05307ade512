"""Finding modules in a dump folder and choosing one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from mallocgame.errors import InputError
from mallocgame.memory import xla

from .conftest import DATA, PREFIX


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
    pytest.importorskip("jax")
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


def test_find_modules_groups_the_four_files():
    (mod,) = xla.find_modules(DATA)
    assert (mod.prefix, mod.module_id, mod.name) == ("module_0000.jit_f", 0, "jit_f")
    assert mod.stage == "cpu_after_optimizations"
    assert sorted(mod.files) == ["buffer_assignment", "hlo", "live_range", "values"]
    assert mod.expected("live_range") == DATA / f"{PREFIX}-live-range.txt"
    assert mod.value_count() > 0


def test_empty_and_missing_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=rf"^{empty}: no XLA module dumps found"):
        xla.read_dump_folder(empty)
    with pytest.raises(InputError, match="not a folder"):
        xla.read_dump_folder(tmp_path / "absent")
