"""The memory bench on Ray (``--ray``): the local bench's records, a crash recorded and the bench
going on, ``--resume`` across local and Ray; and its bad input. One Ray instance (2 CPUs,
``ray_cluster``) serves every test of the file."""

from __future__ import annotations

import json
import sys

import pytest

pytest.importorskip("ortools")
pytest.importorskip("mallocgame._native")

from mallocgame.bench import distributed, records, runner  # noqa: E402
from mallocgame.cli import bench as cli  # noqa: E402
from mallocgame.errors import InputError  # noqa: E402
from tests.bench.benchcli import lines as _lines  # noqa: E402
from tests.bench.benchcli import parser as _parser  # noqa: E402
from tests.bench.benchcli import run as _run  # noqa: E402

# What differs between two runs of a deterministic solver: times, resources, the clock.
VOLATILE = {
    "finished",
    "wall_s",
    "process_wall_s",
    "cpu_s",
    "peak_rss_mib",
    "rss_start_mib",
    "rss_growth_mib",
    "extra",
}


@pytest.fixture()
def cluster(ray_cluster):
    return ray_cluster


def _stable(r: dict) -> dict:
    return {k: v for k, v in r.items() if k not in VOLATILE}


def test_ray_gives_the_local_records(cluster, tmp_path):
    argv = ["malloc", "tiny:0", "tiny:1", "--solvers", "msa,random,cpsat", "--seeds", "2"]
    argv += ["--capacities", "50%", "--time-limit", "1", "--quiet", "--no-pictures"]
    assert _run([*argv, "--out", str(tmp_path / "local")]) == 0
    assert _run([*argv, "--out", str(tmp_path / "ray"), "--ray"]) == 0
    local, ray = _lines(tmp_path / "local" / "runs.jsonl"), _lines(tmp_path / "ray" / "runs.jsonl")
    assert len(local) == len(ray) == 2 * (2 * 2 + 1)
    # The same records, keys and order: the gaps too (CP-SAT's bound judged first, as here).
    assert [list(r) for r in ray] == [list(r) for r in local]
    assert [_stable(r) for r in ray] == [_stable(r) for r in local]
    assert all(r["status"] == "ok" and r["valid"] and r["peak_rss_mib"] > 0 for r in ray)
    assert (tmp_path / "ray" / "results.md").exists()
    cfg = json.loads((tmp_path / "ray" / "config.json").read_text())
    assert cfg["invocations"][0]["config"]["ray"] == "auto"


def test_a_crash_under_ray_is_recorded_and_the_bench_goes_on(cluster, tmp_path, fake_solvers):
    out = tmp_path / "f"
    solvers = "msa,fake-refuses,fake-crashes,fake-dies,fake-hangs,fake-overlaps"
    argv = ["malloc", "tiny:2", "--solvers", solvers, "--seeds", "2", "--capacities", "100%"]
    argv += ["--hard-timeout", "3", "--out", str(out), "--quiet", "--no-pictures", "--ray"]
    assert _run(argv) == 1  # crashes, deaths, timeouts and an invalid mapping
    runs = _lines(out / "runs.jsonl")
    by = {s: [r for r in runs if r["solver"] == s] for s in solvers.split(",")}
    assert len(by["msa"]) == 2 and all(r["valid"] for r in by["msa"])
    assert by["fake-refuses"] == []  # refused: unavailable, not a run
    assert "no trained policy" in json.loads((out / "unavailable.json").read_text())["fake-refuses"]
    assert [r["status"] for r in by["fake-crashes"]] == ["error", "error"]
    assert "boom" in by["fake-crashes"][0]["error"]
    assert [r["status"] for r in by["fake-dies"]] == ["error", "error"]
    assert "exit code 3" in by["fake-dies"][0]["error"]
    assert [r["status"] for r in by["fake-hangs"]] == ["timeout", "timeout"]
    assert all(
        r["status"] == "ok" and not r["valid"] and "overlap" in r["problems"][0]
        for r in by["fake-overlaps"]
    )
    assert "Failures" in (out / "results.md").read_text()


def test_resume_across_local_and_ray(cluster, tmp_path, datasets):
    out = tmp_path / "p"
    a, b = (str(datasets / "minimalloc-challenging" / f"{x}.1048576.csv") for x in "AB")
    common = ["--seeds", "1", "--time-limit", "1", "--out", str(out), "--quiet", "--no-pictures"]
    assert _run(["pack", a, "--solvers", "msa", *common]) == 0  # begun here: 1 run
    first = (out / "runs.jsonl").read_text()
    argv = ["pack", a, b, "--solvers", "msa,greedy-size", *common, "--resume"]
    cfg = cli.config_from_args(_parser().parse_args(["bench", *argv, "--ray", "auto"]), argv)
    outcome = distributed.run_bench(cfg)
    assert (outcome.runs_done, outcome.runs_skipped, outcome.exit_code) == (3, 1, 0)
    assert (out / "runs.jsonl").read_text().startswith(first)  # the local run kept as it was
    runs = _lines(out / "runs.jsonl")
    assert [(r["instance"], r["solver"]) for r in runs] == [
        ("A", "msa"),
        ("A", "greedy-size"),
        ("B", "msa"),
        ("B", "greedy-size"),
    ]
    assert all(r["valid"] for r in runs)
    # And back: locally, nothing is left to do.
    cfg = cli.config_from_args(_parser().parse_args(["bench", *argv]), argv)
    outcome = runner.run_bench(cfg)
    assert (outcome.runs_done, outcome.runs_skipped) == (0, 4)
    assert {records.run_key(r) for r in _lines(out / "runs.jsonl")} == {
        records.run_key(r) for r in runs
    }


def test_without_ray_installed_it_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "x"
    assert cli.main(["malloc", "tiny:0", "--out", str(out), "--quiet", "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err]
    assert err.endswith("ray is not installed: pip install 'mallocgame[ray]'")
    assert not out.exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["malloc", "--ray", "tiny:0"],  # --ray took the instance as its address
        ["malloc", "tiny:0", "--ray", ""],
        ["rank", "--ray", "minilm"],  # --ray took the model as its address
    ],
)
def test_bad_ray_input_names_the_option(tmp_path, argv):
    with pytest.raises(InputError) as e:
        _run([*argv, "--out", str(tmp_path / "x"), "--quiet"])
    assert e.value.field == "ray"


@pytest.mark.parametrize("extra", [["--ray-cpus", "2"], ["--ray", "--ray-cpus", "0"]])
def test_bad_ray_cpus_names_the_option(tmp_path, extra):
    with pytest.raises(InputError) as e:
        _run(["malloc", "tiny:0", *extra, "--out", str(tmp_path / "x"), "--quiet"])
    assert e.value.field == "ray-cpus"
    assert not (tmp_path / "x").exists()
