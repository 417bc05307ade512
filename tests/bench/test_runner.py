"""The memory bench end to end on tiny instances: files written, resume, bad input, solvers
that refuse, crash or return an invalid mapping."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("ortools")
pytest.importorskip("mallocgame._native")

from mallocgame import registry  # noqa: E402
from mallocgame.bench import peers, records, runner  # noqa: E402
from mallocgame.cli import bench as cli  # noqa: E402
from mallocgame.errors import InputError  # noqa: E402
from tests.bench.benchcli import lines as _lines  # noqa: E402
from tests.bench.benchcli import parser as _parser  # noqa: E402
from tests.bench.benchcli import run as _run  # noqa: E402


def test_bench_end_to_end_writes_everything_and_resumes(tmp_path, capsys):
    out = tmp_path / "b"
    argv = [
        "malloc",
        "tiny:0",
        "tiny:1",
        "--solvers",
        "msa,random,restarts,cpsat",
        "--seeds",
        "2",
        "--capacities",
        "50%",
        "--time-limit",
        "0.3",
        "--out",
        str(out),
        "--quiet",
    ]
    assert _run(argv) == 0
    runs = _lines(out / "runs.jsonl")
    # 2 instances x 1 capacity x (3 solvers x 2 seeds + cpsat x 1 seed)
    assert len(runs) == 2 * (3 * 2 + 1)
    for r in runs:
        assert r["status"] == "ok" and r["valid"] is True
        assert (
            r["objective"] is not None and r["gap_to_bound"] is not None and r["gap_to_bound"] >= 0
        )
        for key in (
            "instance",
            "solver",
            "seed",
            "capacity",
            "capacity_bytes",
            "speedup",
            "wall_s",
            "peak_rss_mib",
            "bound",
        ):
            assert key in r, key
    cp = [r for r in runs if r["solver"] == "cpsat"]
    assert all(r["proved_optimal"] for r in cp)
    # Every solver's time is at least the proven optimum.
    for r in runs:
        opt = next(c["objective"] for c in cp if c["instance"] == r["instance"])
        assert r["objective"] >= opt * (1 - 1e-9)
    md = (out / "results.md").read_text()
    assert "Aggregate" in md and "`msa`" in md and "gap" in md
    for pic in ("objective_vs_time.png", "performance_profile.png", "score_iqm.png"):
        assert (out / "pictures" / pic).stat().st_size > 1000
    assert len(list((out / "pictures" / "maps").glob("*.png"))) == 2
    assert (out / "bounds.jsonl").exists() and (out / "summary.json").exists()

    # Resume: nothing to do, nothing re-run, the log unchanged.
    before = (out / "runs.jsonl").read_text()
    assert _run([*argv, "--resume"]) == 0
    assert (out / "runs.jsonl").read_text() == before

    # Without --resume the folder is refused (it holds a bench).
    with pytest.raises(InputError) as e:
        _run(argv)
    assert e.value.field == "out"

    # An interrupted bench: the last two runs missing, the last line cut short by a kill.
    lines = before.splitlines()
    (out / "runs.jsonl").write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:25])
    cfg = cli.config_from_args(_parser().parse_args(["bench", *argv, "--resume"]), argv)
    outcome = runner.run_bench(cfg)
    assert outcome.runs_done == 2 and outcome.runs_skipped == len(lines) - 2
    runs2 = records.read_jsonl(out / "runs.jsonl")
    assert len(runs2) == len(lines)
    assert {records.run_key(r) for r in runs2} == {records.run_key(r) for r in runs}


def test_resuming_with_another_target_is_refused(tmp_path):
    out = tmp_path / "b"
    argv = ["malloc", "tiny:0", "--solvers", "msa", "--seeds", "1", "--capacities", "50%"]
    argv += ["--out", str(out), "--quiet", "--no-pictures"]
    assert _run(argv) == 0
    with pytest.raises(InputError) as e:
        _run([*argv, "--resume", "--alignment", "64"])
    assert e.value.field == "alignment"


@pytest.mark.skipif(not peers.available_peers(), reason="omnimalloc is not installed")
def test_pack_with_a_peer(tmp_path):
    out = tmp_path / "p"
    argv = [
        "pack",
        "tiny:1",
        "--solvers",
        "msa,omnimalloc:greedy_by_size,cpsat",
        "--seeds",
        "1",
        "--capacities",
        "100%,inf",
        "--time-limit",
        "1",
        "--out",
        str(out),
        "--quiet",
        "--no-pictures",
    ]
    assert _run(argv) == 0
    runs = _lines(out / "runs.jsonl")
    assert {r["solver"] for r in runs} == {"msa", "omnimalloc:greedy_by_size", "cpsat"}
    for r in runs:
        assert r["valid"], r
        if r["capacity"] == "inf":
            assert r["solved"] and r["objective"] >= r["peak_live_bytes"]
    cp = [r for r in runs if r["solver"] == "cpsat" and r["capacity"] == "inf"]
    assert cp[0]["proved_optimal"]


@pytest.mark.parametrize(
    "argv,field",
    [
        (["malloc", "tiny:0", "--solvers", "msa,nope"], "solvers"),
        (["malloc", "tiny:0", "--solvers", "msa,,random"], "solvers"),
        (["malloc", "--suite", "nosuch"], "suite"),
        (["malloc", "tiny:0", "--capacities", "10%,lots"], "capacities"),
        (["malloc", "tiny:0", "--capacities", "10%,"], "capacities"),
        (["malloc", "tiny:0", "--capacities", "inf"], "capacities"),
        (["malloc", "tiny:0", "--seeds", "0"], "seeds"),
        (["malloc", "tiny:0", "--time-limit", "-1"], "time-limit"),
        (["malloc", "tiny:9"], "instances"),
        (["malloc", "/no/such/file.csv"], "instances"),
    ],
)
def test_bad_input_names_the_field(tmp_path, argv, field):
    with pytest.raises(InputError) as e:
        _run([*argv, "--out", str(tmp_path / "x"), "--quiet"])
    assert e.value.field == field
    assert not (tmp_path / "x" / "runs.jsonl").exists()


@pytest.mark.skipif(not peers.available_peers(), reason="omnimalloc is not installed")
def test_unknown_omnimalloc_allocator_is_bad_input(tmp_path):
    with pytest.raises(InputError) as e:
        _run(
            [
                "pack",
                "tiny:0",
                "--solvers",
                "omnimalloc:nosuch",
                "--out",
                str(tmp_path / "x"),
                "--quiet",
            ]
        )
    assert e.value.field == "solvers"


def test_refusing_crashing_and_invalid_solvers(tmp_path, fake_solvers):
    out = tmp_path / "f"
    code = _run(
        [
            "malloc",
            "tiny:2",
            "--solvers",
            "msa,fake-refuses,fake-crashes,fake-overlaps",
            "--seeds",
            "2",
            "--capacities",
            "100%",
            "--out",
            str(out),
            "--quiet",
            "--no-pictures",
        ]
    )
    assert code == 1  # a crash and an invalid mapping
    runs = _lines(out / "runs.jsonl")
    by = {
        s: [r for r in runs if r["solver"] == s]
        for s in ("msa", "fake-refuses", "fake-crashes", "fake-overlaps")
    }
    assert len(by["msa"]) == 2 and all(r["valid"] for r in by["msa"])
    assert by["fake-refuses"] == []  # refused: unavailable, not a run
    assert "no trained policy" in json.loads((out / "unavailable.json").read_text())["fake-refuses"]
    assert [r["status"] for r in by["fake-crashes"]] == ["error", "error"]
    assert "boom" in by["fake-crashes"][0]["error"]
    assert all(
        r["status"] == "ok" and not r["valid"] and "overlap" in r["problems"][0]
        for r in by["fake-overlaps"]
    )
    md = (out / "results.md").read_text()
    assert "fake-refuses" in md and "Failures" in md


def test_a_policy_solver_that_cannot_load_is_unavailable_not_a_failed_run(tmp_path, monkeypatch):
    spec = registry.SolverSpec(
        "fake-agent", "memory", "no_such_module_here:solve", "a fake agent", needs_policy=True
    )
    monkeypatch.setattr(registry, "SPECS", (*registry.SPECS, spec))
    monkeypatch.setattr(registry, "_BY_KEY", {**registry._BY_KEY, ("memory", spec.name): spec})
    out = tmp_path / "a"
    argv = ["malloc", "tiny:0", "--solvers", "msa,fake-agent", "--seeds", "1"]
    assert _run([*argv, "--capacities", "50%", "--out", str(out), "--quiet", "--no-pictures"]) == 0
    assert {r["solver"] for r in _lines(out / "runs.jsonl")} == {"msa"}
    why = json.loads((out / "unavailable.json").read_text())["fake-agent"]
    assert "no_such_module_here" in why
