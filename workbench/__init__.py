"""int3 workbench: what happens to calls that hit an int3 while ftrace patches a site.

The main entry points:

- :func:`workbench.image.build_image` and :class:`workbench.machine.Machine`:
  the emulated i386 kernel on N CPUs sharing one memory.
- :func:`workbench.watch.watch_call`: one traced call, watched.
- :func:`workbench.explore.explore` and
  :func:`workbench.explore.load_outcome_table`: interleave a patch with calling
  CPUs under each int3 strategy; the outcome table.
- :mod:`workbench.race`: the race simulator, closed form and Monte Carlo.
- :mod:`workbench.sweep`, :mod:`workbench.plots`, :mod:`workbench.widgets`:
  grids, figures and explorers.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
