"""The bench's rank suite: statistics and report from runs.jsonl, bad input, the README section."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from mallocgame.bench import rank, rank_report
from mallocgame.bench.records import read_jsonl
from mallocgame.bench.render import update_readme
from mallocgame.cli import bench as cli
from mallocgame.errors import InputError


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="mallocgame")
    cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["bench", *argv])
    args.argv = argv
    return args.fn(args)


def _rec(model, budget, solver, seed, loss, status="ok"):
    r = {"model": model, "budget": budget, "solver": solver, "seed": seed, "status": status}
    if status != "ok":
        return r | {"error": "ValueError: boom"}
    held = (
        {"ppl": 20 * np.exp(loss), "ppl_full": 20.0, "loss": loss}
        if model == "smollm2"
        else {
            "cos_mean": 1 - loss,
            "cos_min": 0.5,
            "pearson": 0.6,
            "spearman": 0.5,
            "pearson_full": 0.656,
            "spearman_full": 0.508,
            "loss": loss,
        }
    )
    n = 30 if model == "smollm2" else 6
    return r | {
        "flops_fraction": budget - 0.01,
        "r_qk": [16] * n,
        "r_v": [32] * n,
        "calibration_loss": loss * 0.9,
        "solve_s": 1.0,
        "heldout": held,
    }


@pytest.fixture()
def folder(tmp_path):
    out = tmp_path / "b"
    out.mkdir()
    runs = [
        _rec("minilm", 0.5, "uniform", 0, 0.2),
        _rec("minilm", 0.5, "greedy", 0, 0.05),
        _rec("minilm", 0.5, "agent", 0, 0.12),
        _rec("minilm", 0.5, "agent", 1, 0.08),
        _rec("smollm2", 0.3, "uniform", 0, 1.0),
        _rec("smollm2", 0.3, "greedy", 0, 0.8),
        _rec("smollm2", 0.3, "agent", 0, 0.0, status="error"),
    ]
    (out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs) + '{"cut sh')
    (out / "config.json").write_text(
        json.dumps(
            {
                "schema": 1,
                "mode": "rank",
                "invocations": [
                    {
                        "started": "2026-11-26T00:00:00",
                        "command": "mallocgame bench rank minilm smollm2",
                        "host": {"cpus": 2, "cpu_model": "AMD EPYC"},
                    }
                ],
            }
        )
    )
    return out


def test_ratios_are_losses_over_uniforms_per_task(folder):
    # the cut-short last line is skipped
    rat = rank_report.ratios(read_jsonl(folder / "runs.jsonl"))
    assert rat["uniform"][("minilm", 0.5)] == pytest.approx([1.0])
    assert rat["greedy"][("minilm", 0.5)] == pytest.approx([0.25])
    assert rat["greedy"][("smollm2", 0.3)] == pytest.approx([0.8])
    assert sorted(rat["agent"][("minilm", 0.5)]) == pytest.approx([0.4, 0.6])
    assert ("smollm2", 0.3) not in rat["agent"]  # the failed run has no score


def test_report_tables_summary_and_pictures(folder):
    pytest.importorskip("matplotlib")
    paths = rank_report.write_rank_report(folder, reps=200)
    md = (folder / "results.md").read_text()
    assert "mallocgame bench rank minilm smollm2" in md
    assert "**Failures**: 1 runs raised an error" in md
    rows = {ln.split("|")[1].strip(): ln for ln in md.splitlines() if ln.startswith("| `")}
    assert set(rows) == {"`uniform`", "`greedy`", "`agent`"}
    assert rows["`greedy`"].split("|")[5].strip() == "1/2"  # tasks < 0.5: minilm only
    assert rows["`greedy`"].split("|")[6].strip() == "2/2"  # best on both tasks
    s = json.loads((folder / "summary.json").read_text())
    assert s["solvers"]["greedy"]["per_task_median_vs_uniform"] == {
        "minilm@0.5": pytest.approx(0.25),
        "smollm2@0.3": pytest.approx(0.8),
    }
    assert s["solvers"]["agent"]["errors"] == 1
    for name in ("ranks-minilm-0.5", "ranks-smollm2-0.3", "loss-vs-uniform"):
        assert open(paths[name], "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_report_only_writes_the_readme_section(folder, tmp_path):
    pytest.importorskip("matplotlib")
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\n## Results\n\nwords\n\n## Layout\n")
    assert (
        _run(
            [
                "rank",
                "--out",
                str(folder),
                "--report-only",
                "--no-pictures",
                "--readme",
                str(readme),
            ]
        )
        == 0
    )
    text = readme.read_text()
    i, j = (
        text.index("<!-- mallocgame-bench:rank:begin -->"),
        text.index("<!-- mallocgame-bench:rank:end -->"),
    )
    assert i < j < text.index("## Layout")
    assert f"mallocgame bench rank --out {folder.as_posix()} --report-only --readme" in text[i:j]
    assert "| minilm | 0.5 | `greedy` |" in text[i:j]
    update_readme(readme, "rank", rank_report.readme_section(folder, reps=200))  # in place
    assert readme.read_text().count("mallocgame-bench:rank:begin") == 1


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        (["rank", "gpt5"], "instances"),
        (["rank", "minilm", "--budgets", "0.5,lots"], "budgets"),
        (["rank", "minilm", "--budgets", "1.5"], "budgets"),
        (["rank", "minilm", "--solvers", "greedy"], "solvers"),  # no uniform to score against
        (["rank", "minilm", "--solvers", "uniform,nope"], "solvers"),
        (["rank", "minilm", "--seeds", "0"], "seeds"),
        (["rank", "minilm", "--max-evals", "0"], "max-evals"),
        (["rank", "minilm", "--time-limit", "-2"], "time-limit"),
    ],
)
def test_bad_input_names_the_field_before_any_model_loads(tmp_path, argv, field):
    with pytest.raises(InputError) as e:
        _run([*argv, "--out", str(tmp_path / "o"), "--quiet"])
    assert e.value.field == field
    assert not (tmp_path / "o" / "runs.jsonl").exists()


def test_an_unfinished_folder_is_not_overwritten_without_resume(folder):
    with pytest.raises(InputError, match="--resume"):
        _run(["rank", "minilm", "--out", str(folder), "--quiet"])
    with pytest.raises(InputError, match="no finished runs"):
        rank_report.write_rank_report(folder.parent / "empty")


def test_deterministic_solvers_and_defaults_come_from_the_registry():
    from mallocgame import registry

    det = {s.name for s in registry.specs("rank") if s.deterministic}
    assert set(rank.DETERMINISTIC) == det and "agent" not in det
    assert rank.default_solvers()[:4] == ["uniform", "spectral", "fisher", "greedy"]
