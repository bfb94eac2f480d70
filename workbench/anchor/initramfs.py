"""A guest's initramfs: busybox and one init script, as a newc cpio archive.

The kernel unpacks it in ``init/initramfs.c`` (format: the ``newc`` header
of ``usr/gen_init_cpio.c``, 110 ASCII bytes, names and data padded to four
bytes). Written here with the standard library so that no host ``cpio``
is needed; the archive is byte-stable (mtime 0, fixed inode numbers).
"""

from __future__ import annotations

import gzip
from pathlib import Path

__all__ = ["build_initramfs", "cpio_newc"]

_MAGIC = b"070701"


def _entry(ino: int, name: str, mode: int, data: bytes = b"") -> bytes:
    """One newc header with its name and data, each padded to 4 bytes."""
    fields = (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0)
    head = _MAGIC + b"".join(b"%08X" % f for f in fields)
    out = head + name.encode() + b"\0"
    out += b"\0" * (-len(out) % 4)
    out += data + b"\0" * (-len(data) % 4)
    return out


def cpio_newc(files: dict[str, tuple[int, bytes]], dirs: tuple[str, ...] = ()) -> bytes:
    """A newc archive of *dirs* (mode 0755) and *files* (path -> (mode bits, bytes)), then the trailer."""
    parts, ino = [], 1
    for d in dirs:
        parts.append(_entry(ino, d, 0o040755))
        ino += 1
    for path, (mode, data) in files.items():
        parts.append(_entry(ino, path, 0o100000 | mode, data))
        ino += 1
    parts.append(_entry(0, "TRAILER!!!", 0))
    blob = b"".join(parts)
    return blob + b"\0" * (-len(blob) % 512)


def build_initramfs(busybox: Path, init_script: str) -> bytes:
    """The gzip'd initramfs of *busybox* as ``/bin/busybox`` and *init_script* as ``/init``."""
    files = {"bin/busybox": (0o755, Path(busybox).read_bytes()),
             "init": (0o755, init_script.encode())}
    raw = cpio_newc(files, dirs=("bin", "dev", "proc", "sys", "tmp"))
    return gzip.compress(raw, compresslevel=6, mtime=0)
