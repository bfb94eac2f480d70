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

import base64
import html
import io
import time
from pathlib import Path

import pandas as pd

from workbench.base.errors import ConfigError, check_range
from workbench.base.inputs import parse_document, read_input
from workbench.base.store import write_atomic
from workbench.base.units import human_ns
from workbench.base.vocabulary import ENTRIES
from workbench.emulate.scenario import scenario_kernel, scenario_names
from workbench.kernel.int3 import STRATEGIES as HANDLER_STRATEGIES
from workbench.kernel.ptrace import PtRegs
from workbench.race.experiment import race_grid
from workbench.base.vocabulary import PROTOCOLS
from workbench.base.vocabulary import STRATEGIES as RACE_STRATEGIES
from workbench.race.timing import Timing
from workbench.race.workload import DEFAULT_HOT
from workbench.sweep.engine import Grid, sweep
from workbench.ui.format import human_value
from workbench.ui.snapshot import snapshot_box

__all__ = [
    "CPU_CHOICES", "CallStepper", "Explorer", "HANDLER_SYMBOLS", "StepViewer", "render_state",
    "trapped_calls",
]

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
        from workbench.emulate.explore import Run  # start-up: Unicorn, only once a CallStepper is made

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

    def _entry_call(self, entry: str) -> int:
        """Address of the ``call do_int3`` inside the int3 entry *entry* (the frame is complete there)."""
        if not hasattr(self, "_calls"):
            self._calls = {}
        if entry not in self._calls:
            im = self.image
            start = im.sym(entry)
            for insn in im.disassemble(self.run.machine.read(start, 160), start):
                if insn.mnemonic.startswith("call") and insn.op_str.startswith("0x") \
                        and int(insn.op_str, 16) == self._do_int3:
                    self._calls[entry] = insn.address
                    break
            else:
                self._calls[entry] = start
        return self._calls[entry]

    def _frame_note(self, where, eip, kind, addr) -> str:
        """What the CPU's register frame is at *eip*, said plainly (the step viewer's frame line).

        Inside the int3 entry but before its ``call do_int3`` the
        ``pt_regs`` is being built (the hardware has pushed ip, cs and flags;
        the entry pushes the rest), after it the entry is restoring from it;
        neither is "no frame".
        """
        base = where.split("+")[0]
        if base.startswith("int3_entry"):
            call = self._entry_call(base)
            if eip <= call and addr is None:
                return (f"pt_regs being built by {base} (hardware pushed ip, cs, flags; "
                        f"complete at the call to do_int3)")
            if eip > call:
                return f"pt_regs being restored by {base} (after do_int3; the iret frame follows)"
        if base == "do_int3" and addr is not None:
            return "pt_regs complete, passed to do_int3 (the strategy acts on it)"
        if addr is not None:
            return f"pt_regs live (built by {kind})"
        return "no pt_regs live (not inside the int3 entry or a regs-saving trampoline)"

    def next_trap(self, step: int, after: int) -> dict | None:
        """The first state of CPU 0's call at patch *step*, later than instruction *after*, where
        the CPU has just entered the int3 entry (the trap is delivered); ``None`` if there is none."""
        return self.seek(step, lambda st: st["executed"] > after and st["where"].startswith("int3_entry")
                         and "+" not in st["where"])

    def _cpu_state(self, cpu, path, executed, frames):
        m, im = self.run.machine, self.image
        eip, esp = cpu.eip, cpu.reg("esp")
        code = m.read(eip, 16) if im.text[0] <= eip < im.text[1] - 16 else b""
        nxt = im.disassemble(code, eip)
        live = [(kind, addr) for kind, addr in frames if esp <= addr]  # below esp: popped
        kind, addr = live[-1] if live else (None, None)
        regs = PtRegs(m, addr).as_dict() if addr is not None else None
        stack = [m.read32(esp + 4 * i) for i in range(8)] if im.data[0] <= esp < im.data[1] - 32 else []
        where = im.name_at(eip)
        return {
            "frame": self._frame_note(where, eip, kind, addr),
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
    rows = []
    for name in strategies or HANDLER_STRATEGIES:
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
        lines.append(f"      frame: {c.get('frame', '')}")
        if c["pt_regs"]:
            r = c["pt_regs"]
            lines.append(f"      pt_regs @ {c['pt_regs_addr']:#010x} (built by {c['pt_regs_from']}):")
            fields = list(r.items())
            for i in range(0, len(fields), 6):
                lines.append("        " + "  ".join(f"{k}={v:#010x}" for k, v in fields[i:i + 6]))
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
        w = _widgets()
        self.scenario, self.cpus = scenario, cpus
        self.stepper = CallStepper(scenario, strategy, entry, function, cpus)
        self.strategy = w.Dropdown(options=list(HANDLER_STRATEGIES), value=strategy, description="strategy")
        self.entry = w.Dropdown(options=list(ENTRIES), value=entry, description="entry")
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
        for c in (self.strategy, self.entry, self.function):
            c.observe(self._rebuild, names="value")
        self.step.observe(self._on_step, names="value")
        self.insn.observe(self.render, names="value")
        self.widget = snapshot_box([w.HBox([self.strategy, self.entry, self.function],
                                           layout=w.Layout(flex_flow="row wrap")), self.step,
                                    w.HBox([self.insn, self.play, self.trap_button],
                                           layout=w.Layout(flex_flow="row wrap", align_items="center")),
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
        self.play.max = self.insn.max
        self.render()

    def jump_to_trap(self) -> bool:
        """Move the instruction slider to CPU 0's next trap into the int3 entry; False if none follows."""
        try:
            found = self.stepper.next_trap(self.step.value, self.insn.value)
        except ConfigError as exc:
            self.status.value = f"<b>error:</b> {html.escape(str(exc))}"
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
            self.status.value = f"<b>error:</b> {html.escape(str(exc))}"
            return
        self.status.value = f"step {self.step.value}/{self.stepper.n_steps}: {self.state['step_name']}"
        self.view.value = render_state(self.state)


_TABLE_CSS = ("<style>.wb-table{border-collapse:collapse;font-size:11px;font-variant-numeric:tabular-nums}"
              ".wb-table th,.wb-table td{border:none;padding:1px 8px;text-align:right}"
              ".wb-table thead th{border-bottom:1px solid #999;position:sticky;top:0;background:#fff}"
              ".wb-table tbody tr:nth-child(even){background:#f5f5f5}</style>")


def _table_html(frame, columns) -> str:
    """A compact, borderless table (times in human units) in a scrolling box of ~12 rows."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(human_value(c, v))}</td>" for c, v in zip(columns, r))
                   + "</tr>" for r in frame[columns].itertuples(index=False))
    return (_TABLE_CSS + "<div style='max-height:260px;overflow-y:auto'><table class='wb-table'><thead><tr>"
            + head + "</tr></thead><tbody>" + body + "</tbody></table></div>")


def _toml_value(v) -> str:
    """One TOML value: string, bool, int, float, list or inline table."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ConfigError(f"config: cannot write {v!r} as TOML")


def _download_link(label, filename, mime, data: bytes) -> str:
    """An HTML link that saves *data* as *filename* in the browser (a data URI: no server needed)."""
    uri = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    return (f"<a download='{html.escape(filename)}' href='{uri}' style='margin-right:1em'>"
            f"{html.escape(label)}</a>")


def _round_tip() -> str:
    """What the IPI round slider sets, with the factor the timing model puts on a round at 64 CPUs."""
    model = Timing()
    k = model.round_moments(64)[0] / model.round_moments(24)[0]
    return (f"sync_round_ns: the mean IPI sync round on 24 CPUs, the round-latency model's one knob; "
            f"a round on more CPUs is longer (on 64 CPUs: {k:.2f}x)")


_ROUND_TIP = _round_tip()


class Explorer:
    """The race explorer: controls -> a sweep -> a live plot and a table, exportable and comparable.

    Controls: scenario, entry, protocol, strategies, CPU range, the
    per-CPU call rate of ``do_IRQ`` and of the ordinary tail, the mean IPI
    sync round (µs, on 24 CPUs), the metric plotted and the Monte Carlo
    trials. Every change calls :meth:`update`, which runs the grid with the
    serial backend (results are not cached: the explorer is for moving
    sliders) and stores the frame in ``frame``; the plot is an SVG (vector,
    sharp at any zoom) in ``plot.value`` and the table HTML in
    ``table.value``. While it runs, ``busy`` is True, the status line says
    so and the controls are disabled.

    Export: :meth:`to_csv` (the table, with provenance columns, full
    precision), :meth:`config` / :meth:`to_toml` / :meth:`save` /
    :meth:`load` (the configuration as TOML, which
    ``int3-workbench sweep --config FILE`` also reads) and :meth:`command`
    (the equivalent command line); ``exports`` holds download links for
    the CSV and the TOML. Compare: :meth:`pin` keeps the current
    configuration and its frame as "A"; until :meth:`unpin`, the plot shows
    A and the current configuration B side by side on the same axes and
    the table lists both.
    """

    METRICS = ("violations", "dropped_tracer", "dropped_livepatch", "trapped", "stall_ns", "patch_ns")
    #: the configuration keys of :meth:`config`, in order
    CONFIG_KEYS = ("scenario", "entry", "protocol", "strategies", "cpus", "do_irq_rate", "tail_rate",
                   "sync_round_us", "metric", "trials")

    def __init__(self, scenario="seed", strategies=("skip", "emulate_regs_caller", "emulate_old", "stop_machine"),
                 cpus=(1, 64), do_irq_rate=1000.0, tail_rate=2e6, sync_round_us=337.0, metric="violations",
                 trials=1000, entry="v5.3", protocol="batched", seed=0):
        w = _widgets()
        # the controls column has a fixed width and every control fills it, so readouts and lists
        # stay inside it; the plot takes the rest and wraps below the controls when the page is
        # narrow (JupyterLab at 1280 px with the file browser open)
        style = {"description_width": "104px"}
        full = {"layout": w.Layout(width="auto")}  # stretched to the column, margins included
        self.seed = int(check_range("seed", seed, 0, 2**63 - 1, integer=True))
        self.scenario = w.Dropdown(options=[(f"{n} [{scenario_kernel(n)}]", n) for n in scenario_names()],
                                   value=scenario, description="scenario", style=style, **full)
        self.entry = w.Dropdown(options=["v5.1", "v5.3"], value=entry, description="int3 entry", style=style,
                                **full)
        self.protocol = w.Dropdown(options=[p for p in PROTOCOLS if p != "stop_machine"], value=protocol,
                                   description="protocol", style=style, **full)
        self.strategies = w.SelectMultiple(options=list(RACE_STRATEGIES), value=tuple(strategies),
                                           description="strategies", rows=6, style=style,
                                           **full)
        self.cpus = w.SelectionRangeSlider(options=list(CPU_CHOICES), index=(CPU_CHOICES.index(cpus[0]),
                                                                           CPU_CHOICES.index(cpus[1])),
                                           description="CPUs", continuous_update=False, style=style,
                                           **full)
        self.do_irq_rate = w.FloatLogSlider(value=do_irq_rate, base=10, min=0, max=5, step=0.25,
                                            description="do_IRQ calls/s", continuous_update=False, style=style,
                                            readout_format=".3s", **full)  # 1.00k, not 1.00e+3
        self.tail_rate = w.FloatLogSlider(value=tail_rate, base=10, min=3, max=8, step=0.25,
                                          description="tail calls/s", continuous_update=False, style=style,
                                          readout_format=".3s", **full)
        self.sync_round_us = w.FloatLogSlider(value=sync_round_us, base=10, min=0, max=4, step=0.125,
                                              description="IPI round (µs)", continuous_update=False, style=style,
                                              readout_format=".0f", **full,  # 1334, not 1.33e+3
                                              tooltip=_ROUND_TIP)
        self.metric = w.Dropdown(options=list(self.METRICS), value=metric, description="metric", style=style,
                                 **full)
        self.trials = w.BoundedIntText(value=trials, min=2, max=100_000, description="trials", style=style,
                                       **full)
        self.plot = w.Image(format="svg+xml", layout=w.Layout(width="100%", max_width="900px", min_width="0"))
        self.table = w.HTML()
        self.status = w.HTML()
        self.exports = w.HTML()
        self.path = w.Text(value="explorer.toml", description="config file", style=style)
        self.save_button = w.Button(description="save TOML", tooltip="write the configuration to the file")
        self.load_button = w.Button(description="load TOML", tooltip="read the configuration from the file")
        self.pin_button = w.ToggleButton(value=False, description="compare: pin as A",
                                         tooltip="keep this configuration as A; change the controls for B")
        self.command_text = w.Textarea(value="", description="as command", rows=3, style=style,
                                       layout=w.Layout(width="95%"))
        self.save_button.on_click(lambda _: self._guard(lambda: self.save(self.path.value)))
        self.load_button.on_click(lambda _: self._guard(lambda: self.load(self.path.value)))
        self.pin_button.observe(self._on_pin, names="value")
        self.frame = None
        self.pinned = None
        self.busy = False
        self._loading = False
        self.controls = (self.scenario, self.entry, self.protocol, self.strategies, self.cpus,
                         self.do_irq_rate, self.tail_rate, self.sync_round_us, self.metric, self.trials)
        for c in self.controls:
            c.observe(self.update, names="value")
        left = w.VBox(list(self.controls) + [self.status],
                      layout=w.Layout(width="330px", flex="0 0 330px"))
        right = w.Box([self.plot], layout=w.Layout(flex="1 1 420px", min_width="0", max_width="900px"))
        files = w.HBox([self.path, self.save_button, self.load_button, self.pin_button],
                       layout=w.Layout(flex_flow="row wrap"))
        self.widget = snapshot_box([w.HBox([left, right], layout=w.Layout(flex_flow="row wrap", width="100%")),
                                    self.table, self.exports, files, self.command_text])
        self.update()

    # -- the configuration ----------------------------------------------------------------
    def config(self) -> dict:
        """The controls' values as a plain dict (keys :data:`CONFIG_KEYS`; rates in calls/s, round in µs)."""
        return {"scenario": self.scenario.value, "entry": self.entry.value, "protocol": self.protocol.value,
                "strategies": list(self.strategies.value), "cpus": [int(c) for c in self.cpus.value],
                "do_irq_rate": float(self.do_irq_rate.value), "tail_rate": float(self.tail_rate.value),
                "sync_round_us": float(self.sync_round_us.value), "metric": self.metric.value,
                "trials": int(self.trials.value)}

    def set_config(self, config: dict) -> None:
        """Set the controls from a :meth:`config` dict (missing keys keep their value); one update.

        Raises :class:`ConfigError` for an unknown key or a value a control refuses.
        """
        unknown = sorted(set(config) - set(self.CONFIG_KEYS))
        if unknown:
            raise ConfigError(f"config: unknown key {unknown[0]!r}; choose from {', '.join(self.CONFIG_KEYS)}")
        self._loading = True
        try:
            for key, value in config.items():
                control = getattr(self, key)
                try:
                    if key == "strategies":
                        control.value = tuple(value)
                    elif key == "cpus":
                        lo, hi = (int(v) for v in value)
                        control.index = (CPU_CHOICES.index(lo), CPU_CHOICES.index(hi))
                    else:
                        control.value = value
                except Exception as exc:  # traitlets' TraitError, ValueError from index(): one line
                    raise ConfigError(f"{key}: {value!r} is not accepted ({exc})") from None
        finally:
            self._loading = False
        self.update()

    def grid_tables(self) -> list[dict]:
        """The grid as a list of :func:`workbench.race.experiment.race_grid` keyword dicts, one per strategy."""
        c = self.config()
        lo, hi = c["cpus"]
        if not c["strategies"]:
            raise ConfigError("strategies: choose at least one strategy")
        hot = dict(DEFAULT_HOT)
        hot["do_IRQ"] = c["do_irq_rate"]
        tables = []
        for s in c["strategies"]:
            t = {"scenario": c["scenario"], "entry": c["entry"], "strategy": s,
                 "cpus": [x for x in CPU_CHOICES if lo <= x <= hi], "hot": hot, "tail_rate": c["tail_rate"],
                 "sync_round_ns": c["sync_round_us"] * 1e3, "trials": c["trials"]}
            if s != "stop_machine":
                t["protocol"] = c["protocol"]
            tables.append(t)
        return tables

    def grid(self):
        """The :class:`workbench.sweep.engine.Grid` the controls describe."""
        return Grid.concat(race_grid(**t) for t in self.grid_tables())

    def to_toml(self) -> str:
        """The configuration as TOML: ``[explorer]`` (the controls) and ``[[grid]]`` (the sweep's points)."""
        lines = ["# int3 workbench explorer configuration",
                 "# reload with Explorer.load(FILE); run with: int3-workbench sweep --config FILE",
                 f"seed = {self.seed}", "", "[explorer]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in self.config().items()]
        for t in self.grid_tables():
            lines += ["", "[[grid]]"] + [f"{k} = {_toml_value(v)}" for k, v in t.items()]
        return "\n".join(lines) + "\n"

    def save(self, path) -> Path:
        """Write :meth:`to_toml` to *path*; return it. The status line says where."""
        p = write_atomic(Path(path), self.to_toml().encode("utf-8"), what="config")
        self.status.value = f"saved the configuration to {html.escape(str(p.resolve()))}"
        return p

    def load(self, path) -> None:
        """Set the controls from a TOML file written by :meth:`save`. ConfigError if it is not one."""
        p = Path(path)
        doc = parse_document(read_input(p, "config"), "toml", f"config {p.name}")
        if not isinstance(doc.get("explorer"), dict):
            raise ConfigError(f"config: {p} has no [explorer] table")
        self.set_config(doc["explorer"])

    def command(self, path="explorer.toml") -> str:
        """The equivalent command line: the saved configuration swept by ``int3-workbench sweep``.

        The sweep computes the same points with the same seed, so its
        Parquet holds the numbers shown here.
        """
        return (f"int3-workbench sweep --config {path} --seed {self.seed} --out explorer\n"
                f"# in Python: sweep(Grid.concat(race_grid(**t) for t in tomllib.load(open({path!r}, 'rb'))['grid']),"
                f" seed={self.seed})")

    def to_csv(self, path=None) -> str:
        """The table behind the plot (both configurations when comparing) as CSV text, full precision.

        Rows carry their provenance columns (code version, seed, ...) and a
        ``config`` column (``A``/``B`` when comparing, else ``current``).
        Written to *path* too if given.
        """
        frame = self._table_frame()
        text = frame.to_csv(index=False, lineterminator="\n")
        if path is not None:
            write_atomic(Path(path), text.encode("utf-8"), what="csv")
        return text

    # -- compare ------------------------------------------------------------------------
    def pin(self) -> None:
        """Keep the current configuration and frame as "A"; later changes are "B", drawn beside it."""
        if self.frame is None:
            raise ConfigError("compare: nothing to pin yet (the last update failed)")
        self.pinned = {"config": self.config(), "frame": self.frame}
        if not self.pin_button.value:
            self.pin_button.value = True  # runs _on_pin -> update
        else:
            self.update()

    def unpin(self) -> None:
        """Leave compare mode."""
        self.pinned = None
        if self.pin_button.value:
            self.pin_button.value = False
        else:
            self.update()

    def _on_pin(self, change):
        if change["new"] and self.pinned is None and self.frame is not None:
            self.pinned = {"config": self.config(), "frame": self.frame}
        elif not change["new"]:
            self.pinned = None
        self.pin_button.description = "compare: unpin A" if change["new"] else "compare: pin as A"
        self.update()

    def _label(self, config, sep=", ") -> str:
        return (f"{config['scenario']} [{scenario_kernel(config['scenario'])}], {config['protocol']}, "
                f"entry {config['entry']}{sep}"
                f"round {human_ns(config['sync_round_us'] * 1e3)} on 24 CPUs")

    def _table_frame(self):
        m = self.metric.value
        cols = ["strategy", "protocol", "cpus", f"{m}_mean", f"{m}_lo", f"{m}_hi", f"{m}_cf"]
        prov = ["scenario", "entry", "seed", "code_version", "workbench_version", "grid", "run"]
        parts = []
        if self.pinned is not None:
            parts.append(self.pinned["frame"].assign(config="A"))
            parts.append(self.frame.assign(config="B"))
        elif self.frame is not None:
            parts.append(self.frame.assign(config="current"))
        if not parts:
            return pd.DataFrame(columns=["config"] + cols)
        frame = pd.concat(parts, ignore_index=True)
        missing = [c for c in cols if c not in frame.columns]
        if missing:  # the pinned frame was made for another metric: its rows lack this one
            frame = frame.reindex(columns=list(frame.columns) + missing)
        return frame[["config"] + cols + [c for c in prov if c in frame.columns]]

    # -- drawing ------------------------------------------------------------------------
    def _guard(self, action):
        try:
            action()
        except ConfigError as exc:
            self.status.value = f"<span style='color:#D55E00'><b>error:</b> {html.escape(str(exc))}</span>"

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        for c in self.controls:
            c.disabled = busy
        if busy:
            self.status.value = "<span style='color:#0072B2'>&#9203; computing&hellip;</span>"

    def update(self, change=None):
        """Run the grid, redraw the plot and the table (errors go to the status line)."""
        from workbench.figures import plots  # start-up: matplotlib, only once an Explorer draws
        from workbench.figures.style import style  # start-up: matplotlib (as above)

        if self._loading:
            return
        t0 = time.perf_counter()
        self._set_busy(True)
        try:
            frame = sweep(self.grid(), seed=self.seed, backend="serial", cache=False, progress=False)
        except ConfigError as exc:
            self._set_busy(False)
            self.status.value = f"<span style='color:#D55E00'><b>error:</b> {html.escape(str(exc))}</span>"
            return
        self.frame = frame
        m = self.metric.value

        def scaled(f):
            f = f.copy()
            if m.endswith("_ns"):  # plot milliseconds, as the axis label says
                for s in ("mean", "lo", "hi"):
                    f[f"{m}_{s}"] = f[f"{m}_{s}"] / 1e6
            return f

        if self.pinned is not None and f"{m}_mean" in self.pinned["frame"]:
            # two-line panel titles: side by side, one line each would run into each other
            a, b = self._label(self.pinned["config"], "\n"), self._label(self.config(), "\n")
            fig = plots.drops_compare({f"A: {a}": scaled(self.pinned["frame"]), f"B: {b}": scaled(frame)}, metric=m)
        else:
            fig = plots.drops(scaled(frame), x="cpus", metrics=[m], size="wide")
            with style():
                fig.axes[0].set_title(f"{m} per patch ({self._label(self.config())})")
        buf = io.BytesIO()
        with style():
            fig.savefig(buf, format="svg")
        self.plot.value = buf.getvalue()
        self.figure = fig  # the last figure drawn (for tests and notebooks)
        table = self._table_frame()
        shown = [c for c in table.columns if c not in ("code_version", "workbench_version", "grid", "run", "seed")]
        self.table.value = _table_html(table, shown)
        self.exports.value = (_download_link("download table (CSV)", "explorer.csv", "text/csv",
                                             self.to_csv().encode())
                              + _download_link("download configuration (TOML)", "explorer.toml",
                                               "application/toml", self.to_toml().encode()))
        self.command_text.value = self.command(self.path.value or "explorer.toml")
        self._set_busy(False)
        self.status.value = (f"{len(frame)} points in {time.perf_counter() - t0:.2f} s"
                             + (" (comparing with pinned A)" if self.pinned is not None else ""))
