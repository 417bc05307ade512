"""Checkpoint files: one ``.npz`` of named numpy arrays plus a JSON ``meta`` record.

Writes are atomic: the file is written to a temporary name in the same directory, flushed,
fsync'ed and moved over the target with ``os.replace``, so a process killed at any moment
leaves either the previous checkpoint or the new one, never a torn file. Files load with
``allow_pickle=False`` (no code runs on load).

Temporary names are unique per write and carry the writer's pid:
``.<name>.<pid>-<random>.tmp`` beside ``<name>``. A process killed mid-write leaves one behind;
:func:`remove_stale_temps` (called by the writer, by ``Trainer.resume`` and by
``load_policy``) deletes those of a target whose writer is no longer running -- nothing else.

Array names: ``params/<module>::<name>`` (haiku params), ``opt/<i>`` (optimizer-state leaves in
tree order), ``replay/<field>`` and ``ranked/<field>`` (optional), plus ``meta`` (a JSON string).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jax
import numpy as np

FORMAT = "mallocgame-agent/1"
_SEP = "::"


def params_to_arrays(params: Mapping[str, Mapping[str, Any]], prefix: str = "params/") -> dict:
    """Haiku params {module: {name: array}} -> {prefix + module::name: np.ndarray}."""
    out = {}
    for module, leaves in params.items():
        for name, value in leaves.items():
            out[f"{prefix}{module}{_SEP}{name}"] = np.asarray(jax.device_get(value))
    return out


def arrays_to_params(arrays: Mapping[str, np.ndarray], prefix: str = "params/") -> dict:
    """Inverse of :func:`params_to_arrays` (returns plain dicts of numpy arrays)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key, value in arrays.items():
        if key.startswith(prefix):
            module, name = key[len(prefix) :].rsplit(_SEP, 1)
            out.setdefault(module, {})[name] = np.asarray(value)
    return out


def tree_to_arrays(tree: Any, prefix: str) -> dict[str, np.ndarray]:
    """Any pytree -> {prefix<i>: leaf} in tree-flatten order."""
    leaves = jax.tree.leaves(jax.device_get(tree))
    return {f"{prefix}{i}": np.asarray(leaf) for i, leaf in enumerate(leaves)}


def arrays_to_tree(arrays: Mapping[str, np.ndarray], prefix: str, like: Any) -> Any:
    """Rebuilds a pytree shaped like ``like`` from :func:`tree_to_arrays` output."""
    treedef = jax.tree.structure(like)
    like_leaves = jax.tree.leaves(like)
    leaves = []
    for i, ref in enumerate(like_leaves):
        value = np.asarray(arrays[f"{prefix}{i}"])
        if value.shape != np.shape(ref):
            raise ValueError(f"{prefix}{i}: shape {value.shape} != expected {np.shape(ref)}")
        leaves.append(value.astype(np.asarray(ref).dtype))
    if f"{prefix}{len(like_leaves)}" in arrays:
        raise ValueError(f"{prefix}: checkpoint has more leaves than expected")
    return jax.tree.unflatten(treedef, leaves)


def prefixed(arrays: Mapping[str, np.ndarray], prefix: str) -> dict[str, np.ndarray]:
    """Sub-dict of the arrays under ``prefix`` with the prefix stripped."""
    return {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}


def write_checkpoint(path: str | os.PathLike, arrays: Mapping[str, np.ndarray], meta: dict) -> Path:
    """Atomically writes ``arrays`` and ``meta`` (JSON-serialisable) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT, **meta}
    payload = dict(arrays)
    payload["meta"] = np.asarray(json.dumps(meta, allow_nan=True))
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp", dir=path.parent
    )
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


LEGACY_TEMP_AGE_S = 600.0  # temporaries named without a pid (older versions): removed when older


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    except (OverflowError, ValueError):
        return False  # not a possible pid
    return True


def remove_stale_temps(path: str | os.PathLike) -> list[Path]:
    """Deletes the temporaries that :func:`write_checkpoint` left beside ``path`` when its
    process was killed mid-write; returns the removed paths.

    Only files named ``.<name>.<pid>-<random>.tmp`` whose pid is not a running process are
    removed (a live writer's file is kept), plus older versions' ``.<name>.<8 chars>.tmp``
    once they are :data:`LEGACY_TEMP_AGE_S` seconds old. Other files are never touched;
    errors (a read-only folder, a file removed meanwhile) are ignored.
    """
    path = Path(path)
    ours = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)-[A-Za-z0-9_]+\.tmp$")
    legacy = re.compile(rf"^\.{re.escape(path.name)}\.[a-z0-9_]{{8}}\.tmp$")
    removed: list[Path] = []
    try:
        names = os.listdir(path.parent)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        m = ours.match(name)
        cand = path.parent / name
        try:
            if m is not None:
                stale = not _pid_alive(int(m.group(1)))
            elif legacy.match(name) is not None:
                stale = now - cand.lstat().st_mtime > LEGACY_TEMP_AGE_S
            else:
                continue
            if stale and cand.is_file() and not cand.is_symlink():
                cand.unlink()
                removed.append(cand)
        except OSError:
            continue
    return removed


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Returns ``(arrays, meta)`` of a checkpoint written by :func:`write_checkpoint`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    return arrays, meta
