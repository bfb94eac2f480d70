"""The return path and regs layout of a kernel tree's trampolines, checked by running them.

Models what ``arch/x86/kernel/ftrace_32.S`` and ``ftrace_64.S`` promise a
traced call whose handlers change nothing: through ``ftrace_caller`` (the
function tracer, no regs) and through ``ftrace_regs_caller`` (a ``SAVE_REGS``
probe, which copies the ``struct pt_regs`` it is given) -- on x86_64 through
each one's per-ops copy (one ops alone on the site) and the shared one (two
ops, through the list function) -- the traced function's body runs once,
the tracer gets ``ip`` = the site and ``parent_ip`` = the caller, ``pt_regs``
holds the caller's registers at the offsets of the arch's ``defs.inc`` and
``regs->ip`` = the site + 5, the body starts with the traced function's
register arguments (i386 regparm(3): ``%eax``, ``%edx``, ``%ecx``; x86_64:
``%rdi``, ``%rsi``, ``%rdx``, ``%rcx``, ``%r8``, ``%r9``) and stack as the
call left them, and the call returns to its caller with the callee-saved
registers and the stack intact. A tree that breaks this cannot be run the
same way: one :class:`ConfigError` line naming the trampoline's line. What a
trampoline does with a *changed* ``regs->ip`` is behaviour, not ABI, and is
left to the outcome table (docs/KERNEL_TREE.md).
"""

from __future__ import annotations

import functools

from workbench.base.errors import ConfigError
from workbench.emulate.outcomes import observe
from workbench.kernel.ftrace import FtraceOps, FtraceState
from workbench.kernel.image import KernelImage, build_image
from workbench.kernel.layout import pt_offset
from workbench.kernel.machine import Machine
from workbench.kernel.tree import KernelTree, label_line

__all__ = ["check_trampoline_abi"]

#: instructions a probe call may take per leg (the trampolines take about a hundred)
_CAP = 5000
#: per arch: the traced function's register arguments, given test values (x86_64's %rdi and %rsi hold
#: the workload's log record and function, which it checks after the call: they keep their values)
_ARGS = {"i386": {"eax": 0x0a0a0a0a, "edx": 0x0d0d0d0d, "ecx": 0x0c0c0c0c},
         "x86_64": {"rdx": 0x0d0d0d0d, "rcx": 0x0c0c0c0c, "r8": 0x08080808, "r9": 0x09090909}}
#: per arch: every register argument, read at the traced body's first instruction
_ARG_REGS = {"i386": ("eax", "edx", "ecx"), "x86_64": ("rdi", "rsi", "rdx", "rcx", "r8", "r9")}
#: per arch: the legs, as (ops kinds, the trampoline they exercise, what the site calls)
_LEGS = {"i386": ((("tracer",), "ftrace_caller", "ftrace_caller"),
                  (("probe",), "ftrace_regs_caller", "ftrace_regs_caller")),
         "x86_64": ((("tracer",), "ftrace_caller", "trampoline:tracer"),
                    (("probe",), "ftrace_regs_caller", "trampoline:probe"),
                    (("tracer", "tracer"), "ftrace_caller", "ftrace_caller"),
                    (("tracer", "probe"), "ftrace_regs_caller", "ftrace_regs_caller"))}


def check_trampoline_abi(tree: KernelTree, n_ordinary: int = 8) -> None:
    """Run one call through each of the tree's trampolines; ConfigError if one breaks the ABI."""
    image = build_image(n_ordinary, tree.arch, tree)
    problem = _probe(image.digest, tree, n_ordinary)
    if problem is not None:
        tramp, what = problem
        label = tramp.split()[0]
        raise ConfigError(f"kernel-tree: {tree.ftrace}:{label_line(tree, label)}: {tramp}: a traced call whose "
                          f"handler changes nothing {what} (trampoline ABI: return path and regs; "
                          f"{tree.version} tree)")


@functools.lru_cache(maxsize=16)
def _probe(digest: str, tree: KernelTree, n_ordinary: int) -> tuple[str, str] | None:
    """(trampoline, what went wrong) for the image of *digest*, or None."""
    im = build_image(n_ordinary, tree.arch, tree)
    for kinds, tramp, target in _LEGS[tree.arch]:
        name = tramp if not target.startswith("trampoline:") else f"{tramp} (its per-ops copy)"
        problem = _leg(im, kinds, target)
        if problem is not None:
            return name, problem
    return None


def _leg(im: KernelImage, kinds: tuple[str, ...], target: str) -> str | None:
    """What went wrong with one call whose site calls *target* with ops of *kinds*, or None."""
    arch = im.arch
    x64 = arch == "x86_64"
    sp_reg = "rsp" if x64 else "esp"
    fn = next(f for f in im.functions.values() if f.kind == "ordinary")
    m = Machine(im, 1, entry="v5.2" if x64 else "v5.3")
    try:
        ops = tuple(FtraceOps(f"{k}{i or ''}", k) for i, k in enumerate(kinds))
        state = FtraceState(im, ops)
        if state.site_target(fn.name) != target:
            return f"is not what {fn.name}'s site calls ({state.site_target(fn.name)})"
        state.apply(m)
        cpu = m.cpus[0]
        cpu.reset([(fn.site, 0)])
        cpu.run(_CAP, until=im.sym("workload_call"))
        for reg, v in _ARGS[arch].items():
            cpu.set_reg(reg, v)
        args = {r: cpu.reg(r) for r in _ARG_REGS[arch]}
        sp = cpu.reg(sp_reg) - (8 if x64 else 4)  # after the call pushed its return address
        body_at = fn.site + im.equ["MCOUNT_INSN_SIZE"]
        cpu.run(_CAP, until=body_at)
        if cpu.crash is None and cpu.eip != body_at:
            return f"never reached the traced body in {_CAP} instructions (at {im.name_at(cpu.eip)})"
        if cpu.crash is None:
            body = {r: cpu.reg(r) for r in args}
            lost = [f"%{r} = {body[r]:#x} (was {args[r]:#x})" for r in args if body[r] != args[r]]
            if cpu.reg(sp_reg) != sp:
                lost.append(f"%{sp_reg} = {cpu.reg(sp_reg):#x} (was {sp:#x})")
            if lost:
                return "entered the traced body with " + ", ".join(lost)
        cpu.run(_CAP, until=im.sym("workload_logged"))
        recs = cpu.drain() if cpu.crash is None and cpu.eip == im.sym("workload_logged") else []
        if cpu.crash is not None:
            return f"crashed ({cpu.crash.reason} at {im.name_at(cpu.crash.eip)})"
        if not recs:
            return "never returned to its caller"
        obs = observe(cpu, recs[0])
        if "probe" in kinds:
            regs = im.sym("regs_probe")
            got = {f: m.read32(regs + pt_offset(f, arch)) for f in ("ip", "bx", "si", "bp", "cs")}
            want = {"ip": body_at, "bx": im.equ["CANARY_EBX"], "si": fn.site, "bp": cpu.ti,
                    "cs": im.equ["__KERNEL_CS"]}
            bad = [f for f in want if got[f] & (0xFFFF if f == "cs" else 0xFFFFFFFF) != want[f]]
            if obs.probe_runs != 1 or bad:
                return ("passed a pt_regs with " + ", ".join(
                    f"regs->{f} = {got[f]:#x} (the caller's is {want[f]:#x})" for f in bad)
                    if bad else f"ran the SAVE_REGS handler {obs.probe_runs} times")
        if obs.corrupt:
            return f"returned with the caller's registers or stack changed (bits {obs.corrupt:#x})"
        if obs.body != "old" or obs.bodies != 1:
            return f"ran the traced body {obs.bodies} times"
        tracers = kinds.count("tracer")
        if tracers and (obs.tracer_runs != tracers or obs.bogus_records):
            return "did not give the tracer ip = the site and parent_ip = the caller"
        return None
    finally:
        m.close()
