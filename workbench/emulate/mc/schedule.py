"""Counterexample files: a schedule of the model checker as a small JSON file, and its replay.

Models nothing of the kernel itself; it records executions of
:mod:`workbench.emulate.mc.system` (``arch/x86/kernel/alternative.c``'s
protocol against calling CPUs) so that they can be re-executed step by step.

A file holds the schema version, the configuration, the schedule (thread
ids), the outcome it reached and a SHA-256 of all that (a file written
before the poke method got its name holds ``config.protocol``: it is read
as ``config.poke_method``). :func:`load_schedule`
refuses a damaged file or one of another schema with a one-line
:class:`~workbench.base.errors.ConfigError`; :func:`replay_steps` refuses a
schedule that does not fit its configuration (a step of a thread that is
not enabled, or a different outcome at the end).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Iterator

from workbench.base.errors import ConfigError, check_range
from workbench.base.inputs import parse_document, read_input
from workbench.base.store import write_atomic
from workbench.emulate.scenario import load_scenario
from workbench.emulate.mc.config import MAX_CALLING_CPUS, McConfig, thread_name
from workbench.emulate.mc.system import DEADLOCKED, McSystem

__all__ = ["MAX_SCHEDULE_STEPS", "SCHEMA", "Step", "load_schedule", "outcome_text", "replay_steps", "save_schedule"]

#: version of the file layout; a file of another version is refused
SCHEMA = 1
_KIND = "workbench-mc-schedule"


def _digest(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def outcome_text(outcome) -> str:
    """An outcome of :meth:`McSystem.outcome` as one readable line."""
    per_cpu, deadlock = outcome
    parts = []
    for i, calls in enumerate(per_cpu):
        for fn, body, tracer, klp, trapped, crash in calls:
            s = f"C{i} {fn}: body={body} tracer={tracer} livepatch={int(klp)}" + (" trapped" if trapped else "")
            parts.append(s + (" STUCK" if crash == DEADLOCKED else f" CRASH({crash})" if crash else ""))
    return "; ".join(parts) + ("; DEADLOCK" if deadlock else "")


def save_schedule(path, config: McConfig, schedule, outcome, note: str = "") -> Path:
    """Write a counterexample file atomically (:func:`~workbench.base.store.write_atomic`); returns its path.
    The configuration is written resolved (:meth:`McConfig.checked`: the arch's entry, the poke method)."""
    cfg = asdict(config.checked())
    body = {"schema": SCHEMA, "kind": _KIND, "config": json.loads(json.dumps(cfg)),
            "schedule": [int(t) for t in schedule],
            "outcome": outcome if isinstance(outcome, str) else outcome_text(outcome), "note": note}
    doc = {**body, "sha256": _digest(body)}
    return write_atomic(Path(path), (json.dumps(doc, indent=1) + "\n").encode(), what="cex-dir")


#: the type of each field of a file's ``config`` (McConfig's fields): what the schema accepts
_CONFIG_TYPES = {"scenario": (str,), "strategy": (str,), "entry": (str,), "poke_method": (str, type(None)),
                 "calls": (list,), "handler": (str,), "coherent_fetch": (bool,), "n_ordinary": (int,),
                 "per_site": (bool,), "all_sites": (bool,), "items": (list, type(None)),
                 "kernel_tree": (str, type(None)), "arch": (str,)}
#: a ``config`` key files once held -> the field it is read as (files written before the rename still load)
_OLD_CONFIG_KEYS = {"protocol": "poke_method"}
#: the top-level fields of a file and their types
_FILE_TYPES = {"schema": (int,), "kind": (str,), "config": (dict,), "schedule": (list,), "outcome": (str,),
               "note": (str,), "sha256": (str,)}
#: the longest schedule a file may hold (steps); the model checker's are a few hundred
MAX_SCHEDULE_STEPS = 100_000


def _typed(where: str, value, types) -> None:
    """ConfigError unless *value* is one of *types* (a bool is never an int here)."""
    if isinstance(value, bool) and bool not in types or not isinstance(value, types):
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ConfigError(f"schedule file: {where} must be {names}, got {type(value).__name__} {value!r:.40}")


def load_schedule(path) -> tuple[McConfig, list[int], str]:
    """``(config, schedule, outcome text)`` of a counterexample file; ConfigError if it is not one.

    The file is read bounded (:func:`~workbench.base.inputs.read_input`: a
    regular file, at most a MiB, nested at most 16 deep) and checked
    against the schema field by field: every key known, every value of its
    type and range, before anything is replayed.
    """
    p = Path(path)
    doc = parse_document(read_input(p, "schedule file"), "json", f"schedule file: {p.name}")
    if not isinstance(doc, dict) or doc.get("kind") != _KIND:
        raise ConfigError(f"schedule file: {p.name} is not a workbench schedule file")
    if doc.get("schema") != SCHEMA or isinstance(doc.get("schema"), bool):
        raise ConfigError(f"schedule file: {p.name} has schema {doc.get('schema')!r}; this workbench reads {SCHEMA}")
    body = {k: v for k, v in doc.items() if k != "sha256"}
    if doc.get("sha256") != _digest(body):
        raise ConfigError(f"schedule file: {p.name} is damaged (content hash mismatch)")
    for key in doc:
        if key not in _FILE_TYPES:
            raise ConfigError(f"schedule file: unknown key {key!r}; expected {', '.join(_FILE_TYPES)}")
    for key in ("config", "schedule"):
        if key not in doc:
            raise ConfigError(f"schedule file: {p.name} has no {key}")
    for key, value in doc.items():
        _typed(key, value, _FILE_TYPES[key])
    cfg = dict(doc["config"])
    for old, new in _OLD_CONFIG_KEYS.items():
        if old in cfg:
            if new in cfg:
                raise ConfigError(f"schedule file: config.{old} is the old name of config.{new}; give one, not both")
            cfg[new] = cfg.pop(old)
    for key, value in cfg.items():
        if key not in _CONFIG_TYPES:
            raise ConfigError(f"schedule file: unknown key config.{key}; expected {', '.join(_CONFIG_TYPES)}")
        _typed(f"config.{key}", value, _CONFIG_TYPES[key])
    if "calls" in cfg:
        check_range("schedule file: config.calls (calling CPUs)", len(cfg["calls"]), 1, MAX_CALLING_CPUS,
                    integer=True)
        for i, c in enumerate(cfg["calls"]):
            _typed(f"config.calls[{i}]", c, (list,))
            check_range(f"schedule file: config.calls[{i}] (calls)", len(c), 1, 4, integer=True)
            for f in c:
                _typed(f"config.calls[{i}] entry", f, (str,))
        cfg["calls"] = tuple(tuple(c) for c in cfg["calls"])
    if cfg.get("items") is not None:
        for f in cfg["items"]:
            _typed("config.items entry", f, (str,))
        cfg["items"] = tuple(cfg["items"])
    if "n_ordinary" in cfg:
        check_range("schedule file: config.n_ordinary", cfg["n_ordinary"], 1, 64, integer=True)
    try:
        if "scenario" in cfg:  # a name or a file: the same checks as on the command line
            load_scenario(cfg["scenario"])
        config = McConfig(**cfg).checked()
    except ConfigError as exc:
        raise ConfigError(f"schedule file: {p.name}: config.{exc}") from None
    sched = doc["schedule"]
    check_range("schedule file: schedule (steps)", len(sched), 0, MAX_SCHEDULE_STEPS, integer=True)
    threads = 1 + 2 * len(config.calls)
    for n, t in enumerate(sched):
        _typed(f"schedule[{n}]", t, (int,))
        check_range(f"schedule file: schedule[{n}] (thread)", t, 0, threads - 1, integer=True)
    return config, sched, doc.get("outcome", "")


class Step(dict):
    """One replayed step: ``n``, ``thread``, ``event``, ``patcher`` and per-CPU ``cpus`` lines."""


def _where(system: McSystem, i: int) -> dict:
    cpu, s = system.machine.cpus[i], system.cpu[i]
    im = system.image
    eip = cpu.eip
    name = im.name_at(eip)
    at = name if "+" in name else f"{name}+0x0"
    out = {"cpu": f"C{i}", "at": at, "pause": s.pause[0],
           "if": int(s.if_set), "crash": s.crash}
    if s.pause[0] in ("h1", "h2", "irqoff_wait") and not s.crash:
        regs = system.regs(i)
        out["pt_regs"] = {k: f"{v:#x}" for k, v in regs.as_dict().items()}
    return out


def replay_steps(config: McConfig, schedule, expect: str | None = None) -> Iterator[Step]:
    """Re-execute *schedule* under *config*, yielding a :class:`Step` after each event.

    Raises ConfigError (one line) if a step's thread is not enabled or the
    final outcome differs from *expect*.
    """
    system = McSystem(config)
    system.reset()
    k = system.k
    for n, tid in enumerate(schedule):
        if not 0 <= tid < 1 + 2 * k or system.next_event(tid) is None:
            raise ConfigError(f"schedule file: step {n}: thread {tid} is not enabled; "
                              "the schedule does not match this scenario and configuration")
        label = system.op_label(system.pc) if tid == 0 else ""
        e = system.step(tid)
        arg = system.image.name_at(e.arg) if e.kind == "fetch" else (label or e.arg)
        yield Step(n=n, thread=thread_name(tid, k), event=f"{e.kind} {arg}",
                   sites={system.image.name_at(a): system.machine.read(a, 5).hex() for a in system.sites},
                   cpus=[_where(system, i) for i in range(k)])
    if system.enabled():
        raise ConfigError("schedule file: the schedule ends before the execution does; it does not match")
    got = outcome_text(system.outcome())
    if expect is not None and got != expect:
        raise ConfigError(f"schedule file: replay reached a different outcome ({got!r}, file says {expect!r})")
    yield Step(n=len(schedule), thread="-", event="end", outcome=got, blocked=system.blocked(), sites={}, cpus=[])
