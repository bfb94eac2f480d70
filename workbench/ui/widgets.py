"""Interactive explorers for JupyterLab (ipywidgets); the logic lives here, not in notebooks.

* :class:`Explorer` -- pick a scenario, strategies, a CPU range, call rates,
  the sync-round latency and a metric; the race simulator (through
  :func:`workbench.sweep.engine.sweep`) redraws a plot and a table on every change.
* :class:`StepViewer` -- a patch-step slider and an instruction slider over
  one call of a traced function on the emulator: the site's bytes and
  disassembly, each CPU's EIP (as ``symbol+offset``) and next instruction,
  the path through the trampolines, and ``struct pt_regs`` while the CPU is
  inside a frame that holds one (the int3 entry's, or the one
  ``ftrace_regs_caller`` builds for the handlers).

:class:`CallStepper` is the step viewer without widgets: ``state(step,
insn)`` replays the patch and the call deterministically and returns a
dict, which is what the tests check. Widget callbacks are plain methods
(``update``/``render``) wired with ``observe``, so setting a control's
``value`` from Python runs them, no browser needed. Bad settings show as a
one-line error in the widget's status line instead of a traceback.
"""

from __future__ import annotations

import html
import io
import time

import pandas as pd

from workbench.base.errors import ConfigError, check_range

__all__ = ["CallStepper", "StepViewer", "Explorer", "trapped_calls", "render_state", "CPU_CHOICES",
           "HANDLER_SYMBOLS"]

#: CPU counts the explorer's range slider moves over
CPU_CHOICES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)
#: handlers called with regparm(3) (ip, parent_ip, ops) and ``regs`` as the 4th
#: argument on the stack: at their first instruction, regs is at esp+4
HANDLER_SYMBOLS = ("ftrace_ops_list_func", "klp_ftrace_handler", "function_trace_call", "regs_probe_handler")
_TRAMPOLINES = ("ftrace_caller", "ftrace_regs_caller", "live_patch_trampoline")
_CAP = 1000  # instructions after which a call counts as not returning (spin waits forever here)


class CallStepper:
    """Replay one call of *function* on the emulator, at any patch step and instruction.

    The patch is the scenario's, under *strategy* and the int3 *entry*
    (:class:`workbench.emulate.explore.Run`). :meth:`state` lands the first *step*
    patch steps (each text write or sync of the protocol), then lets each of
    *cpus* CPUs run the call, CPU ``j`` lagging ``j * lag`` instructions
    behind CPU 0. Everything is recomputed from the reset machine, so a
    state depends only on its arguments. Raises :class:`ConfigError` for an
    unknown scenario, strategy, entry or function, or a CPU count outside [1, 8].
    """

    def __init__(self, scenario="seed", strategy="emulate_regs_caller", entry="v5.3", function="do_IRQ",
                 cpus=1, lag=4, protocol=None):
        from workbench.emulate.explore import Run

        cpus = int(check_range("cpus", cpus, 1, 8, integer=True))
        self.lag = int(check_range("lag", lag, 0, 1000, integer=True))
        self.run = Run(scenario, strategy, entry, protocol, ncpus=cpus)
        self.image = self.run.image
        self.function = self.image.function(function).name
        self.site = self.image.functions[self.function].site
        self.strategy, self.entry = self.run.strategy.name, entry
        self._handler_at = {self.image.sym(s): s for s in HANDLER_SYMBOLS if s in self.image.symbols}
        self._do_int3 = self.image.sym("do_int3")
        self._lengths: dict[int, int] = {}

    # -- the patch ----------------------------------------------------------------------
    @property
    def n_steps(self) -> int:
        """Number of patch steps; :meth:`state` accepts steps 0..n_steps."""
        return len(self.run.steps)

    def step_names(self) -> list[str]:
        """``before`` and then the name of each patch step, in order."""
        return ["before"] + [s.name for s in self.run.steps]

    def trap_step(self) -> int:
        """The first step count after which the function's own site holds an int3
        (0 if the protocol never arms one, as under stop_machine)."""
        for i, st in enumerate(self.run.steps):
            if st.kind == "text" and st.name.endswith("int3") and any(c.addr == self.site for c in st.changes):
                return i + 1
        return 0

    def _prepare(self, step):
        run, m, im = self.run, self.run.machine, self.image
        run.reset()
        for cpu in m.cpus:
            cpu.reset([(self.site, 0)])
        for _ in range(step):
            run.apply_step()
        m.sync_core()
        for cpu in m.cpus:  # every CPU at the call instruction of the traced function
            cpu.run(_CAP, until=im.sym("workload_call"))
        frames = {c.index: [] for c in m.cpus}
        original = m.int3_handler

        def handler(machine, cpu, regs):
            if ("int3 entry", regs.addr) not in frames[cpu.index][-1:]:
                frames[cpu.index].append(("int3 entry", regs.addr))
            return original(machine, cpu, regs)

        m.int3_handler = handler
        return frames, original

    def _step_cpu(self, cpu, count, frames, on_step=None):
        im, m = self.image, self.run.machine
        path, executed = [], 0
        ret = im.sym("workload_return")
        while executed < count and cpu.crash is None and cpu.eip != ret:
            if on_step is not None and on_step(executed, path):
                break
            cpu.run(1)
            executed += 1
            eip = cpu.eip
            name = im.name_at(eip)
            if "+" not in name and (not path or path[-1] != name):
                path.append(name)
            if eip == self._do_int3 and cpu.crash is None:
                # do_int3(regs): the frame the entry built, before the strategy changes it
                frames.append(("int3 entry", cpu.reg("eax")))
            if eip in self._handler_at:
                regs = m.read32(cpu.reg("esp") + 4)
                if regs:
                    owner = next((p for p in reversed(path) if p in _TRAMPOLINES), "trampoline")
                    frames.append((owner, regs))
        if on_step is not None:  # the last state too: the call returned, crashed, or ran out
            on_step(executed, path)
        return path, executed

    def length(self, step: int) -> int:
        """Instructions from the call instruction until the call returns (at most 1000)."""
        step = self._check_step(step)
        if step not in self._lengths:
            frames, original = self._prepare(step)
            try:
                cpu = self.run.machine.cpus[0]
                _, n = self._step_cpu(cpu, _CAP, frames[0])
            finally:
                self.run.machine.int3_handler = original
            self._lengths[step] = n
        return self._lengths[step]

    def seek(self, step: int, until) -> dict | None:
        """The first state of CPU 0's call, at patch *step*, for which *until*
        (a predicate on a per-CPU state dict, as in :meth:`state`) is true;
        ``None`` if the call returns or crashes first. One replay, not one per
        instruction.
        """
        step = self._check_step(step)
        frames, original = self._prepare(step)
        found = {}

        def check(executed, path):
            if not found and until(self._cpu_state(cpu, path, executed, frames[0])):
                found["insn"] = executed
            return bool(found)

        cpu = self.run.machine.cpus[0]
        try:
            self._step_cpu(cpu, _CAP, frames[0], check)
        finally:
            self.run.machine.int3_handler = original
        return None if not found else self.state(step, found["insn"])

    def _check_step(self, step):
        return int(check_range("step", step, 0, self.n_steps, integer=True))

    # -- a state ------------------------------------------------------------------------
    def state(self, step: int, insn: int) -> dict:
        """The machine after *step* patch steps and *insn* instructions of the call.

        Keys: ``step``, ``step_name``, ``site`` (address, bytes, disassembly,
        and whether an int3 is there), ``cpus`` (per CPU: ``eip``, ``where``
        as symbol+offset, ``next`` instruction, ``executed``, ``path``,
        ``trapped``, ``returned``, ``crash``, ``pt_regs`` (dict or None),
        ``pt_regs_addr``, ``pt_regs_from``, ``stack`` (8 words at esp)).
        Raises :class:`ConfigError` for a step outside [0, n_steps] or a
        negative instruction count.
        """
        step = self._check_step(step)
        insn = int(check_range("insn", insn, 0, _CAP, integer=True))
        m, im = self.run.machine, self.image
        frames, original = self._prepare(step)
        try:
            cpus = []
            for cpu in m.cpus:
                count = max(0, insn - cpu.index * self.lag)
                path, executed = self._step_cpu(cpu, count, frames[cpu.index])
                cpus.append(self._cpu_state(cpu, path, executed, frames[cpu.index]))
        finally:
            m.int3_handler = original
        code = m.read(self.site, 5)
        insn0 = im.disassemble(code, self.site)
        return {
            "step": step, "step_name": self.run.phase_name(step), "strategy": self.strategy,
            "entry": self.entry, "function": self.function,
            "site": {"address": self.site, "bytes": code.hex(" "), "int3": code[0] == 0xCC,
                     "insn": _insn_text(im, insn0[0]) if insn0 else "(undecodable)"},
            "cpus": cpus,
        }

    def _cpu_state(self, cpu, path, executed, frames):
        from workbench.kernel.ptrace import PtRegs

        m, im = self.run.machine, self.image
        eip, esp = cpu.eip, cpu.reg("esp")
        code = m.read(eip, 16) if im.text[0] <= eip < im.text[1] - 16 else b""
        nxt = im.disassemble(code, eip)
        live = [(kind, addr) for kind, addr in frames if esp <= addr]  # below esp: popped
        kind, addr = live[-1] if live else (None, None)
        regs = PtRegs(m, addr).as_dict() if addr is not None else None
        stack = [m.read32(esp + 4 * i) for i in range(8)] if im.data[0] <= esp < im.data[1] - 32 else []
        return {
            "cpu": cpu.index, "eip": eip, "where": im.name_at(eip), "esp": esp,
            "next": _insn_text(im, nxt[0]) if nxt else "",
            "executed": executed, "path": path[-24:], "trapped": any(k == "int3 entry" for k, _ in frames),
            "returned": eip == im.sym("workload_return"),
            "crash": None if cpu.crash is None else cpu.crash.reason,
            "pt_regs": regs, "pt_regs_addr": addr, "pt_regs_from": kind, "stack": stack,
        }


def trapped_calls(function="do_IRQ", entry="v5.3", strategies=None, scenario="seed") -> pd.DataFrame:
    """One call of *function* that hits the int3 on its own site, under each strategy.

    For each strategy, the patch stops right after the int3 is written on
    the site (:meth:`CallStepper.trap_step`) and the call runs to its end.
    Columns: ``strategy``, ``trap_step`` (the step name), ``trapped``,
    ``returned``, ``crash``, ``instructions``, ``path`` (symbols entered).
    A strategy whose protocol arms no int3 (stop_machine) reports the call
    at the step before its site changes.
    """
    from workbench.kernel.int3 import STRATEGIES

    rows = []
    for name in strategies or STRATEGIES:
        cs = CallStepper(scenario, name, entry, function, cpus=1)
        k = cs.trap_step()
        c = cs.state(k, cs.length(k))["cpus"][0]
        rows.append({"strategy": name, "trap_step": cs.run.phase_name(k), "trapped": c["trapped"],
                     "returned": c["returned"], "crash": c["crash"] or "", "instructions": c["executed"],
                     "path": " -> ".join(_squeeze(c["path"]))})
    return pd.DataFrame(rows)


def _squeeze(path, keep=10):
    """A path with repeats (spin's loop) shown once with a count."""
    out = []
    for p in path:
        out.append(p)
    if len(out) > keep:
        return out[:keep // 2] + [f"... ({len(out) - keep} more)"] + out[-keep // 2:]
    return out


def _insn_text(im, insn):
    text = f"{insn.mnemonic} {insn.op_str}".strip()
    if insn.mnemonic.startswith(("call", "jmp")) and insn.op_str.startswith("0x"):
        text += f"  <{im.name_at(int(insn.op_str, 16))}>"
    return text


def render_state(state, image=None) -> str:
    """A :meth:`CallStepper.state` as an HTML ``<pre>`` block."""
    s = state["site"]
    lines = [f"patch step {state['step']}: {state['step_name']}   "
             f"(strategy {state['strategy']}, entry {state['entry']})",
             f"site {state['function']} @ {s['address']:#010x}: {s['bytes']}   {s['insn']}"
             + ("   <- int3 armed" if s["int3"] else ""), ""]
    for c in state["cpus"]:
        status = ("crashed: " + c["crash"]) if c["crash"] else ("returned" if c["returned"] else "running")
        lines.append(f"cpu{c['cpu']}: eip {c['eip']:#010x} <{c['where']}>  next: {c['next']}")
        lines.append(f"      {c['executed']} instructions, {'trapped on int3, ' if c['trapped'] else ''}{status}")
        if c["path"]:
            lines.append("      path: " + " -> ".join(c["path"][-8:]))
        if c["pt_regs"]:
            r = c["pt_regs"]
            lines.append(f"      pt_regs @ {c['pt_regs_addr']:#010x} (built by {c['pt_regs_from']}):")
            fields = list(r.items())
            for i in range(0, len(fields), 6):
                lines.append("        " + "  ".join(f"{k}={v:#010x}" for k, v in fields[i:i + 6]))
        else:
            lines.append("      pt_regs: none live (not inside the int3 entry or a regs-saving trampoline)")
        if c["stack"]:
            lines.append("      stack: " + " ".join(f"{w:08x}" for w in c["stack"]))
    return "<pre style='font-size:11px;line-height:1.25'>" + html.escape("\n".join(lines)) + "</pre>"


def _widgets():
    import ipywidgets

    return ipywidgets


class StepViewer:
    """A step-through viewer: patch step and instruction sliders over one call.

    ``widget`` is the ipywidgets box to display. Changing the strategy,
    entry or function builds a new :class:`CallStepper`; moving a slider
    re-renders ``view.value`` (HTML) from :meth:`CallStepper.state`, kept
    in ``state``.
    """

    def __init__(self, scenario="seed", strategy="emulate_regs_caller", entry="v5.3", function="do_IRQ",
                 cpus=2, step=None, insn=0):
        from workbench.kernel.int3 import STRATEGIES
        from workbench.kernel.machine import ENTRIES

        w = _widgets()
        self.scenario, self.cpus = scenario, cpus
        self.stepper = CallStepper(scenario, strategy, entry, function, cpus)
        self.strategy = w.Dropdown(options=list(STRATEGIES), value=strategy, description="strategy")
        self.entry = w.Dropdown(options=list(ENTRIES), value=entry, description="entry")
        self.function = w.Dropdown(options=list(self.stepper.image.functions), value=self.stepper.function,
                                   description="function")
        self.step = w.IntSlider(min=0, max=self.stepper.n_steps,
                                value=self.stepper.trap_step() if step is None else step,
                                description="patch step", continuous_update=False)
        self.insn = w.IntSlider(min=0, max=1, value=0, description="instruction", continuous_update=False)
        self.view = w.HTML()
        self.status = w.HTML()
        self.state = None
        for c in (self.strategy, self.entry, self.function):
            c.observe(self._rebuild, names="value")
        self.step.observe(self._on_step, names="value")
        self.insn.observe(self.render, names="value")
        self.widget = w.VBox([w.HBox([self.strategy, self.entry, self.function]), self.step, self.insn,
                              self.status, self.view])
        self._on_step()
        if insn:
            self.insn.value = min(insn, self.insn.max)

    def _rebuild(self, change=None):
        try:
            self.stepper = CallStepper(self.scenario, self.strategy.value, self.entry.value,
                                       self.function.value, self.cpus)
        except ConfigError as exc:
            self.status.value = f"<b>error:</b> {html.escape(str(exc))}"
            return
        self.step.max = self.stepper.n_steps
        self._on_step()

    def _on_step(self, change=None):
        n = self.stepper.length(self.step.value) + self.stepper.lag * (self.cpus - 1)
        self.insn.max = max(n, 1)
        self.render()

    def render(self, change=None):
        """Recompute the state at the sliders' values and redraw the view."""
        try:
            self.state = self.stepper.state(self.step.value, self.insn.value)
        except ConfigError as exc:
            self.status.value = f"<b>error:</b> {html.escape(str(exc))}"
            return
        self.status.value = f"step {self.step.value}/{self.stepper.n_steps}: {self.state['step_name']}"
        self.view.value = render_state(self.state)


class Explorer:
    """The race explorer: controls -> a sweep -> a live plot and a table.

    Controls: scenario, entry, protocol, strategies, CPU range, the
    per-CPU call rate of ``do_IRQ`` and of the ordinary tail, the mean IPI
    sync round (µs, on 24 CPUs), the metric plotted and the Monte Carlo
    trials. Every change calls :meth:`update`, which runs the grid with the
    serial backend (results are not cached: the explorer is for moving
    sliders) and stores the frame in ``frame``; the plot is a PNG in
    ``plot.value`` and the table HTML in ``table.value``.
    """

    METRICS = ("violations", "dropped_tracer", "dropped_livepatch", "trapped", "stall_ns", "patch_ns")

    def __init__(self, scenario="seed", strategies=("skip", "emulate_regs_caller", "emulate_old", "stop_machine"),
                 cpus=(1, 64), do_irq_rate=1000.0, tail_rate=2e6, sync_round_us=337.0, metric="violations",
                 trials=1000, entry="v5.3", protocol="batched"):
        from workbench.race.simulator import PROTOCOLS, STRATEGIES
        from workbench.emulate.scenario import scenario_names

        w = _widgets()
        style = {"description_width": "110px"}
        self.scenario = w.Dropdown(options=scenario_names(), value=scenario, description="scenario", style=style)
        self.entry = w.Dropdown(options=["v5.1", "v5.3"], value=entry, description="int3 entry", style=style)
        self.protocol = w.Dropdown(options=[p for p in PROTOCOLS if p != "stop_machine"], value=protocol,
                                   description="protocol", style=style)
        self.strategies = w.SelectMultiple(options=list(STRATEGIES), value=tuple(strategies),
                                           description="strategies", rows=6, style=style)
        self.cpus = w.SelectionRangeSlider(options=list(CPU_CHOICES), index=(CPU_CHOICES.index(cpus[0]),
                                                                           CPU_CHOICES.index(cpus[1])),
                                           description="CPUs", continuous_update=False, style=style)
        self.do_irq_rate = w.FloatLogSlider(value=do_irq_rate, base=10, min=0, max=5, step=0.25,
                                            description="do_IRQ calls/s", continuous_update=False, style=style)
        self.tail_rate = w.FloatLogSlider(value=tail_rate, base=10, min=3, max=8, step=0.25,
                                          description="tail calls/s", continuous_update=False, style=style)
        self.sync_round_us = w.FloatLogSlider(value=sync_round_us, base=10, min=0, max=4, step=0.125,
                                              description="IPI round (µs)", continuous_update=False, style=style)
        self.metric = w.Dropdown(options=list(self.METRICS), value=metric, description="metric", style=style)
        self.trials = w.BoundedIntText(value=trials, min=2, max=100_000, description="trials", style=style)
        self.plot = w.Image(format="png")
        self.table = w.HTML()
        self.status = w.HTML()
        self.frame = None
        self.controls = (self.scenario, self.entry, self.protocol, self.strategies, self.cpus,
                         self.do_irq_rate, self.tail_rate, self.sync_round_us, self.metric, self.trials)
        for c in self.controls:
            c.observe(self.update, names="value")
        left = w.VBox(list(self.controls) + [self.status])
        self.widget = w.VBox([w.HBox([left, self.plot]), self.table])
        self.update()

    def grid(self):
        """The :class:`workbench.sweep.engine.Grid` the controls describe."""
        from workbench.race.experiment import race_grid
        from workbench.sweep.engine import Grid
        from workbench.race.workload import DEFAULT_HOT

        lo, hi = self.cpus.value
        cpus = [c for c in CPU_CHOICES if lo <= c <= hi]
        if not self.strategies.value:
            raise ConfigError("strategies: choose at least one strategy")
        hot = dict(DEFAULT_HOT)
        hot["do_IRQ"] = float(self.do_irq_rate.value)
        common = dict(scenario=self.scenario.value, entry=self.entry.value, cpus=cpus, hot=hot,
                      tail_rate=float(self.tail_rate.value), sync_round_ns=float(self.sync_round_us.value) * 1e3,
                      trials=int(self.trials.value))
        return Grid.concat(race_grid(strategy=s, protocol=None if s == "stop_machine" else self.protocol.value,
                                     **common) for s in self.strategies.value)

    def update(self, change=None):
        """Run the grid, redraw the plot and the table (errors go to the status line)."""
        from workbench.figures import plots
        from workbench.figures.style import style
        from workbench.sweep.engine import sweep

        t0 = time.perf_counter()
        try:
            frame = sweep(self.grid(), backend="serial", cache=False, progress=False)
        except ConfigError as exc:
            self.status.value = f"<span style='color:#D55E00'><b>error:</b> {html.escape(str(exc))}</span>"
            return
        self.frame = frame
        m = self.metric.value
        scaled = frame.copy()
        if m.endswith("_ns"):  # plot milliseconds, as the axis label says
            for s in ("mean", "lo", "hi"):
                scaled[f"{m}_{s}"] = scaled[f"{m}_{s}"] / 1e6
        fig = plots.drops(scaled, x="cpus", metrics=[m], size="wide")
        buf = io.BytesIO()
        with style():
            fig.axes[0].set_title(f"{m} per patch ({self.scenario.value}, {self.protocol.value}, "
                                  f"entry {self.entry.value})")
            fig.savefig(buf, format="png", dpi=90)
        self.plot.value = buf.getvalue()
        cols = ["strategy", "protocol", "cpus", f"{m}_mean", f"{m}_lo", f"{m}_hi", f"{m}_cf"]
        self.table.value = frame[cols].to_html(index=False, float_format=lambda v: f"{v:.4g}")
        self.status.value = f"{len(frame)} points in {time.perf_counter() - t0:.2f} s"
