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
"""

from __future__ import annotations

import errno
import tomllib
from dataclasses import dataclass
from pathlib import Path

from workbench.base.errors import ConfigError, check_choice
from workbench.base.store import read_regular
from workbench.kernel.ftrace import OPS_KINDS, FtraceOps, FtraceState, plan_transition
from workbench.kernel.image import KernelImage

__all__ = ["Scenario", "load_scenario", "scenario_names", "SCENARIO_DIR"]

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
_OPS_KEYS = {"kind", "functions", "notrace", "trampoline"}


@dataclass(frozen=True)
class Scenario:
    """A transition between two sets of registered ops."""

    name: str
    description: str
    ops: tuple[FtraceOps, ...]
    before: tuple[str, ...]
    after: tuple[str, ...]

    def states(self, image: KernelImage) -> tuple[FtraceState, FtraceState]:
        """The ftrace states before and after, in *image*.

        Raises :class:`ConfigError` for a function the image does not have,
        and for a transition that leaves every site and trampoline call as
        it was (no text changes, so no call can ever trap).
        """
        for o in self.ops:
            for f in sorted((o.functions or frozenset()) | o.notrace):
                if f not in image.functions:
                    names = list(image.functions)
                    raise ConfigError(f"scenario {self.name}: ops.{o.name} names unknown function {f!r}; choose "
                                      f"from {', '.join(names[:8])}{', ...' if len(names) > 8 else ''} "
                                      f"({len(names)} in this image)")
        by = {o.name: o for o in self.ops}
        for n in sorted(set(self.before) | set(self.after)):
            if not any(by[n].traces(f) for f in image.functions):
                raise ConfigError(f"scenario {self.name}: ops.{n} traces no function (its functions are all "
                                  "in its notrace list); name a function it traces")
        b = FtraceState(image, tuple(by[n] for n in self.before), self.ops)
        a = FtraceState(image, tuple(by[n] for n in self.after), self.ops)
        if b.text() == a.text() and b.trampoline_bytes() == a.trampoline_bytes():
            raise ConfigError(f"scenario {self.name}: before and after leave every site and trampoline call "
                              "as it is; nothing to patch, so no call can trap")
        return b, a

    def plan(self, image: KernelImage, per_site: bool = False):
        """The kernel-ordered plan of changes (:func:`workbench.kernel.ftrace.plan_transition`)."""
        return plan_transition(*self.states(image), per_site=per_site)

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
        return frozenset(f for o in self.ops if o.kind == "livepatch" for f in o.functions)


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


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
    try:
        data = read_regular(path)  # never blocks on a FIFO, refuses a directory
    except OSError as exc:
        reason = "not a regular file" if exc.errno == errno.EINVAL else (exc.strerror or str(exc))
        raise ConfigError(f"scenario: cannot read {str(path)!r} ({reason}); give a TOML file") from None
    if data is None:
        raise ConfigError(f"scenario: no file {str(path)!r}")
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"scenario {name}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"scenario {name}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"description", "ops", "transition"}
    if unknown:
        raise ConfigError(f"scenario {name}: unknown keys {sorted(unknown)}; "
                          "expected description, ops, transition")
    if not isinstance(doc.get("ops"), dict) or not doc["ops"]:
        raise ConfigError(f"scenario {name}: needs at least one [ops.<name>] table")
    ops = []
    for oname, spec in doc["ops"].items():
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
        ops.append(FtraceOps(oname, kind, funcs, frozenset(notrace), tramp))
    tr = doc.get("transition")
    if not isinstance(tr, dict) or set(tr) != {"before", "after"}:
        raise ConfigError(f"scenario {name}: needs [transition] with exactly before and after")
    names = {o.name for o in ops}
    for side in ("before", "after"):
        if not isinstance(tr[side], list):
            raise ConfigError(f"scenario {name}: transition.{side} must be a list of ops names")
        for n in tr[side]:
            check_choice(f"scenario {name}: transition.{side}", n, sorted(names))
        if len(set(tr[side])) != len(tr[side]):
            raise ConfigError(f"scenario {name}: transition.{side} names an ops twice; name each once")
    if sorted(tr["before"]) == sorted(tr["after"]):
        raise ConfigError(f"scenario {name}: transition.before and .after are the same; nothing to patch")
    return Scenario(name, str(doc.get("description", "")), tuple(ops),
                    tuple(tr["before"]), tuple(tr["after"]))
