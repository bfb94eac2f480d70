"""The anchor's grid: the ftrace site counts each boot of ``make anchor`` (and its quick run) updates.

Kept apart from :mod:`workbench.anchor.run` so that the ``anchor`` command
can name its defaults while parsing its options without loading NumPy and
pandas. The kernel side of a site count is ``set_ftrace_filter``
(``kernel/trace/ftrace.c``): N functions traced, 0 meaning every one.
"""

from __future__ import annotations

__all__ = ["FULL_NS", "QUICK_NS"]

#: site counts of ``make anchor`` (0: every traceable function)
FULL_NS = (1, 600, 1200, 2400, 4800, 9600, 19200, 0)
#: site counts of the quick run (CI): 1, 5, 10 and 19 site batches
QUICK_NS = (1, 1200, 2400, 4800)
