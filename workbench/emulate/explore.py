"""Interleave a patch with calling CPUs and record what every call did.

Two modes over the same :class:`Run`:

* **exhaustive**, one calling CPU: every instruction boundary of one call at
  which each patch step can land (the steps before it landed earlier, the
  ones after follow every *patch_gap* instructions, 200 by default). Placements between
  which the CPU neither executes a block holding the step's bytes, nor reads
  its data, nor enters the int3 handler are equivalent; one of each class is
  executed, and its weight is the number of raw placements it stands for.
* **random**, several CPUs: seeded random slices and step times.

Every call becomes a row of the calls frame (docs/ARCHITECTURE.md): its
evidence read from emulated memory, classified against the handlers the old
and new instruction run, which are measured by reference runs. An emulated
crash is a row, never an exception.
"""

from __future__ import annotations

import io
import json
import weakref

import numpy as np
import pandas as pd
from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ, UC_HOOK_MEM_WRITE

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.paths import cache_dir
from workbench.base.store import load_entry, store_entry
from workbench.base.version import emulator_version
from workbench.base.vocabulary import MODES
from workbench.kernel.ftrace import TRAMPOLINE_CALLS
from workbench.kernel.image import build_image
from workbench.kernel.tree import KernelTree
from workbench.kernel.int3 import STRATEGIES, get_strategy
from workbench.kernel.layout import EQU
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH
from workbench.kernel.machine import Crash, Machine
from workbench.emulate.oracle import OracleMismatch, predicted_handlers
from workbench.emulate.outcomes import classify, observe
from workbench.emulate.scenario import load_scenario
from workbench.emulate.tree_abi import check_trampoline_abi
from workbench.kernel.text_poke import PROTOCOLS, poke_steps

__all__ = ["MODES", "OUTCOME_COLUMNS", "MemoryRestorer", "Run", "cached_outcome_table", "explore", "load_outcome_table",
           "outcome_table", "transition_table"]

OUTCOME_COLUMNS = ("violation", "dropped_tracer", "dropped_livepatch", "spurious", "crash", "deadlock",
                   "delay_traps")
_CAP = 20000  # instructions after which a call that has not returned is a hang
_IPI_KINDS = ("sync", "stop")
_EFLAGS_IF = 1 << 9
#: AT&T mnemonic prefixes that end a straight-line run: control transfers and IF setters
_NOT_PLAIN = ("j", "call", "ret", "lret", "iret", "loop", "int", "into", "bound", "popf", "sti",
              "hlt", "ud", "sys", "lcall", "ljmp")


class _References:
    """The reference runs' machine and what it computed: the before state's memory,
    each phase's writes, and the handlers each (phase, function, text override) runs."""

    __slots__ = ("machine", "cache", "base", "phases", "mismatches")

    def __init__(self, machine: Machine):
        self.machine = machine
        #: reference runs of a kernel tree's trampolines that disagreed with the state table
        self.mismatches: list[str] = []
        self.cache: dict = {}
        self.base: np.ndarray | None = None
        self.phases: list | None = None


class Run:
    """A scenario's patch under one strategy and entry, ready to interleave.

    *protocol* defaults to the strategy's own (``breakpoint``, or
    ``stop_machine`` for that strategy); the negative controls ``naive`` and
    ``no_sync`` can be forced. Raises ConfigError for unknown names.
    *references*: a run of the same scenario, image, entry and steps whose
    reference runs (machine and results) this one shares; closing either
    closes that machine. *arch* is the emulated kernel (``i386`` or
    ``x86_64``); *entry* defaults to the arch's latest (v5.3 on i386, v5.2
    on x86_64); a scenario the arch cannot have is refused
    (:meth:`~workbench.emulate.scenario.Scenario.check_arch`). *tree*: a
    kernel tree whose own trampolines replace ours
    (:func:`workbench.kernel.tree.open_kernel_tree`; its ftrace_32.S or ftrace_64.S, as *arch* runs).
    """

    def __init__(self, scenario="seed", strategy="emulate_new", entry=None, protocol=None,
                 n_ordinary=8, per_site=False, ncpus=1, coherent_fetch=False, references: "Run | None" = None,
                 arch="i386", tree: KernelTree | None = None):
        self.arch = check_choice("arch", arch, ARCHES)
        self.scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
        self.scenario.check_arch(arch)
        self.strategy = get_strategy(strategy)
        entries = ENTRIES_BY_ARCH[arch]
        self.entry = check_choice("entry", entries[-1] if entry is None else entry, entries)
        self.protocol = check_choice("protocol", protocol or self.strategy.protocol, PROTOCOLS)
        self.image = build_image(n_ordinary, arch, tree)
        self.before, self.after = self.scenario.states(self.image)
        self.steps = poke_steps(self.scenario.plan(self.image, per_site), self.protocol)
        ref = weakref.ref(self)  # the machine holds its handler: no cycle back to this run
        self.machine = Machine(self.image, ncpus, entry, coherent_fetch=coherent_fetch,
                               int3_handler=lambda m, cpu, regs: ref()._handler(m, cpu, regs))
        # every direct memory change here (reset, enter_phase, the restorer) is synced before a run
        self.machine.count_text_writes()
        if references is None:
            self._refs = _References(Machine(self.image, 1, entry))  # reference runs: no int3 handler needed
        elif (references.scenario is self.scenario and references.image is self.image
              and references.entry == self.entry and references.steps == self.steps):
            # the reference runs depend on the scenario, entry and steps, not the strategy
            self._refs = references._refs
        else:
            raise ValueError("references: a run of another scenario, image, entry or patch")
        self.ref = self._refs.machine
        self.phase = 0
        self.traps: dict[tuple[int, int], list] = {}
        #: stop_machine rounds the patch takes: each holds every CPU while it writes
        self.stop_rounds = sum(s.kind == "stop" for s in self.steps)
        t0, t1 = self.image.text
        # the text ranges any step of the patch writes (data and sync steps write no text)
        self._written = sorted({(max(lo, t0), min(hi, t1)) for s in self.steps if s.kind in ("text", "stop")
                                for lo, hi in s.addrs if lo < t1 and t0 < hi})
        self._plain: dict[int, int] = {}

    @property
    def reference_mismatches(self) -> list[str]:
        """Reference runs of a kernel tree's trampolines that ran other handlers than the
        ftrace state table says (a trampoline bug; expectations follow the table)."""
        return sorted(set(self._refs.mismatches))

    def close(self) -> None:
        """Release both machines' Unicorn engines now."""
        self.machine.close()
        self.ref.close()

    # -- the patcher -----------------------------------------------------------------
    def phase_name(self, p: int) -> str:
        return "before" if p == 0 else ("done" if p >= len(self.steps) else self.steps[p - 1].name)

    def await_interrupts(self, budget: int = 1000) -> int:
        """Let the next step's IPI round be taken: run every CPU that has
        interrupts off (between an int3 and its iret: the int3 gate clears
        IF) until it can take the IPI, as hardware delivers it at the first
        boundary with IF set. Returns the instructions spent; a CPU still
        unable after *budget* is a hang.

        Instruction by instruction in effect, in runs of :meth:`_plain_run`
        instructions at once: none of them can set IF, so the first boundary
        with IF set is never inside a run."""
        if self.phase >= len(self.steps) or self.steps[self.phase].kind not in _IPI_KINDS:
            return 0
        spent = 0
        for cpu in self.machine.cpus:
            n = 0
            key = (cpu.index, cpu.completed_calls())
            seen = len(self.traps.get(key, ()))
            while cpu.crash is None and not cpu.interrupts_enabled():
                traps = self.traps.get(key, ())
                # trapped twice on the same site since this wait began, with no
                # step landed in between: it spins with IF clear and always will
                again = len(traps) - seen >= 2 and traps[-1] in traps[seen:-1]
                if n == budget or again:
                    cpu.crash = _hang(cpu, f"deadlock: interrupts off for {n} instructions, spinning on "
                                           "the int3: the sync IPI never lands" if again else
                                      f"deadlock: interrupts off for {budget} instructions: "
                                      "the sync IPI never lands")
                    break
                k = min(self._plain_run(cpu.eip), budget - n) or 1
                cpu.run(k)
                n += k
            spent += n
        return spent

    def call_entry(self, fn: str, gap: int = 0) -> tuple[int, int]:
        """A workload entry ``(site, gap)`` calling *fn* in its scenario context
        (GAP_IRQOFF set: the call runs with interrupts off)."""
        flag = EQU["GAP_IRQOFF"] if self.scenario.irq_off(fn) else 0
        return self.image.functions[fn].site, int(gap) | flag

    def _plain_run(self, eip: int) -> int:
        """Instructions from *eip* on that cannot set IF or go elsewhere: straight-line
        code up to the first control transfer or IF-setting instruction (iret, popf,
        sti), all of it in text no step writes, so that what the CPU executes there is
        what memory holds. 0 where that cannot be told."""
        n = self._plain.get(eip)
        if n is None:
            n, im = 0, self.image
            t0, t1 = im.text
            if t0 <= eip < t1:
                for insn in im.disassemble(self.machine.read(eip, min(64, t1 - eip)), eip):
                    lo, hi = insn.address, insn.address + insn.size
                    if insn.mnemonic.startswith(_NOT_PLAIN) or any(lo < b and a < hi for a, b in self._written):
                        break
                    n += 1
            self._plain[eip] = n
        return n

    def apply_step(self) -> None:
        m = self.machine
        self.steps[self.phase].apply(m)
        self.phase += 1
        m.write32(self.image.sym("patch_phase"), self.phase)

    def _handler(self, m, cpu, regs):
        key = (cpu.index, cpu.completed_calls())
        self.traps.setdefault(key, []).append((self.phase, regs.ip - 1))
        return self.strategy(m, cpu, regs)

    def reset(self, to_base=None) -> None:
        """Machine back to the scenario's before state, patch not started.
        *to_base* puts its memory back (default: copy all of it)."""
        m = self.machine
        if to_base is None:
            m.mem[:] = self._before_memory()
        else:
            to_base()
        m.sync_core()  # as the before state's apply() ends
        m.text_poke_state = None
        self.phase, self.traps = 0, {}
        m.write32(self.image.sym("patch_phase"), 0)

    def enter_phase(self, k: int) -> None:
        """The patcher has applied steps ``[0, k)`` (from the before state, patch not
        started): their writes land in memory at once, as applying them one by one
        would leave it; translations are the caller's business (a full sync after)."""
        m = self.machine
        idx, vals, bp = self._phase_writes()[k]
        m.u32[idx] = vals
        m.text_poke_state = bp
        self.phase = k
        m.write32(self.image.sym("patch_phase"), k)

    def _before_memory(self) -> np.ndarray:
        """The machine's memory in the scenario's before state (computed once: its
        ``apply()`` is a function of memory only, ending with a sync)."""
        refs = self._refs
        if refs.base is None:
            r = self.ref
            r.mem[:] = r._pristine
            self.before.apply(r)
            refs.base = r.mem.copy()
        return refs.base

    def _phase_writes(self) -> list:
        """For every phase p: the 32-bit words (indices, values) in which memory after
        ``steps[:p]`` differs from the before state, and ``bp_desc`` then. Applying
        the steps once, in order, instead of again for every phase that needs them."""
        refs = self._refs
        if refs.phases is None:
            r, base = self.ref, self._before_memory()
            r.mem[:] = base
            r.text_poke_state = None
            b32 = base.view(np.uint32)
            none = np.zeros(0, dtype=np.intp)
            phases = [(none, np.zeros(0, dtype=np.uint32), None)]
            for step in self.steps:
                step.apply(r)
                idx = np.flatnonzero(r.u32 != b32)
                phases.append((idx, r.u32[idx].copy(), r.text_poke_state))
            refs.phases = phases
        return refs.phases

    # -- what the old and the new instruction do -------------------------------------
    def expected(self, phase: int, fn: str, override=None) -> frozenset[str]:
        """Handlers one call of *fn* runs with the text of *phase*, and *override*
        ``(addr, bytes)`` in place (None: the text as it is)."""
        key = (phase, fn, override)
        cache = self._refs.cache
        if key not in cache:
            r = self.ref
            idx, vals, _ = self._phase_writes()[phase]
            r.mem[:] = self._before_memory()
            r.u32[idx] = vals  # what applying steps[:phase] writes
            r.text_poke_state = None
            if override:
                r.write(*override)
            r.sync_core()
            cpu = r.cpus[0]
            cpu.reset([(self.image.functions[fn].site, 0)])
            cpu.run(_CAP, until=self.image.sym("workload_logged"))
            recs = cpu.drain()
            got = observe(cpu, recs[0]).handlers if recs else frozenset()
            # the independent state table (text and data only, no handler code) must agree
            want = predicted_handlers(r, self.after, fn)
            if got != want:
                what = (f"{self.scenario.name} phase {self.phase_name(phase)} {fn}: the reference "
                        f"run ran {sorted(got)}, the ftrace state table says {sorted(want)}")
                if self.image.kernel_tree == "workbench":
                    raise OracleMismatch(what)
                # a tree's trampolines are under test: their bug must not lower the expectation
                # (and so hide its own drops); the state table says what ftrace means to run
                self._refs.mismatches.append(what)
                got = want
            cache[key] = got
        return cache[key]

    # -- turning evidence into rows -------------------------------------------------------
    def rows(self, cpu, records, weight=1, crashed_seq=None) -> list[dict]:
        """Rows of the calls frame for *records* of *cpu* (plus the call in flight if it crashed)."""
        out = []
        for rec in records:
            out.append(self._row(cpu, rec["seq"], observe(cpu, rec), rec["phase0"], weight))
        if cpu.crash is not None and crashed_seq is not None:
            # the workload logged the call's starting phase before it made the call
            rec = cpu.log + ((crashed_seq % EQU["LOG_N"]) << EQU["CR_SHIFT"])
            phase0 = self.machine.read32(rec + EQU["CR_PHASE0"])
            out.append(self._row(cpu, crashed_seq, None, phase0, weight))
        return out

    def _row(self, cpu, seq, obs, phase0, weight) -> dict:
        im = self.image
        traps = self.traps.get((cpu.index, seq), [])
        fn = obs.function if obs else self._fn_in_flight(cpu)
        row = {} if self.arch == "i386" else {"arch": self.arch}  # i386 rows as they always were
        row |= {
            "scenario": self.scenario.name, "entry": self.entry, "strategy": self.strategy.name,
            "protocol": self.protocol, "cpu": cpu.index, "seq": seq, "function": fn,
            "site_kind": "livepatched" if fn in self.scenario.livepatched() else "ordinary",
            "phase": self.phase_name(phase0), "weight": weight,
            "trapped": bool(traps), "traps": len(traps), "trap_site": "", "trap_phase": "",
            "tracer_runs": obs.tracer_runs if obs else 0,
            "livepatch_ran": bool(obs and obs.body == "new"),
            "body": obs.body if obs else "none",
            "expected_old": "", "expected_new": "",
            "violation": 0, "dropped_tracer": 0, "dropped_livepatch": 0, "spurious": 0,
            "crash": obs is None, "deadlock": False, "crash_addr": -1, "crash_reason": "",
            "delay_traps": max(len(traps) - 1, 0), "stale": False,
        }
        if obs is None:
            row["crash_addr"] = cpu.crash.addr
            row["crash_reason"] = cpu.crash.reason
            # a CPU that never lets the sync IPI in (or never returns) hangs the
            # patch: a deadlock, recorded as its own outcome, not a crash
            row["deadlock"] = cpu.crash.reason.startswith(("deadlock", "hang"))
            row["crash"] = not row["deadlock"]
        if traps:
            tphase, taddr = traps[0]
            name = im.name_at(taddr)
            row["trap_site"] = name if name in TRAMPOLINE_CALLS else "fentry"
            row["trap_phase"] = self.phase_name(tphase)
            ch = self._change_at(tphase, taddr)
            if ch is not None and fn in im.functions:
                old = self.expected(tphase, fn, (taddr, ch.old))
                new = self.expected(tphase, fn, (taddr, ch.new))
                row["expected_old"], row["expected_new"] = ",".join(sorted(old)), ",".join(sorted(new))
                if obs is not None:
                    row.update(classify(obs, old, new, self.scenario.registered()))
        elif obs is not None and phase0 >= len(self.steps) and fn in im.functions:
            want = self.expected(len(self.steps), fn)
            row["stale"] = obs.handlers != want or obs.body == "none"
        if obs is not None and (obs.corrupt or obs.body == "none"):
            row["crash"] = True
            row["crash_reason"] = f"caller state corrupted (bits {obs.corrupt:#x})" if obs.corrupt \
                else "no body ran"
        return row

    def _change_at(self, phase, addr):
        """The instruction change at *addr* of the latest batch started by *phase*."""
        for s in reversed(self.steps[:phase]):
            for c in s.changes:
                if c.addr == addr:
                    return c
        return None

    def _fn_in_flight(self, cpu) -> str:
        m = self.machine
        i = (cpu.thread_info("next") - 1) % max(cpu.thread_info("ncalls"), 1)
        return self.image.name_at(m.read32(cpu.calls + 8 * i))


# -- exhaustive: one calling CPU, every placement of every step -----------------------------

def _calibrate(run: Run, k: int, cap: int):
    """Instructions of the call in state k, and the indices where step k could be seen."""
    measure, remove = _calibration(run, k)
    try:
        return measure(cap)[:2]
    finally:
        remove()


def _calibration(run: Run, k: int):
    """Install the hooks that calibrate step k's placements: ``(measure, remove)``.

    ``measure(cap)`` runs the call from where the CPU stands to its return and
    gives its instructions, the indices where step k could be seen, and what
    the run translated and dropped over written bytes (``(entered, drops)``,
    for :func:`_clean_cuts`). The hooks see only blocks translated after they
    were installed: install them while nothing is translated."""
    cpu, im = run.machine.cpus[0], run.image
    step = run.steps[k]
    ranges = step.addrs or (im.text,)  # a plan-level sync touches all text
    count, events = [0], set()
    written = run._written
    # blocks entered over written bytes, (index of their first instruction, start, end),
    # and the CPU's drops of translations, (index of the instruction dropping, lo, hi)
    entered: list[tuple[int, int, int]] = []
    drops: list[tuple[int, int | None, int | None]] = []
    ipi = step.kind in _IPI_KINDS
    last_if = [cpu.interrupts_enabled()]
    do_int3 = im.sym("do_int3")

    def on_code(addr, size):
        count[0] += 1
        if addr == do_int3:
            events.add(count[0] - 1)
        if ipi:  # an IPI lands at the next boundary with IF set: IF changes are events
            flag = cpu.interrupts_enabled()
            if flag != last_if[0]:
                events.add(count[0] - 1)
                last_if[0] = flag

    def on_block(addr, size):
        if any(addr < hi and lo < addr + size for lo, hi in ranges):
            # Unicorn may translate the next block before a count stop takes
            # effect, so the fetch falls at this boundary or the one before it
            events.add(count[0])
            events.add(count[0] - 1)
        if any(addr < hi and lo < addr + size for lo, hi in written):
            entered.append((count[0], addr, addr + size))

    def on_drop(lo, hi):
        drops.append((count[0], lo, hi))  # (the do_int3 hook runs before on_code counts its instruction)

    def on_read(access, addr, size, value):
        events.add(count[0] - 1)

    hooks = [cpu.add_hook(UC_HOOK_CODE, on_code), cpu.add_hook(UC_HOOK_BLOCK, on_block)]
    if step.kind == "data":
        lo, hi = step.addrs[0]
        hooks.append(cpu.add_hook(UC_HOOK_MEM_READ, on_read, begin=lo, end=hi - 1))

    def measure(cap):
        count[0] = 0
        events.clear()
        entered.clear()
        drops.clear()
        last_if[0] = cpu.interrupts_enabled()
        cpu.drop_watch = on_drop
        try:
            cpu.run(cap, until=im.sym("workload_return"))
        finally:
            cpu.drop_watch = None
        return count[0], sorted(e for e in events if e <= count[0]), (list(entered), list(drops))

    def remove():
        for h in hooks:
            cpu.remove_hook(h)

    return measure, remove


def _stale_bytes(run: Run, k: int) -> list[tuple[int, int]]:
    """The text steps k, k + 1, ... write before a sync drops every translation of
    written bytes: a translation held when step k lands can go stale only there."""
    out = []
    for step in run.steps[k:]:
        if step.kind == "sync" and (not step.addrs or all(any(a <= lo and hi <= b for a, b in step.addrs)
                                                          for lo, hi in run._written)):
            break
        if step.kind in ("text", "stop"):
            out += step.addrs
    return out


def _clean_cuts(entered: list[tuple[int, int, int]], drops: list[tuple[int, int | None, int | None]],
                text: tuple[int, int], cuts: list[int], stale: list[tuple[int, int]]) -> set[int]:
    """The *cuts* at which a run of that many instructions from the start (cold for
    written bytes) holds no translation of a *stale* byte (:func:`_stale_bytes`):
    each block over one entered by then has been dropped since. *entered* and
    *drops* are the calibration's, which ran the same instructions from the
    same start: blocks (index of their first instruction, start, end) and the
    CPU's drops of translations (index of the instruction dropping, lo, hi).

    A block entered at instruction c counts from cut c - 1 on (Unicorn translates
    the block it stops at, and, as the calibration allows, may the one after);
    a drop by instruction d from cut d + 1 on; at the same cut the drop first.
    """
    if not stale:
        return set(cuts)
    timeline = sorted([(d + 1, 0, text[0] if lo is None else lo, text[1] if hi is None else hi)
                       for d, lo, hi in drops]
                      + [(c - 1, 1, a, b) for c, a, b in entered if any(a < hi and lo < b for lo, hi in stale)])
    held: dict[int, int] = {}
    clean, j = set(), 0
    for i in cuts:
        while j < len(timeline) and timeline[j][0] <= i:
            _, entry, lo, hi = timeline[j]
            if entry:
                held[lo] = max(hi, held.get(lo, hi))
            else:
                for a in [a for a, b in held.items() if a < hi and lo < b]:
                    del held[a]
            j += 1
        if not held:
            clean.add(i)
    return clean


class MemoryRestorer:
    """Put the machine's memory back to a snapshot, copying only what can have changed.

    The per-CPU areas of the CPUs the machine does not run (most of its memory)
    change only by a stray store: a guest store there fires a write hook and a
    host write (patcher, handler, trap frame) is counted by the machine's write
    watch. Without one, only the rest is copied back and snapshotted (the idle
    areas then equal the before state's); after one, everything is. Same bytes
    as copying everything, for an eighth of the copying.
    """

    def __init__(self, m: Machine, base: np.ndarray):
        self.m, self.base = m, base
        cold = m.idle_cpu_memory()
        cpu, off = m.cpus[0], m.image.base
        # the hook sets a flag it shares with this restorer, and holds nothing else:
        # ctypes callbacks live on in reference cycles after they are removed
        self._stray = stray = [False]

        def on_store(access, addr, size, value):
            stray[0] = True

        self.hooks = [cpu.add_hook(UC_HOOK_MEM_WRITE, on_store, begin=lo, end=hi - 1) for lo, hi in cold]
        m.write_watch, m.write_hits = tuple(cold), 0
        self.cold = [(lo - off, hi - off) for lo, hi in cold]
        edges = [0] + [x for c in self.cold for x in c] + [len(m.mem)]
        self.hot = [(a, b) for a, b in zip(edges[::2], edges[1::2]) if a < b]
        #: the array whose idle areas memory's equal while no stray store is seen
        #: (None: not known yet, the first copy copies everything)
        self.cold_ref: np.ndarray | None = None

    def _clean(self, ref: np.ndarray) -> bool:
        """Whether memory's idle areas still equal *ref*'s; forget the strays seen."""
        clean = not self._stray[0] and self.m.write_hits == 0 and self.cold_ref is ref
        self._stray[0], self.m.write_hits = False, 0
        return clean

    def to_base(self) -> None:
        """Memory := the before state."""
        self._restore_full(self.base)

    def _restore_full(self, full) -> None:
        """Memory := *full* (a whole-memory array): only the copyable part when nothing strayed."""
        mem = self.m.mem
        if self._clean(full):
            for a, b in self.hot:
                mem[a:b] = full[a:b]
        else:
            mem[:] = full
        self.cold_ref = full

    def snapshot(self):
        """The memory now: its copyable part, or all of it when the idle areas differ
        from the before state (after a stray store)."""
        mem = self.m.mem
        if self._clean(self.base):
            return [mem[a:b].copy() for a, b in self.hot]
        snap = mem.copy()
        self.cold_ref = snap
        return snap

    def restore(self, snap) -> None:
        """Memory := *snap* (from :meth:`snapshot`)."""
        mem = self.m.mem
        if isinstance(snap, np.ndarray):  # a full snapshot
            self._restore_full(snap)
            return
        clean = self._clean(self.base)
        for (a, b), part in zip(self.hot, snap):
            mem[a:b] = part
        if not clean:  # the idle areas were the before state's when snapped
            for a, b in self.cold:
                mem[a:b] = self.base[a:b]
        self.cold_ref = self.base

    def close(self) -> None:
        for h in self.hooks:
            self.m.cpus[0].remove_hook(h)
        self.m.write_watch, self.m.write_hits = None, 0


def _exhaustive_function(run: Run, fn: str, patch_gap: int, cap: int, progress,
                         calib_cap: int = 1000, merge: bool = True, steps=None) -> tuple[list, int, int]:
    restorer = MemoryRestorer(run.machine, run._before_memory())
    try:
        return _exhaustive_placements(run, fn, patch_gap, cap, progress, calib_cap, merge, steps, restorer)
    finally:
        restorer.close()


def _exhaustive_placements(run, fn, patch_gap, cap, progress, calib_cap, merge, steps, restorer):
    m, im = run.machine, run.image
    cpu = m.cpus[0]
    rows, raw, distinct = [], 0, 0
    written = _coalesce(run._written)
    for k in (range(len(run.steps)) if steps is None else steps):
        # steps [0, k) landed before the call; the CPU stands at the call instruction
        run.reset(restorer.to_base)  # ends with a full sync: nothing translated
        cpu.reset([run.call_entry(fn)])
        run.enter_phase(k)
        # the calibration's hooks go in while nothing is translated, so that the
        # run to the call and the calibration share their translations
        measure, remove = _calibration(run, k)
        cpu.run(cap, until=im.sym("workload_call"))
        ctx_k = cpu.uc.context_save()
        mem_k, bp_k = restorer.snapshot(), m.text_poke_state

        def restore(cold=False, start=None):
            if start is None:
                restorer.restore(mem_k)
                run.traps = {}
                cpu.uc.context_restore(ctx_k)
                cpu.eip = im.sym("workload_call")
            else:  # the state a run to that cut left (steps [0, k) landed, none since)
                _, (mem, traps, ctx, eip) = start
                restorer.restore(mem)
                run.traps = {key: list(t) for key, t in traps.items()}
                cpu.uc.context_restore(ctx)
                cpu.eip = eip
            m.text_poke_state = bp_k
            run.phase = k
            cpu.crash, cpu.drained = None, 0
            if cold:  # drop the calibration's blocks, which call its (deleted) hooks
                m.sync_core()
            else:
                # As cold as the calibration for every byte a step writes; text
                # no step writes never differs from its translations, so keeping
                # those changes no fetch the schedule can observe, only the time
                # spent translating them again.
                for lo, hi in written:
                    m.sync_core(lo, hi)

        restore()
        length, events, translated = measure(calib_cap)
        remove()
        first = True  # the calibration's blocks call its (deleted) hooks: start the placements cold
        # cut on both sides of every event: which side an observation falls on
        # depends on how Unicorn counts around traps and block lookups
        cuts = sorted({c for e in events for c in (e, e + 1) if 0 <= c <= length} | {0}) \
            if merge else list(range(length + 1))
        weights = np.diff(cuts + [length + 1])
        raw += length + 1
        distinct += len(cuts)
        # A placement's run to its cut need not start at the call: it may start where
        # an earlier placement's run stood at a clean cut (registers, memory, trap log),
        # one that held no translation of a byte that can go stale before a sync drops
        # them all (_clean_cuts). Restored, that state is cold for written bytes as the
        # call's is; from there both runs execute the same instructions (translations
        # of unchanged bytes are the bytes) and hold the same translations of those
        # bytes. Spin's placements, a few per trap of up to a thousand instructions
        # of spinning, each run at most one trap's worth instead.
        clean = _clean_cuts(*translated, im.text, cuts, _stale_bytes(run, k))
        chain = None  # (cut, state) of the latest clean cut reached
        for i, w in zip(cuts, weights):
            restore(cold=first, start=chain)
            first = False
            start = chain[0] if chain else 0
            if i > start:
                cpu.run(i - start)
                if i in clean and cpu.crash is None:
                    chain = i, (restorer.snapshot(), {key: list(t) for key, t in run.traps.items()},
                                cpu.uc.context_save(), cpu.eip)
            done = i + run.await_interrupts()
            budget = cap - done
            run.apply_step()
            # the later steps land at a time that does not depend on the placement:
            # patch_gap after the call's calibrated end, then every patch_gap
            if length + patch_gap > done:
                cpu.run(length + patch_gap - done)
                budget -= length + patch_gap - done
            target = None
            while cpu.crash is None and budget > 0:
                if run.phase < len(run.steps):
                    budget -= run.await_interrupts()
                    if cpu.crash is not None:
                        break
                    run.apply_step()
                if run.phase == len(run.steps) and target is None:
                    # go on until one whole call has run after the patch
                    target = max(cpu.completed_calls(), 1) + 2
                if target is not None and cpu.completed_calls() >= target:
                    break
                cpu.run(patch_gap)
                budget -= patch_gap
            recs = cpu.drain()
            in_flight = cpu.completed_calls() if cpu.crash is not None else None
            if cpu.crash is None and cpu.completed_calls() == 0:
                cpu.crash = _hang(cpu)
                in_flight = 0
            after = [r for r in recs if r["phase0"] >= len(run.steps) and r["seq"] > 0]
            keep = [r for r in recs if r["seq"] == 0] + after[:1]
            for row in run.rows(cpu, keep, int(w), in_flight):
                row.update(mode="exhaustive", schedule=k, placement=i)
                rows.append(row)
        progress(1)
    return rows, raw, distinct


def _coalesce(ranges, gap: int = 32) -> list[tuple[int, int]]:
    """Sorted *ranges* merged where less than *gap* bytes apart: fewer, wider invalidations."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]


def _hang(cpu, reason=f"hang: the call did not return in {_CAP} instructions"):
    return Crash(cpu.eip, cpu.eip, reason)


# -- random: several CPUs, seeded slices and step times ---------------------------------------

def _step_gap(run: Run, rng, timing, ns_per_insn: float, patch_gap: int) -> int:
    """Instructions until the next step lands: a sync round, the writes, or an exponential gap."""
    if timing is None:
        return max(1, int(rng.exponential(patch_gap)))
    step = run.steps[run.phase]
    if step.kind in _IPI_KINDS:
        ns = float(timing.draw_rounds(rng, len(run.machine.cpus), 1)[0])
    elif step.kind == "text":
        ns = len(step.changes) * timing.write_ns
    else:
        ns = 0.0
    return int(round(ns / ns_per_insn))


def _random_schedule(run: Run, seed, functions, slice_mean: int, patch_gap: int, gap_mean: float,
                     warmup: int, tail: int, timing, ns_per_insn: float, tally: dict) -> list:
    m, im = run.machine, run.image
    rng = np.random.default_rng(seed)
    run.reset()
    for cpu in m.cpus:
        fns = rng.integers(0, len(functions), 4096)
        # geometric idle gaps: call starts form a renewal process of known rate
        gaps = rng.geometric(1.0 / (1.0 + gap_mean), 4096) - 1 if gap_mean > 0 else np.zeros(4096, int)
        cpu.reset([run.call_entry(functions[i], g) for i, g in zip(fns.tolist(), gaps.tolist())])
    rows, now, insns = [], 0, 0
    next_step = warmup + int(rng.integers(0, max(warmup, 1)))
    done_at, in_flight, landed = None, {}, []
    while done_at is None or now < done_at + tail:
        for c in rng.permutation(len(m.cpus)):
            cpu = m.cpus[c]
            if cpu.crash is None:
                n = int(rng.integers(slice_mean // 2, 3 * slice_mean // 2 + 1))
                if not cpu.run(n):
                    in_flight[c] = cpu.completed_calls()
                else:
                    insns += n
        now += slice_mean
        while run.phase < len(run.steps) and now >= next_step:
            run.await_interrupts()
            landed.append(now)
            run.apply_step()
            if run.phase == len(run.steps):
                done_at = now
            else:
                next_step = max(next_step, now) + _step_gap(run, rng, timing, ns_per_insn, patch_gap)
        for cpu in m.cpus:
            rows += run.rows(cpu, cpu.drain(), 1, in_flight.pop(cpu.index, None))
    tally["cpu_insns"] = tally.get("cpu_insns", 0) + insns
    tally["calls"] = tally.get("calls", 0) + len(rows)
    tally.setdefault("step_times", []).append(landed)
    for row in rows:
        row.update(mode="random", placement=-1)
    return rows


# -- the public entry points --------------------------------------------------------------------

def explore(scenario="seed", strategies="all", entry=None, mode="exhaustive", functions=None,
            protocol=None, cpus=None, schedules=20, seed=0, patch_gap=None, per_site=False,
            n_ordinary=8, progress=True, slice_mean=200, gap_mean=50.0, timing=None,
            ns_per_insn=1.0, coherent_fetch=False, arch="i386",
            tree: KernelTree | None = None) -> tuple[pd.DataFrame, dict]:
    """Interleave the scenario's patch with calling CPUs under each strategy.

    Returns ``(calls, stats)``: the calls frame (docs/ARCHITECTURE.md) and
    per-strategy schedule counts (``raw``, ``distinct``). *strategies* is a
    name, a list, or ``"all"``; *functions* defaults to one livepatched and
    one ordinary function. Exhaustive mode uses one calling CPU (*cpus* must
    be 1 or None); placements reach 1000 instructions into the call (past
    that only ``spin``'s CPU is still in it, spinning); random mode runs
    *schedules* seeded schedules on *cpus* CPUs (default 4), each calling *functions* uniformly after geometric
    idle loops of mean *gap_mean* iterations. Steps land *patch_gap* (500)
    instructions apart on average or, with *timing* (a
    :class:`workbench.race.timing.Timing`), a sync step one drawn IPI round after
    the previous step and a text step its writes after it, converted with
    the time base *ns_per_insn*; ``stats`` then also has ``cpu_insns``,
    ``calls`` and each schedule's ``step_times`` (in instructions).
    *coherent_fetch* makes text writes visible at the next fetch
    (:class:`~workbench.kernel.machine.Machine`). *arch* picks the emulated
    kernel (``i386``, the default, or ``x86_64``; x86_64 rows carry an
    ``arch`` column) and *entry* one of its int3 entries (default: its
    latest). Raises ConfigError for bad input, before any work.
    """
    from tqdm.auto import tqdm

    check_choice("mode", mode, MODES)
    arch = check_choice("arch", arch, ARCHES)
    entries = ENTRIES_BY_ARCH[arch]
    entry = check_choice("entry", entries[-1] if entry is None else entry, entries)
    if protocol is not None:
        check_choice("protocol", protocol, PROTOCOLS)
    if strategies in ("all", None):
        names = list(STRATEGIES)
    elif isinstance(strategies, str):
        names = strategies.split(",")
    elif isinstance(strategies, (list, tuple)) and strategies:
        names = list(strategies)
    else:
        raise ConfigError(f"strategies: expected 'all', a name or a list of names from "
                          f"{', '.join(STRATEGIES)}; got {strategies!r}")
    for n in names:
        get_strategy(n)
    if mode == "exhaustive" and cpus not in (None, 1):
        raise ConfigError(f"cpus: exhaustive mode explores one calling CPU; got {cpus} (use --mode random)")
    ncpus = 1 if mode == "exhaustive" else int(check_range("cpus", 4 if cpus is None else cpus, 1, 16, integer=True))
    schedules = int(check_range("schedules", schedules, 1, 100000, integer=True))
    seed = int(check_range("seed", seed, 0, 2**63 - 1, integer=True))
    # exhaustive: the steps after the placed one follow about one call apart
    if patch_gap is None:
        patch_gap = 200 if mode == "exhaustive" else 500
    patch_gap = int(check_range("patch_gap", patch_gap, 1, 10**7, integer=True))
    gap_mean = check_range("gap_mean", gap_mean, 0, 10**7)
    slice_mean = int(check_range("slice_mean", slice_mean, 2, 10**6, integer=True))
    ns_per_insn = check_range("ns_per_insn", ns_per_insn, 1e-6, 1e6)
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    sc.check_arch(arch)
    tree = None if tree is None else tree.for_arch(arch)  # ftrace_32.S or ftrace_64.S, as the arch runs
    image = build_image(n_ordinary, arch, tree)
    if tree is not None:
        check_trampoline_abi(tree, n_ordinary)  # a tree that cannot run the same way: one line, before any work
    if functions is None:
        # a livepatched function (its calls may cross a patched trampoline call even
        # when its own site stays) and an ordinary one whose site the patch rewrites
        b, a = sc.states(image)
        changed = [f for f in image.functions if b.site_bytes(f) != a.site_bytes(f)] or list(image.functions)
        lp = [f for f in image.functions if f in sc.livepatched()]
        # (when no ordinary site changes, one whose calls cross the patched trampolines)
        functions = lp[:1] + ([f for f in changed if f not in sc.livepatched()][:1]
                              or [f for f in image.functions if f not in sc.livepatched()][:1])
    if isinstance(functions, str):
        functions = functions.split(",")
    if not functions:
        raise ConfigError("functions: give at least one traced function")
    functions = [image.function(f).name for f in functions]
    rows, stats = [], {}
    runs: dict[str, Run] = {}
    for n in names:
        # strategies of one protocol patch alike: their reference runs are the same
        proto = protocol or get_strategy(n).protocol
        same = next((r for r in runs.values() if r.protocol == proto), None)
        runs[n] = Run(sc, n, entry, protocol, n_ordinary, per_site, ncpus, coherent_fetch, references=same,
                      arch=arch, tree=tree)
    total = sum(len(r.steps) for r in runs.values()) * len(functions) if mode == "exhaustive" \
        else schedules * len(names)
    with tqdm(total=total, desc=f"explore {sc.name} {entry}", unit="step" if mode == "exhaustive" else "schedule",
              disable=not progress, leave=False) as bar:
        for n, run in runs.items():
            if mode == "exhaustive":
                raw = distinct = 0
                for fn in functions:
                    r, a, d = _exhaustive_function(run, fn, patch_gap, _CAP, bar.update)
                    rows += r
                    raw, distinct = raw + a, distinct + d
                stats[n] = {"raw": raw, "distinct": distinct, "stalls": run.stop_rounds}
            else:
                tally: dict = {}
                # one seed sequence per schedule, shared by every strategy: common random numbers
                for s, ss in enumerate(np.random.SeedSequence(seed).spawn(schedules)):
                    for row in _random_schedule(run, ss, functions, slice_mean, patch_gap, gap_mean,
                                                2000, 4 * patch_gap, timing, ns_per_insn, tally):
                        row["schedule"] = s
                        rows.append(row)
                    bar.update(1)
                stats[n] = {"raw": schedules, "distinct": schedules,
                            "stalls": run.stop_rounds, **tally}
            if run.reference_mismatches:
                stats[n]["reference_mismatches"] = run.reference_mismatches
    for run in runs.values():  # release the engines now, not at the next garbage collection
        run.close()
    calls = pd.DataFrame(rows)
    calls.attrs["kernel_tree"] = image.kernel_tree  # whose trampolines ran (provenance)
    return calls, stats


def outcome_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Per-trapped-call means by strategy, site kind, trap site and the phase trapped in.

    Keys ``(scenario, entry, strategy, site_kind, trap_site, trap_phase)``;
    weighted by the number of raw schedules each row stands for; columns
    ``trapped_placements`` and :data:`OUTCOME_COLUMNS`.
    """
    keys = (["arch"] if "arch" in calls else []) + ["scenario", "entry", "strategy", "site_kind", "trap_site",
                                                     "trap_phase"]
    t = calls[calls["trapped"]].copy()
    if t.empty:
        return pd.DataFrame(columns=keys + ["trapped_placements", *OUTCOME_COLUMNS])
    t["crash"] = t["crash"].astype(float)
    t["deadlock"] = t["deadlock"].astype(float)
    w = t["weight"].astype(float)
    agg = {c: (t[c].astype(float) * w) for c in OUTCOME_COLUMNS}
    df = pd.DataFrame({**{k: t[k] for k in keys}, "trapped_placements": w, **agg})
    g = df.groupby(keys, sort=True).sum().reset_index()
    for c in OUTCOME_COLUMNS:
        g[c] = g[c] / g["trapped_placements"]
    g["trapped_placements"] = g["trapped_placements"].astype(int)
    return g


def transition_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Every call, trapped or not, per (strategy, protocol, site_kind): crashes and stale text.

    ``stale`` counts calls that started after the patch was done yet did not
    run what the final text runs (a CPU still executing bytes it fetched
    before the patch: the missing-sync control).
    """
    keys = ["scenario", "entry", "strategy", "protocol", "site_kind"]
    c = calls.assign(n=calls["weight"], crashed=calls["crash"] * calls["weight"],
                     stale_w=calls["stale"] * calls["weight"], trapped_w=calls["trapped"] * calls["weight"])
    g = c.groupby(keys, sort=True)[["n", "trapped_w", "crashed", "stale_w"]].sum().reset_index()
    return g.rename(columns={"n": "calls", "trapped_w": "trapped", "crashed": "crashes", "stale_w": "stale"})


def load_outcome_table(scenario: str = "seed", entry: str | None = None, progress: bool = True,
                       arch: str = "i386", tree: KernelTree | None = None) -> pd.DataFrame:
    """The exhaustive outcome table of *scenario* for every strategy, cached by emulator version.

    With *tree*, the tree's own trampolines run, and the entry is also keyed
    by the tree's version and the digest of its files (``KernelTree.tag``);
    the table's ``kernel_tree`` column names whose trampolines ran
    (``workbench`` for ours).

    Computed by :func:`explore` (about ten seconds) whenever the emulator's
    sources (:func:`workbench.base.version.emulator_version`, read at each
    call) have no entry yet, and kept as a verified Parquet entry under
    ``data/cache/outcomes`` (:mod:`workbench.base.store`): an entry that is
    damaged, unreadable, of another version or with impossible content (no
    rows, missing columns, a strategy missing) is reported in one line and
    recomputed. The race simulator reads its per-trapped-call means from here.
    *arch* (``i386`` or ``x86_64``) is part of the entry's key; *entry*
    defaults to the arch's latest.
    """
    tree = None if tree is None else tree.for_arch(check_choice("arch", arch, ARCHES))
    sc, entry, arch, version, path, got = _cached_entry(scenario, entry, arch, tree)
    tag = "workbench" if tree is None else tree.tag
    if got is not None:
        return got
    calls, stats = explore(sc, "all", entry, "exhaustive", progress=progress, arch=arch, tree=tree)
    table = outcome_table(calls)
    table["schedules_raw"] = table["strategy"].map(lambda s: stats[s]["raw"])
    table["schedules_distinct"] = table["strategy"].map(lambda s: stats[s]["distinct"])
    if not table.empty and emulator_version() == version:  # the sources did not change while it ran
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        store_entry(path, _outcome_meta(version, sc.name, entry, arch, tree) + b"\n" + buf.getvalue(),
                    what="outcome cache")
    return table.assign(kernel_tree=tag)


def cached_outcome_table(scenario: str = "seed", entry: str | None = None, arch: str = "i386",
                         tree: KernelTree | None = None) -> pd.DataFrame | None:
    """The outcome table :func:`load_outcome_table` would read from its cache, or None.

    None when the entry is missing or damaged (a damaged one is reported
    and removed, as :func:`load_outcome_table` does): the table then has to
    be computed. Runs nothing in the emulator.
    """
    return _cached_entry(scenario, entry, arch, tree)[-1]


def _cached_entry(scenario, entry, arch, tree):
    """``(scenario, entry, arch, emulator version, cache path, cached table or None)`` of an outcome table."""
    arch = check_choice("arch", arch, ARCHES)
    sc = load_scenario(scenario)
    sc.check_arch(arch)
    entries = ENTRIES_BY_ARCH[arch]
    entry = check_choice("entry", entries[-1] if entry is None else entry, entries)
    version = emulator_version()
    tree = None if tree is None else tree.for_arch(arch)
    tag = "workbench" if tree is None else tree.tag
    name = f"{sc.name}_{arch}_{entry}" + ("" if tree is None else f"_{tag.replace('@', '_')}")
    path = cache_dir("outcomes", version) / f"{name}.parquet"
    got = load_entry(path, lambda b: _parse_outcome_entry(b, version, sc.name, entry, arch, tree),
                     what="outcome cache")
    return sc, entry, arch, version, path, (got.assign(kernel_tree=tag) if isinstance(got, pd.DataFrame) else None)


def _outcome_meta(version: str, scenario: str, entry: str, arch: str, tree: KernelTree | None) -> bytes:
    meta = {"version": version, "arch": arch, "scenario": scenario, "entry": entry}
    if tree is not None:
        meta["kernel_tree"] = tree.tag
    return json.dumps(meta).encode()


def _parse_outcome_entry(payload: bytes, version: str, scenario: str, entry: str, arch: str = "i386",
                         tree: KernelTree | None = None) -> pd.DataFrame:
    """A verified outcome-cache payload as a table; raises ValueError for impossible content."""
    head, _, body = payload.partition(b"\n")
    meta = json.loads(head)
    if meta != json.loads(_outcome_meta(version, scenario, entry, arch, tree)):
        raise ValueError(f"made for {meta}")
    table = pd.read_parquet(io.BytesIO(body))
    need = {"strategy", "site_kind", "trap_site", "trap_phase", "trapped_placements", "schedules_raw",
            "schedules_distinct", *OUTCOME_COLUMNS}
    if table.empty or not need <= set(table.columns):
        raise ValueError("no rows or missing columns")
    if not set(table["strategy"]) <= set(STRATEGIES) or (table["trapped_placements"] <= 0).any():
        raise ValueError("unknown strategies or rows without trapped calls")
    return table
