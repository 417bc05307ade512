"""``mallocgame train`` with self-play workers: in one process (``--workers``) and on Ray
(``--ray``), checkpoints, and a driver killed with SIGKILL that ``--resume`` continues."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("mallocgame._native")

from agent.checkpoint import read_checkpoint  # noqa: E402
from mallocgame.cli.main import main  # noqa: E402
from mallocgame.memory.train import EnvFactory, tiny_options, train_run  # noqa: E402
from tests.memory.test_train import kill_after_checkpoint, tiny_problems  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def test_the_env_factory_pickles_without_its_native_instances():
    import pickle

    factory = EnvFactory(tiny_problems(), 10.0)
    env = factory(4, 0)
    assert env.num_envs == 4 and factory._pool is not None
    clone = pickle.loads(pickle.dumps(factory))
    assert clone._pool is None and len(clone.problems) == 3
    other = clone(4, 0)
    assert (other.observation_size, other.num_actions) == (env.observation_size, env.num_actions)


def test_workers_in_one_process_train_checkpoint_and_resume(tmp_path):
    out = tmp_path / "run"
    s = train_run(tiny_options(out=str(out), steps=20, workers=2, problems=tiny_problems()))
    assert s["updates"] == 20 and s["workers"] == 2 and s["ray"] is None
    assert s["worker_failures"] == 0 and s["games"] > 0
    _, meta = read_checkpoint(out / "checkpoint.npz")
    assert meta["workers"] == 2 and meta["updates"] == 20 and meta["replay_included"]
    last = s["last_record"]
    assert last["workers"] == 2 and last["param_lag"] == 0.0
    # the one-process trainer continues the run (same checkpoint format)
    s2 = train_run(tiny_options(out=str(out), steps=30, resume=True, problems=tiny_problems()))
    assert s2["resumed"] and s2["updates"] == 30 and s2["workers"] == 0


def test_workers_on_ray_train(ray_cluster, tmp_path):
    out = tmp_path / "ray"
    o = tiny_options(out=str(out), steps=20, workers=2, ray="auto", problems=tiny_problems())
    s = train_run(o)
    assert s["updates"] == 20 and s["workers"] == 2 and s["ray"] == "auto"
    assert ray_cluster.is_initialized()  # joined the running Ray: not shut down
    assert (out / "policy.npz").exists() and (out / "curves.csv").exists()
    run = json.loads((out / "run.json").read_text())
    assert run["options"]["workers"] == 2 and run["options"]["ray"] == "auto"


_CHILD = """
import sys
sys.path.insert(0, {repo!r})
from tests.memory.test_train import tiny_problems
from mallocgame.memory.train import tiny_options, train_run
train_run(tiny_options(out={out!r}, steps=100000, checkpoint_every=5, log_every=5, workers=2,
                       ray={address!r}, problems=tiny_problems()))
"""


@pytest.mark.slow
def test_a_killed_ray_driver_resumes_from_its_last_checkpoint(ray_cluster, tmp_path):
    out = tmp_path / "killed"
    address = ray_cluster.get_runtime_context().gcs_address  # the child joins this cluster
    ckpt = out / "checkpoint.npz"
    kill_after_checkpoint(_CHILD.format(repo=str(REPO), out=str(out), address=address), ckpt, 300)
    _, meta = read_checkpoint(ckpt)  # never a torn file
    done = int(meta["updates"])
    assert done >= 5 and meta["workers"] == 2
    s = train_run(
        tiny_options(
            out=str(out),
            steps=done + 5,
            resume=True,
            workers=2,
            ray="auto",
            problems=tiny_problems(),
        )
    )
    assert s["resumed"] and s["updates"] == done + 5 and s["resumes"] == 1


def test_train_cli_refuses_bad_worker_settings(capsys):
    assert main(["train", "--workers", "-1", "--out", "/tmp/never"]) == 2
    assert "workers" in capsys.readouterr().err
    assert main(["train", "--ray", "auto", "--workers", "0", "--out", "/tmp/never"]) == 2
    assert main(["train", "--ray-cpus", "2", "--out", "/tmp/never"]) == 2
    assert "--ray" in capsys.readouterr().err
    assert main(["train", "--publish-every", "0", "--out", "/tmp/never"]) == 2
    assert main(["train", "--max-staleness", "-1", "--out", "/tmp/never"]) == 2
