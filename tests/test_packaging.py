"""pyproject.toml is the one dependency list; environment.yml points at it."""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_environment_yml_points_at_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert env["channels"] == ["conda-forge", "nodefaults"]
    deps = env["dependencies"]
    python = next(d for d in deps if isinstance(d, str) and d.startswith("python"))
    assert python.replace("python", "") == project["requires-python"]
    assert "binutils" in deps and "pip" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict))
    # every extra that `make test` installs, and nothing pinned twice
    assert pip == ["-e .[dev]"]
    assert "dev" in project["optional-dependencies"]
    names = {d.split("[")[0].split(">")[0].split("<")[0].split("=")[0].strip() for d in deps if isinstance(d, str)}
    assert names <= {"python", "pip", "binutils"}, "conda pins would drift from pyproject"


def test_dependencies_are_ranges():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for dep in project["dependencies"]:
        assert ">=" in dep, f"{dep} has no lower bound"


def test_a_non_editable_install_runs_call_and_explore(tmp_path):
    """The wheel carries everything the emulator reads (asm sources, defs.inc, scenarios)."""
    target, src = tmp_path / "site", tmp_path / "src"
    # build from a copy: setuptools writes build/ and *.egg-info beside the sources
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "data", "build", "*.egg-info",
                                                             "__pycache__", "notebooks", "tests"))
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(src)], check=True, capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(target), "WORKBENCH_DATA": str(tmp_path / "data")}
    run = dict(cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    where = subprocess.run([sys.executable, "-c", "import workbench.kernel.image as m; print(m.__file__)"], **run)
    assert where.stdout.strip().startswith(str(target)), where.stdout + where.stderr
    call = subprocess.run([sys.executable, "-m", "workbench", "call", "--function", "do_IRQ",
                           "--ops", "livepatch,tracer", "--json"], **run)
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout)["body"] == "new"
    call = subprocess.run([sys.executable, "-m", "workbench", "call", "--arch", "x86_64", "--json"], **run)
    assert call.returncode == 0, call.stderr
    assert json.loads(call.stdout)["body"] == "new"
    explore = subprocess.run([sys.executable, "-m", "workbench", "explore", "--scenario", "seed_reverse",
                              "--strategy", "skip", "--mode", "exhaustive", "--functions", "fn_00001"], **run)
    assert explore.returncode == 0, explore.stderr
    assert "skip" in explore.stdout


def _bin_without(tmp_path, *hide):
    """A PATH directory with links to every command on PATH except *hide*."""
    d = tmp_path / "bin"
    d.mkdir()
    for p in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(p):
            continue
        for name in os.listdir(p):
            if name not in hide and not (d / name).exists():
                src = os.path.join(p, name)
                if os.access(src, os.X_OK) and os.path.isfile(src):
                    (d / name).symlink_to(src)
    return d


def test_system_deps_without_chromium_and_no_apt_says_what_to_run(tmp_path):
    """`make test` and .ci/run share scripts/system-deps: with Chromium missing and apt forbidden it
    stops with one line naming the package and the command, exit status 2."""
    env = {**os.environ, "PATH": str(_bin_without(tmp_path, "chromium")), "WORKBENCH_APT": "0",
           "WORKBENCH_CHROMIUM": "", "WORKBENCH_SKIP_BROWSER": ""}
    r = subprocess.run([str(ROOT / "scripts" / "system-deps"), "--browser"], env=env, capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: missing system package(s) chromium: run `sudo apt-get install")
    # binutils alone (what `make venv` checks) is there, so the check without --browser passes
    r = subprocess.run([str(ROOT / "scripts" / "system-deps")], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stderr == ""


def test_make_test_and_ci_run_share_the_system_check():
    make = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/system-deps --browser" in make.split("\ntest:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/system-deps --browser" in ci and "apt-get install" not in ci  # the logic lives in one place
