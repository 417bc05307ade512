"""Pretrained transformers loaded offline into JAX: all-MiniLM-L6-v2 and SmolLM2-135M."""

from mallocgame.rank.models.common import MissingExtraError, file_hash, minilm_dir, smollm2_gguf
from mallocgame.rank.models.minilm import MiniLM, MiniLMConfig, embed_sentences, load_minilm
from mallocgame.rank.models.smollm2 import SmolLM, SmolLMConfig, load_smollm2, perplexity

__all__ = [
    "MiniLM",
    "MiniLMConfig",
    "MissingExtraError",
    "SmolLM",
    "SmolLMConfig",
    "embed_sentences",
    "file_hash",
    "load_minilm",
    "load_smollm2",
    "minilm_dir",
    "perplexity",
    "smollm2_gguf",
]
