"""The emulated x86_64 kernel: what x86_64 really has, checked by executing it.

* per-ops trampolines (create_trampoline(), FTRACE_FL_TRAMP): in
  tracer_add_livepatch the ordinary sites call the tracer's own trampoline,
  so under ``skip`` no tracer call of an ordinary site is lost through the
  shared ftrace_call (on i386 they are);
* the seed on x86_64 under ``skip``: a trapped call of a live-patched
  do_IRQ runs the old body (a violation, the livepatch lost);
* the int3 entry: emulating a call to ftrace_regs_caller (9e298e860408)
  with the v5.1 entry pushes the return address onto regs->ss and the iretq
  faults (a recorded crash); with v5.2's gap (2700fefdb2d9) every trapped
  call completes and runs what the new text runs;
* scenario gating: a livepatch on i386 is refused unless it is the mail's sketch.
"""

import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.explore import explore, load_outcome_table
from workbench.emulate.run import Run
from workbench.emulate.scenario import load_scenario
from workbench.kernel.ftrace import FtraceOps, FtraceState
from workbench.kernel.image import build_image
from workbench.kernel.int3 import int3_emulate_call
from workbench.kernel.machine import Machine
from workbench.kernel.ptrace import PtRegs
from workbench.kernel.layout import EQU_X86_64, pt_offset


def _ordinary_ftrace_call_drops(arch):
    entry = "v5.2" if arch == "x86_64" else "v5.3"
    calls, _ = explore("tracer_add_livepatch", strategies="skip", entry=entry, arch=arch, progress=False)
    t = calls[calls.trapped & (calls.site_kind == "ordinary")]
    return calls, float((t.dropped_tracer * t.weight).sum())


def test_x86_64_ordinary_sites_call_the_tracers_trampoline_and_lose_nothing_under_skip():
    calls, lost = _ordinary_ftrace_call_drops("x86_64")
    assert lost == 0
    assert not (calls.trapped & (calls.trap_site == "ftrace_call") & (calls.site_kind == "ordinary")).any()
    # on i386 the same question loses tracer calls of ordinary sites through ftrace_call
    i386_calls, i386_lost = _ordinary_ftrace_call_drops("i386")
    assert i386_lost > 0
    assert (i386_calls.trapped & (i386_calls.trap_site == "ftrace_call")).any()


def test_routing_follows_ftrace_fl_tramp():
    im = build_image(8, "x86_64")
    tr, lp = FtraceOps("tracer", "tracer"), FtraceOps("lp[do_IRQ]", "livepatch", frozenset({"do_IRQ"}))
    both = FtraceState(im, (tr, lp), (tr, lp))
    assert both.site_target("fn_00000") == "trampoline:tracer"
    assert both.site_target("do_IRQ") == "ftrace_regs_caller"  # two ops: the shared regs caller
    assert both.trace_function() == "ftrace_ops_list_func"
    alone = FtraceState(im, (lp,), (tr, lp))
    assert alone.site_target("do_IRQ") == "trampoline:lp[do_IRQ]"
    # the trampolines are copies of the shared ones with the ops pointer and call filled in
    code = alone.trampoline_code(lp)
    start = im.sym("ftrace_regs_caller")
    size = im.sym("ftrace_regs_caller_end") - start
    call = im.sym("ftrace_regs_call") - start
    assert code[:call] != im.read(start, call)  # the op-pointer load reads the trampoline's own word
    assert code[call + 5:size] == im.read(start + call + 5, size - call - 5)
    base = alone.trampoline_addr(lp)
    assert int.from_bytes(code[call + 1:call + 5], "little", signed=True) + base + call + 5 \
        == im.sym("ftrace_ops_assist_func")  # klp's ops is not RECURSION_SAFE
    assert int.from_bytes(code[-8:], "little") == alone._slots[lp.name][0]  # noqa: SLF001
    tcode = alone.trampoline_code(tr)
    tcall = im.sym("ftrace_call") - im.sym("ftrace_caller")
    assert int.from_bytes(tcode[tcall + 1:tcall + 5], "little", signed=True) + alone.trampoline_addr(tr) \
        + tcall + 5 == im.sym("function_trace_call")


@pytest.mark.parametrize("ops_names,fn,want", [
    (("tracer",), "fn_00001", (1, 0, 0x101)),
    (("lp[do_IRQ]",), "do_IRQ", (0, 1, 0x102)),
    (("tracer", "lp[do_IRQ]"), "do_IRQ", (1, 1, 0x102)),
    (("probe",), "schedule", (0, 0, 0x301)),
])
def test_stable_states_run_the_handlers(ops_names, fn, want):
    im = build_image(8, "x86_64")
    pool = {"tracer": FtraceOps("tracer", "tracer"),
            "lp[do_IRQ]": FtraceOps("lp[do_IRQ]", "livepatch", frozenset({"do_IRQ"})),
            "probe": FtraceOps("probe", "probe", frozenset({"schedule"}))}
    st = FtraceState(im, tuple(pool[n] for n in ops_names), tuple(pool.values()))
    with Machine(im, 1) as m:
        st.apply(m)
        cpu = m.cpus[0]
        cpu.reset([(im.functions[fn].site, 0)])
        assert cpu.run(5000, until=im.sym("workload_logged"))
        rec = cpu.drain()[0]
        rb, klp, body = want
        assert (rec["rb1"] - rec["rb0"], rec["klp"], rec["corrupt"]) == (rb, klp, 0)
        if fn == "schedule":
            assert rec["probe"] == 1
            regs = m.read(im.sym("regs_probe"), EQU_X86_64["PT_SIZE"])
            ip = int.from_bytes(regs[pt_offset("ip", "x86_64"):][:8], "little")
            assert ip == im.functions["schedule"].site + 5  # regs->ip: the return into the function
            cs = int.from_bytes(regs[pt_offset("cs", "x86_64"):][:8], "little")
            assert cs == EQU_X86_64["__KERNEL_CS"]
        else:
            assert rec["body"] & 0xFF == body & 0xFF


def test_x86_64_seed_under_skip_runs_the_live_patched_do_irqs_old_body():
    calls, _ = explore("seed", strategies="skip", entry="v5.2", arch="x86_64", functions=["do_IRQ"], progress=False)
    t = calls[calls.trapped]
    assert len(t) and (t.body == "old").all() and (t.violation == 1).all() and (t.dropped_livepatch == 1).all()
    # the same placements under v5.6's emulate_new run the new body
    calls, _ = explore("seed", strategies="emulate_new", entry="v5.2", arch="x86_64", functions=["do_IRQ"],
                       progress=False)
    t = calls[calls.trapped]
    assert len(t) and (t.body == "new").all() and (t.violation == 0).all() and not t.crash.any()


def test_emulating_the_regs_caller_needs_v52s_gap():
    old, _ = explore("seed", strategies="emulate_regs_caller", entry="v5.1", arch="x86_64", progress=False)
    t = old[old.trapped]
    assert len(t) and t.crash.all() and not t.deadlock.any()
    # the entry's iretq, with regs->ss overwritten by the pushed return address (site + 5)
    assert t.crash_reason.str.startswith("general protection fault at iretq").all()
    new, _ = explore("seed", strategies="emulate_regs_caller", entry="v5.2", arch="x86_64", progress=False)
    t = new[new.trapped]
    assert len(t) and not t.crash.any() and (t.violation == 0).all()


def test_the_v51_push_lands_on_regs_ss_only_when_rsp_was_16_byte_aligned():
    """The kernel's 8-byte stack alignment lets a function be entered at either parity: at
    the other one the pushed return address fills the alignment slot above the frame."""
    results = {}
    for skew in (0, 8):
        r = Run("seed", "emulate_regs_caller", "v5.1", arch="x86_64")
        try:
            r.reset()
            while r.steps[r.phase].name != "sites:sync1":
                r.apply_step()  # the int3 is on every changed site
            cpu, im = r.machine.cpus[0], r.image
            cpu.reset([r.call_entry("fn_00001")])
            cpu.set_reg("rsp", cpu.stack_top - 8 - skew)
            ok = cpu.run(20000, until=im.sym("workload_logged"))
            results[skew] = ok and cpu.drain()[0]["corrupt"] == 0
        finally:
            r.close()
    assert results == {0: False, 8: True}


def test_int3_emulate_push_acts_on_the_64bit_pt_regs():
    im = build_image(8, "x86_64")
    with Machine(im, 1, "v5.2") as m:
        cpu = m.cpus[0]
        at = cpu.stack_top - 512
        regs = PtRegs(m, at)
        regs.sp = cpu.stack_top - 64
        regs.ip = im.functions["do_IRQ"].site + 1
        int3_emulate_call(regs, im.sym("ftrace_regs_caller"))
        assert regs.ip == im.sym("ftrace_regs_caller")
        assert regs.sp == cpu.stack_top - 72
        assert m.kernel_read64(regs.sp) == im.functions["do_IRQ"].site + 5
        assert m.read32(at + pt_offset("sp", "x86_64") + 4) == 0  # an 8-byte field


def test_scenario_gating():
    sc = load_scenario("seed")
    assert sc.check_arch("x86_64") == "x86_64" and sc.check_arch("i386") == "i386"  # the named sketch
    assert sc.kernel_on("i386") == "i386 sketch" and sc.kernel_on("x86_64") == "real x86_64"
    assert load_scenario("tracer_add_probe").runs_on() == ("i386", "x86_64")
    with pytest.raises(ConfigError, match="arch: unknown value 'arm64'"):
        sc.check_arch("arm64")


def test_an_i386_livepatch_that_is_not_the_sketch_is_refused(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text('[ops.lp]\nkind = "livepatch"\nfunctions = ["do_IRQ"]\n[ops.t]\nkind = "tracer"\n'
                 '[transition]\nbefore = ["t"]\nafter = ["t", "lp"]\n')
    with pytest.raises(ConfigError, match=r"^scenario mine: cannot run on arch i386 \(it needs a livepatch"):
        explore(str(p), strategies="skip", arch="i386", progress=False)
    with pytest.raises(ConfigError, match="cannot run on arch i386"):
        Run(str(p), "skip")
    with pytest.raises(ConfigError, match="cannot run on arch i386"):
        load_outcome_table(str(p), progress=False)
    calls, _ = explore(str(p), strategies="skip", arch="x86_64", progress=False)  # a real x86_64 kernel has it
    assert len(calls)
    p.write_text('arches = ["i386"]\n[ops.lp]\nkind = "livepatch"\nfunctions = ["do_IRQ"]\n'
                 '[transition]\nbefore = []\nafter = ["lp"]\n')
    with pytest.raises(ConfigError, match="arches names i386, but a livepatch"):
        load_scenario(str(p))


def test_entries_are_the_arches_own():
    with pytest.raises(ConfigError, match=r"entry: unknown value 'v5.3'; choose from v5.1, v5.2"):
        Run("seed", "skip", "v5.3", arch="x86_64")
    with pytest.raises(ConfigError, match=r"entry: unknown value 'v5.2'; choose from v5.1, v5.3"):
        explore("seed", strategies="skip", entry="v5.2", progress=False)
    assert Run("tracer_add_probe", "skip", arch="x86_64").entry == "v5.2"


def test_x86_64_outcome_table_is_cached_with_its_arch(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    t = load_outcome_table("tracer_add_probe", "v5.1", progress=False, arch="x86_64")
    assert set(t.arch) == {"x86_64"} and set(t.entry) == {"v5.1"}
    files = list((tmp_path / "cache" / "outcomes").rglob("*.parquet"))
    assert [f.name for f in files] == ["tracer_add_probe_x86_64_v5.1.parquet"]
    again = load_outcome_table("tracer_add_probe", "v5.1", progress=False, arch="x86_64")
    assert again.equals(t)
