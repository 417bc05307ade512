"""A run in a forked child: its payload and resources, a crash, a refusal, a timeout."""

from __future__ import annotations

import os
import time

from mallocgame.bench.isolation import execute
from mallocgame.errors import MallocGameError


def _ok(n: int) -> dict:
    return {"pid": os.getpid(), "n": n}


def _crash() -> dict:
    raise RuntimeError("boom")


def _refuse() -> dict:
    raise MallocGameError("no trained policy")


def _sleep() -> dict:
    time.sleep(60)
    return {}


def _die() -> dict:
    os._exit(3)


def test_a_run_in_a_child_returns_its_payload_and_resources():
    ticks = []
    status, payload = execute(_ok, (7,), True, 30.0, lambda: ticks.append(1))
    assert status == "ok" and payload["n"] == 7 and payload["pid"] != os.getpid()
    proc = payload["_proc"]
    assert proc["peak_rss_mib"] > 0 and proc["cpu_s"] is not None and proc["process_wall_s"] >= 0


def test_not_isolated_runs_here():
    status, payload = execute(_ok, (1,), False, 30.0)
    assert status == "ok" and payload["pid"] == os.getpid() and payload["_proc"]["cpu_s"] is None
    assert execute(_refuse, (), False, 30.0) == ("refused", "MallocGameError: no trained policy")


def test_crash_refusal_death_and_timeout_are_told_apart():
    status, msg = execute(_crash, (), True, 30.0)
    assert status == "error" and "RuntimeError: boom" in msg
    assert execute(_refuse, (), True, 30.0) == ("refused", "MallocGameError: no trained policy")
    status, msg = execute(_die, (), True, 30.0)
    assert status == "error" and "exit code 3" in msg
    t0 = time.monotonic()
    status, msg = execute(_sleep, (), True, 0.5)
    assert status == "timeout" and "hard timeout" in msg
    assert time.monotonic() - t0 < 20
