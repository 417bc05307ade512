"""The bugs the input fuzzer found (issue 20, part 5), one case each: every one used to escape
as a TypeError, OverflowError, IndexError, RecursionError, zlib.error, UnicodeDecodeError or a
bare ValueError, or gave a message of several lines or without its place, or was accepted."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mallocgame.errors import InputError
from mallocgame.memory import sources, xla
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.workload import Workload
from mallocgame.rank.config import RankConfig, load_rank_config
from tests.fuzz.strategies import CHECKED_IN_DUMP

PREFIX = "module_0000.jit_f.cpu_after_optimizations"


def raises_one_line(fn, pattern: str) -> InputError:
    with pytest.raises(InputError, match=pattern) as info:
        fn()
    assert "\n" not in str(info.value) and "\r" not in str(info.value)
    return info.value


# ----------------------------------------------------------------------------- CSV
HDR = "id,lower,upper,size\n"


@pytest.mark.parametrize(
    "text, pattern",
    [
        (HDR + "0,0,4,99999999999999999999\n", r"t.csv:2: field 'size': .* beyond the int64"),
        (HDR + "0,0,4,2305843009213693952\n", r"t.csv:2: field 'size': .* beyond the .*2\^60"),
        (HDR + "0,0,4,1152921504606846976\n1,0,4,1152921504606846976\n", r"sum to more"),
        (HDR + "0,0,72057594037927937,8\n", r"t.csv:2: field 'upper': .*2\^56"),
        (HDR + "0,0,4," + "9" * 5000 + "\n", r"t.csv:2: field 'size': '9+\.\.\. is beyond"),
        (HDR + '0,0,4,"' + "1" * 200_000 + '"\n', r"t.csv:2: malformed CSV: field larger"),
        (HDR + "0,0,4,1_000\n", r"t.csv:2: field 'size': expected an integer, got '1_000'"),
        (HDR + "0,0,4,\u0663\n", r"t.csv:2: field 'size': expected an integer"),
        ('id,"lower\n' + "x\n" * 50 + '",upper,size\n0,0,4,8\n', r"t.csv:1: field 'lower':"),
        ("id,id,lower,upper,size\n0,0,0,4,8\n", r"t.csv:1: field 'id': header names column"),
        (HDR + "0,0,4,8,\n1,0,4,8\x00\n", r"t.csv:3: not a text file: it holds a NUL"),
    ],
)
def test_csv(tmp_path, text, pattern):
    p = tmp_path / "t.csv"
    p.write_text(text)
    raises_one_line(lambda: read_csv(p), pattern)


def test_csv_bytes(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(b"\xef\xbb\xbf" + HDR.encode() + b"0,0,4,8\n")  # a BOM: read as usual
    assert read_csv(p)[0].num_buffers == 1
    p.write_bytes(HDR.encode() + b"0,0,4,8\n1,0,4,\xff\n")
    raises_one_line(lambda: read_csv(p), r"t.csv:3: not a text file: invalid UTF-8 byte 0xff")


# ----------------------------------------------------------------------------- workload files
def _tiny() -> dict:
    return Workload.from_intervals("w", [1, 2], [10, 20], [0, 1], [3, 4]).to_dict()


def _set(d: dict, path: str, value) -> dict:
    *head, last = path.split(".")
    node = d
    for k in head:
        node = node[k]
    node[last] = value
    return d


@pytest.mark.parametrize(
    "path, value, pattern",
    [
        ("buffers.size", [10.5, 20], r"field 'buffers.size': entry 0: expected an integer"),
        ("buffers.size", ["10", "20"], r"field 'buffers.size': entry 0: expected an integer"),
        ("buffers.size", [10**30, 20], r"field 'buffers.size': entry 0: .* beyond the int64"),
        ("buffers.size", [True, 20], r"field 'buffers.size': entry 0: expected an integer"),
        ("buffers.size", [2**61, 20], r"field 'size': buffer 1 has size .* 2\^60"),
        ("buffers.start", [-(2**60), 1], r"field 'lower': .*2\^56"),
        ("buffers.id", [[1, 2], [3, 4]], r"field 'buffers.id': entry 0: expected an integer"),
        ("buffers.name", 5, r"field 'buffers.name': expected a list"),
        ("buffers.name", [1, 2], r"field 'buffers.name': entry 0: expected a string"),
        ("buffers", [1], r"field 'buffers': expected an object"),
        ("instructions.flops", [float("nan")] * 4, r"field 'instructions.flops': entry 0: .*nan"),
        ("instructions.access_bytes", [1e400] * 4, r"field 'instructions.access_bytes'"),
        ("version", True, r"field 'version'"),
        ("source", [1, 2, 3], r"field 'source': expected an object"),
        ("name", ["x"], r"field 'name': expected a string"),
    ],
)
def test_workload_fields(tmp_path, path, value, pattern):
    p = tmp_path / "w.json"
    p.write_text(json.dumps(_set(_tiny(), path, value)))
    e = raises_one_line(lambda: Workload.load(p), pattern)
    assert str(p) in str(e)


def test_workload_check_names_fields(tmp_path):
    d = _tiny()
    d["buffers"]["start"] = [0]
    p = tmp_path / "w.json"
    p.write_text(json.dumps(d))
    raises_one_line(lambda: Workload.load(p), r"w.json: field 'starts': has 1 entries, expected 2")


@pytest.mark.parametrize(
    "data, pattern",
    [
        (b"[" * 100_000 + b"]" * 100_000, r"w.json:1: malformed JSON: nested too deeply"),
        (b'{"format": "mallocgame-workload", "version": ' + b"1" * 5000 + b"}", r"w.json:1: mal"),
        (b'{"format":\n "mallocgame-\xff"}', r"w.json:2: not a text file: invalid UTF-8"),
    ],
)
def test_workload_bytes(tmp_path, data, pattern):
    p = tmp_path / "w.json"
    p.write_bytes(data)
    raises_one_line(lambda: Workload.load(p), pattern)


def test_workload_corrupt_deflate(tmp_path):
    g = bytearray(gzip.compress(json.dumps(_tiny()).encode(), mtime=0))
    g[20] ^= 0xFF  # inside the deflate stream: zlib.error, not OSError
    p = tmp_path / "w.json.gz"
    p.write_bytes(bytes(g))
    raises_one_line(lambda: Workload.load(p), r"w.json.gz: corrupt gzip data")


# ----------------------------------------------------------------------------- rank configs
def _ranks() -> dict:
    return RankConfig.uniform("minilm", "abc", 8, 8).to_dict()


@pytest.mark.parametrize(
    "edit, pattern",
    [
        (lambda d: d.update(model=[]), r"r.json: field 'model': unknown model \[\]"),
        (lambda d: d.update(budget={"fraction": float("nan")}), r"field 'budget.fraction'"),
        (lambda d: d.update(budget={"flops": float("inf")}), r"field 'budget.flops'"),
        (lambda d: d.update(budget={"a\nb": 1}), r"field 'budget.'a\\nb'': unknown key"),
        (lambda d: d["layers"][0].update({"x\ny": 1}), r"field 'layers\[0\].'x\\ny''"),
        (lambda d: d.update(format="f" * 10_000), r"field 'format': expected .*\.\.\.$"),
        (lambda d: d.update(method=["whitened"]), r"field 'method'"),
    ],
)
def test_rank_fields(tmp_path, edit, pattern):
    d = _ranks()
    edit(d)
    p = tmp_path / "r.json"
    p.write_text(json.dumps(d))
    raises_one_line(lambda: load_rank_config(p), pattern)


@pytest.mark.parametrize(
    "data, pattern",
    [
        (b"[" * 100_000 + b"]" * 100_000, r"r.json:1: not valid JSON: nested too deeply"),
        (b'{"seq_len": ' + b"7" * 5000 + b"}", r"r.json:1: not valid JSON: .*4300 digits"),
        (b"{\n\xc3(", r"r.json:2: not a text file: invalid UTF-8 byte 0xc3"),
        (b"3", r"r.json:1: expected a JSON object, got int"),
    ],
)
def test_rank_bytes(tmp_path, data, pattern):
    p = tmp_path / "r.json"
    p.write_bytes(data)
    raises_one_line(lambda: load_rank_config(p), pattern)


def test_rank_missing_file(tmp_path):
    raises_one_line(lambda: load_rank_config(tmp_path / "nope.json"), r"nope.json: cannot read")


# ----------------------------------------------------------------------------- XLA dumps
@pytest.fixture
def dump(tmp_path) -> Path:
    folder = tmp_path / "dump"
    shutil.copytree(CHECKED_IN_DUMP, folder)
    return folder


def _edit(folder: Path, suffix: str, pattern: str, repl: str) -> None:
    p = folder / f"{PREFIX}{suffix}.txt"
    text, n = re.subn(pattern, repl, p.read_text(), count=1)
    assert n == 1
    p.write_text(text)


@pytest.mark.parametrize(
    "suffix, pattern, repl, expected",
    [
        # used to be IndexError: tuple index out of range (cost analysis of the dot)
        ("", r"lhs_contracting_dims=\{1\}", "lhs_contracting_dims={9}", r"\.txt:\d+: field "
         r"'instruction': dot 'dot_general.0': lhs_contracting_dims has 9, but the lhs has rank"),
        ("", r"%param_0 = f32\[64,128\]", "%param_0 = f32[64]",
         r"lhs_contracting_dims has 1, but the lhs has rank 1"),
        # used to be OverflowError (a size beyond int64)
        ("-buffer-assignment", r"size=\d+", "size=99999999999999999999", r"assignment.txt:\d+: "
         r"field 'value': expected ' value: <ID"),
        ("-buffer-assignment", r"size=\d+", "size=2305843009213693952", r"assignment.txt:\d+: "
         r"field 'value': value size .* 2\^60"),
        # used to be ValueError: Exceeds the limit (4300 digits) for integer string conversion
        ("-live-range", r":(\d+)-(\d+)", ":" + "1" * 5000 + r"-\2", r"live-range.txt:\d+: field "
         r"'BufferLiveRange': expected NAME"),
        ("-buffer-assignment-values", r"positions:\n(\s+)(\S+)", r"positions:\n\1\2 {99999999999}",
         r"values.txt:\d+: field 'positions': bad shape index entry"),
        ("", r"%param_0 = f32\[64,128\]", "%param_0 = f32[999999999999999999999,128]",
         r"\.txt:\d+: field 'instruction': malformed HLO instruction: dimension 9.*too large"),
    ],
)  # fmt: skip
def test_xla(dump, suffix, pattern, repl, expected):
    _edit(dump, suffix, pattern, repl)
    raises_one_line(lambda: xla.read_dump_folder(dump), expected)


def test_xla_trip_count(tmp_path):
    pytest.importorskip("jax")
    from tests.fuzz.strategies import base_dumps

    files = base_dumps()["fori"]
    folder = tmp_path / "fori"
    folder.mkdir()
    for name, data in files.items():
        text = data.decode()
        if name.endswith("after_optimizations.txt"):
            text, n = re.subn(r'(known_trip_count\\?"\s*:\s*\{\s*\\?"n\\?"\s*:\s*\\?"?)(\d+)',
                              r"\g<1>" + "9" * 30, text)  # fmt: skip
            assert n
        (folder / name).write_text(text)
    raises_one_line(
        lambda: xla.read_dump_folder(folder),
        r"\.txt:\d+: field 'instruction': while '.*' has known_trip_count 9+, beyond",
    )


# ----------------------------------------------------------------------------- problems
def test_capacity_beyond_the_native_range():
    wl = Workload.from_intervals("w", [1, 2], [10, 20], [0, 1], [3, 4])
    raises_one_line(lambda: sources.make_problem(wl, 2**59), r"field 'capacity': capacity .*2\^58")
    p = sources.make_problem(wl, 2**58)
    assert p.instance(np.arange(2)).capacity == 2**58


@pytest.mark.parametrize(
    "call, pattern",
    [
        (
            lambda n: n.Instance(
                [1], [0], [1], [0.0], [0, 0], [], [], 4, 1, 1.0, 1.0, 1.0, [0], objective=3
            ),
            r"^objective must be a str, got 3$",
        ),
        (lambda n: n.BatchedGames([object()]), r"^games\[0\] must be a Game, got object$"),
        (lambda n: n.BatchedGames(3), r"^games must be a list of Game, got int$"),
        (lambda n: n.BatchedRankGames([1]), r"^games\[0\] must be a RankGame, got int$"),
        (
            lambda n: n.pack([1], [0], [1], 4, canonical_only="yes"),
            r"^canonical_only must be True or False, got 'yes'$",
        ),
    ],
)
def test_native_arguments_of_the_wrong_type(call, pattern):
    """The bindings convert these arguments themselves: a one-line ValueError naming the
    argument, not pybind11's multi-line TypeError listing the signatures."""
    from mallocgame import _native

    with pytest.raises(ValueError, match=pattern):
        call(_native)
    assert _native.pack([1], [0], [1], 4, canonical_only=np.bool_(False))["placed"] == 1


def test_native_fast_bandwidth_that_makes_the_fast_time_infinite():
    """Found by ``benchmarks/fuzz_inputs.py`` (seed 0, case 40041-966): a positive but denormal
    fast bandwidth made every fast placement's time infinite; refused at construction now."""
    from mallocgame import _native

    kw = dict(
        sizes=np.array([2]), starts=np.array([0]), ends=np.array([1]),
        instr_flops=np.array([0.0]), access_ptr=np.array([0, 1]), access_buffer=np.array([0]),
        access_bytes=np.array([1.0]), capacity=8, alignment=8, slow_bandwidth=1e11,
        peak_flops=1e14, order=np.array([0]),
    )  # fmt: skip
    with pytest.raises(ValueError, match=r"every buffer fast is not finite: fast_bandwidth") as e:
        _native.Instance(**kw, fast_bandwidth=5e-324)
    assert "\n" not in str(e.value)
    assert _native.Instance(**kw, fast_bandwidth=1e12).num_buffers == 1
