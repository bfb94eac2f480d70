"""The return path and regs layout of a kernel tree's trampolines, checked by running them.

Models what ``arch/x86/kernel/ftrace_32.S`` promises a traced call whose
handlers change nothing: through ``ftrace_caller`` (the function tracer, no
regs) and through ``ftrace_regs_caller`` (a ``SAVE_REGS`` probe, which copies
the ``struct pt_regs`` it is given), the traced function's body runs once,
the tracer gets ``ip`` = the site and ``parent_ip`` = the caller, ``pt_regs``
holds the caller's registers at the offsets of ``asm/defs.inc`` and
``regs->ip`` = the site + 5, the body starts with the traced function's
register arguments (regparm(3): ``%eax``, ``%edx``, ``%ecx``) and stack as the
call left them, and the call returns to its caller with the callee-saved
registers and the stack intact. A tree that breaks this cannot
be run the same way: one :class:`ConfigError` line naming the trampoline's
line. What a trampoline does with a *changed* ``regs->ip`` is behaviour, not
ABI, and is left to the outcome table (docs/KERNEL_TREE.md).
"""

from __future__ import annotations

import functools

from workbench.base.errors import ConfigError
from workbench.emulate.outcomes import observe
from workbench.kernel.ftrace import FtraceOps, FtraceState
from workbench.kernel.image import build_image
from workbench.kernel.layout import EQU, pt_offset
from workbench.kernel.machine import Machine
from workbench.kernel.tree import FTRACE_32, KernelTree, label_line

__all__ = ["check_trampoline_abi"]

#: instructions a probe call may take per leg (the trampolines take about a hundred)
_CAP = 5000


def check_trampoline_abi(tree: KernelTree, n_ordinary: int = 8) -> None:
    """Run one call through each of the tree's trampolines; ConfigError if one breaks the ABI."""
    image = build_image(n_ordinary, tree=tree)
    problem = _probe(image.digest, tree, n_ordinary)
    if problem is not None:
        tramp, what = problem
        raise ConfigError(f"kernel-tree: {FTRACE_32}:{label_line(tree, tramp)}: {tramp}: a traced call whose "
                          f"handler changes nothing {what} (trampoline ABI: return path and regs; "
                          f"{tree.version} tree)")


@functools.lru_cache(maxsize=16)
def _probe(digest: str, tree: KernelTree, n_ordinary: int) -> tuple[str, str] | None:
    """(trampoline, what went wrong) for the image of *digest*, or None."""
    im = build_image(n_ordinary, tree=tree)
    fn = next(f for f in im.functions.values() if f.kind == "ordinary")
    for kind, tramp in (("tracer", "ftrace_caller"), ("probe", "ftrace_regs_caller")):
        m = Machine(im, 1, entry="v5.3")
        try:
            state = FtraceState(im, (FtraceOps(kind, kind),))
            if state.site_target(fn.name) != tramp:
                return tramp, f"is not what {fn.name}'s site calls ({state.site_target(fn.name)})"
            state.apply(m)
            cpu = m.cpus[0]
            cpu.reset([(fn.site, 0)])
            cpu.run(_CAP, until=im.sym("workload_call"))
            # the traced function's register arguments (regparm(3)) and stack, as its body must see them
            args = {"eax": 0x0a0a0a0a, "edx": 0x0d0d0d0d, "ecx": 0x0c0c0c0c}
            for reg, v in args.items():
                cpu.set_reg(reg, v)
            sp = cpu.reg("esp") - 4  # after the call pushed its return address
            cpu.run(_CAP, until=fn.site + EQU["MCOUNT_INSN_SIZE"])
            if cpu.crash is None and cpu.eip != fn.site + EQU["MCOUNT_INSN_SIZE"]:
                return tramp, f"never reached the traced body in {_CAP} instructions (at {im.name_at(cpu.eip)})"
            if cpu.crash is None:
                body = {r: cpu.reg(r) for r in args}
                lost = [f"%{r} = {body[r]:#x} (was {args[r]:#x})" for r in args if body[r] != args[r]]
                if cpu.reg("esp") != sp:
                    lost.append(f"%esp = {cpu.reg('esp'):#x} (was {sp:#x})")
                if lost:
                    return tramp, "entered the traced body with " + ", ".join(lost)
            cpu.run(_CAP, until=im.sym("workload_logged"))
            recs = cpu.drain() if cpu.crash is None and cpu.eip == im.sym("workload_logged") else []
            if cpu.crash is not None:
                return tramp, f"crashed ({cpu.crash.reason} at {im.name_at(cpu.crash.eip)})"
            if not recs:
                return tramp, "never returned to its caller"
            obs = observe(cpu, recs[0])
            if kind == "probe":
                regs = im.sym("regs_probe")
                got = {f: m.read32(regs + pt_offset(f)) for f in ("ip", "bx", "si", "bp", "cs")}
                want = {"ip": fn.site + EQU["MCOUNT_INSN_SIZE"], "bx": EQU["CANARY_EBX"], "si": fn.site,
                        "bp": cpu.ti, "cs": EQU["__KERNEL_CS"]}
                bad = [f for f in want if got[f] & (0xFFFF if f == "cs" else 0xFFFFFFFF) != want[f]]
                if obs.probe_runs != 1 or bad:
                    return tramp, ("passed a pt_regs with " + ", ".join(
                        f"regs->{f} = {got[f]:#x} (the caller's is {want[f]:#x})" for f in bad)
                        if bad else f"ran the SAVE_REGS handler {obs.probe_runs} times")
            if obs.corrupt:
                return tramp, f"returned with the caller's registers or stack changed (bits {obs.corrupt:#x})"
            if obs.body != "old" or obs.bodies != 1:
                return tramp, f"ran the traced body {obs.bodies} times"
            if kind == "tracer" and (obs.tracer_runs != 1 or obs.bogus_records):
                return tramp, "did not give the tracer ip = the site and parent_ip = the caller"
        finally:
            m.close()
    return None
