"""The race explorer for JupyterLab (ipywidgets): controls, a live plot and a table.

Models nothing itself: every change runs the race simulator
(:mod:`workbench.race`, through :func:`workbench.sweep.engine.sweep`) over the
controls' grid on the emulated kernel the arch control picks (i386 or
x86_64, each with its own int3 entries and outcome tables), and
:class:`Explorer` draws the result. The step-through viewer of one call is
:mod:`workbench.ui.step_viewer`. Widget callbacks are plain methods
(``update``) wired with ``observe``, so setting a control's ``value`` from
Python runs them, no browser needed. Bad settings, a scenario the arch
cannot have among them, show as a one-line error in the status line
instead of a traceback.
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
from workbench.base.vocabulary import ARCHES, BREAKPOINT_BATCHINGS, ENTRIES_BY_ARCH, STRATEGIES
from workbench.emulate.scenario import load_scenario, scenario_names
from workbench.race.experiment import race_grid
from workbench.race.timing import Timing
from workbench.race.workload import DEFAULT_HOT
from workbench.sweep.engine import Grid, sweep
from workbench.ui.format import human_value
from workbench.ui.snapshot import snapshot_box

__all__ = ["CPU_CHOICES", "Explorer"]

#: CPU counts the explorer's range slider moves over
CPU_CHOICES = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256)


_TABLE_CSS = ("<style>.wb-table{border-collapse:collapse;font-size:11px;font-variant-numeric:tabular-nums}"
              ".wb-table th,.wb-table td{border:none;padding:1px 8px;text-align:right}"
              ".wb-table thead th{border-bottom:1px solid #999;position:sticky;top:0;background:#fff}"
              ".wb-table tbody tr:nth-child(even){background:#f5f5f5}"
              # the table's box may shrink below the table's width and scroll it (ipywidgets' HTML
              # content does not shrink by itself)
              ".widget-html-content:has(>.wb-scroll){flex-shrink:1;min-width:0;max-width:100%}"
              ".wb-scroll{max-height:260px;overflow:auto}</style>")


def _table_html(frame, columns) -> str:
    """A compact, borderless table (times in human units) in a box of ~12 rows that scrolls both ways."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(human_value(c, v))}</td>" for c, v in zip(columns, r, strict=True))
                   + "</tr>" for r in frame[columns].itertuples(index=False))
    return (_TABLE_CSS + "<div class='wb-scroll'><table class='wb-table'><thead><tr>"
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


def _kernel_on(scenario: str, arch: str) -> str:
    """The kernel a scenario is on *arch* (``real i386``, ``i386 sketch``, ``real x86_64``), or
    ``not on <arch>`` when that arch cannot have it."""
    sc = load_scenario(scenario)
    try:
        return sc.kernel_on(sc.check_arch(arch))
    except ConfigError:  # the one rule of which kernels can run a scenario
        return f"not on {arch}"


def _scenario_options(arch: str) -> list[tuple[str, str]]:
    """The scenario dropdown's (label, name) pairs on *arch*: each named with its kernel there."""
    return [(f"{n} [{_kernel_on(n, arch)}]", n) for n in scenario_names()]


class Explorer:
    """The race explorer: controls -> a sweep -> a live plot and a table, exportable and comparable.

    Controls: scenario, arch (the emulated kernel: i386 or x86_64; each
    scenario is labelled with the kernel it is on that arch, and one the
    arch cannot have is refused in the status line with the command line's
    one-line message), int3 entry (the arch's own), batching, strategies, CPU range, the
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
    CONFIG_KEYS = ("scenario", "arch", "entry", "batching", "strategies", "cpus", "do_irq_rate", "tail_rate",
                   "sync_round_us", "metric", "trials")

    def __init__(self, scenario="seed", strategies=("skip", "emulate_regs_caller", "emulate_old", "stop_machine"),
                 cpus=(1, 64), do_irq_rate=1000.0, tail_rate=2e6, sync_round_us=337.0, metric="violations",
                 trials=1000, entry=None, batching="batched", seed=0, arch="i386"):
        import ipywidgets as w  # start-up: ipywidgets, only once an explorer is drawn

        # the controls column has a fixed width and every control fills it, so readouts and lists
        # stay inside it; the plot takes the rest and wraps below the controls when the page is
        # narrow (JupyterLab at 1280 px with the file browser open)
        style = {"description_width": "104px"}
        full = {"layout": w.Layout(width="auto")}  # stretched to the column, margins included
        self.seed = int(check_range("seed", seed, 0, 2**63 - 1, integer=True))
        self.arch = w.Dropdown(options=list(ARCHES), value=arch, description="arch", style=style, **full)
        self.scenario = w.Dropdown(options=_scenario_options(arch), value=scenario, description="scenario",
                                   style=style, **full)
        entries = ENTRIES_BY_ARCH[arch]
        self.entry = w.Dropdown(options=list(entries), value=entries[-1] if entry is None else entry,
                                description="int3 entry", style=style, **full)
        self.batching = w.Dropdown(options=list(BREAKPOINT_BATCHINGS), value=batching,
                                   description="batching", style=style, **full)
        self.strategies = w.SelectMultiple(options=list(STRATEGIES), value=tuple(strategies),
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
        self.controls = (self.scenario, self.arch, self.entry, self.batching, self.strategies, self.cpus,
                         self.do_irq_rate, self.tail_rate, self.sync_round_us, self.metric, self.trials)
        for c in self.controls:
            c.observe(self._on_arch if c is self.arch else self.update, names="value")
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
        return {"scenario": self.scenario.value, "arch": self.arch.value, "entry": self.entry.value,
                "batching": self.batching.value,
                "strategies": list(self.strategies.value), "cpus": [int(c) for c in self.cpus.value],
                "do_irq_rate": float(self.do_irq_rate.value), "tail_rate": float(self.tail_rate.value),
                "sync_round_us": float(self.sync_round_us.value), "metric": self.metric.value,
                "trials": int(self.trials.value)}

    def set_config(self, config: dict) -> None:
        """Set the controls from a :meth:`config` dict (missing keys keep their value); one update.

        The arch is set first, so that the entry is one of its own. Raises
        :class:`ConfigError` for an unknown key or a value a control refuses.
        """
        unknown = sorted(set(config) - set(self.CONFIG_KEYS))
        if unknown:
            raise ConfigError(f"config: unknown key {unknown[0]!r}; choose from {', '.join(self.CONFIG_KEYS)}")
        self._loading = True
        try:
            for key, value in sorted(config.items(), key=lambda kv: kv[0] != "arch"):
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
            t = {"scenario": c["scenario"], "arch": c["arch"], "entry": c["entry"], "strategy": s,
                 "cpus": [x for x in CPU_CHOICES if lo <= x <= hi], "hot": hot, "tail_rate": c["tail_rate"],
                 "sync_round_ns": c["sync_round_us"] * 1e3, "trials": c["trials"]}
            if s != "stop_machine":
                t["batching"] = c["batching"]
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

    def _on_arch(self, change=None):
        """Another arch: the scenarios labelled with their kernel on it, its own int3 entries
        (the selected one kept if it has it, else its latest); then one update."""
        arch = self.arch.value
        loading, self._loading = self._loading, True
        try:
            scenario = self.scenario.value
            self.scenario.options = _scenario_options(arch)
            self.scenario.value = scenario
            entries = ENTRIES_BY_ARCH[arch]
            entry = self.entry.value if self.entry.value in entries else entries[-1]
            self.entry.options = list(entries)
            self.entry.value = entry
        finally:
            self._loading = loading
        self.update()

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
        arch = config.get("arch", "i386")
        return (f"{config['scenario']} [{_kernel_on(config['scenario'], arch)}], {config['batching']}, "
                f"{arch} entry {config['entry']}{sep}"
                f"round {human_ns(config['sync_round_us'] * 1e3)} on 24 CPUs")

    def _table_frame(self):
        m = self.metric.value
        cols = ["arch", "strategy", "batching", "cpus", f"{m}_mean", f"{m}_lo", f"{m}_hi", f"{m}_cf"]
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
