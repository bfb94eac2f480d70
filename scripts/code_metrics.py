"""Print the package's floors and the import arrows between them, its largest modules and longest functions.

``python scripts/code_metrics.py [ROOT]`` (ROOT: a checkout, default this one). Reads the source
with :mod:`ast` only (nothing is imported), so it runs on any revision of the tree.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path


def modules(pkg: Path):
    """(dotted name, path, is a package) of every module under *pkg*."""
    for path in sorted(pkg.rglob("*.py")):
        rel = path.relative_to(pkg.parent).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join(parts), path, path.name == "__init__.py"


def floors(pkg: Path) -> tuple[str, ...]:
    """``workbench.LAYERS`` read from the package's ``__init__.py``."""
    for node in ast.parse((pkg / "__init__.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "LAYERS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise SystemExit("no LAYERS in the package's __init__.py")


def imported(name: str, path: Path, is_pkg: bool):
    """Every ``workbench...`` module that the module *name* imports."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            if mod.startswith("workbench"):
                yield mod
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names if a.name.startswith("workbench"))


def floor_of(module: str, layers: tuple[str, ...]) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in layers else None


def main(root: Path) -> None:
    pkg = root / "workbench"
    layers = floors(pkg)
    rank = {f: i for i, f in enumerate(layers)}
    arrows: Counter[tuple[str, str]] = Counter()
    sizes, functions = [], []
    for name, path, is_pkg in modules(pkg):
        text = path.read_text()
        sizes.append((len(text.splitlines()), name))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                functions.append((node.end_lineno - node.lineno + 1, f"{name}.{node.name}"))
        mine = floor_of(name, layers)
        for mod in imported(name, path, is_pkg):
            theirs = floor_of(mod, layers)
            if mine and theirs:
                arrows[(mine, theirs)] += 1
    print("floors, bottom first:", " < ".join(layers))
    print("\nimport arrows between floors (importer -> imported: import statements)")
    for (a, b), n in sorted(arrows.items(), key=lambda kv: (rank[kv[0][0]], rank[kv[0][1]])):
        if a != b:
            kind = "DOWN" if rank[b] < rank[a] else "UP"
            print(f"  {a:8s} -> {b:8s} {n:4d}  {kind}")
    up = sum(n for (a, b), n in arrows.items() if rank[b] > rank[a])
    print(f"  arrows up: {up}; within a floor: {sum(n for (a, b), n in arrows.items() if a == b)}")
    print("\nten largest modules (lines)")
    for n, name in sorted(sizes, reverse=True)[:10]:
        print(f"  {n:5d}  {name}")
    print("\nten longest functions (lines)")
    for n, name in sorted(functions, reverse=True)[:10]:
        print(f"  {n:5d}  {name}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]))
