"""Loaders and reference checks of the real pretrained models (offline, from the pip wheels)."""

from __future__ import annotations

import numpy as np
import pytest

from mallocgame.rank import text
from mallocgame.rank.fidelity import minilm_similarity_scores
from mallocgame.rank.models.common import file_hash

pytestmark = pytest.mark.rank


# ----------------------------------------------------------------------------- MiniLM


def test_minilm_loads(minilm):
    c = minilm.config
    assert (c.n_layers, c.d_model, c.n_heads, c.head_dim, c.max_seq_length) == (6, 384, 12, 32, 256)
    assert len(minilm.params["layers"]) == 6
    assert minilm.params["layers"][0]["wq"].shape == (384, 12, 32)
    assert len(minilm.model_hash) == 16 and minilm.model_hash == file_hash(minilm.path)
    ids = minilm.tokenizer.encode("Hello, world!").ids
    assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]


def test_minilm_paraphrases_are_closer(minilm):
    from mallocgame.rank.models.minilm import embed_sentences

    e = embed_sentences(
        minilm,
        [
            "A man is playing a guitar.",
            "Someone is playing the guitar.",
            "The stock market fell sharply today.",
            "Shares dropped steeply on the exchange this afternoon.",
        ],
    )
    np.testing.assert_allclose(np.linalg.norm(e, axis=1), 1.0, atol=1e-5)
    c = e @ e.T
    assert c[0, 1] > 0.7 and c[2, 3] > 0.5  # measured 0.84, 0.6x
    assert max(c[0, 2], c[0, 3], c[1, 2], c[1, 3]) < 0.2  # measured < 0.1
    # Padding must not change an embedding: the same sentence alone and in a batch.
    alone = embed_sentences(minilm, ["A man is playing a guitar."])
    np.testing.assert_allclose(alone[0], e[0], atol=1e-5)


def test_minilm_agrees_with_human_similarity_on_lee(minilm_lee_embeddings, lee):
    scores = minilm_similarity_scores(minilm_lee_embeddings, lee[1])
    # Measured: Pearson 0.656, Spearman 0.508 (1225 pairs of lee.cor).
    assert scores["pearson"] > 0.6, scores
    assert scores["spearman"] > 0.45, scores


# ----------------------------------------------------------------------------- SmolLM2


def test_smollm2_loads(smollm2):
    c = smollm2.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.head_dim, c.vocab_size) == (
        30,
        576,
        9,
        3,
        64,
        49152,
    )
    assert c.rope_theta == 100000.0  # from the GGUF metadata
    p = smollm2.params["layers"][0]
    assert p["wq"].shape == (576, 9, 64) and p["wk"].shape == (576, 3, 64)
    assert p["wv"].shape == (576, 3, 64) and p["wo"].shape == (9, 64, 576)
    assert len(smollm2.model_hash) == 16 and smollm2.model_hash == file_hash(smollm2.path)


@pytest.mark.parametrize(
    "s",
    [
        "Hello world! The year 2024 was great, wasn't it?",
        "  Indented\ttabs\n\nand ünïcödé — £3,000 😀",
        "<|im_start|>user\nHi<|im_end|>",
    ],
)
def test_smollm2_tokenizer_round_trips(smollm2, s):
    from mallocgame.rank.models.smollm2 import decode, encode

    ids = encode(smollm2, s)
    assert decode(smollm2, ids) == s


def test_smollm2_tokenizer_pieces(smollm2):
    from mallocgame.rank.models.smollm2 import encode

    tok = smollm2.tokenizer
    assert tok.encode("2024", add_special_tokens=False).tokens == [
        "2",
        "0",
        "2",
        "4",
    ]  # single digits
    assert encode(smollm2, "<|im_start|>")[0] == 1  # control tokens stay whole
    assert len(encode(smollm2, " the quick brown fox")) == 4  # ' the' ' quick' ' brown' ' fox'


def test_smollm2_perplexity_on_real_and_shuffled_text(smollm2, smollm2_windows, split):
    from mallocgame.rank.models.smollm2 import encode, perplexity

    ev = smollm2_windows[1]
    ppl = perplexity(smollm2, ev)
    # Measured 32.6 on these two windows (28.4 on eight). The wrong RoPE pairing gives ~465.
    assert 10 < ppl < 40, ppl
    shuffled = text.token_windows(
        lambda s: encode(smollm2, s), text.shuffled_words(split.evaluation[:8]), 512, max_windows=1
    )
    assert perplexity(smollm2, shuffled) > 100


def test_blocked_causal_attention_equals_dense():
    import jax.numpy as jnp

    from mallocgame.rank.models.smollm2 import QUERY_BLOCK, _softmax_pv, causal_attention

    rng = np.random.default_rng(0)
    L = 3 * QUERY_BLOCK
    q = jnp.asarray(rng.normal(size=(1, 3, 3, L, 16)), jnp.float32)
    k = jnp.asarray(rng.normal(size=(1, 3, L, 16)), jnp.float32)
    v = jnp.asarray(rng.normal(size=(1, 3, L, 8)), jnp.float32)
    dense = np.asarray(_softmax_pv(q, k, v, 0))
    np.testing.assert_allclose(np.asarray(causal_attention(q, k, v)), dense, atol=1e-5)
    np.testing.assert_allclose(
        dense[..., 0, :], np.asarray(v[:, :, None, 0, :]).repeat(3, 2), atol=1e-6
    )
