"""Files the workbench writes: atomic outputs and verified cache entries.

Not a model of kernel code (the kernel side of the workbench is in
``workbench/kernel``, which models ``arch/x86/kernel/ftrace.c`` and
``arch/x86/kernel/alternative.c``); this is how every result reaches the disk.

* :func:`write_atomic` writes bytes to a path so that a reader sees either
  the old file or the whole new one: a temporary file created with
  :func:`tempfile.mkstemp` in the target directory (``O_EXCL``, an
  unpredictable name, so a planted symlink is never written through), then
  ``fsync`` and ``os.replace``. A temporary file carries its writer's pid: one
  left by a writer that was killed is removed by the next write of the same
  path. A symlink at the final path is replaced by
  a regular file, never followed, and a warning says so; a directory there
  is refused with :class:`~workbench.base.errors.ConfigError`.
* :func:`store_entry` and :func:`load_entry` keep cache entries: a header
  ``wbstore1 <sha256 of payload> <payload bytes>`` then the payload. A read
  opens the entry without following a symlink and without blocking on a
  FIFO; an entry that is missing is ``None``; one that cannot be read (a
  directory, a FIFO, a permission error, ...), fails its hash, or whose
  payload the caller's *parse* refuses (no rows, wrong shape, another key)
  is reported in one warning line, removed, and returned as
  :data:`DAMAGED`: the caller recomputes it. A cache that cannot be written
  (a full disk, a read-only directory) costs a warning, never the result.
  A file (or link) standing where one of an entry's directories belongs is
  moved aside once (``<name>.not-a-directory``, one warning) and the cache
  heals: the entry is missing, computed and stored.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

from workbench.base.errors import ConfigError

__all__ = ["DAMAGED", "check_writable", "load_entry", "read_regular", "repair_parents", "store_entry", "write_atomic"]

_MAGIC = b"wbstore1"
_LOG = logging.getLogger("workbench.cache")
_UNSTORED: set = set()  # caches whose failure to store has been reported (once per process)
#: what :func:`load_entry` returns for an entry that exists but cannot be used
DAMAGED = type("Damaged", (), {"__repr__": lambda self: "DAMAGED", "__bool__": lambda self: False})()

T = TypeVar("T")


def write_atomic(path: str | os.PathLike, data: bytes, *, what: str = "out") -> Path:
    """Write *data* (bytes) to *path* atomically; return the path.

    The temporary file is created with ``O_EXCL`` under a random name in
    the target directory, synced, made ``0644`` and renamed over *path*.
    Raises :class:`ConfigError` naming *what* if *path* is a directory or
    cannot be written (the temporary file is removed). A regular ``0644``
    file that already holds exactly *data* is left as it is (a rerun that
    writes the same bytes costs no sync).
    """
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot write {str(path)!r} ({getattr(exc, 'strerror', None) or exc}); "
                          "give a writable file path") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise ConfigError(f"{what}: {str(path)!r} is a directory; give a file path")
    if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
        raise ConfigError(f"{what}: {str(path)!r} is not a regular file (a device, FIFO or socket); "
                          "give a file path")
    if st is not None and stat.S_ISLNK(st.st_mode):
        _LOG.warning("%s: %s is a symlink (to %s); replacing the link with a regular file, not writing "
                     "through it", what, path, os.readlink(path))
    if st is not None and stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644 \
            and st.st_size == len(data) and _holds(path, data):
        _remove_orphans(path)
        return path
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), 0o644)
        os.replace(tmp, path)
        tmp = None
        _remove_orphans(path)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot write {str(path)!r} ({getattr(exc, 'strerror', None) or exc}); "
                          "give a writable file path") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return path


def _holds(path: Path, data: bytes) -> bool:
    """Whether the file at *path* holds exactly *data* (False if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return f.read(len(data) + 1) == data
    except OSError:
        return False


def _remove_orphans(path: Path) -> None:
    """Remove temporaries of *path* left by writers that were killed (their pid is gone)."""
    for stale in path.parent.glob(f".{glob.escape(path.name)}.*-*.tmp"):
        pid = stale.name[len(path.name) + 2:].partition("-")[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            try:
                stale.unlink()
            except OSError:
                pass
        except OSError:  # alive, or not ours to signal: leave it
            pass


def check_writable(path: str | os.PathLike, *, what: str = "out") -> Path:
    """Check before any work that :func:`write_atomic` can write *path*; return it.

    Creates (and removes) a temporary file next to it, which also catches a
    read-only file system and a parent that is a file. Raises
    :class:`ConfigError` naming *what*.
    """
    path = Path(path)
    try:
        if "\0" in str(path):
            raise ValueError("embedded NUL byte")
        if len(os.fsencode(path.name)) > 200:
            raise OSError(errno.ENAMETOOLONG, f"a name of {len(os.fsencode(path.name))} bytes; at most 200")
        if path.is_dir():
            raise ConfigError(f"{what}: {str(path)!r} is a directory; give a file path")
        st = None
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            pass
        if st is not None and not (stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode)):
            raise OSError(errno.EINVAL, "not a regular file")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what}: cannot write {str(path)!r} ({getattr(exc, 'strerror', None) or exc}); "
                          "give a writable file path") from None
    return path


def read_regular(path: str | os.PathLike) -> bytes | None:
    """The bytes of the regular file *path*, or None if it is missing.

    Opens without following a symlink at *path* and without blocking on a
    FIFO or a device. Raises ``OSError`` for anything that is not a readable
    regular file (``EISDIR``, ``ELOOP``, ``EACCES``, ...).
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        chunks = []
        while True:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Take a damaged entry out of the way (whatever it is); never raises."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def repair_parents(path: str | os.PathLike, *, what: str, levels: int = 3) -> bool:
    """Move aside a non-directory standing where one of *path*'s *levels* nearest parents belongs.

    Returns True (after one warning) if it moved something. A cache's
    directories hold only what can be recomputed, so nothing is lost.
    """
    for parent in list(Path(path).parents)[:levels]:
        try:
            st = os.lstat(parent)
        except (FileNotFoundError, NotADirectoryError):
            continue  # missing, or below the impostor: look further up
        except OSError:
            return False
        if stat.S_ISDIR(st.st_mode):
            return False
        aside = parent.with_name(parent.name + ".not-a-directory")
        try:
            os.replace(parent, aside)
        except OSError:
            return False
        _LOG.warning("%s: %s was not a directory; moved it aside to %s and made the directory", what, parent, aside)
        return True
    return False


def load_entry(path: str | os.PathLike, parse: Callable[[bytes], T], *, what: str) -> T | None:
    """The parsed payload of the cache entry at *path*: ``None`` if missing, :data:`DAMAGED` if unusable.

    *parse* turns the verified payload into the value and raises
    (``ValueError``, ``KeyError``, ...) for content that is impossible;
    *what* names the cache in the one warning line a damaged entry gets.
    """
    path = Path(path)
    try:
        data = read_regular(path)
    except NotADirectoryError:
        repair_parents(path, what=what)
        return None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        data, bad = None, f"unreadable: {reason}"
    else:
        if data is None:
            return None
        bad = None
        head, sep, payload = data.partition(b"\n")
        parts = head.split(b" ")
        if not sep or len(parts) != 3 or parts[0] != _MAGIC:
            bad = "not a cache entry"
        elif parts[2] != str(len(payload)).encode():
            bad = "truncated"
        elif hashlib.sha256(payload).hexdigest().encode() != parts[1]:
            bad = "checksum mismatch"
        else:
            try:
                return parse(payload)
            except Exception as exc:  # any refusal of the content: the entry is unusable
                bad = f"impossible content: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
    _LOG.warning("%s: damaged cache entry %s (%s); recomputing it", what, path, bad)
    _remove(path)
    return DAMAGED


def store_entry(path: str | os.PathLike, payload: bytes, *, what: str) -> bool:
    """Write *payload* as a verified cache entry at *path*; False (and one warning) if it cannot be.

    Whatever is in the way at *path* (a damaged entry, a directory, a FIFO,
    a symlink) is removed first: the cache owns its directory.
    """
    path = Path(path)
    header = b"%s %s %d\n" % (_MAGIC, hashlib.sha256(payload).hexdigest().encode(), len(payload))
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode):
            _remove(path)
    except NotADirectoryError:
        repair_parents(path, what=what)
    except OSError:
        pass
    try:
        write_atomic(path, header + payload, what=what)
    except ConfigError as exc:
        reason = str(exc).partition(": ")[2]
        if what not in _UNSTORED:  # a full disk fails every entry: one line, not one per entry
            _UNSTORED.add(what)
            _LOG.warning("%s: cache entry not stored (%s); further failures of this cache are not reported",
                         what, reason)
        return False
    return True
