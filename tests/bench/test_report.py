"""The memory report: ``results.md`` and ``summary.json`` from the run log alone, and the README
section generated from a bench run (``--readme``)."""

from __future__ import annotations

import argparse
import json

import pytest

pytest.importorskip("ortools")
pytest.importorskip("mallocgame._native")

from mallocgame.bench import render, report  # noqa: E402
from mallocgame.cli import bench as cli  # noqa: E402
from mallocgame.errors import InputError  # noqa: E402

README = """# project

intro

## Results

Some words.

## Layout

the rest
"""


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mallocgame")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *argv])
    args.argv = argv
    return args.fn(args)


def test_bench_writes_its_section_into_the_readme_and_rewrites_it_in_place(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    out = tmp_path / "b"
    argv = [
        "malloc",
        "tiny:0",
        "--solvers",
        "msa,random",
        "--seeds",
        "2",
        "--capacities",
        "25%",
        "--time-limit",
        "1",
        "--out",
        str(out),
        "--quiet",
        "--no-pictures",
        "--readme",
        str(readme),
    ]
    assert _run(argv) == 0
    text = readme.read_text()
    begin, end = "<!-- mallocgame-bench:malloc:begin -->", "<!-- mallocgame-bench:malloc:end -->"
    # inside the Results section, before the next heading; the rest untouched
    assert text.index("## Results") < text.index(begin) < text.index(end) < text.index("## Layout")
    assert text.startswith("# project\n\nintro\n\n## Results\n\nSome words.\n")
    assert text.endswith("## Layout\n\nthe rest\n")
    section = text[text.index(begin) : text.index(end)]
    # the command that produced it, and one row per solver with the run counts from runs.jsonl
    assert "mallocgame bench malloc tiny:0 --solvers msa,random" in section
    assert f"mallocgame bench malloc --out {out.as_posix()} --report-only --readme" in section
    rows = [ln for ln in section.splitlines() if ln.startswith("| `")]
    assert [r.split("|")[1].strip() for r in rows] == ["`msa`", "`random`"]
    assert all(r.split("|")[2].strip() == "2" for r in rows)

    # regenerate from the same folder: replaced, not duplicated
    assert (
        _run(
            ["malloc", "--out", str(out), "--report-only", "--no-pictures", "--readme", str(readme)]
        )
        == 0
    )
    again = readme.read_text()
    assert again.count(begin) == 1 and again.count(end) == 1
    assert again == text  # same runs -> same section (bootstrap seeds are fixed)
    # a second mode gets its own section beside the first
    render.update_readme(readme, "pack", "#### pack\n\nrows\n")
    both = readme.read_text()
    assert both.count("mallocgame-bench:pack:begin") == 1 and both.index(end) < both.index(
        "#### pack"
    )
    assert both.index("#### pack") < both.index("## Layout")


def test_readme_section_needs_finished_runs(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "runs.jsonl").write_text("")
    with pytest.raises(InputError, match="no finished runs"):
        report.readme_section(empty)


def _run_rec(instance, solver, seed, objective, status="ok", valid=True):
    return {
        "mode": "malloc",
        "instance": instance,
        "capacity": "50%",
        "capacity_bytes": 1024,
        "num_buffers": 4,
        "solver": solver,
        "seed": seed,
        "status": status,
        "valid": valid,
        "objective": objective if valid else None,
        "all_slow_time_s": 2.0,
        "speedup": 2.0 / objective if objective else None,
        "wall_s": 0.01,
        "time_limit_s": 1.0,
    }


def test_report_from_the_run_log_alone_scores_failures_and_unavailable(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    runs = [
        _run_rec("t", "msa", 0, 1.5),
        _run_rec("t", "msa", 1, 1.5),
        _run_rec("t", "random", 0, 1.0),
        _run_rec("t", "random", 1, None, status="timeout", valid=False),
    ]
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    bounds = [{"instance": "t", "capacity": "50%", "kind": "knapsack-lp", "value": 1.0}]
    (out / "bounds.jsonl").write_text(json.dumps(bounds[0]) + "\n")
    (out / "unavailable.json").write_text(json.dumps({"agent": "no trained policy"}))
    paths = report.write_report(out, pictures=False, reps=100)
    md = (out / "results.md").read_text()
    assert paths["results"] == str(out / "results.md")
    assert "**Unavailable solvers**" in md and "`agent`: no trained policy" in md
    assert "**Failures**: 1 runs crashed or timed out, 0 returned an invalid mapping." in md
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == 1 and summary["solvers"]["msa"]["runs"] == 2
    assert summary["solvers"]["msa"]["median_gap"] == pytest.approx(0.5)
    assert summary["solvers"]["random"]["median_gap"] == pytest.approx(0.0)
    assert summary["solvers"]["random"]["valid"] == 1
