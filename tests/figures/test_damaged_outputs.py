"""Every output file of ``figures``, damaged three ways, is drawn again, byte-identical to the first run.

Before, a 0-byte PNG, a PNG replaced by another figure's or an SVG set to
``<svg/>`` was kept ("unchanged inputs, not drawn again"): the digest in
``<name>.inputs.json`` covered the inputs only. Now it also covers each
output's own bytes.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import workbench.figures.job as figures

# about 30 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(30)


def _outputs(outdir: Path) -> dict[Path, bytes]:
    figdir = outdir / "figures"
    return {p: p.read_bytes() for p in sorted(figdir.iterdir())
            if p.is_file() and not p.name.endswith(".inputs.json")}


def _empty(path: Path, original: dict) -> None:
    path.write_bytes(b"")


def _swapped(path: Path, original: dict) -> None:
    """Replaced by the next figure's file of the same format (a whole, valid file, but the wrong one)."""
    same = [p for p in original if p.suffix == path.suffix]
    path.write_bytes(original[same[(same.index(path) + 1) % len(same)]])


def _stub_or_link(path: Path, original: dict) -> None:
    """An SVG set to ``<svg/>``, the others truncated to half, every fourth replaced by a symlink."""
    if path.suffix == ".svg":
        path.write_text("<svg/>")
    elif sorted(original).index(path) % 4 == 0:
        target = path.with_name(path.name + ".elsewhere")
        target.write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(target)
    else:
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])


DAMAGE = {"empty": _empty, "swapped": _swapped, "stub-or-link": _stub_or_link}


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, seed_outcome_cache):
    tmp = tmp_path_factory.mktemp("damage")
    seed_outcome_cache(tmp / "data")  # its own sweep points and figures; the session's emulated tables
    os.environ["WORKBENCH_DATA"] = str(tmp / "data")
    try:
        kw = dict(quick=True, backend="serial", outdir=tmp / "out", progress=False)
        figures.regenerate(**kw)
        yield kw, _outputs(tmp / "out")
    finally:
        os.environ.pop("WORKBENCH_DATA", None)


@pytest.mark.parametrize("how", list(DAMAGE))
def test_every_damaged_output_is_drawn_again(first_run, how, monkeypatch):
    kw, original = first_run
    monkeypatch.setenv("WORKBENCH_DATA", str(Path(kw["outdir"]).parent / "data"))
    paths = list(original)
    assert {p.suffix for p in paths} >= {".png", ".svg", ".pdf", ".json"} and len(paths) >= len(figures.FIGURES) * 4
    for p in paths:
        DAMAGE[how](p, original)
    report = figures.regenerate(**kw)
    assert report.figures_kept == [], report.summary()  # every figure had a damaged file: all redrawn
    for p, data in original.items():
        assert not p.is_symlink(), p
        assert p.read_bytes() == data, f"{p.name} not restored after {how}"
    again = figures.regenerate(**kw)  # and now they are whole: kept
    assert len(again.figures_kept) == len(figures.FIGURES)
