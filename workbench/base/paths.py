"""Where the workbench keeps its caches and outputs.

Inside a source checkout (the package sits next to ``pyproject.toml``) both
live under ``data/`` in the checkout; an installed package uses
``~/.cache/int3-workbench``. ``WORKBENCH_DATA`` overrides either. A data
directory that cannot be made or written is a :class:`ConfigError`. Models
no kernel file.

Its subdirectories (``sweeps``, ``counterexamples``, ``cache/...``) come from
:func:`data_subdir`, which never follows a symlink planted in their place
(a :class:`ConfigError` naming it), and refuses a file standing where a
directory belongs, in one line naming what to remove; a cache directory
(:func:`cache_dir`) holds only what the workbench can recompute, so a file
there is moved aside once (``<name>.not-a-directory``, one warning) and the
directory made again.
"""

import logging
import os
import stat
import tempfile
from pathlib import Path

from workbench.base.errors import ConfigError

__all__ = ["MAX_NAME_BYTES", "cache_dir", "check_data_dir", "check_name", "data_dir", "data_subdir"]

#: the longest file name the workbench makes from a user's name (bytes): a file
#: system's NAME_MAX is 255, and the atomic writer's temporary adds about 30
MAX_NAME_BYTES = 200
_LOG = logging.getLogger("workbench.paths")


def check_name(what: str, name: str) -> str:
    """*name* if it is one usable file name component; ConfigError naming *what* otherwise."""
    if not name or name in (".", "..") or "/" in name or os.sep in name:
        raise ConfigError(f"{what}: {name!r} is not a file name; give a name without '/' (or a path ending "
                          "in the file's suffix)")
    if "\0" in name:
        raise ConfigError(f"{what}: the name has a NUL byte; give a plain file name")
    size = len(os.fsencode(name))
    if size > MAX_NAME_BYTES:
        raise ConfigError(f"{what}: a name of {size} bytes is too long; at most {MAX_NAME_BYTES}")
    return name


def data_subdir(*parts: str, repair: bool = False) -> Path:
    """``data_dir()/<parts...>``, made if missing; never a symlink, never a file.

    A symlink in place of one of the directories is a ConfigError (the
    workbench does not write through links it did not make). A file or
    other non-directory there is a ConfigError naming it, unless *repair*
    (caches): then it is renamed ``<name>.not-a-directory`` with one warning
    and the directory is made.
    """
    d = data_dir()
    for part in parts:
        d = d / part
        try:
            st = os.lstat(d)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise ConfigError(f"data directory: cannot use {str(d)!r} ({exc.strerror or exc})") from None
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise ConfigError(f"data directory: {str(d)!r} is a symlink (to {os.readlink(d)!r}); the workbench "
                              "does not write through links: remove it")
        if st is not None and not stat.S_ISDIR(st.st_mode):
            if not repair:
                raise ConfigError(f"data directory: {str(d)!r} is not a directory; remove or rename it")
            aside = d.with_name(d.name + ".not-a-directory")
            try:
                os.replace(d, aside)
            except OSError as exc:
                raise ConfigError(f"cache: {str(d)!r} is not a directory and cannot be moved aside "
                                  f"({exc.strerror or exc}); remove it") from None
            _LOG.warning("cache: %s was not a directory; moved it aside to %s and made the directory", d, aside)
            st = None
        if st is None:
            try:
                os.mkdir(d)
            except FileExistsError:
                pass  # made meanwhile by another process
            except OSError as exc:
                raise ConfigError(f"data directory: cannot create {str(d)!r} ({exc.strerror or exc}); "
                                  "give WORKBENCH_DATA a writable directory") from None
    return d

_ROOT = Path(__file__).resolve().parents[2]


def data_dir() -> Path:
    """The directory for results, figures and caches (created on demand)."""
    env = os.environ.get("WORKBENCH_DATA")
    if env:
        d = Path(env)
    elif (_ROOT / "pyproject.toml").exists():
        d = _ROOT / "data"
    else:
        d = Path.home() / ".cache" / "int3-workbench"
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not d.is_dir():
            raise NotADirectoryError(20, "not a directory")
    except OSError as exc:
        name = "WORKBENCH_DATA" if env else "data directory"
        raise ConfigError(f"{name}: cannot use {str(d)!r} ({exc.strerror or exc}); "
                          "give a writable directory") from None
    return d


def cache_dir(*parts: str) -> Path:
    """A subdirectory of ``data_dir()/cache`` (created on demand; a file in its place is moved aside)."""
    return data_subdir("cache", *parts, repair=True)


def check_data_dir() -> Path:
    """:func:`data_dir`, checked writable before any work (a temporary file made and removed)."""
    d = data_dir()
    try:
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".wb-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        name = "WORKBENCH_DATA" if os.environ.get("WORKBENCH_DATA") else "data directory"
        raise ConfigError(f"{name}: cannot write in {str(d)!r} ({exc.strerror or exc}); "
                          "give a writable directory") from None
    return d
