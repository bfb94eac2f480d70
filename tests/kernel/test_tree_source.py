"""Extracting Debian's kernel source tarball into the cache: whole or not at all, however many at once.

Several test workers (and several commands) may ask for the same tree at the
same moment on a fresh machine. Before, every extraction wrote into the one
``<tree>.part`` directory and removed whatever it found there first, so one
extraction deleted another's files, and the second to finish failed to move
its directory over the first one's tree.
"""

from __future__ import annotations

import io
import tarfile
import threading

from workbench.kernel.tree_source import TREE_MEMBERS, _extract

PKG = "linux-source-9.9"


def _tarball(path, filler: int = 400):
    """A small xz tarball laid out like Debian's: TREE_MEMBERS among *filler* other files."""
    with tarfile.open(path, "w:xz") as tar:
        def add(name, data):
            info = tarfile.TarInfo(f"{PKG}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for k in range(filler):
            add(f"drivers/filler{k}.c", b"/* filler */\n" * 20)
        for m in TREE_MEMBERS:
            add(m, f"contents of {m}\n".encode())
    return path


def _extract_noting_errors(tarball, root, errors: list) -> None:
    try:
        _extract(tarball, PKG, root)
    except Exception as e:  # noqa: BLE001 -- any failure of a concurrent extraction is the finding
        errors.append(repr(e))


def test_extractions_of_one_tree_at_the_same_time_all_end_with_the_whole_tree(tmp_path):
    tarball = _tarball(tmp_path / f"{PKG}.tar.xz")
    for attempt in range(3):
        root = tmp_path / f"cache{attempt}" / PKG
        root.parent.mkdir()
        errors = []

        threads = [threading.Thread(target=_extract_noting_errors, args=(tarball, root, errors)) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert (root / "COMPLETE").is_file()
        for m in TREE_MEMBERS:
            assert (root / m).read_text() == f"contents of {m}\n"
        assert sorted(p.name for p in root.parent.iterdir()) == [PKG]  # no part directory left behind


def test_an_interrupted_extraction_is_done_again(tmp_path):
    tarball = _tarball(tmp_path / f"{PKG}.tar.xz", filler=3)
    root = tmp_path / "cache" / PKG
    (root / "arch").mkdir(parents=True)  # a tree without its COMPLETE mark: an extraction cut short
    (root / "arch" / "half").write_text("half")
    _extract(tarball, PKG, root)
    assert (root / "COMPLETE").is_file() and not (root / "arch" / "half").exists()
    assert (root / "Makefile").read_text() == "contents of Makefile\n"
