import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from agent.checkpoint import read_checkpoint, remove_stale_temps, write_checkpoint


def test_round_trip_and_no_temporary_files(tmp_path):
    path = tmp_path / "sub" / "ck.npz"
    arrays = {"a": np.arange(5, dtype=np.float32), "params/x::w": np.ones((2, 3))}
    write_checkpoint(path, arrays, {"step": 3, "curve": [{"loss": float("nan")}]})
    got, meta = read_checkpoint(path)
    np.testing.assert_array_equal(got["a"], arrays["a"])
    assert meta["step"] == 3 and np.isnan(meta["curve"][0]["loss"])
    write_checkpoint(path, {"a": np.zeros(1)}, {"step": 4})
    assert read_checkpoint(path)[1]["step"] == 4
    assert os.listdir(path.parent) == ["ck.npz"]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "ck.npz"
    write_checkpoint(path, {"a": np.ones(3)}, {"step": 1})

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(OSError):
        write_checkpoint(path, {"a": np.zeros(3)}, {"step": 2})
    assert read_checkpoint(path)[1]["step"] == 1
    assert os.listdir(tmp_path) == ["ck.npz"]


def test_checkpoint_survives_kill_during_writes(tmp_path):
    """SIGKILL a process that rewrites a multi-MB checkpoint in a loop: the file on disk is
    always a complete checkpoint."""
    path = tmp_path / "ck.npz"
    script = textwrap.dedent(
        f"""
        import numpy as np
        from agent.checkpoint import write_checkpoint
        big = np.random.default_rng(0).random(1_000_000)
        i = 0
        while True:
            write_checkpoint({str(path)!r}, {{"big": big + i, "i": np.asarray(i)}}, {{"i": i}})
            i += 1
        """
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=repo)
    try:
        deadline = time.time() + 60
        while not path.exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    arrays, meta = read_checkpoint(path)
    assert int(arrays["i"]) == meta["i"]
    np.testing.assert_allclose(arrays["big"][:3] - meta["i"], np.random.default_rng(0).random(3))


def test_a_writer_killed_mid_write_leaves_a_temp_that_is_cleaned_up(tmp_path):
    """The writer's temporary file is unique, carries its pid and lives beside the target; a
    writer killed before os.replace leaves it, and the next write / load removes it -- and
    only it: other files, other targets' temporaries and live writers' files stay."""
    path = tmp_path / "ck.npz"
    script = textwrap.dedent(
        f"""
        import sys, time
        import numpy as np
        from agent.checkpoint import write_checkpoint
        write_checkpoint({str(path)!r}, {{"i": np.asarray(1)}}, {{"i": 1}})

        def stuck_savez(f, **arrays):  # writes half a file, then hangs: kill it here
            f.write(b"PK" + b"x" * 10_000)
            f.flush()
            print("writing", flush=True)
            time.sleep(600)

        np.savez = stuck_savez
        write_checkpoint({str(path)!r}, {{"i": np.asarray(2)}}, {{"i": 2}})
        """
    )
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=repo, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "writing"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    temps = [p for p in tmp_path.iterdir() if p.name != "ck.npz"]
    assert len(temps) == 1 and temps[0].name.startswith(f".ck.npz.{proc.pid}-")
    assert temps[0].name.endswith(".tmp") and temps[0].parent == path.parent
    assert read_checkpoint(path)[1]["i"] == 1  # the previous checkpoint is intact

    dead = proc.pid
    keep = [
        tmp_path / "notes.tmp",
        tmp_path / f"ck.npz.{dead}-abc.tmp",  # no leading dot: not our name
        tmp_path / f".other.npz.{dead}-abc.tmp",  # another target's
        tmp_path / f".ck.npz.{os.getpid()}-live.tmp",  # a live writer's (this process)
        tmp_path / f".ck.npz.{dead}-abc.tmp.bak",
        tmp_path / ".ck.npz.abcdefgh.tmp",  # an older version's name, but fresh
    ]
    for k in keep:
        k.write_bytes(b"keep")
    also_stale = tmp_path / f".ck.npz.{dead}-zz_9.tmp"
    also_stale.write_bytes(b"x")
    old_legacy = tmp_path / ".ck.npz.a1b2c3d4.tmp"
    old_legacy.write_bytes(b"x")
    os.utime(old_legacy, (time.time() - 3600, time.time() - 3600))

    removed = remove_stale_temps(path)
    assert sorted(removed) == sorted([temps[0], also_stale, old_legacy])
    assert all(k.read_bytes() == b"keep" for k in keep)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["ck.npz", *(k.name for k in keep)])

    # the writer cleans up too: a new stale temp is gone after the next write
    also_stale.write_bytes(b"x")
    write_checkpoint(path, {"i": np.asarray(3)}, {"i": 3})
    assert not also_stale.exists() and read_checkpoint(path)[1]["i"] == 3
    assert all(k.exists() for k in keep)
