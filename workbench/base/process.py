"""Worker processes that do not outlive the process that started them.

Models no kernel file; it uses one Linux interface, ``prctl(PR_SET_PDEATHSIG)``
(``kernel/sys.c``; the signal is sent by ``forget_original_parent()`` in
``kernel/exit.c`` to every thread of a child whose parent exits). A pool
worker (loky, Dask) calls :func:`die_with_parent` before each task: if the
coordinating process is killed, even with ``SIGKILL``, the worker is killed
too instead of finishing its task and idling for minutes. Elsewhere than
Linux it only checks that the parent is still there. Linux sends the signal
when the *thread* that started the worker ends; the pools are started by the
thread that runs the sweep (the main thread, from the command line and in
notebooks), which outlives them.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

__all__ = ["die_with_parent"]

_PR_SET_PDEATHSIG = 1
_ARMED: list[int] = []


def die_with_parent() -> None:
    """Arrange for this process to get ``SIGKILL`` when its parent exits; exit now if it already has.

    Cheap after the first call in a process (the setting is kept).
    """
    parent = os.getppid()
    if _ARMED and _ARMED[0] == parent:
        return
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: fall back to the check below
            pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    _ARMED[:] = [parent]
