"""Real text: the Lee corpora and their splits."""

from __future__ import annotations

import numpy as np
import pytest

from mallocgame.rank import text

pytestmark = pytest.mark.rank


def test_background_split_is_disjoint_halves(split):
    assert len(split.calibration) == len(split.evaluation) == 150
    assert not set(split.calibration) & set(split.evaluation)


def test_lee_documents_never_in_calibration(lee, split):
    docs, _ = lee
    assert len(docs) == 50
    background = set(split.calibration) | set(split.evaluation)
    assert not set(docs) & background


def test_human_similarity_matrix(lee):
    _, sim = lee
    assert sim.shape == (50, 50)
    np.testing.assert_array_equal(sim, sim.T)
    np.testing.assert_array_equal(np.diag(sim), 1.0)
    i, j = text.upper_pairs(50)
    off = sim[i, j]
    assert off.min() >= 0 and off.max() <= 1 and off.std() > 0.05


def test_token_windows_do_not_overlap():
    ids = text.token_windows(lambda s: [ord(c) for c in s], ["abcdef", "ghij"], 3)
    assert ids.shape == (3, 3)
    assert "".join(chr(c) for c in ids.ravel()) == "abcdef\ngh"
    with pytest.raises(ValueError, match="shorter than one window"):
        text.token_windows(lambda s: [1, 2], ["x"], 3)


def test_shuffled_words_keep_the_words():
    docs = ["the cat sat on the mat", "a b c"]
    shuf = text.shuffled_words(docs, seed=1)
    assert [sorted(d.split()) for d in shuf] == [sorted(d.split()) for d in docs]
