"""A scenario's patch under one strategy and int3 entry, ready to interleave with calling CPUs.

:class:`Run` holds the emulated machine, the patch's steps (``arch/x86/kernel/alternative.c``'s
``text_poke_bp()`` as :mod:`workbench.kernel.text_poke` spells them), the patcher's side (applying a
step, letting an IPI round land) and the rows of the calls frame its calls become;
:class:`MemoryRestorer` puts the machine's memory back between placements. Exhaustive exploration
(:mod:`workbench.emulate.exhaustive`), random schedules (:mod:`workbench.emulate.explore`) and the
model checker (:mod:`workbench.emulate.mc`) all drive a :class:`Run`.
"""

from __future__ import annotations

import weakref

import numpy as np
from unicorn import UC_HOOK_MEM_WRITE

from workbench.base.errors import check_choice
from workbench.base.vocabulary import ARCHES, BREAKPOINT_BATCHINGS, ENTRIES_BY_ARCH, POKE_METHODS
from workbench.emulate.oracle import OracleMismatch, predicted_handlers
from workbench.emulate.outcomes import classify, observe
from workbench.emulate.scenario import load_scenario
from workbench.kernel.ftrace import TRAMPOLINE_CALLS
from workbench.kernel.image import build_image
from workbench.kernel.int3 import get_strategy
from workbench.kernel.layout import EQU
from workbench.kernel.machine import Crash, Machine
from workbench.kernel.text_poke import poke_steps
from workbench.kernel.tree import KernelTree

__all__ = ["CALL_CAP", "IPI_KINDS", "MemoryRestorer", "Run", "hang"]

#: instructions after which a call that has not returned is a hang
CALL_CAP = 20000
#: the step kinds that end in an IPI round every CPU must take
IPI_KINDS = ("sync", "stop")
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

    *poke_method* (:data:`~workbench.base.vocabulary.POKE_METHODS`) defaults to
    the strategy's own (``breakpoint``, or ``stop_machine`` for that strategy);
    the negative controls ``naive`` and ``no_sync`` can be forced. *batching*
    (``batched``, ftrace's one batch, or ``per_site``) groups the sites the
    poke method writes. Raises ConfigError for unknown names.
    *references*: a run of the same scenario, image, entry and steps whose
    reference runs (machine and results) this one shares; closing either
    closes that machine. *arch* is the emulated kernel (``i386`` or
    ``x86_64``); *entry* defaults to the arch's latest (v5.3 on i386, v5.2
    on x86_64); a scenario the arch cannot have is refused
    (:meth:`~workbench.emulate.scenario.Scenario.check_arch`). *tree*: a
    kernel tree whose own trampolines replace ours
    (:func:`workbench.kernel.tree.open_kernel_tree`; its ftrace_32.S or ftrace_64.S, as *arch* runs).
    """

    def __init__(self, scenario="seed", strategy="emulate_new", entry=None, poke_method=None,
                 n_ordinary=8, batching="batched", ncpus=1, coherent_fetch=False, references: "Run | None" = None,
                 arch="i386", tree: KernelTree | None = None):
        self.arch = check_choice("arch", arch, ARCHES)
        self.scenario = load_scenario(scenario) if isinstance(scenario, str) else scenario
        self.scenario.check_arch(arch)
        self.strategy = get_strategy(strategy)
        entries = ENTRIES_BY_ARCH[arch]
        self.entry = check_choice("entry", entries[-1] if entry is None else entry, entries)
        self.poke_method = check_choice("poke_method", poke_method or self.strategy.poke_method, POKE_METHODS)
        self.batching = check_choice("batching", batching, BREAKPOINT_BATCHINGS)
        self.image = build_image(n_ordinary, arch, tree)
        self.before, self.after = self.scenario.states(self.image)
        self.steps = poke_steps(self.scenario.plan(self.image, self.batching == "per_site"), self.poke_method)
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
        self.written = sorted({(max(lo, t0), min(hi, t1)) for s in self.steps if s.kind in ("text", "stop")
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
        if self.phase >= len(self.steps) or self.steps[self.phase].kind not in IPI_KINDS:
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
                    cpu.crash = hang(cpu, f"deadlock: interrupts off for {n} instructions, spinning on "
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
                    if insn.mnemonic.startswith(_NOT_PLAIN) or any(lo < b and a < hi for a, b in self.written):
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
            m.mem[:] = self.before_memory()
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

    def before_memory(self) -> np.ndarray:
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
            r, base = self.ref, self.before_memory()
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
            r.mem[:] = self.before_memory()
            r.u32[idx] = vals  # what applying steps[:phase] writes
            r.text_poke_state = None
            if override:
                r.write(*override)
            r.sync_core()
            cpu = r.cpus[0]
            cpu.reset([(self.image.functions[fn].site, 0)])
            cpu.run(CALL_CAP, until=self.image.sym("workload_logged"))
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
            "poke_method": self.poke_method, "cpu": cpu.index, "seq": seq, "function": fn,
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
        self.hot = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=True) if a < b]
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
        for (a, b), part in zip(self.hot, snap, strict=True):
            mem[a:b] = part
        if not clean:  # the idle areas were the before state's when snapped
            for a, b in self.cold:
                mem[a:b] = self.base[a:b]
        self.cold_ref = self.base

    def close(self) -> None:
        for h in self.hooks:
            self.m.cpus[0].remove_hook(h)
        self.m.write_watch, self.m.write_hits = None, 0


def hang(cpu, reason: str = f"hang: the call did not return in {CALL_CAP} instructions") -> Crash:
    """A hang of *cpu* where it stands: a :class:`Crash` the calls frame records as a deadlock."""
    return Crash(cpu.eip, cpu.eip, reason)

