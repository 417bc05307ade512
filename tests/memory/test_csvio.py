import numpy as np
import pytest

from mallocgame.errors import InputError
from mallocgame.memory.csvio import read_csv, write_solution_csv


def write(tmp_path, text, name="t.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_shared_trace(datasets):
    wl, offsets = read_csv(datasets / "ml-traces" / "resnet50.csv")
    assert wl.num_buffers == 1042
    assert offsets is None
    assert wl.peak_live_bytes() > 0
    wl2, offsets2 = read_csv(datasets / "ml-traces" / "iree_mobilenet.csv")
    assert offsets2 is not None and offsets2.shape == (wl2.num_buffers,)


def test_roundtrip_solution(tmp_path):
    p = write(tmp_path, "id,lower,upper,size\n0,0,4,10\n1,2,6,20\n")
    wl, _ = read_csv(p)
    out = tmp_path / "out.csv"
    write_solution_csv(out, wl, np.array([0, -1]))
    assert out.read_text() == "id,lower,upper,size,offset\n0,0,4,10,0\n1,2,6,20,\n"
    wl2, off = read_csv(out)
    assert off.tolist() == [0, -1]


@pytest.mark.parametrize(
    "text, pattern",
    [
        ("", r"t.csv:1: empty file"),
        ("id,lower,size\n0,0,1\n", r"t.csv:1: field 'upper': header lacks"),
        ("id,lower,upper,size\n0,0,4,10\n1,2,6\n", r"t.csv:3: expected 4 columns"),
        ("id,lower,upper,size\n0,0,4,ten\n", r"t.csv:2: field 'size': expected an integer"),
        ("id,lower,upper,size\n0,0,4,0\n", r"t.csv:2: field 'size': size must be positive"),
        ("id,lower,upper,size\n0,0,4,-5\n", r"t.csv:2: field 'size'"),
        ("id,lower,upper,size\n0,4,4,8\n", r"t.csv:2: field 'upper': empty or inverted"),
        ("id,lower,upper,size\n0,5,4,8\n", r"t.csv:2: field 'upper': empty or inverted"),
        (
            "id,lower,upper,size\n0,0,4,8\n0,1,2,8\n",
            r"t.csv:3: field 'id': duplicate id 0 \(first on line 2\)",
        ),
        ("id,lower,upper,size\n", r"t.csv:2: no buffers"),
        ("id,lower,upper,size,offset\n0,0,4,8,x\n", r"t.csv:2: field 'offset'"),
    ],
)
def test_bad_csv(tmp_path, text, pattern):
    with pytest.raises(InputError, match=pattern):
        read_csv(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_csv(tmp_path / "nope.csv")
