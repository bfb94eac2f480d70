"""Every cache survives damage: a bit flip, truncation, an empty file, a directory, an unreadable
entry, a FIFO (never blocks), a symlink, and an entry whose hash is valid but whose content is
impossible. Each is detected, reported in one warning line, recomputed, and stored healthy again.
Also: atomic writes never follow a planted symlink and leave no temporary file."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import workbench.base.store as store
import workbench.emulate.explore as ex
import workbench.kernel.image as img
from workbench.base.errors import ConfigError
from workbench.sweep.engine import FunctionExperiment, Grid, sweep

FAULTS = ["flip", "truncate", "empty", "directory", "unreadable", "fifo", "symlink", "impossible"]
ONE = ('[ops.t]\nkind = "tracer"\nfunctions = ["fn_00001"]\n'
       '[transition]\nbefore = []\nafter = ["t"]\n')
CALLS = []
_REAL_OPEN = os.open


def _square(params, seed, stream, context):
    CALLS.append(params["x"])
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(stream,)))
    return {"y": params["x"] ** 2, "noise": float(rng.random())}


SQUARE = FunctionExperiment("square", _square, {"x": 0})


def _with_timeout(fn, seconds=30):
    """Run *fn* in a thread; fail (not hang) if it blocks, e.g. on a FIFO."""
    box = {}
    t = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "blocked on the cache entry"
    return box["value"]


def _damage(path: Path, fault: str, monkeypatch, impossible):
    data = path.read_bytes()
    if fault == "flip":  # one bit in the middle of the payload
        i = len(data) // 2 + 7
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x10]) + data[i + 1:])
    elif fault == "truncate":
        path.write_bytes(data[: len(data) * 2 // 3])
    elif fault == "empty":
        path.write_bytes(b"")
    elif fault == "directory":
        path.unlink()
        (path / "inside").mkdir(parents=True)
    elif fault == "unreadable":  # tests run as root: chmod 000 would not stop a read
        def deny(p, flags, *a, **k):
            if os.fspath(p) == os.fspath(path):
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(p))
            return _REAL_OPEN(p, flags, *a, **k)

        monkeypatch.setattr(store.os, "open", deny)
    elif fault == "fifo":
        path.unlink()
        os.mkfifo(path)
    elif fault == "symlink":  # an entry replaced by a link to something else
        other = path.with_name("elsewhere")
        other.write_bytes(data)
        path.unlink()
        path.symlink_to(other)
    elif fault == "impossible":  # a valid hash over content that cannot be
        impossible(path)


def _healthy(path: Path):
    assert path.is_file() and not path.is_symlink()
    assert path.read_bytes().startswith(b"wbstore1 ")
    assert not list(path.parent.glob(".*.tmp"))


# -- sweep points -------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS)
def test_sweep_cache_faults(fault, tmp_path, monkeypatch, caplog):
    grid = Grid(x=list(range(4)))
    first = sweep(grid, SQUARE, backend="serial", cache_root=tmp_path, progress=False)
    victim = sorted(tmp_path.rglob("*.json"))[1]

    def impossible(p):
        key = p.stem
        payload = json.dumps({"key": key, "experiment": "square", "params": {}, "rows": []}).encode()
        assert store.store_entry(p, payload, what="test")

    _damage(victim, fault, monkeypatch, impossible)
    CALLS.clear()
    with caplog.at_level(logging.WARNING):
        second = _with_timeout(lambda: sweep(grid, SQUARE, backend="serial", cache_root=tmp_path,
                                             progress=False))
    monkeypatch.setattr(store.os, "open", _REAL_OPEN)
    assert second.attrs["sweep"]["corrupt"] == 1 and len(CALLS) == 1
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert [r for r in caplog.records if "damaged cache entry" in r.getMessage()]
    assert all("\n" not in r.getMessage() for r in caplog.records)
    _healthy(victim)


# -- outcome tables ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def one_calls(tmp_path_factory):
    """The calls frame of a one-tracer scenario, emulated once for the whole module."""
    d = tmp_path_factory.mktemp("one")
    (d / "one.toml").write_text(ONE)
    calls, stats = ex.explore(str(d / "one.toml"), strategies="all", entry="v5.3", mode="exhaustive", progress=False)
    return d / "one.toml", calls, stats


@pytest.mark.parametrize("fault", FAULTS)
def test_outcome_cache_faults(fault, one_calls, tmp_path, monkeypatch, caplog):
    scenario, calls, stats = one_calls
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    runs = []
    monkeypatch.setattr(ex, "explore", lambda *a, **k: (runs.append(1), (calls, stats))[1])
    first = ex.load_outcome_table(str(scenario), progress=False)
    assert runs == [1] and len(first) > 0
    (victim,) = (tmp_path / "cache" / "outcomes").rglob("*.parquet")

    def impossible(p):
        head = p.read_bytes().partition(b"\n")[2].partition(b"\n")[0]  # the entry's own metadata line
        buf = io.BytesIO()
        first.iloc[:0].to_parquet(buf, index=False)  # no rows
        assert store.store_entry(p, head + b"\n" + buf.getvalue(), what="test")

    _damage(victim, fault, monkeypatch, impossible)
    with caplog.at_level(logging.WARNING):
        healed = _with_timeout(lambda: ex.load_outcome_table(str(scenario), progress=False))
    monkeypatch.setattr(store.os, "open", _REAL_OPEN)
    assert runs == [1, 1]
    pd.testing.assert_frame_equal(first, healed, check_exact=True)
    assert [r for r in caplog.records if "outcome cache: damaged cache entry" in r.getMessage()]
    _healthy(victim)
    again = ex.load_outcome_table(str(scenario), progress=False)
    assert runs == [1, 1] and again.equals(first)


def test_one_bit_flip_anywhere_in_an_outcome_entry_never_loads(one_calls, tmp_path, monkeypatch):
    """Issue 13: 332 of 1,752 single-bit flips used to load; now every one is caught."""
    scenario, calls, stats = one_calls
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(ex, "explore", lambda *a, **k: (calls, stats))
    ex.load_outcome_table(str(scenario), progress=False)
    (victim,) = (tmp_path / "cache" / "outcomes").rglob("*.parquet")
    data = victim.read_bytes()
    rng = np.random.default_rng(13)
    for bit in rng.choice(len(data) * 8, size=200, replace=False):
        i, b = divmod(int(bit), 8)
        victim.write_bytes(data[:i] + bytes([data[i] ^ (1 << b)]) + data[i + 1:])
        assert store.load_entry(victim, lambda p: p, what="test") is store.DAMAGED
    victim.write_bytes(data)


# -- the linked image ---------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", FAULTS)
def test_image_cache_faults(fault, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    img._load_cached.cache_clear()
    links = []
    real_link = img._link
    monkeypatch.setattr(img, "_link", lambda g, *arch: (links.append(1), real_link(g, *arch))[1])
    first = img.build_image(2)
    (victim,) = (tmp_path / "cache" / "image").rglob("vmlinux")
    assert links == [1]

    def impossible(p):
        assert store.store_entry(p, b"\x7fELF" + bytes(60), what="test")

    _damage(victim, fault, monkeypatch, impossible)
    img._load_cached.cache_clear()
    with caplog.at_level(logging.WARNING):
        again = _with_timeout(lambda: img.build_image(2))
    monkeypatch.setattr(store.os, "open", _REAL_OPEN)
    img._load_cached.cache_clear()
    assert links == [1, 1]
    assert again.memory == first.memory and again.symbols == first.symbols
    assert [r for r in caplog.records if "image cache: damaged cache entry" in r.getMessage()]
    _healthy(victim)


# -- atomic outputs ------------------------------------------------------------------------------------

def test_a_planted_symlink_is_never_written_through(tmp_path, caplog):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    out = tmp_path / "out.parquet"
    out.symlink_to(precious)
    with caplog.at_level(logging.WARNING):
        store.write_atomic(out, b"new")
    assert precious.read_text() == "keep me"
    assert out.is_file() and not out.is_symlink() and out.read_bytes() == b"new"
    assert [r for r in caplog.records if "symlink" in r.getMessage()]
    assert not list(tmp_path.glob(".*.tmp"))


def test_an_unwritable_target_leaves_no_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(store.os, "replace", lambda a, b: (_ for _ in ()).throw(OSError(errno.EROFS, "ro")))
    with pytest.raises(ConfigError, match="out: cannot write"):
        store.write_atomic(tmp_path / "x.parquet", b"data")
    assert not list(tmp_path.iterdir())


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_result(caplog):
    with caplog.at_level(logging.WARNING):
        assert store.store_entry("/proc/wb-no-such-dir/entry", b"x", what="test cache") is False
    assert [r for r in caplog.records if "not stored" in r.getMessage()]


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("impostor", ["file", "symlink", "fifo"])
def test_a_cache_directory_replaced_by_a_file_heals_with_one_warning(tmp_path, caplog, depth, impostor):
    """Before, every read warned 'unreadable', every write 'not stored', and the cache never healed."""
    parts = ["v1", "ab", "cd"][:depth]
    entry = tmp_path.joinpath(*parts, "entry")  # a sweep entry: <root>/<version>/<xx>/<key>.json
    bad = tmp_path / parts[0]
    if impostor == "file":
        bad.write_text("not a directory")
    elif impostor == "symlink":
        (tmp_path / "target").write_text("x")
        bad.symlink_to(tmp_path / "target")
    else:
        os.mkfifo(bad)
    with caplog.at_level(logging.WARNING):
        assert store.load_entry(entry, bytes, what="test cache") is None  # missing, not damaged
        assert store.store_entry(entry, b"payload", what="test cache") is True
        assert store.load_entry(entry, bytes, what="test cache") == b"payload"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "moved it aside" in warnings[0], warnings
    assert (tmp_path / f"{parts[0]}.not-a-directory").exists() or \
        (tmp_path / f"{parts[0]}.not-a-directory").is_symlink()


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no longer runs
    stale = tmp_path / f".out.parquet.{dead.pid}-abc123.tmp"
    stale.write_bytes(b"half a file")
    mine_alive = tmp_path / f".out.parquet.{os.getppid()}-def456.tmp"  # a live writer's: kept
    mine_alive.write_bytes(b"in progress")
    store.write_atomic(tmp_path / "out.parquet", b"whole")
    assert not stale.exists() and mine_alive.exists()
    assert (tmp_path / "out.parquet").read_bytes() == b"whole"


@pytest.mark.parametrize("where", [("cache",), ("cache", "sweep"), ("cache", "outcomes")])
def test_a_top_cache_directory_replaced_by_a_file_is_moved_aside_once(tmp_path, monkeypatch, caplog, where):
    from workbench.base.paths import cache_dir

    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    impostor = tmp_path.joinpath(*where)
    impostor.parent.mkdir(parents=True, exist_ok=True)
    impostor.write_text("a file where a cache directory belongs")
    with caplog.at_level(logging.WARNING):
        d = cache_dir(*where[1:], "v1")
        assert d.is_dir() and cache_dir(*where[1:], "v1") == d  # the second call finds it whole
    assert len(caplog.records) == 1 and "moved it aside" in caplog.records[0].getMessage()
    assert impostor.with_name(impostor.name + ".not-a-directory").read_text().startswith("a file")
