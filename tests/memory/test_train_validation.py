"""Validation split, generated training-step-like workloads and checkpoint selection on
validation (tiny networks, seconds each)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from mallocgame.cli.main import main
from mallocgame.memory import splits
from mallocgame.memory.env import PreparedProblem
from mallocgame.memory.train import play_pool, tiny_options, train_run, validation_metrics
from tests.memory.test_train import tiny_problems


# --------------------------------------------------------------------------- splits
def test_train_validation_heldout_are_pairwise_disjoint():
    splits.check_disjoint()
    groups = {
        "train": splits.TRAIN_WIDE,
        "validation": splits.VALIDATION,
        "heldout": splits.HELDOUT + splits.HELDOUT_LARGE,
    }
    progs = {g: {s.program for s in specs} for g, specs in groups.items()}
    assert not progs["train"] & progs["validation"]
    assert not progs["train"] & progs["heldout"]
    assert not progs["validation"] & progs["heldout"]
    assert {s.program for s in splits.TRAIN} <= progs["train"]  # train-wide contains train
    assert {"conv_train", "embed_train", "iree_mobilebert.csv"} <= progs["validation"]
    assert len(splits.TRAIN_WIDE) > len(splits.TRAIN)
    with pytest.raises(ValueError, match="validation"):
        splits.check_disjoint(validation=splits.VALIDATION + (splits.zoo("mlp_train"),))
    with pytest.raises(ValueError, match="held-out"):
        splits.check_disjoint(validation=splits.VALIDATION + (splits.trace("resnet50.csv"),))
    # a generated workload is its generator and seed: the same seed in two splits clashes
    with pytest.raises(ValueError, match="layered#1"):
        splits.check_disjoint(validation=splits.VALIDATION + (splits.layered(1, 30),))
    assert splits.generated(5, 80).program != splits.layered(5, 80).program
    assert splits.is_validation_program("conv_train") and not splits.is_validation_program(
        "mlp_train"
    )
    assert {"G_1.csv", "tiny_bert.csv", "gpt2_train"} <= progs["heldout"]
    assert splits.is_heldout_program("tiny_bert.csv") and splits.get_split("heldout-large")
    with pytest.raises(ValueError, match="held-out"):
        splits.check_disjoint(validation=splits.VALIDATION + (splits.trace("G_1.csv"),))
    # the loop programs: scan_mlp trains, scan_glu validates, rnn_scan stays held out
    loops = {
        "train-loops": splits.get_split("train-loops"),
        "validation-loops": splits.get_split("validation-loops"),
    }
    assert set(splits.TRAIN_WIDE) < set(loops["train-loops"]) and set(splits.VALIDATION) < set(
        loops["validation-loops"]
    )
    assert {s.program for s in loops["train-loops"]} - progs["train"] == {"scan_mlp"}
    assert {s.program for s in loops["validation-loops"]} - progs["validation"] == {"scan_glu"}
    assert splits.is_validation_program("scan_glu") and not splits.is_heldout_program("scan_mlp")
    with pytest.raises(ValueError, match="train"):
        splits.check_disjoint(
            validation=splits.VALIDATION_LOOPS + (splits.zoo("scan_mlp", layers=2),)
        )


def test_layered_traces_are_deterministic_valid_and_sized():
    a, b = splits.layered_trace(7, 20), splits.layered_trace(7, 20)
    assert np.array_equal(a.sizes, b.sizes) and np.array_equal(a.starts, b.starts)
    assert np.array_equal(a.ends, b.ends)
    a.check()
    assert (a.sizes % 64 == 0).all() and (a.ends > a.starts).all()
    assert not np.array_equal(a.sizes, splits.layered_trace(8, 20).sizes)
    # the generated workloads of the training and validation splits stay within 400 buffers
    for spec in splits.TRAIN_WIDE + splits.VALIDATION:
        if spec.kind == "random":
            wl = spec.load()
            assert 10 <= wl.num_buffers <= 400, spec.title
            assert wl.name == spec.title


# --------------------------------------------------------------------------- batched validation
class _BestFit:
    """A stand-in agent whose search plays best fit (action 1 when legal, else slow memory):
    exactly msa's line of play."""

    def search(self, obs, legal, moves_left, greedy, seed):
        class Out:
            action = np.where(legal[:, 1], 1, 0).astype(np.int32)

        return Out()


def test_play_pool_plays_every_problem_to_the_end():
    pool = [PreparedProblem(p) for p in tiny_problems(4, seed=3)]
    assert (
        len({pp.instance.num_buffers for pp in pool}) > 1
    )  # games of different lengths in one batch
    r = play_pool(_BestFit(), pool, copies=2)
    assert r.shape == (4, 2)
    assert np.allclose(r[:, 0], [pp.msa_return for pp in pool], atol=1e-9)
    m = validation_metrics(r, pool)
    assert (
        m["val_score"] == pytest.approx(1.0) and m["val_win_rate"] == 0 and m["val_loss_rate"] == 0
    )


def test_validation_metrics_score_is_a_geometric_mean_of_speedups():
    pool = [PreparedProblem(p) for p in tiny_problems(2, seed=5)]
    base = np.array([pp.msa_return for pp in pool])
    # problem 0: the best copy saves 10% more of the all-slow time than msa; problem 1: msa's
    r = np.stack([np.array([base[0], base[0] + 0.1]), np.array([base[1] - 0.2, base[1]])])
    m = validation_metrics(r, pool)
    s0 = (1 - base[0]) / (1 - base[0] - 0.1)
    assert m["val_score"] == pytest.approx(np.sqrt(s0 * 1.0))
    assert m["val_greedy_score"] == pytest.approx(
        np.sqrt(1.0 * (1 - base[1]) / (1 - base[1] + 0.2))
    )
    assert m["val_win_rate"] == 0.5 and m["val_loss_rate"] == 0.0


# --------------------------------------------------------------------------- selection
def test_training_keeps_the_policy_that_scores_best_on_validation(tmp_path):
    from agent.trainer import load_policy
    from mallocgame.memory.solvers.policy import Agent

    out = tmp_path / "run"
    val = tiny_problems(3, seed=11)
    s = train_run(
        tiny_options(
            out=str(out), steps=30, problems=tiny_problems(), val_every=10, val_problems=val
        )
    )
    for name in ("policy.npz", "last-policy.npz", "best.json", "curves.csv", "checkpoint.npz"):
        assert (out / name).exists(), name
    best = json.loads((out / "best.json").read_text())
    assert s["selected"]["step"] == best["step"]
    rows = [r for r in csv.DictReader(open(out / "curves.csv")) if r.get("val_score")]
    scores = {int(r["step"]): float(r["val_score"]) for r in rows}
    assert set(scores) >= {10, 20, 30}
    assert best["val_score"] == pytest.approx(max(scores.values()))
    assert scores[best["step"]] == pytest.approx(best["val_score"])
    assert best["step"] == min(
        k for k, v in scores.items() if v >= max(scores.values()) - 1e-9
    )  # ties: earliest
    # policy.npz is that policy: replaying it on the validation problems gives the same score
    pool = [PreparedProblem(p) for p in val]
    again = validation_metrics(play_pool(Agent(load_policy(out / "policy.npz")), pool), pool)
    assert again["val_score"] == pytest.approx(best["val_score"], abs=1e-9)
    info = json.loads((out / "run.json").read_text())
    assert info["selected"]["step"] == best["step"]

    s2 = train_run(
        tiny_options(
            out=str(out),
            steps=40,
            resume=True,
            problems=tiny_problems(),
            val_every=10,
            val_problems=val,
        )
    )
    assert s2["resumed"] and s2["selected"]["val_score"] >= best["val_score"] - 1e-12


def test_cli_rejects_validating_on_the_training_split(capsys):
    code = main(["train", "--out", "/nonexistent/x", "--split", "validation", "--val-every", "10"])
    assert code == 2
    assert "validation split must differ" in capsys.readouterr().err
