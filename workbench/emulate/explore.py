"""Interleave a patch with calling CPUs and record what every call did.

Two modes over the same :class:`~workbench.emulate.run.Run`:

* **exhaustive**, one calling CPU: every instruction boundary of one call at
  which each patch step can land, one placement per equivalence class
  (:mod:`workbench.emulate.exhaustive`);
* **random**, several CPUs: seeded random slices and step times (here).

Every call becomes a row of the calls frame (docs/ARCHITECTURE.md): its
evidence read from emulated memory, classified against the handlers the old
and new instruction run, which are measured by reference runs. An emulated
crash is a row, never an exception. :func:`outcome_table` aggregates the
trapped calls per strategy, site kind and trap; :func:`load_outcome_table`
keeps it cached by emulator version.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pandas as pd

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.paths import cache_dir
from workbench.base.store import load_entry, store_entry
from workbench.base.version import emulator_version
from workbench.base.vocabulary import (ARCHES, BREAKPOINT_BATCHINGS, ENTRIES_BY_ARCH, MODES, POKE_METHODS,
                                      STRATEGIES)
from workbench.emulate.exhaustive import exhaustive_function
from workbench.emulate.run import CALL_CAP, IPI_KINDS, Run
from workbench.emulate.scenario import load_scenario
from workbench.emulate.tree_abi import check_trampoline_abi
from workbench.kernel.image import build_image
from workbench.kernel.int3 import get_strategy
from workbench.kernel.tree import KernelTree

__all__ = ["OUTCOME_COLUMNS", "cached_outcome_table", "explore", "load_outcome_table", "outcome_table",
           "transition_table"]

OUTCOME_COLUMNS = ("violation", "dropped_tracer", "dropped_livepatch", "spurious", "crash", "deadlock",
                   "delay_traps")


# -- random: several CPUs, seeded slices and step times ---------------------------------------

def _step_gap(run: Run, rng, timing, ns_per_insn: float, patch_gap: int) -> int:
    """Instructions until the next step lands: a sync round, the writes, or an exponential gap."""
    if timing is None:
        return max(1, int(rng.exponential(patch_gap)))
    step = run.steps[run.phase]
    if step.kind in IPI_KINDS:
        ns = float(timing.draw_rounds(rng, len(run.machine.cpus), 1)[0])
    elif step.kind == "text":
        ns = len(step.changes) * timing.write_ns
    else:
        ns = 0.0
    return int(round(ns / ns_per_insn))


def _random_schedule(run: Run, seed, functions, slice_mean: int, patch_gap: int, gap_mean: float,
                     warmup: int, tail: int, timing, ns_per_insn: float, tally: dict) -> list:
    m = run.machine
    rng = np.random.default_rng(seed)
    run.reset()
    for cpu in m.cpus:
        fns = rng.integers(0, len(functions), 4096)
        # geometric idle gaps: call starts form a renewal process of known rate
        gaps = rng.geometric(1.0 / (1.0 + gap_mean), 4096) - 1 if gap_mean > 0 else np.zeros(4096, int)
        cpu.reset([run.call_entry(functions[i], g) for i, g in zip(fns.tolist(), gaps.tolist(), strict=True)])
    rows, now, insns = [], 0, 0
    next_step = warmup + int(rng.integers(0, max(warmup, 1)))
    done_at, in_flight, landed = None, {}, []
    while done_at is None or now < done_at + tail:
        for c in rng.permutation(len(m.cpus)):
            cpu = m.cpus[c]
            if cpu.crash is None:
                n = int(rng.integers(slice_mean // 2, 3 * slice_mean // 2 + 1))
                if not cpu.run(n):
                    in_flight[c] = cpu.completed_calls()
                else:
                    insns += n
        now += slice_mean
        while run.phase < len(run.steps) and now >= next_step:
            run.await_interrupts()
            landed.append(now)
            run.apply_step()
            if run.phase == len(run.steps):
                done_at = now
            else:
                next_step = max(next_step, now) + _step_gap(run, rng, timing, ns_per_insn, patch_gap)
        for cpu in m.cpus:
            rows += run.rows(cpu, cpu.drain(), 1, in_flight.pop(cpu.index, None))
    tally["cpu_insns"] = tally.get("cpu_insns", 0) + insns
    tally["calls"] = tally.get("calls", 0) + len(rows)
    tally.setdefault("step_times", []).append(landed)
    for row in rows:
        row.update(mode="random", placement=-1)
    return rows


# -- the public entry points --------------------------------------------------------------------

def explore(scenario="seed", *, strategies="all", entry=None, mode="exhaustive", functions=None,
            poke_method=None, cpus=None, schedules=20, seed=0, patch_gap=None, batching="batched",
            n_ordinary=8, progress=True, slice_mean=200, gap_mean=50.0, timing=None,
            ns_per_insn=1.0, coherent_fetch=False, arch="i386",
            tree: KernelTree | None = None) -> tuple[pd.DataFrame, dict]:
    """Interleave the scenario's patch with calling CPUs under each strategy.

    Returns ``(calls, stats)``: the calls frame (docs/ARCHITECTURE.md) and
    per-strategy schedule counts (``raw``, ``distinct``). *strategies* is a
    name, a list, or ``"all"``; *functions* defaults to one livepatched and
    one ordinary function. *poke_method* forces one of
    :data:`~workbench.base.vocabulary.POKE_METHODS` (default: each strategy's
    own); *batching* is ``batched`` (ftrace's one batch) or ``per_site``.
    Exhaustive mode uses one calling CPU (*cpus* must
    be 1 or None); placements reach 1000 instructions into the call (past
    that only ``spin``'s CPU is still in it, spinning); random mode runs
    *schedules* seeded schedules on *cpus* CPUs (default 4), each calling *functions* uniformly after geometric
    idle loops of mean *gap_mean* iterations. Steps land *patch_gap* (500)
    instructions apart on average or, with *timing* (a
    :class:`workbench.race.timing.Timing`), a sync step one drawn IPI round after
    the previous step and a text step its writes after it, converted with
    the time base *ns_per_insn*; ``stats`` then also has ``cpu_insns``,
    ``calls`` and each schedule's ``step_times`` (in instructions).
    *coherent_fetch* makes text writes visible at the next fetch
    (:class:`~workbench.kernel.machine.Machine`). *arch* picks the emulated
    kernel (``i386``, the default, or ``x86_64``; x86_64 rows carry an
    ``arch`` column) and *entry* one of its int3 entries (default: its
    latest). Raises ConfigError for bad input, before any work.
    """
    from tqdm.auto import tqdm  # start-up: tqdm, only when an exploration runs

    check_choice("mode", mode, MODES)
    arch = check_choice("arch", arch, ARCHES)
    entries = ENTRIES_BY_ARCH[arch]
    entry = check_choice("entry", entries[-1] if entry is None else entry, entries)
    if poke_method is not None:
        check_choice("poke_method", poke_method, POKE_METHODS)
    check_choice("batching", batching, BREAKPOINT_BATCHINGS)
    names = _strategy_names(strategies)
    if mode == "exhaustive" and cpus not in (None, 1):
        raise ConfigError(f"cpus: exhaustive mode explores one calling CPU; got {cpus} (use --mode random)")
    ncpus = 1 if mode == "exhaustive" else int(check_range("cpus", 4 if cpus is None else cpus, 1, 16, integer=True))
    schedules = int(check_range("schedules", schedules, 1, 100000, integer=True))
    seed = int(check_range("seed", seed, 0, 2**63 - 1, integer=True))
    # exhaustive: the steps after the placed one follow about one call apart
    if patch_gap is None:
        patch_gap = 200 if mode == "exhaustive" else 500
    patch_gap = int(check_range("patch_gap", patch_gap, 1, 10**7, integer=True))
    gap_mean = check_range("gap_mean", gap_mean, 0, 10**7)
    slice_mean = int(check_range("slice_mean", slice_mean, 2, 10**6, integer=True))
    ns_per_insn = check_range("ns_per_insn", ns_per_insn, 1e-6, 1e6)
    sc = load_scenario(scenario) if isinstance(scenario, str) else scenario
    sc.check_arch(arch)
    tree = None if tree is None else tree.for_arch(arch)  # ftrace_32.S or ftrace_64.S, as the arch runs
    image = build_image(n_ordinary, arch, tree)
    if tree is not None:
        check_trampoline_abi(tree, n_ordinary)  # a tree that cannot run the same way: one line, before any work
    functions = _functions(sc, image, functions)
    runs: dict[str, Run] = {}
    for n in names:
        # strategies of one poke method patch alike: their reference runs are the same
        method = poke_method or get_strategy(n).poke_method
        same = next((r for r in runs.values() if r.poke_method == method), None)
        runs[n] = Run(sc, n, entry, poke_method, n_ordinary, batching, ncpus, coherent_fetch, references=same,
                      arch=arch, tree=tree)
    rows, stats = [], {}
    total = sum(len(r.steps) for r in runs.values()) * len(functions) if mode == "exhaustive" \
        else schedules * len(names)
    with tqdm(total=total, desc=f"explore {sc.name} {entry}", unit="step" if mode == "exhaustive" else "schedule",
              disable=not progress, leave=False) as bar:
        for n, run in runs.items():
            if mode == "exhaustive":
                stats[n] = _exhaustive(run, functions, patch_gap, bar.update, rows)
            else:
                stats[n] = _random(run, functions, schedules, seed, slice_mean, patch_gap, gap_mean, timing,
                                   ns_per_insn, bar.update, rows)
            if run.reference_mismatches:
                stats[n]["reference_mismatches"] = run.reference_mismatches
    for run in runs.values():  # release the engines now, not at the next garbage collection
        run.close()
    calls = pd.DataFrame(rows)
    calls.attrs["kernel_tree"] = image.kernel_tree  # whose trampolines ran (provenance)
    return calls, stats


def _strategy_names(strategies) -> list[str]:
    """The strategy names *strategies* (``"all"``, a name, comma-separated names or a list) stands for."""
    if strategies in ("all", None):
        names = list(STRATEGIES)
    elif isinstance(strategies, str):
        names = strategies.split(",")
    elif isinstance(strategies, (list, tuple)) and strategies:
        names = list(strategies)
    else:
        raise ConfigError(f"strategies: expected 'all', a name or a list of names from "
                          f"{', '.join(STRATEGIES)}; got {strategies!r}")
    for n in names:
        get_strategy(n)
    return names


def _functions(sc, image, functions) -> list[str]:
    """The traced functions the calling CPUs call: *functions* (names or comma-separated), or by default
    a livepatched one and an ordinary one whose site the patch rewrites."""
    if functions is None:
        # a livepatched function (its calls may cross a patched trampoline call even
        # when its own site stays) and an ordinary one whose site the patch rewrites
        b, a = sc.states(image)
        changed = [f for f in image.functions if b.site_bytes(f) != a.site_bytes(f)] or list(image.functions)
        lp = [f for f in image.functions if f in sc.livepatched()]
        # (when no ordinary site changes, one whose calls cross the patched trampolines)
        functions = lp[:1] + ([f for f in changed if f not in sc.livepatched()][:1]
                              or [f for f in image.functions if f not in sc.livepatched()][:1])
    if isinstance(functions, str):
        functions = functions.split(",")
    if not functions:
        raise ConfigError("functions: give at least one traced function")
    return [image.function(f).name for f in functions]


def _exhaustive(run: Run, functions: list[str], patch_gap: int, progress, rows: list) -> dict:
    """Every placement against each function's call, rows appended to *rows*; the strategy's stats."""
    raw = distinct = 0
    for fn in functions:
        r, a, d = exhaustive_function(run, fn, patch_gap, CALL_CAP, progress)
        rows += r
        raw, distinct = raw + a, distinct + d
    return {"raw": raw, "distinct": distinct, "stalls": run.stop_rounds}


def _random(run: Run, functions: list[str], schedules: int, seed: int, slice_mean: int, patch_gap: int,
            gap_mean: float, timing, ns_per_insn: float, progress, rows: list) -> dict:
    """*schedules* seeded schedules, rows appended to *rows*; the strategy's stats."""
    tally: dict = {}
    # one seed sequence per schedule, shared by every strategy: common random numbers
    for s, ss in enumerate(np.random.SeedSequence(seed).spawn(schedules)):
        for row in _random_schedule(run, ss, functions, slice_mean, patch_gap, gap_mean,
                                    2000, 4 * patch_gap, timing, ns_per_insn, tally):
            row["schedule"] = s
            rows.append(row)
        progress(1)
    return {"raw": schedules, "distinct": schedules, "stalls": run.stop_rounds, **tally}


def outcome_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Per-trapped-call means by strategy, site kind, trap site and the phase trapped in.

    Keys ``(scenario, entry, strategy, site_kind, trap_site, trap_phase)``;
    weighted by the number of raw schedules each row stands for; columns
    ``trapped_placements`` and :data:`OUTCOME_COLUMNS`.
    """
    keys = (["arch"] if "arch" in calls else []) + ["scenario", "entry", "strategy", "site_kind", "trap_site",
                                                     "trap_phase"]
    t = calls[calls["trapped"]].copy()
    if t.empty:
        return pd.DataFrame(columns=keys + ["trapped_placements", *OUTCOME_COLUMNS])
    t["crash"] = t["crash"].astype(float)
    t["deadlock"] = t["deadlock"].astype(float)
    w = t["weight"].astype(float)
    agg = {c: (t[c].astype(float) * w) for c in OUTCOME_COLUMNS}
    df = pd.DataFrame({**{k: t[k] for k in keys}, "trapped_placements": w, **agg})
    g = df.groupby(keys, sort=True).sum().reset_index()
    for c in OUTCOME_COLUMNS:
        g[c] = g[c] / g["trapped_placements"]
    g["trapped_placements"] = g["trapped_placements"].astype(int)
    return g


def transition_table(calls: pd.DataFrame) -> pd.DataFrame:
    """Every call, trapped or not, per (strategy, poke_method, site_kind): crashes and stale text.

    ``stale`` counts calls that started after the patch was done yet did not
    run what the final text runs (a CPU still executing bytes it fetched
    before the patch: the missing-sync control).
    """
    keys = ["scenario", "entry", "strategy", "poke_method", "site_kind"]
    c = calls.assign(n=calls["weight"], crashed=calls["crash"] * calls["weight"],
                     stale_w=calls["stale"] * calls["weight"], trapped_w=calls["trapped"] * calls["weight"])
    g = c.groupby(keys, sort=True)[["n", "trapped_w", "crashed", "stale_w"]].sum().reset_index()
    return g.rename(columns={"n": "calls", "trapped_w": "trapped", "crashed": "crashes", "stale_w": "stale"})


def load_outcome_table(scenario: str = "seed", entry: str | None = None, progress: bool = True,
                       arch: str = "i386", tree: KernelTree | None = None) -> pd.DataFrame:
    """The exhaustive outcome table of *scenario* for every strategy, cached by emulator version.

    With *tree*, the tree's own trampolines run, and the entry is also keyed
    by the tree's version and the digest of its files (``KernelTree.tag``);
    the table's ``kernel_tree`` column names whose trampolines ran
    (``workbench`` for ours).

    Computed by :func:`explore` (about ten seconds) whenever the emulator's
    sources (:func:`workbench.base.version.emulator_version`, read at each
    call) have no entry yet, and kept as a verified Parquet entry under
    ``data/cache/outcomes`` (:mod:`workbench.base.store`): an entry that is
    damaged, unreadable, of another version or with impossible content (no
    rows, missing columns, a strategy missing) is reported in one line and
    recomputed. The race simulator reads its per-trapped-call means from here.
    *arch* (``i386`` or ``x86_64``) is part of the entry's key; *entry*
    defaults to the arch's latest.
    """
    tree = None if tree is None else tree.for_arch(check_choice("arch", arch, ARCHES))
    sc, entry, arch, version, path, got = _cached_entry(scenario, entry, arch, tree)
    tag = "workbench" if tree is None else tree.tag
    if got is not None:
        return got
    calls, stats = explore(sc, strategies="all", entry=entry, mode="exhaustive", progress=progress, arch=arch,
                           tree=tree)
    table = outcome_table(calls)
    table["schedules_raw"] = table["strategy"].map(lambda s: stats[s]["raw"])
    table["schedules_distinct"] = table["strategy"].map(lambda s: stats[s]["distinct"])
    if not table.empty and emulator_version() == version:  # the sources did not change while it ran
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        store_entry(path, _outcome_meta(version, sc.name, entry, arch, tree) + b"\n" + buf.getvalue(),
                    what="outcome cache")
    return table.assign(kernel_tree=tag)


def cached_outcome_table(scenario: str = "seed", entry: str | None = None, arch: str = "i386",
                         tree: KernelTree | None = None) -> pd.DataFrame | None:
    """The outcome table :func:`load_outcome_table` would read from its cache, or None.

    None when the entry is missing or damaged (a damaged one is reported
    and removed, as :func:`load_outcome_table` does): the table then has to
    be computed. Runs nothing in the emulator.
    """
    return _cached_entry(scenario, entry, arch, tree)[-1]


def _cached_entry(scenario, entry, arch, tree):
    """``(scenario, entry, arch, emulator version, cache path, cached table or None)`` of an outcome table."""
    arch = check_choice("arch", arch, ARCHES)
    sc = load_scenario(scenario)
    sc.check_arch(arch)
    entries = ENTRIES_BY_ARCH[arch]
    entry = check_choice("entry", entries[-1] if entry is None else entry, entries)
    version = emulator_version()
    tree = None if tree is None else tree.for_arch(arch)
    tag = "workbench" if tree is None else tree.tag
    name = f"{sc.name}_{arch}_{entry}" + ("" if tree is None else f"_{tag.replace('@', '_')}")
    path = cache_dir("outcomes", version) / f"{name}.parquet"
    got = load_entry(path, lambda b: _parse_outcome_entry(b, version, sc.name, entry, arch, tree),
                     what="outcome cache")
    return sc, entry, arch, version, path, (got.assign(kernel_tree=tag) if isinstance(got, pd.DataFrame) else None)


def _outcome_meta(version: str, scenario: str, entry: str, arch: str, tree: KernelTree | None) -> bytes:
    meta = {"version": version, "arch": arch, "scenario": scenario, "entry": entry}
    if tree is not None:
        meta["kernel_tree"] = tree.tag
    return json.dumps(meta).encode()


def _parse_outcome_entry(payload: bytes, version: str, scenario: str, entry: str, arch: str = "i386",
                         tree: KernelTree | None = None) -> pd.DataFrame:
    """A verified outcome-cache payload as a table; raises ValueError for impossible content."""
    head, _, body = payload.partition(b"\n")
    meta = json.loads(head)
    if meta != json.loads(_outcome_meta(version, scenario, entry, arch, tree)):
        raise ValueError(f"made for {meta}")
    table = pd.read_parquet(io.BytesIO(body))
    need = {"strategy", "site_kind", "trap_site", "trap_phase", "trapped_placements", "schedules_raw",
            "schedules_distinct", *OUTCOME_COLUMNS}
    if table.empty or not need <= set(table.columns):
        raise ValueError("no rows or missing columns")
    if not set(table["strategy"]) <= set(STRATEGIES) or (table["trapped_placements"] <= 0).any():
        raise ValueError("unknown strategies or rows without trapped calls")
    return table
