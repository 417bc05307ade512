"""What both games share about the file system and the machine: atomic writes, the cache and
datasets folders, and a description of the host for benchmark records."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# The shared benchmark instances of a checkout sit beside it (CI lays ``../shared`` too).
DATASETS = REPO.parent / "shared" / "datasets"


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # read once: os.umask is process-wide, so not from threads later


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers never see a half-written file.

    The temporary file beside ``path`` has a unique name (``tempfile.mkstemp``), so two writers
    of the same path, in two processes or two threads, never write into each other's file; the
    last rename wins whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    atomic_write_bytes(path, text.encode())


def cache_dir(*parts: str) -> Path:
    """``$MALLOCGAME_CACHE`` or ``~/.cache/mallocgame``, joined with ``parts`` (not created:
    writers create what they write)."""
    root = os.environ.get("MALLOCGAME_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mallocgame"
    return base.joinpath(*parts)


def datasets_dir() -> Path:
    """The shared benchmark instances: ``$MALLOCGAME_DATASETS`` (``~`` expanded), else
    ``../shared/datasets`` beside the checkout."""
    root = os.environ.get("MALLOCGAME_DATASETS")
    return Path(root).expanduser() if root else DATASETS


def cpu_model() -> str:
    """The processor's name from ``/proc/cpuinfo``, else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info() -> dict[str, Any]:
    """The machine a measurement ran on, for a benchmark record."""
    import numpy as np

    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "numpy": np.__version__,
        "loadavg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


def describe_host(gpu: bool = False) -> str:
    """One line: ``"<cpu>, <n> cores, <system>, no GPU"`` (or ``..., GPU``)."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}, {'GPU' if gpu else 'no GPU'}"
    )
