"""The simulator's update plan: the kernel-ordered steps of a scenario's ftrace updates.

Derived from the emulator's own plan (``workbench.kernel.ftrace.plan_transition``,
one ftrace update per ops registered), so the two never patch in different
orders; docs/RACE.md "The patch timeline" and "Batches as the kernel cuts them".
"""

from __future__ import annotations

from dataclasses import dataclass

from workbench.base.version import emulator_version
from workbench.emulate.scenario import load_scenario
from workbench.kernel.ftrace import Sync, TextBatch, plan_transition
from workbench.kernel.image import build_image
from workbench.race.workload import SITE_KINDS

__all__ = ["PLANS", "Stage", "TP_VEC_MAX", "derive_plan"]

#: sites per breakpoint batch from v5.6 on: ``PAGE_SIZE / sizeof(struct text_poke_loc)``
#: = 4096 / 16 (derived in docs/RACE.md "Batches as the kernel cuts them")
TP_VEC_MAX = 4096 // 16


@dataclass(frozen=True)
class Stage:
    """One step of a scenario's ordered patch plan.

    ``target`` is ``ftrace_call`` / ``ftrace_regs_call`` (one trampoline call
    rewritten; ``kinds`` = site kinds routed through that trampoline then),
    ``sites`` (``kinds`` = site kinds whose call sites change) or ``publish``
    (one sync round after publishing the ops pointer, no text change).
    ``functions``: the live-patched functions the step involves (routed
    through the trampoline, or whose sites change); with one ftrace update
    per livepatch ops (docs/KERNEL.md §2a) a step can involve only some.
    """

    target: str
    kinds: tuple = ()
    functions: tuple = ()


class _Plans(dict):
    """Ordered plans per (scenario, arch), derived once from the emulator's own
    kernel-ordered plan (:func:`derive_plan`), so the simulator and the
    emulator can never patch in different orders. A bare scenario name is
    the i386 plan."""

    version = None  #: the emulator version the plans were derived from

    def __missing__(self, key: str | tuple[str, str]) -> tuple[Stage, ...]:
        scenario, arch = (key, "i386") if isinstance(key, str) else key
        plan = derive_plan(scenario, arch)
        self[(scenario, arch)] = self[key] = plan
        return plan

    def refresh(self) -> None:
        """Forget the plans if the emulator's sources changed since they were derived (a live edit)."""
        now = emulator_version()
        if now != self.version:
            self.clear()
            self.version = now


#: (scenario, arch) -> tuple of :class:`Stage` (filled on first use)
PLANS = _Plans()

_TRAMPOLINE_OF = {"ftrace_call": "ftrace_caller", "ftrace_regs_call": "ftrace_regs_caller"}


def derive_plan(scenario: str, arch: str = "i386") -> tuple[Stage, ...]:
    """The :class:`Stage` tuple of *scenario* on *arch* derived from the emulator's plan.

    Walks ``workbench.emulate.scenario.load_scenario(scenario).plan(image)`` (the
    kernel-ordered text batches and syncs) on the *arch* kernel's image and,
    for each trampoline-call batch, records the site kinds whose sites call
    that trampoline at that moment (the before state until the sites batch,
    the after state from then on), as that arch routes them
    (:meth:`workbench.kernel.ftrace.FtraceState.site_target`): on x86_64 a
    site covered by one ops calls that ops' own trampoline (``FTRACE_FL_TRAMP``),
    whose call is fixed when ``create_trampoline()`` makes it, so an update
    of the shared ``ftrace_call`` / ``ftrace_regs_call`` does not reach it.
    A scenario *arch* cannot have raises ConfigError
    (:meth:`~workbench.emulate.scenario.Scenario.check_arch`). Fills
    :data:`PLANS`; needs the emulator's image (binutils).
    """
    sc = load_scenario(scenario)
    sc.check_arch(arch)
    image = build_image(arch=arch)
    sc.states(image)  # refuses a transition that changes nothing
    lp = sc.livepatched()
    kind = {fn: "livepatched" if fn in lp else "ordinary" for fn in image.functions}
    stages = []
    for before, after in sc.updates(image):  # one ftrace update per ops (un)registered
        state = before
        for step in plan_transition(before, after):
            if isinstance(step, Sync):
                stages.append(Stage("publish"))
            elif isinstance(step, TextBatch) and step.name == "sites":
                stages.append(Stage("sites", tuple(k for k in SITE_KINDS
                                                   if any(kind[c.name] == k for c in step.changes)),
                                    tuple(c.name for c in step.changes if c.name in lp)))
                state = after
            elif isinstance(step, TextBatch):
                target = step.name.split(":")[0]
                fns = [fn for fn in image.functions if state.site_target(fn) == _TRAMPOLINE_OF[target]]
                stages.append(Stage(target, tuple(k for k in SITE_KINDS if any(kind[f] == k for f in fns)),
                                    tuple(f for f in fns if f in lp)))
    return tuple(stages)
