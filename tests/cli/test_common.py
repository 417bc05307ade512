"""The helpers shared by the subcommand modules (:mod:`mallocgame.cli.common`)."""

import argparse

import pytest

from mallocgame.cli.common import add_problem_args, fmt_bytes, problem_from_args, progress


@pytest.mark.parametrize(
    "n, text",
    [
        (0, "0 B"),
        (512, "512 B"),
        (1536, "1.50 KiB"),
        (4 * 2**20, "4.00 MiB"),
        (3 * 2**30, "3.00 GiB"),
        (3 * 2**40, "3072.00 GiB"),
    ],
)
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text


def _parse(argv: list[str], capacity_default: str | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_problem_args(p, capacity_default=capacity_default)
    return p.parse_args(argv)


def test_problem_args_defaults():
    args = _parse(["x.csv"], capacity_default="25%")
    assert (args.input, args.capacity, args.target, args.objective) == (
        "x.csv",
        "25%",
        "tpuv4i",
        "time",
    )
    assert args.alignment is None and args.seed == 0 and not args.json


def test_problem_capacity_from_the_minimalloc_file_name(tmp_path):
    path = tmp_path / "A.64.csv"
    path.write_text("id,lower,upper,size\n0,0,4,32\n1,2,6,32\n")
    problem = problem_from_args(_parse([str(path), "--json"]))
    assert problem.capacity == 64


def test_problem_capacity_defaults_to_a_quarter_of_peak(tmp_path):
    path = tmp_path / "plain.csv"
    path.write_text("id,lower,upper,size\n0,0,4,512\n1,2,6,512\n")
    problem = problem_from_args(_parse([str(path), "--json", "--alignment", "1"]))
    assert problem.capacity == 256


def test_problem_warnings_go_to_stderr(tmp_path, capsys):
    path = tmp_path / "plain.csv"
    path.write_text("id,lower,upper,size\n0,0,4,8\n1,2,6,16\n")
    problem_from_args(_parse([str(path), "--capacity", "4"]))
    err = capsys.readouterr().err
    assert err.startswith("mallocgame: warning: capacity 4 bytes")


def test_progress_is_silent_off_a_terminal(capsys):
    with progress("working"):
        pass
    with progress("working", quiet=True):
        pass
    assert capsys.readouterr() == ("", "")
