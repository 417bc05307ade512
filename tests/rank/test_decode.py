"""Decoding with the low-rank KV cache: exact at full rank, the runtime's own logits below it,
bytes measured from the cache's arrays."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mallocgame.rank import decode
from mallocgame.rank.config import RankConfig
from mallocgame.rank.runtime import lowrank_params
from mallocgame.rank.tables import cost_table

pytestmark = [pytest.mark.rank, pytest.mark.slow]


def _prompt(windows: np.ndarray) -> np.ndarray:
    return windows[:2, :8]  # batch 2, 8 tokens


def test_full_rank_cache_reproduces_the_full_model(smollm2, smollm2_calibration, smollm2_windows):
    """Keys in the q-k basis and values in the v basis at full rank (the projections run, no
    bypass): the decoded logits are the full model's on the whole sequence."""
    from mallocgame.rank.models.smollm2 import logits

    cfg = RankConfig.uniform("smollm2", smollm2.model_hash)
    forced = lowrank_params(smollm2, smollm2_calibration, cfg, bypass_full=False)
    assert forced["layers"][0]["qk_b"].shape == (3, 64, 64)
    prompt = _prompt(smollm2_windows[1])
    gen, _ = decode.generate(forced, smollm2.config, prompt, 3, keep_logits=True)
    assert gen.tokens.shape == (2, 3) and gen.logits.shape == (2, 4, smollm2.config.vocab_size)
    seq = np.concatenate([prompt, gen.tokens], axis=1)
    ref = np.asarray(logits(smollm2.params, smollm2.config, seq))[:, 7:]
    np.testing.assert_allclose(gen.logits, ref, atol=2e-3 * np.abs(ref).max())
    np.testing.assert_array_equal(gen.tokens, np.argmax(ref[:, :-1], axis=-1))  # greedy


@pytest.mark.parametrize("method", ["whitened", "whitened+heads"])
def test_low_rank_cache_decodes_the_runtimes_model(
    smollm2, smollm2_calibration, smollm2_windows, method
):
    """Below full rank the cached decode gives the same logits as the runtime's forward pass of
    the same config on the whole sequence, far from the full model's; the cache is smaller by
    what the cost table of the kv-cache budget says."""
    from mallocgame.rank.models.smollm2 import logits

    r_qk = (16,) * 10 + (64,) * 10 + (32,) * 10
    r_v = (64,) * 10 + (24,) * 10 + (8,) * 10
    cfg = RankConfig("smollm2", smollm2.model_hash, r_qk, r_v, 512, method=method)
    p = lowrank_params(smollm2, smollm2_calibration, cfg)
    prompt = _prompt(smollm2_windows[1])
    gen, cache = decode.generate(p, smollm2.config, prompt, 3, keep_logits=True)
    seq = np.concatenate([prompt, gen.tokens], axis=1)
    ref = np.asarray(logits(p, smollm2.config, seq))[:, 7:]
    np.testing.assert_allclose(gen.logits, ref, atol=2e-3 * np.abs(ref).max())
    full = np.asarray(logits(smollm2.params, smollm2.config, seq))[:, 7:]
    assert np.abs(gen.logits - full).max() > 0.05 * np.abs(full).max()

    full_gen, _ = decode.generate(smollm2.params, smollm2.config, prompt, 3)
    assert full_gen.cache_bytes == 2 * 11 * 30 * 2 * 3 * 64 * 4  # [B, G, S, 64] float32, K and V
    choices = (8, 16, 24, 32, 64)
    cost, full_cost = cost_table("smollm2", choices, 512, method, budget_kind="kv-cache")
    idx = [choices.index(r) for pair in zip(r_qk, r_v, strict=True) for r in pair]
    assert full_cost == full_gen.cache_bytes_per_token
    assert cost[np.arange(60), idx].sum() == gen.cache_bytes_per_token
    assert gen.cache_bytes < full_gen.cache_bytes
    units = 9 if method == "whitened+heads" else 3  # maps per query head or per group
    assert cache[0]["k"].shape == (2, units, 11, 16)
    assert cache[0]["v"].shape == (2, 3, 11, 64)  # full values: as stored
    assert cache[29]["v"].shape == (2, units, 11, 8)


def test_attention_step_and_measure(smollm2, smollm2_calibration, smollm2_windows):
    cfg = RankConfig.uniform("smollm2", smollm2.model_hash, 16, 16)
    p = lowrank_params(smollm2, smollm2_calibration, cfg)
    prompt = smollm2_windows[1][:1, :16]
    m = decode.measure_decode(smollm2, {"full": smollm2.params, "low": p}, prompt, 2, repeats=2)
    assert m["low"]["kv_cache_bytes"] * 4 == m["full"]["kv_cache_bytes"]
    for r in m.values():
        assert r["decode_tokens_per_s"] > 0 and r["attention_s_per_token"] > 0
        assert r["tokens"].shape == (1, 2)


def test_decode_refuses_per_group_ranks(smollm2, smollm2_calibration):
    cfg = RankConfig.uniform("smollm2", smollm2.model_hash, 16, 16)
    cfg = dataclasses.replace(cfg, qk_groups=((8, 16, 24),) + ((16, 16, 16),) * 29)
    p = lowrank_params(smollm2, smollm2_calibration, cfg)
    with pytest.raises(decode.DecodeUnsupportedError, match="layer 0 keeps per-group ranks"):
        decode.prefill(p, smollm2.config, np.zeros((1, 4), np.int32), 8)
