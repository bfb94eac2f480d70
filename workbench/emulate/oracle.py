"""An independent ftrace state table: which handlers a call should run, from data alone.

Models the dispatch of ``kernel/trace/ftrace.c`` (``ftrace_ops_list_func()``
and its ``ftrace_ops_test()``, the single-handler case of
``update_ftrace_function()``), ``arch/x86/kernel/ftrace_32.S``
(``ftrace_caller`` passes no regs, ``ftrace_regs_caller`` does) and
``kernel/trace/trace_functions.c`` (``function_enabled``) in Python, reading
only the text bytes and data words the patch wrote, never running a
handler. The emulator measures a trapped call's expected handlers by
reference runs of the emulated code; :func:`predicted_handlers` is the
check on those runs (issue 8, 7b): a broken handler cannot lower a call's
expectation, and so its own drop count, without the two disagreeing.
"""

from __future__ import annotations

from workbench.kernel.layout import EQU

__all__ = ["OracleMismatch", "predicted_handlers"]

_KIND_OF = {"function_trace_call": "tracer", "klp_ftrace_handler": "livepatch", "regs_probe_handler": "probe"}


class OracleMismatch(AssertionError):
    """The emulated reference run and the independent state table disagree."""


def _target(machine, addr: int) -> str | None:
    """The symbol a 5-byte ``call`` at *addr* calls, or None (NOP or anything else)."""
    code = machine.read(addr, 5)
    if code[0] != 0xE8:
        return None
    rel = int.from_bytes(code[1:], "little", signed=True)
    return machine.image.name_at((addr + 5 + rel) & 0xFFFFFFFF)


def _ops_at(machine, state, addr: int):
    for o in state.all_ops:
        if state._slots[o.name][0] == addr:  # noqa: SLF001 - ftrace.FtraceState's own layout
            return o
    return None


def _runs(machine, state, kind: str, fn: str, regs: bool) -> bool:
    """Whether handler *kind*, called for *fn*, leaves its evidence."""
    if kind == "tracer":
        return machine.read32(machine.image.sym("function_enabled")) != 0
    if kind == "livepatch":  # klp_ftrace_handler redirects only with regs, only its functions
        return regs and any(o.kind == "livepatch" and fn in (o.functions or ()) for o in state.all_ops) \
            and not _klp_unpatched_task(machine, fn)
    return kind == "probe"  # the probe handler counts every call


def _klp_unpatched_task(machine, fn: str) -> bool:
    """``func->transition`` set for *fn* and the task on CPU 0 still ``KLP_UNPATCHED``: the
    handler moves past the only entry of the func stack and leaves ``regs->ip`` alone."""
    im = machine.image
    eq = im.equ
    table, size, site = im.sym("klp_funcs"), eq["KLP_FUNC_SIZE"], im.functions[fn].site
    for i in range(64):
        old = machine.read32(table + size * i + eq["KLP_FUNC_OLD"])
        if old == 0:
            return False
        if old == site:
            return (machine.read32(table + size * i + eq["KLP_FUNC_TRANSITION"]) != 0
                    and machine.read32(im.sym("klp_patch_state")) == EQU["KLP_UNPATCHED"])
    return False


def predicted_handlers(machine, state, fn: str) -> frozenset[str]:
    """Handlers one call of *fn* runs with the machine's current text and data.

    *state* is any :class:`workbench.kernel.ftrace.FtraceState` of the
    scenario (it fixes where each ops lives). Follows the site's call into a
    trampoline, that trampoline's patchable call (a single handler, called
    whatever its filter, or ``ftrace_ops_list_func``, which walks the linked
    ops, tests their filter and notrace hashes and skips an ops that needs
    regs when it has none), then each handler's own condition. On x86_64 a
    site may call an ops' own trampoline instead: that ops' handler runs
    (directly, or through ``ftrace_ops_assist_func``), with regs if it saves them.
    """
    im = machine.image
    site = im.functions[fn].site
    tramp = _target(machine, site)
    if tramp is None:
        return frozenset()
    code = machine.read(site, 5)
    own = state.trampoline_ops((site + 5 + int.from_bytes(code[1:], "little", signed=True)) & 0xFFFFFFFF)
    if own is not None:
        saves = bool(own.flags & EQU["FTRACE_OPS_FL_SAVE_REGS"])
        return frozenset({own.kind}) if _runs(machine, state, own.kind, fn, saves) else frozenset()
    if tramp == "live_patch_trampoline":
        return frozenset({"livepatch"}) if _runs(machine, state, "livepatch", fn, True) else frozenset()
    regs = tramp == "ftrace_regs_caller"
    if tramp not in ("ftrace_caller", "ftrace_regs_caller"):
        return frozenset()
    func = _target(machine, im.sym("ftrace_regs_call" if regs else "ftrace_call"))
    if func in _KIND_OF:
        kind = _KIND_OF[func]
        return frozenset({kind}) if _runs(machine, state, kind, fn, regs) else frozenset()
    if func != "ftrace_ops_list_func":
        return frozenset()
    out, addr, end = set(), machine.read32(im.sym("ftrace_ops_list")), im.sym("ftrace_list_end")
    for _ in range(64):
        if addr == end:
            break
        o = _ops_at(machine, state, addr)
        if o is not None and o.traces(fn) and (regs or not o.flags & EQU["FTRACE_OPS_FL_SAVE_REGS"]):
            if _runs(machine, state, o.kind, fn, regs):
                out.add(o.kind)
        addr = machine.read32(addr + im.equ["OPS_NEXT"])
    return frozenset(out)
