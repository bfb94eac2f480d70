"""The trampoline ABI a kernel tree's linked trampolines must keep for the harness to run them.

Models what the rest of the kernel assumes of ``arch/x86/kernel/ftrace_32.S``
and ``ftrace_64.S``: the labels ftrace patches and calls
(``ftrace_call``/``ftrace_regs_call`` hold the 5-byte ``call`` that
``ftrace_update_ftrace_func()`` rewrites), the op-pointer load (handlers get
their ``ftrace_ops`` in ``%ecx`` on i386, regparm(3); in ``%rdx`` on x86_64,
loaded by the ``movq function_trace_op(%rip), %rdx`` at
``ftrace_*caller_op_ptr`` that x86_64's ``create_trampoline()``
(``arch/x86/kernel/ftrace.c``) finds by its bytes ``48 8b 15`` and rewrites),
and on x86_64 the regions ``create_trampoline()`` copies: ``ftrace_caller``
up to ``ftrace_caller_end`` (v5.x: ``ftrace_epilogue``) and
``ftrace_regs_caller`` up to ``ftrace_regs_caller_end``, each holding its
op-pointer load and patchable call, and (v5.5 on) the 2-byte ``jnz`` at
``ftrace_regs_caller_jmp`` that it turns into a NOP. Read from the linked
image; a tree that breaks one is a one-line :class:`ConfigError` naming the
tree's file, line and construct. The run-time half (return path, regs) is
:mod:`workbench.emulate.tree_abi`.
"""

from __future__ import annotations

from typing import Any

from workbench.base.errors import ConfigError
from workbench.kernel.tree import TreeObject, label_line, object_symbols, source_line

__all__ = ["HARNESS_LABELS", "check_trampolines", "copied_regions", "harness_labels"]

#: labels the harness patches or calls on i386: the trampolines, their patchable calls, the stub
HARNESS_LABELS = ("ftrace_caller", "ftrace_call", "ftrace_regs_caller", "ftrace_regs_call", "ftrace_stub")
#: x86_64 adds the op-pointer loads and the end of the copied regs caller (create_trampoline())
_HARNESS_LABELS_64 = HARNESS_LABELS + ("ftrace_caller_op_ptr", "ftrace_regs_caller_op_ptr", "ftrace_regs_caller_end")


def harness_labels(arch: str, symbols: dict) -> tuple[str, ...]:
    """The labels the harness needs of a tree of *arch* whose object defines *symbols*.

    On x86_64 the end of the copied ``ftrace_caller`` is ``ftrace_caller_end``
    (6.x's create_trampoline(), which also needs ``ftrace_regs_caller_jmp``),
    or ``ftrace_epilogue`` in a tree that has it and no ``ftrace_caller_end``
    (v5.x).
    """
    if arch != "x86_64":
        return HARNESS_LABELS
    if "ftrace_epilogue" in symbols and "ftrace_caller_end" not in symbols:
        return _HARNESS_LABELS_64 + ("ftrace_epilogue",)
    return _HARNESS_LABELS_64 + ("ftrace_caller_end", "ftrace_regs_caller_jmp")


def copied_regions(symbols: dict) -> tuple[tuple[str, str, str, str], ...]:
    """x86_64: ``(start, end, op_ptr, call)`` labels of what create_trampoline() copies, for the
    regs-less and the SAVE_REGS trampoline, in the layout *symbols* has (6.x or v5.x)."""
    end = "ftrace_epilogue" if "ftrace_epilogue" in symbols and "ftrace_caller_end" not in symbols \
        else "ftrace_caller_end"
    return (("ftrace_caller", end, "ftrace_caller_op_ptr", "ftrace_call"),
            ("ftrace_regs_caller", "ftrace_regs_caller_end", "ftrace_regs_caller_op_ptr", "ftrace_regs_call"))


def check_trampolines(obj: TreeObject, image: Any) -> None:
    """The linked trampolines keep the ABI the harness relies on, else a one-line :class:`ConfigError`.

    *image* is the linked :class:`~workbench.kernel.image.KernelImage`.
    Checked: every label of :func:`harness_labels` is a global (or weak)
    symbol of the tree's object; ``ftrace_call`` and ``ftrace_regs_call`` are
    each the 5-byte ``call ftrace_stub`` that ftrace rewrites; the last
    write of the ops register before each (``%ecx`` on i386, ``%rdx`` on
    x86_64) is the load of ``function_trace_op`` (the op-pointer load); on
    x86_64 that load is the ``movq function_trace_op(%rip), %rdx`` at the
    ``*_op_ptr`` label, both lie inside the region create_trampoline()
    copies, and in 6.x ``ftrace_regs_caller_jmp`` holds a 2-byte ``jnz``.
    """
    tree, arch = obj.tree, obj.tree.arch
    syms = object_symbols(obj.elf)
    rel = tree.ftrace
    for label in harness_labels(arch, syms):
        if label not in syms or syms[label][1] not in ("STB_GLOBAL", "STB_WEAK"):
            owner = "ftrace_regs_caller" if label.startswith("ftrace_regs") else "ftrace_caller"
            line = label_line(tree, label) or label_line(tree, owner)
            what = "is not global" if label in syms else "is missing"
            raise ConfigError(f"kernel-tree: {rel}:{line}: label {label} {what} (the harness patches and calls it; "
                              f"{tree.version} tree)")
    delta = image.sym("ftrace_caller") - syms["ftrace_caller"][0]
    stub, op = image.sym("ftrace_stub"), image.sym("function_trace_op")
    reg = "%rdx" if arch == "x86_64" else "%ecx"

    def where(addr: int) -> str:
        name, line = source_line(obj, addr - delta)
        return f"{name}:{line}"

    def fail(addr: int, what: str, rule: str) -> ConfigError:
        return ConfigError(f"kernel-tree: {where(addr)}: {what} (trampoline ABI: {rule}; {tree.version} tree)")

    if arch == "x86_64":
        _check_copied(image, syms, fail)
    for call, tramp in (("ftrace_call", "ftrace_caller"), ("ftrace_regs_call", "ftrace_regs_caller")):
        a = image.sym(call)
        insns = image.disassemble(image.read(a, 16), a)
        insn = insns[0] if insns else None
        text = f"{insn.mnemonic} {insn.op_str}".strip() if insn else "undecodable bytes"
        if insn is None or insn.size != 5 or insn.bytes[0] != 0xE8 or int(insn.op_str, 16) != stub:
            raise fail(a, f"{call} holds `{text}`, not the 5-byte `call ftrace_stub` that ftrace rewrites",
                       "patchable call")
        start = image.sym(tramp)
        before = [i for i in image.disassemble(image.read(start, a - start), start) if i.address < a]
        writes = [i for i in before if _writes(i, reg)]
        last = writes[-1] if writes else None
        loads = last is not None and last.mnemonic.startswith("mov") and (
            last.op_str.startswith(f"{op:#x},") if arch == "i386" else
            bytes(last.bytes[:3]) == b"\x48\x8b\x15" and last.address + last.size
            + int.from_bytes(last.bytes[3:7], "little", signed=True) == op)
        if not loads:
            got = f"`{last.mnemonic} {last.op_str}`" if last else "nothing"
            raise fail(last.address if last else a, f"{tramp} sets {reg} with {got} before {call}, not the load of "
                       "function_trace_op", "op-pointer load")


def _writes(insn: Any, reg: str) -> bool:
    """Does *insn* (capstone, AT&T) write *reg* (``%ecx`` or ``%rdx``) or its low part?"""
    names = {"%ecx": ("%ecx", "%cx", "%cl"), "%rdx": ("%rdx", "%edx", "%dx", "%dl")}[reg]
    ops = insn.op_str.replace(" ", "")
    if insn.mnemonic.startswith("pop"):
        return ops in names
    return any(ops.endswith("," + n) for n in names) or (ops in names and insn.mnemonic.startswith(("inc", "dec",
                                                                                                   "not", "neg")))


def _check_copied(image: Any, syms: dict, fail) -> None:
    """x86_64: the op-pointer load and the call lie in the copied regions; 6.x's jnz is 2 bytes."""
    for start, end, op_ptr, call in copied_regions(syms):
        s, e, o, c = (image.sym(n) for n in (start, end, op_ptr, call))
        if not s <= o < c < e:
            raise fail(o, f"{op_ptr} and {call} do not lie in order inside {start}..{end}, the code "
                       "create_trampoline() copies", "per-ops trampoline copy")
        if image.read(o, 3) != b"\x48\x8b\x15":
            text = image.disassemble(image.read(o, 16), o)
            got = f"`{text[0].mnemonic} {text[0].op_str}`" if text else "undecodable bytes"
            raise fail(o, f"{op_ptr} holds {got}, not the `movq function_trace_op(%rip), %rdx` "
                       "(48 8b 15) create_trampoline() rewrites", "op-pointer load")
    if "ftrace_regs_caller_jmp" in syms:
        j = image.sym("ftrace_regs_caller_jmp")
        if image.read(j, 1) != b"\x75":
            raise fail(j, "ftrace_regs_caller_jmp is not the 2-byte `jnz` that create_trampoline() turns "
                       "into a NOP", "per-ops trampoline copy")
