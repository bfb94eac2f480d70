"""Where the workbench keeps its caches and outputs.

Inside a source checkout (the package sits next to ``pyproject.toml``) both
live under ``data/`` in the checkout; an installed package uses
``~/.cache/int3-workbench``. ``WORKBENCH_DATA`` overrides either.
"""

import os
from pathlib import Path

__all__ = ["data_dir", "cache_dir"]

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
    d.mkdir(parents=True, exist_ok=True)
    return d


def cache_dir(*parts: str) -> Path:
    """A subdirectory of ``data_dir()/cache`` (created on demand)."""
    d = data_dir().joinpath("cache", *parts)
    d.mkdir(parents=True, exist_ok=True)
    return d
