"""Debian's kernel source package as a kernel tree: the files the workbench assembles and checks.

Models no kernel file; it brings a real tree to :mod:`workbench.kernel.tree`.
Debian's ``linux-source-<series>`` package (e.g. ``linux-source-6.1``) holds
the tree as ``/usr/src/linux-source-<series>.tar.xz``. It is read from there
when the package is installed (``apt-get install linux-source-6.1``, as
``.ci/run`` does), else fetched with ``apt-get download`` and unpacked with
``dpkg-deb -x`` (the ordinary clients, at set-up time; no network at run
time once cached). Only the top Makefile, ``arch/x86/kernel/ftrace_32.S``
and ``ftrace_64.S``, ``arch/x86/entry/entry_32.S`` and the headers the
trampolines include are extracted, into ``<data>/cache/kernel-source/``;
a ``COMPLETE`` file written last marks a finished extraction, so an
interrupted one is redone. Extractions into one cache take turns (a lock on
its directory), so several at once never touch each other's files.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from workbench.base.errors import ConfigError, check_choice
from workbench.base.paths import cache_dir

__all__ = ["DEBIAN_SERIES", "TREE_MEMBERS", "debian_kernel_tree"]

#: Debian kernel source series the workbench knows how to fetch
DEBIAN_SERIES = ("6.1", "6.12")
#: the tree's files extracted (relative to its root)
TREE_MEMBERS = (
    "Makefile",
    "arch/x86/kernel/ftrace_32.S",
    "arch/x86/kernel/ftrace_64.S",
    "arch/x86/entry/entry_32.S",
    "arch/x86/include/asm/ptrace.h",
    "arch/x86/include/asm/linkage.h",
    "arch/x86/include/asm/frame.h",
    "arch/x86/include/asm/nospec-branch.h",
    "arch/x86/include/asm/unwind_hints.h",
    "arch/x86/include/asm/export.h",
    "arch/x86/include/asm/segment.h",
    "arch/x86/include/asm/ftrace.h",
    "arch/x86/kernel/asm-offsets_32.c",
    "include/linux/linkage.h",
    "include/asm-generic/export.h",
)


def debian_kernel_tree(series: str = "6.1", *, download: bool = True) -> Path:
    """The root of Debian's ``linux-source-<series>`` tree (the members of :data:`TREE_MEMBERS`), cached.

    Raises :class:`ConfigError` for an unknown *series*, and when the tarball
    is neither installed nor (with *download*) fetchable with apt-get.
    """
    check_choice("series", series, DEBIAN_SERIES)
    pkg = f"linux-source-{series}"
    root = cache_dir("kernel-source") / pkg
    if (root / "COMPLETE").is_file():
        return root
    tarball = Path("/usr/src") / f"{pkg}.tar.xz"
    with tempfile.TemporaryDirectory(prefix="wb-ksrc-") as tmp:
        if not tarball.is_file():
            if not download:
                raise ConfigError(f"series: {pkg} is not installed ({tarball} missing); "
                                  f"run `apt-get install {pkg}` or `python -m workbench kernel-source`")
            tarball = _apt_download(pkg, Path(tmp))
        _extract(tarball, pkg, root)
    return root


def _apt_download(pkg: str, tmp: Path) -> Path:
    """``apt-get download PKG`` and ``dpkg-deb -x``: the tarball inside."""
    for tool in ("apt-get", "dpkg-deb"):
        if shutil.which(tool) is None:
            raise ConfigError(f"series: {tool} not found; install Debian's {pkg} by hand and unpack "
                              f"/usr/src/{pkg}.tar.xz, then pass --kernel-tree")
    r = subprocess.run(["apt-get", "download", pkg], cwd=tmp, capture_output=True, text=True)
    debs = sorted(tmp.glob(f"{pkg}_*.deb"))
    if r.returncode or not debs:
        last = (r.stderr.strip().splitlines() or ["no .deb written"])[-1]
        raise ConfigError(f"series: apt-get download {pkg} failed: {last} (run `apt-get update` first?)")
    subprocess.run(["dpkg-deb", "-x", str(debs[-1]), str(tmp / "x")], check=True, capture_output=True)
    found = sorted((tmp / "x").rglob(f"{pkg}.tar.*"))
    if not found:
        raise ConfigError(f"series: {debs[-1].name} holds no {pkg}.tar.* tarball")
    return found[0]


def _extract(tarball: Path, pkg: str, root: Path) -> None:
    """The members of :data:`TREE_MEMBERS` from *tarball* (prefixed ``<pkg>/``) into *root*.

    Extractions into one cache take turns (a lock on its directory): several at once (test
    workers, commands) never touch each other's files, and those that waited find the tree done.
    """
    root.parent.mkdir(parents=True, exist_ok=True)
    turn = os.open(root.parent, os.O_RDONLY)
    try:
        fcntl.flock(turn, fcntl.LOCK_EX)  # about 10 s of xz for the one holding it
        if (root / "COMPLETE").is_file():
            return  # another extraction finished while this one waited
        if root.exists():
            shutil.rmtree(root)  # an interrupted extraction: start again
        part = root.with_name(root.name + ".part")
        if part.exists():
            shutil.rmtree(part)
        want = {f"{pkg}/{m}": m for m in TREE_MEMBERS}
        got = set()
        with tarfile.open(tarball, "r:*") as tar:
            for info in tar:
                rel = want.get(info.name)
                if rel is None or not info.isfile():
                    continue
                dest = part / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                src = tar.extractfile(info)
                assert src is not None
                dest.write_bytes(src.read())
                got.add(rel)
                if len(got) == len(want):
                    break
        missing = [m for m in TREE_MEMBERS[:2] if m not in got]
        if missing:
            shutil.rmtree(part, ignore_errors=True)
            raise ConfigError(f"series: {tarball.name} has no {', '.join(missing)}; not a kernel source tarball")
        (part / "COMPLETE").write_text(f"{tarball.name}\n" + "".join(f"{m}\n" for m in sorted(got)))
        os.replace(part, root)
    finally:
        os.close(turn)  # and with it the lock
