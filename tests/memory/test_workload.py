import gzip
import json

import numpy as np
import pytest

from mallocgame.errors import InputError
from mallocgame.memory.workload import Workload


def test_peak_live_bytes_half_open(tiny):
    # At position 2: b1 (200), b2 (50), b3 (400) live; b0 ended. At 1: b0, b1, b3 = 700.
    assert tiny.peak_live_bytes() == 700


def test_trace_proxy_writes_at_start_reads_at_end():
    w = Workload.from_intervals("t", [5, 6], [10, 20], [0, 2], [4, 3])
    # positions with accesses: 0 (b0 write), 2 (b1 write, b1 read: end-1 = 2), 3 (b0 read)
    assert w.instr_names == ["t0", "t2", "t3"]
    assert w.access_ptr.tolist() == [0, 1, 3, 4]
    assert w.access_bytes.sum() == 2 * (10 + 20)
    assert np.all(w.instr_flops == 0)


def test_roundtrip_json_and_gzip(tiny, tmp_path):
    for name in ("w.workload.json", "w.workload.json.gz"):
        tiny.save(tmp_path / name)
        back = Workload.load(tmp_path / name)
        assert back.name == "tiny"
        for f in (
            "ids",
            "sizes",
            "starts",
            "ends",
            "instr_flops",
            "access_ptr",
            "access_buffer",
            "access_bytes",
        ):
            assert np.array_equal(getattr(back, f), getattr(tiny, f)), f
        assert back.names == tiny.names
    assert not list(tmp_path.glob(".*tmp*"))


def test_bad_files(tiny, tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"format": "mallocgame-workload", "version": 1,\n "buffers": ')
    with pytest.raises(InputError, match=r"bad.json:2: malformed JSON"):
        Workload.load(p)
    d = tiny.to_dict()
    d["version"] = 99
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match="field 'version'"):
        Workload.load(p)
    d = tiny.to_dict()
    del d["buffers"]["size"]
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match="missing field 'size'"):
        Workload.load(p)
    d = tiny.to_dict()
    d["buffers"]["size"][1] = 0
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match="non-positive size"):
        Workload.load(p)
    d = tiny.to_dict()
    d["instructions"]["access_buffer"][0] = 99
    p.write_text(json.dumps(d))
    with pytest.raises(InputError, match="out of range"):
        Workload.load(p)
    g = tmp_path / "trunc.json.gz"
    g.write_bytes(gzip.compress(json.dumps(tiny.to_dict()).encode())[:40])
    with pytest.raises(InputError, match="trunc.json.gz"):
        Workload.load(g)


def test_atomic_write_concurrent_writers_never_mix(tmp_path):
    """Threads writing the same path each use their own temporary file: the result is one
    writer's bytes whole, and no temporary file is left behind."""
    import os
    import stat
    import threading

    from mallocgame.io import atomic_write_bytes

    target = tmp_path / "out.bin"
    payloads = [bytes([i]) * 200_000 for i in range(8)]
    errors = []

    def write(data):
        try:
            for _ in range(5):
                atomic_write_bytes(target, data)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=write, args=(p,)) for p in payloads]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert target.read_bytes() in payloads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
