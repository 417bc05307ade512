"""Low-rank attention runtime: exact at full rank, reduced work and bounded loss below it."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest

from mallocgame.rank.config import ModelMismatchError, RankConfig
from mallocgame.rank.fidelity import minilm_fidelity
from mallocgame.rank.runtime import (
    Calibration,
    calibrate,
    lowrank_params,
    model_bases,
)

pytestmark = pytest.mark.rank


# ----------------------------------------------------------------------------- SmolLM2


def test_smollm2_full_rank_reproduces_the_model(smollm2, smollm2_calibration, smollm2_windows):
    from mallocgame.rank.models.smollm2 import logits

    cfg = RankConfig.uniform("smollm2", smollm2.model_hash)
    bypass = lowrank_params(smollm2, smollm2_calibration, cfg)
    assert all(
        set(p) == set(q) for p, q in zip(bypass["layers"], smollm2.params["layers"], strict=True)
    )

    x = smollm2_windows[1][:1, :96]
    ref = np.asarray(logits(smollm2.params, smollm2.config, x))
    for method in ("whitened", "pca"):
        forced = lowrank_params(
            smollm2, smollm2_calibration, dataclasses.replace(cfg, method=method), bypass_full=False
        )
        assert forced["layers"][0]["qk_a"].shape == (3, 64, 64)
        got = np.asarray(logits(forced, smollm2.config, x))
        np.testing.assert_allclose(got, ref, atol=2e-3 * np.abs(ref).max())


def test_smollm2_low_rank_computes_in_reduced_dims(smollm2, smollm2_calibration, smollm2_windows):
    from mallocgame.rank.models.smollm2 import perplexity

    r_qk = (16,) * 15 + (64,) * 15
    r_v = (64,) * 15 + (24,) * 15
    cfg = RankConfig("smollm2", smollm2.model_hash, r_qk, r_v, 512)
    p = lowrank_params(smollm2, smollm2_calibration, cfg)
    assert p["layers"][0]["qk_a"].shape == (3, 64, 16) and p["layers"][0]["qk_b"].shape == (
        3,
        64,
        16,
    )
    assert p["layers"][0]["wv"].shape == (576, 3, 64) and "qk_a" not in p["layers"][20]
    assert p["layers"][20]["wv"].shape == (576, 3, 24) and p["layers"][20]["wo"].shape == (
        9,
        24,
        576,
    )

    ev = smollm2_windows[1][:1]
    full = perplexity(smollm2, ev)
    uniform = RankConfig.uniform("smollm2", smollm2.model_hash, 32, 32)
    low = perplexity(smollm2, ev, params=lowrank_params(smollm2, smollm2_calibration, uniform))
    # Measured on 8 windows with 8 calibration windows: 28.4 full -> 53.4 at r = 32 everywhere.
    assert full < low < 4 * full, (full, low)


def test_smollm2_fused_attention_matches_the_blocked_runtime(smollm2, smollm2_calibration):
    """The fused path (jax.nn.dot_product_attention, padded to one head width; on a GPU the
    same call runs cuDNN's kernel) gives the runtime's attention, low rank and full."""
    from mallocgame.rank.latency import attention_stack

    r_qk = (16, 64, 8, 40)
    r_v = (24, 64, 40, 8)
    n = len(r_qk)
    cfg = RankConfig("smollm2", smollm2.model_hash, r_qk + (64,) * 26, r_v + (64,) * 26, 512)
    layers = lowrank_params(smollm2, smollm2_calibration, cfg)["layers"]
    x = jnp.asarray(np.random.default_rng(0).normal(size=(1, 160, 576)), jnp.float32)
    ref = np.asarray(attention_stack(smollm2, n)(layers, x))
    got = np.asarray(attention_stack(smollm2, n, impl="dpa")(layers, x))
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
    full = smollm2.params["layers"]
    np.testing.assert_allclose(
        np.asarray(attention_stack(smollm2, n, impl="dpa")(full, x)),
        np.asarray(attention_stack(smollm2, n)(full, x)),
        atol=1e-4 * np.abs(ref).max(),
    )
    with pytest.raises(ValueError, match="attention impl"):
        attention_stack(smollm2, n, impl="flash")


def test_smollm2_group_ranks(smollm2, smollm2_calibration):
    """Per-group ranks: each group computes in its own rank; an equal split through the grouped
    path is the plain runtime, and an unequal one matches an independent masked computation
    (the wider basis with the columns beyond each group's rank zeroed, values refitted per
    group)."""
    from mallocgame.rank.latency import attention_stack
    from mallocgame.rank.runtime import _grouped_layer_params, _refit_wo, layer_params

    m, calib = smollm2, smollm2_calibration
    bases = model_bases(m, calib)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(1, 96, 576)), jnp.float32)
    one = attention_stack(m, 1)
    plain = layer_params(m, calib, bases[2], 2, 16, 24)
    eq = _grouped_layer_params(m, calib, bases[2], 2, (16,) * 3, (24,) * 3, "whitened", True)
    assert isinstance(eq["qk_a"], tuple) and eq["wv"][0].shape == (576, 24)
    ref = np.asarray(one([plain], x))
    np.testing.assert_allclose(np.asarray(one([eq], x)), ref, atol=1e-4 * np.abs(ref).max())

    qg, vg = (32, 8, 8), (8, 40, 24)
    got = layer_params(m, calib, bases[2], 2, 16, 24, qk_groups=qg, v_groups=vg)
    assert [a.shape[1] for a in got["qk_a"]] == [32, 8, 8]
    assert [w.shape for w in got["wo"]] == [(3, 8, 576), (3, 40, 576), (3, 24, 576)]
    # masked reference: basis columns beyond each group's rank set to zero
    b = bases[2]
    qa, qb, va = b.qk_a[:, :, :32].copy(), b.qk_b[:, :, :32].copy(), b.v_a[:, :, :40].copy()
    for g in range(3):
        qa[g, :, qg[g] :] = 0
        qb[g, :, qg[g] :] = 0
        va[g, :, vg[g] :] = 0
    p = m.params["layers"][2]
    st = calib.layers[2]
    wv = np.einsum("dgk,gkr->dgr", np.asarray(p["wv"], np.float64), va)
    bv = np.einsum("gk,gkr->gr", -st.mv, va)
    wo = np.zeros((9, 40, 576))
    for h in range(9):
        g = h // 3
        wo[h, : vg[g]] = _refit_wo(va[g, :, : vg[g]], st.co[h], np.asarray(p["wo"][h]), "whitened")
    masked = dict(plain, qk_a=jnp.asarray(qa, jnp.float32), qk_b=jnp.asarray(qb, jnp.float32))
    masked.update(wv=jnp.asarray(wv, jnp.float32), bv=jnp.asarray(bv, jnp.float32))
    masked.update(wo=jnp.asarray(wo, jnp.float32))
    ref = np.asarray(one([masked], x))
    out = np.asarray(one([got], x))
    np.testing.assert_allclose(out, ref, atol=1e-4 * np.abs(ref).max())
    np.testing.assert_allclose(
        np.asarray(attention_stack(m, 1, impl="dpa")([got], x)), out, atol=1e-4 * np.abs(out).max()
    )
    # the evaluator's masked plain layout: the same attention, plain shapes
    from mallocgame.rank.runtime import masked_layer_params

    mk = masked_layer_params(m, calib, bases[2], 2, qg, vg)
    assert mk["qk_a"].shape == (3, 64, 32) and mk["wo"].shape == (9, 40, 576)
    np.testing.assert_allclose(np.asarray(one([mk], x)), out, atol=1e-4 * np.abs(out).max())
    mk = masked_layer_params(m, calib, bases[2], 2, (64, 60, 56), (64, 64, 64))
    full_qk = layer_params(m, calib, bases[2], 2, 64, 64, bypass_full=False)
    assert mk["qk_a"].shape == (3, 64, 64) and float(jnp.abs(mk["qk_a"][1, :, 60:]).max()) == 0
    assert float(jnp.abs(full_qk["qk_a"][1, :, 60:]).max()) > 0
    # through a config: the groups reach the runtime, FLOPs as the means say
    cfg = RankConfig(
        "smollm2",
        m.model_hash,
        (16,) * 30,
        (24,) * 30,
        512,
        qk_groups=((32, 8, 8),) + ((16,) * 3,) * 29,
    )
    lp = lowrank_params(m, calib, cfg)["layers"]
    assert isinstance(lp[0]["qk_a"], tuple) and not isinstance(lp[1]["qk_a"], tuple)


def test_config_for_other_weights_is_refused(smollm2, smollm2_calibration):
    other = RankConfig.uniform("smollm2", "ffffffffffffffff", 32, 32)
    with pytest.raises(ModelMismatchError, match=smollm2.model_hash):
        lowrank_params(smollm2, smollm2_calibration, other)
    stale = dataclasses.replace(smollm2_calibration, model_hash="ffffffffffffffff")
    with pytest.raises(ModelMismatchError, match="calibration"):
        lowrank_params(smollm2, stale, RankConfig.uniform("smollm2", smollm2.model_hash, 32, 32))


def test_calibration_save_load(smollm2_calibration, tmp_path):
    path = str(tmp_path / "cal.npz")
    smollm2_calibration.save(path)
    back = Calibration.load(path)
    assert back.model_hash == smollm2_calibration.model_hash and back.n_tokens == 1024
    assert len(back.layers) == 30
    np.testing.assert_array_equal(back.layers[7].ck, smollm2_calibration.layers[7].ck)


# ----------------------------------------------------------------------------- MiniLM


@pytest.fixture(scope="module")
def minilm_calibration(minilm, split):
    return calibrate(minilm, list(split.calibration[:16]))


def test_minilm_full_rank_reproduces_the_model(minilm, minilm_calibration, lee):
    from mallocgame.rank.models.minilm import embed_sentences

    docs = lee[0][:6]
    ref = embed_sentences(minilm, docs)
    cfg = RankConfig.uniform("minilm", minilm.model_hash, seq_len=256)
    for method in ("whitened", "pca"):
        p = lowrank_params(
            minilm, minilm_calibration, dataclasses.replace(cfg, method=method), bypass_full=False
        )
        np.testing.assert_allclose(embed_sentences(minilm, docs, params=p), ref, atol=1e-4)


def test_minilm_low_rank_fidelity(minilm, minilm_calibration, lee, minilm_lee_embeddings):
    docs, human = lee
    cfg = RankConfig.uniform("minilm", minilm.model_hash, 16, 16, seq_len=256)
    bases = model_bases(minilm, minilm_calibration)
    p = lowrank_params(minilm, minilm_calibration, cfg, bases=bases)
    assert p["layers"][0]["wq"].shape == (384, 12, 16) and p["layers"][0]["wo"].shape == (
        12,
        16,
        384,
    )
    f = minilm_fidelity(minilm, p, docs, human, full=minilm_lee_embeddings)
    # Measured (48 calibration docs): cos 0.83 mean, Pearson 0.647 (full 0.656).
    assert f["cos_mean"] > 0.7, f
    assert f["pearson"] > 0.55, f
    assert jnp.isfinite(f["spearman"])


def test_smollm2_per_head_bases(smollm2, smollm2_calibration, smollm2_windows):
    """``whitened+heads``: one basis per query head. Reference: the same model rebuilt with one
    key-value head per query head (keys and values repeated), calibrated on its own and run
    with per-group bases: its groups *are* the query heads. ``whitened+vheads``: the same for
    the values, with the per-group query-key maps (repeated over the heads in the reference)."""
    from mallocgame.rank.latency import attention_stack
    from mallocgame.rank.models.smollm2 import perplexity
    from mallocgame.rank.runtime import LayerBases, layer_params, masked_layer_params

    m, calib = smollm2, smollm2_calibration
    H = m.config.n_heads
    layers = [
        dict(p, wk=jnp.repeat(p["wk"], 3, axis=1), wv=jnp.repeat(p["wv"], 3, axis=1))
        for p in m.params["layers"]
    ]
    big = dataclasses.replace(
        m,
        config=dataclasses.replace(m.config, n_kv_heads=H),
        params={**m.params, "layers": layers},
    )
    big_calib = calibrate(big, smollm2_windows[0])
    bases = model_bases(m, calib, "whitened+heads")
    vheads, group = model_bases(m, calib, "whitened+vheads"), model_bases(m, calib)
    big_bases = model_bases(big, big_calib)
    assert vheads[2].qk_a.shape == (H, 64, 64)  # group maps repeated over the heads
    np.testing.assert_allclose(vheads[2].qk_a[::3], group[2].qk_a)
    np.testing.assert_allclose(vheads[2].v_a, bases[2].v_a)
    assert bases[2].qk_a.shape == bases[2].v_a.shape == (H, 64, 64)
    np.testing.assert_allclose(bases[2].qk_b, big_bases[2].qk_b, rtol=1e-3, atol=1e-3)
    x = jnp.asarray(np.random.default_rng(2).normal(size=(1, 96, 576)), jnp.float32)
    one, big_one = attention_stack(m, 1), attention_stack(big, 1)

    def per_head(g):  # per-group ranks as per-head ones (per-head ones as they are)
        return g if g is None or len(g) == H else tuple(r for r in g for _ in range(3))

    def close(a, b):
        a, b = np.asarray(a), np.asarray(b)
        np.testing.assert_allclose(a, b, atol=2e-4 * np.abs(b).max())

    for rq, rv, qg, vg in [
        (16, 24, None, None),
        (16, 64, None, None),
        (64, 8, None, None),
        (16, 24, (32, 8, 8), (8, 40, 24)),
        (16, 24, (32, 8, 8), (8, 16, 24, 40, 32, 24, 24, 24, 24)),  # values ranked per head
    ]:
        got = layer_params(
            m, calib, bases[2], 2, rq, rv, "whitened+heads", qk_groups=qg, v_groups=vg
        )
        ref = layer_params(
            big, big_calib, big_bases[2], 2, rq, rv, qk_groups=per_head(qg), v_groups=per_head(vg)
        )
        out = one([got], x)
        close(out, big_one([ref], x))
        if rv == 64:  # full values keep the stored per-group weights
            assert got["wv"].shape == (576, 3, 64)
        if qg is not None:  # per-head tuples; the masked layout is the same attention
            assert len(got["qk_a"]) == H and [a.shape[1] for a in got["qk_a"]][::3] == [32, 8, 8]
            mk = masked_layer_params(m, calib, bases[2], 2, qg, vg, "whitened+heads")
            assert mk["qk_a"].shape == (H, 64, 32) and mk["wv"].shape == (576, H, 40)
            close(one([mk], x), out)
        # values per head, query-key maps per group (keys projected once per group)
        vb, gb = vheads[2], group[2]
        got = layer_params(m, calib, vb, 2, rq, rv, "whitened+vheads", qk_groups=qg, v_groups=vg)
        rep = lambda a: np.repeat(a, 3, axis=0)  # noqa: E731
        ref = layer_params(
            big,
            big_calib,
            LayerBases(rep(gb.qk_a), rep(gb.qk_b), big_bases[2].v_a),
            2,
            rq,
            rv,
            qk_groups=per_head(qg),
            v_groups=per_head(vg),
        )
        out = one([got], x)
        close(out, big_one([ref], x))
        if rq < 64:
            assert len(got["qk_b"]) == 3 and len(got["k_mean"]) == 3
        if rv < 64 and qg is None:  # values computed per query head
            assert got["wv"].shape == (576, H, rv) and got["wo"].shape == (H, rv, 576)
        if qg is not None:
            mk = masked_layer_params(m, calib, vb, 2, qg, vg, "whitened+vheads")
            assert mk["qk_a"].shape == (3, 64, 32) and mk["wv"].shape == (576, H, 40)
            close(one([mk], x), out)
    # the game's spectral energies are the per-head ones
    from mallocgame.rank.calibration import CalibSpec, RankSetup
    from mallocgame.rank.measure import energy_table

    def energy(model, cal, method):
        spec = CalibSpec("smollm2", bases=2, loss=1, method=method)
        return energy_table(RankSetup(model, spec, cal, (), None), (8, 16, 32, 64))

    np.testing.assert_allclose(
        energy(m, calib, "whitened+heads"), energy(big, big_calib, "whitened"), atol=1e-3
    )
    assert not np.allclose(energy(m, calib, "whitened+heads"), energy(m, calib, "whitened"))
    ev = energy(m, calib, "whitened+vheads")
    np.testing.assert_allclose(ev[0::2], energy(m, calib, "whitened")[0::2])  # qk: per group
    np.testing.assert_allclose(ev[1::2], energy(m, calib, "whitened+heads")[1::2])
    # per-head bases lose less than per-group ones at the same ranks (held-out window)
    w = smollm2_windows[1][:1]
    full = perplexity(m, w)
    losses = {}
    for method in ("whitened", "whitened+heads", "whitened+vheads"):
        cfg = RankConfig.uniform("smollm2", m.model_hash, 16, 16, seq_len=128, method=method)
        losses[method] = np.log(perplexity(m, w, params=lowrank_params(m, calib, cfg))) - np.log(
            full
        )
    assert 0 < losses["whitened+heads"] < losses["whitened"]
    assert 0 < losses["whitened+vheads"] < losses["whitened"]


def test_smollm2_rank_zero_groups_and_heads(smollm2, smollm2_calibration):
    """Rank 0: a query-key group attends uniformly to its causal prefix (its queries do not
    matter), a value head outputs its calibration mean (its values and scores do not matter).
    The runtime's shortcuts (running mean, skipped head) agree with the masked layout, where
    the same ranks are zero columns in the ordinary softmax."""
    from mallocgame.rank.latency import attention_stack
    from mallocgame.rank.runtime import attention_flops, layer_params, masked_layer_params

    m, calib = smollm2, smollm2_calibration
    bases = model_bases(m, calib, "whitened+vheads")[2]
    qg, vg = (0, 24, 24), (24, 24, 24, 0, 0, 0, 24, 24, 24)  # means 16 and 16
    x = jnp.asarray(np.random.default_rng(3).normal(size=(1, 96, 576)), jnp.float32)
    one = attention_stack(m, 1)

    def run(model):
        p = layer_params(
            model, calib, bases, 2, 16, 16, "whitened+vheads", qk_groups=qg, v_groups=vg
        )
        return np.asarray(one([p], x))

    out = run(m)
    mk = masked_layer_params(m, calib, bases, 2, qg, vg, "whitened+vheads")
    np.testing.assert_allclose(np.asarray(one([mk], x)), out, atol=2e-4 * np.abs(out).max())

    def perturbed(key, index):
        layers = list(m.params["layers"])
        w = np.array(layers[2][key])
        w[index] += np.random.default_rng(4).normal(size=w[index].shape)
        layers[2] = dict(layers[2], **{key: jnp.asarray(w)})
        return run(dataclasses.replace(m, params={**m.params, "layers": layers}))

    tol = 1e-5 * np.abs(out).max()
    np.testing.assert_allclose(perturbed("wq", np.s_[:, 0:3]), out, atol=tol)  # qk group 0
    np.testing.assert_allclose(perturbed("wq", np.s_[:, 3:6]), out, atol=tol)  # pruned heads
    np.testing.assert_allclose(perturbed("wv", np.s_[:, 1]), out, atol=tol)  # pruned heads
    assert np.abs(perturbed("wq", np.s_[:, 6:9]) - out).max() > 100 * tol  # a live head

    cfg = RankConfig("smollm2", m.model_hash, (16,) * 30, (16,) * 30, 512, method="whitened+vheads")
    grouped = dataclasses.replace(cfg, qk_groups=(qg,) * 30, v_groups=(vg,) * 30)
    assert attention_flops(grouped)["total"] == attention_flops(cfg)["total"]
