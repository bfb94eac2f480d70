"""Environment variables the workbench or its libraries read, checked before any work.

Models no kernel file. A wrong value in one of these used to surface as a
library's traceback in the middle of a run (``MPLBACKEND=nonsense``:
matplotlib's ``ValueError`` when the figures job imports it;
``LOKY_MAX_CPU_COUNT=abc``: joblib's when the pool starts;
``TQDM_MININTERVAL=abc``: tqdm's at the first progress bar).
:func:`check_environment` looks at each one the command line may meet and
raises :class:`~workbench.base.errors.ConfigError` naming the first wrong
variable and what it takes. ``WORKBENCH_DATA`` is checked by
:func:`workbench.base.paths.check_data_dir`.
"""

from __future__ import annotations

import os
import re
from typing import Callable

from workbench.base.errors import ConfigError

__all__ = ["MPL_BACKENDS", "VARIABLES", "check_environment"]

#: matplotlib's built-in backends (``matplotlib.backends.backend_registry``, 3.9+) and the
#: Jupyter ones; anything else must be ``module://NAME``
MPL_BACKENDS = ("agg", "cairo", "gtk3agg", "gtk3cairo", "gtk4agg", "gtk4cairo", "inline", "ipympl", "macosx",
                "module://matplotlib_inline.backend_inline", "nbagg", "notebook", "pdf", "pgf", "ps",
                "qt5agg", "qt5cairo", "qtagg", "qtcairo", "svg", "template", "tkagg", "tkcairo", "webagg",
                "widget", "wx", "wxagg", "wxcairo")


def _backend(v: str) -> bool:
    return v.lower() in MPL_BACKENDS or re.fullmatch(r"module://[A-Za-z_][\w.]*", v) is not None


def _positive_int(v: str) -> bool:
    return re.fullmatch(r"\s*[1-9][0-9]{0,5}\s*", v) is not None


def _thread_list(v: str) -> bool:  # OpenMP takes a list, one count per nesting level
    return re.fullmatch(r"\s*[1-9][0-9]{0,5}(\s*,\s*[1-9][0-9]{0,5})*\s*", v) is not None


def _writable_dir(v: str) -> bool:
    return os.path.isdir(v) and os.access(v, os.W_OK | os.X_OK)


#: variable -> (who reads it, what it takes, the check); an empty value counts as unset
VARIABLES: dict[str, tuple[str, str, Callable[[str], bool]]] = {
    "MPLBACKEND": ("matplotlib", "a matplotlib backend such as agg, or module://NAME", _backend),
    "MPLCONFIGDIR": ("matplotlib", "a writable directory", _writable_dir),
    "LOKY_MAX_CPU_COUNT": ("joblib's loky pool", "a positive integer", _positive_int),
    "JOBLIB_TEMP_FOLDER": ("joblib", "a writable directory", _writable_dir),
    "OMP_NUM_THREADS": ("OpenMP (BLAS)", "a positive integer or a comma-separated list of them", _thread_list),
    "OPENBLAS_NUM_THREADS": ("OpenBLAS", "a positive integer", _positive_int),
    "MKL_NUM_THREADS": ("MKL", "a positive integer", _positive_int),
}


def _check_tqdm(env) -> None:
    """tqdm turns every ``TQDM_<option>`` into a default of its bars: try them on a bar that draws nothing."""
    names = sorted(k for k in env if k.startswith("TQDM_"))
    if not names:
        return
    try:
        # start-up: tqdm is loaded only when a TQDM_ variable is set, to check it
        from tqdm.std import tqdm

        tqdm(total=0, disable=True).close()
    except Exception as exc:  # tqdm raises ValueError or TypeError for a value it cannot convert
        raise ConfigError(f"{', '.join(names)}: tqdm cannot use this environment ({exc}); fix or unset "
                          "the variable") from None


def check_environment(env=None) -> None:
    """Raise ConfigError naming the first variable of :data:`VARIABLES` (or ``TQDM_*``) with a wrong value."""
    env = os.environ if env is None else env
    for name, (reader, takes, ok) in VARIABLES.items():
        value = env.get(name)
        if value and not ok(value):
            raise ConfigError(f"{name}: {value!r} is not usable by {reader}; give {takes}, or unset it")
    _check_tqdm(env)
