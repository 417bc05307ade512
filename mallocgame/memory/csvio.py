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
from mallocgame.memory.workload import MAX_BYTES, MAX_POSITION, Workload

REQUIRED = ("id", "lower", "upper", "size")


def read_csv(
    path: str | os.PathLike[str], name: str | None = None
) -> tuple[Workload, np.ndarray | None]:
    """Read a minimalloc CSV. Returns the workload (with the trace access proxy) and the
    ``offset`` column if present (int64, -1 where empty), else None."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read: {e.strerror}", where) from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark (spreadsheets write one) is dropped
    except UnicodeDecodeError as e:
        raise InputError(
            f"not a text file: invalid UTF-8 byte 0x{raw[e.start]:02x}",
            where,
            line=raw[: e.start].count(b"\n") + 1,
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError("not a text file: it holds a NUL byte", where, line=line)
    reader = csv.reader(io.StringIO(text))
    rows = _rows(reader, where)
    try:
        _, header = next(rows)
    except StopIteration:
        raise InputError(
            "empty file: expected a header 'id,lower,upper,size[,offset]'", where, line=1
        ) from None
    header = [h.strip().lower() for h in header]
    for col in REQUIRED:
        if col not in header:
            raise InputError(
                f"header lacks column '{col}' (got {_clip(','.join(header))})",
                where,
                line=1,
                field=col,
            )
    for col in REQUIRED + ("offset",):
        if header.count(col) > 1:
            raise InputError(f"header names column '{col}' twice", where, line=1, field=col)
    idx = {c: header.index(c) for c in header}
    has_offset = "offset" in idx
    ids, lowers, uppers, sizes, offsets = [], [], [], [], []
    seen: dict[int, int] = {}
    for line, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise InputError(
                f"expected {len(header)} columns, got {len(row)} (truncated line?)",
                where,
                line=line,
            )
        vals = {col: _integer(row[idx[col]], where, line, col) for col in REQUIRED}
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
        for col in ("lower", "upper"):
            if vals[col] > MAX_POSITION:
                raise InputError(
                    f"{col} {vals[col]} is beyond the supported 2^56", where, line=line, field=col
                )
        if vals["size"] > MAX_BYTES:
            raise InputError(
                f"size {vals['size']} is beyond the supported 2^60", where, line=line, field="size"
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
                off = _integer(raw, where, line, "offset", "an integer or empty")
                if off < 0:
                    raise InputError(
                        f"offset must not be negative, got {off}", where, line=line, field="offset"
                    )
                if off > MAX_BYTES:
                    raise InputError(
                        f"offset {off} is beyond the supported 2^60",
                        where,
                        line=line,
                        field="offset",
                    )
                offsets.append(off)
    if not ids:
        raise InputError("no buffers: the file has a header but no rows", where, line=2)
    if sum(sizes) > MAX_BYTES:
        raise InputError(
            "the sizes sum to more than the supported 2^60 bytes", where, line=2, field="size"
        )
    wl = Workload.from_intervals(
        name or path.name.split(".")[0],
        ids,
        sizes,
        lowers,
        uppers,
        source={"reader": "minimalloc-csv", "path": where},
    )
    return wl, (np.asarray(offsets, dtype=np.int64) if has_offset else None)


def _rows(reader, where: str):
    """``(line, row)`` of each CSV record (``line``: where it starts); an :class:`InputError`
    for malformed CSV (an over-long field, ...)."""
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise InputError(f"malformed CSV: {e}", where, line=reader.line_num) from None
        yield line, row
        line = reader.line_num + 1


def _clip(text: str, n: int = 80) -> str:
    """``text`` quoted (so one line) and cut to ``n`` characters, for an error message."""
    r = repr(text)
    return r if len(r) <= n else r[: n - 3] + "..."


_DIGITS = frozenset("0123456789")


def _integer(raw: str, where: str, line: int, field: str, what: str = "an integer") -> int:
    """``raw`` (a CSV cell) as a decimal integer within int64."""
    s = raw.strip()
    body = s[1:] if s[:1] in "+-" else s
    if not body or not set(body) <= _DIGITS:
        raise InputError(f"expected {what}, got {_clip(raw)}", where, line=line, field=field)
    if len(body.lstrip("0")) > 19 or not -(2**63) <= (v := int(s)) < 2**63:
        raise InputError(f"{_clip(s)} is beyond the int64 range", where, line=line, field=field)
    return v


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
