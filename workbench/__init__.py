"""int3 workbench: what happens to calls that hit an int3 while ftrace patches a site.

The main entry points:

- :func:`workbench.kernel.image.build_image` and :class:`workbench.kernel.machine.Machine`:
  the emulated i386 kernel on N CPUs sharing one memory.
- :func:`workbench.emulate.watch.watch_call`: one traced call, watched.
- :func:`workbench.emulate.explore.explore` and
  :func:`workbench.emulate.explore.load_outcome_table`: interleave a patch with calling
  CPUs under each int3 strategy; the outcome table.
- :mod:`workbench.race.simulator`: the race simulator, closed form and Monte Carlo.
- :mod:`workbench.sweep.engine`, :mod:`workbench.figures.plots`, :mod:`workbench.ui.widgets`:
  grids, figures and explorers.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
