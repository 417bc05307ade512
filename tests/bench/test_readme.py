"""The README's results section is generated from a bench run (``--readme``)."""

from __future__ import annotations

import argparse

import pytest

pytest.importorskip("ortools")
pytest.importorskip("mallocgame._native")

from mallocgame.bench import report  # noqa: E402
from mallocgame.cli import bench as cli
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
    report.update_readme(readme, "pack", "#### pack\n\nrows\n")
    both = readme.read_text()
    assert both.count("mallocgame-bench:pack:begin") == 1 and both.index(end) < both.index(
        "#### pack"
    )
    assert both.index("#### pack") < both.index("## Layout")


def test_readme_without_results_heading_gets_the_section_at_the_end(tmp_path):
    readme = tmp_path / "R.md"
    readme.write_text("# x\n\ntext\n")
    assert report.update_readme(readme, "malloc", "body\n")
    assert readme.read_text() == (
        "# x\n\ntext\n\n<!-- mallocgame-bench:malloc:begin -->\nbody\n<!-- mallocgame-bench:malloc:end -->\n"
    )
    assert not report.update_readme(readme, "malloc", "body\n")  # unchanged


def test_readme_errors_name_the_file(tmp_path):
    readme = tmp_path / "R.md"
    readme.write_text("# x\n<!-- mallocgame-bench:malloc:begin -->\nhalf\n")
    with pytest.raises(InputError, match="R.md.*unbalanced markers"):
        report.update_readme(readme, "malloc", "body")
    assert readme.read_text() == "# x\n<!-- mallocgame-bench:malloc:begin -->\nhalf\n"  # untouched
    with pytest.raises(InputError, match="missing.md"):
        report.update_readme(tmp_path / "missing.md", "malloc", "body")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "runs.jsonl").write_text("")
    with pytest.raises(InputError, match="no finished runs"):
        report.readme_section(empty)
