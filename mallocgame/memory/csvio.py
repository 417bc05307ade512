"""minimalloc's CSV format: ``id,lower,upper,size[,offset]``.

A buffer is live on the half-open interval ``[lower, upper)``; sizes in bytes. In a solution
file, ``offset`` is the fast-memory offset, empty for a buffer left in slow memory.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from mallocgame.errors import InputError
from mallocgame.io import atomic_write_text
from mallocgame.memory.workload import Workload

REQUIRED = ("id", "lower", "upper", "size")


def read_csv(
    path: str | os.PathLike[str], name: str | None = None
) -> tuple[Workload, np.ndarray | None]:
    """Read a minimalloc CSV. Returns the workload (with the trace access proxy) and the
    ``offset`` column if present (int64, -1 where empty), else None."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", where) from None
    except UnicodeDecodeError:
        raise InputError("not a text file", where) from None
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(
            "empty file: expected a header 'id,lower,upper,size[,offset]'", where, line=1
        ) from None
    header = [h.strip().lower() for h in header]
    for col in REQUIRED:
        if col not in header:
            raise InputError(
                f"header lacks column '{col}' (got {','.join(header)})", where, line=1, field=col
            )
    idx = {c: header.index(c) for c in header}
    has_offset = "offset" in idx
    ids, lowers, uppers, sizes, offsets = [], [], [], [], []
    seen: dict[int, int] = {}
    for row in reader:
        line = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise InputError(
                f"expected {len(header)} columns, got {len(row)} (truncated line?)",
                where,
                line=line,
            )
        vals = {}
        for col in REQUIRED:
            raw = row[idx[col]].strip()
            try:
                vals[col] = int(raw)
            except ValueError:
                raise InputError(
                    f"expected an integer, got {raw!r}", where, line=line, field=col
                ) from None
        if vals["id"] in seen:
            raise InputError(
                f"duplicate id {vals['id']} (first on line {seen[vals['id']]})",
                where,
                line=line,
                field="id",
            )
        seen[vals["id"]] = line
        if vals["size"] <= 0:
            raise InputError(
                f"size must be positive, got {vals['size']}", where, line=line, field="size"
            )
        if vals["lower"] < 0:
            raise InputError(
                f"lower must not be negative, got {vals['lower']}", where, line=line, field="lower"
            )
        if vals["upper"] <= vals["lower"]:
            raise InputError(
                f"empty or inverted interval [{vals['lower']}, {vals['upper']})",
                where,
                line=line,
                field="upper",
            )
        ids.append(vals["id"])
        lowers.append(vals["lower"])
        uppers.append(vals["upper"])
        sizes.append(vals["size"])
        if has_offset:
            raw = row[idx["offset"]].strip()
            if raw == "":
                offsets.append(-1)
            else:
                try:
                    off = int(raw)
                except ValueError:
                    raise InputError(
                        f"expected an integer or empty, got {raw!r}",
                        where,
                        line=line,
                        field="offset",
                    ) from None
                if off < 0:
                    raise InputError(
                        f"offset must not be negative, got {off}", where, line=line, field="offset"
                    )
                offsets.append(off)
    if not ids:
        raise InputError("no buffers: the file has a header but no rows", where, line=2)
    wl = Workload.from_intervals(
        name or path.name.split(".")[0],
        ids,
        sizes,
        lowers,
        uppers,
        source={"reader": "minimalloc-csv", "path": where},
    )
    return wl, (np.asarray(offsets, dtype=np.int64) if has_offset else None)


def format_solution_csv(workload: Workload, offsets: np.ndarray) -> str:
    out = io.StringIO()
    out.write("id,lower,upper,size,offset\n")
    for i in range(workload.num_buffers):
        off = int(offsets[i])
        out.write(
            f"{workload.ids[i]},{workload.starts[i]},{workload.ends[i]},{workload.sizes[i]},"
            f"{'' if off < 0 else off}\n"
        )
    return out.getvalue()


def write_solution_csv(
    path: str | os.PathLike[str], workload: Workload, offsets: np.ndarray
) -> None:
    """Write ``id,lower,upper,size,offset`` (offset empty for slow memory), atomically."""
    atomic_write_text(path, format_solution_csv(workload, offsets))
