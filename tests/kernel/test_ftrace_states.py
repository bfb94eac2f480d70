"""The stable-state table of docs/KERNEL.md §11-12, by executing every cell."""

import pytest

from workbench.kernel.ftrace import FtraceOps, FtraceState
from workbench.kernel.layout import EQU
from workbench.kernel.machine import Machine
from workbench.emulate.outcomes import observe
from workbench.kernel.ptrace import PtRegs
from workbench.emulate.watch import watch_call

LP = frozenset({"do_IRQ", "__migrate_task"})

# state -> function kind -> (handlers that run, body, trampoline entered)
# docs/KERNEL.md §11: one ops -> its handler directly; two -> ftrace_ops_list_func;
# livepatched sites call ftrace_regs_caller (or the per-ops trampoline alone);
# the list function skips livepatch when reached without regs (ftrace_caller).
TABLE = {
    "none": {"lp": ([], "old", None), "ord": ([], "old", None)},
    "tracer": {"lp": (["tracer"], "old", "ftrace_caller"), "ord": (["tracer"], "old", "ftrace_caller")},
    "livepatch": {"lp": (["livepatch"], "new", "live_patch_trampoline"), "ord": ([], "old", None)},
    "livepatch-shared": {"lp": (["livepatch"], "new", "ftrace_regs_caller"), "ord": ([], "old", None)},
    "livepatch,tracer": {"lp": (["livepatch", "tracer"], "new", "ftrace_regs_caller"),
                         "ord": (["tracer"], "old", "ftrace_caller")},
}


@pytest.mark.parametrize("ops", list(TABLE))
@pytest.mark.parametrize("function", ["do_IRQ", "__migrate_task", "fn_00005"])
def test_state_table(ops, function):
    r = watch_call(function, ops)
    handlers, body, tramp = TABLE[ops]["lp" if function in LP else "ord"]
    assert r["crash"] is None
    assert r["handlers"] == handlers
    assert r["body"] == body
    assert r["corrupt"] == 0
    if tramp:
        assert r["path"][1] == tramp
    else:
        assert r["path"] == [function]
    if "tracer" in handlers:
        rec = r["tracer_records"]
        assert len(rec) == 1 and rec[0]["ip"] == r["site"]["address"] and rec[0]["cpu"] == 0


def test_list_function_runs_livepatch_before_tracer_order_free():
    r = watch_call("do_IRQ", "livepatch,tracer")
    # both handlers through the list function, then the new body
    assert r["path"][-1] == "klp_new_do_IRQ"
    assert "ftrace_ops_list_func" in r["path"]


def _probe_machine(image, fn):
    probe = FtraceOps("probe", "probe", frozenset({fn}))
    m = Machine(image, 1)
    FtraceState(image, (probe,)).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(image.functions[fn].site, 0)])
    cpu.run(10**5, until=image.sym("workload_call"))
    return m, cpu


def test_handler_sees_the_callers_pt_regs(image):
    m, cpu = _probe_machine(image, "fn_00002")
    cpu.set_reg("eax", 0x12345678)
    cpu.set_reg("ecx", 0xCAFE)
    cpu.set_reg("eflags", 0x2 | 0x200 | 0x40 | 0x1)  # IF, ZF, CF
    cpu.run(10**5, until=image.sym("workload_return"))
    regs = PtRegs(m, image.sym("regs_probe"))
    assert m.read32(image.sym("regs_probe_calls")) == 1
    assert regs.ip == image.functions["fn_00002"].site + 5  # the return into the function
    assert regs.ax == 0x12345678 and regs.cx == 0xCAFE
    assert regs.flags & 0xFFF == 0x243
    assert regs.cs == EQU["__KERNEL_CS"] and regs.orig_ax == 0


def test_livepatch_returns_through_new_body_with_caller_intact(image):
    from workbench.emulate.watch import make_ops

    m = Machine(image, 1)
    FtraceState(image, make_ops("livepatch")).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(image.functions["do_IRQ"].site, 0)])
    cpu.run(10**5, until=image.sym("workload_call"))
    before = {r: cpu.reg(r) for r in ("esp", "ebx", "esi", "edi", "ebp")}
    cpu.run(10**5, until=image.sym("workload_return"))
    assert {r: cpu.reg(r) for r in before} == before
    obs = observe(cpu, (cpu.run(10**5, until=image.sym("workload_logged")), cpu.drain())[1][0])
    assert obs.body == "new" and obs.livepatch_runs == 1 and obs.corrupt == 0


def test_tracer_evidence_is_the_store_not_the_call(image):
    """Turning the tracer's ip store into NOPs must make the tracer vanish."""
    m = Machine(image, 1)
    FtraceState(image, (FtraceOps("tracer", "tracer"),)).apply(m)
    start = image.sym("function_trace_call")
    insns = image.disassemble(image.read(start, image.sizes["function_trace_call"]), start)
    store = next(i for i in insns if i.mnemonic == "movl" and i.op_str == "%eax, (%ecx)")
    m.write(store.address, b"\x90" * store.size)
    m.sync_core()
    cpu = m.cpus[0]
    cpu.reset([(image.functions["fn_00001"].site, 0)])
    cpu.run(10**5, until=image.sym("workload_logged"))
    obs = observe(cpu, cpu.drain()[0])
    assert obs.tracer_runs == 0 and "tracer" not in obs.handlers
