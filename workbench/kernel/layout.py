"""Structure layouts shared with the i386 and x86_64 sources.

The single source of truth is each arch's ``defs.inc`` (``asm/`` for i386,
``asm_x86_64/``): its ``.equ`` constants (the offsets of ``struct pt_regs``
from ``arch/x86/include/asm/ptrace.h``, of ``struct ftrace_ops``, of the
per-CPU ``thread_info`` and call log) are read here, so the Python side can
never disagree with the assembly. :data:`EQU` is i386's; :func:`equ` takes the arch.
"""

import re
from pathlib import Path

__all__ = ["EQU", "EQU_X86_64", "PT_REGS_FIELDS", "PT_REGS_FIELDS_X86_64", "equ", "pt_fields", "pt_offset"]


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
#: every ``.equ`` in asm_x86_64/defs.inc, by name
EQU_X86_64: dict[str, int] = _parse(Path(__file__).resolve().parent / "asm_x86_64" / "defs.inc")

#: struct pt_regs (i386) field names in memory order
PT_REGS_FIELDS = ("bx", "cx", "dx", "si", "di", "bp", "ax", "ds", "es", "fs", "gs",
                  "orig_ax", "ip", "cs", "flags", "sp", "ss")

_PT_NAMES = dict(zip(PT_REGS_FIELDS, ("PT_EBX", "PT_ECX", "PT_EDX", "PT_ESI", "PT_EDI", "PT_EBP",
                                      "PT_EAX", "PT_DS", "PT_ES", "PT_FS", "PT_GS", "PT_ORIG_EAX",
                                      "PT_EIP", "PT_CS", "PT_EFLAGS", "PT_OLDESP", "PT_OLDSS"), strict=True))


#: struct pt_regs (x86_64) field names in memory order
PT_REGS_FIELDS_X86_64 = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx",
                         "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss")
_PT_NAMES_X86_64 = {f: "PT_" + {"bp": "RBP", "bx": "RBX", "ax": "RAX", "cx": "RCX", "dx": "RDX", "si": "RSI",
                                "di": "RDI", "orig_ax": "ORIG_RAX", "ip": "RIP", "flags": "EFLAGS",
                                "sp": "RSP"}.get(f, f.upper()) for f in PT_REGS_FIELDS_X86_64}


def equ(arch: str = "i386") -> dict[str, int]:
    """The ``.equ`` constants of *arch*'s defs.inc."""
    return EQU_X86_64 if arch == "x86_64" else EQU


def pt_fields(arch: str = "i386") -> tuple[str, ...]:
    """``struct pt_regs`` field names of *arch*, in memory order."""
    return PT_REGS_FIELDS_X86_64 if arch == "x86_64" else PT_REGS_FIELDS


def pt_offset(field: str, arch: str = "i386") -> int:
    """Offset of ``struct pt_regs`` member *field* (``"ip"``, ``"sp"``, ...) on *arch*."""
    if arch == "x86_64":
        return EQU_X86_64[_PT_NAMES_X86_64[field]]
    return EQU[_PT_NAMES[field]]
