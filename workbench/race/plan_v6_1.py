"""The ftrace update plan of Linux v6.1 on x86: text_poke batches, sync rounds and IPIs.

What one tracefs update makes the kernel do, read in v6.1's sources (Debian's
6.1.192 tree, ``linux-source-6.1``, the kernel the anchor boots; the
functions named are unchanged from the v6.1 tag):

* ``ftrace_modify_all_code()`` (kernel/trace/ftrace.c): when the function
  the trampolines call changes (``FTRACE_UPDATE_TRACE_FUNC``) it first sets
  it to ``ftrace_ops_list_func`` (``ftrace_update_ftrace_func()``,
  arch/x86/kernel/ftrace.c: one ``text_poke_bp()`` each for ``ftrace_call``
  and ``ftrace_regs_call``), then rewrites the call sites
  (``ftrace_replace_code()``), and, if the final function is not the list
  function, sends ``smp_call_function(ftrace_sync_ipi)`` and pokes both
  trampoline calls again.
* ``ftrace_replace_code()`` queues every changed record with
  ``text_poke_queue()`` and ends with ``text_poke_finish()``
  (arch/x86/kernel/alternative.c): a batch is flushed when it holds
  ``TP_VEC_MAX`` = 256 entries or the next address is below the last
  (``tp_order_fail()``); :data:`workbench.race.plan.TP_VEC_MAX`.
* ``text_poke_bp_batch()`` makes three ``text_poke_sync()`` rounds
  (``on_each_cpu(do_sync_core, NULL, 1)``) for 5-byte calls and nops: after
  the int3s, after the tails (``len - INT3_INSN_SIZE > 0``), after the first
  bytes (none of which is int3). ``text_poke_bp()`` is a batch of one.
* x86_64 only (``#ifdef CONFIG_X86_64``): an ops that is not dynamic gets
  its own trampoline, created at its first registration
  (``create_trampoline()``: ``set_memory_ro``/``set_memory_x``, page
  attribute flushes, no text_poke) and, at each later registration,
  ``arch_ftrace_update_trampoline()`` pokes the call inside it
  (``text_poke_bp``: one more batch). The function tracer's ``global_ops``
  and the kprobes' ``kprobe_ftrace_ops`` are both static.
* Every round sends one IPI to each other online CPU (``on_each_cpu()`` runs
  the callback locally on the caller; kernel/smp.c).

The plan is a tuple of :class:`workbench.race.plan.Stage` (the
simulator's own vocabulary: ``ftrace_call``, ``ftrace_regs_call``,
``sites``, ``publish``), plus ``ops_trampoline`` for the x86_64 trampoline
poke; docs/ANCHOR.md tells the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from workbench.base.errors import check_choice, check_range
from workbench.base.vocabulary import ARCHES
from workbench.race.plan import TP_VEC_MAX, Stage

__all__ = ["ROUNDS_PER_BATCH", "UPDATES", "PlanV61", "batches_of", "plan_v6_1"]

#: the updates the anchor makes (in each run: tracer on, kprobe added, kprobe removed, tracer off)
UPDATES = ("tracer_on", "kprobe_add", "kprobe_remove", "tracer_off")
#: text_poke_sync() rounds per text_poke_bp_batch() of 5-byte instructions
ROUNDS_PER_BATCH = 3


def batches_of(addresses: Sequence[int]) -> int:
    """How many ``text_poke_bp_batch()`` calls ``text_poke_queue()`` makes of *addresses* (in queue order).

    A new batch starts when the queue holds :data:`TP_VEC_MAX` entries or an
    address is below the previous one (``tp_order_fail()``).
    """
    count, nr, last = 0, 0, None
    for a in addresses:
        if nr == TP_VEC_MAX or (last is not None and a < last):
            count, nr = count + 1, 0
        nr, last = nr + 1, a
    return count + (1 if nr else 0)


@dataclass(frozen=True)
class PlanV61:
    """One update's plan: stages in order, and what they cost in rounds and IPIs."""

    arch: str
    update: str
    sites: int
    stages: tuple

    @property
    def batches(self) -> int:
        """``text_poke_bp_batch()`` calls: every stage but ``publish``."""
        return sum(1 for s in self.stages if s.target != "publish")

    @property
    def site_batches(self) -> int:
        """The batches that rewrite call sites."""
        return sum(1 for s in self.stages if s.target == "sites")

    @property
    def sync_rounds(self) -> int:
        """``text_poke_sync()`` rounds (``do_sync_core`` callbacks)."""
        return ROUNDS_PER_BATCH * self.batches

    @property
    def ftrace_sync_ipis(self) -> int:
        """``smp_call_function(ftrace_sync_ipi)`` rounds."""
        return sum(1 for s in self.stages if s.target == "publish")

    def ipis(self, cpus: int) -> int:
        """Function-call IPIs received in all, on *cpus* online CPUs (none to the caller)."""
        return (self.sync_rounds + self.ftrace_sync_ipis) * (int(cpus) - 1)

    def per_batch_ipis(self, cpus: int) -> int:
        """IPIs one more site batch adds: the slope against N is this over TP_VEC_MAX."""
        return ROUNDS_PER_BATCH * (int(cpus) - 1)


def plan_v6_1(update: str, arch: str, sites: int, *, addresses: Sequence[int] | None = None,
              first_registration: bool = False) -> PlanV61:
    """The v6.1 plan of *update* on *arch* changing *sites* call sites.

    ``tracer_on``/``tracer_off`` change the *sites* filtered functions;
    ``kprobe_add``/``kprobe_remove`` change one (the probed function, already
    traced). *addresses*, if given, are the changed records' addresses in
    ftrace's record order (the batches then follow ``tp_order_fail()``);
    otherwise the records are taken as ascending (vmlinux's are sorted at
    build time). ``first_registration``: the ops has no trampoline yet
    (x86_64: created, not poked).
    """
    check_choice("update", update, UPDATES)
    check_choice("arch", arch, ARCHES)
    sites = int(check_range("sites", sites, 0, 10**7, integer=True))
    changed = 1 if update.startswith("kprobe") else sites
    if addresses is not None:
        nb = batches_of(addresses)
    else:
        nb = -(-changed // TP_VEC_MAX)
    tramp = (Stage("ftrace_call"), Stage("ftrace_regs_call"))
    site_stages = tuple(Stage("sites", ("ordinary",)) for _ in range(nb))
    adding = update in ("tracer_on", "kprobe_add")
    own = (Stage("ops_trampoline"),) if arch == "x86_64" and adding and not first_registration else ()
    if update == "kprobe_add":
        # two ops now: the trampolines call ftrace_ops_list_func, which is also the final function
        stages = own + tramp + site_stages
    else:
        stages = own + tramp + site_stages + (Stage("publish"),) + tramp
    return PlanV61(arch, update, sites, stages)
