"""``mallocgame bench rank --ray``: the runs on Ray actors, records in the local order, a dead
actor's run recorded as an error and the bench going on, ``--resume`` across local and Ray.
The judge is :class:`tests.bench.rank_fakes.FakeJudge` (the real one's tables take minutes)."""

from __future__ import annotations

import json

import pytest

from mallocgame.bench import rank, rank_distributed
from mallocgame.errors import InputError
from tests.bench.rank_fakes import FakeJudge
from tests.bench.test_rank import _run

pytest.importorskip("ray")

ARGV = ["rank", "minilm", "--budgets", "0.5,0.3", "--solvers", "uniform,greedy,agent"]
ARGV += ["--seeds", "2", "--quiet", "--no-pictures"]
VOLATILE = {"wall_s", "solve_s"}


def _lines(path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture()
def fake_judge(monkeypatch):
    monkeypatch.setattr(rank, "Judge", FakeJudge)
    monkeypatch.setattr(rank_distributed, "Judge", FakeJudge)


def test_ray_gives_the_local_records_and_a_dead_actor_is_an_error(
    ray_cluster, fake_judge, tmp_path, monkeypatch
):
    local, ray = tmp_path / "local", tmp_path / "ray"
    # locally the dying run would take the bench with it: leave it out there
    monkeypatch.setattr(FakeJudge, "run", _no_death(FakeJudge.run))
    assert _run([*ARGV, "--out", str(local)]) == 0
    monkeypatch.undo()
    monkeypatch.setattr(rank_distributed, "Judge", FakeJudge)
    assert _run([*ARGV, "--out", str(ray), "--ray"]) == 1  # one run died
    lo, ra = _lines(local / "runs.jsonl"), _lines(ray / "runs.jsonl")
    assert len(lo) == len(ra) == 2 * (1 + 1 + 2)
    key = [(r["budget"], r["solver"], r["seed"]) for r in lo]
    assert [(r["budget"], r["solver"], r["seed"]) for r in ra] == key  # the local order
    dead = [r for r in ra if r["status"] != "ok"]
    assert [(r["solver"], r["seed"]) for r in dead] == [("agent", 1), ("agent", 1)]
    assert all("the Ray actor died" in r["error"] for r in dead)
    for a, b in zip(lo, ra, strict=True):
        if b["status"] == "ok":
            assert {k: v for k, v in a.items() if k not in VOLATILE} == {
                k: v for k, v in b.items() if k not in VOLATILE
            }
    assert (ray / "results.md").exists()
    cfg = json.loads((ray / "config.json").read_text())
    assert cfg["invocations"][0]["config"]["ray"] == "auto"


def test_resume_crosses_local_and_ray(ray_cluster, fake_judge, tmp_path):
    out = tmp_path / "b"
    first = ["rank", "minilm", "--budgets", "0.5", "--solvers", "uniform,greedy", "--quiet"]
    assert _run([*first, "--no-pictures", "--out", str(out)]) == 0
    more = ["rank", "minilm", "--budgets", "0.5,0.3", "--solvers", "uniform,greedy", "--quiet"]
    assert _run([*more, "--no-pictures", "--out", str(out), "--resume", "--ray"]) == 0
    runs = _lines(out / "runs.jsonl")
    assert [(r["budget"], r["solver"]) for r in runs] == [
        (0.5, "uniform"),
        (0.5, "greedy"),
        (0.3, "uniform"),
        (0.3, "greedy"),
    ]


def test_a_model_name_after_ray_is_refused(tmp_path):
    with pytest.raises(InputError) as e:
        _run(["rank", "--ray", "minilm", "--out", str(tmp_path / "o"), "--quiet"])
    assert e.value.field == "ray" and "is a model" in str(e.value)
    assert not (tmp_path / "o").exists()


def test_judges_follow_the_clusters_cpus(ray_cluster):
    cfg = rank.RankBenchConfig(out=None, models=["minilm"], budgets=[0.5], solvers=["uniform"])
    assert rank_distributed.judges_for(ray_cluster, cfg, 10) == 2  # 2 CPUs, 1 each
    assert rank_distributed.judges_for(ray_cluster, cfg, 1) == 1
    cfg.ray_cpus = 4.0
    assert rank_distributed.judges_for(ray_cluster, cfg, 10) == 1


def _no_death(run):
    def wrapped(self, budget, solver, seed, *args):
        return run(self, budget, solver, 0 if (solver, seed) == ("agent", 1) else seed, *args) | {
            "seed": seed
        }

    return wrapped
