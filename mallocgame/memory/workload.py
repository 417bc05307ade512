"""The workload: buffers with sizes and live ranges, and the scheduled instructions that touch them.

A :class:`Workload` is the plain data object that every reader produces (XLA compilations, XLA
dump folders, minimalloc CSV traces) and that every game, solver, cost model and validator
consumes. It is columnar (numpy arrays), so that the native core can take it without copies.

Shapes (``B`` buffers, ``I`` scheduled instructions, ``A`` accesses):

- ``ids[B]`` int64: the buffer's id as the source names it (unique).
- ``sizes[B]`` int64 > 0: bytes.
- ``starts[B]``, ``ends[B]`` int64: the half-open live interval ``[start, end)`` in schedule
  positions; two buffers conflict when their intervals overlap.
- ``names[B]`` str: a human-readable name (may be empty).
- ``instr_flops[I]`` float64: the instruction's floating-point operations.
- ``instr_names[I]`` str.
- ``access_ptr[I + 1]`` int64, ``access_buffer[A]`` int64 (buffer index, not id),
  ``access_bytes[A]`` float64: CSR lists of the bytes each instruction reads or writes of each
  buffer (reads and writes summed).

The on-disk format (``*.workload.json``, optionally gzipped) is documented in
``docs/workload-format.md``.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError, short_repr
from mallocgame.io import atomic_write_bytes

FORMAT_NAME = "mallocgame-workload"
FORMAT_VERSION = 1
#: The largest buffer size, and the largest total of sizes, in bytes (the native core's bound).
MAX_BYTES = 2**60
#: The largest magnitude of a live-range position: keeps every schedule the native core's
#: observation grid scales within int64.
MAX_POSITION = 2**56
_I64 = 2**63


@dataclasses.dataclass(eq=False)
class Workload:
    """Buffers, their live ranges, and the instructions that access them (see module doc)."""

    name: str
    ids: np.ndarray
    sizes: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    instr_flops: np.ndarray
    access_ptr: np.ndarray
    access_buffer: np.ndarray
    access_bytes: np.ndarray
    names: list[str] = dataclasses.field(default_factory=list)
    instr_names: list[str] = dataclasses.field(default_factory=list)
    # Where the workload came from: reader, XLA version, program, the proxy used for traces, ...
    source: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = np.ascontiguousarray(self.ids, dtype=np.int64)
        self.sizes = np.ascontiguousarray(self.sizes, dtype=np.int64)
        self.starts = np.ascontiguousarray(self.starts, dtype=np.int64)
        self.ends = np.ascontiguousarray(self.ends, dtype=np.int64)
        self.instr_flops = np.ascontiguousarray(self.instr_flops, dtype=np.float64)
        self.access_ptr = np.ascontiguousarray(self.access_ptr, dtype=np.int64)
        self.access_buffer = np.ascontiguousarray(self.access_buffer, dtype=np.int64)
        self.access_bytes = np.ascontiguousarray(self.access_bytes, dtype=np.float64)
        if not self.names:
            self.names = [""] * len(self.ids)
        if not self.instr_names:
            self.instr_names = [""] * len(self.instr_flops)
        self.check()

    # ------------------------------------------------------------------ basic facts
    @property
    def num_buffers(self) -> int:
        return int(self.ids.shape[0])

    @property
    def num_instructions(self) -> int:
        return int(self.instr_flops.shape[0])

    def peak_live_bytes(self) -> int:
        """The largest sum of sizes of buffers live at one schedule position."""
        return self.peak_live()[0]

    def peak_live(self) -> tuple[int, int]:
        """(the largest sum of sizes of buffers live at one schedule position, the first
        position where it is reached); (0, 0) without buffers."""
        return peak_live(self.sizes, self.starts, self.ends)

    def total_bytes(self) -> int:
        return int(self.sizes.sum())

    def accesses_of(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The accesses grouped by buffer: (ptr[B + 1], instruction[A'], bytes[A'])."""
        instr_of_access = np.repeat(
            np.arange(self.num_instructions, dtype=np.int64), np.diff(self.access_ptr)
        )
        order = np.argsort(self.access_buffer, kind="stable")
        counts = np.bincount(self.access_buffer, minlength=self.num_buffers)
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return ptr, instr_of_access[order], self.access_bytes[order]

    # ------------------------------------------------------------------ validation
    def check(self, where: str | None = None) -> None:
        """Raise :class:`InputError` naming the first inconsistency found."""
        where = where or self.source.get("path") or self.name
        for field in (
            "ids", "sizes", "starts", "ends", "instr_flops", "access_ptr", "access_buffer",
            "access_bytes",
        ):  # fmt: skip
            if getattr(self, field).ndim != 1:
                raise InputError(
                    f"expected a flat list, got an array of shape {getattr(self, field).shape}",
                    where,
                    field=field,
                )
        n = self.ids.shape[0]
        for field in ("sizes", "starts", "ends"):
            if getattr(self, field).shape != (n,):
                raise InputError(
                    f"has {getattr(self, field).shape[0]} entries, expected {n} (one per buffer)",
                    where,
                    field=field,
                )
        if len(self.names) != n:
            raise InputError(
                f"has {len(self.names)} entries, expected {n} (one per buffer)",
                where,
                field="names",
            )
        if n:
            if (i := _first(self.sizes <= 0)) is not None:
                raise InputError(
                    f"buffer {self.ids[i]} has non-positive size {self.sizes[i]}",
                    where,
                    field="size",
                )
            if (i := _first(self.sizes > MAX_BYTES)) is not None:
                raise InputError(
                    f"buffer {self.ids[i]} has size {self.sizes[i]}, beyond the supported 2^60",
                    where,
                    field="size",
                )
            if int(self.sizes.sum(dtype=np.float64)) > MAX_BYTES:
                raise InputError(
                    "the sizes sum to more than the supported 2^60 bytes", where, field="size"
                )
            for field in ("starts", "ends"):
                a = getattr(self, field)
                if (i := _first((a > MAX_POSITION) | (a < -MAX_POSITION))) is not None:
                    raise InputError(
                        f"buffer {self.ids[i]} has position {a[i]}, beyond the supported +-2^56",
                        where,
                        field="lower" if field == "starts" else "upper",
                    )
            if (i := _first(self.ends <= self.starts)) is not None:
                raise InputError(
                    f"buffer {self.ids[i]} has an empty or inverted live interval "
                    f"[{self.starts[i]}, {self.ends[i]})",
                    where,
                    field="upper",
                )
            uniq, counts = np.unique(self.ids, return_counts=True)
            if np.any(counts > 1):
                raise InputError(f"duplicate buffer id {uniq[counts > 1][0]}", where, field="id")
        m = self.instr_flops.shape[0]
        if self.access_ptr.shape != (m + 1,):
            raise InputError(
                f"must have {m + 1} entries (one per instruction, plus one), got "
                f"{self.access_ptr.shape[0]}",
                where,
                field="access_ptr",
            )
        if self.access_ptr[0] != 0 or np.any(np.diff(self.access_ptr) < 0):
            raise InputError("must start at 0 and never decrease", where, field="access_ptr")
        a = int(self.access_ptr[-1])
        for field in ("access_buffer", "access_bytes"):
            if getattr(self, field).shape != (a,):
                raise InputError(
                    f"has {getattr(self, field).shape[0]} entries, expected {a} (access_ptr[-1])",
                    where,
                    field=field,
                )
        if a and (self.access_buffer.min() < 0 or self.access_buffer.max() >= n):
            raise InputError("refers to a buffer index out of range", where, field="access_buffer")
        if a and not np.all(np.isfinite(self.access_bytes)):
            raise InputError("has a non-finite entry", where, field="access_bytes")
        if a and np.any(self.access_bytes < 0):
            raise InputError("has a negative entry", where, field="access_bytes")
        if m and not np.all(np.isfinite(self.instr_flops)):
            raise InputError("has a non-finite entry", where, field="instr_flops")
        if m and np.any(self.instr_flops < 0):
            raise InputError("has a negative entry", where, field="instr_flops")
        if len(self.instr_names) != m:
            raise InputError(
                f"has {len(self.instr_names)} entries, expected {m} (one per instruction)",
                where,
                field="instr_names",
            )

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_intervals(
        cls,
        name: str,
        ids: Sequence[int] | np.ndarray,
        sizes: Sequence[int] | np.ndarray,
        starts: Sequence[int] | np.ndarray,
        ends: Sequence[int] | np.ndarray,
        names: list[str] | None = None,
        source: dict[str, Any] | None = None,
    ) -> Workload:
        """A workload from buffers alone (an external trace), with the access proxy.

        Traces carry no instruction data, so the cost model needs a stand-in. The proxy: each
        buffer is written in full once when it becomes live (at ``start``) and read in full once
        at its last live position (``end - 1``); instructions have no FLOPs. One instruction is
        made per distinct position that has accesses. The execution time under this proxy is
        the memory traffic time, and putting a buffer in fast memory saves exactly its two
        transfers.
        """
        ids = np.asarray(ids, dtype=np.int64)
        sizes = np.asarray(sizes, dtype=np.int64)
        starts = np.asarray(starts, dtype=np.int64)
        ends = np.asarray(ends, dtype=np.int64)
        n = ids.shape[0]
        buf = np.concatenate([np.arange(n), np.arange(n)]).astype(np.int64)
        pos = np.concatenate([starts, ends - 1])
        nbytes = np.concatenate([sizes, sizes]).astype(np.float64)
        order = np.lexsort((buf, pos))
        pos, buf, nbytes = pos[order], buf[order], nbytes[order]
        uniq_pos, first = np.unique(pos, return_index=True)
        ptr = np.concatenate([first, [pos.shape[0]]]).astype(np.int64)
        src = {"proxy": "trace: write size at start, read size at end-1, no flops"}
        src.update(source or {})
        return cls(
            name=name,
            ids=ids,
            sizes=sizes,
            starts=starts,
            ends=ends,
            instr_flops=np.zeros(uniq_pos.shape[0]),
            access_ptr=ptr,
            access_buffer=buf,
            access_bytes=nbytes,
            names=names or [],
            instr_names=[f"t{p}" for p in uniq_pos.tolist()],
            source=src,
        )

    # ------------------------------------------------------------------ persistence
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "name": self.name,
            "source": self.source,
            "buffers": {
                "id": self.ids.tolist(),
                "size": self.sizes.tolist(),
                "start": self.starts.tolist(),
                "end": self.ends.tolist(),
                "name": list(self.names),
            },
            "instructions": {
                "name": list(self.instr_names),
                "flops": self.instr_flops.tolist(),
                "access_ptr": self.access_ptr.tolist(),
                "access_buffer": self.access_buffer.tolist(),
                "access_bytes": self.access_bytes.tolist(),
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "<dict>") -> Workload:
        if not isinstance(d, dict) or d.get("format") != FORMAT_NAME:
            raise InputError(
                f"not a {FORMAT_NAME} file (field 'format' missing or wrong)", where, field="format"
            )
        version = d.get("version")
        if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT_VERSION:
            raise InputError(
                f"unsupported workload format version {short_repr(version)}; "
                f"this mallocgame reads version {FORMAT_VERSION}",
                where,
                field="version",
            )
        b = _section(d, "buffers", where)
        ins = _section(d, "instructions", where)
        src = d.get("source")
        if src is not None and not isinstance(src, dict):
            raise InputError(f"expected an object, got {short_repr(src)}", where, field="source")
        src = dict(src or {})
        src.setdefault("path", where)
        name = d.get("name", Path(where).stem)
        if not isinstance(name, str):
            raise InputError(f"expected a string, got {short_repr(name)}", where, field="name")
        return cls(
            name=name,
            ids=_int_column(b, "buffers", "id", where),
            sizes=_int_column(b, "buffers", "size", where),
            starts=_int_column(b, "buffers", "start", where),
            ends=_int_column(b, "buffers", "end", where),
            names=_str_column(b, "buffers", "name", where),
            instr_names=_str_column(ins, "instructions", "name", where),
            instr_flops=_float_column(ins, "instructions", "flops", where),
            access_ptr=_int_column(ins, "instructions", "access_ptr", where),
            access_buffer=_int_column(ins, "instructions", "access_buffer", where),
            access_bytes=_float_column(ins, "instructions", "access_bytes", where),
            source=src,
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write atomically (temporary file, then rename); ``.gz`` suffix compresses."""
        path = Path(path)
        data = json.dumps(self.to_dict(), separators=(",", ":")).encode()
        if path.suffix == ".gz":
            data = gzip.compress(data, mtime=0)
        atomic_write_bytes(path, data)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Workload:
        path = Path(path)
        where = str(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror}", where) from None
        if raw[:2] == b"\x1f\x8b":
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError, zlib.error) as e:
                raise InputError(f"corrupt gzip data: {_one_line(e)}", where) from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            line = raw[: e.start].count(b"\n") + 1
            raise InputError(
                f"not a text file: invalid UTF-8 byte 0x{raw[e.start]:02x}", where, line=line
            ) from None
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON: {e.msg}", where, line=e.lineno) from None
        except RecursionError:
            raise InputError("malformed JSON: nested too deeply", where, line=1) from None
        except ValueError as e:  # e.g. an integer of more than 4300 digits
            raise InputError(f"malformed JSON: {_one_line(e)}", where, line=1) from None
        return cls.from_dict(d, where=where)


# ---------------------------------------------------------------------- reading the columns
def _one_line(e: BaseException, n: int = 160) -> str:
    s = " ".join(str(e).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def _has_bool(col: list) -> bool:
    return any(x is True or x is False for x in col)


def _section(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    if key not in d:
        raise InputError(f"missing field {key!r}", where, field=key)
    sec = d[key]
    if not isinstance(sec, dict):
        raise InputError(f"expected an object, got {short_repr(sec)}", where, field=key)
    return sec


def _column(sec: dict[str, Any], section: str, key: str, where: str, optional: bool) -> list:
    if key not in sec:
        if optional:
            return []
        raise InputError(f"missing field {key!r}", where, field=f"{section}.{key}")
    col = sec[key]
    if not isinstance(col, list):
        raise InputError(f"expected a list, got {short_repr(col)}", where, field=f"{section}.{key}")
    return col


def _int_column(sec: dict[str, Any], section: str, key: str, where: str) -> np.ndarray:
    """Column ``key`` of ``sec`` as int64: integers (or floats holding whole numbers) within
    the int64 range."""
    col = _column(sec, section, key, where, optional=False)
    if not col:
        return np.zeros(0, dtype=np.int64)
    try:
        arr = np.asarray(col)
    except (ValueError, OverflowError, RecursionError):
        arr = None
    if arr is not None and arr.ndim == 1 and arr.dtype == np.int64 and not _has_bool(col):
        return arr
    out = np.empty(len(col), dtype=np.int64)
    for i, x in enumerate(col):
        ok = isinstance(x, int) and not isinstance(x, bool)
        if isinstance(x, float) and math.isfinite(x) and x == int(x):
            x, ok = int(x), True
        if not ok:
            raise InputError(
                f"entry {i}: expected an integer, got {short_repr(x)}",
                where,
                field=f"{section}.{key}",
            )
        if not -_I64 <= x < _I64:
            raise InputError(
                f"entry {i}: {short_repr(x)} is beyond the int64 range",
                where,
                field=f"{section}.{key}",
            )
        out[i] = x
    return out


def _float_column(sec: dict[str, Any], section: str, key: str, where: str) -> np.ndarray:
    """Column ``key`` of ``sec`` as float64: finite numbers."""
    col = _column(sec, section, key, where, optional=False)
    try:
        arr = np.asarray(col) if not _has_bool(col) else None
    except (TypeError, ValueError, OverflowError, RecursionError):
        arr = None
    if arr is not None and arr.ndim == 1 and arr.dtype.kind in "if":
        arr = arr.astype(np.float64)
        if np.all(np.isfinite(arr)):
            return arr
    out = np.empty(len(col), dtype=np.float64)
    for i, x in enumerate(col):
        ok = isinstance(x, (int, float)) and not isinstance(x, bool)
        try:
            v = float(x) if ok else math.nan
        except OverflowError:
            v = math.inf
        if not ok or not math.isfinite(v):
            raise InputError(
                f"entry {i}: expected a finite number, got {short_repr(x)}",
                where,
                field=f"{section}.{key}",
            )
        out[i] = v
    return out


def _str_column(sec: dict[str, Any], section: str, key: str, where: str) -> list[str]:
    col = _column(sec, section, key, where, optional=True)
    for i, x in enumerate(col):
        if not isinstance(x, str):
            raise InputError(
                f"entry {i}: expected a string, got {short_repr(x)}",
                where,
                field=f"{section}.{key}",
            )
    return list(col)


def _first(mask: np.ndarray) -> int | None:
    """The index of the first True entry of ``mask``, or None."""
    hits = np.flatnonzero(mask)
    return int(hits[0]) if hits.size else None


def peak_live(sizes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[int, int]:
    """(the largest sum of ``sizes`` live at one position of ``[starts, ends)``, the first
    position where it is reached); (0, 0) without buffers."""
    if len(sizes) == 0:
        return 0, 0
    events = np.concatenate([starts, ends])
    deltas = np.concatenate([sizes, -np.asarray(sizes)])
    # At equal positions, ends (negative deltas) come before starts: intervals are half-open.
    order = np.lexsort((deltas, events))
    live = np.cumsum(deltas[order])
    at = int(np.argmax(live))
    return int(live[at]), int(events[order][at])
