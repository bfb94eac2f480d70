"""What the model checker checks, and the terms its transition system is stated in.

:class:`McConfig` is one configuration: scenario, int3 handler strategy,
arch and int3 entry, the poke method (the breakpoint protocol of
``text_poke_bp_batch()`` in ``arch/x86/kernel/alternative.c`` and the
variants around it: :data:`POKE_METHOD_HISTORY`) and what each calling CPU calls. The system
(:class:`workbench.emulate.mc.system.McSystem`) has threads named by
:func:`thread_name`: the patcher ``P``, calling CPUs ``C0..C{k-1}`` and
one interrupt thread per calling CPU ``I0..``. Its visible operations
(:class:`Event`) and what they touch (the access sets the reduction uses):

=============  ==========================================================
``fetch s``    a calling CPU about to execute the patched instruction at
               site *s*: reads ``text:s`` unless it still holds its own
               translation of *s* (stale until its next IPI; with
               *coherent_fetch* every fetch reads); reads and writes
               ``ic:c`` (its translations) and may change IF (an int3 there
               traps): writes ``if:c``.
``enter``      a calling CPU about to begin a call whose context runs with
               IF clear (``interrupt``, ``irq_off``: docs/KERNEL.md), IF
               still set: reads and writes ``if:c`` (the call clears it).
               A process-context call has no such point.
``data a``     a load of a word the patch stores (ops list links,
               ``function_trace_op``): reads ``data:a``.
``h1``         ``poke_int3_handler()`` reads ``bp_patching.nr_entries``.
``h2``         it reads ``bp_patching.vec``, finds the site, runs the
               strategy on ``pt_regs`` and returns (``iret``: writes
               ``if:c``; ``iret`` is serializing, so the CPU drops its
               stale translations: writes ``ic:c``).
``ack``        the interrupt thread takes a pending IPI at a boundary where
               the CPU has IF set: writes ``ipi:c``, drops the CPU's
               translations (``ic:c``; ``sync_core``).
patcher        text stores (``text:s``), data stores (``data:a``), the
               descriptor (``nr``, ``vec``), an IPI round as ``send``
               (writes every ``ipi:c``) then ``wait`` (enabled only when
               every CPU acknowledged), ``release`` after ``stop_machine``.
=============  ==========================================================

Two operations of different threads are dependent (:func:`dependent`) when
one writes a location the other reads or writes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from workbench.base.errors import check_choice, check_range
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH, MC_HANDLERS, MC_POKE_METHODS, RANGES
from workbench.kernel.int3 import get_strategy
from workbench.kernel.tree import KernelTree, open_kernel_tree

__all__ = ["Event", "HANDLERS", "MAX_CALLING_CPUS", "McConfig", "POKE_METHOD_HISTORY", "dependent", "thread_name"]

#: calling CPUs the exhaustive checker accepts (the state space grows steeply past this)
MAX_CALLING_CPUS = int(RANGES["mc_cpus"].hi)
#: poke method -> how a batch ends (kernel history in docs/MODEL_CHECKING.md)
POKE_METHOD_HISTORY = {
    "breakpoint": "int3, sync, tails, sync, first bytes, sync, nr_entries=0, sync, vec=NULL: 285a54efe386's "
                  "text_poke_bp_batch(), never released (v5.6 ships 1f676247f36a's reference count instead)",
    "racy_clear": "as breakpoint but nr_entries=0 and vec=NULL with no sync between: text_poke_bp() of "
                  "v5.3-v5.5 (used by jump labels and kprobes; ftrace had its own handler then)",
    "racy_clear_nosync3": "constructed negative control: no sync after the first bytes (the kernel's do_sync == 0 "
                          "path) and no sync between the two clears",
    "fixed_clear_nosync3": "constructed: no sync after the first bytes, sync between the clears (285a54efe386's "
                           "fix, never released)",
    "no_sync": "negative control: the breakpoint method with no IPI round at all",
    "stop_machine": "IPI every CPU into a stop, write whole instructions, release (each CPU refetches)",
}
#: handler variants: the strategy as shipped, or a negative control that waits with IF clear
HANDLERS = MC_HANDLERS
if tuple(POKE_METHOD_HISTORY) != MC_POKE_METHODS:  # every named poke method has its history, in the same order
    raise ImportError(f"model checker poke methods {tuple(POKE_METHOD_HISTORY)} differ from the vocabulary's "
                      f"{MC_POKE_METHODS}")


def thread_name(tid: int, k: int) -> str:
    """``P``, ``C<i>`` or ``I<i>`` for thread *tid* of a system with *k* calling CPUs."""
    if tid == 0:
        return "P"
    return f"C{tid - 1}" if tid <= k else f"I{tid - 1 - k}"


@dataclass(frozen=True)
class Event:
    """One visible operation: thread, kind, argument, and the locations it reads/writes."""

    tid: int
    kind: str
    arg: int
    reads: frozenset
    writes: frozenset


def dependent(a: Event, b: Event) -> bool:
    """Same thread, or one writes what the other reads or writes."""
    if a.tid == b.tid:
        return True
    return bool(a.writes & (b.reads | b.writes) or b.writes & a.reads)


@dataclass(frozen=True)
class McConfig:
    """What to check: scenario, strategy, entry, poke method, and what each calling CPU calls.

    *arch* is the emulated kernel (``i386`` or ``x86_64``); *entry* one of
    its int3 entries (None: the arch's latest, v5.3 on i386, v5.2 on
    x86_64); a scenario the arch cannot have is refused. *calls* holds one
    tuple of traced-function names per calling CPU (each CPU calls them in
    order, once). *all_sites* keeps the text stores to
    sites no CPU calls (they commute with everything; dropped by default).
    *items* keeps only the plan items with these names (tiny test systems).
    """

    scenario: str = "seed"
    strategy: str = "emulate_new"
    entry: str | None = None
    poke_method: str | None = None
    calls: tuple = (("do_IRQ",), ("schedule",))
    handler: str = "strategy"
    coherent_fetch: bool = False
    n_ordinary: int = 8
    per_site: bool = False
    all_sites: bool = False
    items: tuple | None = None
    #: the root of a kernel tree whose own trampolines (of the arch) run (workbench.kernel.tree), or None: ours
    kernel_tree: str | None = None
    arch: str = "i386"

    def checked(self) -> "McConfig":
        """This configuration with names resolved; ConfigError for bad input."""
        get_strategy(self.strategy)
        arch = check_choice("arch", self.arch, ARCHES)
        entries = ENTRIES_BY_ARCH[arch]
        entry = check_choice("entry", entries[-1] if self.entry is None else self.entry, entries)
        poke = self.poke_method or ("stop_machine" if get_strategy(self.strategy).poke_method == "stop_machine"
                                    else "breakpoint")
        check_choice("poke_method", poke, MC_POKE_METHODS)
        check_choice("handler", self.handler, HANDLERS)
        calls = tuple(tuple(c) for c in self.calls)
        check_range("cpus", len(calls), 1, MAX_CALLING_CPUS, integer=True)
        for c in calls:
            check_range("calls", len(c), 1, 4, integer=True)
        check_range("n_ordinary", self.n_ordinary, 1, 64, integer=True)
        tree = None if self.kernel_tree is None else str(open_kernel_tree(self.kernel_tree, arch).root)
        return replace(self, entry=entry, poke_method=poke, calls=calls,
                       items=None if self.items is None else tuple(self.items), kernel_tree=tree)

    def tree(self) -> KernelTree | None:
        """The kernel tree whose trampolines run (its ``ftrace_32.S`` or ``ftrace_64.S``, by arch), or None (ours)."""
        return None if self.kernel_tree is None else open_kernel_tree(self.kernel_tree, self.arch)
