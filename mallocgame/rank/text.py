"""Real English text for the rank game: the Lee corpora shipped in gensim's test data.

- ``lee_background.cor``: 300 news documents, one a line. The first half is the
  **calibration** split (bases are learned from it), the second half the **evaluation** split
  (perplexity is measured on it); they never overlap.
- ``lee.cor``: 50 further news documents, and ``similarities0-1.txt``: the mean human
  similarity judgement (0..1) of every pair of them, as a 50 x 50 upper-triangular matrix
  (tab separated, ones on the diagonal, zeros below). They evaluate MiniLM; none of the 50
  documents occurs in ``lee_background.cor`` (checked in the tests), so MiniLM calibration on
  the background corpus never sees an evaluation document.

Files are found inside the installed gensim wheel without importing gensim.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from mallocgame.rank.models.common import MissingExtraError, package_dir


def data_dir() -> Path:
    """gensim's ``test/test_data`` folder."""
    d = package_dir("gensim") / "test" / "test_data"
    if not (d / "lee_background.cor").is_file():
        raise MissingExtraError(f"{d}/lee_background.cor not found (is gensim installed?)")
    return d


def _lines(name: str) -> list[str]:
    # lee.cor contains one latin-1 byte (a pound sign); latin-1 decodes every file losslessly.
    text = (data_dir() / name).read_bytes().decode("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def lee_background_docs() -> list[str]:
    """The 300 documents of ``lee_background.cor``."""
    return _lines("lee_background.cor")


def lee_docs() -> list[str]:
    """The 50 documents of ``lee.cor`` that ``similarities0-1.txt`` scores."""
    return _lines("lee.cor")


def lee_human_similarity() -> np.ndarray:
    """Symmetric ``[50, 50]`` float64 matrix of human similarity scores (diagonal 1)."""
    rows = [line.split() for line in (data_dir() / "similarities0-1.txt").read_text().splitlines()]
    m = np.array([[float(v) for v in r] for r in rows if r], np.float64)
    if m.shape[0] != m.shape[1]:
        raise ValueError(f"similarities0-1.txt: expected a square matrix, got {m.shape}")
    upper = np.triu(m, 1)
    return upper + upper.T + np.eye(m.shape[0])


def upper_pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Index arrays (i, j) of all pairs i < j of n items."""
    return np.triu_indices(n, 1)


@dataclasses.dataclass(frozen=True)
class Split:
    """Disjoint calibration and evaluation documents."""

    calibration: tuple[str, ...]
    evaluation: tuple[str, ...]


def background_split() -> Split:
    """First half of ``lee_background.cor`` = calibration, second half = evaluation."""
    docs = lee_background_docs()
    half = len(docs) // 2
    return Split(tuple(docs[:half]), tuple(docs[half:]))


def token_windows(
    encode: Callable[[str], Sequence[int]],
    docs: Sequence[str],
    length: int,
    max_windows: int | None = None,
    sep: str = "\n",
) -> np.ndarray:
    """Non-overlapping token windows ``[N, length]`` int32 of the documents joined by ``sep``.

    The tail shorter than ``length`` is dropped; ``max_windows`` keeps the first N.
    """
    ids = np.asarray(encode(sep.join(docs)), np.int32)
    n = len(ids) // length
    if max_windows is not None:
        n = min(n, max_windows)
    if n == 0:
        raise ValueError(f"text of {len(ids)} tokens is shorter than one window of {length}")
    return ids[: n * length].reshape(n, length)


def shuffled_words(docs: Sequence[str], seed: int = 0) -> list[str]:
    """The same documents with the words of each shuffled (a control for perplexity)."""
    rng = random.Random(seed)
    out = []
    for d in docs:
        words = d.split()
        rng.shuffle(words)
        out.append(" ".join(words))
    return out
