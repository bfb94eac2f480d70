"""A livepatch loses nothing while it is itself being registered or removed (docs/KERNEL.md §13).

``__klp_enable_patch()`` sets every task ``KLP_UNPATCHED`` and every
``func->transition`` before ``klp_patch_object()`` registers the ftrace ops;
``klp_complete_transition()`` unregisters them while ``transition`` is still
set and every task is ``KLP_UNPATCHED``. ``klp_ftrace_handler()`` then leaves
``regs->ip`` alone, so the original body runs, exactly what a call that
missed the handler runs. ``klp_patch_func()`` registers one ops per function.
"""

import pytest

from workbench.emulate.explore import explore, outcome_table
from workbench.emulate.scenario import load_scenario
from workbench.kernel.ftrace import FtraceOps, FtraceState, TextBatch
from workbench.kernel.layout import EQU
from workbench.kernel.machine import Machine


def _call(image, state, fn="do_IRQ", patch_state=None):
    """Run one call of *fn* with *state* applied; the body it ran."""
    m = Machine(image, 1)
    state.apply(m)
    if patch_state is not None:
        m.write32(image.sym("klp_patch_state"), patch_state)
    cpu = m.cpus[0]
    cpu.reset([(image.functions[fn].site, 0)])
    cpu.run(10**6, until=image.sym("workload_logged"))
    rec = cpu.drain()[0]
    return {EQU["BODY_OLD"]: "old", EQU["BODY_NEW"]: "new"}[rec["body"] & 0xFF]


def test_the_handler_leaves_an_unpatched_task_on_the_old_body(image):
    lp = FtraceOps("lp", "livepatch", frozenset({"do_IRQ"}), trampoline=True)
    assert _call(image, FtraceState(image, (lp,))) == "new"  # transition over: redirected
    moving = FtraceState(image, (lp,), klp_transition=frozenset({"lp"}))
    assert _call(image, moving) == "old"  # klp_init_transition(): every task KLP_UNPATCHED
    assert _call(image, moving, patch_state=EQU["KLP_PATCHED"]) == "new"  # a task already switched


@pytest.mark.parametrize("scenario", ["tracer_add_livepatch", "tracer_remove_livepatch"])
@pytest.mark.parametrize("strategy", ["skip", "emulate_old"])
def test_registration_and_removal_drop_no_livepatch_call(scenario, strategy):
    calls, _ = explore(scenario, strategies=strategy, entry="v5.3", progress=False)
    t = outcome_table(calls)
    assert t.trapped_placements.sum() > 0
    assert (t.dropped_livepatch == 0).all()  # was 1 per trapped live-patched call


def test_a_transitioned_livepatch_still_loses_calls_under_skip():
    calls, _ = explore("seed", strategies="skip", entry="v5.3", progress=False)
    t = outcome_table(calls)
    lp = t[t.site_kind == "livepatched"]
    assert len(lp) and (lp.dropped_livepatch == 1).all()


def test_one_ops_per_patched_function(image):
    sc = load_scenario("tracer_add_livepatch")
    lps = [o for o in sc.ops if o.kind == "livepatch"]
    assert [sorted(o.functions) for o in lps] == [["do_IRQ"], ["__migrate_task"]]
    assert sc.klp_transition() == {o.name for o in lps}
    assert len(sc.updates(image)) == 2  # one ftrace_startup() per ops
    batches = [s for s in sc.plan(image) if isinstance(s, TextBatch)]
    assert [(b.name, [c.name for c in b.changes]) for b in batches] == [
        ("ftrace_call:list", ["ftrace_call"]), ("ftrace_regs_call:list", ["ftrace_regs_call"]),
        ("sites", ["do_IRQ"]), ("sites", ["__migrate_task"])]
    # removal: two updates, only the second (the trace function moves back) runs the
    # protocol on the trampoline calls, with unchanged bytes first
    rm = [s for s in load_scenario("tracer_remove_livepatch").plan(image) if isinstance(s, TextBatch)]
    assert [b.name for b in rm] == ["sites", "ftrace_call:list", "ftrace_regs_call:list", "sites",
                                    "ftrace_call:final", "ftrace_regs_call:final"]
    assert [c.name for c in rm[0].changes] == ["do_IRQ"] and [c.name for c in rm[3].changes] == ["__migrate_task"]


def test_ipmodify_is_bit_12():
    assert EQU["FTRACE_OPS_FL_IPMODIFY"] == 1 << 12  # include/linux/ftrace.h; 1 << 13 is PID
