"""The report and the house-keeping a user expects: offline HTML, typed parameters, Makefile, citation."""

import re
import tomllib
from pathlib import Path

import pandas as pd
import pytest
import yaml

from workbench import __version__
from workbench.base.errors import ConfigError
from workbench.figures import job as figures
from workbench.ui import report

ROOT = Path(__file__).resolve().parents[2]

# about 30 s on two busy cores: started first (tests/conftest.py)
pytestmark = pytest.mark.slow(30)


def test_report_of_a_quick_run_is_one_offline_file_with_every_figure(tmp_path, monkeypatch):
    monkeypatch.setitem(figures.GRIDS, "quick",
                        {"cpus": [1, 24, 256], "sync_round_ns": [1e3, 1e7], "sites": [1, 56], "trials": 60})
    result = report.build_report(True, outdir=tmp_path, backend="serial", run_notebooks=False, progress=False)
    assert result.html == tmp_path / "report" / "report_quick.html"
    text = result.html.read_text()
    imgs = re.findall(r"<img alt='([^']+)' src='data:image/png;base64,", text)
    assert sorted(imgs) == sorted(f"{f.name}_quick" for f in figures.FIGURES)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    for name in ("drops_vs_cpus_quick", "tradeoff_quick", "bristot_quick", "outcomes_quick"):
        assert f"<h3>{name}</h3>" in text
    assert "quick grid" in text and "papermill" in text and "Provenance" in text
    # numbers for reading: no 2.78e+08 (the embedded images' base64 may spell "e+08" by chance: only
    # the text counts); each time column in one unit named in its header
    prose = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", text)
    assert not re.search(r"\de[+-]\d\d", prose)
    assert "patch<br><span class='u'>ms, mean" in prose or "patch <span class='u'>(ms" in prose
    # every summary table links its full CSV beside the report, and that file is the summary's
    for csv in sorted((tmp_path / "summary").glob("*_quick.csv")):
        assert f"href='tables/{csv.name}'" in text
        assert (tmp_path / "report" / "tables" / csv.name).read_bytes() == csv.read_bytes()
    # a long table is summarised: the outcome table's rows per trap site and phase become shares
    # per strategy and site kind; drops_vs_cpus becomes pivots over the CPU count
    outcomes = pd.read_csv(tmp_path / "summary" / "outcomes_quick.csv")
    section = prose.split("id='t-outcomes_quick'")[1].split("</section>")[0]
    assert len(outcomes) > 30 and 0 < section.count("<tr>") - 1 < len(outcomes)
    assert "share" in section and "cpus →" in prose.split("id='t-drops_vs_cpus_quick'")[1]
    assert "@media print" in text and "@page" in text


def test_render_html_refuses_a_remote_resource():
    with pytest.raises(ConfigError, match="offline"):
        report.render_html(title="t", provenance={}, tools={}, figures=[], tables=[],
                           notebook_html=[("nb", "<script src='https://cdn.example/x.js'></script>")])


def test_report_refuses_a_directory_without_notebooks(tmp_path):
    with pytest.raises(ConfigError, match="no NN_name.ipynb"):
        report.build_report(True, outdir=tmp_path, notebook_dir=tmp_path, progress=False)


@pytest.mark.parametrize("nb", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")), ids=lambda p: p.stem)
def test_notebook_parameters_are_typed_for_papermill(nb):
    import papermill

    params = papermill.inspect_notebook(str(nb))
    assert params
    for name, p in params.items():
        assert p["inferred_type_name"] not in ("None", "", None), f"{nb.name}: {name} has no type"


def test_makefile_targets_have_rules_and_clean_removes_every_output():
    text = (ROOT / "Makefile").read_text()
    phony = re.search(r"^\.PHONY:(.*)$", text, re.M).group(1).split()
    rules = set(re.findall(r"^([a-z][a-z-]*):", text, re.M))
    assert set(phony) <= rules, f"declared without a rule: {set(phony) - rules}"
    assert "demo" not in phony and "report" in phony
    clean = re.search(r"^clean:\n\t(.*)$", text, re.M).group(1)
    for d in ("data/cache", "data/figures", "data/summary", "data/sweeps", "data/report"):
        assert d in clean
    assert "--allow-root" in text and "id -u" in text


def test_citation_matches_the_package():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert cff["cff-version"] == "1.2.0" and cff["version"] == project["version"] == __version__
    assert cff["license"] == project["license"] and cff["title"] and cff["authors"]


def test_data_readme_names_every_summary_and_sweep():
    text = (ROOT / "data" / "README.md").read_text()
    for name in list(figures.grids(quick=True)) + ["drops_vs_cpus", "drops_vs_timing", "heatmap_skip", "batching",
                                                   "bristot", "tradeoff", "closed_form_check", "outcomes"]:
        assert name in text, name
    for col in ("code_version", "scenario", "entry", "seed", "grid", "run", "_quick"):
        assert col in text


def test_console_script_points_at_the_cli():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    module, func = project["scripts"]["int3-workbench"].split(":")
    import importlib

    assert callable(getattr(importlib.import_module(module), func))
    assert any(d.startswith("playwright") and ">=" in d and "<" in d for d in project["optional-dependencies"]["dev"])


def test_a_notebook_kernels_own_output_goes_to_its_log_not_the_terminal(tmp_path, capfd):
    """What the kernel process itself writes (ipykernel's TCP warning, "KeyboardInterrupt caught in
    kernel" at shutdown) lands in <name>.kernel.log beside the executed notebook; the cell's output
    stays in the notebook; `make report` prints only its own lines."""
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import os\nos.write(1, b'kernel-fd1-noise\\n')\nos.write(2, b'kernel-fd2-noise\\n')\nprint('cell output')")])
    src = tmp_path / "01_noise.ipynb"
    nbformat.write(nb, src)
    (tmp_path / "out").mkdir()
    (out,) = report.execute_notebooks([src], tmp_path / "out", timeout=120)
    seen = capfd.readouterr()
    assert "noise" not in seen.out + seen.err and "TCP" not in seen.err
    log = (tmp_path / "out" / "01_noise.kernel.log").read_text()
    assert "kernel-fd1-noise" in log and "kernel-fd2-noise" in log
    assert "cell output" in out.read_text()


def test_report_numbers_and_units_read_like_a_paper():
    from workbench.ui.format import readable
    from workbench.ui.report_tables import fmt_number, table_html, time_scale

    assert [fmt_number(v) for v in (1034418.0, 185.0865, 0.0342, 3.1e-5, 0.0, 24, float("nan"))] == \
        ["1,034,418", "185.1", "0.0342", "3.10×10⁻⁵", "0", "24", "–"]
    assert time_scale([3.3e4, 2.0e8, 2.8e8]) == (1e6, "ms") and time_scale([0.0]) == (1.0, "ns")
    frame = pd.DataFrame({"strategy": ["skip", "spin"], "cpus": [24, 24], "patch_ns_mean": [2.78e8, 2.9e8],
                          "patch_ns_lo": [2.7e8, 2.8e8], "patch_ns_hi": [2.86e8, 3.0e8], "patch_ns_cf": [1.0, 1.0],
                          "code_version": ["x", "x"]})
    out = table_html("t", frame, "tables/t.csv")
    assert "For every row: <span class='k'>cpus</span> 24" in out and "code_version" not in out
    assert "patch<br><span class='u'>ms, mean ± 95%</span>" in out and "278 <span class='pm'>± 8</span>" in out
    assert "_cf" not in out and "href='tables/t.csv'" in out
    styled = readable(frame[["strategy", "patch_ns_mean"]]).to_html()
    assert "patch_mean (ms)" in styled and ">278<" in styled and "e+08" not in styled


def test_report_outcome_summary_keeps_the_arches_apart():
    """v5.1 is an int3 entry of both arches: its i386 rows (emulated calls crash below a regs->sp
    that is not the stack) and x86_64 rows are shown apart, never pooled into one share."""
    from workbench.ui.report_tables import LONG_ROWS, table_html

    n = LONG_ROWS + 1
    frame = pd.DataFrame({"arch": ["i386", "x86_64"] * n, "scenario": "seed", "entry": "v5.1",
                          "strategy": "emulate_regs_caller", "site_kind": "ordinary",
                          "trapped_placements": [10, 30] * n, "violation": 0.0, "dropped_tracer": 0.0,
                          "dropped_livepatch": 0.0, "crash": [1.0, 0.0] * n, "deadlock": 0.0})
    out = table_html("outcomes", frame, "tables/outcomes.csv")
    assert out.count(">i386</span>") == 1 and out.count(">x86_64</span>") == 1
    assert "0.25" not in out  # the pooled crash share, (10 × 1 + 30 × 0) / 40
