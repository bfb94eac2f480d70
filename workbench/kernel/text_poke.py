"""Poke methods: how the patcher writes a batch of instruction changes into live kernel text.

Models ``text_poke_bp()`` / ``text_poke_bp_batch()`` of
``arch/x86/kernel/alternative.c`` (v5.6; ftrace's own batched form before
that, ``ftrace_replace_code()`` in ``arch/x86/kernel/ftrace.c``), the
``stop_machine()`` alternative, and two negative controls.

A poke method (:data:`workbench.base.vocabulary.POKE_METHODS`) turns the ordered plan of :func:`workbench.kernel.ftrace.plan_transition`
into :class:`PokeStep` s. A step is one thing the patching CPU does between
instructions of the others: a store to text or data, or a sync (the IPI
round of ``text_poke_sync()``, after which every CPU refetches: Unicorn's
``ctl_remove_cache``, i.e. ``sync_core``). While a breakpoint batch is in
flight the machine's :attr:`~workbench.kernel.machine.Machine.text_poke_state`
holds the sites being patched (``bp_desc``), which is what the int3
handler consults.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

from workbench.base.errors import check_choice
from workbench.base.vocabulary import POKE_METHODS
from workbench.kernel.ftrace import DataWrite, Sync, TextBatch, TextChange

__all__ = ["INT3_INSN_OPCODE", "BpState", "PokeStep", "poke_steps"]

INT3_INSN_OPCODE = 0xCC


@dataclass
class BpState:
    """``bp_desc``: the instructions a breakpoint batch is changing, by address."""

    changes: dict[int, TextChange] = field(default_factory=dict)

    def lookup(self, ip: int) -> TextChange | None:
        """The change whose site starts at *ip* (``bp_desc`` bsearch), or None."""
        return self.changes.get(ip)


@dataclass(frozen=True)
class PokeStep:
    """One patcher action: a name (the phase it opens), what it touches, and how."""

    name: str
    kind: str  #: "text", "data", "sync" or "stop"
    addrs: tuple[tuple[int, int], ...]  #: [lo, hi) ranges the step changes or syncs
    apply: Callable = field(repr=False, compare=False)
    changes: tuple[TextChange, ...] = ()  #: the instructions of the batch this step belongs to


def _text_write(changes, pick):
    def apply(m):
        for c in changes:
            off, data = pick(c)
            m.write(c.addr + off, data)
            if m.coherent_fetch:  # snooping: every CPU refetches the line at once
                m.sync_core(c.addr, c.addr + len(c.new))
    return apply


def _sync(ranges):
    def apply(m):
        for lo, hi in ranges:
            m.sync_core(lo, hi)
    return apply


def _bp_begin(changes, write_int3):
    def apply(m):
        m.text_poke_state = BpState({c.addr: c for c in changes})
        write_int3(m)
    return apply


def _bp_end(ranges, synced):
    def apply(m):
        if synced:
            _sync(ranges)(m)
        m.text_poke_state = None
    return apply


def _batch_steps(b: TextBatch, method: str) -> list[PokeStep]:
    return [replace(s, changes=b.changes) for s in _method_steps(b, method)]


def _method_steps(b: TextBatch, method: str) -> list[PokeStep]:
    ch = b.changes
    ranges = tuple((c.addr, c.addr + len(c.new)) for c in ch)
    if method == "stop_machine":
        write = _text_write(ch, lambda c: (0, c.new))
        return [PokeStep(f"{b.name}:stop_machine", "stop", ranges,
                         lambda m: (write(m), _sync(ranges)(m)))]
    if method == "naive":
        steps = []
        for i in range(max(len(c.new) for c in ch)):
            w = _text_write([c for c in ch if c.old[i] != c.new[i]], lambda c, i=i: (i, c.new[i:i + 1]))
            steps.append(PokeStep(f"{b.name}:byte{i}", "text", ranges,
                                  lambda m, w=w: (w(m), _sync(ranges)(m))))
        return steps
    synced = method == "breakpoint"
    int3 = _text_write(ch, lambda c: (0, bytes([INT3_INSN_OPCODE])))
    steps = [
        PokeStep(f"{b.name}:int3", "text", ranges, _bp_begin(ch, int3)),
        PokeStep(f"{b.name}:tail", "text", ranges, _text_write(ch, lambda c: (1, c.new[1:]))),
        PokeStep(f"{b.name}:first", "text", ranges, _text_write(ch, lambda c: (0, c.new[:1]))),
        PokeStep(f"{b.name}:done", "sync" if synced else "text", ranges, _bp_end(ranges, synced)),
    ]
    if synced:  # text_poke_sync() after the int3 and after the tails
        steps.insert(1, PokeStep(f"{b.name}:sync1", "sync", ranges, _sync(ranges)))
        steps.insert(3, PokeStep(f"{b.name}:sync2", "sync", ranges, _sync(ranges)))
    return steps


def poke_steps(plan, poke_method: str = "breakpoint") -> list[PokeStep]:
    """Expand a transition plan into patcher steps for *poke_method*.

    Raises :class:`~workbench.base.errors.ConfigError` for an unknown poke method.
    """
    check_choice("poke_method", poke_method, POKE_METHODS)
    steps: list[PokeStep] = []
    for item in plan:
        if isinstance(item, TextBatch):
            steps += _batch_steps(item, poke_method)
        elif isinstance(item, DataWrite):
            steps.append(PokeStep(f"data:{item.name}", "data", ((item.addr, item.addr + 4),),
                                  lambda m, w=item: m.write32(w.addr, w.value)))
        elif isinstance(item, Sync):
            steps.append(PokeStep(f"sync:{item.name}", "sync", (), lambda m: m.sync_core()))
        else:
            raise TypeError(f"unknown plan item {item!r}")
    return steps
