"""The kernel's own rules, each checked by executing it (issue 8; docs/KERNEL.md).

* function_enabled: the tracer's own (un)registration drops nothing
  (kernel/trace/trace_functions.c); tracer misses while it keeps running do.
* ftrace_ops_get_list_func(): a lone DYNAMIC (livepatch) ops is reached
  through ftrace_ops_list_func; update_ftrace_func() runs the breakpoint
  protocol on the trampoline calls even when their bytes stay the same.
* calling contexts: do_IRQ runs with IF = 0; spin there never lets the
  patcher's sync IPI in: a deadlock, recorded as an outcome.
* the oracle checks every tracer record a call wrote.
"""

import subprocess
import sys

import numpy as np
import pytest

from workbench.emulate.explore import explore, outcome_table
from workbench.emulate.run import Run
from workbench.emulate.outcomes import classify, observe
from workbench.emulate.scenario import load_scenario
from workbench.emulate.watch import watch_call
from workbench.kernel.ftrace import FtraceOps, FtraceState, TextBatch, ftrace_call_replace
from workbench.kernel.layout import EQU
from workbench.kernel.machine import Machine
from workbench.kernel.text_poke import INT3_INSN_OPCODE

LP = frozenset({"do_IRQ", "__migrate_task"})


def _per_call(table, strategy):
    t = table[table.strategy == strategy]
    n = t.trapped_placements.sum()
    return {c: float((t[c] * t.trapped_placements).sum() / n) for c in
            ("violation", "dropped_tracer", "dropped_livepatch", "crash", "deadlock")}, int(n)


# -- 1. function_enabled ------------------------------------------------------------------

def test_the_tracers_own_registration_drops_nothing():
    calls, _ = explore("seed", strategies="skip", entry="v5.3", progress=False)
    means, n = _per_call(outcome_table(calls), "skip")
    assert n > 0
    assert means["dropped_tracer"] == 0  # was 1 per trapped call before function_enabled
    assert means["dropped_livepatch"] > 0  # the livepatch ran before and after: its misses count


@pytest.mark.parametrize("scenario", ["tracer_add_livepatch", "tracer_remove_livepatch", "tracer_add_probe"])
def test_a_running_tracer_really_drops_under_skip(scenario):
    calls, _ = explore(scenario, strategies="skip", entry="v5.3", progress=False)
    t = outcome_table(calls)
    assert len(t) and (t.dropped_tracer == 1).all()
    new, _ = explore(scenario, strategies="emulate_new", entry="v5.3", progress=False)
    assert (outcome_table(new).dropped_tracer == 0).all()


def test_function_enabled_brackets_registration(image):
    sc = load_scenario("seed")
    plan = sc.plan(image)
    assert plan[0].name == "function_enabled" and plan[0].value == 0
    assert plan[-1].name == "function_enabled" and plan[-1].value == 1
    rev = load_scenario("seed_reverse").plan(image)
    assert rev[0].name == "function_enabled" and rev[0].value == 0
    assert all(getattr(s, "name", "") != "function_enabled" for s in rev[1:])
    running = load_scenario("tracer_add_livepatch").plan(image)
    assert all(getattr(s, "name", "") != "function_enabled" for s in running)


# -- 5. the ftrace state machine -------------------------------------------------------------

def test_a_lone_livepatch_calls_the_list_function(image):
    lp = FtraceOps("livepatch", "livepatch", LP)
    st = FtraceState(image, (lp,))
    assert st.trace_function() == "ftrace_ops_list_func"
    b = st.trampoline_bytes()
    for c in ("ftrace_call", "ftrace_regs_call"):
        assert b[c] == ftrace_call_replace(image.sym(c), image.sym("ftrace_ops_list_func"))
    r = watch_call("do_IRQ", "livepatch-shared")
    assert r["path"][:3] == ["do_IRQ", "ftrace_regs_caller", "ftrace_ops_list_func"]
    assert r["handlers"] == ["livepatch"] and r["body"] == "new"
    # a static SAVE_REGS probe alone is called directly
    probe = FtraceState(image, (FtraceOps("probe", "probe", LP),))
    assert probe.trace_function() == "regs_probe_handler"


def test_adding_the_tracer_to_a_livepatch_changes_no_trampoline(image):
    names = [s.name for s in load_scenario("seed").plan(image) if isinstance(s, TextBatch)]
    assert names == ["sites"]
    names = [s.name for s in load_scenario("seed_reverse").plan(image) if isinstance(s, TextBatch)]
    assert names == ["sites"]


def test_update_ftrace_func_arms_both_trampoline_calls_even_unchanged(image):
    plan = load_scenario("tracer_remove_livepatch").plan(image)
    lists = [s for s in plan if isinstance(s, TextBatch) and s.name.endswith(":list")]
    assert [b.name for b in lists] == ["ftrace_call:list", "ftrace_regs_call:list"]
    assert all(c.old == c.new for b in lists for c in b.changes)  # the bytes do not change
    run = Run("tracer_remove_livepatch", "skip")
    run.reset()
    armed = set()
    while run.phase < len(run.steps):
        run.apply_step()
        for c in ("ftrace_call", "ftrace_regs_call"):
            if run.machine.read(image.sym(c), 1)[0] == INT3_INSN_OPCODE:
                armed.add(c)
    assert armed == {"ftrace_call", "ftrace_regs_call"}


def test_probe_scenario_misses_are_violations_not_tracer_drops():
    calls, _ = explore("shared_regs_caller", strategies="skip", entry="v5.3", progress=False)
    t = outcome_table(calls)
    regs = t[t.trap_site == "ftrace_regs_call"]
    assert len(regs) and (regs.violation == 1).all()  # the probe both instructions run
    assert (t.dropped_tracer == 0).all() and (t.dropped_livepatch == 0).all()


# -- 2. calling contexts and deadlock -------------------------------------------------------

def test_spin_in_do_irq_deadlocks_the_patch():
    calls, _ = explore("seed", strategies="spin", entry="v5.3", functions=["do_IRQ"], progress=False)
    trapped = calls[calls.trapped]
    assert len(trapped) > 0 and not trapped.crash.any()
    # a trap with a sync still to come (int3, sync1, tail phases) never lets it in
    step = trapped.trap_phase.str.rsplit(":", n=1).str[-1]
    before_sync2 = step.isin(["int3", "sync1", "tail"])
    assert before_sync2.any() and trapped[before_sync2].deadlock.all()
    assert "sync IPI never lands" in trapped[before_sync2].crash_reason.iloc[0]
    # after sync2 only the first-byte write is left, which needs no IPI: iret
    # refetches the site and the CPU runs on
    assert (~before_sync2).any() and not trapped[~before_sync2].deadlock.any()


def test_spin_in_process_context_does_not_deadlock(tmp_path):
    text = (load_scenario("seed").ops, )
    p = tmp_path / "seed_process.toml"
    src = open(load_scenario.__globals__["SCENARIO_DIR"] / "seed.toml").read()
    p.write_text(src + '\n[context]\ndo_IRQ = "process"\n')
    calls, _ = explore(str(p), strategies="spin", entry="v5.3", functions=["do_IRQ"], progress=False)
    trapped = calls[calls.trapped]
    assert len(trapped) > 0 and not trapped.deadlock.any() and not trapped.crash.any()
    assert text  # the named scenario is untouched


def test_do_irq_runs_with_interrupts_off(image):
    run = Run("seed", "skip")
    run.reset()
    cpu = run.machine.cpus[0]
    cpu.reset([run.call_entry("do_IRQ")])
    cpu.run(10**4, until=image.functions["do_IRQ"].site)
    assert not cpu.reg("eflags") & (1 << 9)
    cpu.reset([run.call_entry("schedule")])
    cpu.run(10**4, until=image.functions["schedule"].site)
    assert cpu.reg("eflags") & (1 << 9)


def test_unknown_context_is_one_line_exit_2(tmp_path):
    p = tmp_path / "ctx.toml"
    src = open(load_scenario.__globals__["SCENARIO_DIR"] / "seed.toml").read()
    p.write_text(src + '\n[context]\ndo_IRQ = "softirq"\n')
    r = subprocess.run([sys.executable, "-m", "workbench", "explore", "--scenario", str(p)],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert "context.do_IRQ: unknown value 'softirq'; choose from process, irq_off, interrupt" in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


# -- 7. a stricter oracle ----------------------------------------------------------------------

def test_a_tracer_record_with_a_wrong_ip_is_spurious(image):
    m = Machine(image, 1)
    FtraceState(image, (FtraceOps("tracer", "tracer"),)).apply(m)
    cpu = m.cpus[0]
    cpu.reset([(image.functions["fn_00001"].site, 0)])
    cpu.run(10**4, until=image.sym("workload_logged"))
    rec = cpu.drain()[0]
    good = observe(cpu, rec)
    assert good.tracer_runs == 1 and good.bogus_records == 0
    # a handler that also traced a call which did not happen (wrong ip)
    slot = cpu.rb + EQU["RB_RECS"] + ((rec["rb1"] % EQU["RB_N"]) << EQU["RB_SHIFT"])
    m.write(slot, np.array([image.functions["fn_00002"].site, image.sym("workload_return"), 0, 0],
                           dtype=np.uint32).tobytes())
    bad = observe(cpu, dict(rec, rb1=rec["rb1"] + 1))
    assert bad.tracer_runs == 1 and bad.bogus_records == 1
    t = frozenset({"tracer"})
    assert classify(good, t, t, t)["spurious"] == 0
    assert classify(bad, t, t, t)["spurious"] == 1


def test_a_broken_tracer_cannot_lower_its_own_expectation(image):
    """7b: expected handlers come from reference runs, checked against the state table."""
    from workbench.emulate.oracle import OracleMismatch, predicted_handlers

    run = Run("tracer_add_livepatch", "skip")
    step = next(i for i, s in enumerate(run.steps) if s.name == "sites:int3") + 1
    site = image.functions["do_IRQ"].site
    change = run._change_at(step, site)
    assert run.expected(step, "do_IRQ", (site, change.old)) == frozenset({"tracer"})
    # the same run with a tracer that returns at once (its first byte a ret)
    broken = Run("tracer_add_livepatch", "skip")
    mem = broken.ref._pristine.copy()
    mem[image.sym("function_trace_call") - image.base] = 0xC3
    broken.ref._pristine = mem
    with pytest.raises(OracleMismatch, match="state table says"):
        broken.expected(step, "do_IRQ", (site, change.old))
    # the table itself, on a stable state: livepatch + tracer, do_IRQ through the list function
    m = Machine(image, 1)
    st = FtraceState(image, (FtraceOps("livepatch", "livepatch", LP), FtraceOps("tracer", "tracer")))
    st.apply(m)
    assert predicted_handlers(m, st, "do_IRQ") == frozenset({"livepatch", "tracer"})
    assert predicted_handlers(m, st, "fn_00003") == frozenset({"tracer"})
    m.write32(image.sym("function_enabled"), 0)
    assert predicted_handlers(m, st, "fn_00003") == frozenset()
