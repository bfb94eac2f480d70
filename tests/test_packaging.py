"""pyproject.toml is the one dependency list; environment.yml points at it."""

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
