"""Where the workbench keeps its caches and outputs.

Inside a source checkout (the package sits next to ``pyproject.toml``) both
live under ``data/`` in the checkout; an installed package uses
``~/.cache/int3-workbench``. ``WORKBENCH_DATA`` overrides either. A data
directory that cannot be made or written is a :class:`ConfigError`. Models
no kernel file.
"""

import os
import tempfile
from pathlib import Path

from workbench.base.errors import ConfigError

__all__ = ["cache_dir", "check_data_dir", "data_dir"]

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
    """A subdirectory of ``data_dir()/cache`` (created on demand)."""
    d = data_dir().joinpath("cache", *parts)
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cache: cannot create {str(d)!r} ({exc.strerror or exc}); "
                          "give WORKBENCH_DATA a writable directory") from None
    return d


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
