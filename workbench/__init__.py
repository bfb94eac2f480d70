"""int3 workbench: what happens to calls that hit an int3 while ftrace patches a site.

The public API, by floor (bottom first: each floor imports only its own
modules and the floors listed before it; see docs/ARCHITECTURE.md):

========== ================================================================
floor      what it holds
========== ================================================================
base       errors, paths, code versions, the vocabulary of names and units
sweep      grids of points run serially, in processes or on Dask; the cache
kernel     the emulated i386 and x86_64 kernels: image, machine, ftrace, int3
emulate    scenarios, one watched call, interleavings, the outcome table, mc/
race       the race simulator: timing, workload, closed form, Monte Carlo
anchor     Debian's real 6.1 kernels booted under QEMU: their ftrace IPIs
figures    the figures and the ``make figures`` job
ui         the command line and the Jupyter widgets
========== ================================================================

The names below are importable from ``workbench`` itself; each is loaded on
first use (``import workbench`` stays cheap: Unicorn, pandas and matplotlib
load only with the floor that needs them).
"""

from __future__ import annotations

import importlib

from workbench.base.version import VERSION as __version__  # noqa: F401 -- public: __all__ lists it

#: the floors, bottom first: a module imports only its own floor and those before it
LAYERS = ("base", "sweep", "kernel", "emulate", "race", "anchor", "figures", "ui")

#: public name -> the module that defines it (the table of contents)
_API = {
    # base
    "ConfigError": "workbench.base.errors",
    "COLUMNS": "workbench.base.vocabulary",
    "column": "workbench.base.vocabulary",
    # kernel
    "KernelImage": "workbench.kernel.image",
    "build_image": "workbench.kernel.image",
    "Machine": "workbench.kernel.machine",
    "Crash": "workbench.kernel.machine",
    "ENTRIES": "workbench.kernel.machine",
    "PtRegs": "workbench.kernel.ptrace",
    "FtraceOps": "workbench.kernel.ftrace",
    "FtraceState": "workbench.kernel.ftrace",
    "plan_transition": "workbench.kernel.ftrace",
    "poke_steps": "workbench.kernel.text_poke",
    "STRATEGIES": "workbench.kernel.int3",
    "get_strategy": "workbench.kernel.int3",
    "KernelTree": "workbench.kernel.tree",
    "open_kernel_tree": "workbench.kernel.tree",
    # emulate
    "Scenario": "workbench.emulate.scenario",
    "load_scenario": "workbench.emulate.scenario",
    "watch_call": "workbench.emulate.watch",
    "explore": "workbench.emulate.explore",
    "outcome_table": "workbench.emulate.explore",
    "load_outcome_table": "workbench.emulate.explore",
    "compare_outcome_tables": "workbench.emulate.tree_compare",
    "CallStepper": "workbench.emulate.stepper",
    "check_all": "workbench.emulate.mc.experiment",
    # sweep
    "Grid": "workbench.sweep.engine",
    "sweep": "workbench.sweep.engine",
    "Experiment": "workbench.sweep.experiment",
    "FunctionExperiment": "workbench.sweep.experiment",
    # race
    "Timing": "workbench.race.timing",
    "Workload": "workbench.race.workload",
    "RaceConfig": "workbench.race.simulator",
    "simulate": "workbench.race.simulator",
    "closed_form": "workbench.race.simulator",
    "load_outcomes": "workbench.race.outcomes",
    "RACE": "workbench.race.experiment",
    "race_grid": "workbench.race.experiment",
    # figures
    "regenerate": "workbench.figures.job",
    # ui
    "main": "workbench.ui.cli",
    "Explorer": "workbench.ui.widgets",
    "StepViewer": "workbench.ui.step_viewer",
}

__all__ = sorted(["LAYERS", "__version__", *_API])


def __getattr__(name: str):
    """Load a public name from its module on first use (PEP 562)."""
    try:
        module = _API[name]
    except KeyError:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
