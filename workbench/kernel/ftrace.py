"""ftrace ops bookkeeping: what each site and trampoline call should hold.

Models ``kernel/trace/ftrace.c`` (``update_ftrace_function``,
``ftrace_ops_list_func``'s inputs, ``ftrace_modify_all_code``) and
``arch/x86/kernel/ftrace.c`` (``ftrace_call_replace``, and on x86_64
``create_trampoline()`` / ``arch_ftrace_update_trampoline()``: one trampoline
per ops, called by every site that ops alone traces): from the registered
:class:`FtraceOps`, compute the text of every site and of the trampolines'
patchable calls, write ops, hashes and the livepatch table into emulated
memory, and order the changes of a transition the way the kernel does
(59338f754a55).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise

from workbench.base.errors import ConfigError, check_choice
from workbench.kernel.image import NOP5, KernelImage
from workbench.kernel.layout import EQU

__all__ = [
    "FtraceOps", "FtraceState", "TextChange", "DataWrite", "TextBatch", "Sync",
    "ftrace_call_replace", "plan_transition", "OPS_KINDS", "TRAMPOLINE_CALLS",
]

#: tracer: the function tracer; livepatch: klp; probe: copies the pt_regs it gets (SAVE_REGS)
OPS_KINDS = ("tracer", "livepatch", "probe")
_HANDLER = {"tracer": "function_trace_call", "livepatch": "klp_ftrace_handler",
            "probe": "regs_probe_handler"}
TRAMPOLINE_CALLS = ("ftrace_call", "ftrace_regs_call")


@dataclass(frozen=True)
class FtraceOps:
    """``struct ftrace_ops``: a handler and the functions it traces.

    ``functions`` is the filter hash (None: every function); ``notrace`` the
    notrace hash. A livepatch ops saves regs and modifies ip
    (``FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY``); with
    ``trampoline`` its sites call ``live_patch_trampoline`` when it is the
    only ops on them.
    """

    name: str
    kind: str
    functions: frozenset[str] | None = None
    notrace: frozenset[str] = frozenset()
    trampoline: bool = False

    def __post_init__(self):
        check_choice(f"ops {self.name!r} kind", self.kind, OPS_KINDS)
        if self.kind == "livepatch" and not self.functions:
            raise ConfigError(f"ops {self.name!r} functions: a livepatch names at least one function")
        if self.trampoline and self.kind != "livepatch":
            raise ConfigError(f"ops {self.name!r} trampoline: only a livepatch ops has its own trampoline")

    @property
    def flags(self) -> int:
        """``ops->flags``: livepatch is ``SAVE_REGS | DYNAMIC | IPMODIFY`` (klp_patch_func(),
        kernel/livepatch/patch.c, allocated per function); a probe is a static,
        kprobe-like ``SAVE_REGS`` ops; the tracer's ops (the trace array's
        ``global_ops``) is static and needs no regs."""
        if self.kind == "livepatch":
            return (EQU["FTRACE_OPS_FL_SAVE_REGS"] | EQU["FTRACE_OPS_FL_DYNAMIC"]
                    | EQU["FTRACE_OPS_FL_IPMODIFY"])
        if self.kind == "probe":
            return EQU["FTRACE_OPS_FL_SAVE_REGS"]
        return 0

    @property
    def dynamic(self) -> bool:
        """``FTRACE_OPS_FL_DYNAMIC``: the trampolines must reach it through the list function."""
        return bool(self.flags & EQU["FTRACE_OPS_FL_DYNAMIC"])

    @property
    def handler(self) -> str:
        return _HANDLER[self.kind]

    @property
    def recursion_safe(self) -> bool:
        """``FTRACE_OPS_FL_RECURSION_SAFE``: set on the tracer's ops (kernel/trace/trace_functions.c,
        kernel/trace/ftrace.c ``global_ops``), not on klp's (klp_patch_func()) nor kprobes'
        (kernel/kprobes.c ``kprobe_ftrace_ops``)."""
        return self.kind == "tracer"

    @property
    def trampoline_func(self) -> str:
        """``ftrace_ops_get_func()``: what a per-ops trampoline calls: the handler itself for a
        RECURSION_SAFE ops, else ``ftrace_ops_assist_func`` (kernel/trace/ftrace.c, v4.5-v5.10)."""
        return self.handler if self.recursion_safe else "ftrace_ops_assist_func"

    def traces(self, fn: str) -> bool:
        """ftrace_ops_test(): does this ops trace *fn*?"""
        return (self.functions is None or fn in self.functions) and fn not in self.notrace


def ftrace_call_replace(site: int, target: int) -> bytes:
    """The 5-byte ``call target`` placed at *site* (``E8 rel32``)."""
    return b"\xe8" + ((target - (site + 5)) & 0xFFFFFFFF).to_bytes(4, "little")


@dataclass(frozen=True)
class TextChange:
    """One 5-byte instruction changing at ``addr`` from ``old`` to ``new``."""

    addr: int
    old: bytes
    new: bytes
    name: str  #: the function or trampoline call it belongs to


@dataclass(frozen=True)
class TextBatch:
    """Instructions changed together by one breakpoint protocol run."""

    name: str
    changes: tuple[TextChange, ...]


@dataclass(frozen=True)
class DataWrite:
    """A 32-bit store to kernel data (ops list, ``function_trace_op``)."""

    name: str
    addr: int
    value: int


@dataclass(frozen=True)
class Sync:
    """An IPI round that only orders data (``ftrace_sync_ipi``)."""

    name: str


@dataclass
class FtraceState:
    """The text and data that a set of registered ops calls for.

    *all_ops* fixes where each ops lives in emulated memory, so that the
    before and after states of a transition agree on addresses.
    """

    image: KernelImage
    ops: tuple[FtraceOps, ...]
    all_ops: tuple[FtraceOps, ...] = ()
    #: livepatch ops whose functions are in transition (``func->transition`` set, every
    #: task ``KLP_UNPATCHED``): the patch being enabled or disabled around this update
    klp_transition: frozenset[str] = frozenset()
    _slots: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        names = [o.name for o in self.ops]
        if len(set(names)) != len(names):
            raise ConfigError(f"ops: duplicate names in {names}")
        pool = list(self.all_ops) + [o for o in self.ops if o not in self.all_ops]
        for o in self.ops:
            for fn in (o.functions or frozenset()) | o.notrace:
                self.image.function(fn)  # ConfigError naming the choices
            if o.kind == "livepatch":
                for fn in o.functions:
                    if self.image.functions[fn].new_body is None:
                        raise ConfigError(f"ops {o.name!r} functions: {fn!r} has no replacement "
                                          "body; livepatch one of do_IRQ, __migrate_task, schedule")
        self.all_ops = tuple(pool)
        eq = self.image.equ
        word = eq.get("LONG_SIZE", 4)  # x86_64: 8-byte pointers and hash entries
        arena = self.image.sym("ftrace_arena")
        ops_end = arena + len(pool) * eq["OPS_SIZE"]
        hashes = ops_end
        for i, o in enumerate(pool):
            filt = None if o.functions is None else sorted(self.image.functions[f].site for f in o.functions)
            notr = sorted(self.image.functions[f].site for f in o.notrace)
            fa = 0
            if filt is not None:
                fa, hashes = hashes, hashes + word * (1 + len(filt))
            na, hashes = hashes, hashes + word * (1 + len(notr))
            self._slots[o.name] = (arena + i * eq["OPS_SIZE"], fa, filt, na, notr)
        if self.per_ops_trampolines and len(pool) > eq["TRAMP_SLOTS"]:
            raise ConfigError(f"ops: {len(pool)} ops; the emulated module area holds {eq['TRAMP_SLOTS']} trampolines")
        if hashes > self.image.sym("ftrace_arena_end"):
            raise ConfigError("ops: filter hashes too large for the emulated ftrace arena")

    # -- what the text should be ------------------------------------------------
    @property
    def per_ops_trampolines(self) -> bool:
        """x86_64: every registered ops has its own trampoline (``create_trampoline()`` runs
        under ``CONFIG_X86_64`` only, arch/x86/kernel/ftrace.c)."""
        return self.image.arch == "x86_64"

    def ops_for(self, fn: str) -> list[FtraceOps]:
        return [o for o in self.ops if o.traces(fn)]

    def trampoline_addr(self, ops: FtraceOps) -> int:
        """x86_64: where ``create_trampoline()`` put *ops*' trampoline (its module-area slot)."""
        return self.image.sym("ftrace_tramp_area") + self.all_ops.index(ops) * self.image.equ["TRAMP_SLOT"]

    def trampoline_ops(self, addr: int) -> FtraceOps | None:
        """x86_64: the ops whose trampoline starts at *addr*, or None."""
        for o in self.all_ops if self.per_ops_trampolines else ():
            if self.trampoline_addr(o) == addr:
                return o
        return None

    def trampoline_code(self, ops: FtraceOps) -> bytes:
        """x86_64 ``create_trampoline()`` + ``arch_ftrace_update_trampoline()`` for *ops*: a copy
        of ``ftrace_caller`` up to ``ftrace_epilogue`` (``ftrace_regs_caller`` up to
        ``ftrace_regs_caller_end`` for a SAVE_REGS ops), a ``jmp ftrace_epilogue``, the ops
        pointer; the op-pointer load rewritten to read that pointer and the call at
        ``ftrace_call`` / ``ftrace_regs_call`` pointed at ``ftrace_ops_get_func(ops)``.

        Trampolines in 6.x's layout (a kernel tree's ``ftrace_64.S`` with
        ``ftrace_caller_end``) are copied as 6.1's create_trampoline() copies
        them: up to ``ftrace_caller_end`` / ``ftrace_regs_caller_end``, then
        its return (``jmp __x86_return_thunk`` where the image has return
        thunks, else ``ret; int3``; ``RET_SIZE`` is 5 under
        ``CONFIG_RETPOLINE``), the ops pointer after it, and the 2-byte ``jnz``
        at ``ftrace_regs_caller_jmp`` (the direct-call test) made a NOP."""
        im, eq = self.image, self.image.equ
        regs = bool(ops.flags & eq["FTRACE_OPS_FL_SAVE_REGS"])
        v6 = "ftrace_caller_end" in im.symbols
        start, end, op_ptr, call = (("ftrace_regs_caller", "ftrace_regs_caller_end", "ftrace_regs_caller_op_ptr",
                                     "ftrace_regs_call") if regs else
                                    ("ftrace_caller", "ftrace_caller_end" if v6 else "ftrace_epilogue",
                                     "ftrace_caller_op_ptr", "ftrace_call"))
        base, size = self.trampoline_addr(ops), im.sym(end) - im.sym(start)
        code = bytearray(im.read(im.sym(start), size))
        jmp = base + size
        if not v6:
            code += b"\xe9" + ((im.sym("ftrace_epilogue") - (jmp + 5)) & 0xFFFFFFFF).to_bytes(4, "little")
        elif "__x86_return_thunk" in im.symbols:  # cpu_wants_rethunk_at(): X86_FEATURE_RETHUNK
            code += b"\xe9" + ((im.sym("__x86_return_thunk") - (jmp + 5)) & 0xFFFFFFFF).to_bytes(4, "little")
        else:
            code += b"\xc3\xcc\xcc\xcc\xcc"  # ret; int3, in RET_SIZE (5) bytes
        if regs and "ftrace_regs_caller_jmp" in im.symbols:  # direct calls (v5.5 on): never from a copy
            j = im.sym("ftrace_regs_caller_jmp") - im.sym(start)
            if code[j] != 0x75:  # WARN_ON in the kernel
                raise RuntimeError("ftrace_regs_caller_jmp: not the 2-byte jnz create_trampoline() expects")
            code[j:j + 2] = b"\x66\x90"  # x86_nops[2]
        ptr = jmp + 5
        code += self._slots[ops.name][0].to_bytes(8, "little")
        op = im.sym(op_ptr) - im.sym(start)
        if bytes(code[op:op + 3]) != b"\x48\x8b\x15":  # movq disp32(%rip), %rdx: WARN_ON in the kernel
            raise RuntimeError(f"{op_ptr}: not the op-pointer load create_trampoline() expects")
        code[op + 3:op + 7] = ((ptr - (base + op + 7)) & 0xFFFFFFFF).to_bytes(4, "little")
        c = im.sym(call) - im.sym(start)
        code[c:c + 5] = ftrace_call_replace(base + c, im.sym(ops.trampoline_func))
        if len(code) > eq["TRAMP_SLOT"]:
            raise RuntimeError(f"trampoline of {ops.name}: {len(code)} bytes, more than a slot")
        return bytes(code)

    def site_target(self, fn: str) -> str | None:
        """The symbol the site of *fn* calls, or None for the NOP; on x86_64 a site
        traced by one ops alone calls that ops' trampoline (``FTRACE_FL_TRAMP``,
        ``__ftrace_hash_rec_update()`` and ``ftrace_get_addr_new()``,
        kernel/trace/ftrace.c), named ``trampoline:<ops>``."""
        ops = self.ops_for(fn)
        if not ops:
            return None
        if self.per_ops_trampolines:
            if len(ops) == 1:
                return f"trampoline:{ops[0].name}"
        elif len(ops) == 1 and ops[0].trampoline:
            return "live_patch_trampoline"
        return "ftrace_regs_caller" if any(o.flags & EQU["FTRACE_OPS_FL_SAVE_REGS"] for o in ops) \
            else "ftrace_caller"

    def trace_function(self) -> str:
        """update_ftrace_function(): ftrace_stub, the one handler, or the list function.

        One ops is called directly unless it is DYNAMIC (or RCU):
        ``ftrace_ops_get_list_func()`` (kernel/trace/ftrace.c, v4.4-v5.x)
        returns ``ftrace_ops_list_func`` for it even when it is alone, so a
        lone livepatch already puts the list function in the shared
        trampolines' calls.
        """
        if not self.ops:
            return "ftrace_stub"
        if len(self.ops) == 1 and not self.ops[0].dynamic:
            return self.ops[0].handler
        return "ftrace_ops_list_func"

    def function_enabled(self) -> int:
        """``tr->function_enabled`` in this stable state: 1 while the tracer is registered."""
        return int(any(o.kind == "tracer" for o in self.ops))

    def function_trace_op(self) -> int:
        if len(self.ops) == 1:
            return self._slots[self.ops[0].name][0]
        return self.image.sym("ftrace_list_end")

    def target_addr(self, target: str) -> int:
        """The address of a :meth:`site_target` name."""
        if target.startswith("trampoline:"):
            return self.trampoline_addr(next(o for o in self.all_ops if o.name == target[len("trampoline:"):]))
        return self.image.sym(target)

    def site_bytes(self, fn: str) -> bytes:
        f = self.image.functions[fn]
        target = self.site_target(fn)
        return NOP5 if target is None else ftrace_call_replace(f.site, self.target_addr(target))

    def trampoline_bytes(self, func: str | None = None) -> dict[str, bytes]:
        func = func or self.trace_function()
        return {c: ftrace_call_replace(self.image.sym(c), self.image.sym(func)) for c in TRAMPOLINE_CALLS}

    def ops_list(self) -> list[int]:
        """Addresses of the registered ops, head first (add_ftrace_ops() pushes at the head)."""
        return [self._slots[o.name][0] for o in reversed(self.ops)]

    # -- writing it --------------------------------------------------------------
    def write_ops(self, machine) -> None:
        """Write every ops structure, hash and the livepatch table (not the list links)."""
        im = self.image
        eq = im.equ
        word = eq.get("LONG_SIZE", 4)  # x86_64: the high halves stay 0 (the image lies below 4 GiB)
        for o in self.all_ops:
            addr, fa, filt, na, notr = self._slots[o.name]
            for off, v in ((eq["OPS_FUNC"], im.sym(o.handler)), (eq["OPS_FLAGS"], o.flags),
                           (eq["OPS_FILTER"], fa), (eq["OPS_NOTRACE"], na), (eq["OPS_PRIVATE"], 0)):
                machine.write32(addr + off, v)
            if filt is not None:
                for i, v in enumerate([len(filt)] + filt):
                    machine.write32(fa + word * i, v)
            for i, v in enumerate([len(notr)] + notr):
                machine.write32(na + word * i, v)
            if self.per_ops_trampolines:  # made at registration, before any site calls it
                machine.write(self.trampoline_addr(o), self.trampoline_code(o))
        table, size = im.sym("klp_funcs"), eq["KLP_FUNC_SIZE"]
        funcs = sorted({(im.functions[f].site, im.functions[f].new_body, int(o.name in self.klp_transition))
                        for o in self.all_ops if o.kind == "livepatch" for f in o.functions})
        for i, (old, new, transition) in enumerate(funcs + [(0, 0, 0)]):
            machine.write32(table + size * i + eq["KLP_FUNC_OLD"], old)
            machine.write32(table + size * i + eq["KLP_FUNC_NEW"], new)
            machine.write32(table + size * i + eq["KLP_FUNC_TRANSITION"], transition)
        # klp_init_transition(): every task, idle tasks too, starts from the initial state;
        # outside a transition patch_state is KLP_UNDEFINED and the handler never reads it
        state = EQU["KLP_UNPATCHED"] if self.klp_transition else EQU["KLP_UNDEFINED"]
        for cpu in range(EQU["MAX_CPUS"]):
            machine.write32(im.sym("klp_patch_state") + 4 * cpu, state & 0xFFFFFFFF)

    def link_writes(self) -> list[DataWrite]:
        """The stores that make ftrace_ops_list hold exactly this state's ops."""
        im, out = self.image, []
        chain = self.ops_list() + [im.sym("ftrace_list_end")]
        names = {slot[0]: n for n, slot in self._slots.items()}
        # link from the tail so a concurrent reader never sees a dangling next
        for a, nxt in reversed(list(pairwise(chain))):
            out.append(DataWrite(f"{names[a]}.next", a + im.equ["OPS_NEXT"], nxt))
        out.append(DataWrite("ftrace_ops_list", im.sym("ftrace_ops_list"), chain[0]))
        return out

    def text(self) -> dict[int, tuple[str, bytes]]:
        """Every patchable instruction: address -> (name, the 5 bytes it should hold)."""
        out = {self.image.functions[fn].site: (fn, self.site_bytes(fn)) for fn in self.image.functions}
        for c, b in self.trampoline_bytes().items():
            out[self.image.sym(c)] = (c, b)
        return out

    def apply(self, machine) -> None:
        """Put the machine in this stable state at once (no patch protocol) and sync."""
        self.write_ops(machine)
        for w in self.link_writes():
            machine.write32(w.addr, w.value)
        machine.write32(self.image.sym("function_trace_op"), self.function_trace_op())
        machine.write32(self.image.sym("function_enabled"), self.function_enabled())
        for addr, (_, b) in self.text().items():
            machine.write(addr, b)
        machine.sync_core()


def plan_transition(before: FtraceState, after: FtraceState, per_site: bool = False):
    """The kernel's ordered list of changes from *before* to *after*.

    Each rule follows a kernel function (docs/KERNEL.md):

    * the tracer's own (un)registration is bracketed by
      ``tr->function_enabled = 0`` and, when it is added, ``= 1`` at the end
      (``tracing_start_function_trace()`` / ``tracing_stop_function_trace()``,
      kernel/trace/trace_functions.c);
    * ops being added are linked into the list first; ops being removed are
      unlinked first (``__register_ftrace_function()`` /
      ``__unregister_ftrace_function()`` run before ``ftrace_startup()`` /
      ``ftrace_shutdown()`` patch);
    * ``ftrace_modify_all_code()`` (kernel/trace/ftrace.c): when the trace
      function changes (``FTRACE_UPDATE_TRACE_FUNC``, set by
      ``ftrace_startup_enable()`` / ``ftrace_shutdown()`` only if
      ``ftrace_trace_function`` moved), ``ftrace_update_ftrace_func(ftrace_ops_list_func)``
      runs one breakpoint protocol on ``ftrace_call`` and one on
      ``ftrace_regs_call`` even when they already call the list function:
      x86's ``update_ftrace_func()`` (arch/x86/kernel/ftrace.c, v5.0-v5.5)
      copies the current bytes and never compares them with the new ones;
    * then every changed site, in one batch (``ftrace_replace_code()``) or
      one protocol per site with *per_site*;
    * then, if the final function is not the list function, publish
      ``function_trace_op``, ``ftrace_sync_ipi``, and update both
      trampoline calls to it (again one protocol each, unconditionally).
    """
    im = before.image
    steps: list = []
    kinds0 = {o.kind for o in before.ops}
    kinds1 = {o.kind for o in after.ops}
    tracer_moves = ("tracer" in kinds0) != ("tracer" in kinds1)
    if tracer_moves:  # tracing_{start,stop}_function_trace(): function_enabled = 0 first
        steps.append(DataWrite("function_enabled", im.sym("function_enabled"), 0))
    if set(after.ops) - set(before.ops) or set(before.ops) - set(after.ops):
        steps += after.link_writes()
    func0, func1 = before.trace_function(), after.trace_function()
    update = func0 != func1  # FTRACE_UPDATE_TRACE_FUNC
    cur = before.trampoline_bytes(func0)
    if update:
        for c, b in before.trampoline_bytes("ftrace_ops_list_func").items():
            # update_ftrace_func(): the protocol runs whether or not the bytes change
            steps.append(TextBatch(f"{c}:list", (TextChange(im.sym(c), cur[c], b, c),)))
            cur[c] = b
    site_changes = [TextChange(f.site, before.site_bytes(fn), after.site_bytes(fn), fn)
                    for fn, f in im.functions.items() if before.site_bytes(fn) != after.site_bytes(fn)]
    if per_site:
        steps += [TextBatch(f"site:{c.name}", (c,)) for c in site_changes]
    elif site_changes:
        steps.append(TextBatch("sites", tuple(site_changes)))
    final = after.trampoline_bytes(func1)
    # The list function ignores function_trace_op: publish it only for a single handler.
    if update and func1 != "ftrace_ops_list_func":
        steps.append(DataWrite("function_trace_op", im.sym("function_trace_op"), after.function_trace_op()))
        steps.append(Sync("ftrace_sync_ipi"))
        for c in TRAMPOLINE_CALLS:
            steps.append(TextBatch(f"{c}:final", (TextChange(im.sym(c), cur[c], final[c], c),)))
    if tracer_moves and "tracer" in kinds1:
        steps.append(DataWrite("function_enabled", im.sym("function_enabled"), 1))
    return steps
