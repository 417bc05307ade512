"""Large zoo programs: training steps that XLA compiles into 10^4 to 10^5 buffers.

The entries of :mod:`workloads.zoo` are a few hundred to a few thousand buffers each. These are
the same kind of program made big by depth rather than width (``d_model`` 128 to 256, short
sequences, so that nothing is large but there is a great deal of it): many unrolled layers,
AdamW with global-norm gradient clipping over every parameter, and, for the biggest, gradient
accumulation over unrolled micro-batches. They let the project measure extraction and the
solvers at scale on programs of its own, without external traces.

Each builder has the zoo's signature, ``builder(small=False, **overrides) -> (fn, example_args)``
(``example_args`` are :class:`jax.ShapeDtypeStruct` pytrees; nothing is allocated), and
``small=True`` gives a two-layer version that compiles in seconds.

Layer norm has its closed-form backward (:func:`_normalize`, a ``jax.custom_vjp``, as fused
layer-norm kernels do it). With JAX's own derivative of ``(x - mean) * rsqrt(var + eps)``, XLA's
CPU fusion pass fuses the residual stream's gradient across all the layers, duplicating each
layer's elementwise producers into every lower layer's fusions: fusion sizes grow with depth, and
compile time and memory with its square (the zoo's ``gpt2_train`` at 48 layers x d_model 128:
7.9k buffers, 107 s and 5.5 GB to compile). With the closed form every fusion stays within a
layer (``gpt_train_large``, 48 layers: 10.9k buffers, 36 s and 0.8 GB).
``jax.lax.optimization_barrier`` does not help: the CPU compiler removes barriers before fusion.

Compile time is XLA's, and it grows faster than the program: the CPU runtime's execution graph
compares every pair of thunks for buffer conflicts (``ExecutionGraph::Create``, quadratic), and
buffer assignment's heap simulator and the simplifier passes grow superlinearly too. Reading the
dump (:func:`mallocgame.memory.xla.read_dump_folder`) is linear, about 0.7 ms per buffer.
``mallocgame extract`` on two cores (jax 0.10.2; user CPU seconds, measured on a busy machine
where wall time was 1.2 to 1.6 times that):

====================== ========= ============== =============== ===========
entry                  buffers   instructions   extract (CPU)   peak RSS
====================== ========= ============== =============== ===========
``vit_train_large``        5,429          5,549   24 s            0.7 GB
``gpt_train_large``       10,876         11,118   44 s            1.0 GB
``encdec_train_large``    28,538         29,115   3.5 min         2.5 GB
``gpt_accum_large``       63,172         66,567   18 min          6.0 GB
====================== ========= ============== =============== ===========

Entries (:data:`LARGE`; :data:`workloads.zoo.ENTRIES` lists them after the zoo, out of its default
suite :data:`workloads.zoo.ZOO`):

- ``vit_train_large``: ViT-L-shaped (24 layers) image classifier training step.
- ``gpt_train_large``: GPT decoder, 48 layers, training step.
- ``encdec_train_large``: encoder-decoder transformer, 48 + 48 layers, training step.
- ``gpt_accum_large``: GPT decoder, 24 layers, training step accumulating the gradients of 28
  unrolled micro-batches.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Builder = Callable[..., tuple[Callable[..., Any], tuple[Any, ...]]]
Params = dict[str, Any]


def _sds(shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), jnp.dtype(dtype))


# ----------------------------------------------------------------------------- parameters
def _dense(d_in: int, d_out: int) -> Params:
    return {"w": _sds((d_in, d_out)), "b": _sds((d_out,))}


def _norm(d: int) -> Params:
    return {"scale": _sds((d,)), "offset": _sds((d,))}


def _attn_params(d: int) -> Params:
    return {"q": _dense(d, d), "k": _dense(d, d), "v": _dense(d, d), "o": _dense(d, d)}


def _block_params(d: int, cross: bool = False) -> Params:
    """A pre-norm transformer block: self-attention, optional cross-attention, 4x MLP."""
    p = {"ln1": _norm(d), "attn": _attn_params(d), "ln2": _norm(d)}
    p.update({"fc1": _dense(d, 4 * d), "fc2": _dense(4 * d, d)})
    if cross:
        p.update({"ln_x": _norm(d), "xattn": _attn_params(d)})
    return p


# ---------------------------------------------------------------------------------- layers
def _linear(p: Params, x: jax.Array) -> jax.Array:
    return x @ p["w"] + p["b"]


def _normalize_fwd(x: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    rstd = jax.lax.rsqrt(jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True) + 1e-5)
    xhat = (x - mean) * rstd
    return xhat, (xhat, rstd)


def _normalize_bwd(res: tuple[jax.Array, jax.Array], g: jax.Array) -> tuple[jax.Array]:
    xhat, rstd = res
    mean_g = jnp.mean(g, axis=-1, keepdims=True)
    mean_gx = jnp.mean(g * xhat, axis=-1, keepdims=True)
    return (rstd * (g - mean_g - xhat * mean_gx),)


@jax.custom_vjp
def _normalize(x: jax.Array) -> jax.Array:
    """``(x - mean) / std`` over the last axis, with the closed-form backward (see the module
    docstring for why)."""
    return _normalize_fwd(x)[0]


_normalize.defvjp(_normalize_fwd, _normalize_bwd)


def _layer_norm(p: Params, x: jax.Array) -> jax.Array:
    return _normalize(x) * p["scale"] + p["offset"]


def _mha(p: Params, x: jax.Array, mem: jax.Array, n_heads: int, causal: bool) -> jax.Array:
    """Multi-head attention of queries from ``x`` over keys and values from ``mem``."""
    b, t, d = x.shape
    s, dh = mem.shape[1], d // n_heads
    q = _linear(p["q"], x).reshape(b, t, n_heads, dh)
    k = _linear(p["k"], mem).reshape(b, s, n_heads, dh)
    v = _linear(p["v"], mem).reshape(b, s, n_heads, dh)
    scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh)
    if causal:
        scores = jnp.where(jnp.tril(jnp.ones((t, s), bool)), scores, jnp.finfo(scores.dtype).min)
    out = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
    return _linear(p["o"], out.reshape(b, t, d))


def _block(
    p: Params,
    x: jax.Array,
    n_heads: int,
    causal: bool,
    mem: jax.Array | None = None,
) -> jax.Array:
    h = _layer_norm(p["ln1"], x)
    x = x + _mha(p["attn"], h, h, n_heads, causal)
    if mem is not None:
        x = x + _mha(p["xattn"], _layer_norm(p["ln_x"], x), mem, n_heads, causal=False)
    h = _layer_norm(p["ln2"], x)
    return x + _linear(p["fc2"], jax.nn.gelu(_linear(p["fc1"], h), approximate=True))


def _xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))


# ------------------------------------------------------------------------------- optimiser
def _adamw_state(params: Params) -> tuple[Any, Any, jax.ShapeDtypeStruct]:
    return (params, params, _sds((), jnp.int32))


def _adamw(
    params: Params,
    grads: Params,
    opt: tuple[Any, Any, Any],
    lr: float = 3e-4,
    b1: float = 0.9,
    b2: float = 0.95,
    eps: float = 1e-8,
    weight_decay: float = 0.1,
    clip_norm: float = 1.0,
) -> tuple[Params, tuple[Any, Any, Any]]:
    """Global-norm gradient clipping, then one AdamW step (decoupled weight decay), as large
    language-model training does it (optax ``clip_by_global_norm`` + ``adamw``, written out)."""
    tm = jax.tree_util.tree_map
    m, v, count = opt
    leaves = jax.tree_util.tree_leaves(grads)
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g)) for g in leaves))
    grads = tm(lambda g: g * jnp.minimum(1.0, clip_norm / (norm + 1e-6)), grads)
    count = count + 1
    m = tm(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = tm(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    c1 = 1 - b1 ** count.astype(jnp.float32)
    c2 = 1 - b2 ** count.astype(jnp.float32)
    params = tm(
        lambda p, m, v: p - lr * ((m / c1) / (jnp.sqrt(v / c2) + eps) + weight_decay * p),
        params,
        m,
        v,
    )
    return params, (m, v, count)


def _train_step(
    loss_fn: Callable[..., jax.Array], params: Params, *data: jax.ShapeDtypeStruct
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """``(params, opt, *data) -> (params, opt, loss)``: value and gradient of
    ``loss_fn(params, *data)``, then AdamW; params and optimiser state donated."""

    def step(params: Params, opt: Any, *data: jax.Array) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, *data)
        params, opt = _adamw(params, grads, opt)
        return params, opt, loss

    fn = jax.jit(step, donate_argnums=(0, 1))
    return fn, (params, _adamw_state(params), *data)


# ------------------------------------------------------------------------------------- GPT
def _gpt_params(n_layers: int, d_model: int, vocab: int, seq_len: int) -> Params:
    return {
        "wte": _sds((vocab, d_model)),
        "wpe": _sds((seq_len, d_model)),
        "blocks": [_block_params(d_model) for _ in range(n_layers)],
        "ln_f": _norm(d_model),
    }


def _gpt_loss(n_heads: int) -> Callable[[Params, jax.Array], jax.Array]:
    """Next-token cross-entropy of a pre-norm GPT decoder with a tied LM head."""

    def loss(p: Params, tokens: jax.Array) -> jax.Array:
        x = p["wte"][tokens] + p["wpe"][None, : tokens.shape[1]]
        for bp in p["blocks"]:
            x = _block(bp, x, n_heads, causal=True)
        logits = _layer_norm(p["ln_f"], x) @ p["wte"].T
        return _xent(logits[:, :-1], tokens[:, 1:])

    return loss


GPT_SIZES = {
    "n_layers": 48,
    "d_model": 128,
    "n_heads": 4,
    "vocab": 2048,
    "seq_len": 128,
    "batch": 4,
}
ACCUM_SIZES = {
    "n_layers": 24,
    "d_model": 128,
    "n_heads": 4,
    "vocab": 2048,
    "seq_len": 128,
    "micro_batches": 28,
    "micro_batch": 2,
}
ENCDEC_SIZES = {
    "enc_layers": 48,
    "dec_layers": 48,
    "d_model": 128,
    "n_heads": 4,
    "vocab": 2048,
    "src_len": 128,
    "tgt_len": 64,
    "batch": 4,
}
VIT_SIZES = {
    "n_layers": 24,
    "d_model": 256,
    "n_heads": 8,
    "image_size": 64,
    "patch": 8,
    "num_classes": 100,
    "batch": 8,
}
# small=True: the tiny test model (each builder takes the sizes it has).
_TINY = {
    "n_layers": 2,
    "enc_layers": 2,
    "dec_layers": 2,
    "micro_batches": 2,
    "d_model": 32,
    "n_heads": 2,
    "vocab": 97,
    "seq_len": 16,
    "src_len": 16,
    "tgt_len": 8,
    "image_size": 16,
    "num_classes": 4,
    "batch": 2,
}


def _sizes(
    entry: str, defaults: dict[str, int], small: bool, overrides: dict[str, Any]
) -> dict[str, int]:
    """``defaults``, shrunk to the tiny test model if ``small``, then ``overrides`` (so
    ``small=True, n_layers=3`` is the tiny model with three layers)."""
    unknown = set(overrides) - set(defaults)
    if unknown:
        raise TypeError(f"unknown {entry} size override(s): {sorted(unknown)}")
    sizes = {**defaults, **({k: v for k, v in _TINY.items() if k in defaults} if small else {})}
    sizes.update({k: int(v) for k, v in overrides.items()})
    return sizes


def gpt_train_large(
    small: bool = False, **sizes: int
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """Deep GPT decoder training step (unrolled layers, AdamW, clipping):
    ``(params, opt, tokens) -> (params, opt, loss)``. Size overrides (:data:`GPT_SIZES`):
    ``n_layers``, ``d_model``, ``n_heads``, ``vocab``, ``seq_len``, ``batch``."""
    s = _sizes("gpt_train_large", GPT_SIZES, small, sizes)
    params = _gpt_params(s["n_layers"], s["d_model"], s["vocab"], s["seq_len"])
    tokens = _sds((s["batch"], s["seq_len"]), jnp.int32)
    return _train_step(_gpt_loss(s["n_heads"]), params, tokens)


def gpt_accum_large(
    small: bool = False, **sizes: int
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """GPT decoder training step with gradient accumulation: the forward and backward pass of
    each of ``micro_batches`` micro-batches, unrolled, their gradients summed, then one AdamW
    step: ``(params, opt, tokens[micro_batches, micro_batch, seq_len]) -> (params, opt,
    loss)``. Size overrides (:data:`ACCUM_SIZES`): those of :func:`gpt_train_large` but
    ``batch``, and ``micro_batches``, ``micro_batch``."""
    s = _sizes("gpt_accum_large", ACCUM_SIZES, small, sizes)
    params = _gpt_params(s["n_layers"], s["d_model"], s["vocab"], s["seq_len"])
    grad_fn = jax.value_and_grad(_gpt_loss(s["n_heads"]))
    n = s["micro_batches"]

    def step(params: Params, opt: Any, tokens: jax.Array) -> Any:
        loss, grads = grad_fn(params, tokens[0])
        for i in range(1, n):
            loss_i, grads_i = grad_fn(params, tokens[i])
            loss = loss + loss_i
            grads = jax.tree_util.tree_map(jnp.add, grads, grads_i)
        grads = jax.tree_util.tree_map(lambda g: g / n, grads)
        params, opt = _adamw(params, grads, opt)
        return params, opt, loss / n

    fn = jax.jit(step, donate_argnums=(0, 1))
    tokens = _sds((n, s["micro_batch"], s["seq_len"]), jnp.int32)
    return fn, (params, _adamw_state(params), tokens)


# ------------------------------------------------------------------------ encoder-decoder
def encdec_train_large(
    small: bool = False, **sizes: int
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """Encoder-decoder transformer (translation-style; shared embedding, tied output head)
    training step: the encoder reads the source, each decoder block has causal
    self-attention, cross-attention to the encoder output and an MLP:
    ``(params, opt, src, tgt) -> (params, opt, loss)``. Size overrides
    (:data:`ENCDEC_SIZES`): ``enc_layers``, ``dec_layers``, ``d_model``, ``n_heads``,
    ``vocab``, ``src_len``, ``tgt_len``, ``batch``."""
    s = _sizes("encdec_train_large", ENCDEC_SIZES, small, sizes)
    d, n_heads = s["d_model"], s["n_heads"]
    params = {
        "embed": _sds((s["vocab"], d)),
        "enc_pos": _sds((s["src_len"], d)),
        "dec_pos": _sds((s["tgt_len"], d)),
        "enc": [_block_params(d) for _ in range(s["enc_layers"])],
        "enc_ln": _norm(d),
        "dec": [_block_params(d, cross=True) for _ in range(s["dec_layers"])],
        "dec_ln": _norm(d),
    }

    def loss(p: Params, src: jax.Array, tgt: jax.Array) -> jax.Array:
        x = p["embed"][src] + p["enc_pos"][None]
        for bp in p["enc"]:
            x = _block(bp, x, n_heads, causal=False)
        mem = _layer_norm(p["enc_ln"], x)
        y = p["embed"][tgt] + p["dec_pos"][None]
        for bp in p["dec"]:
            y = _block(bp, y, n_heads, causal=True, mem=mem)
        logits = _layer_norm(p["dec_ln"], y) @ p["embed"].T
        return _xent(logits[:, :-1], tgt[:, 1:])

    b = s["batch"]
    src, tgt = _sds((b, s["src_len"]), jnp.int32), _sds((b, s["tgt_len"]), jnp.int32)
    return _train_step(loss, params, src, tgt)


# ------------------------------------------------------------------------------------- ViT
def vit_train_large(
    small: bool = False, **sizes: int
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """ViT-L-shaped (24 pre-norm encoder blocks) image classifier training step: patch
    embedding (a dense layer on flattened patches), a class token, learned positions, softmax
    cross-entropy on the class token: ``(params, opt, images, labels) -> (params, opt, loss)``.
    Size overrides (:data:`VIT_SIZES`): ``n_layers``, ``d_model``, ``n_heads``,
    ``image_size``, ``patch``, ``num_classes``, ``batch``."""
    s = _sizes("vit_train_large", VIT_SIZES, small, sizes)
    d, n_heads, patch = s["d_model"], s["n_heads"], s["patch"]
    grid = s["image_size"] // patch
    params = {
        "patch": _dense(patch * patch * 3, d),
        "cls": _sds((1, 1, d)),
        "pos": _sds((grid * grid + 1, d)),
        "blocks": [_block_params(d) for _ in range(s["n_layers"])],
        "ln_f": _norm(d),
        "head": _dense(d, s["num_classes"]),
    }

    def loss(p: Params, images: jax.Array, labels: jax.Array) -> jax.Array:
        b = images.shape[0]
        x = images.reshape(b, grid, patch, grid, patch, 3).transpose(0, 1, 3, 2, 4, 5)
        x = _linear(p["patch"], x.reshape(b, grid * grid, patch * patch * 3))
        x = jnp.concatenate([jnp.broadcast_to(p["cls"], (b, 1, d)), x], axis=1)
        x = x + p["pos"][None]
        for bp in p["blocks"]:
            x = _block(bp, x, n_heads, causal=False)
        return _xent(_linear(p["head"], _layer_norm(p["ln_f"], x[:, 0])), labels)

    b = s["batch"]
    images = _sds((b, s["image_size"], s["image_size"], 3))
    return _train_step(loss, params, images, _sds((b,), jnp.int32))


# ---------------------------------------------------------------------------------- registry
LARGE: dict[str, tuple[Builder, str]] = {
    "vit_train_large": (
        vit_train_large,
        "LARGE (~5k buffers, extract ~25 s): ViT-L-shaped classifier, 24 layers x d_model 256, "
        "64x64 images in 8x8 patches, batch 8, AdamW + clipping, training step",
    ),
    "gpt_train_large": (
        gpt_train_large,
        "LARGE (~11k buffers, extract ~45 s): GPT decoder, 48 layers x d_model 128, vocab 2048, "
        "batch 4 x 128 tokens, AdamW + clipping, training step",
    ),
    "encdec_train_large": (
        encdec_train_large,
        "LARGE (~29k buffers, extract ~4 min): encoder-decoder transformer, 48 + 48 layers x "
        "d_model 128, source 128 / target 64 tokens, batch 4, AdamW + clipping, training step",
    ),
    "gpt_accum_large": (
        gpt_accum_large,
        "LARGE (~63k buffers, extract ~20 min): GPT decoder, 24 layers x d_model 128, gradients "
        "of 28 unrolled micro-batches of 2 x 128 tokens accumulated, AdamW + clipping, "
        "training step",
    ),
}
