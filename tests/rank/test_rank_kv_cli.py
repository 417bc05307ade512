"""``mallocgame rank --budget-kind kv-cache`` / ``--rank-multiple`` for every solver, and
``mallocgame rank-eval --decode`` end to end (MiniLM with two rank choices and a tiny
calibration; SmolLM2 with uniform ranks, one calibration window and a 16-token context)."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stdout

import pytest

from mallocgame.cli.main import main

pytestmark = pytest.mark.rank

# as tests/rank/test_rank_cli.py: two rank choices and a tiny calibration (12 short runs)
SMALL = ["--choices", "16,32", "--cal-bases", "8", "--cal-loss", "1"]
SOLVER_ARGS = {
    "uniform": [],
    "spectral": [],
    "fisher": [],
    "greedy": ["--max-evals", "4"],
    "refine": ["--max-evals", "2", "--refine-evals", "4"],
    "agent": ["--time-limit", "2"],
}


def _extras(model: str) -> None:
    from mallocgame.rank.calibration import load_model
    from mallocgame.rank.models.common import MissingExtraError

    try:
        load_model(model)
    except MissingExtraError as e:
        pytest.skip(f"rank extras not installed: {e}")


def run_json(args: list[str]) -> dict:
    """``mallocgame ARGS --json`` in this process: its exit code 0 and its JSON summary."""
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = main([*args, "--json"])
    assert rc == 0
    return json.loads(buf.getvalue())


@pytest.mark.parametrize("solver", list(SOLVER_ARGS))
def test_kv_cache_budget_for_every_solver(solver, env, tmp_path) -> None:
    """Each solver plays the KV-cache budget through the same tables: the config's measured
    cache fraction (by the decode cache's cost table) is within the budget, the config records
    the kind, and the summary says which fraction the budget is of."""
    pytest.importorskip("matplotlib")
    _extras("minilm")
    if solver == "agent":
        pytest.importorskip("haiku")
    from mallocgame.rank.config import load_rank_config
    from mallocgame.rank.fidelity import kv_cache_fraction
    from mallocgame.rank.runtime import attention_flops

    out = tmp_path / f"{solver}.json"
    r = run_json(
        ["rank", "--model", "minilm", "--budget", "0.6", "--budget-kind", "kv-cache"]
        + ["--solver", solver, *SMALL, *SOLVER_ARGS[solver], "--out", str(out)]
    )
    cfg = load_rank_config(out)
    assert cfg.budget == {"fraction": 0.6, "kind": "kv-cache"} and cfg.budget_kind == "kv-cache"
    frac = kv_cache_fraction(cfg)
    assert frac <= 0.6 + 1e-12
    assert r["budget_kind"] == "kv-cache" and "KV cache" in r["budget_of"]
    assert r["kv_cache_fraction"] == pytest.approx(frac) and r["fraction"] == pytest.approx(frac)
    assert r["flops_fraction"] == pytest.approx(attention_flops(cfg)["fraction"])
    assert cfg.meta["solver"] == solver and cfg.meta["budget_kind"] == "kv-cache"
    if solver != "uniform":  # uniform keeps rank 16 everywhere (0.5); the others use more
        assert frac > 0.5


def test_text_output_names_the_budget_kind(env, tmp_path, capsys) -> None:
    pytest.importorskip("matplotlib")
    _extras("minilm")
    base = ["rank", "--model", "minilm", "--budget", "0.6", "--solver", "uniform", *SMALL]
    assert main([*base, "--budget-kind", "kv-cache", "--out", str(tmp_path / "k.json")]) == 0
    text = capsys.readouterr().out
    assert "KV-cache bytes fraction" in text and "KV cache's bytes per token" in text
    assert main([*base, "--out", str(tmp_path / "f.json")]) == 0
    text = capsys.readouterr().out
    assert "FLOPs fraction" in text and "KV cache's bytes" not in text
    d = json.loads((tmp_path / "f.json").read_text())
    assert d["budget"] == {"fraction": 0.6} and "rank_multiple" not in d  # as before


def test_rank_multiple(env, tmp_path, capsys) -> None:
    """``--rank-multiple 16`` (MiniLM: choices 16, 32) through greedy; bad combinations are
    one-line errors naming the option."""
    pytest.importorskip("matplotlib")
    _extras("minilm")
    out = tmp_path / "m16.json"
    r = run_json(
        ["rank", "--model", "minilm", "--budget", "0.6", "--rank-multiple", "16"]
        + ["--cal-bases", "8", "--cal-loss", "1", "--max-evals", "4", "--out", str(out)]
    )
    d = json.loads(out.read_text())
    assert d["rank_multiple"] == 16 and r["rank_multiple"] == 16
    ranks = [x[k] for x in d["layers"] for k in ("r_qk", "r_v")]
    assert all(x % 16 == 0 for x in ranks) and 16 in ranks
    capsys.readouterr()
    base = ["rank", "--model", "minilm", "--budget", "0.6", "--out", str(tmp_path / "x.json")]
    assert main([*base, "--rank-multiple", "8", "--choices", "4,8,32"]) == 2
    err = capsys.readouterr().err
    assert "field 'choices'" in err and "--rank-multiple 8" in err and len(err.splitlines()) == 1
    assert main([*base, "--rank-multiple", "32"]) == 2  # MiniLM: only full rank is left
    err = capsys.readouterr().err
    assert "field 'budget'" in err and len(err.splitlines()) == 1
    with pytest.raises(SystemExit) as e:
        main([*base, "--rank-multiple", "12"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main([*base, "--budget-kind", "bytes"])
    assert e.value.code == 2
    capsys.readouterr()
    s = ["rank", "--model", "smollm2", "--budget", "0.5", "--out", str(tmp_path / "s.json")]
    assert main([*s, "--budget-kind", "kv-cache", "--group-split", "5"]) == 2
    assert "field 'group-split'" in capsys.readouterr().err
    assert main([*s, "--rank-multiple", "8", "--group-split", "5", "--group-step", "4"]) == 2
    assert "field 'group-step'" in capsys.readouterr().err
    assert not list(tmp_path.glob("x.*")) and not list(tmp_path.glob("s.*"))


# ----------------------------------------------------------------------------- SmolLM2 decode

SMOL = ["--cal-bases", "1", "--cal-loss", "1"]


@pytest.fixture(scope="module")
def smol_config(cache, tmp_path_factory):
    """A uniform SmolLM2 config at half the KV-cache bytes, ranks multiples of 32 (costs
    only: nothing is measured before rank-eval)."""
    pytest.importorskip("matplotlib")
    _extras("smollm2")
    out = tmp_path_factory.mktemp("rank-kv") / "smol.json"
    mp = pytest.MonkeyPatch()
    mp.setenv("MALLOCGAME_CACHE", str(cache))
    try:
        r = run_json(
            ["rank", "--model", "smollm2", "--budget", "0.5", "--budget-kind", "kv-cache"]
            + ["--rank-multiple", "32", "--solver", "uniform", *SMOL, "--out", str(out)]
        )
    finally:
        mp.undo()
    return r, out


def test_smollm2_rank_multiple_32(smol_config, env, tmp_path, capsys) -> None:
    r, out = smol_config
    d = json.loads(out.read_text())
    assert d["rank_multiple"] == 32 and d["budget"] == {"fraction": 0.5, "kind": "kv-cache"}
    ranks = [x[k] for x in d["layers"] for k in ("r_qk", "r_v")]
    assert all(x % 32 == 0 for x in ranks)
    assert r["kv_cache_fraction"] == pytest.approx(0.5)
    # rank 32 is the cheapest choice left: 0.3 of the cache cannot be met
    capsys.readouterr()
    args = ["rank", "--model", "smollm2", "--budget", "0.3", "--budget-kind", "kv-cache"]
    assert main([*args, "--rank-multiple", "32", "--out", str(tmp_path / "n.json")]) == 2
    err = capsys.readouterr().err
    assert "field 'budget'" in err and "KV cache" in err and len(err.splitlines()) == 1


def test_rank_eval_decode_json(smol_config, env, capsys) -> None:
    _, out = smol_config
    capsys.readouterr()
    args = ["rank-eval", str(out), "--decode", "--context", "16", "--new-tokens", "2"]
    assert main([*args, "--eval-windows", "1", "--repeats", "1", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    for k in (
        "kv_cache_bytes",
        "kv_cache_bytes_full",
        "kv_cache_ratio",
        "decode_tokens_per_s",
        "decode_tokens_per_s_full",
        "decode_speedup",
        "attention_s_per_token",
        "ppl",
    ):
        assert isinstance(r[k], float | int) and r[k] > 0, k
    assert r["kv_cache_ratio"] == pytest.approx(0.5)  # measured: r = 32 of 64 everywhere
    assert r["kv_cache_bytes"] * 2 == r["kv_cache_bytes_full"]
    assert r["decode_speedup"] == pytest.approx(
        r["decode_tokens_per_s"] / r["decode_tokens_per_s_full"]
    )
    assert r["ppl"] > r["ppl_full"] > 1
    assert r["decode"]["context"] == 16 and r["decode"]["new_tokens"] == 2


def test_rank_eval_decode_errors(smol_config, env, tmp_path, capsys) -> None:
    _, out = smol_config
    capsys.readouterr()
    too_long = ["rank-eval", str(out), "--decode", "--context", "9000", "--new-tokens", "2"]
    assert main(too_long) == 2
    err = capsys.readouterr().err
    assert "field 'context'" in err and len(err.strip().splitlines()) == 1
    assert main(["rank-eval", str(out), "--decode", "--new-tokens", "0"]) == 2
    assert "field 'new-tokens'" in capsys.readouterr().err
    # a MiniLM config: refused before any model is loaded
    d = {
        "format": "mallocgame-ranks",
        "version": 1,
        "model": "minilm",
        "model_hash": "53aa51172d142c89",
        "seq_len": 256,
        "layers": [{"r_qk": 16, "r_v": 16}] * 6,
    }
    mini = tmp_path / "mini.json"
    mini.write_text(json.dumps(d))
    assert main(["rank-eval", str(mini), "--decode", "--context", "16"]) == 2
    err = capsys.readouterr().err
    assert "field 'decode'" in err and "smollm2" in err and len(err.strip().splitlines()) == 1


def test_bench_rank_with_the_kv_cache_budget(env, tmp_path, monkeypatch, capsys) -> None:
    """``mallocgame bench rank --budget-kind kv-cache``: every run within the cache budget,
    both fractions recorded, the report names the kind; a folder keeps one kind."""
    pytest.importorskip("matplotlib")
    _extras("minilm")
    from mallocgame.rank import measure
    from mallocgame.rank.calibration import CalibSpec

    real = measure.build_tables
    monkeypatch.setattr(  # the small tables of this module's runs
        measure,
        "build_tables",
        lambda model, **k: real(model, choices=(16, 32), spec=CalibSpec(model, bases=8, loss=1)),
    )
    out = tmp_path / "bench"
    args = ["bench", "rank", "minilm", "--budgets", "0.6", "--solvers", "uniform,greedy"]
    args += ["--budget-kind", "kv-cache", "--max-evals", "4", "--out", str(out), "--quiet"]
    assert main([*args, "--no-pictures"]) == 0
    runs = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines()]
    assert [r["solver"] for r in runs] == ["uniform", "greedy"]
    for r in runs:
        assert r["status"] == "ok" and r["budget_kind"] == "kv-cache"
        assert r["kv_cache_fraction"] <= 0.6 + 1e-12 and r["flops_fraction"] > 0
    assert runs[1]["kv_cache_fraction"] > runs[0]["kv_cache_fraction"] == pytest.approx(0.5)
    md = (out / "results.md").read_text()
    assert "KV-cache bytes per token" in md and "| KV cache |" in md
    assert json.loads((out / "summary.json").read_text())["budget_kinds"] == ["kv-cache"]
    capsys.readouterr()
    flops = [a if a != "kv-cache" else "flops" for a in args]
    assert main([*flops, "--resume"]) == 2
    assert "field 'budget-kind'" in capsys.readouterr().err
