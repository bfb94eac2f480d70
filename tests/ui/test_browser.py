"""Notebooks 02, 06 and 07 in a real browser: JupyterLab + headless Chromium (Playwright).

What a person does: open the notebook in JupyterLab, Run > Run All Cells, look
at the widgets, move a control and watch the output follow. The test checks
that every widget view renders (no "Loading widget...", no widget error view,
no stderr or traceback output) and that changing a dropdown and moving a
slider changes the plot image or the HTML table/view in the page; the
explorer's compare toggle puts A and B in the table, and the step viewer's
"jump to next trap" button lands in the int3 entry with the frame being
built. (The HTML report in the same browser is ``test_report_browser.py``;
the browser itself and the screenshot folder are in ``conftest.py``.)

Needs the Python package ``playwright`` and a Chromium binary (Debian's
``chromium``: ``apt-get install -y chromium``; Playwright's own browser
download is not used). Missing either is a FAILURE, not a skip: CI must run
this. Set ``WORKBENCH_SKIP_BROWSER=1`` to skip it deliberately.

Environment:
  WORKBENCH_SKIP_BROWSER=1  skip this module
  WORKBENCH_SCREENSHOTS     where screenshots go (default: <repo>/data/screenshots)
  WORKBENCH_CHROMIUM        the Chromium binary (default: `chromium` on PATH, else /usr/bin/chromium)
  WORKBENCH_REPO            the repository root (default: two levels above tests/ui/)
  WORKBENCH_DATA            the workbench's data/cache dir: inherited by the server and its kernels
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow(90),  # about 90 s: started first
    pytest.mark.skipif(os.environ.get("WORKBENCH_SKIP_BROWSER") == "1",
                       reason="WORKBENCH_SKIP_BROWSER=1"),
]

REPO = Path(os.environ.get("WORKBENCH_REPO") or Path(__file__).resolve().parents[2])
NOTEBOOKS = REPO / "notebooks"

SERVER_START_S = 90      # JupyterLab answering on its port
KERNEL_IDLE_S = 90       # notebook open and its kernel idle
RUN_ALL_S = 240          # Run All Cells finished (measured: 5-10 s)
CHANGE_S = 60            # an output following a control (measured: < 2 s)
WIDGETS_S = 30           # widget views rendered after the run

# Top-level widget views each notebook displays, and the controls (by label) that must render.
EXPECTED = {
    "02_trapped_call": {"views": 1, "labels": ["arch", "strategy", "entry", "function", "patch step",
                                               "instruction"]},
    "06_explorer": {"views": 2, "labels": ["scenario", "arch", "int3 entry", "batching", "strategies", "CPUs",
                                           "do_IRQ calls/s", "tail calls/s", "IPI round (µs)", "metric",
                                           "trials", "config file", "strategy", "entry", "function",
                                           "patch step", "instruction"]},
    "07_model_checking": {"views": 1, "labels": ["step"]},
}


# -- the JupyterLab server -------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> list[int]:
    """Every live descendant of *pid* (from /proc), so kernels in their own session are found too."""
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            parent[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
    except OSError:
        return []


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group (it shuts its kernels down), then SIGKILL what is left."""
    descendants = _children(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    for pid in descendants:  # kernels run in sessions of their own: end them by id if still there
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


class Lab:
    def __init__(self, url, token, proc, root, log):
        self.url, self.token, self.proc, self.root, self.log = url, token, proc, root, log

    def log_tail(self, n=40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])

    def notebook_url(self, name: str) -> str:
        return f"{self.url}/lab/tree/{name}?token={self.token}&reset"


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    src = NOTEBOOKS
    if not (src / "02_trapped_call.ipynb").exists():
        pytest.fail(f"no notebooks at {src}: set WORKBENCH_REPO to the repository root", pytrace=False)
    base = tmp_path_factory.mktemp("lab")
    root = base / "notebooks"  # the server works on a copy: autosave and jupytext never touch the repo
    shutil.copytree(src, root, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    # A private Jupyter config/data/settings/workspace: a developer's own settings or user
    # kernelspecs cannot change what runs, and the "Jupyter news?" toast is answered "no" up front.
    env = dict(os.environ)  # WORKBENCH_DATA and friends are inherited by the server and its kernels
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_DATA_DIR", "data"),
                     ("JUPYTER_RUNTIME_DIR", "runtime"), ("JUPYTERLAB_SETTINGS_DIR", "settings"),
                     ("JUPYTERLAB_WORKSPACES_DIR", "workspaces"), ("IPYTHONDIR", "ipython")):
        (base / sub).mkdir()
        env[var] = str(base / sub)
    notif = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    notif.parent.mkdir(parents=True)
    notif.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))

    port, token = _free_port(), secrets.token_hex(16)
    log = base / "jupyterlab.log"
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
           f"--port={port}", "--ServerApp.port_retries=0", f"--ServerApp.token={token}",
           f"--notebook-dir={root}"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = Lab(f"http://127.0.0.1:{port}", token, proc, root, log)
    try:
        deadline = time.monotonic() + SERVER_START_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"JupyterLab exited with {proc.returncode}:\n{server.log_tail()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {SERVER_START_S} s:\n{server.log_tail()}",
                            pytrace=False)
            time.sleep(0.25)
        yield server
    finally:
        _stop(proc)


# -- driving JupyterLab -------------------------------------------------------------------------
def _wait(what, probe, timeout, page=None):
    """Poll *probe* until it returns something truthy; fail with *what* after *timeout* seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = ""
            if page is not None:
                prompts = page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()
                extra += f"\ncell prompts: {' '.join(t.strip() for t in prompts)}"
                extra += "".join(f"\nkernel status: {t}" for t in page.locator(".jp-StatusBar-TextItem")
                                 .all_text_contents() if "|" in t)
                if page.problems:
                    extra += "\nbrowser problems:\n" + "\n".join(page.problems[-10:])
                shot = page.shots / f"FAILED-{time.strftime('%H%M%S')}.png"
                page.screenshot(path=str(shot))
                extra += f"\nscreenshot: {shot}"
            pytest.fail(f"timed out after {timeout} s waiting for {what}{extra}", pytrace=False)
        time.sleep(0.25)


_KERNEL_IDLE = """() => Array.from(document.querySelectorAll('.jp-StatusBar-TextItem'))
                            .some(e => /\\|\\s*Idle$/.test(e.textContent.trim()))"""


def _dismiss_news(page):
    """The "get notified about official Jupyter news?" toast (pre-answered in settings; belt and braces)."""
    toast = page.locator(".jp-Notification-Toast, .Toastify__toast").filter(has_text="Jupyter news")
    if toast.count():
        toast.get_by_role("button", name="No").first.click()


def _kernel_idle(page):
    return page.evaluate(_KERNEL_IDLE)


def _no_dialog(page, name):
    """Fail at once on a JupyterLab dialog (a file load error, e.g. jupytext finding the .ipynb newer
    than its paired .py; a kernel chooser) instead of waiting for a notebook that will not come."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        text = " ".join(t.strip() for t in dialog.all_text_contents())
        pytest.fail(f"{name}: JupyterLab shows a dialog: {text}", pytrace=False)
    return True


def open_notebook(page, lab, name):
    t0 = time.monotonic()
    page.goto(lab.notebook_url(name + ".ipynb"))
    _wait(f"{name} to open", lambda: _no_dialog(page, name) and page.locator(".jp-Notebook").count(),
          KERNEL_IDLE_S, page)
    _wait(f"the kernel of {name} to be idle", lambda: _no_dialog(page, name) and _kernel_idle(page),
          KERNEL_IDLE_S, page)
    print(f"{name}: open with the kernel idle in {time.monotonic() - t0:.1f} s")
    _dismiss_news(page)
    # fold the file browser away: the notebook gets the page's width (for the screenshots)
    # (cosmetic: if a JupyterLab version lays the sidebar out differently, go on with it open)
    current = page.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab.lm-mod-current")
    try:
        current.first.click(timeout=5_000)
        current.first.wait_for(state="detached", timeout=5_000)
    except Exception:
        pass


def _kernel_python_is_ours(lab):
    """The notebook kernel runs on this interpreter's environment (the project's venv)."""
    kernels = [_cmdline(p) for p in _children(lab.proc.pid)]
    kernels = [c for c in kernels if any("ipykernel" in a for a in c)]
    assert kernels, "no ipykernel process under the JupyterLab server"
    want = os.path.realpath(os.path.dirname(sys.executable))
    for c in kernels:
        assert os.path.realpath(os.path.dirname(c[0])) == want, \
            f"kernel runs {c[0]}, not the environment of {sys.executable}"


def run_all(page, lab, name):
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()
    code_cells = sum(c["cell_type"] == "code" for c in
                     json.loads((lab.root / f"{name}.ipynb").read_text())["cells"])

    def done():
        prompts = [t.strip() for t in page.locator(".jp-CodeCell .jp-InputPrompt").all_text_contents()]
        if any("*" in t for t in prompts):
            return False
        if len(prompts) == code_cells and all(re.fullmatch(r"\[\d+\]:", t) for t in prompts):
            return True
        return page.locator(STDERR).count() > 0  # an error stops Run All: report it below
    t0 = time.monotonic()
    _wait(f"Run All Cells of {name}", done, RUN_ALL_S, page)
    print(f"{name}: Run All Cells in {time.monotonic() - t0:.1f} s")


STDERR = '[data-mime-type="application/vnd.jupyter.stderr"]'  # stderr streams and tracebacks alike


def check_widgets(page, name):
    errors = page.locator(STDERR).all_text_contents()
    if errors:
        pytest.fail(f"{name}: stderr/error output:\n" + "\n---\n".join(errors), pytrace=False)
    want = EXPECTED[name]
    views = page.locator(".jp-OutputArea-output > .jupyter-widgets")
    _wait(f"{want['views']} widget views in {name}", lambda: views.count() >= want["views"], WIDGETS_S, page)
    assert views.count() == want["views"]
    loading = page.get_by_text("Loading widget...")
    _wait(f"'Loading widget...' to go in {name}", lambda: loading.count() == 0, WIDGETS_S, page)
    assert page.locator(".jupyter-widgets-error-widget").count() == 0, f"{name}: a widget failed to render"
    for label in want["labels"]:
        assert _control(page, label).count() >= 1, f"{name}: no control labelled {label!r} rendered"
    assert page.locator(".jupyter-widgets").count() > 0
    statuses = [t for t in page.locator(".widget-html-content").all_text_contents() if t.startswith("error:")]
    assert not statuses, f"{name}: widget status shows an error: {statuses}"


def _control(scope, label):
    """The widget (dropdown, slider, text...) in *scope* whose description label reads exactly *label*."""
    frame = getattr(scope, "page", scope)  # a Locator's page, or the Page itself
    return scope.locator(".widget-inline-hbox").filter(
        has=frame.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")))


def _view(page, label):
    """The top-level widget view that holds a control labelled *label*."""
    views = page.locator(".jp-OutputArea-output > .jupyter-widgets").filter(
        has=page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")))
    assert views.count() == 1, f"expected one widget view with a {label!r} control, found {views.count()}"
    return views


_IMAGE_DIGEST = """async (img) => {
    const buf = await (await fetch(img.src)).arrayBuffer();
    const d = await crypto.subtle.digest('SHA-256', buf);
    return Array.from(new Uint8Array(d), b => b.toString(16).padStart(2, '0')).join('');
}"""


def _image_digest(img):
    """SHA-256 of the bytes the <img> shows (its src is a blob: URL, new on every update)."""
    try:
        return img.evaluate(_IMAGE_DIGEST)
    except Exception:  # the blob was revoked mid-update: ask again
        return None


def _settled(page, probe, timeout=CHANGE_S):
    """Wait for the kernel to be idle and *probe* to read the same twice in a row; return it."""
    last = object()

    def same():
        nonlocal last
        if not _kernel_idle(page):
            return False
        v = probe()
        ok, last = (v is not None and v == last), v
        return ok
    _wait("the outputs to settle", same, timeout, page)
    return last


def _changed(page, what, probe, before):
    return _wait(f"{what} to change", lambda: (lambda v: v if v is not None and v != before else None)(probe()),
                 CHANGE_S, page)


def screenshot_notebook(page, shots, name, tag):
    """Screenshots of the whole notebook, a viewport at a time: the notebook scrolls inside
    .jp-WindowedPanel-outer (not the page), so a full-page screenshot would show only the top."""
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-WindowedPanel-outer").first
    view, end = panel.evaluate("""e => {
        const cells = e.querySelectorAll('.jp-Cell');
        const last = cells[cells.length - 1];
        const end = last ? last.getBoundingClientRect().bottom - e.getBoundingClientRect().top + e.scrollTop
                         : e.scrollHeight;
        return [e.clientHeight, Math.min(end + 16, e.scrollHeight)];
    }""")
    step = max(int(view * 0.9), 100)
    tops = list(range(0, max(int(end - view), 0), step)) + [max(int(end - view), 0)]
    paths = []
    for i, top in enumerate(sorted(set(tops))[:20]):
        panel.evaluate("(e, y) => { e.scrollTop = y; }", top)
        page.wait_for_timeout(300)  # contentVisibility lays out the cells that came into view
        p = shots / f"{name}-{tag}-{i:02d}.png"
        page.screenshot(path=str(p))
        paths.append(p)
    panel.evaluate("e => { e.scrollTop = 0; }")
    return paths


def _slider_keys(page, control, keys):
    handle = control.locator(".noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    for k in keys:
        page.keyboard.press(k)


def run_notebook(page, lab, shots, name):
    """Open *name*, run all its cells, check its widgets rendered without errors, screenshot it."""
    open_notebook(page, lab, name)
    run_all(page, lab, name)
    check_widgets(page, name)
    screenshot_notebook(page, shots, name, "run")


# -- the tests ---------------------------------------------------------------------------------
def test_02_trapped_call_runs_and_its_step_viewer_follows_the_slider(page, lab, shots):
    name = "02_trapped_call"
    run_notebook(page, lab, shots, name)
    _kernel_python_is_ours(lab)

    viewer = _view(page, "instruction")
    view = viewer.locator(".widget-html-content:has(pre)")
    status = viewer.locator(".widget-html-content").filter(has_text=re.compile(r"^step \d+/\d+"))
    before = _settled(page, lambda: view.inner_html())
    viewer.screenshot(path=str(shots / f"{name}-viewer-before.png"))

    # the instruction slider, by keyboard: End moves the handle to the call's last instruction
    _slider_keys(page, _control(viewer, "instruction"), ["End"])
    after = _changed(page, "the step viewer after moving the instruction slider", lambda: view.inner_html(), before)
    assert "instructions" in after
    # the patch-step slider, by keyboard: one step back changes the step named in the status line
    step_before = status.text_content()
    _slider_keys(page, _control(viewer, "patch step"), ["ArrowLeft"])
    _changed(page, "the status line after moving the patch-step slider", lambda: status.text_content(), step_before)
    _settled(page, lambda: view.inner_html())
    viewer.screenshot(path=str(shots / f"{name}-viewer-after.png"))

    # "jump to next trap" from instruction 0 of the trap step: the view lands in the int3 entry and
    # says the frame is being built there (not "no pt_regs")
    _slider_keys(page, _control(viewer, "patch step"), ["ArrowRight"])
    _slider_keys(page, _control(viewer, "instruction"), ["Home"])
    v0 = _settled(page, lambda: view.inner_html())
    viewer.get_by_role("button", name="jump to next trap").click()
    v1 = _changed(page, "the step viewer after 'jump to next trap'", lambda: view.inner_html(), v0)
    assert "int3_entry_v5" in v1, v1[:400]
    assert viewer.locator(".widget-play").count() or viewer.locator("button[title*='play' i]").count() \
        or viewer.locator(".jupyter-widgets.widget-play").count(), "no play control"
    viewer.screenshot(path=str(shots / f"{name}-viewer-trap.png"))
    assert not page.locator(STDERR).count(), page.locator(STDERR).all_text_contents()


def test_06_explorer_runs_and_its_plot_and_table_follow_the_controls(page, lab, shots):
    name = "06_explorer"
    run_notebook(page, lab, shots, name)

    explorer = _view(page, "metric")
    img = explorer.locator("img.widget-image")
    table = explorer.locator(".widget-html-content:has(table)")
    assert img.count() == 1 and table.count() == 1, "the explorer shows no plot or no table"
    explorer_top = explorer.locator(":scope > .widget-hbox").first  # controls and plot; the table is below
    img_0 = _settled(page, lambda: _image_digest(img))
    table_0 = table.inner_html()
    explorer_top.screenshot(path=str(shots / f"{name}-explorer-before.png"))

    # a dropdown: the metric (the notebook leaves it at violations) to the patch duration, which the
    # IPI round below changes
    metric = _control(explorer, "metric").locator("select")
    target = "patch_ns" if metric.input_value() != "patch_ns" else "stall_ns"
    metric.select_option(target)
    table_1 = _changed(page, f"the table after choosing metric {target}", lambda: table.inner_html(), table_0)
    assert f"{target}_mean" in table_1
    img_1 = _changed(page, f"the plot after choosing metric {target}", lambda: _image_digest(img), img_0)
    img_1, table_1 = _settled(page, lambda: (_image_digest(img), table.inner_html()))
    explorer_top.screenshot(path=str(shots / f"{name}-explorer-metric.png"))

    # a slider, by keyboard: the IPI sync round one notch up (1000 -> 1334 µs) lengthens every patch
    ipi = _control(explorer, "IPI round (µs)")
    readout = ipi.locator(".widget-readout")
    r0 = readout.text_content()
    _slider_keys(page, ipi, ["ArrowRight"])
    _changed(page, "the IPI round readout", lambda: readout.text_content(), r0)
    _changed(page, "the table after moving the IPI round slider", lambda: table.inner_html(), table_1)
    _changed(page, "the plot after moving the IPI round slider", lambda: _image_digest(img), img_1)
    _settled(page, lambda: (_image_digest(img), table.inner_html()))
    explorer_top.screenshot(path=str(shots / f"{name}-explorer-ipi.png"))

    # compare: pin the current configuration as A, change the entry: the table lists A and B
    pin = explorer.get_by_role("button", name=re.compile("compare: pin as A"))
    pin.scroll_into_view_if_needed()
    pin.click()
    _settled(page, lambda: table.inner_html())
    img_pinned = _settled(page, lambda: _image_digest(img))
    t_pin = table.inner_html()
    _control(explorer, "int3 entry").locator("select").select_option("v5.1")
    t_cmp = _changed(page, "the table after changing the entry with A pinned", lambda: table.inner_html(), t_pin)
    assert ">A<" in t_cmp and ">B<" in t_cmp, t_cmp[:400]
    _changed(page, "the plot in compare mode", lambda: _image_digest(img), img_pinned)
    _settled(page, lambda: (_image_digest(img), table.inner_html()))
    explorer_top.screenshot(path=str(shots / f"{name}-explorer-compare.png"))
    links = explorer.locator("a[download]")
    assert sorted(links.evaluate_all("ls => ls.map(a => a.getAttribute('download'))")) == \
        ["explorer.csv", "explorer.toml"]

    # the step viewer: type an instruction number into the slider's readout
    viewer = _view(page, "instruction")
    view = viewer.locator(".widget-html-content:has(pre)")
    v0 = _settled(page, lambda: view.inner_html())
    insn = _control(viewer, "instruction").locator(".widget-readout")
    insn.scroll_into_view_if_needed()
    insn.fill("5")  # the readout is contenteditable: fill selects its text and types over it
    insn.press("Enter")
    v1 = _changed(page, "the step viewer after typing instruction 5", lambda: view.inner_html(), v0)
    assert "5 instructions" in v1
    viewer.screenshot(path=str(shots / f"{name}-viewer-after.png"))
    assert not page.locator(STDERR).count(), page.locator(STDERR).all_text_contents()


def _options(select):
    return [" ".join(t.split()) for t in select.locator("option").all_text_contents()]  # ipywidgets: nbsp


def test_06_explorer_arch_control_switches_the_kernel_at_1280px(browser, lab, shots):
    """At 1280 px: the explorer's arch dropdown switches the emulated kernel. The int3 entry offers
    that arch's own entries, the scenario list names each scenario's kernel on it, the table's rows
    and the plot follow; the step viewer's arch dropdown redraws the call on the other kernel."""
    name = "06_explorer"
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.problems = []
    try:
        open_notebook(pg, lab, name)
        run_all(pg, lab, name)
        check_widgets(pg, name)
        explorer = _view(pg, "metric")
        img = explorer.locator("img.widget-image")
        table = explorer.locator(".widget-html-content:has(table)")
        top = explorer.locator(":scope > .widget-hbox").first
        arch = _control(explorer, "arch").locator("select")
        entry = _control(explorer, "int3 entry").locator("select")
        scenario = _control(explorer, "scenario").locator("select")
        img_0, table_0 = _settled(pg, lambda: (_image_digest(img), table.inner_html()))
        # the notebook's last explorer cell switched it to x86_64
        assert arch.input_value() == "x86_64" and _options(entry) == ["v5.1", "v5.2"]
        assert "seed [real x86_64]" in _options(scenario) and ">x86_64<" in table_0
        top.scroll_into_view_if_needed()
        top.screenshot(path=str(shots / f"{name}-arch-x86_64-1280px.png"))

        arch.select_option("i386")
        table_1 = _changed(pg, "the table after choosing arch i386", lambda: table.inner_html(), table_0)
        _changed(pg, "the plot after choosing arch i386", lambda: _image_digest(img), img_0)
        img_1, table_1 = _settled(pg, lambda: (_image_digest(img), table.inner_html()))
        assert ">i386<" in table_1 and ">x86_64<" not in table_1 and ">v5.3<" in table_1
        assert _options(entry) == ["v5.1", "v5.3"] and entry.input_value() == "v5.3"
        assert "seed [i386 sketch]" in _options(scenario) and "tracer_add_probe [real i386]" in _options(scenario)
        errors = [t for t in explorer.locator(".widget-html-content").all_text_contents() if "error" in t]
        assert not errors, errors
        top.screenshot(path=str(shots / f"{name}-arch-i386-1280px.png"))
        pg.screenshot(path=str(shots / f"{name}-arch-window-1280px.png"))

        # the step viewer: arch x86_64 redraws the call with RIP and the v5.2 entry
        viewer = _view(pg, "instruction")
        view = viewer.locator(".widget-html-content:has(pre)")
        v0 = _settled(pg, lambda: view.inner_html())
        assert "i386 · patch step" in v0
        _control(viewer, "arch").locator("select").select_option("x86_64")
        v1 = _changed(pg, "the step viewer after choosing arch x86_64", lambda: view.inner_html(), v0)
        v1 = _settled(pg, lambda: view.inner_html())
        assert "x86_64 · patch step" in v1 and "entry v5.2" in v1 and "rip 0x" in v1, v1[:400]
        assert _options(_control(viewer, "entry").locator("select")) == ["v5.1", "v5.2"]
        viewer.scroll_into_view_if_needed()
        viewer.screenshot(path=str(shots / f"{name}-viewer-x86_64-1280px.png"))
        assert not pg.locator(STDERR).count(), pg.locator(STDERR).all_text_contents()
    finally:
        context.close()


_OVERFLOWS = """(root) => {
    const bad = [], name = e => (e.className && e.className.baseVal === undefined ? e.className : e.tagName)
        .toString().split(' ').filter(c => c.startsWith('widget') || c.startsWith('jupyter')).join('.') || e.tagName;
    const label = e => { const h = e.closest('.widget-inline-hbox'); const l = h && h.querySelector('.widget-label');
                         return (l && l.textContent.trim()) || (e.textContent || '').trim().slice(0, 30); };
    const plot = root.querySelector('img.widget-image');
    const pr = plot && plot.getBoundingClientRect();
    // every control inside the box that holds it
    for (const el of root.querySelectorAll('.widget-inline-hbox, .widget-button, .widget-toggle-button, '
                                           + '.widget-readout, select, input, .widget-image, .widget-hslider')) {
        const r = el.getBoundingClientRect();
        if (r.width === 0) continue;
        const box = el.parentElement.closest('.widget-box, .widget-inline-hbox, .widget-hslider') || root;
        const b = box.getBoundingClientRect();
        if (r.left < b.left - 1 || r.right > b.right + 1)
            bad.push(`${name(el)} [${label(el)}] ${r.left.toFixed(0)}-${r.right.toFixed(0)} outside its box `
                     + `${b.left.toFixed(0)}-${b.right.toFixed(0)}`);
        if (pr && el !== plot && !el.contains(plot) && !el.closest('.widget-html-content') &&
            r.left < pr.right - 1 && r.right > pr.left + 1 && r.top < pr.bottom - 1 && r.bottom > pr.top + 1)
            bad.push(`${name(el)} [${label(el)}] lies under the plot`);
    }
    // no text cut inside a control, no box that scrolls sideways (a table may scroll: it says so)
    for (const el of root.querySelectorAll('.widget-readout, select, .widget-label, .widget-box, .widget-inline-hbox'))
        if (el.scrollWidth > el.clientWidth + 1 && !el.closest('.widget-html-content'))
            bad.push(`${name(el)} [${label(el)}] is cut: content ${el.scrollWidth} px in ${el.clientWidth} px`);
    const out = root.closest('.jp-OutputArea-output');
    if (out && root.getBoundingClientRect().right > out.getBoundingClientRect().right + 1)
        bad.push('the explorer is wider than the output area');
    return bad;
}"""


@pytest.mark.parametrize("width", [1280, 1920])
def test_06_explorer_fits_the_window_with_the_file_browser_open(browser, lab, shots, width):
    """At 1280 and 1920 px, with JupyterLab's file browser open, every control of the explorer lies
    inside its box, no readout or list is cut, none sits under the plot, nothing scrolls sideways."""
    name = "06_explorer"
    context = browser.new_context(viewport={"width": width, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    pg.problems = []
    try:
        open_notebook(pg, lab, name)
        run_all(pg, lab, name)
        check_widgets(pg, name)
        files = pg.locator(".jp-SideBar.jp-mod-left .lm-TabBar-tab[data-id='filebrowser']")
        if files.count() and not pg.locator("#filebrowser:visible").count():
            files.first.click()  # open_notebook folded it away: the harder layout has it open
        explorer = _view(pg, "metric")
        _settled(pg, lambda: _image_digest(explorer.locator("img.widget-image")))
        explorer.scroll_into_view_if_needed()
        problems = explorer.evaluate(_OVERFLOWS)
        top = explorer.locator(":scope > .widget-hbox").first
        top.screenshot(path=str(shots / f"{name}-explorer-{width}px.png"))
        pg.screenshot(path=str(shots / f"{name}-window-{width}px.png"))
        assert not problems, f"at {width} px:\n" + "\n".join(problems)
        # the opening view shows the effect: skip's violations grow with the CPUs, not a row of zeros
        values = explorer.locator(".wb-table").evaluate("""t => {
            const h = Array.from(t.querySelectorAll('thead th'), th => th.textContent.trim());
            const i = h.indexOf('violations_mean');
            return i < 0 ? [] : Array.from(t.querySelectorAll('tbody tr'), tr => tr.children[i].textContent.trim()); }""")
        assert values and any(v not in ("0", "nan") for v in values), values
    finally:
        context.close()


def test_07_model_checking_runs_and_its_counterexample_replays_with_the_slider(page, lab, shots):
    name = "07_model_checking"
    run_notebook(page, lab, shots, name)
    viewer = _view(page, "step")
    view = viewer.locator(".widget-html-content").last
    before = _settled(page, lambda: view.inner_html())
    assert "P:" in before  # step 0: the patcher's first store
    _slider_keys(page, _control(viewer, "step"), ["End"])
    after = _changed(page, "the counterexample view after moving the step slider to the end",
                     lambda: view.inner_html(), before)
    assert "outcome" in after and "NULL pointer dereference" in after, after[:400]
    status = viewer.locator(".widget-html-content").filter(has_text=re.compile(r"^step \d+ of \d+"))
    n = int(re.search(r"of (\d+)", status.text_content()).group(1))
    assert status.text_content().startswith(f"step {n} of {n}"), status.text_content()
    viewer.screenshot(path=str(shots / f"{name}-viewer-end.png"))
    # back to the start, then "next event": the first site write (an int3 byte), named in the status
    _slider_keys(page, _control(viewer, "step"), ["Home"])
    v0 = _changed(page, "the view back at step 1", lambda: view.inner_html(), after)
    viewer.get_by_role("button", name="next event").click()
    _changed(page, "the view after 'next event'", lambda: view.inner_html(), v0)
    assert re.match(r"step (\d+) of \d+ · bytes of do_IRQ change", status.text_content()), status.text_content()
    assert viewer.locator(".widget-play").count(), "no play control"
    viewer.screenshot(path=str(shots / f"{name}-viewer-event.png"))
    assert not page.locator(STDERR).count(), page.locator(STDERR).all_text_contents()
