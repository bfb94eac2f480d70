"""int3 handler strategies: what a call that hits a site being patched does.

Models the handlers that shipped and the alternatives discussed around them:

* ``skip``: ftrace_int3_handler() before 9e298e860408, ``regs->ip += 4``.
* ``emulate_regs_caller``: ftrace_int3_handler() of 9e298e860408 (v5.2):
  a traced site emulates a call to ``ftrace_regs_caller``; the trampoline's
  own call being updated emulates a call to the new target
  (``ftrace_update_func_call``) or, if none, skips.
* ``emulate_new``: poke_int3_handler() of c3d6324f841b / 768ae4406a5c
  (v5.6): emulate the instruction being written.
* ``emulate_old``: emulate the instruction being replaced (not shipped).
* ``spin``: return to the int3 until the patch is done (not shipped; with
  interrupts enabled, else the patcher's sync IPI would deadlock).
* ``stop_machine``: no handler; its poke method never leaves an int3 in text.

Every strategy acts on the ``struct pt_regs`` that the emulated int3 entry
built (:class:`workbench.kernel.ptrace.PtRegs`), through the kernel's helpers of
``arch/x86/include/asm/text-patching.h``. Adding a strategy is one
decorated function.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from workbench.base.errors import check_choice
from workbench.base.vocabulary import STRATEGIES
from workbench.kernel.ftrace import TRAMPOLINE_CALLS

__all__ = [
    "Strategy", "strategy", "get_strategy", "decode",
    "int3_emulate_jmp", "int3_emulate_push", "int3_emulate_call",
    "INT3_INSN_SIZE", "CALL_INSN_SIZE",
]

INT3_INSN_SIZE = 1
CALL_INSN_SIZE = 5


def int3_emulate_jmp(regs, ip: int) -> None:
    """``regs->ip = ip``: resume at *ip* (``unsigned long``)."""
    regs.ip = ip


def int3_emulate_push(regs, val: int) -> None:
    """``regs->sp -= sizeof(long); *(long *)regs->sp = val``.

    With the i386 v5.1 entry ``regs->sp`` is not a saved register but whatever
    lies on the interrupted stack, so this writes somewhere arbitrary
    (text, raising :class:`~workbench.kernel.machine.KernelFault`, or the stack).
    On x86_64 (8-byte words) ``regs->sp`` is the interrupted RSP; without
    v5.2's gap the hardware frame lies right below it, so the push can land
    on ``regs->ss`` (see asm_x86_64/entry_64.S).
    """
    if regs.wide:
        regs.sp = regs.sp - 8
        regs.machine.kernel_write64(regs.sp, val)
        return
    regs.sp = regs.sp - 4
    regs.machine.kernel_write32(regs.sp, val)


def int3_emulate_call(regs, func: int) -> None:
    """Push the return address (site + 5) and jump to *func*."""
    int3_emulate_push(regs, regs.ip - INT3_INSN_SIZE + CALL_INSN_SIZE)
    int3_emulate_jmp(regs, func)


def decode(machine, insn: bytes, addr: int):
    """``text_poke_loc_init()``'s decode: ``("call"|"jmp"|"nop", target, length)``."""
    i = machine.image.disassemble(insn, addr)[0]
    if i.mnemonic.startswith("call"):
        return "call", int(i.op_str, 16), i.size
    if i.mnemonic.startswith("jmp"):
        return "jmp", int(i.op_str, 16), i.size
    if i.mnemonic.startswith("nop"):
        return "nop", addr + i.size, i.size
    raise ValueError(f"cannot emulate {i.mnemonic} {i.op_str} at {addr:#x}")


def _emulate(regs, machine, insn: bytes, addr: int) -> bool:
    kind, target, _ = decode(machine, insn, addr)
    if kind == "call":
        int3_emulate_call(regs, target)
    else:
        int3_emulate_jmp(regs, target)
    return True


@dataclass(frozen=True)
class Strategy:
    """An int3 handler strategy and the poke method it is used with."""

    name: str
    poke_method: str  #: "breakpoint" or "stop_machine"
    handler: Callable  #: (machine, cpu, regs, change) -> bool
    shipped: str
    #: the handler holds the trapped CPU until the site changes (the race counts CPUs, not calls)
    blocks: bool = False

    def __call__(self, machine, cpu, regs) -> bool:
        """poke_int3_handler(): claim the trap if it hit a site being patched."""
        state = machine.text_poke_state
        change = state.lookup(regs.ip - INT3_INSN_SIZE) if state else None
        if change is None:
            return False  # not ours: do_int3() goes on to die()
        return self.handler(machine, cpu, regs, change)


#: name -> Strategy, in the vocabulary's order (the names: :data:`workbench.base.vocabulary.STRATEGIES`)
_REGISTRY: dict[str, Strategy] = {}


def strategy(name: str, shipped: str, poke_method: str = "breakpoint", blocks: bool = False):
    """Register ``handler(machine, cpu, regs, change) -> bool`` as strategy *name*.

    *name* must be one of the vocabulary's strategies
    (:data:`workbench.base.vocabulary.STRATEGIES`), the one list of names.
    """
    check_choice("strategy", name, STRATEGIES)

    def register(fn):
        _REGISTRY[name] = Strategy(name, poke_method, fn, shipped, blocks)
        return fn
    return register


def get_strategy(name: str) -> Strategy:
    """The strategy called *name*; raises ConfigError listing the choices."""
    return _REGISTRY[check_choice("strategy", name, _REGISTRY)]


@strategy("skip", "x86 up to v5.1; i386 until v5.3")
def _skip(machine, cpu, regs, change):
    int3_emulate_jmp(regs, change.addr + CALL_INSN_SIZE)
    return True


@strategy("emulate_regs_caller", "9e298e860408 (v5.2)")
def _emulate_regs_caller(machine, cpu, regs, change):
    im = machine.image
    if change.name in TRAMPOLINE_CALLS:  # is_ftrace_caller(ip)
        kind, target, _ = decode(machine, change.new, change.addr)
        if kind != "call":  # !ftrace_update_func_call
            int3_emulate_jmp(regs, change.addr + CALL_INSN_SIZE)
        else:
            int3_emulate_call(regs, target)
        return True
    if change.name in im.functions:  # ftrace_location(ip)
        int3_emulate_call(regs, im.sym("ftrace_regs_caller"))
        return True
    return False


@strategy("emulate_new", "c3d6324f841b + 768ae4406a5c (v5.6)")
def _emulate_new(machine, cpu, regs, change):
    return _emulate(regs, machine, change.new, change.addr)


@strategy("emulate_old", "not shipped")
def _emulate_old(machine, cpu, regs, change):
    return _emulate(regs, machine, change.old, change.addr)


@strategy("spin", "not shipped", blocks=True)
def _spin(machine, cpu, regs, change):
    # Back onto the int3 with interrupts as they were: the patcher's sync IPI
    # must still get through, or the patch would never finish (with IF clear
    # it cannot: a deadlock). iret is serializing, so the CPU refetches the
    # bytes it returns to: once the new first byte is written it runs on.
    int3_emulate_jmp(regs, change.addr)
    cpu.refetch(change.addr, change.addr + CALL_INSN_SIZE)
    return True


@strategy("stop_machine", "powerpc; early x86", poke_method="stop_machine")
def _stop_machine(machine, cpu, regs, change):
    return False  # stop_machine leaves no int3 in text; one hit here is a bug

if tuple(_REGISTRY) != STRATEGIES:  # every named strategy has its code, in the same order
    raise ImportError(f"int3 strategies {tuple(_REGISTRY)} differ from the vocabulary's {STRATEGIES}")
