"""The rank game's models and runtime: pretrained transformers in JAX, real text, and a
low-rank attention runtime driven by a versioned rank config.

Quick use::

    from mallocgame.rank import load_smollm2, text, calibrate, lowrank_params, RankConfig
    m = load_smollm2()
    split = text.background_split()
    enc = lambda s: m.tokenizer.encode(s, add_special_tokens=False).ids
    cal = calibrate(m, text.token_windows(enc, split.calibration, 512, max_windows=8))
    cfg = RankConfig.uniform("smollm2", m.model_hash, r_qk=32, r_v=32, seq_len=512)
    params = lowrank_params(m, cal, cfg)
    perplexity(m, text.token_windows(enc, split.evaluation, 512), params=params)

Importing this package is cheap: names resolve lazily from their modules (``config``,
``runtime``, ``fidelity``, ``text``, ``models``). The loaders import safetensors / gguf /
tokenizers when called and raise :class:`MissingExtraError` naming the pip command if absent.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "text": "mallocgame.rank.text",
    "FORMAT_NAME": "mallocgame.rank.config",
    "FORMAT_VERSION": "mallocgame.rank.config",
    "MODEL_SHAPES": "mallocgame.rank.config",
    "ModelMismatchError": "mallocgame.rank.config",
    "ModelShape": "mallocgame.rank.config",
    "RankConfig": "mallocgame.rank.config",
    "load_rank_config": "mallocgame.rank.config",
    "loads_rank_config": "mallocgame.rank.config",
    "save_rank_config": "mallocgame.rank.config",
    "Calibration": "mallocgame.rank.runtime",
    "attention_flops": "mallocgame.rank.runtime",
    "calibrate": "mallocgame.rank.runtime",
    "lowrank_params": "mallocgame.rank.runtime",
    "model_bases": "mallocgame.rank.runtime",
    "minilm_fidelity": "mallocgame.rank.fidelity",
    "minilm_similarity_scores": "mallocgame.rank.fidelity",
    "smollm2_fidelity": "mallocgame.rank.fidelity",
    "MiniLM": "mallocgame.rank.models.minilm",
    "embed_sentences": "mallocgame.rank.models.minilm",
    "load_minilm": "mallocgame.rank.models.minilm",
    "SmolLM": "mallocgame.rank.models.smollm2",
    "load_smollm2": "mallocgame.rank.models.smollm2",
    "perplexity": "mallocgame.rank.models.smollm2",
    "MissingExtraError": "mallocgame.rank.models.common",
    "file_hash": "mallocgame.rank.models.common",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'mallocgame.rank' has no attribute {name!r}")
    module = importlib.import_module(_WHERE[name])
    value = module if name == "text" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
