"""Checkpoint files: one ``.npz`` of named numpy arrays plus a JSON ``meta`` record.

Writes are atomic: the file is written to a temporary name in the same directory, flushed,
fsync'ed and moved over the target with ``os.replace``, so a process killed at any moment
leaves either the previous checkpoint or the new one, never a torn file. Files load with
``allow_pickle=False`` (no code runs on load).

Array names: ``params/<module>::<name>`` (haiku params), ``opt/<i>`` (optimizer-state leaves in
tree order), ``replay/<field>`` and ``ranked/<field>`` (optional), plus ``meta`` (a JSON string).
"""

from __future__ import annotations

import json
import os
import tempfile
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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict]:
    """Returns ``(arrays, meta)`` of a checkpoint written by :func:`write_checkpoint`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("meta")))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} checkpoint (format={meta.get('format')!r})")
    return arrays, meta
