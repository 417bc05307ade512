"""The zoo: real JAX programs, compiled by XLA (CPU backend) into workloads.

Each entry is a builder ``builder(small=False, **overrides) -> (fn, example_args)``: ``fn`` is a
``jax.jit``-wrapped function (with the buffer donation a real training loop would use) and
``example_args`` a tuple of pytrees of :class:`jax.ShapeDtypeStruct`, so that nothing big is ever
allocated: :func:`extract` only lowers and compiles, it never runs the program.

``extract(name, **overrides)`` compiles one entry into a temporary XLA dump folder and reads it
with :func:`mallocgame.memory.xla.read_dump_folder`. ``small=True`` gives a tiny version of the same
program that compiles in seconds (for tests).

Entries (``list_zoo()``):

- ``mlp_train``: MLP training step (softmax cross-entropy, Adam written out by hand).
- ``resnet_train``: ResNet-18 (haiku, CIFAR-style 3x3 stem) training step at 32x32 images.
- ``gpt2_forward``: GPT-2-small-shaped decoder (12 layers, d_model 768, 12 heads, vocab 50257,
  context 1024), forward pass to logits.
- ``gpt2_train``: the same decoder, training step (next-token loss, Adam).
- ``attention_long``: long-sequence causal self-attention block, inference, sequence 8192.
- ``rnn_scan``: LSTM over a sequence with ``jax.lax.scan`` (a while loop), training step.
- ``conv_train``: plain VGG-style CNN (3x3 conv pairs, max-pooling, dense head, no
  normalisation, no skip connections) training step.
- ``embed_train``: embedding-bag recommender (a large embedding table, gathered and averaged
  per example, then an MLP) training step; the backward scatters into the table.
- the large programs of :mod:`workloads.large` (``*_large``: 10^4 to 10^5 buffers each), in
  :data:`ENTRIES` but not in :data:`ZOO` (the default suite).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from mallocgame.errors import InputError
from mallocgame.memory.workload import Workload
from mallocgame.memory.xla import compile_to_dump, read_dump_folder
from workloads.large import LARGE

Builder = Callable[..., tuple[Callable[..., Any], tuple[Any, ...]]]


def _sds(shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(tuple(int(s) for s in shape), jnp.dtype(dtype))


def _abstract_init(transformed: Any, *args: Any) -> Any:
    """Parameter (and state) shapes of a haiku module, without allocating them."""
    return jax.eval_shape(transformed.init, jax.random.PRNGKey(0), *args)


def _adam(params: Any, grads: Any, opt: tuple[Any, Any, Any], lr: float = 1e-3) -> tuple[Any, Any]:
    """One Adam step (b1 0.9, b2 0.999, eps 1e-8): the update optax.adam makes, written out."""
    m, v, count = opt
    b1, b2, eps = 0.9, 0.999, 1e-8
    count = count + 1
    m = jax.tree_util.tree_map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree_util.tree_map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    c1 = 1 - b1 ** count.astype(jnp.float32)
    c2 = 1 - b2 ** count.astype(jnp.float32)
    params = jax.tree_util.tree_map(
        lambda p, m, v: p - lr * (m / c1) / (jnp.sqrt(v / c2) + eps), params, m, v
    )
    return params, (m, v, count)


def _sgd(params: Any, grads: Any, opt: tuple[()], lr: float = 1e-2) -> tuple[Any, Any]:
    return jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads), opt


def _opt_state(params: Any, optimizer: str) -> Any:
    if optimizer == "adam":
        return (params, params, _sds((), jnp.int32))
    if optimizer == "sgd":
        return ()
    raise ValueError(f"optimizer must be 'adam' or 'sgd', not {optimizer!r}")


def _update(optimizer: str) -> Callable[..., tuple[Any, Any]]:
    return _adam if optimizer == "adam" else _sgd


def _xent(logits: jax.Array, labels: jax.Array) -> jax.Array:
    logp = jax.nn.log_softmax(logits.astype(jnp.float32))
    return -jnp.mean(jnp.take_along_axis(logp, labels[..., None], axis=-1))


def _classifier_train_step(
    apply: Callable[[Any, jax.Array], jax.Array], params: Any, optimizer: str, x: Any, y: Any
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The jitted training step of a classifier ``apply(params, x) -> logits`` under softmax
    cross-entropy, ``(params, opt, x, y) -> (params, opt, loss)``, and its example arguments."""
    update = _update(optimizer)

    def step(params: Any, opt: Any, x: jax.Array, y: jax.Array) -> Any:
        loss, grads = jax.value_and_grad(lambda p: _xent(apply(p, x), y))(params)
        params, opt = update(params, grads, opt)
        return params, opt, loss

    fn = jax.jit(step, donate_argnums=(0, 1))
    return fn, (params, _opt_state(params, optimizer), x, y)


# ---------------------------------------------------------------------------------------- MLP
def mlp_train(
    small: bool = False,
    batch: int = 256,
    widths: tuple[int, ...] = (784, 2048, 2048, 2048, 10),
    optimizer: str = "adam",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """MLP classifier training step: ``(params, opt, x, y) -> (params, opt, loss)``."""
    if small:
        batch, widths = 8, (16, 32, 32, 4)

    def net(x: jax.Array) -> jax.Array:
        return hk.nets.MLP(list(widths[1:]), activation=jax.nn.relu)(x)

    model = hk.without_apply_rng(hk.transform(net))
    x, y = _sds((batch, widths[0])), _sds((batch,), jnp.int32)
    params = _abstract_init(model, x)
    return _classifier_train_step(model.apply, params, optimizer, x, y)


# ------------------------------------------------------------------------------------- ResNet
def resnet_train(
    small: bool = False,
    batch: int = 64,
    image_size: int = 32,
    num_classes: int = 10,
    depth: int = 18,
    optimizer: str = "adam",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """ResNet (haiku ``hk.nets.ResNet``; CIFAR-style 3x3 stride-1 stem) training step with
    batch norm: ``(params, state, opt, images, labels) -> (params, state, opt, loss)``."""
    if small:
        batch, image_size, depth = 2, 8, 0
    if depth == 0:  # the tiny test model: one block per stage, narrow channels
        blocks, channels, bottleneck = (1, 1, 1, 1), (8, 8, 16, 16), False
    else:
        cfg = {18: ((2, 2, 2, 2), False), 34: ((3, 4, 6, 3), False), 50: ((3, 4, 6, 3), True)}
        if depth not in cfg:
            raise ValueError(f"depth must be one of 0 (tiny), 18, 34, 50, not {depth}")
        blocks, bottleneck = cfg[depth]
        channels = (256, 512, 1024, 2048) if bottleneck else (64, 128, 256, 512)

    def net(images: jax.Array, is_training: bool) -> jax.Array:
        model = hk.nets.ResNet(
            blocks_per_group=blocks,
            num_classes=num_classes,
            bottleneck=bottleneck,
            channels_per_group=channels,
            use_projection=(True,) * len(blocks),
            strides=(1,) + (2,) * (len(blocks) - 1),
            initial_conv_config={
                "output_channels": 64 if depth else 8,
                "kernel_shape": 3,
                "stride": 1,
            },
        )
        return model(images, is_training=is_training)

    model = hk.without_apply_rng(hk.transform_with_state(net))
    images = _sds((batch, image_size, image_size, 3))
    labels = _sds((batch,), jnp.int32)
    params, state = jax.eval_shape(
        lambda k, x: model.init(k, x, is_training=True), jax.random.PRNGKey(0), images
    )
    update = _update(optimizer)

    def step(params: Any, state: Any, opt: Any, images: jax.Array, labels: jax.Array) -> Any:
        def loss_fn(p: Any) -> tuple[jax.Array, Any]:
            logits, new_state = model.apply(p, state, images, is_training=True)
            return _xent(logits, labels), new_state

        (loss, state), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        params, opt = update(params, grads, opt)
        return params, state, opt, loss

    fn = jax.jit(step, donate_argnums=(0, 1, 2))
    return fn, (params, state, _opt_state(params, optimizer), images, labels)


# --------------------------------------------------------------------------------------- GPT-2
class _Block(hk.Module):
    """Pre-norm GPT-2 decoder block: causal multi-head attention and a 4x GELU MLP."""

    def __init__(self, n_heads: int, name: str | None = None):
        super().__init__(name=name)
        self.n_heads = n_heads

    def __call__(self, x: jax.Array) -> jax.Array:
        _, t, d = x.shape
        h = self.n_heads
        ln1 = hk.LayerNorm(-1, create_scale=True, create_offset=True, name="ln_1")
        qkv = hk.Linear(3 * d, name="c_attn")(ln1(x))
        q, k, v = jnp.split(qkv.reshape(x.shape[0], t, 3, h, d // h), 3, axis=2)
        q, k, v = (a[:, :, 0] for a in (q, k, v))  # [b, t, h, d/h]
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // h)
        mask = jnp.tril(jnp.ones((t, t), dtype=bool))
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        attn = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        x = x + hk.Linear(d, name="c_proj")(attn.reshape(x.shape))
        ln2 = hk.LayerNorm(-1, create_scale=True, create_offset=True, name="ln_2")
        y = hk.Linear(4 * d, name="c_fc")(ln2(x))
        y = hk.Linear(d, name="mlp_proj")(jax.nn.gelu(y, approximate=True))
        return x + y


def _gpt2(n_layers: int, d_model: int, n_heads: int, vocab: int, seq_len: int) -> Any:
    def net(tokens: jax.Array) -> jax.Array:
        wte = hk.Embed(vocab, d_model, name="wte")
        wpe = hk.get_parameter("wpe", (seq_len, d_model), init=hk.initializers.RandomNormal(0.01))
        x = wte(tokens) + wpe[None, : tokens.shape[1]]
        for i in range(n_layers):
            x = _Block(n_heads, name=f"h{i}")(x)
        x = hk.LayerNorm(-1, create_scale=True, create_offset=True, name="ln_f")(x)
        return x @ wte.embeddings.T  # tied LM head: logits [b, t, vocab]

    return hk.without_apply_rng(hk.transform(net))


def _gpt2_sizes(small: bool, **kw: Any) -> dict[str, Any]:
    sizes = {"n_layers": 12, "d_model": 768, "n_heads": 12, "vocab": 50257, "seq_len": 1024}
    if small:
        sizes = {"n_layers": 2, "d_model": 32, "n_heads": 2, "vocab": 97, "seq_len": 16}
    unknown = set(kw) - set(sizes)
    if unknown:
        raise TypeError(f"unknown GPT-2 size override(s): {sorted(unknown)}")
    sizes.update({k: int(v) for k, v in kw.items()})
    return sizes


def gpt2_forward(
    small: bool = False, batch: int = 1, dtype: str = "float32", **sizes: int
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """GPT-2-small-shaped decoder forward pass ``(params, tokens) -> logits``. Size overrides:
    ``n_layers``, ``d_model``, ``n_heads``, ``vocab``, ``seq_len``."""
    s = _gpt2_sizes(small, **sizes)
    model = _gpt2(**s)
    tokens = _sds((batch, s["seq_len"]), jnp.int32)
    params = jax.tree_util.tree_map(lambda a: _sds(a.shape, dtype), _abstract_init(model, tokens))
    return jax.jit(model.apply), (params, tokens)


def gpt2_train(
    small: bool = False, batch: int = 4, optimizer: str = "adam", **sizes: int
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """GPT-2-small-shaped decoder training step ``(params, opt, tokens) -> (params, opt, loss)``
    (next-token cross-entropy). Size overrides as for :func:`gpt2_forward`."""
    s = _gpt2_sizes(small, **sizes)
    model = _gpt2(**s)
    tokens = _sds((batch, s["seq_len"]), jnp.int32)
    params = _abstract_init(model, tokens)
    update = _update(optimizer)

    def step(params: Any, opt: Any, tokens: jax.Array) -> Any:
        def loss_fn(p: Any) -> jax.Array:
            logits = model.apply(p, tokens)
            return _xent(logits[:, :-1], tokens[:, 1:])

        loss, grads = jax.value_and_grad(loss_fn)(params)
        params, opt = update(params, grads, opt)
        return params, opt, loss

    fn = jax.jit(step, donate_argnums=(0, 1))
    return fn, (params, _opt_state(params, optimizer), tokens)


# ------------------------------------------------------------------------------ long attention
def attention_long(
    small: bool = False,
    batch: int = 1,
    seq_len: int = 8192,
    d_model: int = 768,
    n_heads: int = 12,
    dtype: str = "float32",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """One causal self-attention block (pre-norm, QKV and output projections, residual) on a
    long sequence, inference: ``(params, x) -> y``. The ``[b, h, t, t]`` score matrix dominates."""
    if small:
        seq_len, d_model, n_heads = 64, 32, 2

    def net(x: jax.Array) -> jax.Array:
        _, t, d = x.shape
        h = n_heads
        y = hk.LayerNorm(-1, create_scale=True, create_offset=True)(x)
        q, k, v = (hk.Linear(d, name=n)(y).reshape(x.shape[0], t, h, d // h) for n in "qkv")
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d // h)
        mask = jnp.tril(jnp.ones((t, t), dtype=bool))
        scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
        attn = jnp.einsum("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        return x + hk.Linear(d, name="out")(attn.reshape(x.shape))

    model = hk.without_apply_rng(hk.transform(net))
    x = _sds((batch, seq_len, d_model), dtype)
    params = jax.tree_util.tree_map(lambda a: _sds(a.shape, dtype), _abstract_init(model, x))
    return jax.jit(model.apply), (params, x)


# ---------------------------------------------------------------------------------------- RNN
def rnn_scan(
    small: bool = False,
    batch: int = 32,
    seq_len: int = 256,
    input_size: int = 256,
    hidden: int = 1024,
    optimizer: str = "sgd",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """LSTM sequence regression training step; the recurrence is ``jax.lax.scan`` (haiku
    ``hk.dynamic_unroll``), which XLA compiles to while loops (forward and backward):
    ``(params, opt, xs, targets) -> (params, opt, loss)``."""
    if small:
        batch, seq_len, input_size, hidden = 2, 5, 4, 8

    def net(xs: jax.Array) -> jax.Array:
        core = hk.LSTM(hidden)
        ys, _ = hk.dynamic_unroll(core, xs, core.initial_state(xs.shape[1]), time_major=True)
        return hk.Linear(input_size)(ys)

    model = hk.without_apply_rng(hk.transform(net))
    xs = _sds((seq_len, batch, input_size))
    params = _abstract_init(model, xs)
    update = _update(optimizer)

    def step(params: Any, opt: Any, xs: jax.Array, targets: jax.Array) -> Any:
        loss, grads = jax.value_and_grad(lambda p: jnp.mean((model.apply(p, xs) - targets) ** 2))(
            params
        )
        params, opt = update(params, grads, opt)
        return params, opt, loss

    fn = jax.jit(step, donate_argnums=(0, 1))
    return fn, (params, _opt_state(params, optimizer), xs, xs)


# ---------------------------------------------------------------------------------- plain CNN
def conv_train(
    small: bool = False,
    batch: int = 32,
    image_size: int = 32,
    channels: tuple[int, ...] = (32, 64, 128),
    num_classes: int = 10,
    optimizer: str = "sgd",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """VGG-style CNN training step: per stage two 3x3 convolutions (ReLU) and a 2x2 max-pool,
    then a dense head; no normalisation and no skip connections:
    ``(params, opt, images, labels) -> (params, opt, loss)``."""
    if small:
        batch, image_size, channels = 2, 8, (4, 8)

    def net(images: jax.Array) -> jax.Array:
        x = images
        for c in channels:
            for _ in range(2):
                x = jax.nn.relu(hk.Conv2D(c, 3)(x))
            x = hk.max_pool(x, window_shape=(1, 2, 2, 1), strides=(1, 2, 2, 1), padding="VALID")
        x = hk.Flatten()(x)
        x = jax.nn.relu(hk.Linear(4 * channels[-1])(x))
        return hk.Linear(num_classes)(x)

    model = hk.without_apply_rng(hk.transform(net))
    images = _sds((batch, image_size, image_size, 3))
    labels = _sds((batch,), jnp.int32)
    params = _abstract_init(model, images)
    update = _update(optimizer)

    def step(params: Any, opt: Any, images: jax.Array, labels: jax.Array) -> Any:
        loss, grads = jax.value_and_grad(lambda p: _xent(model.apply(p, images), labels))(params)
        params, opt = update(params, grads, opt)
        return params, opt, loss

    fn = jax.jit(step, donate_argnums=(0, 1))
    return fn, (params, _opt_state(params, optimizer), images, labels)


# ------------------------------------------------------------------------- embedding bag + MLP
def embed_train(
    small: bool = False,
    batch: int = 256,
    vocab: int = 100_000,
    dim: int = 64,
    bag: int = 16,
    hidden: tuple[int, ...] = (256, 128),
    optimizer: str = "adam",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """Embedding-bag recommender training step: ``bag`` ids per example are looked up in a
    ``vocab x dim`` table and averaged, then an MLP gives one logit (logistic loss):
    ``(params, opt, ids, labels) -> (params, opt, loss)``."""
    if small:
        batch, vocab, dim, bag, hidden = 4, 50, 8, 3, (16,)

    def net(ids: jax.Array) -> jax.Array:
        table = hk.Embed(vocab, dim, name="table")
        x = jnp.mean(table(ids), axis=1)
        return hk.nets.MLP([*hidden, 1], activation=jax.nn.relu)(x)[:, 0]

    model = hk.without_apply_rng(hk.transform(net))
    ids = _sds((batch, bag), jnp.int32)
    labels = _sds((batch,))
    params = _abstract_init(model, ids)
    update = _update(optimizer)

    def loss_fn(p: Any, ids: jax.Array, labels: jax.Array) -> jax.Array:
        logits = model.apply(p, ids)
        return jnp.mean(jax.nn.softplus(logits) - labels * logits)

    def step(params: Any, opt: Any, ids: jax.Array, labels: jax.Array) -> Any:
        loss, grads = jax.value_and_grad(loss_fn)(params, ids, labels)
        params, opt = update(params, grads, opt)
        return params, opt, loss

    fn = jax.jit(step, donate_argnums=(0, 1))
    return fn, (params, _opt_state(params, optimizer), ids, labels)


# ------------------------------------------------------------------------ scan over layers
def scan_mlp(
    small: bool = False,
    batch: int = 128,
    d_in: int = 256,
    width: int = 1024,
    layers: int = 8,
    classes: int = 10,
    optimizer: str = "adam",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """Deep residual MLP whose blocks run under ``jax.lax.scan`` over stacked weights (the
    scan-over-layers pattern of large-model code; XLA compiles it to while loops, forward and
    backward, with the activations and the stacked weights and gradients carried through them):
    ``(params, opt, x, y) -> (params, opt, loss)``."""
    if small:
        batch, d_in, width, layers, classes = 4, 8, 16, 3, 4
    params = {
        "w_in": _sds((d_in, width)),
        "w": _sds((layers, width, width)),
        "b": _sds((layers, width)),
        "w_out": _sds((width, classes)),
    }

    def apply(p: Any, x: jax.Array) -> jax.Array:
        def block(h: jax.Array, wb: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, None]:
            w, b = wb
            return h + jax.nn.relu(h @ w + b), None

        h, _ = jax.lax.scan(block, x @ p["w_in"], (p["w"], p["b"]))
        return h @ p["w_out"]

    x, y = _sds((batch, d_in)), _sds((batch,), jnp.int32)
    return _classifier_train_step(apply, params, optimizer, x, y)


def scan_glu(
    small: bool = False,
    batch: int = 64,
    d_model: int = 512,
    hidden: int = 1536,
    layers: int = 6,
    classes: int = 10,
    optimizer: str = "sgd",
) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """Pre-norm gated-linear-unit blocks (``x + W2 (silu(x W1) * (x W3))``) under ``jax.lax.scan``
    over stacked weights, a classifier head: ``(params, opt, x, y) -> (params, opt, loss)``."""
    if small:
        batch, d_model, hidden, layers, classes = 4, 8, 16, 2, 4
    params = {
        "w1": _sds((layers, d_model, hidden)),
        "w3": _sds((layers, d_model, hidden)),
        "w2": _sds((layers, hidden, d_model)),
        "w_out": _sds((d_model, classes)),
    }

    def apply(p: Any, x: jax.Array) -> jax.Array:
        def block(h: jax.Array, w: tuple[jax.Array, ...]) -> tuple[jax.Array, None]:
            w1, w3, w2 = w
            n = h * jax.lax.rsqrt(jnp.mean(h * h, axis=-1, keepdims=True) + 1e-6)
            return h + (jax.nn.silu(n @ w1) * (n @ w3)) @ w2, None

        h, _ = jax.lax.scan(block, x, (p["w1"], p["w3"], p["w2"]))
        return h @ p["w_out"]

    x, y = _sds((batch, d_model)), _sds((batch,), jnp.int32)
    return _classifier_train_step(apply, params, optimizer, x, y)


# ---------------------------------------------------------------------------------- registry
ZOO: dict[str, tuple[Builder, str]] = {
    "mlp_train": (mlp_train, "MLP 784-2048x3-10 training step, batch 256, Adam"),
    "resnet_train": (
        resnet_train,
        "ResNet-18 (haiku) training step, 32x32x3 images, batch 64, Adam",
    ),
    "gpt2_forward": (
        gpt2_forward,
        "GPT-2 small decoder forward (12x768, 12 heads, vocab 50257), batch 1 x 1024 tokens",
    ),
    "gpt2_train": (gpt2_train, "GPT-2 small decoder training step, batch 4 x 1024 tokens, Adam"),
    "attention_long": (
        attention_long,
        "causal self-attention block inference, 1 x 8192 tokens, d_model 768, 12 heads",
    ),
    "rnn_scan": (
        rnn_scan,
        "LSTM (hidden 1024) over 256 steps with lax.scan, batch 32, training step",
    ),
    "conv_train": (
        conv_train,
        "VGG-style CNN (3x3 conv pairs 32-64-128, max-pool, dense head) training step, "
        "32x32x3, batch 32, SGD",
    ),
    "scan_mlp": (
        scan_mlp,
        "residual MLP, 8 blocks of width 1024 under lax.scan over stacked weights, batch 128, Adam",
    ),
    "scan_glu": (
        scan_glu,
        "6 pre-norm GLU blocks (512 -> 1536) under lax.scan over stacked weights, batch 64, SGD",
    ),
    "embed_train": (
        embed_train,
        "embedding bag (100k x 64 table, 16 ids per example) + MLP 256-128-1 training step, "
        "batch 256, Adam",
    ),
}
#: Every entry ``zoo:NAME`` names: the zoo and the large programs of :mod:`workloads.large`
#: (kept out of :data:`ZOO`, the default suite of ``bench`` and the baselines, whose compiles
#: take minutes each).
ENTRIES: dict[str, tuple[Builder, str]] = {**ZOO, **LARGE}


def list_zoo() -> list[tuple[str, str]]:
    """``[(name, description), ...]`` of every entry (:data:`ENTRIES`), in a stable order."""
    return [(name, desc) for name, (_, desc) in ENTRIES.items()]


def build(name: str, **overrides: Any) -> tuple[Callable[..., Any], tuple[Any, ...]]:
    """The entry's ``(jitted fn, example_args)``."""
    if name not in ENTRIES:
        raise InputError(
            f"unknown zoo entry {name!r}; known: {', '.join(ENTRIES)}", "zoo", field="name"
        )
    return ENTRIES[name][0](**overrides)


def extract(name: str, compile_options: dict[str, Any] | None = None, **overrides: Any) -> Workload:
    """Compile zoo entry ``name`` (with builder ``overrides``, e.g. ``small=True``,
    ``n_layers=2``) with XLA's CPU backend into a temporary dump folder and read it.

    ``compile_options``: extra XLA options for the compile, e.g.
    ``{"xla_backend_optimization_level": 0}`` (faster; same workload, see
    :func:`mallocgame.memory.xla.compile_to_dump`)."""
    fn, args = build(name, **overrides)
    with tempfile.TemporaryDirectory(prefix=f"mallocgame-{name}-") as tmp:
        seconds = compile_to_dump(fn, args, tmp, backend="cpu", compile_options=compile_options)
        wl = read_dump_folder(tmp)
    wl.name = name
    wl.source.update(
        {
            "zoo_entry": name,
            "zoo_description": ENTRIES[name][1],
            "zoo_overrides": {k: _plain(v) for k, v in overrides.items()},
            "backend": "cpu",
            "compile_seconds": round(seconds, 3),
            "compile_options": {k: _plain(v) for k, v in (compile_options or {}).items()},
            "folder": "(temporary, deleted)",
            "files": {k: Path(v).name for k, v in wl.source["files"].items()},
        }
    )
    return wl


def _plain(v: Any) -> Any:
    if isinstance(v, (bool, int, float, str)) or v is None:
        return v
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    return str(v)
