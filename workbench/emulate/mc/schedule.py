"""Counterexample files: a schedule of the model checker as a small JSON file, and its replay.

Models nothing of the kernel itself; it records executions of
:mod:`workbench.emulate.mc.system` (``arch/x86/kernel/alternative.c``'s
protocol against calling CPUs) so that they can be re-executed step by step.

A file holds the schema version, the configuration, the schedule (thread
ids), the outcome it reached and a SHA-256 of all that. :func:`load_schedule`
refuses a damaged file or one of another schema with a one-line
:class:`~workbench.base.errors.ConfigError`; :func:`replay_steps` refuses a
schedule that does not fit its configuration (a step of a thread that is
not enabled, or a different outcome at the end).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Iterator

from workbench.base.errors import ConfigError
from workbench.emulate.mc.system import DEADLOCKED, McConfig, McSystem, thread_name
from workbench.kernel.ptrace import PtRegs

__all__ = ["SCHEMA", "Step", "load_schedule", "outcome_text", "replay_steps", "save_schedule"]

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
    """Write a counterexample file atomically; returns its path."""
    cfg = asdict(config)
    body = {"schema": SCHEMA, "kind": _KIND, "config": json.loads(json.dumps(cfg)),
            "schedule": [int(t) for t in schedule],
            "outcome": outcome if isinstance(outcome, str) else outcome_text(outcome), "note": note}
    doc = {**body, "sha256": _digest(body)}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + f".{os.getpid()}.part")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    return path


def load_schedule(path) -> tuple[McConfig, list[int], str]:
    """``(config, schedule, outcome text)`` of a counterexample file; ConfigError if it is not one."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"schedule file: no file {str(p)!r}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"schedule file: {p.name} is damaged (not JSON: {exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != _KIND:
        raise ConfigError(f"schedule file: {p.name} is not a workbench schedule file")
    if doc.get("schema") != SCHEMA:
        raise ConfigError(f"schedule file: {p.name} has schema {doc.get('schema')!r}; this workbench reads {SCHEMA}")
    body = {k: v for k, v in doc.items() if k != "sha256"}
    if doc.get("sha256") != _digest(body):
        raise ConfigError(f"schedule file: {p.name} is damaged (content hash mismatch)")
    names = {f.name for f in fields(McConfig)}
    cfg = doc.get("config")
    sched = doc.get("schedule")
    if not isinstance(cfg, dict) or set(cfg) - names or not isinstance(sched, list) \
            or not all(isinstance(t, int) for t in sched):
        raise ConfigError(f"schedule file: {p.name} has a malformed config or schedule")
    cfg["calls"] = tuple(tuple(c) for c in cfg.get("calls", ()))
    if cfg.get("items") is not None:
        cfg["items"] = tuple(cfg["items"])
    return McConfig(**cfg).checked(), sched, str(doc.get("outcome", ""))


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
        regs = PtRegs(system.machine, cpu.reg("eax"))
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
