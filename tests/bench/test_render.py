"""What the reports share: number formats, and the README's generated section."""

from __future__ import annotations

import math

import pytest

from mallocgame.bench import render
from mallocgame.errors import InputError


def test_readme_without_results_heading_gets_the_section_at_the_end(tmp_path):
    readme = tmp_path / "R.md"
    readme.write_text("# x\n\ntext\n")
    assert render.update_readme(readme, "malloc", "body\n")
    assert readme.read_text() == (
        "# x\n\ntext\n\n<!-- mallocgame-bench:malloc:begin -->\nbody\n"
        "<!-- mallocgame-bench:malloc:end -->\n"
    )
    assert not render.update_readme(readme, "malloc", "body\n")  # unchanged


def test_readme_errors_name_the_file(tmp_path):
    readme = tmp_path / "R.md"
    readme.write_text("# x\n<!-- mallocgame-bench:malloc:begin -->\nhalf\n")
    with pytest.raises(InputError, match="R.md.*unbalanced markers"):
        render.update_readme(readme, "malloc", "body")
    assert readme.read_text() == "# x\n<!-- mallocgame-bench:malloc:begin -->\nhalf\n"  # untouched
    with pytest.raises(InputError, match="missing.md"):
        render.update_readme(tmp_path / "missing.md", "malloc", "body")


def test_number_formats():
    assert render.fmt(None) == "-" and render.fmt(math.inf) == "-" and render.fmt(math.nan) == "-"
    assert render.fmt(1.5e-6, ".3f", 1e6) == "1.500" and render.fmt(2.0, suffix="x") == "2x"
    assert render.pct(0.125) == "12.50%" and render.pct(None) == "-"
    assert render.fmt_bytes(None) == "-" and render.fmt_bytes(512) == "512 B"
    assert (
        render.fmt_bytes(4 * 1024**2) == "4.00 MiB"
        and render.fmt_bytes(3 * 1024**4) == "3072.00 GiB"
    )


def test_save_png(tmp_path):
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([0, 1])
    p = tmp_path / "pics" / "a.png"
    assert render.save_png(fig, p) == str(p)
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
