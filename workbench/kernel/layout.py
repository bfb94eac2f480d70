"""Structure layouts shared with the i386 sources.

The single source of truth is ``asm/defs.inc``: its ``.equ`` constants (the
offsets of ``struct pt_regs`` from ``arch/x86/include/asm/ptrace.h``, of
``struct ftrace_ops``, of the per-CPU ``thread_info`` and call log) are read
here, so the Python side can never disagree with the assembly.
"""

import re
from pathlib import Path

__all__ = ["EQU", "PT_REGS_FIELDS", "pt_offset"]


def _parse(path: Path) -> dict[str, int]:
    equ: dict[str, int] = {}
    for line in path.read_text().splitlines():
        m = re.match(r"\s*\.equ\s+(\w+)\s*,\s*(.+?)\s*(/\*.*)?$", line)
        if m:
            expr = m.group(2)
            for name in sorted(equ, key=len, reverse=True):
                expr = re.sub(rf"\b{name}\b", str(equ[name]), expr)
            equ[m.group(1)] = int(eval(expr, {"__builtins__": {}}))  # noqa: S307 - our own file
    return equ


#: every ``.equ`` in defs.inc, by name
EQU: dict[str, int] = _parse(Path(__file__).resolve().parent / "asm" / "defs.inc")

#: struct pt_regs (i386) field names in memory order
PT_REGS_FIELDS = ("bx", "cx", "dx", "si", "di", "bp", "ax", "ds", "es", "fs", "gs",
                  "orig_ax", "ip", "cs", "flags", "sp", "ss")

_PT_NAMES = dict(zip(PT_REGS_FIELDS, ("PT_EBX", "PT_ECX", "PT_EDX", "PT_ESI", "PT_EDI", "PT_EBP",
                                      "PT_EAX", "PT_DS", "PT_ES", "PT_FS", "PT_GS", "PT_ORIG_EAX",
                                      "PT_EIP", "PT_CS", "PT_EFLAGS", "PT_OLDESP", "PT_OLDSS")))


def pt_offset(field: str) -> int:
    """Offset of ``struct pt_regs`` member *field* (``"ip"``, ``"sp"``, ...)."""
    return EQU[_PT_NAMES[field]]
