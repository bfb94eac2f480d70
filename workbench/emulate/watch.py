"""One traced call in a stable ftrace state, watched from entry to return.

The ``python -m workbench call`` command: build the image, register the
requested ops (:mod:`workbench.kernel.ftrace`), run one call of a traced function
on an emulated CPU and report what ran. Handlers and body come from the
evidence in memory (:mod:`workbench.emulate.outcomes`); the path through the
trampolines and the instruction count come from address hooks.
"""

from __future__ import annotations

from unicorn import UC_HOOK_CODE

from workbench.base.errors import ConfigError
from workbench.kernel.ftrace import FtraceOps, FtraceState
from workbench.base.errors import check_choice
from workbench.base.vocabulary import ARCHES, OPS_CHOICES
from workbench.kernel.image import build_image
from workbench.kernel.tree import KernelTree
from workbench.kernel.machine import Machine
from workbench.emulate.outcomes import observe

__all__ = ["PATH_SYMBOLS", "make_ops", "trampoline_listing", "watch_call"]

#: symbols whose entry is reported in the path
PATH_SYMBOLS = ("ftrace_caller", "ftrace_regs_caller", "live_patch_trampoline", "ftrace_stub",
                "ftrace_ops_list_func", "function_trace_call", "klp_ftrace_handler",
                "int3_entry_v51", "int3_entry_v53", "do_int3", "ftrace_ops_assist_func", "int3_entry_v52")


def make_ops(spec: str | list[str], livepatch_functions=("do_IRQ", "__migrate_task")) -> tuple[FtraceOps, ...]:
    """Ops from names: ``tracer`` (all functions), ``livepatch`` (own trampoline),
    ``livepatch-shared`` (through ftrace_regs_caller; on x86_64 every ops has its
    own trampoline either way). Raises ConfigError."""
    names = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    names = [n for n in names if n and n != "none"]
    out = []
    for n in names:
        if n not in OPS_CHOICES:
            raise ConfigError(f"ops: unknown {n!r}; choose a comma-separated list from "
                              f"{', '.join(OPS_CHOICES)} (or none)")
        if n == "tracer":
            out.append(FtraceOps("tracer", "tracer"))
        else:
            out.append(FtraceOps("livepatch", "livepatch", frozenset(livepatch_functions),
                                 trampoline=(n == "livepatch")))
    if len({o.name for o in out}) != len(out):
        raise ConfigError(f"ops: {spec!r} names the same ops twice; use each of "
                          f"{', '.join(OPS_CHOICES)} at most once")
    return tuple(out)


def watch_call(function: str = "do_IRQ", ops="livepatch,tracer", n_ordinary: int = 8,
               entry: str | None = None, arch: str = "i386", tree: KernelTree | None = None) -> dict:
    """Run one call of *function* with *ops* registered; return what happened.

    Keys: ``function``, ``ops``, ``handlers`` (that ran), ``body`` (old/new),
    ``tracer_records`` (ip, parent_ip, cpu), ``instructions``, ``path``
    (trampoline symbols entered, in order), ``site`` (the site's bytes and
    disassembly), ``crash``, ``kernel_tree`` (whose trampolines ran: *tree*'s
    own, else ``workbench``). *arch*: ``i386`` or ``x86_64``; *entry* defaults
    to the arch's latest. Raises ConfigError for an unknown arch, function or ops.
    """
    im = build_image(n_ordinary, check_choice("arch", arch, ARCHES), tree)
    fn = im.function(function)
    ops = make_ops(ops) if not isinstance(ops, tuple) else ops
    state = FtraceState(im, ops)
    m = Machine(im, 1, entry=entry)
    entry = m.entry
    state.apply(m)
    cpu = m.cpus[0]
    cpu.reset([(fn.site, 0)])
    watched = {im.sym(s): s for s in PATH_SYMBOLS if s in im.symbols}  # each arch has its own entries
    watched.update({f.new_body: f"klp_new_{n}" for n, f in im.functions.items() if f.new_body})
    watched.update({state.trampoline_addr(o): f"trampoline:{o.name}" for o in ops if state.per_ops_trampolines})
    watched[fn.site] = function
    path, count = [], [0]

    def on_insn(uc, addr, size, _):
        count[0] += 1
        if addr in watched:
            path.append(watched[addr])

    start = im.sym("workload_call")
    cpu.run(10**6, until=start)  # to the call instruction
    h = cpu.uc.hook_add(UC_HOOK_CODE, on_insn)
    cpu.run(10**6, until=im.sym("workload_return"))
    cpu.uc.hook_del(h)
    cpu.run(10**6, until=im.sym("workload_logged"))
    rec = cpu.drain()
    site_bytes = m.read(fn.site, 5)
    insn = im.disassemble(site_bytes, fn.site)[0]
    result = {
        "function": function, "arch": arch,
        "ops": [o.name + ("(trampoline)" if o.trampoline or state.per_ops_trampolines else "") for o in ops],
        "entry": entry, "kernel_tree": im.kernel_tree, "site": {"address": fn.site, "bytes": site_bytes.hex(" "),
                                  "insn": f"{insn.mnemonic} {insn.op_str}".strip(),
                                  "target": state.site_target(function) or "nop"},
        "trace_function": state.trace_function(),
        "crash": None if cpu.crash is None else cpu.crash.reason,
    }
    if rec:
        obs = observe(cpu, rec[0])
        recs = cpu.trace_records(rec[0]["rb0"], rec[0]["rb1"])
        result.update(handlers=sorted(obs.handlers), body=obs.body,
                      tracer_records=[{"ip": int(r[0]), "parent_ip": int(r[1]), "cpu": int(r[2])} for r in recs],
                      instructions=count[0], path=path, corrupt=obs.corrupt)
    return result


def trampoline_listing(ops_name: str, ops="livepatch,tracer", arch: str = "x86_64", n_ordinary: int = 8) -> str:
    """The per-ops trampoline ``create_trampoline()`` makes for *ops_name* with *ops* registered,
    as a listing (x86_64 only: ``CONFIG_X86_64``, arch/x86/kernel/ftrace.c): a copy of
    ``ftrace_caller`` (``ftrace_regs_caller`` for a SAVE_REGS ops) whose op-pointer load reads the
    ops pointer stored after the code and whose call goes straight to the ops' function, then a
    ``jmp ftrace_epilogue``. Raises ConfigError for an arch without them or an ops not registered."""
    im = build_image(n_ordinary, check_choice("arch", arch, ARCHES))
    state = FtraceState(im, make_ops(ops) if not isinstance(ops, tuple) else ops)
    if not state.per_ops_trampolines:
        raise ConfigError(f"arch: {arch} has no per-ops trampolines (create_trampoline() is built only "
                          "under CONFIG_X86_64); choose arch from x86_64")
    names = [o.name for o in state.ops]
    ops_ = next((o for o in state.ops if o.name == ops_name), None)
    if ops_ is None:
        raise ConfigError(f"ops: {ops_name!r} is not registered; choose from {', '.join(names)}")
    addr, code = state.trampoline_addr(ops_), state.trampoline_code(ops_)
    ptr = int.from_bytes(code[-8:], "little")
    return (im.code_listing(f"trampoline:{ops_name}", code[:-8], addr)
            + f"\n{addr + len(code) - 8:08x}:  .quad {ptr:#x}  <the ops pointer: {im.name_at(ptr)}>")
