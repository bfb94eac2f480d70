"""Exhaustive exploration of a patch with k calling CPUs: outcome tables and counterexamples.

Models ``text_poke_bp_batch()`` / ``poke_int3_handler()`` of
``arch/x86/kernel/alternative.c`` against k calling CPUs
(:mod:`workbench.emulate.mc.system`), explored with source-DPOR and sleep
sets (:mod:`workbench.emulate.mc.dpor`).

:func:`check` explores one configuration and returns every distinct
outcome with the number of explored executions (Mazurkiewicz traces)
reaching it and, for a bad outcome, the equivalent schedule with the fewest
context switches; :func:`outcome_rows` turns that into table rows. Running
many configurations on the sweep backends is :mod:`workbench.emulate.mc.experiment`.

One configuration's exploration also splits into independent subtrees
(:func:`subtrees`, rooted at the prefixes of
:func:`workbench.emulate.mc.dpor.frontier`): :func:`check` with
``prefix=`` explores one, and :func:`merge` joins their results into the
outcomes and trace counts of the whole exploration.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from itertools import pairwise
from pathlib import Path
from typing import Callable

from workbench.base.errors import ConfigError, check_range
from workbench.emulate.run import Run
from workbench.emulate.mc.dpor import fewest_switches, frontier, source_dpor
from workbench.emulate.mc.schedule import outcome_text, save_schedule
from workbench.emulate.mc.config import MAX_CALLING_CPUS, McConfig, dependent
from workbench.emulate.mc.system import DEADLOCKED, McSystem
from workbench.emulate.outcomes import Observed, classify

__all__ = ["bad_outcome", "check", "default_calls", "merge", "outcome_rows", "subtrees"]


def default_calls(k: int, scenario: str = "seed", n_ordinary: int = 8, arch: str = "i386") -> tuple:
    """What k calling CPUs call by default: a livepatched and a patched ordinary function, alternating."""
    k = int(check_range("cpus", k, 1, MAX_CALLING_CPUS, integer=True))
    r = Run(scenario, "emulate_new", n_ordinary=n_ordinary, arch=arch)
    b, a = r.before, r.after
    im = r.image
    changed = [f for f in im.functions if b.site_bytes(f) != a.site_bytes(f)] or list(im.functions)
    lp = [f for f in im.functions if f in r.scenario.livepatched()]
    fns = lp[:1] + [f for f in changed if f not in r.scenario.livepatched()][:1]
    return tuple((fns[i % len(fns)],) for i in range(k))


def bad_outcome(outcome) -> bool:
    """A crash or a deadlock."""
    per_cpu, deadlock = outcome
    return deadlock or any(c[5] for calls in per_cpu for c in calls)


def check(config: McConfig, progress: Callable | None = None, out_dir=None, prefix: tuple = ()) -> dict:
    """Explore *config* exhaustively; a dict with ``outcomes``, ``stats`` and counterexample files.

    With *prefix* (one of :func:`subtrees`), only the subtree under it.

    ``outcomes`` maps each distinct outcome (:meth:`McSystem.outcome`) to
    ``{"traces": n, "schedule": [...], "switches": s}``; the schedule is
    the fewest-switch equivalent of the first execution found for a bad
    outcome (a crash or a deadlock) and for every other one the first
    found. With *out_dir*, each bad outcome's schedule is written there as
    a counterexample file (:mod:`workbench.emulate.mc.schedule`).
    """
    config = config.checked()
    system = McSystem(config)
    found: dict = {}

    def visit(ex):
        rec = found.get(ex.outcome)
        if rec is None:
            sched = fewest_switches(ex.events, dependent) if bad_outcome(ex.outcome) else ex.schedule
            sw = sum(1 for a, b in pairwise(sched) if a != b)
            found[ex.outcome] = {"traces": 1, "schedule": list(sched), "switches": sw}
        else:
            rec["traces"] += 1

    try:
        stats = source_dpor(system, dependent, visit, progress, prefix=tuple(prefix))
    except ValueError as e:  # a prefix that is not a path of the split
        raise ConfigError(str(e)) from None
    files = []
    if out_dir is not None:
        tag = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:10]
        bad = sorted((o for o in found if bad_outcome(o)), key=lambda o: (found[o]["switches"], outcome_text(o)))
        for n, o in enumerate(bad):
            p = Path(out_dir) / f"cex_{config.strategy}_{config.entry}_{config.poke_method}_{tag}_{n}.json"
            files.append(str(save_schedule(p, config, found[o]["schedule"], o,
                                           note=f"{found[o]['switches']} context switches")))
    return {"config": config, "outcomes": found, "files": files,
            "stats": {"executions": stats.executions, "blocked": stats.blocked, "states": stats.states,
                      "replayed": stats.replayed, "races": stats.races}}


def subtrees(config: McConfig, roots: int = 16) -> list[tuple]:
    """Prefixes (thread ids) that split *config*'s exploration into about *roots* independent subtrees.

    Explored each with :func:`check` (``prefix=``) and joined with
    :func:`merge`, they give the whole exploration's outcomes and trace
    counts (``tests/emulate/test_mc.py`` checks this against the unsplit
    exploration). ``roots=1`` is the whole exploration as one subtree.
    """
    roots = int(check_range("split", roots, 1, 4096, integer=True))
    return frontier(McSystem(config.checked()), dependent, roots)


def merge(results: list[dict]) -> dict:
    """One result from the :func:`check` results of one configuration's :func:`subtrees`, in their order.

    Trace counts and statistics add up (each trace lies in one subtree); an
    outcome's schedule is the one with the fewest context switches, the
    earliest subtree's on a tie. Counterexample files are not carried over
    (write them from the merged result).
    """
    if not results:
        raise ValueError("merge: no results")
    found: dict = {}
    for res in results:
        for o, rec in res["outcomes"].items():
            have = found.get(o)
            if have is None:
                found[o] = dict(rec, schedule=list(rec["schedule"]))
            else:
                traces = have["traces"] + rec["traces"]
                if rec["switches"] < have["switches"]:  # fewer switches; on a tie the earlier stays
                    found[o] = dict(rec, schedule=list(rec["schedule"]))
                found[o]["traces"] = traces
    stats = {k: sum(r["stats"][k] for r in results) for k in results[0]["stats"]}
    return {"config": results[0]["config"], "outcomes": found, "files": [], "stats": stats}


def outcome_rows(result: dict) -> list[dict]:
    """One row per (distinct outcome, CPU call): what the call did, classified against the
    handlers of the whole before-state and after-state text (measured by reference runs).

    A trapped call is classified by the workbench's outcome semantics
    (docs/KERNEL.md §15: violation, drops, spurious runs); ``mixed`` marks any call whose handlers are neither what
    the before-text nor what the after-text runs."""
    cfg: McConfig = result["config"]
    run = Run(cfg.scenario, "emulate_new", cfg.entry, n_ordinary=cfg.n_ordinary, arch=cfg.arch, tree=cfg.tree())
    last = len(run.steps)
    # the function tracer ignores its own registration and removal (function_enabled is 0
    # around it: docs/KERNEL.md §1), so a tracer being added or removed loses nothing
    by = {o.name: o for o in run.scenario.ops}
    changing = {by[n].kind for n in set(run.scenario.before) ^ set(run.scenario.after)}
    registered = run.scenario.registered() - ({"tracer"} & changing)
    rows = []
    for oid, (o, rec) in enumerate(sorted(result["outcomes"].items(), key=lambda kv: outcome_text(kv[0]))):
        per_cpu, deadlock = o
        for cpu, calls in enumerate(per_cpu):
            for n, (fn, body, tracer, klp, trapped, crash) in enumerate(calls):
                old, new = run.expected(0, fn), run.expected(last, fn)
                obs = Observed(fn, body, int(body != "none"), tracer, int(klp), int(trapped), 0, 0, 0)
                cls = classify(obs, old, new, registered)
                if not trapped:  # a call that did not trap ran one text or the other: no drop to count
                    cls = {**cls, "violation": 0, "dropped_tracer": 0, "dropped_livepatch": 0, "spurious": 0}
                mixed = body != "none" and obs.handlers not in (old, new)
                # a call the deadlock kept from finishing: its own outcome, not a crash (as in
                # the 1-CPU table, emulate/explore.py); the calls that finished are what they did
                stuck = bool(deadlock) and crash == DEADLOCKED
                rows.append({
                    "arch": cfg.arch, "scenario": cfg.scenario, "entry": cfg.entry, "strategy": cfg.strategy,
                    "poke_method": cfg.poke_method, "handler": cfg.handler, "cpus": len(cfg.calls),
                    "outcome": oid, "traces": rec["traces"], "cpu": cpu, "call": n, "function": fn,
                    "site_kind": "livepatched" if fn in run.scenario.livepatched() else "ordinary",
                    "trapped": bool(trapped), "body": body, "tracer_runs": tracer, "livepatch_ran": bool(klp),
                    "expected_before": ",".join(sorted(old)), "expected_after": ",".join(sorted(new)),
                    "violation": cls["violation"], "dropped_tracer": cls["dropped_tracer"],
                    "dropped_livepatch": cls["dropped_livepatch"], "spurious": cls["spurious"],
                    "mixed": mixed, "crash": (bool(crash) or bool(cls["crash"])) and not stuck,
                    "crash_reason": crash, "deadlock": stuck, "switches": rec["switches"],
                    "kernel_tree": run.image.kernel_tree,
                })
    return rows
