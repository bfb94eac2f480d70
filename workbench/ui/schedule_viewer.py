"""A step viewer for the model checker's counterexample files (ipywidgets).

Models nothing itself: it replays a schedule file of
:mod:`workbench.emulate.mc.schedule` (``arch/x86/kernel/alternative.c``'s
protocol against several calling CPUs) and shows one step at a time: the
event, each CPU's ``symbol+offset``, pause and IF, the patched sites' bytes,
and ``pt_regs`` while a CPU is in the int3 handler.

:class:`ScheduleStepper` is the viewer without widgets (``state(n)``, what
tests check); :class:`ScheduleViewer` puts a slider on it. A damaged or
mismatching file is refused when opened, with a one-line
:class:`~workbench.base.errors.ConfigError`.
"""

from __future__ import annotations

import html

from workbench.base.errors import check_range
from workbench.emulate.mc.schedule import load_schedule, replay_steps

__all__ = ["ScheduleStepper", "ScheduleViewer", "render_step"]


class ScheduleStepper:
    """The replayed steps of a counterexample file *path* (all checked when opened)."""

    def __init__(self, path):
        self.config, self.schedule, self.expect = load_schedule(path)
        self.steps = list(replay_steps(self.config, self.schedule, self.expect))

    def __len__(self) -> int:
        return len(self.steps)

    def state(self, n: int) -> dict:
        """Step *n* (0-based; the last one is the outcome)."""
        n = int(check_range("step", n, 0, len(self.steps) - 1, integer=True))
        return self.steps[n]


def render_step(step: dict) -> str:
    """One step as HTML: the event, each CPU's place and pt_regs, the sites' bytes."""
    if step.get("event") == "end":
        return f"<b>outcome</b>: {html.escape(step['outcome'])}<br>{html.escape('; '.join(step['blocked']))}"
    rows = [f"<b>{step['n']}</b> {html.escape(step['thread'])}: {html.escape(str(step['event']))}"]
    for c in step["cpus"]:
        line = f"{c['cpu']} at {html.escape(c['at'])} [{c['pause']}, IF={c['if']}]"
        if c["crash"]:
            line += f" <b>crash</b>: {html.escape(c['crash'])}"
        if "pt_regs" in c:
            line += "<br>&nbsp;&nbsp;pt_regs " + " ".join(f"{k}={v}" for k, v in c["pt_regs"].items())
        rows.append(line)
    rows.append("sites: " + " ".join(f"{k}={v}" for k, v in step["sites"].items()))
    return "<br>".join(rows)


class ScheduleViewer:
    """A slider over the steps of a counterexample file; ``.widget`` is what a notebook shows."""

    def __init__(self, path):
        import ipywidgets as W  # about 0.3 s to import; only a notebook showing the viewer pays it

        self.stepper = ScheduleStepper(path)
        self.slider = W.IntSlider(0, 0, len(self.stepper) - 1, description="step")
        self.view = W.HTML()
        self.slider.observe(lambda _: self.render(), names="value")
        self.widget = W.VBox([self.slider, self.view])
        self.render()

    def render(self) -> None:
        self.view.value = render_step(self.stepper.state(self.slider.value))
