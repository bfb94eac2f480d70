"""Exhaustive exploration: one calling CPU, every instruction boundary at which each patch step can land.

The steps before the placed one landed before the call, the ones after follow every *patch_gap*
instructions. Placements between which the CPU neither executes a block holding the step's bytes,
nor reads its data, nor enters the int3 handler are equivalent (the calibration finds those
events); one of each class is executed, and its weight is the number of raw placements it stands
for. Models ``arch/x86/kernel/alternative.c``'s ``text_poke_bp()`` against one CPU in the patched
function (docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
from unicorn import UC_HOOK_BLOCK, UC_HOOK_CODE, UC_HOOK_MEM_READ

from workbench.emulate.run import IPI_KINDS, MemoryRestorer, Run, hang

__all__ = ["calibration", "clean_cuts", "exhaustive_function", "stale_bytes"]


def calibration(run: Run, k: int):
    """Install the hooks that calibrate step k's placements: ``(measure, remove)``.

    ``measure(cap)`` runs the call from where the CPU stands to its return and
    gives its instructions, the indices where step k could be seen, and what
    the run translated and dropped over written bytes (``(entered, drops)``,
    for :func:`clean_cuts`). The hooks see only blocks translated after they
    were installed: install them while nothing is translated."""
    cpu, im = run.machine.cpus[0], run.image
    step = run.steps[k]
    ranges = step.addrs or (im.text,)  # a plan-level sync touches all text
    count, events = [0], set()
    written = run.written
    # blocks entered over written bytes, (index of their first instruction, start, end),
    # and the CPU's drops of translations, (index of the instruction dropping, lo, hi)
    entered: list[tuple[int, int, int]] = []
    drops: list[tuple[int, int | None, int | None]] = []
    ipi = step.kind in IPI_KINDS
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


def stale_bytes(run: Run, k: int) -> list[tuple[int, int]]:
    """The text steps k, k + 1, ... write before a sync drops every translation of
    written bytes: a translation held when step k lands can go stale only there."""
    out = []
    for step in run.steps[k:]:
        if step.kind == "sync" and (not step.addrs or all(any(a <= lo and hi <= b for a, b in step.addrs)
                                                          for lo, hi in run.written)):
            break
        if step.kind in ("text", "stop"):
            out += step.addrs
    return out


def clean_cuts(entered: list[tuple[int, int, int]], drops: list[tuple[int, int | None, int | None]],
                text: tuple[int, int], cuts: list[int], stale: list[tuple[int, int]]) -> set[int]:
    """The *cuts* at which a run of that many instructions from the start (cold for
    written bytes) holds no translation of a *stale* byte (:func:`stale_bytes`):
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


def exhaustive_function(run: Run, fn: str, patch_gap: int, cap: int, progress: Callable[[int], object],
                        calib_cap: int = 1000, merge: bool = True,
                        steps: Iterable[int] | None = None) -> tuple[list[dict], int, int]:
    """Every placement of every step (*steps*: their indices, default all) against one call of *fn*:
    ``(rows, raw placements, distinct placements)``; *merge* False executes every raw placement."""
    restorer = MemoryRestorer(run.machine, run.before_memory())
    try:
        return _exhaustive_placements(run, fn, patch_gap, cap, progress, calib_cap, merge, steps, restorer)
    finally:
        restorer.close()


def _exhaustive_placements(run: Run, fn: str, patch_gap: int, cap: int, progress: Callable[[int], object],
                           calib_cap: int, merge: bool, steps: Iterable[int] | None,
                           restorer: MemoryRestorer) -> tuple[list[dict], int, int]:
    m, im = run.machine, run.image
    cpu = m.cpus[0]
    rows, raw, distinct = [], 0, 0
    written = _coalesce(run.written)
    for k in (range(len(run.steps)) if steps is None else steps):
        # steps [0, k) landed before the call; the CPU stands at the call instruction
        run.reset(restorer.to_base)  # ends with a full sync: nothing translated
        cpu.reset([run.call_entry(fn)])
        run.enter_phase(k)
        # the calibration's hooks go in while nothing is translated, so that the
        # run to the call and the calibration share their translations
        measure, remove = calibration(run, k)
        cpu.run(cap, until=im.sym("workload_call"))
        at_call = (k, restorer.snapshot(), cpu.uc.context_save(), m.text_poke_state)
        _restore(run, restorer, written, at_call)
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
        # them all (clean_cuts). Restored, that state is cold for written bytes as the
        # call's is; from there both runs execute the same instructions (translations
        # of unchanged bytes are the bytes) and hold the same translations of those
        # bytes. Spin's placements, a few per trap of up to a thousand instructions
        # of spinning, each run at most one trap's worth instead.
        clean = clean_cuts(*translated, im.text, cuts, stale_bytes(run, k))
        chain = None  # (cut, state) of the latest clean cut reached
        for i, w in zip(cuts, weights, strict=True):
            _restore(run, restorer, written, at_call, cold=first, start=chain)
            first = False
            start = chain[0] if chain else 0
            if i > start:
                cpu.run(i - start)
                if i in clean and cpu.crash is None:
                    chain = i, (restorer.snapshot(), {key: list(t) for key, t in run.traps.items()},
                                cpu.uc.context_save(), cpu.eip)
            _land_and_finish(run, i, length, patch_gap, cap)
            rows += _placement_rows(run, int(w), k, i)
        progress(1)
    return rows, raw, distinct


def _restore(run: Run, restorer: MemoryRestorer, written: list[tuple[int, int]], at_call: tuple,
             cold: bool = False, start: tuple | None = None) -> None:
    """The machine as it stood at the call with steps ``[0, k)`` landed (*at_call*: ``(k, memory
    snapshot, registers, bp_desc)``), or, with *start*, at a clean cut a run from there reached."""
    m, cpu = run.machine, run.machine.cpus[0]
    k, mem_k, ctx_k, bp_k = at_call
    if start is None:
        restorer.restore(mem_k)
        run.traps = {}
        cpu.uc.context_restore(ctx_k)
        cpu.eip = run.image.sym("workload_call")
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


def _land_and_finish(run: Run, cut: int, length: int, patch_gap: int, cap: int) -> None:
    """Land the placed step at *cut* (once the CPU takes its IPI), the later ones *patch_gap* after the
    call's calibrated *length* and every *patch_gap* since, and run until one whole call has run after
    the patch (or the CPU crashed, or *cap* instructions)."""
    cpu = run.machine.cpus[0]
    done = cut + run.await_interrupts()
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


def _placement_rows(run: Run, weight: int, k: int, cut: int) -> list[dict]:
    """The rows of one placement: the placed call, and the first whole call after the patch."""
    cpu = run.machine.cpus[0]
    recs = cpu.drain()
    in_flight = cpu.completed_calls() if cpu.crash is not None else None
    if cpu.crash is None and cpu.completed_calls() == 0:
        cpu.crash = hang(cpu)
        in_flight = 0
    after = [r for r in recs if r["phase0"] >= len(run.steps) and r["seq"] > 0]
    keep = [r for r in recs if r["seq"] == 0] + after[:1]
    rows = run.rows(cpu, keep, weight, in_flight)
    for row in rows:
        row.update(mode="exhaustive", schedule=k, placement=cut)
    return rows


def _coalesce(ranges, gap: int = 32) -> list[tuple[int, int]]:
    """Sorted *ranges* merged where less than *gap* bytes apart: fewer, wider invalidations."""
    out: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if out and lo - out[-1][1] < gap:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return [(lo, hi) for lo, hi in out]

