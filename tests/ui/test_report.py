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
    # times in readable units in the tables, not 2.78e+08
    # (the embedded images' base64 may spell "e+08" by chance: only the text counts)
    prose = re.sub(r"base64,[A-Za-z0-9+/=]+", "base64,", text)
    assert re.search(r"<td>\d+(\.\d+)? (ms|s)</td>", prose) and "e+08" not in prose


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
    out = report._execute(src, tmp_path / "out", 120)
    seen = capfd.readouterr()
    assert "noise" not in seen.out + seen.err and "TCP" not in seen.err
    log = (tmp_path / "out" / "01_noise.kernel.log").read_text()
    assert "kernel-fd1-noise" in log and "kernel-fd2-noise" in log
    assert "cell output" in out.read_text()
