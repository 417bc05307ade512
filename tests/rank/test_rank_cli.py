"""``mallocgame rank`` and ``mallocgame rank-eval`` end to end on MiniLM (small calibration),
the heat map, the refusal of another model's config, and bad input."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from mallocgame.cli.main import main

pytestmark = pytest.mark.rank

# Two rank choices and a tiny calibration keep the measured tables to 12 short runs.
SMALL = ["--choices", "16,32", "--cal-bases", "8", "--cal-loss", "1"]


@pytest.fixture(scope="module")
def ranked(cache, tmp_path_factory):
    """A greedy MiniLM rank config written by the CLI (JSON summary, config path)."""
    pytest.importorskip("matplotlib")
    from mallocgame.rank.calibration import load_model
    from mallocgame.rank.models.common import MissingExtraError

    try:
        load_model("minilm")
    except MissingExtraError as e:
        pytest.skip(f"rank extras not installed: {e}")
    out = tmp_path_factory.mktemp("rank") / "ranks.json"
    mp = pytest.MonkeyPatch()
    mp.setenv("MALLOCGAME_CACHE", str(cache))
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    try:
        with redirect_stdout(buf):
            rc = main(
                ["rank", "--model", "minilm", "--budget", "0.6", "--solver", "greedy"]
                + SMALL
                + ["--max-evals", "4", "--out", str(out), "--json"]
            )
    finally:
        mp.undo()
    assert rc == 0
    return json.loads(buf.getvalue()), out


def test_rank_writes_config_and_heatmap(ranked) -> None:
    summary, out = ranked
    d = json.loads(out.read_text())
    assert d["format"] == "mallocgame-ranks" and d["model"] == "minilm"
    assert d["budget"] == {"fraction": 0.6}
    assert d["meta"]["solver"] == "greedy"
    assert d["meta"]["calibration"]["bases"] == 8 and d["meta"]["calibration"]["loss"] == 1
    ranks = [x["r_qk"] for x in d["layers"]] + [x["r_v"] for x in d["layers"]]
    assert set(ranks) <= {16, 32} and 16 in ranks
    from mallocgame.rank.config import load_rank_config
    from mallocgame.rank.runtime import attention_flops

    frac = attention_flops(load_rank_config(out))["fraction"]
    assert frac <= 0.6 and frac == pytest.approx(summary["flops_fraction"])
    assert summary["calibration_loss"] > 0
    png = out.with_suffix(".png")
    assert summary["heatmap"] == str(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.parent.glob(".*tmp*"))  # atomic writes leave no temporaries


def test_rank_eval_reports_fidelity_and_flops(ranked, env, capsys) -> None:
    _, out = ranked
    capsys.readouterr()
    assert main(["rank-eval", str(out), "--eval-docs", "12", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["model"] == "minilm" and r["eval_docs"] == 12
    assert 0.5 < r["cos_mean"] < 1.0  # lowered, but close to the full model
    assert r["cos_min"] <= r["cos_mean"]
    assert -1 <= r["pearson"] <= 1 and -1 <= r["spearman"] <= 1
    assert r["flops_fraction"] <= 0.6
    assert r["loss"] == pytest.approx(1 - r["cos_mean"])
    # the text report
    assert main(["rank-eval", str(out), "--eval-docs", "4"]) == 0
    text = capsys.readouterr().out
    assert "cosine to full embeddings" in text and "attention FLOPs" in text


def test_rank_eval_refuses_another_models_config(ranked, env, tmp_path, capsys) -> None:
    _, out = ranked
    d = json.loads(out.read_text())
    d["model_hash"] = "0123456789abcdef"
    bad = tmp_path / "other-weights.json"
    bad.write_text(json.dumps(d))
    assert main(["rank-eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "0123456789abcdef" in err and "model_hash" in err
    # a config for SmolLM2 (30 layers) carrying MiniLM's hash: refused before loading SmolLM2
    from mallocgame.rank.models.common import MissingExtraError

    try:
        from mallocgame.rank.calibration import model_file_hash

        model_file_hash("smollm2")
    except MissingExtraError:
        return
    d2 = dict(d, model="smollm2", model_hash=json.loads(out.read_text())["model_hash"])
    d2["layers"] = [{"r_qk": 32, "r_v": 32}] * 30
    d2["seq_len"] = 512
    d2["meta"] = {}
    other = tmp_path / "smollm2-with-minilm-hash.json"
    other.write_text(json.dumps(d2))
    assert main(["rank-eval", str(other)]) == 2
    assert "hash" in capsys.readouterr().err


def test_rank_eval_bad_input(env, tmp_path, capsys) -> None:
    missing = tmp_path / "nope.json"
    assert main(["rank-eval", str(missing)]) == 2
    assert str(missing) in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert main(["rank-eval", str(broken)]) == 2
    assert "broken.json" in capsys.readouterr().err
    bad = tmp_path / "bad-rank.json"
    layers = [{"r_qk": 32, "r_v": 32}] * 6
    layers[2] = {"r_qk": 99, "r_v": 32}
    bad.write_text(
        json.dumps(
            {
                "format": "mallocgame-ranks",
                "version": 1,
                "model": "minilm",
                "model_hash": "53aa51172d142c89",
                "seq_len": 256,
                "layers": layers,
            }
        )
    )
    assert main(["rank-eval", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad-rank.json" in err and "layers[2].r_qk" in err
    cal = tmp_path / "bad-cal.json"
    d = json.loads(bad.read_text())
    d["layers"][2] = {"r_qk": 16, "r_v": 16}
    d["meta"] = {"calibration": {"bases": -3}}
    cal.write_text(json.dumps(d))
    pytest.importorskip("safetensors")
    from mallocgame.rank.calibration import model_file_hash

    try:
        d["model_hash"] = model_file_hash("minilm")
    except Exception as e:  # noqa: BLE001 - extras missing
        pytest.skip(str(e))
    cal.write_text(json.dumps(d))
    assert main(["rank-eval", str(cal)]) == 2
    assert "meta.calibration" in capsys.readouterr().err


def test_rank_bad_input(env, tmp_path, capsys, monkeypatch) -> None:
    out = str(tmp_path / "r.json")
    # below the cheapest choice: refused before anything is measured
    assert main(["rank", "--model", "minilm", "--budget", "0.05", "--out", out]) == 2
    assert "field 'budget'" in capsys.readouterr().err
    assert (
        main(["rank", "--model", "minilm", "--budget", "0.5", "--choices", "8,16", "--out", out])
        == 2
    )
    assert "field 'choices'" in capsys.readouterr().err
    assert (
        main(["rank", "--model", "minilm", "--budget", "0.5", "--choices", "8,x", "--out", out])
        == 2
    )
    assert "field 'choices'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["rank", "--model", "minilm", "--budget", "1.5", "--out", out])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        main(["rank", "--model", "gpt9", "--budget", "0.5", "--out", out])
    capsys.readouterr()
    args = ["rank", "--model", "minilm", "--budget", "0.5", "--out", out]
    assert main([*args, "--group-split", "10"]) == 2  # no grouped heads in MiniLM
    assert "field 'group-split'" in capsys.readouterr().err
    assert main([*args, "--group-split", "-1"]) == 2
    assert "field 'group-split'" in capsys.readouterr().err
    assert main([*args, "--group-min-rank", "33"]) == 2  # MiniLM's head dim is 32
    assert "field 'group-min-rank'" in capsys.readouterr().err
    assert main([*args, "--solver", "greedy", "--workers", "2"]) == 2  # the agent's option
    assert "field 'workers'" in capsys.readouterr().err
    assert main([*args, "--solver", "agent", "--workers", "-1"]) == 2
    assert "field 'workers'" in capsys.readouterr().err
    assert main([*args, "--solver", "agent", "--ray-cpus", "2"]) == 2  # without --ray
    assert "field 'ray-cpus'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "mallocgame.rank.agent", None)
    assert (
        main(["rank", "--model", "minilm", "--budget", "0.5", "--solver", "agent", "--out", out])
        == 1
    )
    assert "agent unavailable" in capsys.readouterr().err
    assert not (tmp_path / "r.json").exists()


def test_evaluator_matches_a_direct_forward_and_tables_are_cached(ranked, env) -> None:
    """The prefix-cached, memoised loss equals 1 - cos computed from scratch; the tables the
    CLI measured come back from the disk cache, with costs recomputed for another seq_len."""
    from mallocgame.rank.calibration import CalibSpec, load_setup
    from mallocgame.rank.evaluator import Evaluator
    from mallocgame.rank.measure import build_tables
    from mallocgame.rank.models.minilm import embed_sentences
    from mallocgame.rank.runtime import lowrank_params

    spec = CalibSpec("minilm", bases=8, loss=1)
    setup = load_setup(spec)
    ev = Evaluator(setup, (16, 32))
    idx = np.ones(12, np.int64)
    idx[[3, 6, 7]] = 0  # layer 1 values, layer 3 both lowered
    loss = ev(idx)[0]
    cfg = build_tables("minilm", choices=(16, 32), spec=spec).config(idx)
    params = lowrank_params(setup.model, setup.calib, cfg, bases=setup.bases)
    low = embed_sentences(setup.model, setup.loss_data, params=params)
    full = embed_sentences(setup.model, setup.loss_data)
    assert loss == pytest.approx(1 - np.mean(np.sum(low * full, 1)), abs=2e-5)
    assert ev(np.ones(12, np.int64))[0] == pytest.approx(0, abs=1e-6)
    n = ev.n_evaluated
    assert ev(idx)[0] == loss and ev.n_evaluated == n  # memoised
    t = build_tables("minilm", choices=(16, 32), spec=spec, seq_len=128)
    assert t.meta["cached"] and t.seq_len == 128
    assert t.sens.shape == (12, 2) and np.all(t.sens[:, -1] == 0) and np.all(t.sens[:, 0] > 0)
    assert np.all((t.energy[:, 0] > 0) & (t.energy[:, 0] < 1)) and np.all(t.energy[:, 1] == 1)
    assert np.all(t.fisher > 0)
    from mallocgame.rank.tables import cost_table

    np.testing.assert_allclose(t.cost, cost_table("minilm", (16, 32), 128)[0])


def test_calibration_cache_is_shared_across_loss_windows_and_methods(ranked, env, cache) -> None:
    """The calibration depends on the bases' text alone: a setup with more loss windows or
    another method reads the cached file instead of calibrating again."""
    from mallocgame.rank import calibration as cal

    h = cal.model_file_hash("minilm")
    p = cal.calib_path(h, cal.CalibSpec("minilm", bases=8, loss=1))
    assert p.is_file()  # written by the fixture's run
    assert cal.calib_path(h, cal.CalibSpec("minilm", bases=8, loss=3, method="pca")) == p
    assert cal.calib_path(h, cal.CalibSpec("minilm", bases=9, loss=1)) != p
    assert cal.calib_path(h, cal.CalibSpec("minilm", bases=8, loss=1, window=256)) != p
    before = sorted(cache.glob("rank/calib-*")), p.stat().st_mtime_ns
    setup = cal.load_setup(cal.CalibSpec("minilm", bases=8, loss=2, method="pca"))
    assert (sorted(cache.glob("rank/calib-*")), p.stat().st_mtime_ns) == before
    assert len(setup.loss_data) == 2


def test_rank_refine_from_a_greedy_config(ranked, env, tmp_path, capsys, monkeypatch) -> None:
    """``--solver refine --init`` starts from another run's config and never ends worse on the
    calibration loss, without measuring the rank tables (it measures its own moves); an --init
    of other calibration text, or without refine, is refused."""
    from mallocgame.rank import measure

    summary, out = ranked
    ref = tmp_path / "refined.json"
    args = ["rank", "--model", "minilm", "--budget", "0.6", "--solver", "refine"] + SMALL
    capsys.readouterr()
    monkeypatch.setattr(measure, "build_tables", lambda *a, **k: pytest.fail("tables measured"))
    rc = main(
        args
        + ["--init", str(out), "--refine-evals", "8", "--agree", "1", "--out", str(ref), "--json"]
    )
    assert rc == 0
    r = json.loads(capsys.readouterr().out)
    assert r["solver"] == "refine" and r["init"] == str(out)
    assert r["solver_options"]["refine_evals"] == 8 and r["solver_options"]["agree"] == 1.0
    assert r["flops_fraction"] <= 0.6
    assert r["calibration_loss"] <= summary["calibration_loss"] + 1e-9
    # the init must match this run's bases (calibration text) and solver; its loss windows
    # may differ (they steered the search that made it)
    other = ["rank", "--model", "minilm", "--budget", "0.6", "--solver", "refine"] + SMALL[:-1]
    assert main(other + ["2", "--init", str(out), "--refine-evals", "2", "--out", str(ref)]) == 0
    capsys.readouterr()
    bases = [a if a != "8" else "4" for a in args]  # --cal-bases 4
    assert main(bases + ["--init", str(out), "--out", str(ref)]) == 2
    assert "meta.calibration" in capsys.readouterr().err
    greedy = ["rank", "--model", "minilm", "--budget", "0.6", "--solver", "greedy"] + SMALL
    assert main(greedy + ["--init", str(out), "--out", str(ref)]) == 2
    assert "field 'init'" in capsys.readouterr().err
    # uniform reads only the costs too
    uniform = ["rank", "--model", "minilm", "--budget", "0.6", "--solver", "uniform"] + SMALL
    assert main(uniform + ["--out", str(tmp_path / "u.json"), "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["r_qk"] == [16] * 6 and r["flops_fraction"] <= 0.6


def test_evaluator_window_losses_and_pin(ranked, env) -> None:
    """Per-document losses average to the loss; pinning a config changes no number and makes
    a config that differs from it in the last layer run that layer only."""
    from mallocgame.rank.calibration import CalibSpec, load_setup
    from mallocgame.rank.evaluator import Evaluator

    ev = Evaluator(load_setup(CalibSpec("minilm", bases=8, loss=1)), (16, 32))
    idx = np.ones(12, np.int64)
    idx[[2, 5]] = 0
    w = ev.window_losses(idx)
    assert w.shape == (1, 1) and w[0, 0] == pytest.approx(ev(idx)[0])
    other = idx.copy()
    other[11] = 0
    fresh = Evaluator(ev.setup, (16, 32))
    fresh.pin(idx)
    calls = []
    real = fresh.layer
    fresh.layer = lambda i, *r: calls.append(i) or real(i, *r)
    assert fresh(other)[0] == pytest.approx(Evaluator(ev.setup, (16, 32))(other)[0], abs=1e-6)
    assert calls == [5]  # MiniLM has 6 layers: only the last ran
    fresh.pin(None)
    assert fresh(idx)[0] == pytest.approx(ev(idx)[0], abs=1e-6)


def test_tables_with_a_new_rank_reuse_the_default_tables(ranked, env, monkeypatch) -> None:
    """Tables for choices that add a rank to the (cached) default ones measure only the new
    rank's column; the shared columns and the Fisher pass come from the cached tables."""
    from mallocgame.rank.calibration import CalibSpec, load_setup
    from mallocgame.rank.evaluator import Evaluator
    from mallocgame.rank.measure import build_tables
    from mallocgame.rank.tables import DEFAULT_CHOICES

    spec = CalibSpec("minilm", bases=8, loss=1)
    monkeypatch.setitem(DEFAULT_CHOICES, "minilm", (16, 32))  # the fixture's tables
    base = build_tables("minilm", choices=(16, 32), spec=spec)
    assert base.meta["cached"]
    ev = Evaluator(load_setup(spec, True), (8, 16, 32))  # the setup build_tables uses
    t = build_tables("minilm", choices=(8, 16, 32), spec=spec, evaluator=ev)
    assert not t.meta["cached"] and t.meta["reused"].endswith(".npz")
    assert ev.n_evaluated == 12  # one run per part at rank 8 (the full model is not counted)
    np.testing.assert_array_equal(t.sens[:, 1:], base.sens)
    np.testing.assert_array_equal(t.fisher, base.fisher)
    rows = np.full((12, 12), 2, np.int64)
    rows[np.arange(12), np.arange(12)] = 0
    np.testing.assert_allclose(t.sens[:, 0], Evaluator(ev.setup, (8, 16, 32))(rows))
    assert np.all(t.sens[:, 0] >= t.sens[:, 1] - 1e-3)
    assert build_tables("minilm", choices=(8, 16, 32), spec=spec).meta["cached"]
