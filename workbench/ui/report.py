"""One self-contained HTML report of every result: ``python -m workbench report`` (``make report``).

The report is for a reader without Jupyter or a network connection. It
runs, in order:

1. the figures job (:func:`workbench.figures.job.regenerate`, quick or
   full; served from the caches when nothing changed), so the figures and
   summary tables match the code;
2. every notebook under ``notebooks/`` with papermill on its default
   parameters, as many at a time as ``jobs`` (default: the CPUs; one with
   the serial backend), into ``data/report/notebooks/<name>.ipynb`` (the executed
   notebooks are kept beside the report, each with the ``.kernel.log``
   of what its kernel process wrote outside the cells);
3. one HTML file, ``data/report/report.html`` (``report_quick.html`` for a
   quick run): the provenance (code version, seed, grid, quick or full),
   the versions of the tools, every figure with its conditions caption,
   every summary table, and each executed notebook rendered by nbconvert.
   Images are embedded as ``data:`` URIs and no script, style sheet or font
   is fetched from elsewhere, so the file opens and prints offline.

What it reports on is the model of ftrace's call-site update on i386
(``arch/x86/kernel/ftrace.c``, ``arch/x86/kernel/alternative.c``) that the
rest of the package implements.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import re
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import pandas as pd

from workbench.base.version import VERSION as __version__
from workbench.base.errors import ConfigError, check_range
from workbench.base.paths import data_dir
from workbench.base.process import kill_group
from workbench.base.provenance import read_provenance
from workbench.base.store import write_atomic
from workbench.base.version import code_version
from workbench.figures.job import FIGURES, regenerate
from workbench.ui.report_tables import table_html

__all__ = ["NOTEBOOK_DIR", "ReportResult", "TOOLS", "build_report", "execute_notebooks", "notebooks", "render_html",
           "tool_versions"]

#: the paired notebooks (source checkout)
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
#: distributions whose versions the report lists
TOOLS = ("unicorn", "capstone", "pyelftools", "numpy", "pandas", "pyarrow", "matplotlib", "joblib",
         "papermill", "nbconvert", "nbformat", "ipykernel", "ipywidgets", "jupyterlab")
#: external references the report must not contain (it is read offline)
_REMOTE = re.compile(r"""<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*["']?(https?:)?//""", re.I)


@dataclass
class ReportResult:
    """What :func:`build_report` wrote: the HTML, the executed notebooks, and seconds per step."""

    html: Path
    notebooks: list = field(default_factory=list)
    figures: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)


def notebooks(directory: Path | None = None) -> list[Path]:
    """The report's notebooks (``NN_name.ipynb``), in order. ConfigError if there are none."""
    d = Path(directory) if directory is not None else NOTEBOOK_DIR
    found = sorted(d.glob("[0-9][0-9]_*.ipynb"))
    if not found:
        raise ConfigError(f"notebooks: no NN_name.ipynb notebooks under {d}")
    return found


def tool_versions() -> dict[str, str]:
    """``{name: version}`` of Python, the platform, the workbench and :data:`TOOLS`."""
    out = {"python": platform.python_version(), "platform": platform.platform(terse=True),
           "int3-workbench": f"{__version__} (code {code_version()})"}
    for name in TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def execute_notebooks(nbs: list[Path], outdir: Path, *, timeout: float, jobs: int = 1) -> list[Path]:
    """Run each of *nbs* with papermill on its default parameters into *outdir*, *jobs* at a time.

    Returns the executed copies' paths in the order of *nbs*. Each kernel
    runs in its notebook's directory. When one notebook fails, or the
    caller is interrupted (Ctrl-C), the notebooks not yet started are
    dropped and the running ones' kernels are killed, so the error comes
    at once and no kernel outlives the call.
    """
    import logging
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    kernels: list = []  # the kernel managers started so far (each thread appends its own)
    log = logging.getLogger("papermill")
    was_disabled = log.disabled
    pool = ThreadPoolExecutor(max_workers=max(1, min(jobs, len(nbs))), thread_name_prefix="notebook")
    futures = [pool.submit(_execute, nb, outdir, timeout, kernels) for nb in nbs]
    try:
        while True:  # in short waits: an interrupt is seen within a second, signal or not
            done, pending = wait(futures, timeout=0.5, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                failed[0].result()  # the first failure in the list's order raises here
            if not pending:
                return [f.result() for f in futures]
    except BaseException:
        # the other notebooks' "Kernel died ..." after this kill is its doing, not news: not printed
        log.disabled = True
        pool.shutdown(wait=False, cancel_futures=True)  # the notebooks not started yet never start
        for km in list(kernels):
            _kill_kernel(km)  # its thread's cell ends with a dead kernel, and the thread with it
        raise
    finally:
        pool.shutdown(wait=True)
        log.disabled = was_disabled


def _execute(nb: Path, outdir: Path, timeout: float, kernels: list) -> Path:
    """Run *nb* with papermill on its default parameters into *outdir*; the executed copy's path."""
    import papermill  # a second of start-up: imported only when notebooks are run

    out = outdir / nb.name
    log = out.with_suffix(".kernel.log")
    with open(log, "wb") as sink:
        # no cwd= for papermill: it changes the whole process's directory, which threads share; the
        # kernel manager starts the kernel in the notebook's directory instead
        papermill.execute_notebook(str(nb), str(out), progress_bar=False,
                                   kernel_name="python3", execution_timeout=int(timeout), log_output=False,
                                   kernel_manager_class=_quiet_kernel_manager(sink, nb.parent, kernels))
    return out


def _kill_kernel(km) -> None:
    """SIGKILL to the kernel *km* started (its own session, as jupyter_client starts kernels)."""
    proc = getattr(getattr(km, "provisioner", None), "process", None)
    if proc is not None and proc.poll() is None:
        kill_group(proc.pid)


def _quiet_kernel_manager(sink, cwd: Path, kernels: list):
    """A kernel manager whose kernel starts in *cwd* and writes its own stdout/stderr to *sink*
    (``<name>.kernel.log`` beside the executed notebook), not to the terminal: ipykernel's start-up
    warning about TCP transport and its "KeyboardInterrupt caught in kernel" at shutdown say nothing
    about the run (what the cells print is in the notebook itself). Each manager is added to
    *kernels* once its kernel is started."""
    from jupyter_client.manager import AsyncKernelManager  # start-up: with papermill, only for a report

    class QuietKernelManager(AsyncKernelManager):
        async def start_kernel(self, **kw):
            # Popen keyword arguments are passed down to the launcher (jupyter_client's documented kw)
            kw.setdefault("stdout", sink)
            kw.setdefault("stderr", sink)
            kw.setdefault("cwd", str(cwd))
            started = await super().start_kernel(**kw)
            kernels.append(self)
            return started

    return QuietKernelManager


_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def _mark_many(m) -> str:
    """A notebook table's opening tag and first row, with class ``many`` if that row has > 12 cells."""
    attrs, first = m[1], m[2]
    if len(re.findall(r"<t[hd]\b", first)) > 12:
        attrs = re.sub(r"\bclass=(['\"])", r"class=\1many ", attrs) if "class=" in attrs else attrs + " class='many'"
    return f"<table{attrs}>{first}</tr>"


def _notebook_html(path: Path) -> str:
    """One executed notebook as an HTML fragment: inputs, outputs, images inline, no scripts."""
    import nbformat  # start-up: only when a report is written
    from nbconvert import HTMLExporter  # start-up: only when a report is written

    nb = nbformat.read(path, as_version=4)
    # a widget view needs a live kernel: show the static snapshot the viewer saved beside it
    # (workbench.ui.snapshot); a widget without one is a progress bar, left out
    for cell in nb.cells:
        keep = []
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if _WIDGET_MIME in data:
                del data[_WIDGET_MIME]
                if "text/html" not in data:
                    continue
            keep.append(out)
        if "outputs" in cell:
            cell.outputs = keep
    nb.metadata.pop("widgets", None)
    exporter = HTMLExporter(template_name="basic", embed_images=True)
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nb)
    # widget views need a live kernel: keep their text fallback, drop the scripts
    body = re.sub(r"<script\b.*?</script>", "", body, flags=re.S | re.I)
    # a table of many columns may break its cells anywhere in print (.many), so it fits the page
    body = re.sub(r"<table\b([^>]*)>(.*?)</tr>", _mark_many, body, flags=re.S)
    # column names may break after an underscore, so a wide table fits a printed page
    body = re.sub(r"(<th\b[^>]*>)([^<]*_[^<]*)(</th>)", lambda m: m[1] + m[2].replace("_", "_<wbr>") + m[3], body)
    return body


def _data_uri(path: Path) -> str:
    mime = {".png": "image/png", ".svg": "image/svg+xml"}[path.suffix]
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


_CSS = """
body{font-family:"DejaVu Sans",Helvetica,Arial,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.4}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}h4{margin:1em 0 .2em}
img{max-width:100%;height:auto;box-sizing:border-box}
figure{margin:1.5em 0;break-inside:avoid;page-break-inside:avoid}figure img{border:1px solid #eee}
figcaption{font-size:.85em;color:#555}
.toc{columns:2;font-size:.9em}.toc li{break-inside:avoid}
table{border-collapse:collapse;font-size:.8em;margin:.4em 0 1em;font-variant-numeric:tabular-nums}
th,td{padding:2px 7px;text-align:right;border-bottom:1px solid #eee;vertical-align:top}
th{background:#f4f4f4;font-weight:600}th .u,h4 .u{font-weight:normal;color:#666;font-size:.9em}
th.span{text-align:center;font-weight:normal;color:#555}td.key,th.key{text-align:left}
td:has(> .txt){text-align:left}
.pm{color:#777;font-size:.9em;white-space:nowrap}
.prov td,.prov th{text-align:left}.nb{border-left:3px solid #ddd;padding-left:1em;margin:1em 0}
.tw{overflow-x:auto;max-width:100%}.const,.note,.src{font-size:.8em;color:#555;margin:.2em 0}.const .k{color:#222}
.output_subarea,.jp-OutputArea-output{overflow-x:auto;max-width:100%}
pre{white-space:pre-wrap;font-size:.8em;background:#f8f8f8;padding:.5em;overflow-x:auto}
.jp-InputArea-editor,.input_area{background:#f8f8f8}
@page{size:A4;margin:14mm 12mm}
@media print{
 body{max-width:none;margin:0;padding:0;font-size:9pt}
 h2{break-before:page;page-break-before:always}h2#provenance{break-before:auto;page-break-before:auto}
 h2,h3,h4{break-after:avoid;page-break-after:avoid}
 .nb{border:none;padding-left:0}
 .tw,.output_subarea,.jp-OutputArea-output{overflow:visible!important}
 table{font-size:7pt;max-width:100%}th,td{padding:1px 4px}
 tr{break-inside:avoid;page-break-inside:avoid}
 pre,pre[style]{font-size:6.5pt!important;white-space:pre-wrap!important;overflow-wrap:anywhere;overflow:visible}
 [style*="max-height"]{max-height:none!important;overflow:visible!important}
 a{color:inherit}.wb-snap{break-inside:auto}
 .wb-table{font-size:7pt!important}.wb-table :is(th,td){padding:1px 3px!important}
 .output_subarea table.many :is(td,th){overflow-wrap:anywhere}
}
"""


def render_html(*, title: str, provenance: dict, tools: dict, figures: list[tuple[Path, dict]],
                tables: list[tuple], notebook_html: list[tuple[str, str]]) -> str:
    """The report's HTML text from its parts (every image inline; nothing fetched from elsewhere).

    *figures* are ``(png_path, metadata)`` pairs (metadata from the
    figure's JSON: ``caption`` is shown under it), *tables* ``(name,
    frame, csv_href)`` triples (laid out by
    :func:`workbench.ui.report_tables.table_html`; *csv_href* is the full
    table's file, relative to the report), *notebook_html* ``(name,
    fragment)`` pairs. Raises :class:`ConfigError` if the result would
    reference a remote resource.
    """
    esc = html.escape
    toc = (["<li><a href='#provenance'>Provenance and tools</a></li>", "<li><a href='#figures'>Figures</a><ol>"]
           + [f"<li><a href='#{esc(png.stem)}'>{esc(png.stem)}</a></li>" for png, _ in figures]
           + ["</ol></li><li><a href='#tables'>Summary tables</a><ol>"]
           + [f"<li><a href='#t-{esc(t[0])}'>{esc(t[0])}</a></li>" for t in tables]
           + ["</ol></li><li><a href='#notebooks'>Notebooks</a><ol>"]
           + [f"<li><a href='#nb-{esc(name)}'>{esc(name)}</a></li>" for name, _ in notebook_html] + ["</ol></li>"])
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{_CSS}</style></head><body><h1>{esc(title)}</h1>",
             "<p>Every result of the int3 workbench in one file: figures, summary tables and the executed "
             "notebooks. Numbers are shown for reading: each table header names its unit, times in one "
             "unit per column; the full tables beside this file (<code>tables/</code>) keep full "
             "precision and nanoseconds (columns named <code>_ns</code>).</p>",
             "<ol class='toc'>", *toc, "</ol>",
             "<h2 id='provenance'>Provenance</h2><table class='prov'>"]
    parts += [f"<tr><th>{esc(str(k))}</th><td>{esc(str(v))}</td></tr>" for k, v in provenance.items()]
    parts.append("</table><h3>Tools</h3><table class='prov'>")
    parts += [f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in tools.items()]
    parts.append("</table><h2 id='figures'>Figures</h2>")
    for i, (png, meta) in enumerate(figures, 1):
        parts.append(f"<figure id='{esc(png.stem)}'><img alt='{esc(png.stem)}' src='{_data_uri(png)}'>"
                     f"<figcaption><b>Figure {i}</b> ({esc(png.stem)}). {esc(meta.get('caption', ''))}"
                     f"</figcaption></figure>")
    parts.append("<h2 id='tables'>Summary tables</h2>")
    for name, frame, *href in tables:
        link = href[0] if href else f"{name}.csv"
        parts.append(f"<section id='t-{esc(name)}'><h3>{esc(name)}</h3>{table_html(name, frame, link)}</section>")
    parts.append("<h2 id='notebooks'>Notebooks (executed on their default parameters)</h2>")
    for name, fragment in notebook_html:
        parts.append(f"<section class='nb' id='nb-{esc(name)}'><h3>{esc(name)}</h3>{fragment}</section>")
    parts.append("</body></html>\n")
    text = "".join(parts)
    remote = _REMOTE.search(text)
    if remote:
        raise ConfigError(f"report: the HTML would fetch {remote.group(0)!r}; it must open offline")
    return text


def build_report(quick: bool = False, *, outdir: Path | None = None, seed: int = 0, jobs: int | None = None,
                 backend: str = "local", scheduler: str | None = None, run_notebooks: bool = True,
                 timeout: float = 1800,
                 progress: bool = True, notebook_dir: Path | None = None) -> ReportResult:
    """Regenerate the figures, run the notebooks, write the HTML report; return what was written.

    Outputs go under *outdir* (default ``data/``): figures and tables where
    the figures job puts them, the report and executed notebooks in
    ``report/``. *backend*, *jobs* and *scheduler* run the sweeps
    (:func:`workbench.figures.job.regenerate`); *jobs* notebooks run at a time (default: the CPUs; one
    with the serial backend). *timeout* bounds one notebook cell (s). With
    *run_notebooks* False the notebooks are left out (a faster report of
    the figures and tables). Raises :class:`ConfigError` for a bad seed,
    timeout or backend, or when there are no notebooks.
    """
    check_range("timeout", timeout, 1, 86400)
    nbs = notebooks(notebook_dir) if run_notebooks else []  # checked before any work
    out = Path(outdir) if outdir is not None else data_dir()
    rep = out / "report"
    (rep / "notebooks").mkdir(parents=True, exist_ok=True)
    suffix = "_quick" if quick else ""
    seconds = {}

    t0 = time.perf_counter()
    job = regenerate(quick, backend=backend, jobs=jobs, scheduler=scheduler, seed=seed, outdir=out, progress=progress)
    seconds["figures job"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    # several notebooks at a time: each runs in a kernel process of its own
    executed = execute_notebooks(nbs, rep / "notebooks", timeout=timeout,
                                 jobs=1 if backend == "serial" else (jobs or os.cpu_count() or 1))
    seconds["notebooks"] = time.perf_counter() - t1

    figures = []
    for spec in FIGURES:
        png = out / "figures" / f"{spec.name}{suffix}.png"
        meta = json.loads((out / "figures" / f"{spec.name}{suffix}.json").read_text())
        figures.append((png, meta))
    tables = []
    (rep / "tables").mkdir(exist_ok=True)
    for csv in sorted((out / "summary").glob(f"*{suffix}.csv")):
        if not quick and csv.stem.endswith("_quick"):
            continue
        # the full table beside the report, so the report folder can be shared as it is
        write_atomic(rep / "tables" / csv.name, csv.read_bytes(), what="report table")
        tables.append((csv.stem, pd.read_csv(csv), f"tables/{csv.name}"))
    first = pd.read_csv(out / "summary" / f"drops_vs_cpus{suffix}.csv")
    prov = read_provenance(first)
    prov = {"run": prov["run"], "seed": prov["seed"], "code version": prov["code_version"],
            "workbench version": prov["workbench_version"],
            "grids": ", ".join(f"{k}: {v['points']} points" for k, v in job.sweeps.items()),
            "figures written by": "python -m workbench figures" + (" --quick" if quick else ""),
            "notebooks": ", ".join(p.stem for p in executed) or "not run"}
    text = render_html(title=f"int3 workbench report{' (quick grid)' if quick else ''}", provenance=prov,
                       tools=tool_versions(), figures=figures, tables=tables,
                       notebook_html=[(p.stem, _notebook_html(p)) for p in executed])
    path = rep / f"report{suffix}.html"
    write_atomic(path, text.encode("utf-8"), what="report")  # O_EXCL temporary, no link followed, rename
    seconds["total"] = time.perf_counter() - t0
    return ReportResult(html=path, notebooks=executed, figures=[p for p, _ in figures], seconds=seconds)
