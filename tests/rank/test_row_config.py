"""``benchmarks/rank_row_config.py``: a fidelity bench row written as a rank config that the
CLI's loader reads back (ranks, split, method, calibration), and its errors."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from mallocgame.rank.config import load_rank_config

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "rank_row_config.py"


def _main():
    spec = importlib.util.spec_from_file_location("rank_row_config", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.main


def _row(**kw):
    cal = {"model": "smollm2", "bases": 32, "loss": 16, "window": 512, "method": "whitened"}
    return {
        "model": "smollm2",
        "model_hash": "b179c9523d0e6a0f",
        "budget": 0.3,
        "solver": "refine+groups",
        "flops_fraction": 0.3,
        "r_qk": [16] * 30,
        "r_v": [8] * 30,
        "qk_groups": [[8, 24, 16]] + [[16, 16, 16]] * 29,
        "v_groups": [[8, 8, 8]] * 29 + [[4, 12, 8]],
        "calibration": cal,
        "calibration_loss": 0.7,
        "heldout": {"ppl": 58.6, "ppl_full": 26.7, "loss": 0.79},
    } | kw


def test_a_row_becomes_a_config_the_loader_reads(tmp_path, capsys) -> None:
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"rows": [_row(solver="uniform"), _row()]}))
    out = tmp_path / "cfg.json"
    main = _main()
    assert main([str(run), "--solver", "refine+groups", "--budget", "0.3", "--out", str(out)]) == 0
    cfg = load_rank_config(out, "smollm2", "b179c9523d0e6a0f")
    assert list(cfg.r_qk) == [16] * 30 and list(cfg.r_v) == [8] * 30
    assert cfg.groups(0) == ((8, 24, 16), (8, 8, 8)) and cfg.groups(29) == ((16,) * 3, (4, 12, 8))
    assert cfg.groups(1) == ((16,) * 3, (8,) * 3)
    assert cfg.method == "whitened" and cfg.budget == {"fraction": 0.3}
    assert cfg.meta["calibration"]["bases"] == 32 and cfg.meta["solver"] == "refine+groups"
    assert cfg.meta["from"] == f"{run}:refine+groups"


def test_missing_or_broken_rows_are_named_and_nothing_is_written(tmp_path, capsys) -> None:
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"rows": [_row(), _row(solver="refine", r_v=None)]}))
    out = tmp_path / "cfg.json"
    main = _main()
    assert main([str(run), "--solver", "greedy", "--budget", "0.3", "--out", str(out)]) == 2
    assert f"{run}: no greedy row for smollm2 at budget 0.3" in capsys.readouterr().err
    assert main([str(run), "--solver", "refine", "--budget", "0.3", "--out", str(out)]) == 2
    assert f"{run}: rows[1] (refine)" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert (
        main([str(tmp_path / "bad.json"), "--solver", "x", "--budget", "0.3", "--out", str(out)])
        == 2
    )
    assert "not a bench output" in capsys.readouterr().err
    assert not out.exists()
