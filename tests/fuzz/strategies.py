"""Hypothesis strategies that generate fuzz cases (:class:`~tests.fuzz.harness.Case`) for every
input path: minimalloc CSV text, workload files, XLA dump folders, rank configs and the native
entry points. Each starts from a valid input and mutates it (or builds a broken one directly).

Imported by ``tests/fuzz/test_*.py`` and by ``benchmarks/fuzz_inputs.py`` (no pytest here).
XLA cases mutate real dumps: :func:`base_dumps` reads the checked-in one and, when JAX is
installed, compiles a small loop program once (cached in the temp folder).
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st

from tests.fuzz.harness import Case

REPO = Path(__file__).resolve().parents[2]
CHECKED_IN_DUMP = REPO / "tests" / "data" / "xla" / "matmul_tanh"

# ----------------------------------------------------------------------------- interesting values
I64_MAX = 2**63 - 1
#: integer-ish text tokens: valid, edge, overflowing, and not integers at all
INT_TOKENS = [
    "0", "1", "-1", "7", "4096", "-4096", "1152921504606846976", "1152921504606846977",
    "4611686018427387904", str(I64_MAX), str(I64_MAX + 1), str(-(2**63)), str(-(2**63) - 1),
    str(2**64), "1" * 30, "9" * 5000, "1e3", "1.5", "0.0", "-0", "+5", "0x10", "1_000", "٣",
    "nan", "NaN", "inf", "-inf", "Infinity", "", " ", "abc", "null", "true", "\x00", "'1'",
    '"1"', "1,2", "\u200b1", "1\t", "１",
]  # fmt: skip
#: JSON values of every type and edge
JSON_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 3, 1.5, -0.5, 2**31, 2**53 + 1, 2**60, 2**60 + 1, 2**62, I64_MAX,
    I64_MAX + 1, -(2**63) - 1, 2**64, 10**30, 1e308, float("nan"), float("inf"), float("-inf"),
    "", "12", "abc", "a\nb", [], [1], [[1, 2]], [None], ["x"], [1.5], [float("nan")], {},
    {"a": 1}, {"a\nb": 2},
]  # fmt: skip
INT_SCALARS: list[Any] = [
    0, 1, -1, 2, 7, 64, 1025, 2**31, 2**60, 2**60 + 1, 2**62, I64_MAX, I64_MAX + 1, -(2**63),
    -(2**63) - 1, 2**100, 1.5, 3.0, float("nan"), float("inf"), -1e300, "8", None, True,
    np.int64(5), np.uint64(2**64 - 1), np.float32(2.5), np.int8(-3), [1], np.array([4]),
]  # fmt: skip
FLOAT_SCALARS: list[Any] = [
    0.0, -0.0, -1.0, 1.0, 1e-300, 5e-324, 1e308, float("nan"), float("inf"), float("-inf"),
    "x", None, True, 0, 10**400, np.float32("nan"), np.float64(2e9), [1.0],
]  # fmt: skip
TEXT_GARBAGE = ["\x00", "\ufeff", "\ufffd", "é", "\r", "\t", "{", "}", "(", ")", "[", "]", ",",
                ":", "%", "=", "<", ">", "\\", '"', "'", "/*", "*/", "ROOT ", "ENTRY ",
                "value: <", "allocation 0: size 4:", " " * 3]  # fmt: skip


def _tokens() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(INT_TOKENS),
        st.integers(-(2**70), 2**70).map(str),
        st.text(max_size=6),
    )


# ----------------------------------------------------------------------------- text mutations
_NUM_RE = re.compile(r"-?\d+")
_NAME_RE = re.compile(r"[A-Za-z_][\w.\-]*")
_INNER_NUM_RE = re.compile(r"(?:[{\[,=:<-]|size=|offset=|index=)\s*(\d+)")


@st.composite
def mutate_text(draw, text: str, max_mutations: int = 3) -> str:
    """``text`` with 1..``max_mutations`` edits: lines deleted, duplicated, swapped or cut,
    numbers and names replaced, garbage inserted, truncation, line-ending changes."""
    for _ in range(draw(st.integers(1, max_mutations))):
        lines = text.split("\n")
        kind = draw(
            st.sampled_from(
                [
                    "number", "number", "number", "inner_number", "inner_number", "name",
                    "name", "delete_line", "dup_line",
                    "swap_lines", "truncate", "truncate_lines", "insert", "flip", "crlf", "cr",
                    "indent", "empty", "blank_line",
                ]
            )
        )  # fmt: skip
        if kind in ("number", "inner_number"):
            # inner_number: a number in {...}, [...] or after '=' / ':' (shape dims, tuple
            # indices, attributes, live ranges), mostly replaced by another small number
            regex = _NUM_RE if kind == "number" else _INNER_NUM_RE
            nums = list(regex.finditer(text))
            if nums:
                m = nums[draw(st.integers(0, len(nums) - 1))]
                a, b = m.span(m.lastindex or 0)
                new = draw(st.one_of(st.integers(0, 12).map(str), _tokens()))
                text = text[:a] + new + text[b:]
        elif kind == "name":
            names = list(_NAME_RE.finditer(text))
            if names:
                m = names[draw(st.integers(0, len(names) - 1))]
                other = names[draw(st.integers(0, len(names) - 1))].group(0)
                new = draw(st.sampled_from([other, other + "x", "", "zz.9", m.group(0)[:-1]]))
                text = text[: m.start()] + new + text[m.end() :]
        elif kind == "delete_line" and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
        elif kind == "dup_line" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines.insert(draw(st.integers(0, len(lines))), lines[i])
            text = "\n".join(lines)
        elif kind == "swap_lines" and len(lines) > 1:
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
        elif kind == "truncate":
            text = text[: draw(st.integers(0, len(text)))]
        elif kind == "truncate_lines":
            text = "\n".join(lines[: draw(st.integers(0, len(lines)))])
        elif kind == "insert":
            at = draw(st.integers(0, len(text)))
            ins = draw(st.one_of(st.sampled_from(TEXT_GARBAGE), st.text(max_size=8)))
            text = text[:at] + ins + text[at:]
        elif kind == "flip" and text:
            at = draw(st.integers(0, len(text) - 1))
            text = text[:at] + draw(st.characters()) + text[at + 1 :]
        elif kind == "crlf":
            text = text.replace("\n", "\r\n")
        elif kind == "cr":
            text = text.replace("\n", "\r")
        elif kind == "indent" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = draw(st.sampled_from(["", " ", "  ", "\t"])) + lines[i].strip()
            text = "\n".join(lines)
        elif kind == "empty":
            text = ""
        elif kind == "blank_line":
            lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", " ", "\t"])))
            text = "\n".join(lines)
    return text


@st.composite
def encode(draw, text: str, plain: int = 8) -> bytes:
    """``text`` as bytes: mostly UTF-8 (``plain`` in ``plain + 6``), sometimes with a BOM,
    UTF-16, Latin-1, a NUL or raw garbage."""
    kind = draw(
        st.sampled_from(["utf8"] * plain + ["bom", "utf16", "latin1", "nul", "garbage", "binary"])
    )
    if kind == "bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8", "surrogatepass")
    if kind == "utf16":
        return text.encode("utf-16", "surrogatepass")
    if kind == "latin1":
        return text.encode("latin-1", "replace")
    data = text.encode("utf-8", "surrogatepass")
    if kind == "nul":
        at = draw(st.integers(0, len(data)))
        return data[:at] + b"\x00" + data[at:]
    if kind == "garbage":
        at = draw(st.integers(0, len(data)))
        return data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    if kind == "binary":
        return draw(st.binary(max_size=64))
    return data


# ----------------------------------------------------------------------------- JSON mutations
def _json_values() -> st.SearchStrategy[Any]:
    """One of :data:`JSON_VALUES`, copied (the edits below mutate what they insert)."""
    return st.sampled_from(JSON_VALUES).map(copy.deepcopy)


def _paths(obj: Any, prefix: tuple = (), depth: int = 0) -> list[tuple]:
    out = [prefix]
    if depth > 4:
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            out += _paths(v, prefix + (k,), depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:6]):
            out += _paths(v, prefix + (i,), depth + 1)
    return out


def _get(obj: Any, path: tuple) -> Any:
    for k in path:
        obj = obj[k]
    return obj


@st.composite
def mutate_json(draw, obj: Any, max_mutations: int = 3) -> Any:
    """``obj`` (a JSON value) with 1..``max_mutations`` structural edits: a key deleted or
    added, a value replaced by one of another type or an edge value, a list lengthened,
    shortened, emptied or nested."""
    obj = copy.deepcopy(obj)
    for _ in range(draw(st.integers(1, max_mutations))):
        paths = _paths(obj)
        path = draw(st.sampled_from(paths))
        kind = draw(st.sampled_from(["replace"] * 4 + ["delete", "add_key", "list_len", "wrap"]))
        if not path:
            if kind == "replace":
                obj = draw(_json_values())
            continue
        parent, key = _get(obj, path[:-1]), path[-1]
        value = parent[key]
        if kind == "replace":
            parent[key] = draw(_json_values())
        elif kind == "delete":
            del parent[key]
        elif kind == "add_key" and isinstance(value, dict):
            key = draw(st.sampled_from(["extra", "a\nb", "", "r_qk", "id"]))
            value[key] = draw(_json_values())
        elif kind == "list_len" and isinstance(value, list):
            how = draw(st.sampled_from(["append", "pop", "empty", "double"]))
            if how == "append":
                value.append(value[-1] if value else draw(_json_values()))
            elif how == "pop" and value:
                value.pop(draw(st.integers(0, len(value) - 1)))
            elif how == "empty":
                value.clear()
            else:
                value.extend(copy.deepcopy(value))
        elif kind == "wrap":
            parent[key] = [value]
    return obj


def _dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, allow_nan=True)
    except (TypeError, ValueError):
        return "{}"


# ----------------------------------------------------------------------------- CSV
@st.composite
def valid_csv_text(draw) -> str:
    n = draw(st.integers(1, 10))
    cols = ["id", "lower", "upper", "size"]
    if draw(st.booleans()):
        cols.append("offset")
    if draw(st.integers(0, 4)) == 0:
        cols.append("note")
    if draw(st.booleans()):
        cols = draw(st.permutations(cols))
    header = ",".join(c.upper() if draw(st.integers(0, 9)) == 0 else c for c in cols)
    ids = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n, unique=True))
    rows = []
    for i in range(n):
        lo = draw(st.integers(0, 30))
        v = {
            "id": ids[i],
            "lower": lo,
            "upper": lo + draw(st.integers(1, 12)),
            "size": draw(st.integers(1, 8192)),
            "offset": draw(st.sampled_from(["", "0", "64", "4096", "128"])),
            "note": draw(st.sampled_from(["x", "", '"a,b"'])),
        }
        rows.append(",".join(str(v[c]) for c in cols))
    return header + "\n" + "\n".join(rows) + draw(st.sampled_from(["\n", "", "\n\n"]))


@st.composite
def csv_cells(draw, text: str) -> str:
    """Replace 1..3 cells of a CSV by fuzz tokens, or add or drop a cell."""
    lines = text.split("\n")
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(lines) - 1))
        cells = lines[i].split(",")
        j = draw(st.integers(0, len(cells) - 1))
        how = draw(st.sampled_from(["token"] * 5 + ["drop", "add", "swap", "quote"]))
        if how == "token":
            cells[j] = draw(_tokens())
        elif how == "drop" and len(cells) > 1:
            del cells[j]
        elif how == "add":
            cells.insert(j, draw(_tokens()))
        elif how == "swap" and len(cells) > 1:
            k = draw(st.integers(0, len(cells) - 1))
            cells[j], cells[k] = cells[k], cells[j]
        elif how == "quote":
            cells[j] = '"' + cells[j]
        lines[i] = ",".join(cells)
    return "\n".join(lines)


@st.composite
def csv_cases(draw) -> Case:
    """A minimalloc CSV file: valid, with fuzzed cells, or with text mutations."""
    text = draw(valid_csv_text())
    how = draw(st.sampled_from(["valid", "cells", "cells", "text", "both", "dup_ids", "huge"]))
    if how in ("cells", "both"):
        text = draw(csv_cells(text))
    if how in ("text", "both"):
        text = draw(mutate_text(text))
    if how == "dup_ids":
        lines = text.rstrip("\n").split("\n")
        lines.append(lines[-1])
        text = "\n".join(lines)
    if how == "huge":
        n = draw(st.integers(1, 4))
        big = draw(st.sampled_from([2**60, 2**62, I64_MAX, 2**61 + 3]))
        text = "id,lower,upper,size\n" + "".join(
            f"{i},{draw(st.sampled_from([0, big - 2]))},{big - 1},{big}\n" for i in range(n)
        )
    name = draw(st.sampled_from(["t.csv", "A.1048576.csv", "trace.CSV", "x.0.csv"]))
    return Case("csv", "read", {"data": draw(encode(text)), "name": name})


# ----------------------------------------------------------------------------- workloads
@st.composite
def valid_workload_dict(draw) -> dict[str, Any]:
    from mallocgame.memory.workload import Workload

    n = draw(st.integers(1, 8))
    m = draw(st.integers(1, 8))
    ids = draw(st.lists(st.integers(-5, 10**9), min_size=n, max_size=n, unique=True))
    sizes = draw(st.lists(st.integers(1, 1 << 20), min_size=n, max_size=n))
    starts, ends = [], []
    for _ in range(n):
        s = draw(st.integers(0, m - 1))
        starts.append(s)
        ends.append(draw(st.integers(s + 1, m)))
    if draw(st.booleans()):
        wl = Workload.from_intervals("w", ids, sizes, starts, ends)
    else:
        ptr, buf, nb = [0], [], []
        for i in range(m):
            live = [b for b in range(n) if starts[b] <= i < ends[b]]
            touched = [b for b in live if draw(st.booleans())]
            buf += touched
            nb += [float(draw(st.integers(0, sizes[b]))) for b in touched]
            ptr.append(len(buf))
        flops = draw(st.lists(st.floats(0, 1e12), min_size=m, max_size=m))
        wl = Workload("w", ids, sizes, starts, ends, flops, ptr, buf, nb)
    return wl.to_dict()


@st.composite
def workload_cases(draw) -> Case:
    """A workload file: valid, with JSON fields mutated, with its text mutated, gzipped,
    truncated or corrupted."""
    d = draw(valid_workload_dict())
    how = draw(st.sampled_from(["valid", "json", "json", "json", "text", "deep", "bigint"]))
    if how == "json":
        text = _dumps(draw(mutate_json(d)))
    elif how == "text":
        text = draw(mutate_text(_dumps(d)))
    elif how == "deep":
        k = draw(st.sampled_from([10, 1000, 100_000]))
        text = '{"format": "mallocgame-workload", "version": 1, "buffers": ' + "[" * k + "]" * k
        text += "}"
    elif how == "bigint":
        text = _dumps(d).replace('"version": 1', '"version": ' + "1" * 5000, 1)
    else:
        text = _dumps(d)
    data = draw(encode(text)) if how != "valid" else text.encode()
    gz = draw(st.sampled_from(["none", "none", "gzip", "gzip_cut", "gzip_flip"]))
    if gz != "none":
        data = gzip.compress(data, mtime=0)
        if gz == "gzip_cut":
            data = data[: draw(st.integers(0, len(data) - 1))]
        elif gz == "gzip_flip" and len(data) > 10:
            at = draw(st.integers(10, len(data) - 1))
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    name = draw(st.sampled_from(["w.workload.json", "w.workload.json.gz", "w.json"]))
    return Case("workload", "load", {"data": data, "name": name})


# ----------------------------------------------------------------------------- XLA dumps
_DUMP_CACHE: dict[str, dict[str, dict[str, bytes]]] = {}


def _read_folder(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _compiled_dump() -> dict[str, bytes] | None:
    """A small while-loop program (fori_loop of 3 trips over a tuple carry with a
    dynamic-update-slice), compiled once with JAX and cached in the temp folder."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    from mallocgame.memory import xla

    folder = Path(tempfile.gettempdir()) / f"mallocgame-fuzz-dump-{jax.__version__}-{os.getuid()}"
    marker = folder / "DONE"
    if not marker.exists():

        def fn(x, v):
            def body(i, c):
                a, b = c
                a = jax.lax.dynamic_update_slice(a, jnp.tanh(b[:2]), (i % 3, 0))
                return a @ b, b + 1.0

            return jax.lax.fori_loop(0, 3, body, (x, v))

        sds = jax.ShapeDtypeStruct((8, 8), jnp.float32)
        folder.mkdir(parents=True, exist_ok=True)
        xla.compile_to_dump(jax.jit(fn), (sds, sds), folder)
        marker.write_text("ok")
    files = {k: v for k, v in _read_folder(folder).items() if "after_optimizations" in k}
    return files or None


_METADATA_RE = re.compile(rb", metadata=\{[^}]*\}")


def _without_metadata(files: dict[str, bytes]) -> dict[str, bytes]:
    """The dump with the HLO's ``metadata={...}`` attributes (which the reader ignores) cut,
    so that number and name mutations land on what the reader does use more often."""
    return {
        k: _METADATA_RE.sub(b"", v) if k.endswith("after_optimizations.txt") else v
        for k, v in files.items()
    }


def base_dumps(compile_jax: bool = True) -> dict[str, dict[str, bytes]]:
    """Real dumps to mutate, by name: the checked-in ``matmul_tanh`` and (with JAX) ``fori``,
    each also without its HLO metadata (``-bare``)."""
    key = f"jax={compile_jax}"
    if key not in _DUMP_CACHE:
        out = {"matmul_tanh": _read_folder(CHECKED_IN_DUMP)}
        if compile_jax:
            fori = _compiled_dump()
            if fori:
                out["fori"] = fori
        for name in list(out):
            out[f"{name}-bare"] = _without_metadata(out[name])
        _DUMP_CACHE[key] = out
    return _DUMP_CACHE[key]


_SHAPE_RE = re.compile(r"\b([a-z][a-z0-9]*)\[([\d,]*)\]")


@st.composite
def mutate_hlo(draw, text: str) -> str:
    """HLO-aware edits: an array shape's rank or dims changed, an attribute dropped, two
    operands of an instruction swapped, an instruction's operand renamed to another's."""
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(["shape", "shape", "attr", "operands", "rename"]))
        if kind == "shape":
            shapes = list(_SHAPE_RE.finditer(text))
            if shapes:
                m = shapes[draw(st.integers(0, len(shapes) - 1))]
                dims = [d for d in m.group(2).split(",") if d]
                how = draw(st.sampled_from(["drop", "add", "scalar", "dtype", "zero"]))
                if how == "drop" and dims:
                    dims.pop(draw(st.integers(0, len(dims) - 1)))
                elif how == "add":
                    dims.insert(0, str(draw(st.integers(0, 9))))
                elif how == "scalar":
                    dims = []
                elif how == "zero" and dims:
                    dims[draw(st.integers(0, len(dims) - 1))] = "0"
                dtype = m.group(1)
                if how == "dtype":
                    dtype = draw(st.sampled_from(["pred", "s4", "f8e4m3fn", "c128", "token", "u1"]))
                text = text[: m.start()] + f"{dtype}[{','.join(dims)}]" + text[m.end() :]
        elif kind == "attr":
            attrs = list(re.finditer(r", [a-z_]+=(\{[^}]*\}|[^,\n]*)", text))
            if attrs:
                m = attrs[draw(st.integers(0, len(attrs) - 1))]
                text = text[: m.start()] + text[m.end() :]
        elif kind in ("operands", "rename"):
            calls_ = list(re.finditer(r"\(([%\w.\-]+(?:, [%\w.\-]+)+)\)", text))
            if calls_:
                m = calls_[draw(st.integers(0, len(calls_) - 1))]
                ops = m.group(1).split(", ")
                if kind == "operands":
                    ops = draw(st.permutations(ops))
                else:
                    ops[draw(st.integers(0, len(ops) - 1))] = draw(st.sampled_from(ops))
                text = text[: m.start(1)] + ", ".join(ops) + text[m.end(1) :]
    return text


def _module_files(files: dict[str, bytes]) -> list[str]:
    return sorted(k for k in files if k.startswith("module_") and k.endswith(".txt"))


@st.composite
def xla_cases(draw, bases: dict[str, dict[str, bytes]]) -> Case:
    """An XLA dump folder: a real one with 1..3 of its four files' texts mutated, a file
    removed, emptied or renamed, or another module beside it."""
    name = draw(st.sampled_from(sorted(bases)))
    files = dict(bases[name])
    main = [k for k in _module_files(files) if "after_optimizations" in k]
    for _ in range(draw(st.integers(0, 3))):
        how = draw(
            st.sampled_from(["text"] * 6 + ["hlo"] * 4 + ["remove", "empty", "rename", "twin"])
        )
        targets = _module_files(files)
        if not targets:
            break
        f = draw(st.sampled_from(targets))
        if how == "text":
            text = files[f].decode("utf-8", "replace")
            files[f] = draw(encode(draw(mutate_text(text)), plain=60))
        elif how == "hlo":
            hlo = [k for k in targets if k.endswith("after_optimizations.txt")]
            if hlo:
                text = files[hlo[0]].decode("utf-8", "replace")
                files[hlo[0]] = draw(mutate_hlo(text)).encode()
        elif how == "remove":
            del files[f]
        elif how == "empty":
            files[f] = b""
        elif how == "rename":
            files[f.replace("module_0", "module_9", 1)] = files.pop(f)
        elif how == "twin":
            for k in main:
                if k in files:
                    files[k.replace("module_", "module_1", 1)] = files[k]
    module = draw(st.sampled_from([None] * 12 + ["jit_f", "module_0000", "nothing", ""]))
    return Case("xla", "read", {"files": files, "module": module})


# ----------------------------------------------------------------------------- rank configs
@st.composite
def valid_rank_dict(draw) -> dict[str, Any]:
    from mallocgame.rank.config import MODEL_SHAPES

    model = draw(st.sampled_from(sorted(MODEL_SHAPES)))
    sh = MODEL_SHAPES[model]
    layers = []
    grouped = model == "smollm2" and draw(st.booleans())
    method = draw(st.sampled_from(["whitened", "pca", "whitened+heads", "whitened+vheads"]))
    for _ in range(sh.n_layers):
        layer: dict[str, Any] = {
            "r_qk": draw(st.integers(1, sh.head_dim)),
            "r_v": draw(st.integers(1, sh.head_dim)),
        }
        if grouped and draw(st.integers(0, 3)) == 0:
            r = layer["r_v"]
            g = [r] * sh.n_kv_heads
            d = draw(st.integers(0, min(r, sh.head_dim - r)))
            g[0] -= d
            g[1] += d
            if g != [r] * sh.n_kv_heads:
                layer["v_groups"] = g
        layers.append(layer)
    d = {
        "format": "mallocgame-ranks",
        "version": 2 if any("v_groups" in x for x in layers) else 1,
        "model": model,
        "model_hash": draw(st.sampled_from(["b179c9523d0e6a0f", "0", "abc123"])),
        "seq_len": draw(st.sampled_from([1, 128, 512, 4096])),
        "method": method,
        "budget": draw(st.sampled_from([None, {"fraction": 0.5}, {"flops": 1e9}])),
        "layers": layers,
        "meta": {"player": "fuzz"},
    }
    return d


@st.composite
def rank_cases(draw) -> Case:
    """A rank config file: valid, with JSON fields mutated or its text mutated; sometimes
    loaded with an expected model and hash."""
    d = draw(valid_rank_dict())
    how = draw(st.sampled_from(["valid", "json", "json", "json", "text", "deep", "bigint"]))
    if how == "json":
        text = _dumps(draw(mutate_json(d)))
    elif how == "text":
        text = draw(mutate_text(json.dumps(d, indent=1)))
    elif how == "deep":
        text = "[" * 100_000 + "]" * 100_000
    elif how == "bigint":
        text = json.dumps(d).replace('"seq_len": ', '"seq_len": ' + "7" * 5000, 1)
    else:
        text = json.dumps(d, indent=1)
    data = draw(encode(text)) if how != "valid" else text.encode()
    expect = draw(st.sampled_from([None, None, None, "minilm", "smollm2"]))
    payload: dict[str, Any] = {"data": data, "name": "ranks.json"}
    if expect is not None:
        payload["model"] = expect
        payload["model_hash"] = draw(st.sampled_from([None, "b179c9523d0e6a0f"]))
    return Case("rank", "load", payload)


# ----------------------------------------------------------------------------- native arrays
class RaisingArray:
    """An object whose conversion to an array fails with a Python error (picklable)."""

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise RuntimeError("no array here")


def _bad_arrays(base: np.ndarray, integer: bool) -> st.SearchStrategy[Any]:
    """Arrays (and non-arrays) that stand where ``base`` belongs."""
    n = base.shape[0]
    huge = [I64_MAX, -(2**63), 2**62, 2**60 + 1, -1]
    opts: list[Any] = [
        base[:-1] if n else base,
        np.concatenate([base, base[:1]]) if n else np.zeros(1, base.dtype),
        base.reshape(1, -1),
        base.reshape(-1, 1),
        np.asarray(base[0] if n else 0),
        np.zeros(0, base.dtype),
        base.astype(np.float64),
        base.astype(np.float64) + 0.5,
        np.full(n, np.nan),
        np.full(n, np.inf),
        np.full(n, -np.inf),
        base.astype(np.float32),
        base.astype(np.uint64) if integer else base,
        np.full(n, 2**64 - 1, dtype=np.uint64),
        base.astype(np.int8),
        base.astype(np.int32),
        base.astype(bool),
        base.astype(np.complex128),
        base.astype(object),
        np.array([2**70] * n, dtype=object),
        base.astype(str),
        np.repeat(base, 2)[::2],
        base.tolist(),
        None,
        "abc",
        3,
        [[1, 2], [3]],
        np.full(n, 1e19),
        np.full(n, 4.0e18),
        RaisingArray(),
        np.ma.array(base, mask=np.ones(n, bool)),
        base.astype(base.dtype.newbyteorder(">")),
    ]
    for h in huge:
        if n:
            a = base.astype(np.int64).copy()
            a[-1] = h
            opts.append(a)
            b = base.astype(np.float64).copy()
            b[0] = float(h)
            opts.append(b)
    opts.append(-np.abs(base.astype(np.int64)) - 1)
    return st.sampled_from(opts)


def _ro(a: np.ndarray) -> np.ndarray:
    a = a.copy()
    a.setflags(write=False)
    return a


@st.composite
def small_instance(draw, max_buffers: int = 10) -> dict[str, Any]:
    """Valid keyword arguments of ``_native.Instance``."""
    n = draw(st.integers(1, max_buffers))
    m = draw(st.integers(1, 10))
    sizes = np.array(draw(st.lists(st.integers(1, 4096), min_size=n, max_size=n)), np.int64)
    starts = np.array(draw(st.lists(st.integers(0, m - 1), min_size=n, max_size=n)), np.int64)
    lens = np.array(draw(st.lists(st.integers(1, m), min_size=n, max_size=n)), np.int64)
    ends = np.minimum(starts + lens, m)
    ptr, buf, nb = [0], [], []
    for i in range(m):
        live = [b for b in range(n) if starts[b] <= i < ends[b]]
        k = draw(st.integers(0, len(live)))
        buf += live[:k]
        nb += [float(sizes[b]) for b in live[:k]]
        ptr.append(len(buf))
    order = np.array(draw(st.permutations(list(range(n)))), np.int64)
    return {
        "sizes": sizes,
        "starts": starts,
        "ends": ends,
        "instr_flops": np.array(draw(st.lists(st.floats(0, 1e9), min_size=m, max_size=m))),
        "access_ptr": np.array(ptr, np.int64),
        "access_buffer": np.array(buf, np.int64),
        "access_bytes": np.array(nb, np.float64),
        "capacity": int(draw(st.integers(1, int(sizes.sum()) + 1))),
        "alignment": draw(st.sampled_from([1, 1, 8, 64, 4096])),
        "fast_bandwidth": 1e12,
        "slow_bandwidth": 1e11,
        "peak_flops": 1e14,
        "order": order,
        "num_candidates": draw(st.integers(1, 8)),
        "objective": draw(st.sampled_from(["time", "fit-all"])),
        "grid": draw(st.sampled_from([1, 4, 16])),
    }


_INT_ARRAYS = ("sizes", "starts", "ends", "access_ptr", "access_buffer", "order")
_FLOAT_ARRAYS = ("instr_flops", "access_bytes")
_INT_ARGS = ("capacity", "alignment", "num_candidates", "grid")
_FLOAT_ARGS = ("fast_bandwidth", "slow_bandwidth", "peak_flops")


@st.composite
def mutate_instance(draw, valid: dict[str, Any]) -> dict[str, Any]:
    """``valid`` (keyword arguments of ``_native.Instance``) with 0..3 arguments replaced by
    bad ones (each made from the valid value)."""
    kw = dict(valid)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(
            st.sampled_from(_INT_ARRAYS + _FLOAT_ARRAYS + _INT_ARGS + _FLOAT_ARGS + ("objective",))
        )  # noqa: E501
        if key in _INT_ARRAYS:
            how = draw(st.sampled_from(["array"] * 3 + ["value", "permute"]))
            if how == "array":
                kw[key] = draw(_bad_arrays(valid[key], True))
            elif how == "value" and valid[key].size:
                a = valid[key].copy()
                a[draw(st.integers(0, a.size - 1))] = draw(
                    st.sampled_from([-1, 0, -(2**63), I64_MAX, 2**60, 2**31, a.size, 10**12])
                )
                kw[key] = a
            elif how == "permute":
                kw[key] = valid[key][::-1].copy()
        elif key in _FLOAT_ARRAYS:
            kw[key] = draw(_bad_arrays(valid[key], False))
        elif key in _INT_ARGS:
            kw[key] = draw(st.sampled_from(INT_SCALARS))
        elif key in _FLOAT_ARGS:
            kw[key] = draw(st.sampled_from(FLOAT_SCALARS))
        else:
            kw[key] = draw(st.sampled_from(["time", "fit-all", "", "TIME", "fit_all", "\x00", 3]))
    return kw


def _actions() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.integers(-3, 12),
        st.sampled_from([I64_MAX, -(2**63), 2**31, 2**63, 2**70, -(2**70), 1.5, np.int64(1)]),
    )


@st.composite
def game_ops(draw, n: int) -> list[tuple]:
    """A sequence of calls on a Game of ``n`` buffers, arguments legal or not."""
    ops: list[tuple] = []
    arr = st.one_of(
        st.lists(st.integers(-3, 9), max_size=n + 2).map(lambda x: np.array(x, np.int64)),
        st.sampled_from(
            [np.array([2**62]), np.array([1.5]), np.array([[0]]), np.array(["a"]), None,
             np.full(n, -1), np.full(n, -2), np.full(n, 0), np.array([np.nan]),
             np.arange(n) * 4096, np.full(n, I64_MAX), np.full(n, -(2**63))]
        ),
    )  # fmt: skip
    for _ in range(draw(st.integers(0, 8))):
        name = draw(
            st.sampled_from(
                ["step"] * 4 + ["undo", "replay", "set_offsets", "observe", "is_legal",
                 "candidates", "legal_mask", "conflicts", "clone", "play_greedy",
                 "play_best_fit", "reset", "fast_reward", "time", "offsets"]
            )
        )  # fmt: skip
        if name in ("step", "is_legal"):
            ops.append((name, draw(_actions())))
        elif name in ("replay", "set_offsets"):
            ops.append((name, draw(arr)))
        elif name == "observe":
            ops.append(
                (name, draw(st.sampled_from([None, np.zeros(3, np.float32), np.zeros(10**4),
                 np.zeros((2, 2), np.float32), _ro(np.zeros(0, np.float32)), "x"])))
            )  # fmt: skip
        elif name == "conflicts":
            ops.append((name, draw(st.sampled_from([-1, 0, n - 1, n, 2**40]))))
        else:
            ops.append((name,))
    return ops


@st.composite
def native_instance_cases(draw) -> Case:
    valid = draw(small_instance())
    kw = draw(mutate_instance(valid)) if draw(st.integers(0, 2)) else valid
    return Case("native", "instance", {"kwargs": kw, "ops": draw(game_ops(len(valid["order"])))})


def _batch_array(correct: np.ndarray) -> st.SearchStrategy[Any]:
    opts = [
        correct.astype(np.float64),
        correct.astype(np.int32),
        correct[:-1] if correct.shape[0] else correct,
        correct.reshape(-1) if correct.ndim > 1 else correct.reshape(1, -1),
        np.asfortranarray(np.stack([correct, correct], -1))[..., 0],
        _ro(correct),
        np.zeros((0,) + correct.shape[1:], correct.dtype),
        correct.astype(bool),
        correct.astype(np.float32),
    ]
    return st.sampled_from(opts)


@st.composite
def native_batched_cases(draw) -> Case:
    kw = draw(small_instance(max_buffers=6))
    k = kw["num_candidates"]
    n = draw(st.integers(1, 3))
    obs = int(kw["grid"]) ** 2 + int(kw["grid"]) + 11 + 4 * k + 6
    calls: list[tuple] = []
    for _ in range(draw(st.integers(1, 6))):
        name = draw(st.sampled_from(["step", "step", "observe", "reset", "game", "reset_done"]))
        if name in ("step", "observe"):
            arrays: dict[str, Any] = {}
            correct = {
                "actions": np.zeros(n, np.int64),
                "obs": np.zeros((n, obs), np.float32),
                "mask": np.zeros((n, k + 1), bool),
                "rewards": np.zeros(n, np.float32),
                "done": np.zeros(n, bool),
            }
            for key in draw(st.lists(st.sampled_from(sorted(correct)), max_size=2)):
                arrays[key] = draw(_batch_array(correct[key]))
            if "actions" not in arrays and draw(st.booleans()):
                arrays["actions"] = np.array(
                    draw(st.lists(st.integers(-2, k + 2), min_size=n, max_size=n)), np.int64
                )
            calls.append((name, arrays))
        elif name == "reset":
            calls.append((name, draw(st.sampled_from([None, [0], [-1], [n], [2**40], [0.5],
                                                       np.array([[0]]), "a"]))))  # fmt: skip
        elif name == "game":
            calls.append((name, draw(st.sampled_from([0, -1, n, -n - 1, 2**40]))))
        else:
            calls.append((name,))
    payload = {"kwargs": kw, "num_games": n, "calls": calls}
    extra = draw(st.sampled_from(["none"] * 6 + ["other", "repeat", "empty"]))
    if extra == "other":
        payload["other_candidates"] = k % 8 + 1
    elif extra == "repeat":
        payload["repeat"] = True
    elif extra == "empty":
        payload["num_games"] = 0
    return Case("native", "batched", payload)


@st.composite
def native_pack_cases(draw) -> Case:
    n = draw(st.integers(0, 9))
    sizes = np.array(draw(st.lists(st.integers(1, 64), min_size=n, max_size=n)), np.int64)
    starts = np.array(draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)), np.int64)
    ends = starts + np.array(draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)), np.int64)
    args: list[Any] = [sizes, starts, ends, int(draw(st.integers(1, 256))), 1]
    kw: dict[str, Any] = {"time_limit": 1.0, "node_limit": 20_000}
    for _ in range(draw(st.integers(0, 3))):
        what = draw(st.sampled_from(["array", "capacity", "alignment", "limits", "priority",
                                     "heuristics", "flags"]))  # fmt: skip
        if what == "array" and n:
            i = draw(st.integers(0, 2))
            args[i] = draw(_bad_arrays((sizes, starts, ends)[i], True))
        elif what in ("capacity", "alignment"):
            args[3 if what == "capacity" else 4] = draw(st.sampled_from(INT_SCALARS))
        elif what == "limits":
            key = draw(st.sampled_from(["time_limit", "node_limit"]))
            vals = FLOAT_SCALARS if key == "time_limit" else INT_SCALARS
            v = draw(st.sampled_from(vals))
            # keep the search short: a finite time limit at most 1 s, a node limit at most 20000
            if key == "time_limit" and type(v) in (int, float) and 1.0 < v < 2**1000:
                v = 1.0
            if key == "node_limit" and type(v) is int and v > 20_000:
                v = 20_000
            kw[key] = v
        elif what == "priority":
            kw["priority"] = draw(
                st.sampled_from([np.zeros(n), np.full(n, np.nan), np.zeros(n + 1), "x",
                                 np.full(n, np.inf), np.arange(n, dtype=np.int64)])
            )  # fmt: skip
        elif what == "heuristics":
            kw["heuristics"] = draw(
                st.sampled_from([[], ["WAT"], "P", ["Q"], ["W" * 40], [1], ("A",) * 65, b"WAT",
                                 {"WAT": 1}, ["PWA"], [""]])
            )  # fmt: skip
        else:
            kw[draw(st.sampled_from(["canonical_only", "section_inference", "hatless_pruning",
                                     "dynamic_ordering"]))] = draw(
                st.sampled_from([False, True, 0, 1, None, "yes"])
            )  # fmt: skip
    # Keep the search bounded whatever was drawn.
    if kw.get("node_limit") is None and kw.get("time_limit") in (None, float("inf")):
        kw["node_limit"] = 20_000
    return Case("native", "pack", {"args": args, "kwargs": kw})


@st.composite
def native_rank_cases(draw) -> Case:
    P = draw(st.integers(1, 5))
    C = draw(st.integers(1, 4))
    F = draw(st.integers(0, 3))
    K = draw(st.integers(0, 2))
    cost = np.array(draw(st.lists(st.floats(0, 100), min_size=P * C, max_size=P * C))).reshape(P, C)
    kw: dict[str, Any] = {
        "cost": cost,
        "features": np.zeros((P, C, F), np.float32),
        "part_features": np.zeros((P, K), np.float32),
        "budget": float(cost.max(axis=1).sum()) * draw(st.sampled_from([0.5, 1.0, 2.0])),
        "penalty": None,
        "tolerance": 1e-9,
    }
    valid = dict(kw)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(sorted(kw)))
        if key in ("budget", "tolerance"):
            kw[key] = draw(st.sampled_from(FLOAT_SCALARS))
        elif key == "penalty":
            kw[key] = draw(st.sampled_from([np.zeros((P, C)), np.full((P, C), np.nan),
                                            np.zeros((P, C + 1)), np.zeros(P), "x",
                                            np.full((P, C), -np.inf)]))  # fmt: skip
        else:
            base = valid[key]
            kw[key] = draw(
                st.sampled_from([base.reshape(-1), base[..., :0], np.full(base.shape, np.nan),
                                 np.full(base.shape, np.inf), -base - 1, base.astype(object),
                                 base.astype(str), base.astype(np.complex64), base[:0],
                                 np.full(base.shape, 1e300), None, base.astype(bool)])
            )  # fmt: skip
    ops: list[tuple] = []
    for _ in range(draw(st.integers(0, 8))):
        name = draw(
            st.sampled_from(
                ["step"] * 4
                + [
                    "undo",
                    "replay",
                    "observe",
                    "is_legal",
                    "legal_mask",
                    "choices",
                    "clone",
                    "reset",
                ]
            )
        )
        if name in ("step", "is_legal"):
            ops.append((name, draw(_actions())))
        elif name == "replay":
            ops.append((name, draw(st.sampled_from([np.zeros(P, np.int64), np.array([C]),
                                                    np.array([-1]), np.zeros(P + 3, np.int64),
                                                    np.array([0.5]), None]))))  # fmt: skip
        elif name == "observe":
            ops.append((name, draw(st.sampled_from([None, np.zeros(1, np.float32), "x"]))))
        else:
            ops.append((name,))
    batched = None
    if draw(st.integers(0, 3)) == 0:
        batched = {}
        if draw(st.booleans()):
            batched["actions"] = draw(st.sampled_from([np.zeros(2, np.int64),
                                                       np.full(2, C, np.int64),
                                                       np.zeros(2, np.float64),
                                                       np.zeros(3, np.int32)]))  # fmt: skip
    return Case("native", "rank", {"kwargs": kw, "ops": ops, "batched": batched})


def native_cases() -> st.SearchStrategy[Case]:
    return st.one_of(
        native_instance_cases(),
        native_instance_cases(),
        native_batched_cases(),
        native_pack_cases(),
        native_rank_cases(),
    )


@st.composite
def cli_cases(draw) -> Case:
    """``mallocgame solve`` (or ``validate``) on a fuzzed CSV or workload file."""
    src = draw(st.one_of(csv_cases(), workload_cases()))
    name = src.payload["name"]
    solve = [
        "solve", "{input}", "--solver", draw(st.sampled_from(["msa", "greedy-size", "all-slow"])),
        "--capacity=" + draw(st.sampled_from(["50%"] * 6 + ["100%", "1", "4096", "0", "-5%", "lots",
                                              "2000000000000000000", "1e400", "nan%"])),
        "--out", "{out}", "--json",
    ]  # fmt: skip
    if draw(st.integers(0, 3)) == 0:
        solve += ["--objective", "fit-all", "--alignment", draw(st.sampled_from(["1", "0", "8"]))]
    argv = solve
    if src.path == "csv" and draw(st.booleans()):
        argv = ["validate", "{input}", "--capacity=" + draw(st.sampled_from(["4096", "0", "-1"]))]
    return Case("cli", "run", {"data": src.payload["data"], "name": name, "argv": argv})


def cases_for(path: str, bases: dict[str, dict[str, bytes]] | None = None) -> st.SearchStrategy:
    """The strategy of input path ``path`` (one of :data:`~tests.fuzz.harness.PATHS`)."""
    if path == "csv":
        return csv_cases()
    if path == "workload":
        return workload_cases()
    if path == "xla":
        return xla_cases(bases if bases is not None else base_dumps())
    if path == "rank":
        return rank_cases()
    if path == "native":
        return native_cases()
    if path == "cli":
        return cli_cases()
    raise ValueError(f"unknown input path {path!r}")
