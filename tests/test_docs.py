"""The project's docs stand alone, name modules that exist and run.

Every kernel fact the workbench relies on is stated in docs/KERNEL.md, with
its kernel sources; nothing in the repository points at notes kept outside
it. Checked over every tracked text file (``git ls-files``; binary files and
``data/`` are skipped):

* no file names the old out-of-tree notes or their directory;
* every reference of the form ``docs/KERNEL.md §<number>`` (or a range
  ``§<a>-<b>``) names sections that exist;
* docs/KERNEL.md's own ``§<number>`` references name its sections, and its
  contents list matches its headings;
* every ``workbench.…`` name (and every backquoted ``floor.module…`` name) in
  README.md, data/README.md and docs/ is a module of the package or an
  attribute reached from one, and every fenced Python snippet there runs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KERNEL_MD = ROOT / "docs" / "KERNEL.md"

# Spelled in pieces so that this file does not contain what it forbids.
FORBIDDEN = ("DOMAIN" + ".md", "DESIGN" + ".md", "/work/" + "shared")

#: "docs/KERNEL.md §11", "docs/KERNEL.md §11-12", "docs/KERNEL.md §8–§12"
REFERENCE = re.compile(r"docs/KERNEL\.md\s*§\s*(\d+)(?:\s*[-–]\s*§?\s*(\d+))?")
#: a bare section reference inside docs/KERNEL.md: "§4", "§8–§10"
LOCAL_REFERENCE = re.compile(r"§\s*(\d+)(?:\s*[-–]\s*§?\s*(\d+))?")
HEADING = re.compile(r"^## (\d+)\. (.+?)\s*$", re.MULTILINE)


@lru_cache(maxsize=1)
def tracked_text_files() -> tuple[tuple[str, str], ...]:
    """(path, text) of every tracked file outside data/ that decodes as UTF-8 text."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, check=True,
                         capture_output=True).stdout.decode()
    files = []
    for rel in filter(None, out.split("\0")):
        if rel == "data" or rel.startswith("data/"):
            continue
        path = ROOT / rel
        if not path.is_file():  # deleted in the work tree, or a submodule
            continue
        raw = path.read_bytes()
        if b"\0" in raw:
            continue  # binary
        try:
            files.append((rel, raw.decode("utf-8")))
        except UnicodeDecodeError:
            continue  # binary
    return tuple(files)


def kernel_sections() -> dict[int, str]:
    """Section number -> title, from docs/KERNEL.md's "## N. Title" headings."""
    return {int(n): title for n, title in HEADING.findall(KERNEL_MD.read_text())}


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def _missing(matches, sections):
    """(position, reference text) of every match naming a section that does not exist."""
    bad = []
    for m in matches:
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) else lo
        if hi < lo or any(n not in sections for n in range(lo, hi + 1)):
            bad.append((m.start(), m.group(0)))
    return bad


def test_the_file_list_is_real():
    names = {rel for rel, _ in tracked_text_files()}
    assert "docs/KERNEL.md" in names and "workbench/race/timing.py" in names
    assert not any(n.startswith("data/") for n in names)


def test_no_file_points_outside_the_repository():
    hits = []
    for rel, text in tracked_text_files():
        for word in FORBIDDEN:
            for m in re.finditer(re.escape(word), text):
                hits.append(f"{rel}:{_line(text, m.start())}: {word}")
    assert not hits, "references to notes outside the repository:\n" + "\n".join(hits)


def test_kernel_md_sections_are_numbered_in_order_and_listed_in_its_contents():
    text = KERNEL_MD.read_text()
    sections = kernel_sections()
    assert list(sections) == list(range(1, len(sections) + 1)), "sections must be numbered 1, 2, 3, ..."
    assert len(sections) >= 15
    contents = text.split("## Contents", 1)[1].split("\n## ", 1)[0]
    listed = {int(n): title.strip() for n, title in re.findall(r"^(\d+)\. (.+)$", contents, re.MULTILINE)}
    assert listed == sections, "the contents list must match the section headings"


def test_every_kernel_md_reference_names_an_existing_section():
    sections = kernel_sections()
    found, bad = 0, []
    for rel, text in tracked_text_files():
        matches = list(REFERENCE.finditer(text))
        found += len(matches)
        bad += [f"{rel}:{_line(text, pos)}: {ref}" for pos, ref in _missing(matches, sections)]
    assert not bad, f"references to sections docs/KERNEL.md does not have ({sorted(sections)}):\n" + "\n".join(bad)
    assert found >= 20, f"only {found} references found: is the pattern still right?"


def test_kernel_md_own_section_references_exist():
    text = KERNEL_MD.read_text()
    sections = kernel_sections()
    bad = [f"docs/KERNEL.md:{_line(text, pos)}: {ref}"
           for pos, ref in _missing(LOCAL_REFERENCE.finditer(text), sections)]
    assert not bad, "docs/KERNEL.md refers to sections it does not have:\n" + "\n".join(bad)


# the file name in pieces, so that the bad examples below are not references of this file
_K = "docs/KERNEL" + ".md"


@pytest.mark.parametrize("text, ok", [
    (f"see {_K} §4.", True),
    (f"see {_K} §11-12", True),
    (f"see {_K} §8–§12", True),
    (f"see {_K} §99", False),
    (f"see {_K} §15-99", False),
])
def test_the_reference_check_itself(text, ok):
    sections = {n: "" for n in range(1, 17)}
    matches = list(REFERENCE.finditer(text))
    assert len(matches) == 1
    assert (not _missing(matches, sections)) == ok


# -- the docs name modules that exist, and their snippets run ----------------------------------

#: the text a reader is told to read or run: README.md and docs/*.md
DOC_FILES = sorted([ROOT / "README.md", ROOT / "data" / "README.md", *(ROOT / "docs").glob("*.md")])
#: a dotted name in the workbench package: ``workbench.emulate.explore.outcome_table``
DOTTED = re.compile(r"(?<![\w./-])workbench(?:\.[A-Za-z_]\w*)+")
#: a module path relative to the package, as the docs write it: `emulate.explore`, `race.plan.PLANS`
FLOOR_NAME = re.compile(r"`((?:base|kernel|emulate|sweep|race|anchor|figures|ui)\.[A-Za-z_][\w.]*?)[`(]")
#: a path in the package, as the docs write it: `workbench/race/timing.py`, `workbench/kernel/asm/`
PACKAGE_PATH = re.compile(r"`(workbench/[\w/.-]*)`")
#: a fenced Python snippet
SNIPPET = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def resolve(name: str) -> bool:
    """Whether *name* is a module of the package, or an attribute reached from the longest module prefix."""
    import importlib

    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def test_the_name_check_itself():
    assert resolve("workbench.emulate.explore.outcome_table")
    assert resolve("workbench.race.timing.Timing.for_round")
    assert resolve("workbench.LAYERS")
    assert not resolve("workbench.timing")
    assert not resolve("workbench.figures.regenerate")
    assert not resolve("workbench.emulate.explore.no_such_function")
    assert DOTTED.findall("see `workbench.plots`, and workbench.sweep.cache.") == ["workbench.plots",
                                                                                  "workbench.sweep.cache"]
    assert FLOOR_NAME.findall("`race.derive_plan()` and `emulate.explore`, not `data/x.csv`") == [
        "race.derive_plan", "emulate.explore"]


def test_every_workbench_name_in_the_docs_exists():
    names, bad = 0, []
    for path in DOC_FILES:
        text = path.read_text()
        found = [(m.start(), m.group(0)) for m in DOTTED.finditer(text)]
        found += [(m.start(), f"workbench.{m.group(1)}") for m in FLOOR_NAME.finditer(text)]
        for pos, name in found:
            names += 1
            if not resolve(name):
                bad.append(f"{path.relative_to(ROOT)}:{_line(text, pos)}: {name}")
    assert not bad, "the docs name what the package does not have:\n" + "\n".join(bad)
    assert names >= 20, f"only {names} names found: is the pattern still right?"


def test_every_package_path_in_the_docs_exists():
    paths, bad = 0, []
    for path in DOC_FILES:
        text = path.read_text()
        for m in PACKAGE_PATH.finditer(text):
            paths += 1
            if not (ROOT / m.group(1)).exists():
                bad.append(f"{path.relative_to(ROOT)}:{_line(text, m.start())}: {m.group(1)}")
    assert not bad, "the docs name files the package does not have:\n" + "\n".join(bad)
    assert paths >= 3, f"only {paths} paths found: is the pattern still right?"


def _snippets():
    for path in DOC_FILES:
        text = path.read_text()
        for m in SNIPPET.finditer(text):
            yield pytest.param(m.group(1), id=f"{path.relative_to(ROOT)}:{_line(text, m.start())}")


@pytest.mark.parametrize("code", list(_snippets()))
def test_every_python_snippet_in_the_docs_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "<snippet>", "exec"), {"__name__": "__snippet__"})


def test_the_docs_have_snippets():
    assert len(list(_snippets())) >= 1
