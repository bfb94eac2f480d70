"""Named patch scenarios: which ops are registered before and after a change.

A scenario is data, a small TOML file (``workbench/scenarios/*.toml``, or
any path a user gives), validated here with one-line errors::

    description = "..."
    [ops.<name>]
    kind = "tracer" | "livepatch"
    functions = "all" | ["do_IRQ", ...]    # the filter hash
    notrace = ["schedule"]                 # optional
    trampoline = true                      # livepatch only: its own trampoline
    [transition]
    before = ["<name>", ...]
    after = ["<name>", ...]
    [context]                              # optional: how each traced function is called
    do_IRQ = "interrupt"                   # process | irq_off | interrupt
    arches = ["x86_64"]                    # optional: the kernels that can run it (top level)
    i386_sketch = true                     # optional: also runs on i386 as the seed mail's sketch

Which kernels can run a scenario: a livepatch (``HAVE_LIVEPATCH`` is selected
only ``if X86_64``, arch/x86/Kconfig) or an ops with its own trampoline
(``create_trampoline()`` exists only under ``CONFIG_X86_64``,
arch/x86/kernel/ftrace.c) needs x86_64; everything else runs on both. A
scenario that needs x86_64 runs on i386 only if it says ``i386_sketch = true``
(the shipped livepatch scenarios, written for the mail's i386 sketch);
:meth:`Scenario.check_arch` refuses any other pairing in one line.

A function's calling context decides its interrupt flag during the call:
``process`` runs with IF = 1; ``irq_off`` (a process-context caller holding
interrupts off, e.g. ``__migrate_task()`` under ``migration_cpu_stop()``'s
``local_irq_disable()``, kernel/sched/core.c) and ``interrupt`` (entered
through an interrupt gate, which clears IF: ``do_IRQ()``,
arch/x86/kernel/irq.c) run with IF = 0. Only ``interrupt`` calls can reach
the CPU that is patching (it is not running process-context callers while
it patches). Defaults: :data:`DEFAULT_CONTEXT`, ``process`` otherwise.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

from workbench.base.errors import ConfigError, check_choice
from workbench.base.inputs import parse_document, read_input
from workbench.base.vocabulary import ARCHES
from workbench.kernel.ftrace import OPS_KINDS, FtraceOps, FtraceState, plan_transition
from workbench.kernel.image import KernelImage

__all__ = ["CONTEXTS", "DEFAULT_CONTEXT", "KERNELS", "SCENARIO_DIR", "Scenario", "check_scenario", "load_scenario",
           "scenario_kernel", "scenario_names"]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
_OPS_KEYS = {"kind", "functions", "notrace", "trampoline"}
#: calling contexts of a traced function
CONTEXTS = ("process", "irq_off", "interrupt")
#: the kernel's own contexts of the named hot functions (everything else: process)
DEFAULT_CONTEXT = {"do_IRQ": "interrupt", "__migrate_task": "irq_off"}


@dataclass(frozen=True)
class Scenario:
    """A transition between two sets of registered ops."""

    name: str
    description: str
    ops: tuple[FtraceOps, ...]
    before: tuple[str, ...]
    after: tuple[str, ...]
    context: tuple[tuple[str, str], ...] = ()  #: overrides of DEFAULT_CONTEXT
    arches: tuple[str, ...] = ()  #: kernels that can run it; () = derived from its ops
    i386_sketch: bool = False  #: runs on i386 too, as the seed mail's sketch

    @property
    def needs_x86_64(self) -> bool:
        """A livepatch or an ops with its own trampoline: only an x86_64 kernel has them."""
        return any(o.kind == "livepatch" or o.trampoline for o in self.ops)

    def runs_on(self) -> tuple[str, ...]:
        """The arches that can run this scenario as a real kernel would."""
        if self.arches:
            return self.arches
        return ("x86_64",) if self.needs_x86_64 else ARCHES

    def check_arch(self, arch: str) -> str:
        """*arch* if this scenario can run there (really, or as the i386 sketch); else ConfigError."""
        check_choice("arch", arch, ARCHES)
        if arch in self.runs_on() or (arch == "i386" and self.i386_sketch):
            return arch
        why = ("it needs a livepatch or a per-ops trampoline, which only x86_64 has (HAVE_LIVEPATCH if X86_64, "
               "create_trampoline() under CONFIG_X86_64)" if arch == "i386" and self.needs_x86_64
               else f"it says arches = {list(self.runs_on())}")
        raise ConfigError(f"scenario {self.name}: cannot run on arch {arch} ({why}); "
                          f"choose arch from {', '.join(self.runs_on())}")

    def kernel_on(self, arch: str) -> str:
        """The :data:`KERNELS` tag of this scenario on *arch*."""
        if arch == "i386":
            return self.kernel
        return "real x86_64"
    @property
    def kernel(self) -> str:
        """``i386 sketch`` if it needs a livepatch or a per-ops trampoline (x86_64 only), else ``real i386``."""
        return "i386 sketch" if any(o.kind == "livepatch" or o.trampoline for o in self.ops) else "real i386"

    def context_of(self, fn: str) -> str:
        """The calling context of *fn*: ``process``, ``irq_off`` or ``interrupt``."""
        return dict(self.context).get(fn, DEFAULT_CONTEXT.get(fn, "process"))

    def irq_off(self, fn: str) -> bool:
        """Whether calls of *fn* run with the interrupt flag clear."""
        return self.context_of(fn) != "process"

    def states(self, image: KernelImage) -> tuple[FtraceState, FtraceState]:
        """The ftrace states before and after, in *image*.

        Raises :class:`ConfigError` for a function the image does not have,
        and for a transition that leaves every site and trampoline call as
        it was (no text changes, so no call can ever trap).
        """
        updates = self.updates(image)
        b, a = updates[0][0], updates[-1][1]
        if b.text() == a.text() and b.trampoline_bytes() == a.trampoline_bytes():
            raise ConfigError(f"scenario {self.name}: before and after leave every site and trampoline call "
                              "as it is; nothing to patch, so no call can trap")
        return b, a

    def klp_transition(self) -> frozenset[str]:
        """Livepatch ops registered or unregistered here: their functions are in transition.

        ``__klp_enable_patch()`` runs ``klp_init_transition()`` (every task
        ``KLP_UNPATCHED``, every ``func->transition`` set) before
        ``klp_patch_object()`` registers the ops, and ``klp_start_transition()``
        only after; on disable, ``klp_complete_transition()`` unregisters the
        ops while ``transition`` is still set and every task is
        ``KLP_UNPATCHED`` (kernel/livepatch/core.c, transition.c).
        """
        by = {o.name: o for o in self.ops}
        return frozenset(n for n in set(self.before) ^ set(self.after) if by[n].kind == "livepatch")

    def updates(self, image: KernelImage) -> list[tuple[FtraceState, FtraceState]]:
        """The ftrace updates of the transition, in order: one per ops (un)registered.

        Each ``register_ftrace_function()`` / ``unregister_ftrace_function()``
        is its own ``ftrace_startup()`` / ``ftrace_shutdown()``; a livepatch
        registers one ops per patched function, one after another
        (``klp_patch_object()`` / ``klp_unpatch_object()`` walk the object's
        functions in order, kernel/livepatch/patch.c). Removals come first.
        """
        for o in self.ops:
            for f in sorted((o.functions or frozenset()) | o.notrace):
                if f not in image.functions:
                    names = list(image.functions)
                    raise ConfigError(f"scenario {self.name}: ops.{_toml_name(o.name)} names unknown function "
                                      f"{f!r}; choose from {', '.join(names[:8])}"
                                      f"{', ...' if len(names) > 8 else ''} ({len(names)} in this image)")
        for f, _ in self.context:
            if f not in image.functions:
                names = list(image.functions)
                raise ConfigError(f"scenario {self.name}: context names unknown function {f!r}; choose "
                                  f"from {', '.join(names[:8])}{', ...' if len(names) > 8 else ''}")
        by = {o.name: o for o in self.ops}
        for n in sorted(set(self.before) | set(self.after)):
            if not any(by[n].traces(f) for f in image.functions):
                raise ConfigError(f"scenario {self.name}: ops.{_toml_name(n)} traces no function (its functions "
                                  "are all in its notrace list); name a function it traces")
        moving = self.klp_transition()
        cur = list(self.before)
        seq = [cur]
        for n in self.before:
            if n not in self.after:
                cur = [m for m in cur if m != n]
                seq.append(cur)
        for n in self.after:
            if n not in cur:
                cur = cur + [n]
                seq.append(cur)
        states = [FtraceState(image, tuple(by[n] for n in names), self.ops, moving) for names in seq]
        return list(pairwise(states))

    def plan(self, image: KernelImage, per_site: bool = False):
        """The kernel-ordered plan of changes: each update's
        :func:`workbench.kernel.ftrace.plan_transition`, one after another."""
        self.states(image)  # refuses a transition that changes nothing
        return [step for b, a in self.updates(image) for step in plan_transition(b, a, per_site=per_site)]

    def removing(self) -> frozenset[str]:
        """Handler kinds whose ops are being unregistered."""
        by = {o.name: o for o in self.ops}
        return frozenset(by[n].kind for n in set(self.before) - set(self.after)) - \
            frozenset(by[n].kind for n in self.after)

    def registered(self) -> frozenset[str]:
        """Handler kinds registered and not being removed: their misses are drops."""
        by = {o.name: o for o in self.ops}
        return frozenset(by[n].kind for n in self.after)

    def livepatched(self) -> frozenset[str]:
        """Functions filtered by a regs-saving ops (livepatch, or a kprobe-like probe):
        the site kind the tables and figures call ``livepatched``."""
        return frozenset(f for o in self.ops if o.kind in ("livepatch", "probe") and o.functions
                         for f in o.functions)


#: which kernel can run a scenario: short tag -> what it means
KERNELS = {
    "real i386": "a real i386 kernel can have it (ftrace ops through the shared trampolines; "
                 "KPROBES_ON_FTRACE exists on i386)",
    "real x86_64": "a real x86_64 kernel can have it (livepatch, per-ops trampolines, KPROBES_ON_FTRACE)",
    "i386 sketch": "the seed mail's sketch, not a kernel: HAVE_LIVEPATCH is selected only if X86_64 and "
                   "per-ops trampolines are built only under CONFIG_X86_64 (arch/x86/Kconfig, "
                   "arch/x86/kernel/ftrace.c)",
}


def scenario_kernel(name_or_path: str) -> str:
    """The :data:`KERNELS` tag of a scenario: ``real i386`` or ``i386 sketch``."""
    return load_scenario(name_or_path).kernel


def scenario_names() -> list[str]:
    """The named scenarios shipped in ``workbench/emulate/scenarios/``, read now (not at import)."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def check_scenario(name_or_path: str) -> str:
    """*name_or_path* if it is a named scenario or a valid scenario file; else ConfigError.

    A path is loaded and validated (:func:`load_scenario`), so a bad file is
    refused before any work, with the same one-line message.
    """
    load_scenario(name_or_path)
    return name_or_path


def load_scenario(name_or_path: str) -> Scenario:
    """Load a named scenario or a TOML file; raises ConfigError on any defect."""
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path).strip():
        raise ConfigError(f"scenario: expected a name from {', '.join(scenario_names())} or a TOML file, "
                          f"got {name_or_path!r}")
    p = Path(name_or_path)
    if p.suffix == ".toml" or p.exists():
        path, name = p, p.stem
    else:
        check_choice("scenario", str(name_or_path), scenario_names())
        path, name = SCENARIO_DIR / f"{name_or_path}.toml", str(name_or_path)
    data = read_input(path, "scenario")  # a regular file, at most 1 MiB: never a FIFO or a device
    # a new object each time (a scenario loaded again is another object), parsed once per content
    return dataclasses.replace(_parse_scenario(name, data))


@functools.lru_cache(maxsize=64)
def _parse_scenario(name: str, data: bytes) -> Scenario:
    """The scenario *name* whose file holds *data*; remembered by content (a sweep checks
    the same file for every point), so an edited file is parsed again. ConfigError on any defect."""
    doc = parse_document(data, "toml", f"scenario {name}")  # UTF-8, valid TOML, nested at most 16 deep
    unknown = set(doc) - {"description", "ops", "transition", "context", "arches", "i386_sketch"}
    if unknown:
        raise ConfigError(f"scenario {name}: unknown keys {sorted(unknown)}; "
                          "expected description, ops, transition, context, arches, i386_sketch")
    arches = doc.get("arches", [])
    if not isinstance(arches, list) or len(set(arches)) != len(arches):
        raise ConfigError(f"scenario {name}: arches must be a list of distinct names from {', '.join(ARCHES)}")
    for a in arches:
        check_choice(f"scenario {name}: arches", a, ARCHES)
    if not isinstance(doc.get("description", ""), str):
        raise ConfigError(f"scenario {name}: description must be a string, got {type(doc['description']).__name__}")
    sketch = doc.get("i386_sketch", False)
    if not isinstance(sketch, bool):
        raise ConfigError(f"scenario {name}: i386_sketch must be true or false")
    ctx = doc.get("context", {})
    if not isinstance(ctx, dict):
        raise ConfigError(f"scenario {name}: context must be a table of function = context")
    for fn, c in ctx.items():
        check_choice(f"scenario {name}: context.{fn}", c, CONTEXTS)
    if not isinstance(doc.get("ops"), dict) or not doc["ops"]:
        raise ConfigError(f"scenario {name}: needs at least one [ops.<name>] table")
    ops, expanded = [], {}
    for oname, spec in doc["ops"].items():
        got = _parse_ops(name, oname, spec)
        expanded[oname] = [o.name for o in got]
        ops += got
    tr = doc.get("transition")
    if not isinstance(tr, dict) or set(tr) != {"before", "after"}:
        raise ConfigError(f"scenario {name}: needs [transition] with exactly before and after")
    names = set(expanded)
    for side in ("before", "after"):
        if not isinstance(tr[side], list):
            raise ConfigError(f"scenario {name}: transition.{side} must be a list of ops names")
        for n in tr[side]:
            check_choice(f"scenario {name}: transition.{side}", n, sorted(names))
        if len(set(tr[side])) != len(tr[side]):
            raise ConfigError(f"scenario {name}: transition.{side} names an ops twice; name each once")
    if sorted(tr["before"]) == sorted(tr["after"]):
        raise ConfigError(f"scenario {name}: transition.before and .after are the same; nothing to patch")
    sc = Scenario(name, doc.get("description", ""), tuple(ops),
                    tuple(m for n in tr["before"] for m in expanded[n]),
                    tuple(m for n in tr["after"] for m in expanded[n]), tuple(sorted(ctx.items())),
                    tuple(arches), sketch)
    if "i386" in sc.arches and sc.needs_x86_64:
        raise ConfigError(f"scenario {name}: arches names i386, but a livepatch or per-ops trampoline needs "
                          "x86_64; drop i386 (or set i386_sketch = true for the mail's sketch)")
    if sketch and not sc.needs_x86_64:
        raise ConfigError(f"scenario {name}: i386_sketch = true, but it runs on i386 as it is; drop the key")
    return sc


def _parse_ops(name: str, oname: str, spec) -> list[FtraceOps]:
    """The ftrace ops of scenario *name*'s ``[ops.<oname>]`` table: a livepatch of named functions is
    one ops per function (``klp_patch_func()``: one ``struct klp_ops`` each); ConfigError naming the
    bad key."""
    if not isinstance(spec, dict):
        raise ConfigError(f"scenario {name}: ops.{oname} must be a table")
    bad = set(spec) - _OPS_KEYS
    if bad:
        raise ConfigError(f"scenario {name}: ops.{oname} has unknown keys {sorted(bad)}; "
                          f"expected {sorted(_OPS_KEYS)}")
    kind = check_choice(f"scenario {name}: ops.{oname}.kind", spec.get("kind"), OPS_KINDS)
    funcs = spec.get("functions", "all")
    if funcs == "all":
        funcs = None
    elif isinstance(funcs, list) and funcs and all(isinstance(f, str) for f in funcs):
        funcs = frozenset(funcs)
    elif funcs == []:
        raise ConfigError(f"scenario {name}: ops.{oname}.functions is empty; name at least one function "
                          "or \"all\"")
    else:
        raise ConfigError(f"scenario {name}: ops.{oname}.functions must be \"all\" or a list of names")
    notrace = spec.get("notrace", [])
    if not (isinstance(notrace, list) and all(isinstance(f, str) for f in notrace)):
        raise ConfigError(f"scenario {name}: ops.{oname}.notrace must be a list of names")
    tramp = spec.get("trampoline", False)
    if not isinstance(tramp, bool):
        raise ConfigError(f"scenario {name}: ops.{oname}.trampoline must be true or false")
    if kind == "livepatch" and funcs is not None:
        order = list(dict.fromkeys(spec["functions"]))
        return [FtraceOps(f"{oname}[{f}]", kind, frozenset({f}), frozenset(notrace), tramp) for f in order]
    return [FtraceOps(oname, kind, funcs, frozenset(notrace), tramp)]


def _toml_name(ops_name: str) -> str:
    """The ``[ops.<name>]`` table an ops came from (a livepatch's per-function ops carry ``[fn]``)."""
    return ops_name.split("[", 1)[0]
