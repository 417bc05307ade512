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
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mallocgame.errors import InputError
from mallocgame.io import atomic_write_bytes

FORMAT_NAME = "mallocgame-workload"
FORMAT_VERSION = 1


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
        n = self.ids.shape[0]
        for field in ("sizes", "starts", "ends"):
            if getattr(self, field).shape != (n,):
                raise InputError(
                    f"field '{field}' has {getattr(self, field).shape[0]} entries, expected {n}",
                    where,
                )
        if len(self.names) != n:
            raise InputError(f"field 'names' has {len(self.names)} entries, expected {n}", where)
        if n:
            bad = np.flatnonzero(self.sizes <= 0)
            if bad.size:
                i = int(bad[0])
                raise InputError(
                    f"buffer {self.ids[i]} has non-positive size {self.sizes[i]}",
                    where,
                    field="size",
                )
            bad = np.flatnonzero(self.ends <= self.starts)
            if bad.size:
                i = int(bad[0])
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
            raise InputError(f"field 'access_ptr' must have {m + 1} entries", where)
        if m + 1 and (self.access_ptr[0] != 0 or np.any(np.diff(self.access_ptr) < 0)):
            raise InputError("field 'access_ptr' must start at 0 and never decrease", where)
        a = int(self.access_ptr[-1]) if m + 1 else 0
        if self.access_buffer.shape != (a,) or self.access_bytes.shape != (a,):
            raise InputError(
                f"fields 'access_buffer' and 'access_bytes' must have {a} entries", where
            )
        if a and (self.access_buffer.min() < 0 or self.access_buffer.max() >= n):
            raise InputError("field 'access_buffer' refers to a buffer index out of range", where)
        if a and np.any(self.access_bytes < 0):
            raise InputError("field 'access_bytes' has a negative entry", where)
        if m and np.any(self.instr_flops < 0):
            raise InputError("field 'instr_flops' has a negative entry", where)
        if len(self.instr_names) != m:
            raise InputError(
                f"field 'instr_names' has {len(self.instr_names)} entries, expected {m}", where
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
        if version != FORMAT_VERSION:
            raise InputError(
                f"unsupported workload format version {version!r}; "
                f"this mallocgame reads version {FORMAT_VERSION}",
                where,
                field="version",
            )
        try:
            b = d["buffers"]
            ins = d["instructions"]
            src = dict(d.get("source") or {})
            src.setdefault("path", where)
            return cls(
                name=str(d.get("name", Path(where).stem)),
                ids=np.asarray(b["id"], dtype=np.int64),
                sizes=np.asarray(b["size"], dtype=np.int64),
                starts=np.asarray(b["start"], dtype=np.int64),
                ends=np.asarray(b["end"], dtype=np.int64),
                names=[str(x) for x in b.get("name", [])],
                instr_names=[str(x) for x in ins.get("name", [])],
                instr_flops=np.asarray(ins["flops"], dtype=np.float64),
                access_ptr=np.asarray(ins["access_ptr"], dtype=np.int64),
                access_buffer=np.asarray(ins["access_buffer"], dtype=np.int64),
                access_bytes=np.asarray(ins["access_bytes"], dtype=np.float64),
                source=src,
            )
        except KeyError as e:
            raise InputError(f"missing field {e.args[0]!r}", where, field=str(e.args[0])) from None
        except (TypeError, ValueError) as e:
            raise InputError(f"malformed field: {e}", where) from None

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
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise InputError(f"cannot read: {e.strerror}", str(path)) from None
        try:
            if raw[:2] == b"\x1f\x8b":
                raw = gzip.decompress(raw)
            d = json.loads(raw)
        except (OSError, EOFError) as e:
            raise InputError(f"corrupt gzip data: {e}", str(path)) from None
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON: {e.msg}", str(path), line=e.lineno) from None
        return cls.from_dict(d, where=str(path))


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
