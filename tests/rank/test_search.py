"""Searches (mallocgame.rank.search): the per-group split and the evaluator's masked layout it
measures, the group helpers of the rank config, and bench rows written as rank configs."""

from __future__ import annotations

import dataclasses
import json

import pytest

from mallocgame.errors import InputError
from mallocgame.rank.config import (
    RankConfig,
    config_entries,
    layer_entry,
    load_rank_config,
    save_rank_config,
)
from mallocgame.rank.search import row_config_from_run, split_groups

pytestmark = pytest.mark.rank

HASH = "0123456789abcdef"


class FakeEvaluator:
    """Loss = sum over low-rank parts of w_g / r_g (group 0 of every part matters 4x more)."""

    def __init__(self) -> None:
        self.n_evaluated = 0
        self.memo: dict = {}
        self.pins: list = []

    def pin_ranks(self, ranks) -> None:
        self.pins.append(ranks)

    def layer_error(self, ranks, i: int) -> float:  # a perfect proxy: the loss, unmeasured
        self.n_screened = getattr(self, "n_screened", 0) + 1
        return self.value(ranks)

    def value(self, ranks) -> float:
        loss = 0.0
        for e in ranks:
            qg = e[2] if len(e) > 2 and e[2] is not None else (e[0],) * 3
            vg = e[3] if len(e) > 2 and e[3] is not None else (e[1],) * 3
            for g in (qg, vg):
                if min(g) < 64:
                    loss += sum(w / r for w, r in zip((4.0, 1.0, 1.0), g, strict=True))
        return loss

    def loss_of_ranks(self, ranks) -> float:
        if ranks not in self.memo:
            self.n_evaluated += 1
            self.memo[ranks] = self.value(ranks)
        return self.memo[ranks]


def test_split_moves_rank_to_the_group_that_needs_it_and_keeps_the_flops():
    r_qk = (16,) * 2 + (64,) * 28
    r_v = (8,) + (64,) * 29
    cfg = RankConfig("smollm2", HASH, r_qk, r_v, 512)
    ev = FakeEvaluator()
    trace: list = []
    res = split_groups(ev, cfg, step=4, trace=trace)
    out = res.config
    assert res.complete and res.loss < res.start_loss and res.moves == len(trace) > 0
    # w / r with weights 4, 1, 1: the optimum puts twice the rank on group 0
    assert out.groups(0)[0] == (24, 12, 12) and out.groups(1)[0] == (24, 12, 12)
    assert out.groups(0)[1] == (12, 4, 8) or out.groups(0)[1] == (12, 8, 4)
    assert out.groups(5) == ((64,) * 3, (64,) * 3)  # full parts untouched
    assert (out.r_qk, out.r_v) == (cfg.r_qk, cfg.r_v)  # layer ranks (FLOPs) kept
    assert all(sum(g) == 3 * r for g, r in zip(out.groups_list("qk"), out.r_qk, strict=True))
    assert ev.loss_of_ranks(config_entries(out)) == pytest.approx(res.loss)
    assert [t["loss"] for t in trace] == sorted((t["loss"] for t in trace), reverse=True)
    assert ev.pins[-1] is None  # unpinned at the end

    # screening by the (here perfect) proxy: the same split, fewer loss measurements
    ev2 = FakeEvaluator()
    screened = split_groups(ev2, cfg, step=4, screen=1)
    assert screened.config == out and ev2.n_screened > 0
    assert screened.evaluations < res.evaluations
    with pytest.raises(ValueError, match="screen"):
        split_groups(FakeEvaluator(), cfg, screen=0)
    # a pass may start at a later layer (wrapping around): the same optimum here
    late: list = []
    wrapped = split_groups(FakeEvaluator(), cfg, step=4, start_layer=1, trace=late)
    assert wrapped.config == out and late[0]["layer"] == 1
    with pytest.raises(ValueError, match="start_layer"):
        split_groups(FakeEvaluator(), cfg, start_layer=30)

    # limits: evaluations
    few = split_groups(FakeEvaluator(), cfg, step=4, max_evals=5)
    assert not few.complete and few.evaluations <= 5 + 6
    with pytest.raises(ValueError, match="no grouped"):
        split_groups(FakeEvaluator(), RankConfig.uniform("minilm", HASH, 16, 16), step=4)


def test_layer_entry_is_canonical():
    assert layer_entry(8, 16) == (8, 16)
    assert layer_entry(8, 16, (8, 8, 8), (16, 16, 16)) == (8, 16)
    assert layer_entry(8, 16, (16, 4, 4), None) == (8, 16, (16, 4, 4), None)


def _tiny_evaluator(smollm2, calibration, split):
    """An evaluator on one 128-token window of the calibration text."""
    from mallocgame.rank import text
    from mallocgame.rank.calibration import CalibSpec, RankSetup
    from mallocgame.rank.evaluator import Evaluator
    from mallocgame.rank.models.smollm2 import encode
    from mallocgame.rank.runtime import model_bases

    w = text.token_windows(lambda s: encode(smollm2, s), split.calibration, 128, 3)[2:3]
    spec = CalibSpec("smollm2", bases=2, loss=1, window=128)
    setup = RankSetup(smollm2, spec, calibration, tuple(model_bases(smollm2, calibration)), w)
    return Evaluator(setup)


def test_evaluator_scores_group_ranks_as_the_runtime_runs_them(smollm2, smollm2_calibration, split):
    """The evaluator's masked layout gives the loss that the runtime's per-group computation
    (lowrank_params with groups) gives on the same text."""
    import jax.numpy as jnp

    from mallocgame.rank.models.smollm2 import _token_nll, hidden_states
    from mallocgame.rank.runtime import lowrank_params

    ev = _tiny_evaluator(smollm2, smollm2_calibration, split)
    w = ev.setup.loss_data
    cfg = RankConfig(
        "smollm2",
        smollm2.model_hash,
        (16,) + (64,) * 29,
        (24,) + (64,) * 29,
        128,
        qk_groups=((32, 8, 8),) + ((64,) * 3,) * 29,
        v_groups=((8, 40, 24),) + ((64,) * 3,) * 29,
    )
    loss = ev.loss_of_ranks(config_entries(cfg))
    # the one-layer proxy: 0 at full rank, from the layer's input under the config's prefix
    full = ((64, 64),) * 30
    assert ev.layer_error(full, 3) == 0.0
    low = config_entries(cfg)
    e0 = ev.layer_error(low, 0)
    assert e0 > 0 and ev.layer_error(low[:1] + ((16, 16),) + full[2:], 1) > 0
    ev.pin_ranks(low)
    assert ev.layer_error(low, 0) == pytest.approx(e0)
    ev.pin_ranks(None)

    def nll(params) -> float:
        x, _ = hidden_states(params, smollm2.config, w)
        return float(_token_nll(smollm2.params, x, jnp.asarray(w), smollm2.config.rms_eps)) / 127

    direct = nll(lowrank_params(smollm2, smollm2_calibration, cfg)) - nll(smollm2.params)
    assert loss == pytest.approx(direct, abs=2e-4)
    assert loss != pytest.approx(
        ev.loss_of_ranks(
            config_entries(RankConfig("smollm2", smollm2.model_hash, cfg.r_qk, cfg.r_v, 128))
        ),
        abs=1e-4,
    )


def test_inherit_groups_keeps_the_init_split_where_the_rank_is_unchanged():
    from mallocgame.rank.config import inherit_groups

    r_qk, r_v = (16, 24) + (64,) * 28, (8, 16) + (64,) * 28
    init = RankConfig(
        "smollm2",
        HASH,
        r_qk,
        r_v,
        512,
        qk_groups=((32, 8, 8), (24, 36, 12)) + ((64,) * 3,) * 28,
        v_groups=((4, 8, 12), (16, 16, 16)) + ((64,) * 3,) * 28,
    )
    changed = RankConfig(
        "smollm2", HASH, (16, 16) + r_qk[2:], (8, 24) + r_v[2:], 512, method="whitened+vheads"
    )
    out, kept = inherit_groups(changed, init)
    assert kept == 58 and out.method == "whitened+vheads"
    assert out.groups(0) == ((32, 8, 8), (4, 8, 12))  # both parts kept their rank
    assert out.groups(1) == ((16, 16, 16), (24, 24, 24))  # both changed: equal split
    assert (out.r_qk, out.r_v) == (changed.r_qk, changed.r_v)
    with pytest.raises(ValueError, match="init is for"):
        inherit_groups(RankConfig.uniform("minilm", HASH, 16, 16), init)


class HeadEvaluator(FakeEvaluator):
    """Loss = sum over low-rank parts and query heads of w_h / r_h (head 1 matters 4x)."""

    def value(self, ranks) -> float:
        loss = 0.0
        for e in ranks:
            for k, r in ((2, e[0]), (3, e[1])):
                g = e[k] if len(e) > 2 and e[k] is not None else (r,) * 3
                g = g if len(g) == 9 else tuple(x for x in g for _ in range(3))
                if min(g) < 64:
                    loss += sum((4.0 if h == 1 else 1.0) / x for h, x in enumerate(g))
        return loss


def test_split_among_the_heads_of_a_group_with_a_per_head_method():
    cfg = RankConfig(
        "smollm2", HASH, (8,) + (64,) * 29, (8,) + (64,) * 29, 512, method="whitened+vheads"
    )
    res = split_groups(HeadEvaluator(), cfg, step=4, heads=True)
    qk, v = res.config.groups(0)
    assert len(qk) == 3 and len(v) == 9  # query-key maps stay per group under vheads
    assert v[:3] in ((8, 12, 4), (4, 12, 8)) and v[3:] == (8,) * 6  # moves within a group
    assert sum(v) == 9 * 8 and res.config.r_v == cfg.r_v and res.loss < res.start_loss
    both = split_groups(
        HeadEvaluator(), dataclasses.replace(cfg, method="whitened+heads"), heads=True
    )
    assert len(both.config.groups(0)[0]) == 9
    plain = split_groups(HeadEvaluator(), dataclasses.replace(cfg, method="whitened"), heads=True)
    assert len(plain.config.groups(0)[1]) == 3  # no per-head bases: per group only


class ZeroEvaluator(FakeEvaluator):
    """Loss = sum over low-rank parts of w_g / r_g with weights 4, 1, 0: group 2 does not
    matter at any rank, even 0 (a group emptied where it matters costs infinity)."""

    def value(self, ranks) -> float:
        loss = 0.0
        for e in ranks:
            vg = e[3] if len(e) > 2 and e[3] is not None else (e[1],) * 3
            if min(vg) < 64:
                for w, r in zip((4.0, 1.0, 0.0), vg, strict=True):
                    loss += w / r if r else (float("inf") if w else 0.0)
        return loss


def test_split_may_empty_a_group_with_min_rank_zero():
    cfg = RankConfig("smollm2", HASH, (64,) * 30, (8,) + (64,) * 29, 512)
    kept = split_groups(ZeroEvaluator(), cfg, step=4)  # default: each group keeps >= step
    assert kept.config.groups(0)[1] == (12, 8, 4)
    emptied = split_groups(ZeroEvaluator(), cfg, step=4, min_rank=0)
    assert emptied.config.groups(0)[1] == (16, 8, 0) and emptied.loss < kept.loss
    assert RankConfig.from_dict(emptied.config.to_dict()) == emptied.config  # 0 is valid
    with pytest.raises(ValueError, match="min_rank"):
        split_groups(ZeroEvaluator(), cfg, min_rank=65)


def test_rescale_groups_keeps_proportions_zeros_and_the_sum():
    from mallocgame.rank.config import inherit_groups, rescale_groups

    assert rescale_groups((16, 8, 0), 16, 64) == (32, 16, 0)
    assert rescale_groups((16, 8, 0), 4, 64) == (8, 4, 0)
    assert rescale_groups((12, 24, 12), 8, 64) == (6, 12, 6)
    wide = rescale_groups((60, 60, 60, 28, 28, 28, 60, 56, 52), 56, 64)  # capped at 64
    assert max(wide) == 64 and sum(wide) == 9 * 56 and wide[3] == wide[4] == wide[5]
    assert sum(rescale_groups((0, 0, 24), 40, 64)) == 120  # more than one group can hold
    with pytest.raises(ValueError, match="rescale"):
        rescale_groups((0, 0, 0), 8, 64)

    init = RankConfig(
        "smollm2",
        HASH,
        (16,) * 30,
        (8,) * 30,
        512,
        qk_groups=((32, 16, 0),) * 30,
        v_groups=((16, 8, 0),) * 30,
    )
    changed = RankConfig("smollm2", HASH, (8,) + (16,) * 29, (16,) + (8,) * 29, 512)
    out, kept = inherit_groups(changed, init, rescale=True)
    assert kept == 58 and out.groups(0) == ((16, 8, 0), (32, 16, 0))
    assert out.groups(1) == ((32, 16, 0), (16, 8, 0))
    assert inherit_groups(changed, init)[0].groups(0) == ((8, 8, 8), (16, 16, 16))


def test_evaluator_choice_vectors_keep_a_group_template(smollm2, smollm2_calibration, split):
    """``Evaluator.group_template``: a choice vector (as ``refine`` asks) is scored with the
    template's split, rescaled where its rank differs."""
    from mallocgame.rank.config import inherit_groups

    ev = _tiny_evaluator(smollm2, smollm2_calibration, split)
    t = RankConfig(
        "smollm2",
        smollm2.model_hash,
        (16,) * 30,
        (16,) * 30,
        512,
        qk_groups=((32, 16, 0),) + ((16,) * 3,) * 29,
        v_groups=((24, 24, 0),) + ((16,) * 3,) * 29,
    )
    idx = [ev.choices.index(16)] * 60
    idx[0] = ev.choices.index(8)  # layer 0's query-key rank lowered
    assert ev.ranks_of(idx)[0] == (8, 16)
    ev.group_template = t
    entries = ev.ranks_of(idx)
    assert entries[0] == (8, 16, (16, 8, 0), (24, 24, 0)) and entries[1] == (16, 16)
    cfg = RankConfig("smollm2", smollm2.model_hash, (8,) + (16,) * 29, (16,) * 30, 512)
    assert entries == config_entries(inherit_groups(cfg, t, rescale=True)[0])
    assert ev(idx)[0] == pytest.approx(ev.loss_of_ranks(entries))


class BiasedProxyEvaluator(ZeroEvaluator):
    """A screening proxy that ranks every transfer emptying a group last."""

    def layer_error(self, ranks, i: int) -> float:
        vg = ranks[i][3] if len(ranks[i]) > 2 and ranks[i][3] is not None else (ranks[i][1],) * 3
        return 1e9 * (min(vg) == 0) + self.value(ranks)


def test_screened_split_still_measures_emptying_a_group():
    cfg = RankConfig("smollm2", HASH, (64,) * 30, (8,) + (64,) * 29, 512)
    out = split_groups(BiasedProxyEvaluator(), cfg, step=4, min_rank=0, screen=1)
    assert out.config.groups(0)[1] == (16, 8, 0)


# ----------------------------------------------------------------------------- bench rows


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


def test_a_row_becomes_a_config_the_loader_reads(tmp_path) -> None:
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"rows": [_row(solver="uniform"), _row()]}))
    out = tmp_path / "cfg.json"
    save_rank_config(row_config_from_run(run, "smollm2", 0.3, "refine+groups"), out)
    cfg = load_rank_config(out, "smollm2", "b179c9523d0e6a0f")
    assert list(cfg.r_qk) == [16] * 30 and list(cfg.r_v) == [8] * 30
    assert cfg.groups(0) == ((8, 24, 16), (8, 8, 8)) and cfg.groups(29) == ((16,) * 3, (4, 12, 8))
    assert cfg.groups(1) == ((16,) * 3, (8,) * 3)
    assert cfg.method == "whitened" and cfg.budget == {"fraction": 0.3}
    assert cfg.meta["calibration"]["bases"] == 32 and cfg.meta["solver"] == "refine+groups"
    assert cfg.meta["from"] == f"{run}:refine+groups"


def test_missing_or_broken_rows_are_named(tmp_path) -> None:
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"rows": [_row(), _row(solver="refine", r_v=None)]}))
    with pytest.raises(InputError) as e:
        row_config_from_run(run, "smollm2", 0.3, "greedy")
    assert str(e.value) == f"{run}: no greedy row for smollm2 at budget 0.3"
    with pytest.raises(InputError) as e:
        row_config_from_run(run, "smollm2", 0.3, "refine")
    assert str(e.value).startswith(f"{run}: rows[1] (refine)")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InputError, match="not a bench output"):
        row_config_from_run(tmp_path / "bad.json", "smollm2", 0.3, "x")
