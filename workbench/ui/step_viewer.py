"""The step-through viewer of one trapped call (ipywidgets): it only draws.

Models nothing itself: :class:`workbench.emulate.stepper.CallStepper` replays
the call (``arch/x86/kernel/alternative.c``'s patch steps, the int3 entry of
``arch/x86/entry/entry_32.S`` or ``entry_64.S``, the trampolines) and this
module draws its states. :func:`render_state` is one state as text;
:class:`StepViewer` puts arch, strategy, entry and function dropdowns, a
patch-step slider, an instruction slider, play and "jump to next trap" on
it. Callbacks are plain methods wired with ``observe``, so setting a
control's ``value`` from Python runs them; a bad setting is one line in the
status, never a traceback.
"""

from __future__ import annotations

import html

from workbench.base.errors import ConfigError
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH, STRATEGIES
from workbench.emulate.stepper import CallStepper
from workbench.ui.snapshot import snapshot_box

__all__ = ["StepViewer", "render_state"]

_POINTERS = {"i386": ("eip", "esp"), "x86_64": ("rip", "rsp")}


def render_state(state: dict) -> str:
    """A :meth:`~workbench.emulate.stepper.CallStepper.state` as an HTML ``<pre>`` block,
    its arch named in the first line (64-bit words and RIP/RSP on x86_64)."""
    arch = state.get("arch", "i386")
    ip, sp = _POINTERS[arch]
    wide = arch == "x86_64"
    per_line = 4 if wide else 6
    s = state["site"]
    lines = [f"{arch} · patch step {state['step']}: {state['step_name']}   "
             f"(strategy {state['strategy']}, entry {state['entry']})",
             f"site {state['function']} @ {s['address']:#010x}: {s['bytes']}   {s['insn']}"
             + ("   <- int3 armed" if s["int3"] else ""), ""]
    for c in state["cpus"]:
        status = ("crashed: " + c["crash"]) if c["crash"] else ("returned" if c["returned"] else "running")
        lines.append(f"cpu{c['cpu']}: {ip} {c['eip']:#010x} <{c['where']}>  next: {c['next']}")
        lines.append(f"      {c['executed']} instructions, {'trapped on int3, ' if c['trapped'] else ''}{status}")
        if c["path"]:
            lines.append("      path: " + " -> ".join(c["path"][-8:]))
        lines.append(f"      frame: {c.get('frame', '')}")
        if c["pt_regs"]:
            fields = list(c["pt_regs"].items())
            lines.append(f"      pt_regs @ {c['pt_regs_addr']:#010x} (built by {c['pt_regs_from']}):")
            for i in range(0, len(fields), per_line):
                lines.append("        " + "  ".join(f"{k}={v:#x}" if wide else f"{k}={v:#010x}"
                                                    for k, v in fields[i:i + per_line]))
        if c["stack"]:
            lines.append(f"      stack at {sp}: " + " ".join(f"{w:0{16 if wide else 8}x}" for w in c["stack"]))
    return "<pre style='font-size:11px;line-height:1.25'>" + html.escape("\n".join(lines)) + "</pre>"


class StepViewer:
    """A step-through viewer: patch step and instruction sliders over one call.

    ``widget`` is the ipywidgets box to display. Changing the arch,
    strategy, entry or function builds a new
    :class:`~workbench.emulate.stepper.CallStepper` (a new arch offers its
    own int3 entries and starts on its latest); moving a slider re-renders
    ``view.value`` (HTML) from its state, kept in ``state``.
    """

    def __init__(self, scenario="seed", strategy="emulate_regs_caller", entry=None, function="do_IRQ",
                 cpus=2, step=None, insn=0, arch="i386"):
        import ipywidgets as w  # start-up: ipywidgets, only once a viewer is drawn

        self.scenario, self.cpus = scenario, cpus
        self.stepper = CallStepper(scenario, strategy, entry, function, cpus, arch=arch)
        self.arch = w.Dropdown(options=list(ARCHES), value=self.stepper.arch, description="arch")
        self.strategy = w.Dropdown(options=list(STRATEGIES), value=strategy, description="strategy")
        self.entry = w.Dropdown(options=list(ENTRIES_BY_ARCH[self.stepper.arch]), value=self.stepper.entry,
                                description="entry")
        self.function = w.Dropdown(options=list(self.stepper.image.functions), value=self.stepper.function,
                                   description="function")
        self.step = w.IntSlider(min=0, max=self.stepper.n_steps,
                                value=self.stepper.trap_step() if step is None else step,
                                description="patch step", continuous_update=False)
        self.insn = w.IntSlider(min=0, max=1, value=0, description="instruction", continuous_update=False)
        # play: the browser advances the instruction slider, one instruction per tick
        self.play = w.Play(min=0, max=1, value=0, step=1, interval=400, description="play",
                           show_repeat=False)
        w.jslink((self.play, "value"), (self.insn, "value"))
        self.trap_button = w.Button(description="jump to next trap", tooltip="the next int3 this call hits")
        self.trap_button.on_click(lambda _: self.jump_to_trap())
        self.view = w.HTML()
        self.status = w.HTML()
        self.state = None
        self._switching = False
        self.arch.observe(self._on_arch, names="value")
        for c in (self.strategy, self.entry, self.function):
            c.observe(self._rebuild, names="value")
        self.step.observe(self._on_step, names="value")
        self.insn.observe(self.render, names="value")
        self.widget = snapshot_box([w.HBox([self.arch, self.strategy, self.entry, self.function],
                                           layout=w.Layout(flex_flow="row wrap")), self.step,
                                    w.HBox([self.insn, self.play, self.trap_button],
                                           layout=w.Layout(flex_flow="row wrap", align_items="center")),
                                    self.status, self.view])
        self._on_step()
        if insn:
            self.insn.value = min(insn, self.insn.max)

    def _error(self, exc: ConfigError) -> None:
        self.status.value = f"<span style='color:#D55E00'><b>error:</b> {html.escape(str(exc))}</span>"

    def _on_arch(self, change=None):
        """Another arch: its own int3 entries (the latest selected), then one rebuild."""
        self._switching = True
        try:
            self.entry.options = list(ENTRIES_BY_ARCH[self.arch.value])
            self.entry.value = ENTRIES_BY_ARCH[self.arch.value][-1]
        finally:
            self._switching = False
        self._rebuild()

    def _rebuild(self, change=None):
        if self._switching:
            return
        try:
            self.stepper = CallStepper(self.scenario, self.strategy.value, self.entry.value,
                                       self.function.value, self.cpus, arch=self.arch.value)
        except ConfigError as exc:
            self._error(exc)
            return
        self.step.max = self.stepper.n_steps
        self._on_step()

    def _on_step(self, change=None):
        n = self.stepper.length(self.step.value) + self.stepper.lag * (self.cpus - 1)
        self.insn.max = max(n, 1)
        self.play.max = self.insn.max
        self.render()

    def jump_to_trap(self) -> bool:
        """Move the instruction slider to CPU 0's next trap into the int3 entry; False if none follows."""
        try:
            found = self.stepper.next_trap(self.step.value, self.insn.value)
        except ConfigError as exc:
            self._error(exc)
            return False
        if found is None:
            self.status.value = (f"step {self.step.value}/{self.stepper.n_steps}: no further trap in this "
                                 f"call after instruction {self.insn.value}")
            return False
        self.insn.value = found["cpus"][0]["executed"]
        return True

    def render(self, change=None):
        """Recompute the state at the sliders' values and redraw the view."""
        try:
            self.state = self.stepper.state(self.step.value, self.insn.value)
        except ConfigError as exc:
            self._error(exc)
            return
        self.status.value = (f"step {self.step.value}/{self.stepper.n_steps}: {self.state['step_name']} "
                             f"({self.stepper.arch}, entry {self.stepper.entry})")
        self.view.value = render_state(self.state)
