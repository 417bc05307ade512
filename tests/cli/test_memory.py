"""The memory game's subcommands (:mod:`mallocgame.cli.memory`): extract, solve, show,
validate, and their errors and warnings."""

import json

import pytest

from mallocgame.cli.main import main
from mallocgame.memory.csvio import read_csv
from mallocgame.memory.validate import validate


def test_solve_resnet50_done_criterion(datasets, tmp_path, capsys):
    out = tmp_path / "m.csv"
    rc = main(
        [
            "solve",
            str(datasets / "ml-traces" / "resnet50.csv"),
            "--capacity",
            "25%",
            "--solver",
            "msa",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    s = json.loads(capsys.readouterr().out)
    for key in (
        "solver",
        "capacity",
        "placed_bytes",
        "time_s",
        "all_slow_time_s",
        "lower_bound_time_s",
        "speedup_vs_all_slow",
    ):
        assert key in s
    assert s["placed_bytes"] > 0 and s["speedup_vs_all_slow"] > 1
    wl, offsets = read_csv(out)
    assert validate(wl.ids, wl.sizes, wl.starts, wl.ends, offsets, s["capacity"], 512).valid
    assert (tmp_path / "m.json").exists()
    proto = (tmp_path / "m.msa_overrides.txtpb").read_text()
    assert proto.count("assign_first: true") == int((offsets >= 0).sum())


def test_show_draws_png(datasets, tmp_path):
    out = tmp_path / "m.csv"
    assert (
        main(
            [
                "solve",
                str(datasets / "ml-traces" / "tiny_bert.csv"),
                "--capacity",
                "10%",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    png = tmp_path / "map.png"
    assert main(["show", str(out), "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_command(tmp_path, capsys):
    p = tmp_path / "m.csv"
    p.write_text("id,lower,upper,size,offset\n0,0,4,8,0\n1,2,6,8,4\n")
    assert main(["validate", str(p), "--capacity", "16"]) == 1
    assert "overlap" in capsys.readouterr().out
    p.write_text("id,lower,upper,size,offset\n0,0,4,8,0\n1,2,6,8,8\n")
    assert main(["validate", str(p), "--capacity", "16"]) == 0


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["solve", "{d}/nope.csv"], "no such file"),
        (["solve", "{bad}", "--capacity", "25%"], "bad.csv:3: field 'size'"),
        (["solve", "{good}", "--capacity", "100%", "--solver", "nope"], "unknown solver 'nope'"),
        (["solve", "{good}", "--capacity", "100%", "--target", "nope"], "unknown target 'nope'"),
        (["solve", "{good}", "--capacity", "lots"], "field 'capacity'"),
        (["solve", "{good}", "--capacity", "4", "--objective", "fit-all"], "no buffer fits"),
    ],
)
def test_bad_input_exit_code_and_message(tmp_path, capsys, args, pattern):
    bad = tmp_path / "bad.csv"
    bad.write_text("id,lower,upper,size\n0,0,4,8\n1,2,6,-1\n")
    good = tmp_path / "good.csv"
    good.write_text("id,lower,upper,size\n0,0,4,8\n1,2,6,16\n")
    out = tmp_path / "out.csv"
    argv = [a.format(d=tmp_path, bad=bad, good=good) for a in args] + ["--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("mallocgame: error:") and pattern in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_capacity_warning_for_time(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text("id,lower,upper,size\n0,0,4,8\n1,2,6,16\n")
    assert main(["solve", str(good), "--capacity", "4"]) == 0
    assert (
        "warning: capacity 4 bytes is smaller than the smallest buffer" in capsys.readouterr().err
    )


def test_extract_and_solve_zoo_workload(tmp_path, capsys):
    wl_path = tmp_path / "mlp.workload.json.gz"
    assert main(["extract", "mlp_train", "--out", str(wl_path), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_buffers"] > 50 and wl_path.exists()
    out = tmp_path / "m.csv"
    assert (
        main(
            [
                "solve",
                str(wl_path),
                "--capacity",
                "25%",
                "--solver",
                "msa",
                "--out",
                str(out),
                "--json",
            ]
        )
        == 0
    )
    s = json.loads(capsys.readouterr().out)
    assert s["valid"] and s["placed_bytes"] > 0 and s["speedup_vs_all_slow"] > 1
    wl, offsets = read_csv(out)
    assert validate(wl.ids, wl.sizes, wl.starts, wl.ends, offsets, s["capacity"], 512).valid
    # XLA buffer names make the overrides match real HLO instructions.
    assert "instruction_name_regex" in (tmp_path / "m.msa_overrides.txtpb").read_text()


def test_compare_prints_one_row_per_solver(tmp_path, capsys):
    good = tmp_path / "good.csv"
    good.write_text("id,lower,upper,size\n0,0,4,8\n1,2,6,16\n2,5,9,8\n")
    assert main(["compare", str(good), "--capacity", "50%", "--solvers", "all-slow,msa"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].split()[:3] == ["solver", "time", "(us)"]
    assert [ln.split()[0] for ln in lines[4:]] == ["all-slow", "msa"]
    assert main(["compare", str(good), "--capacity", "50%", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["results"]
    assert [r["solver"] for r in rows] == ["all-slow", "random", "greedy-size", "msa"]


@pytest.mark.parametrize("what, expected", [("solvers", "msa"), ("targets", "tpuv4i")])
def test_list(what, expected, capsys):
    assert main(["list", what]) == 0
    assert expected in capsys.readouterr().out.split()
