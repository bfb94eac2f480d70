"""Exploration shortcuts give what the long way gives.

The outcome-identity fixture compares whole explorations with the engine
before the speed work; these isolate each shortcut against its own long
way, in the same engine.
"""

import pytest

import workbench.emulate.exhaustive as ex
from workbench.emulate.explore import explore
from workbench.emulate.run import Run
from workbench.kernel.machine import Cpu


@pytest.mark.parametrize("scenario, entry", [("seed", "v5.3"), ("seed", "v5.1"), ("tracer_add_livepatch", "v5.3")])
def test_placements_started_at_clean_cuts_equal_placements_started_at_the_call(monkeypatch, scenario, entry):
    """Every strategy's calls frame is the same whether a placement's run to its
    cut starts from an earlier placement's clean cut or from the call."""
    used = []
    clean_cuts = ex.clean_cuts

    def counted(*args):
        got = clean_cuts(*args)
        used.append(len(got))
        return got

    monkeypatch.setattr(ex, "clean_cuts", counted)
    short, _ = explore(scenario, strategies="all", entry=entry, progress=False)
    assert sum(used) > 100  # the shortcut was taken (spin alone has hundreds of clean cuts)
    monkeypatch.setattr(ex, "clean_cuts", lambda *args: set())
    long, _ = explore(scenario, strategies="all", entry=entry, progress=False)
    assert short.equals(long)


def test_spin_refetches_put_off_equal_refetches_done(monkeypatch):
    """spin's calls frames, exhaustive and random on several CPUs, are the same
    when every refetch drops the site's translations at once."""
    frames = []
    for _ in range(2):
        frames.append((explore("seed", strategies="spin", entry="v5.3", progress=False)[0],
                       explore("seed", strategies="spin", entry="v5.3", mode="random", cpus=3, schedules=3,
                               seed=5, progress=False)[0]))
        monkeypatch.setattr(Cpu, "refetch", lambda self, lo, hi: self.sync_core(lo, hi))
    assert frames[0][0].equals(frames[1][0]) and frames[0][1].equals(frames[1][1])


def test_runs_of_one_patch_share_their_reference_runs():
    a = Run("seed", "skip")
    b = Run(a.scenario, "emulate_new", references=a)
    assert b.ref is a.ref
    assert b.expected(3, "do_IRQ") == a.expected(3, "do_IRQ") == Run("seed", "emulate_new").expected(3, "do_IRQ")
    with pytest.raises(ValueError, match="references"):
        Run(a.scenario, "stop_machine", references=a)  # another poke method: other steps
    with pytest.raises(ValueError, match="references"):
        Run("seed", "emulate_new", references=a)  # a scenario loaded again is another object
