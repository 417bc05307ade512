"""The rank config: round trip, atomic writes, hash refusal, errors naming the field, FLOPs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from mallocgame.errors import InputError
from mallocgame.rank.config import (
    METHODS,
    MODEL_SHAPES,
    ModelMismatchError,
    RankConfig,
    load_rank_config,
    loads_rank_config,
    save_rank_config,
)
from mallocgame.rank.runtime import attention_flops
from mallocgame.rank.tables import DEFAULT_CHOICES, cost_table

pytestmark = pytest.mark.rank

HASH = "0123456789abcdef"


def _cfg(**kw) -> RankConfig:
    r_qk = tuple(range(8, 38))
    r_v = tuple(64 - i for i in range(30))
    return RankConfig(
        "smollm2",
        HASH,
        r_qk,
        r_v,
        seq_len=2048,
        budget={"fraction": 0.5},
        meta={"player": "test"},
        **kw,
    )


def test_round_trip(tmp_path):
    cfg = _cfg()
    path = save_rank_config(cfg, tmp_path / "sub" / "ranks.json")
    assert load_rank_config(path) == cfg
    d = json.loads(path.read_text())
    assert d["format"] == "mallocgame-ranks" and d["version"] == 1 and d["model_hash"] == HASH
    assert d["layers"][0] == {"r_qk": 8, "r_v": 64}
    assert sorted(os.listdir(path.parent)) == ["ranks.json"]  # no temporary file left behind


def test_group_ranks_round_trip_as_version_2(tmp_path):
    qk = [(r, r, r) for r in range(8, 38)]
    qk[0] = (16, 4, 4)  # mean 8
    v = [(r, r, r) for r in (64 - i for i in range(30))]
    v[3] = (64, 61, 58)  # mean 61
    cfg = _cfg(qk_groups=tuple(qk), v_groups=tuple(v))
    assert cfg.grouped and cfg.groups(0) == ((16, 4, 4), (64, 64, 64))
    assert cfg.groups(3) == ((11, 11, 11), (64, 61, 58))
    path = save_rank_config(cfg, tmp_path / "ranks.json")
    d = json.loads(path.read_text())
    assert d["version"] == 2
    assert d["layers"][0] == {"r_qk": 8, "r_v": 64, "qk_groups": [16, 4, 4]}
    assert d["layers"][1] == {"r_qk": 9, "r_v": 63}  # equal groups are not written
    assert load_rank_config(path) == cfg
    # FLOPs follow the means: the same as the equal split
    assert attention_flops(cfg) == attention_flops(_cfg())
    # an equal split everywhere is the plain (version 1) config
    plain = _cfg(qk_groups=tuple((r, r, r) for r in range(8, 38)))
    assert not plain.grouped and plain == _cfg() and plain.to_dict()["version"] == 1


@pytest.mark.parametrize(
    "layer, version, message",
    [
        ({"r_qk": 8, "r_v": 64, "qk_groups": [16, 4, 4]}, 1, "version 2"),
        ({"r_qk": 8, "r_v": 64, "qk_groups": [16, 4]}, 2, "list of 3"),
        ({"r_qk": 8, "r_v": 64, "qk_groups": [16, 8, 4]}, 2, "average r_qk"),
        ({"r_qk": 8, "r_v": 64, "v_groups": [64, 65, 63]}, 2, "0..64"),
        ({"r_qk": 8, "r_v": 64, "qk_groups": [-4, 12, 16]}, 2, "0..64"),
    ],
)
def test_bad_group_ranks_name_the_field(layer, version, message):
    d = _cfg().to_dict()
    d["version"] = version
    d["layers"][0] = layer
    key = "qk_groups" if "qk_groups" in layer else "v_groups"
    with pytest.raises(InputError, match=message) as e:
        RankConfig.from_dict(d, where="ranks.json")
    assert f"layers[0].{key}" in str(e.value) and "ranks.json" in str(e.value)


def test_per_head_ranks_with_a_per_head_method(tmp_path):
    """A part fitted per query head may rank each head (9 entries, group-major)."""
    v = [(64,) * 3] * 30
    heads = (60, 58, 56, 64, 64, 64, 64, 64, 64)  # mean 62
    v[2] = heads
    r_v = [64] * 30
    r_v[2] = 62
    cfg = RankConfig(
        "smollm2", HASH, (8,) * 30, r_v, 512, method="whitened+vheads", v_groups=tuple(v)
    )
    assert cfg.groups(2)[1] == heads and cfg.groups(2)[0] == (8, 8, 8)
    assert load_rank_config(save_rank_config(cfg, tmp_path / "r.json")) == cfg
    d = cfg.to_dict()
    with pytest.raises(InputError, match="per-head method") as e:
        RankConfig.from_dict({**d, "method": "whitened"}, where="r.json")
    assert "layers[2].v_groups" in str(e.value)
    d2 = json.loads(json.dumps(d))
    d2["layers"][0]["qk_groups"] = [16, 4, 4, 8, 8, 8, 8, 8, 8]
    with pytest.raises(InputError, match="list of 3"):  # query-key maps stay per group
        RankConfig.from_dict(d2)
    assert RankConfig.from_dict({**d2, "method": "whitened+heads"}).groups(0)[0][0] == 16


def test_group_ranks_are_refused_for_minilm():
    d = RankConfig.uniform("minilm", HASH, 16, 16).to_dict()
    d["version"] = 2
    d["layers"][0]["qk_groups"] = [16] * 12
    with pytest.raises(InputError, match="no grouped key-value heads"):
        RankConfig.from_dict(d)


def test_save_is_atomic_replace(tmp_path, monkeypatch):
    path = tmp_path / "ranks.json"
    save_rank_config(_cfg(), path)
    before = path.read_text()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_rank_config(RankConfig.uniform("smollm2", HASH, 16, 16), path)
    assert path.read_text() == before
    assert sorted(os.listdir(tmp_path)) == ["ranks.json"]


def test_hash_mismatch_is_refused_naming_both_hashes(tmp_path):
    path = save_rank_config(_cfg(), tmp_path / "r.json")
    assert load_rank_config(path, model="smollm2", model_hash=HASH).model_hash == HASH
    with pytest.raises(ModelMismatchError) as e:
        load_rank_config(path, model="smollm2", model_hash="ffffffffffffffff")
    msg = str(e.value)
    assert HASH in msg and "ffffffffffffffff" in msg and "expected" in msg and "actual" in msg
    with pytest.raises(ModelMismatchError, match="minilm"):
        load_rank_config(path, model="minilm")


def _bad(mutate) -> str:
    d = _cfg().to_dict()
    mutate(d)
    with pytest.raises(InputError) as e:
        loads_rank_config(json.dumps(d), "cfg.json")
    return str(e.value)


@pytest.mark.parametrize(
    "mutate, field",
    [
        (lambda d: d.update(format="other"), "format"),
        (lambda d: d.update(version=4), "version"),
        (lambda d: d.pop("model_hash"), "model_hash"),
        (lambda d: d.update(model_hash="XYZ"), "model_hash"),
        (lambda d: d.update(model="gpt9"), "model"),
        (lambda d: d.update(seq_len=0), "seq_len"),
        (lambda d: d.update(method="magic"), "method"),
        (lambda d: d.update(budget={"fraction": 1.5}), "budget.fraction"),
        (lambda d: d.update(budget={"speed": 1}), "budget.speed"),
        (lambda d: d["layers"].pop(), "layers"),
        (lambda d: d["layers"][3].update(r_qk=65), "layers[3].r_qk"),
        (lambda d: d["layers"][4].update(r_v=0), "layers[4].r_v"),
        (lambda d: d["layers"][5].update(r_v=3.5), "layers[5].r_v"),
        (lambda d: d["layers"][6].pop("r_qk"), "layers[6].r_qk"),
        (lambda d: d["layers"][7].update(heads=3), "layers[7].heads"),
    ],
)
def test_bad_config_names_the_field(mutate, field):
    msg = _bad(mutate)
    assert msg.startswith("cfg.json: ") and f"field '{field}'" in msg, msg


def test_not_json_names_the_line():
    with pytest.raises(InputError, match=r"cfg.json:1: not valid JSON"):
        loads_rank_config("{nope", "cfg.json")


def test_constructor_validates_too():
    with pytest.raises(InputError, match="layers"):
        RankConfig("minilm", HASH, (32,) * 5, (32,) * 5, 256)


@pytest.mark.parametrize("model", sorted(MODEL_SHAPES))
def test_attention_flops_fall_with_rank(model):
    s = MODEL_SHAPES[model]
    full = attention_flops(RankConfig.uniform(model, HASH, seq_len=1024))
    assert full["total"] == full["full"] == 4.0 * s.n_heads * 1024**2 * s.head_dim * s.n_layers
    assert full["basis"] == 0 and full["fraction"] == 1.0
    prev = full["total"]
    for r in sorted({min(r, s.head_dim - 1) for r in (48, 32, 16, 8)}, reverse=True):
        f = attention_flops(RankConfig.uniform(model, HASH, r, r, seq_len=1024))
        assert f["qk"] == f["pv"] == 2.0 * s.n_heads * 1024**2 * r * s.n_layers
        assert (f["basis"] > 0) == s.rope  # SmolLM2 projects post-RoPE; MiniLM folds into weights
        assert f["total"] < prev
        prev = f["total"]
    half = attention_flops(
        RankConfig.uniform(model, HASH, s.head_dim // 2, s.head_dim // 2, seq_len=4096)
    )
    assert 0.5 <= half["fraction"] < 0.52
    assert (
        attention_flops(RankConfig.uniform(model, HASH), seq_len=8, batch=3)["total"]
        == 3 * 4.0 * s.n_heads * 64 * s.head_dim * s.n_layers
    )


def test_attention_flops_of_the_first_layers():
    s = MODEL_SHAPES["minilm"]
    r_qk = (32, 8) + (32,) * (s.n_layers - 2)
    c = RankConfig("minilm", HASH, r_qk, r_qk, 256)
    one = attention_flops(c, n_layers=1)
    assert one["fraction"] == 1.0 and one["full"] == 4.0 * s.n_heads * 256**2 * s.head_dim
    two = attention_flops(c, n_layers=2)
    assert two["fraction"] == pytest.approx((32 + 8) / 64)
    whole = (32 * (s.n_layers - 1) + 8) / (32 * s.n_layers)
    assert attention_flops(c)["fraction"] == pytest.approx(whole)
    with pytest.raises(ValueError, match="n_layers"):
        attention_flops(c, n_layers=s.n_layers + 1)


@pytest.mark.parametrize("method", METHODS)
def test_cost_table_splits_attention_flops(method):
    """The game's per-part costs add up to the runtime's FLOPs for every method; per-head
    bases (SmolLM2) project keys once per query head, not per key-value group."""
    choices = DEFAULT_CHOICES["smollm2"]
    cost, full = cost_table("smollm2", choices, 512, method)
    idx = np.random.default_rng(0).integers(0, len(choices), cost.shape[0])
    r = np.asarray(choices)[idx]
    cfg = RankConfig("smollm2", HASH, r[0::2], r[1::2], 512, method=method)
    f = attention_flops(cfg)
    assert cost[np.arange(cost.shape[0]), idx].sum() == pytest.approx(f["total"])
    assert full == f["full"]
    s = MODEL_SHAPES["smollm2"]
    K = s.n_heads if method == "whitened+heads" else s.n_kv_heads
    low = [rq for rq in r[0::2] if rq < s.head_dim]
    assert f["basis"] == pytest.approx(sum(2.0 * 512 * 64 * rq * (s.n_heads + K) for rq in low))
    # MiniLM folds the bases into its weights: per head or not, no basis FLOPs
    m = attention_flops(RankConfig.uniform("minilm", HASH, 16, 16, method=method))
    assert m["basis"] == 0 and m["fraction"] == 0.5
