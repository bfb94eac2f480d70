"""Where a result came from: the provenance every output file of the workbench carries.

A result is only publishable if a reader can tell which code, which
configuration and which random stream made it. :func:`provenance` builds
that record -- the package version and source hash
(:func:`workbench.base.version.code_version`), the patch scenario and the
kernel int3 entry whose emulated outcomes were used (the model of
``arch/x86/kernel/alternative.c:text_poke_bp()`` and the int3 entry of
``arch/x86/entry/entry_32.S``), the seed, the grid's name and whether it
was the reduced ``quick`` grid or the ``full`` one -- and
:func:`stamp` attaches it to a frame twice:

* as ``frame.attrs["provenance"]`` (and ``attrs["units"]``), which pandas
  writes into the Parquet schema metadata and restores on
  ``pd.read_parquet``;
* as plain columns (:data:`PROVENANCE_COLUMNS`), which survive any format,
  CSV included. A frame's own ``scenario``, ``entry`` and ``seed`` columns
  (swept parameters or per-row records) are kept as they are; the other
  provenance columns are (re)written.

Time columns carry their unit in their name, ``_ns`` or ``_ms`` (never
both for one quantity); :func:`units` maps each column to its unit and
:func:`time_unit` reads it back from a name. Nothing here depends on the
clock or the host, so the same run writes the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

from workbench.base.version import VERSION as __version__
from workbench.base.errors import ConfigError, check_choice
from workbench.base.version import code_version

__all__ = ["PROVENANCE_COLUMNS", "RUNS", "UNIT_SUFFIXES", "provenance", "read_provenance", "stamp",
           "time_unit", "units"]

#: the provenance fields, in the order they are written as columns
PROVENANCE_COLUMNS = ("code_version", "workbench_version", "scenario", "entry", "seed", "grid", "run")
#: ``quick``: the reduced grid of ``figures --quick``; ``full``: the published grid;
#: ``custom``: a grid given by hand (``sweep --set``, a notebook)
RUNS = ("custom", "full", "quick")
#: column-name suffix -> unit (time: ``_ns`` nanoseconds, ``_us`` microseconds, ``_ms`` milliseconds);
#: no ``_s``: ``zipf_s`` is an exponent
UNIT_SUFFIXES = {"_ns": "ns", "_us": "us", "_ms": "ms"}
#: provenance fields that may be swept parameters with a value per row
_PER_ROW = ("scenario", "entry", "seed")
#: statistic suffixes a sweep appends to a metric name (``patch_ns_mean`` is in ns)
_STATS = ("_mean", "_lo", "_hi", "_se", "_cf", "_sd", "_min", "_max")


def provenance(*, seed: int | None, grid: str, run: str = "custom", scenario: Any = None,
               entry: Any = None) -> dict[str, Any]:
    """The provenance record of one output (a plain, JSON-serialisable dict).

    *scenario* and *entry* may be a name, several names (joined with ``+``,
    sorted) or ``None`` (not applicable: written as ``"-"``). *run* is one
    of :data:`RUNS`. Raises :class:`ConfigError` for an unknown *run*.
    """
    check_choice("run", run, RUNS)

    def join(v):
        if v is None:
            return "-"
        if isinstance(v, str):
            return v
        return "+".join(sorted({str(x) for x in v})) or "-"

    return {"code_version": code_version(), "workbench_version": __version__, "scenario": join(scenario),
            "entry": join(entry), "seed": -1 if seed is None else int(seed), "grid": str(grid), "run": run}


def time_unit(column: str) -> str | None:
    """The unit named by *column* (``patch_ns_mean`` -> ``"ns"``), or None for a unitless column."""
    name = column
    for s in _STATS:
        if name.endswith(s):
            name = name[: -len(s)]
            break
    for suffix, unit in UNIT_SUFFIXES.items():
        if name.endswith(suffix):
            return unit
    return None


def units(columns) -> dict[str, str]:
    """``{column: unit}`` for every column of *columns* whose name names a unit."""
    return {c: u for c in columns if (u := time_unit(str(c))) is not None}


def stamp(frame, prov: dict[str, Any]):
    """A copy of *frame* carrying *prov*: in ``attrs`` and as columns (see the module docstring).

    ``attrs`` holds exactly ``provenance`` and ``units`` afterwards (run
    statistics such as cache hits are dropped: they differ between runs of
    the same result). Raises :class:`ConfigError` if *prov* lacks a field.
    """
    missing = [k for k in PROVENANCE_COLUMNS if k not in prov]
    if missing:
        raise ConfigError(f"provenance: missing {', '.join(missing)}")
    out = frame.copy()
    for k in PROVENANCE_COLUMNS:
        if k in _PER_ROW and k in out.columns:
            continue  # a swept parameter: each row has its own
        out[k] = prov[k]
    out.attrs = {"provenance": dict(prov), "units": units(out.columns)}
    return out


def read_provenance(frame) -> dict[str, Any]:
    """The provenance of a frame read back from Parquet (attrs) or CSV (columns).

    A column holding several values (a sweep over scenarios) is read as
    their sorted ``+``-joined names. Raises :class:`ConfigError` if the
    frame carries none.
    """
    got = frame.attrs.get("provenance")
    if isinstance(got, str):  # some writers keep attrs as JSON text
        got = json.loads(got)
    if got:
        return dict(got)
    if not all(k in frame.columns for k in PROVENANCE_COLUMNS):
        raise ConfigError("provenance: the frame carries no provenance (attrs or columns)")
    out = {}
    for k in PROVENANCE_COLUMNS:
        vals = sorted({str(v) for v in frame[k].dropna()})
        out[k] = vals[0] if len(vals) == 1 else "+".join(vals)
    out["seed"] = int(out["seed"]) if out["seed"].lstrip("-").isdigit() else out["seed"]
    return out
