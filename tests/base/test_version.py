"""Cache keys describe the code that produced an entry, also in a live session (issue 13, item 1).

A source edited between two runs in one process must change the key: the
second run neither reuses the first's entries nor stores under the old key.
These failed when the versions were computed once per process.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import workbench.base.version as version
import workbench.emulate.explore as ex
import workbench.kernel.image as img
from workbench.sweep.engine import FunctionExperiment, Grid, sweep

PKG = Path(version.__file__).resolve().parents[1]


@pytest.fixture
def fake_pkg(tmp_path, monkeypatch):
    """A copy of the package's sources that version.py hashes instead of the real ones."""
    root = tmp_path / "workbench"
    shutil.copytree(PKG, root, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(version, "_PKG", root)
    return root


def _edit(path: Path, old: str, new: str):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_versions_follow_the_files_at_every_call(fake_pkg):
    v0, e0 = version.code_version(), version.emulator_version()
    f = fake_pkg / "figures" / "plots.py"
    _edit(f, '"""', '"""edited. ')
    assert version.code_version() != v0 and version.emulator_version() == e0  # figures: not the emulator
    e1 = version.emulator_version()
    g = fake_pkg / "kernel" / "asm" / "defs.inc"
    st = g.stat()
    data = g.read_bytes()
    g.write_bytes(data.replace(b"pt_regs", b"pt_regZ", 1))  # the same size
    os.utime(g, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime: the ctime still moves
    assert version.emulator_version() != e1
    g.write_bytes(data)
    _edit(f, '"""edited. ', '"""')
    assert version.code_version() == v0  # content, not history: reverting gives the old key back


# the experiment's result depends on a "source file" of the fake package, as code would
_SOURCE: list[Path] = []


def _result(params, seed, stream, context):
    return {"y": float(_SOURCE[0].read_text().count("#")) + params["x"]}


RESULT = FunctionExperiment("live_edit", _result, {"x": 0})


def test_a_live_edit_between_two_sweeps_is_a_new_key(fake_pkg, tmp_path):
    src = fake_pkg / "race" / "experiment.py"
    _SOURCE[:] = [src]
    first = sweep(Grid(x=[1, 2]), RESULT, backend="serial", cache_root=tmp_path / "c", progress=False)
    old_dirs = sorted(p.name for p in (tmp_path / "c").iterdir())
    old_entries = {p: p.read_bytes() for p in (tmp_path / "c").rglob("*.json")}
    src.write_text(src.read_text() + "\n# an edit in the notebook\n")
    second = sweep(Grid(x=[1, 2]), RESULT, backend="serial", cache_root=tmp_path / "c", progress=False)
    assert second.attrs["sweep"]["computed"] == 2 and second.attrs["sweep"]["cached"] == 0
    assert list(second.y) == [y + 1 for y in first.y]
    new_dirs = sorted(p.name for p in (tmp_path / "c").iterdir())
    assert len(new_dirs) == 2 and set(old_dirs) < set(new_dirs)
    assert {p: p.read_bytes() for p in old_entries} == old_entries  # the old key's entries untouched
    # revert the edit: the old entries serve again, with the old numbers
    src.write_text(src.read_text().replace("\n# an edit in the notebook\n", ""))
    third = sweep(Grid(x=[1, 2]), RESULT, backend="serial", cache_root=tmp_path / "c", progress=False)
    assert third.attrs["sweep"]["cached"] == 2 and list(third.y) == list(first.y)


def test_a_live_edit_of_the_emulator_recomputes_the_outcome_table(fake_pkg, tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    made = []

    def fake_explore(*a, **k):  # stands for the emulator; counts the runs
        import pandas as pd

        made.append(1)
        rows = [{"scenario": "seed", "entry": "v5.3", "strategy": "skip", "site_kind": "ordinary",
                 "trap_site": "site", "trap_phase": "p", "trapped": True, "weight": 1, "crash": False,
                 **{c: float(len(made)) for c in ex.OUTCOME_COLUMNS if c != "crash"}}]
        return pd.DataFrame(rows), {"skip": {"raw": 1, "distinct": 1}}

    monkeypatch.setattr(ex, "explore", fake_explore)
    a = ex.load_outcome_table("seed", "v5.3", progress=False)
    assert ex.load_outcome_table("seed", "v5.3", progress=False).equals(a) and made == [1]
    _edit(fake_pkg / "emulate" / "outcomes.py", '"""', '"""edited. ')
    b = ex.load_outcome_table("seed", "v5.3", progress=False)
    assert made == [1, 1] and b["dropped_livepatch"].iloc[0] == 2.0  # not the old entry's 1.0
    assert len(list((tmp_path / "cache" / "outcomes").iterdir())) == 2  # stored under the new key


def test_a_live_edit_of_the_assembly_relinks(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    asm = tmp_path / "asm"
    shutil.copytree(img._ASM_DIR, asm)
    monkeypatch.setattr(img, "_ASM_DIR", asm)
    img._load_cached.cache_clear()
    first = img.build_image(1)
    assert img.build_image(1) is first  # unchanged sources: the same image, no relink
    _edit(asm / "livepatch.S", "\t.text", "\t.text\n\tnop\n\tnop\n\tnop\n\tnop")
    second = img.build_image(1)
    img._load_cached.cache_clear()
    assert second.digest != first.digest and second.memory != first.memory


def test_results_of_workers_running_other_code_are_keyed_by_that_code(tmp_path, monkeypatch, caplog):
    """A long-lived worker that loaded older code: its results never land under the sources' key."""
    import logging

    import workbench.sweep.engine as eng

    def stale_execute(experiment, chunks, *rest):
        for chunk in chunks:
            yield "0123456789abcdef", [(i, [{"y": -1.0}]) for i, p, s in chunk]

    monkeypatch.setattr(eng, "execute_chunks", stale_execute)
    with caplog.at_level(logging.WARNING):
        f = sweep(Grid(x=[1, 2]), RESULT, backend="serial", cache_root=tmp_path, progress=False)
    assert list(f.y) == [-1.0, -1.0]
    dirs = sorted(p.name for p in tmp_path.iterdir())
    assert dirs == ["0123456789abcdef"]  # nothing under the current version
    assert [r for r in caplog.records if "workers ran code 0123456789abcdef" in r.getMessage()]
    monkeypatch.undo()
    _SOURCE[:] = [PKG / "race" / "experiment.py"]
    again = sweep(Grid(x=[1, 2]), RESULT, backend="serial", cache_root=tmp_path, progress=False)
    assert again.attrs["sweep"]["computed"] == 2 and (again.y > 0).all()  # not the stale -1.0


def test_derived_plans_are_forgotten_after_a_live_edit(fake_pkg):
    from workbench.race.plan import PLANS

    PLANS.refresh()
    PLANS["seed"]
    assert "seed" in PLANS
    PLANS.refresh()
    assert "seed" in PLANS  # nothing changed: kept
    _edit(fake_pkg / "emulate" / "scenarios" / "seed.toml", "description", "# edited\ndescription")
    PLANS.refresh()
    assert "seed" not in PLANS
