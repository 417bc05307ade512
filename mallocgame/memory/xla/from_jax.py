"""From a JAX function to an XLA dump folder (compile only) and to a :class:`Workload`."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mallocgame.memory.workload import Workload
from mallocgame.memory.xla.assemble import read_dump_folder

# XLA debug options as JAX's ``compile(compiler_options=...)`` takes them.
CompileOptions = dict[str, str | bool | int | float]


def compile_to_dump(
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    dump_dir: str | os.PathLike[str],
    kwargs: dict[str, Any] | None = None,
    backend: str | None = "cpu",
    compile_options: CompileOptions | None = None,
) -> float:
    """Lower ``fn`` (a ``jax.jit`` function, or a plain function that is jitted here) on
    ``args`` (arrays or :class:`jax.ShapeDtypeStruct` pytrees) and compile it with XLA for
    ``backend`` (``None``: JAX's default), dumping its files to ``dump_dir``. Returns the compile
    time in seconds (lowering excluded). Nothing is executed.

    ``compile_options`` are further XLA debug options, e.g.
    ``{"xla_backend_optimization_level": 0}``, which skips LLVM optimisation (about half the
    compile time on CPU) and, on every zoo program checked with jax 0.10.2, left the HLO, the
    schedule, the buffer assignment and so the workload byte-for-byte the same."""
    import jax  # deferred: heavy and optional; reading a dump folder needs no jax

    jitted = fn if hasattr(fn, "lower") else jax.jit(fn)
    ctx = jax.default_device(jax.devices(backend)[0]) if backend else contextlib.nullcontext()
    with ctx:
        lowered = jitted.lower(*args, **(kwargs or {}))
        t0 = time.perf_counter()
        options = dict(compile_options or {})
        options.update({"xla_dump_to": str(dump_dir), "xla_dump_hlo_as_text": True})
        lowered.compile(compiler_options=options)
        return time.perf_counter() - t0


def workload_from_jax(
    fn: Callable[..., Any],
    *args: Any,
    name: str | None = None,
    backend: str | None = "cpu",
    **kwargs: Any,
) -> Workload:
    """Compile ``fn(*args, **kwargs)`` with XLA (CPU backend unless ``backend`` says otherwise;
    compile only) into a temporary dump folder and read it with :func:`read_dump_folder`."""
    with tempfile.TemporaryDirectory(prefix="mallocgame-xla-") as tmp:
        seconds = compile_to_dump(fn, args, tmp, kwargs, backend=backend)
        wl = read_dump_folder(tmp)
    if name:
        wl.name = name
    wl.source["compile_seconds"] = round(seconds, 3)
    wl.source["folder"] = "(temporary, deleted)"
    wl.source["files"] = {k: Path(v).name for k, v in wl.source["files"].items()}
    return wl
