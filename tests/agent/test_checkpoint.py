import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from agent.checkpoint import read_checkpoint, write_checkpoint


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
