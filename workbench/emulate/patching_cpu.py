"""An interrupt on the CPU that runs ``text_poke_bp()``: the patch waits for the call.

Models an interrupt-context call (``do_IRQ()``) taken by the patching CPU
itself inside ``text_poke_bp_batch()`` (arch/x86/kernel/alternative.c): the
patcher's own code does not go on until the interrupt returns, so the call
sees the text of the phase it interrupted, frozen. A strategy that waits
for the patch (``spin``) can never be released there, in any phase, the
first-byte phase included: the bytes it waits for are the ones this CPU
would write next. docs/KERNEL.md §4.
"""

from __future__ import annotations

import io
import json

import pandas as pd

from workbench.base.errors import check_choice
from workbench.base.paths import cache_dir
from workbench.base.store import load_entry, store_entry
from workbench.base.version import emulator_version
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH, STRATEGIES
from workbench.emulate.explore import OUTCOME_COLUMNS, outcome_table
from workbench.emulate.run import Run
from workbench.emulate.scenario import load_scenario
from workbench.kernel.image import build_image
from workbench.kernel.int3 import get_strategy
from workbench.kernel.machine import Crash

__all__ = ["load_patching_cpu_table", "patching_cpu_calls", "patching_cpu_table"]

#: instructions after which a call frozen in one phase counts as never returning
_CAP = 20000
_KEYS = ["scenario", "entry", "strategy", "site_kind", "trap_site", "trap_phase"]


def patching_cpu_calls(scenario: str, strategy: str, entry: str = "v5.3", arch: str = "i386") -> pd.DataFrame:
    """One row per (phase, interrupt-context function) whose call traps with the patch frozen there.

    Each call starts from the text and data of its phase and runs alone; a
    call that does not return within ``_CAP`` instructions is a deadlock:
    the patching CPU never gets back to ``text_poke_bp()``.
    """
    run = Run(scenario, strategy, entry, arch=arch)
    try:
        fns = [fn for fn in run.image.functions if run.scenario.context_of(fn) == "interrupt"]
        cpu, rows = run.machine.cpus[0], []
        logged = run.image.sym("workload_logged")
        for phase in range(1, len(run.steps)):
            if run.steps[phase - 1].kind not in ("text", "sync"):
                continue
            for fn in fns:
                run.reset()
                run.enter_phase(phase)
                run.machine.sync_core()
                cpu.reset([run.call_entry(fn)])
                cpu.run(_CAP, until=logged)
                recs = cpu.drain()
                seq = None
                if not recs and cpu.crash is None:
                    cpu.crash = Crash(cpu.eip, cpu.eip, "deadlock: an interrupt on the patching CPU waits for "
                                                        "bytes only that CPU can write")
                    seq = 0
                elif cpu.crash is not None:
                    seq = 0
                rows += [r for r in run.rows(cpu, recs, 1, seq) if r["trapped"]]
        return pd.DataFrame(rows)
    finally:
        run.close()


def patching_cpu_table(scenario: str, entry: str = "v5.3", arch: str = "i386") -> pd.DataFrame:
    """Per-trapped-call means of :func:`patching_cpu_calls` for every strategy that traps.

    Keys ``(scenario, entry, strategy, site_kind, trap_site, trap_phase)``,
    columns ``trapped_placements`` (calls measured) and the outcome columns.
    """
    build_image(arch=arch)  # fail early without binutils
    frames = [patching_cpu_calls(scenario, s, entry, arch) for s in STRATEGIES
              if get_strategy(s).poke_method == "breakpoint"]
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=_KEYS + ["trapped_placements", *OUTCOME_COLUMNS])
    return outcome_table(pd.concat(frames, ignore_index=True))  # every call weighs 1


def load_patching_cpu_table(scenario: str = "seed", entry: str = "v5.3", arch: str = "i386") -> pd.DataFrame:
    """:func:`patching_cpu_table`, kept as a verified cache entry keyed by the emulator's version
    (and, on x86_64, the arch: i386 entries keep the key they always had)."""
    sc = load_scenario(scenario)
    sc.check_arch(check_choice("arch", arch, ARCHES))
    check_choice("entry", entry, ENTRIES_BY_ARCH[arch])
    version = emulator_version()
    tag = "" if arch == "i386" else f"{arch}_"
    path = cache_dir("outcomes", version) / f"{sc.name}_{tag}{entry}_patching_cpu.parquet"
    meta = {"version": version, "scenario": sc.name, "entry": entry, "what": "patching_cpu"}
    if arch != "i386":
        meta["arch"] = arch

    def parse(payload: bytes) -> pd.DataFrame:
        head, _, body = payload.partition(b"\n")
        if json.loads(head) != meta:
            raise ValueError(f"made for {json.loads(head)}")
        table = pd.read_parquet(io.BytesIO(body))
        if not set(_KEYS) | {"trapped_placements", *OUTCOME_COLUMNS} <= set(table.columns):
            raise ValueError("missing columns")
        return table

    got = load_entry(path, parse, what="patching-CPU outcome cache")
    if isinstance(got, pd.DataFrame):
        return got
    table = patching_cpu_table(scenario, entry, arch)
    if emulator_version() == version:
        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        store_entry(path, json.dumps(meta).encode() + b"\n" + buf.getvalue(), what="patching-CPU outcome cache")
    return table
