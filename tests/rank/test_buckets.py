"""Adaptive ranks by context length (:mod:`mallocgame.rank.buckets`): the bucketed config and
its refusals, decoding that switches bucket as the context grows (equal buckets == the plain
config; the re-projected cache == the lower ranks' cache of the same hidden states; a switch in
one layer == decoding at the lower ranks all the way; the bytes drop by the cost table's
ratio), and ``rank-buckets`` + ``rank-eval --decode --json`` end to end. Short contexts: a
16-token prompt, 4 new tokens, the switch at position 18."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

from mallocgame.cli.main import main
from mallocgame.errors import InputError
from mallocgame.rank.config import (
    MODEL_SHAPES,
    ContextBucket,
    ModelMismatchError,
    RankConfig,
    load_rank_config,
    loads_rank_config,
    save_rank_config,
)
from tests.rank.test_rank_kv_cli import run_json

pytestmark = pytest.mark.rank

HASH = "b179c9523d0e6a0f"
N = 30
FULL = (64,) * N
#: bucket 0 (contexts up to 18 tokens): full rank in most layers, 32 in some
HI_QK = (64,) * 10 + (32,) * 10 + (64,) * 10
HI_V = (64,) * 20 + (32,) * 10
#: bucket 1: lower everywhere (raw keys / values projected, and 32 -> 16 / 24 slices)
LO_QK = (16,) * 20 + (64,) * 5 + (32,) * 5
LO_V = (8,) * 10 + (24,) * 10 + (16,) * 10
SWITCH_AT = 18  # contexts of 19 tokens and more are in bucket 1


def _bucketed(hi_qk, hi_v, lo_qk, lo_v, method="whitened", model_hash=HASH) -> RankConfig:
    base = RankConfig.uniform("smollm2", model_hash, method=method)
    return RankConfig.with_buckets(
        base, [ContextBucket(SWITCH_AT, hi_qk, hi_v), ContextBucket(8192, lo_qk, lo_v)]
    )


# ----------------------------------------------------------------------------- the config


def test_round_trip_as_version_3(tmp_path):
    cfg = _bucketed(HI_QK, HI_V, LO_QK, LO_V)
    assert cfg.r_qk == LO_QK and cfg.r_v == LO_V  # the bucket holding seq_len 512
    path = save_rank_config(cfg, tmp_path / "a.json")
    d = json.loads(path.read_text())
    assert d["version"] == 3 and [b["up_to"] for b in d["context_buckets"]] == [18, 8192]
    assert d["context_buckets"][0]["layers"][10] == {"r_qk": 32, "r_v": 64}
    back = load_rank_config(path)
    assert back == cfg and back.bucketed
    assert back.bucket_index(18) == 0 and back.bucket_index(19) == 1
    assert back.for_context(1).r_qk == HI_QK and back.for_context(8192).r_v == LO_V
    with pytest.raises(ValueError, match="beyond the last bucket"):
        back.bucket_index(8193)
    # without buckets: written and read as before
    plain = back.for_context(512)
    assert not plain.bucketed and plain.to_dict()["version"] == 1
    assert "context_buckets" not in plain.to_dict()
    assert loads_rank_config(plain.to_json()).r_qk == LO_QK


def _bad(mutate) -> str:
    d = _bucketed(HI_QK, HI_V, LO_QK, LO_V).to_dict()
    mutate(d)
    with pytest.raises(InputError) as e:
        loads_rank_config(json.dumps(d), "a.json")
    msg = str(e.value)
    assert len(msg.splitlines()) == 1 and msg.startswith("a.json: "), msg
    return msg


@pytest.mark.parametrize(
    "mutate, field, text",
    [
        (
            lambda d: d["context_buckets"][1]["layers"][12].update(r_qk=48),
            "context_buckets[1].layers[12].r_qk",
            "48 is larger than context_buckets[0]'s 32",
        ),
        (
            lambda d: d["context_buckets"][1]["layers"][25].update(r_v=48),
            "context_buckets[1].layers[25].r_v",
            "a cache only loses rank",
        ),
        (
            lambda d: d["context_buckets"].reverse(),
            "context_buckets[1].up_to",
            "ascend strictly",
        ),
        (lambda d: d["context_buckets"][1].update(up_to=18), "context_buckets[1].up_to", "18"),
        (
            lambda d: d["context_buckets"][1].update(up_to=4096),
            "context_buckets[1].up_to",
            "context of 8192",
        ),
        (
            lambda d: d["context_buckets"][0]["layers"][0].update(r_qk=65),
            "context_buckets[0].layers[0].r_qk",
            "1..64",
        ),
        (
            lambda d: (
                d.update(rank_multiple=8) or d["context_buckets"][0]["layers"][0].update(r_qk=60)
            ),
            "context_buckets[0].layers[0].r_qk",
            "60 is not a multiple of rank_multiple 8",
        ),
        (lambda d: d["context_buckets"][0].pop("layers"), "context_buckets[0].layers", "missing"),
        (lambda d: d.update(version=2), "context_buckets", "version 3"),
        (lambda d: d.update(context_buckets=[]), "context_buckets", "non-empty"),
        (lambda d: d["layers"][0].update(r_qk=64), "layers[0].r_qk", "seq_len 512"),
    ],
)
def test_bad_buckets_name_the_field(mutate, field, text):
    msg = _bad(mutate)
    assert f"field '{field}'" in msg and text in msg, msg


def test_wrong_model_is_refused(tmp_path):
    path = save_rank_config(_bucketed(HI_QK, HI_V, LO_QK, LO_V), tmp_path / "a.json")
    with pytest.raises(ModelMismatchError, match="ffffffffffffffff"):
        load_rank_config(path, model="smollm2", model_hash="ffffffffffffffff")
    d = {
        "format": "mallocgame-ranks",
        "version": 3,
        "model": "minilm",
        "model_hash": "53aa51172d142c89",
        "seq_len": 256,
        "layers": [{"r_qk": 16, "r_v": 16}] * 6,
        "context_buckets": [{"up_to": 512, "layers": [{"r_qk": 16, "r_v": 16}] * 6}],
    }
    with pytest.raises(InputError, match="field 'context_buckets': minilm is not a causal"):
        loads_rank_config(json.dumps(d), "m.json")
    assert MODEL_SHAPES["smollm2"].max_context == 8192


# ----------------------------------------------------------------------------- decoding


@pytest.fixture(scope="module")
def prompt(smollm2_windows):
    return smollm2_windows[1][:2, :16]  # batch 2, 16 tokens


def test_equal_buckets_decode_as_the_plain_config(smollm2, smollm2_calibration, prompt):
    from mallocgame.rank import buckets, decode
    from mallocgame.rank.runtime import lowrank_params

    cfg = _bucketed(LO_QK, LO_V, LO_QK, LO_V)
    plan = buckets.bucket_plan(smollm2, smollm2_calibration, cfg)
    assert plan.switch_layers == ((),)  # nothing to re-project
    gen, _ = buckets.generate_bucketed(plan, smollm2.config, prompt, 4, keep_logits=True)
    plain = lowrank_params(smollm2, smollm2_calibration, cfg.for_context(512))
    ref, _ = decode.generate(plain, smollm2.config, prompt, 4, keep_logits=True)
    np.testing.assert_array_equal(gen.tokens, ref.tokens)
    np.testing.assert_allclose(gen.logits, ref.logits, rtol=0, atol=1e-5)
    assert [(s.position, s.from_bucket, s.to_bucket) for s in gen.switches] == [(18, 0, 1)]
    assert gen.switches[0].cache_bytes == gen.cache_bytes == ref.cache_bytes


def test_switch_in_one_layer_is_the_lower_ranks_all_the_way(smollm2, smollm2_calibration, prompt):
    """Buckets differing only in the last layer: every layer's input is the same in the
    switched run and in a run at the lower ranks, so after the switch the logits are those of
    the lower ranks' model on the same tokens (and before it the full model's)."""
    from mallocgame.rank import buckets
    from mallocgame.rank.models.smollm2 import logits

    lo_qk, lo_v = FULL[:-1] + (16,), FULL[:-1] + (8,)
    cfg = _bucketed(FULL, FULL, lo_qk, lo_v)
    plan = buckets.bucket_plan(smollm2, smollm2_calibration, cfg)
    assert plan.switch_layers == ((29,),)
    assert plan.switch_ops == (((("project", 16), ("project", 8)),),)
    gen, cache = buckets.generate_bucketed(plan, smollm2.config, prompt, 4, keep_logits=True)
    seq = np.concatenate([prompt, gen.tokens], axis=1)
    low = np.asarray(logits(plan.params[1], smollm2.config, seq))[:, 15:]
    full = np.asarray(logits(smollm2.params, smollm2.config, seq))[:, 15:]
    k = SWITCH_AT - 15  # logits index of the first step after the switch (position 18)
    scale = np.abs(full).max()
    np.testing.assert_allclose(gen.logits[:, :k], full[:, :k], atol=2e-4 * scale)
    np.testing.assert_allclose(gen.logits[:, k:], low[:, k:], atol=2e-4 * scale)
    assert np.abs(low[:, k:] - full[:, k:]).max() > 100 * 2e-4 * scale  # the switch mattered
    assert cache[29]["k"].shape == (2, 3, 20, 16) and cache[29]["v"].shape == (2, 3, 20, 8)


@pytest.mark.parametrize(
    "method", ["whitened", pytest.param("whitened+heads", marks=pytest.mark.slow)]
)
def test_reprojected_cache_is_the_lower_ranks_cache(smollm2, smollm2_calibration, prompt, method):
    """Full / 32 -> lower ranks in every layer (projections of raw keys and values, and
    slices): after the switch each layer's cache of the first 18 positions is, to float
    rounding, what the lower ranks' maps compute from the hidden states those positions had
    (bucket 0's forward pass); the cache bytes fall by the kv-cache cost table's ratio."""
    from mallocgame.rank import buckets
    from mallocgame.rank.models import smollm2 as sm
    from mallocgame.rank.tables import cost_table

    cfg = _bucketed(HI_QK, HI_V, LO_QK, LO_V, method=method)
    plan = buckets.bucket_plan(smollm2, smollm2_calibration, cfg)
    ops = dict(zip(plan.switch_layers[0], plan.switch_ops[0], strict=True))
    assert ops[0] == (("project", 16), ("project", 8))
    assert ops[10] == (("slice", 16), ("project", 24)) and ops[22] == (("keep", 64), ("slice", 16))
    gen, cache = buckets.generate_bucketed(plan, smollm2.config, prompt, 4, keep_logits=True)
    (sw,) = gen.switches
    assert (sw.position, sw.from_bucket, sw.to_bucket) == (SWITCH_AT, 0, 1) and sw.seconds > 0
    assert gen.first_bucket == 0 and len(gen.step_s) == 4

    seq = np.concatenate([prompt, gen.tokens], axis=1)[:, :SWITCH_AT]
    p0, p1 = plan.params
    x = p0["tok_emb"][jnp.asarray(seq)]
    for i, (a, b) in enumerate(zip(p0["layers"], p1["layers"], strict=True)):
        h = sm._rms_norm(x, a["attn_norm"], smollm2.config.rms_eps)
        _, _, _, keys, values = sm.project_qkv(b, smollm2.config, h)
        for got, want in ((cache[i]["k"], keys), (cache[i]["v"], values)):
            want = np.asarray(want)
            assert got.shape[:2] == want.shape[:2] and got.shape[3] == want.shape[3], i
            np.testing.assert_allclose(
                np.asarray(got[:, :, :SWITCH_AT]), want, atol=2e-5 * np.abs(want).max()
            )
        x = x + sm.attention(a, smollm2.config, h)[0]
        x = x + sm.mlp(a, smollm2.config, x)

    choices = (8, 16, 24, 32, 64)
    cost, _ = cost_table("smollm2", choices, 512, method, budget_kind="kv-cache")

    def per_token(r_qk, r_v):
        idx = [choices.index(r) for pair in zip(r_qk, r_v, strict=True) for r in pair]
        return float(cost[np.arange(2 * N), idx].sum())

    before = 2 * gen.cache_size * per_token(HI_QK, HI_V)
    assert sw.cache_bytes == gen.cache_bytes == 2 * gen.cache_size * per_token(LO_QK, LO_V)
    assert sw.cache_bytes / before == pytest.approx(per_token(LO_QK, LO_V) / per_token(HI_QK, HI_V))
    assert sw.cache_bytes < before


# ----------------------------------------------------------------------------- the CLI

SMOL = ["--cal-bases", "1", "--cal-loss", "1", "--solver", "uniform", "--rank-multiple", "32"]


def test_compose_and_rank_eval_decode(smollm2, env, tmp_path, capsys):
    """Two uniform configs (full rank, half the KV cache) composed with the switch at 18
    tokens; ``rank-eval --decode`` on a 16-token context with 4 new tokens switches once, the
    cache halving; every refusal is one line, exit 2, nothing written."""
    pytest.importorskip("matplotlib")
    full, half = tmp_path / "full.json", tmp_path / "half.json"
    for budget, out in (("1.0", full), ("0.5", half)):
        run_json(
            ["rank", "--model", "smollm2", "--budget", budget, "--budget-kind", "kv-cache"]
            + [*SMOL, "--out", str(out)]
        )
    adaptive = tmp_path / "adaptive.json"
    r = run_json(
        ["rank-buckets", "--bucket", f"18:{full}", "--bucket", f"max:{half}"]
        + ["--out", str(adaptive)]
    )
    assert [b["up_to"] for b in r["context_buckets"]] == [18, 8192]
    assert [b["kv_cache_fraction"] for b in r["context_buckets"]] == pytest.approx([1.0, 0.5])
    cfg = load_rank_config(adaptive)
    assert cfg.bucketed and cfg.for_context(18).r_qk == FULL and cfg.r_qk == (32,) * N
    assert cfg.meta["calibration"] == load_rank_config(half).meta["calibration"]

    capsys.readouterr()
    args = ["rank-eval", str(adaptive), "--decode", "--context", "16", "--new-tokens", "4"]
    assert main([*args, "--eval-windows", "1", "--repeats", "1", "--json"]) == 0
    e = json.loads(capsys.readouterr().out)
    (sw,) = e["switches"]
    assert sw["position"] == 18 and (sw["from_bucket"], sw["to_bucket"]) == (0, 1)
    assert sw["seconds"] > 0 and sw["compile_s"] > 0
    assert (
        e["kv_cache_bytes"] == sw["cache_bytes"]
        and e["kv_cache_bytes"] * 2 == e["kv_cache_bytes_full"]
    )
    assert e["kv_cache_ratio"] == pytest.approx(0.5)
    assert e["decode"]["first_bucket"] == 0 and e["decode"]["last_bucket"] == 1
    assert [b["up_to"] for b in e["context_buckets"]] == [18, 8192]
    assert e["ppl_bucket"]["index"] == 1 and e["ppl_bucket"]["window"] == 512
    assert "evaluation window" in e["ppl_bucket"]["note"]
    assert e["ppl"] > e["ppl_full"] > 1 and e["decode_tokens_per_s"] > 0

    # refusals
    bad = tmp_path / "bad.json"
    other = json.loads(half.read_text())
    other["model_hash"] = "ffffffffffffffff"
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps(other))
    for buckets_args, field, text in (
        ([f"18:{half}", f"max:{full}"], "layers[0].r_qk", "layer 0 r_qk 64"),
        ([f"100:{full}", f"18:{half}"], "bucket", "ascending"),
        ([f"18:{full}", f"18:{half}", f"max:{half}"], "bucket", "given twice"),
        ([f"18:{full}", f"max:{wrong}"], "model_hash", "differs"),
        ([f"18:{full}", f"4096:{half}"], "bucket", "short of"),
        ([f"x:{full}"], "bucket", "UP_TO"),
    ):
        capsys.readouterr()
        cmd = ["rank-buckets", *[a for b in buckets_args for a in ("--bucket", b)]]
        assert main([*cmd, "--out", str(bad)]) == 2
        err = capsys.readouterr().err
        assert f"field '{field}'" in err and text in err, err
        assert len(err.strip().splitlines()) == 1
        assert not bad.exists()
