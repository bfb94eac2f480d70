"""A step viewer for the model checker's counterexample files (ipywidgets).

Models nothing itself: it replays a schedule file of
:mod:`workbench.emulate.mc.schedule` (``arch/x86/kernel/alternative.c``'s
protocol against several calling CPUs) and shows one step at a time: the
event, each CPU's ``symbol+offset``, pause and IF, the patched sites' bytes,
and ``pt_regs`` while a CPU is in the int3 handler.

:class:`ScheduleStepper` is the viewer without widgets (``state(n)``, what
tests check, and :meth:`ScheduleStepper.next_event`, the next step where
something one wants to see happens); :class:`ScheduleViewer` puts a slider,
"step k of N", play and "next event" on it. A damaged or
mismatching file is refused when opened, with a one-line
:class:`~workbench.base.errors.ConfigError`.
"""

from __future__ import annotations

import html

from workbench.base.errors import check_range
from workbench.emulate.mc.schedule import load_schedule, replay_steps
from workbench.ui.snapshot import snapshot_box

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

    def event(self, n: int) -> str:
        """Why step *n* is worth stopping at ('' if it is not): a site's bytes change, a CPU
        enters or leaves the int3 handler (its ``pt_regs`` appear or go), a CPU crashes, or the
        outcome."""
        cur = self.state(n)
        if cur.get("event") == "end":
            return "outcome"
        if n == 0:
            return ""
        prev = self.steps[n - 1]
        why = []
        changed = [k for k, v in cur["sites"].items() if prev["sites"].get(k) != v]
        if changed:
            why.append("bytes of " + ", ".join(changed) + " change")
        before = {c["cpu"]: c for c in prev["cpus"]}
        for c in cur["cpus"]:
            p = before.get(c["cpu"], {})
            if c["crash"] and not p.get("crash"):
                why.append(f"{c['cpu']} crashes")
            elif "pt_regs" in c and "pt_regs" not in p:
                why.append(f"{c['cpu']} enters the int3 handler")
            elif "pt_regs" in p and "pt_regs" not in c:
                why.append(f"{c['cpu']} leaves the int3 handler")
        return "; ".join(why)

    def next_event(self, n: int) -> int | None:
        """The first step after *n* for which :meth:`event` is not empty; None if there is none."""
        n = int(check_range("step", n, 0, len(self.steps) - 1, integer=True))
        return next((k for k in range(n + 1, len(self.steps)) if self.event(k)), None)


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
    """The steps of a counterexample file: a slider, "step k of N", play (one step per tick, in the
    browser) and "next event" (:meth:`jump_to_event`); ``.widget`` is what a notebook shows."""

    def __init__(self, path):
        import ipywidgets as W  # start-up: about 0.3 s; only a notebook showing the viewer pays it

        self.stepper = ScheduleStepper(path)
        last = len(self.stepper) - 1
        self.slider = W.IntSlider(0, 0, last, description="step", readout=False, continuous_update=True,
                                  layout=W.Layout(width="min(480px, 100%)"))
        self.play = W.Play(value=0, min=0, max=last, step=1, interval=500, description="play",
                           show_repeat=False)
        W.jslink((self.play, "value"), (self.slider, "value"))
        self.event_button = W.Button(description="next event",
                                     tooltip="the next step where a site's bytes change, a CPU enters or "
                                             "leaves the int3 handler or crashes, or the outcome")
        self.event_button.on_click(lambda _: self.jump_to_event())
        self.status = W.HTML()
        self.view = W.HTML()
        self.slider.observe(lambda _: self.render(), names="value")
        self.widget = snapshot_box([W.HBox([self.slider, self.play, self.event_button],
                                     layout=W.Layout(flex_flow="row wrap", align_items="center")),
                              self.status, self.view])
        self.render()

    def jump_to_event(self) -> bool:
        """Move to the next step of interest (:meth:`ScheduleStepper.next_event`); False at the last one."""
        found = self.stepper.next_event(self.slider.value)
        if found is None:
            return False
        self.slider.value = found
        return True

    def render(self) -> None:
        n = self.slider.value
        why = self.stepper.event(n)
        self.status.value = (f"<b>step {n + 1} of {len(self.stepper)}</b>"
                             + (f" &middot; {html.escape(why)}" if why else ""))
        self.view.value = render_step(self.stepper.state(n))
