"""The training driver and the workload splits, with tiny networks on tiny problems."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mallocgame import api
from mallocgame.cli.main import main
from mallocgame.memory import splits
from mallocgame.memory.targets import Target
from mallocgame.memory.train import (
    ScaledMallocEnv,
    TrainOptions,
    demo_episode,
    demo_lines,
    tiny_options,
    train_run,
)
from tests.conftest import random_workload

REPO = Path(__file__).resolve().parents[2]
T = Target(
    "t",
    fast_capacity_bytes=1000,
    alignment_bytes=16,
    slow_bandwidth_bytes_per_s=100.0,
    fast_bandwidth_bytes_per_s=400.0,
    peak_flops_per_s=10.0,
)


def tiny_problems(n: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [api.make_problem(random_workload(rng, n=12 + 4 * i), "30%", T) for i in range(n)]


# --------------------------------------------------------------------------- splits
def test_splits_are_disjoint_by_program():
    splits.check_disjoint()
    train = {s.program for s in splits.TRAIN if s.kind == "zoo"}
    held = {s.program for s in splits.HELDOUT if s.kind in ("zoo", "trace")}
    assert train and held and not train & held
    assert {"resnet_train", "rnn_scan", "gpt2_train"} <= held
    with pytest.raises(ValueError, match="held-out"):
        splits.check_disjoint(splits.TRAIN + (splits.zoo("rnn_scan"),))


def test_zoo_workloads_are_cached_on_disk(tmp_path, monkeypatch):
    monkeypatch.setenv("MALLOCGAME_CACHE", str(tmp_path))
    spec = splits.zoo("mlp_train", small=True)
    wl = spec.load()
    files = list((tmp_path / "workloads").glob("mlp_train-*.workload.json.gz"))
    assert len(files) == 1
    from workloads import zoo

    def no_compile(*a, **k):
        raise AssertionError("compiled again instead of reading the cache")

    monkeypatch.setattr(zoo, "extract", no_compile)
    again = spec.load()
    assert again.num_buffers == wl.num_buffers and np.array_equal(again.sizes, wl.sizes)
    assert again.name == spec.title


def test_random_traces_are_deterministic():
    a, b = splits.random_trace(3, 50), splits.random_trace(3, 50)
    assert np.array_equal(a.sizes, b.sizes) and np.array_equal(a.starts, b.starts)
    assert a.num_buffers == 50 and (a.sizes % 64 == 0).all()


# --------------------------------------------------------------------------- env and demos
def test_scaled_env_scales_rewards_and_baseline():
    env = ScaledMallocEnv(tiny_problems(1), num_envs=2, seed=0, scale=10.0)
    obs, legal = env.reset()
    total = np.zeros(2)
    for _ in range(env.pool[0].instance.num_buffers):
        obs, legal, r, d = env.step(np.where(legal[:, 1], 1, 0).astype(np.int32))
        total += r
    assert np.allclose(total, 10 * env.pool[0].msa_return, rtol=1e-4)
    assert np.allclose(env.baseline_return(), 10 * env.pool[0].msa_return, rtol=1e-5)


def test_demonstrations_replay_to_their_returns():
    from mallocgame.memory.env import PreparedProblem

    pp = PreparedProblem(tiny_problems(1, seed=4)[0])
    lines = demo_lines(pp, seconds=0.2)
    assert lines and len(lines[0]) == pp.instance.num_buffers
    ep = demo_episode(pp, lines[-1], scale=10.0, reward_mode="dense")
    assert ep.reward.sum() >= 10 * pp.msa_return - 1e-4  # the improved line is at least msa's
    assert np.allclose(ep.policy.sum(axis=1), 1.0) and (ep.policy[~ep.legal] == 0).all()
    ranked = demo_episode(pp, lines[0], scale=10.0, reward_mode="ranked")
    assert ranked.reward[-1] == 0.0 and (ranked.reward[:-1] == 0).all()  # msa's own line ties


# --------------------------------------------------------------------------- training
def test_training_writes_checkpoint_curves_and_resumes(tmp_path):
    out = tmp_path / "run"
    s = train_run(
        tiny_options(
            out=str(out),
            steps=20,
            problems=tiny_problems(),
            eval_every=10,
            eval_problems=tiny_problems(2, seed=9),
        )
    )
    for name in ("checkpoint.npz", "policy.npz", "curves.csv", "curves.png", "run.json"):
        assert (out / name).exists(), name
    assert s["updates"] == 20 and not s["resumed"]
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert rows and int(rows[-1]["step"]) == 20
    assert any(r.get("eval_gap_vs_msa") for r in rows)
    assert s["policy_bytes"] < 5_000_000
    info = json.loads((out / "run.json").read_text())
    assert info["seed"] == 0 and info["options"]["reward_mode"] == "dense"

    s2 = train_run(tiny_options(out=str(out), steps=30, resume=True, problems=tiny_problems()))
    assert s2["resumed"] and s2["resumes"] == 1 and s2["updates"] == 30
    rows = list(csv.DictReader(open(out / "curves.csv")))
    assert int(rows[-1]["step"]) == 30 and int(rows[0]["step"]) == 5  # the curves continue


def test_ranked_reward_mode_trains(tmp_path):
    s = train_run(
        tiny_options(
            out=str(tmp_path / "ranked"), steps=10, reward_mode="ranked", problems=tiny_problems()
        )
    )
    assert s["updates"] == 10
    assert "ranked_reward" in s["last_record"]


_CHILD = (
    """
import sys
sys.path.insert(0, {repo!r})
from tests.memory.test_train import tiny_problems
from mallocgame.memory.train import tiny_options, train_run
train_run(tiny_options(out={out!r}, steps=100000, checkpoint_every=5, """
    """log_every=5, problems=tiny_problems()))
"""
)


def kill_after_checkpoint(code: str, ckpt: Path, timeout: float = 240) -> None:
    """Runs ``code`` in a child Python and SIGKILLs it (its whole process group) a second
    after ``ckpt`` first appears, maybe mid-write."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.time() + timeout
        while time.time() < deadline and proc.poll() is None:
            if ckpt.exists() and ckpt.stat().st_size > 0:
                time.sleep(1.0)  # let it get a little further, maybe mid-write
                break
            time.sleep(0.5)
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert ckpt.exists(), "no checkpoint within the time limit"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "killed"
    ckpt = out / "checkpoint.npz"
    kill_after_checkpoint(_CHILD.format(repo=str(REPO), out=str(out)), ckpt)
    from agent.checkpoint import read_checkpoint

    _, meta = read_checkpoint(ckpt)  # never a torn file
    done = int(meta["updates"])
    assert done >= 5
    live = out / f".checkpoint.npz.{os.getpid()}-live.tmp"  # a running writer's: kept
    live.write_bytes(b"x")
    s = train_run(tiny_options(out=str(out), steps=done + 5, resume=True, problems=tiny_problems()))
    assert s["resumed"] and s["updates"] == done + 5
    assert list(out.glob(".checkpoint.npz.*.tmp")) == [live]


# --------------------------------------------------------------------------- CLI
def test_train_cli_help_and_bad_input(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--help"])
    assert e.value.code == 0
    assert "--resume" in capsys.readouterr().out
    assert main(["train", "--steps", "0", "--out", "/tmp/never"]) == 2
    assert main(["train", "--split", "nope", "--out", "/tmp/never"]) == 2


def test_default_options_are_the_documented_ones():
    o = TrainOptions()
    assert (
        o.capacities == ("10%", "25%", "50%") and o.target == "tpuv4i" and o.reward_mode == "dense"
    )
