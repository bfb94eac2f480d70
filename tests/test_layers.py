"""The package's floors: imports only go down, no cycles, no private names across modules.

The layers, bottom to top, are listed in :data:`workbench.LAYERS`. A module may
import its own layer and the layers below it; it may not import a module's
``_private`` name from another module, and it imports at module level (an
import inside a function needs a comment giving the start-up cost it avoids).
"""

import ast
from pathlib import Path

import workbench

PKG = Path(workbench.__file__).resolve().parent


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        yield ".".join(["workbench", *parts]), path, path.name == "__init__.py"


def _imports(name, path, is_pkg):
    """(line, imported module, imported names, inside a function, line text) of every workbench import."""
    tree = ast.parse(path.read_text())
    lines = path.read_text().splitlines()
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                mod = ".".join([*base, mod] if mod else base)
            names = [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            mod, names = None, []
            for a in node.names:
                if a.name.startswith("workbench"):
                    mod = a.name
        else:
            continue
        if not mod or not mod.startswith("workbench"):
            continue
        p, in_fn = node, False
        while p in parents:
            p = parents[p]
            if isinstance(p, (ast.FunctionDef, ast.AsyncFunctionDef)):
                in_fn = True
        yield node.lineno, mod, names, in_fn, lines[node.lineno - 1]


def _layer(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in workbench.LAYERS else None


def test_every_module_is_in_a_layer():
    loose = [m for m, _, _ in _modules() if m != "workbench" and _layer(m) is None
             and m not in ("workbench.__main__",)]
    assert loose == []


def test_imports_only_go_down():
    rank = {layer: i for i, layer in enumerate(workbench.LAYERS)}
    upward = []
    for name, path, is_pkg in _modules():
        mine = _layer(name)
        if mine is None:
            continue
        for line, mod, _, _, _ in _imports(name, path, is_pkg):
            theirs = _layer(mod) if mod != "workbench" else None
            if theirs is None or rank[theirs] > rank[mine]:
                upward.append(f"{name}:{line} imports {mod}")
    assert upward == []


def _type_checking_lines(path):
    """Line numbers of the imports under ``if TYPE_CHECKING:`` (annotations only: never executed)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            out |= {n.lineno for stmt in node.body for n in ast.walk(stmt)
                    if isinstance(n, (ast.Import, ast.ImportFrom))}
    return out


def test_no_import_cycles():
    """No cycle among the imports that run (those under ``if TYPE_CHECKING:`` name types only)."""
    graph = {}
    for name, path, is_pkg in _modules():
        typing_only = _type_checking_lines(path)
        graph[name] = {mod for line, mod, _, in_fn, _ in _imports(name, path, is_pkg)
                       if line not in typing_only and mod in dict.fromkeys(m for m, _, _ in _modules())}
    seen, stack, cycles = set(), [], []

    def visit(n):
        if n in stack:
            cycles.append(stack[stack.index(n):] + [n])
            return
        if n in seen:
            return
        seen.add(n)
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            visit(m)
        stack.pop()

    for n in sorted(graph):
        visit(n)
    assert cycles == []


def test_no_private_names_across_modules():
    bad = []
    for name, path, is_pkg in _modules():
        for line, mod, names, _, _ in _imports(name, path, is_pkg):
            if mod != name and any(n.startswith("_") for n in names):
                bad.append(f"{name}:{line} imports {[n for n in names if n.startswith('_')]} from {mod}")
    assert bad == []


def test_imports_inside_functions_say_why():
    bad = []
    for name, path, is_pkg in _modules():
        for line, mod, _, in_fn, text in _imports(name, path, is_pkg):
            if in_fn and "start-up" not in text:
                bad.append(f"{name}:{line} imports {mod} inside a function")
    assert bad == []


def test_sweep_sits_on_base_alone():
    """The sweep engine is one floor above base: it imports base and itself only, and every domain
    hands it its own experiment (the race's in race/, the model checker's in emulate/mc/)."""
    bad = [f"{name}:{line} imports {mod}" for name, path, is_pkg in _modules() if _layer(name) == "sweep"
           for line, mod, _, _, _ in _imports(name, path, is_pkg) if _layer(mod) not in ("base", "sweep")]
    assert bad == []
    assert workbench.LAYERS.index("sweep") == workbench.LAYERS.index("base") + 1


def test_the_model_checkers_work_items_live_on_its_floor():
    from workbench.emulate.mc.experiment import MC
    from workbench.sweep.experiment import Experiment

    assert isinstance(MC, Experiment) and type(MC).__module__ == "workbench.emulate.mc.experiment"
    assert not (PKG / "sweep" / "mc.py").exists()


def _vocabulary_constants():
    import workbench.base.vocabulary as v

    return {n for n in v.__all__ if n.isupper()}


def test_vocabularies_come_only_from_the_vocabulary():
    """STRATEGIES, ENTRIES, ARCHES, ... are defined once, in base/vocabulary.py: no other module
    binds one of those names at its top level, lists it in ``__all__`` or imports it from elsewhere."""
    names = _vocabulary_constants()
    bad = []
    for name, path, is_pkg in _modules():
        if name == "workbench.base.vocabulary":
            continue
        tree = ast.parse(path.read_text())
        for node in tree.body:
            targets = [node.target] if isinstance(node, ast.AnnAssign) else getattr(node, "targets", [])
            for t in targets:
                if isinstance(t, ast.Name) and t.id in names:
                    bad.append(f"{name}:{node.lineno} defines {t.id}")
                if isinstance(t, ast.Name) and t.id == "__all__" and isinstance(node.value, (ast.List, ast.Tuple)):
                    listed = {e.value for e in node.value.elts if isinstance(e, ast.Constant)} & names
                    bad += [f"{name}:{node.lineno} exports {n}" for n in sorted(listed)]
        for line, mod, imported, _, _ in _imports(name, path, is_pkg):
            if mod != "workbench.base.vocabulary":
                bad += [f"{name}:{line} imports {n} from {mod}" for n in imported if n in names]
    assert bad == []


def test_third_party_imports_inside_functions_say_why():
    """A third-party import inside a function (pandas, Unicorn, tqdm, ...) carries its start-up reason too,
    on its line or in the comment line above it."""
    bad = []
    for name, path, _ in _modules():
        text = path.read_text()
        lines = text.splitlines()
        tree = ast.parse(text)
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    mods = [node.module or ""]
                else:
                    continue
                top = {m.split(".")[0] for m in mods}
                if top & (set(__import__("sys").stdlib_module_names) | {"workbench"}) == top:
                    continue  # the standard library costs nothing worth saying; workbench: the test above
                if not any("start-up" in lines[i] for i in (node.lineno - 1, node.lineno - 2)):
                    bad.append(f"{name}:{node.lineno} imports {', '.join(sorted(top))} inside a function")
    assert sorted(set(bad)) == []
