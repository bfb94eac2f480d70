"""A kernel tree's trampolines against ours: the exhaustive outcome tables, row by row.

Models ``arch/x86/kernel/ftrace_32.S`` (or, for a tree opened for x86_64,
``ftrace_64.S``) twice: the workbench's assembly and
the tree's own (:mod:`workbench.kernel.tree`), each run under every strategy
by :func:`workbench.emulate.explore.explore`. A row is one
``(scenario, entry, strategy, site_kind, trap_site, trap_phase)``; the
per-trapped-call means (:data:`RULE_COLUMNS`) are what the kernel's rules
decide and must be equal where the rules did not change. Two columns count
instructions rather than outcomes and differ whenever the tree's trampolines
take more or fewer instructions (docs/KERNEL_TREE.md):
``trapped_placements`` (instruction boundaries at which a step lands while
the call is trapped) and ``delay_traps`` (``spin``'s extra traps while a
later step is due). Reference runs of the tree's trampolines that ran other
handlers than the ftrace state table says are returned too: a trampoline bug
visible without any race.
"""

from __future__ import annotations

import pandas as pd

from workbench.base.vocabulary import ENTRIES_BY_ARCH
from workbench.emulate.explore import OUTCOME_COLUMNS, explore, load_outcome_table, outcome_table
from workbench.emulate.scenario import load_scenario
from workbench.kernel.tree import KernelTree

__all__ = ["KEYS", "LENGTH_COLUMNS", "RULE_COLUMNS", "TreeComparison", "compare_outcome_tables"]

#: the outcome table's row key
KEYS = ("scenario", "entry", "strategy", "site_kind", "trap_site", "trap_phase")
#: per-trapped-call means that the kernel's rules decide
RULE_COLUMNS = tuple(c for c in OUTCOME_COLUMNS if c != "delay_traps")
#: counts of instructions: they follow the trampolines' length, not a rule
LENGTH_COLUMNS = ("trapped_placements", "delay_traps")


class TreeComparison:
    """The row-by-row comparison of one scenario and entry.

    ``rows``: one row per key, with ``<column>_ours`` and ``<column>_tree`` for
    :data:`RULE_COLUMNS` and :data:`LENGTH_COLUMNS`, ``present`` (``both``,
    ``ours_only``, ``tree_only``) and ``same_rules`` (present on both sides
    with equal rule columns); ``mismatches``: the tree's reference runs that
    disagreed with the ftrace state table; ``kernel_tree``: the tree's tag.
    """

    def __init__(self, rows: pd.DataFrame, mismatches: list[str], kernel_tree: str):
        self.rows = rows
        self.mismatches = mismatches
        self.kernel_tree = kernel_tree

    @property
    def same(self) -> bool:
        """Every row on both sides, every rule column equal, no reference mismatch."""
        return bool(self.rows["same_rules"].all()) and not self.mismatches

    def differences(self) -> pd.DataFrame:
        """The rows whose rule columns differ (or that one side lacks)."""
        return self.rows[~self.rows["same_rules"]]


def compare_outcome_tables(tree: KernelTree, scenario: str = "seed", entry: str | None = None,
                           progress: bool = False) -> TreeComparison:
    """Our outcome table (cached) and the tree's (run now) for *scenario* and *entry*, row by row.

    The arch is the tree's (``tree.arch``); *entry* defaults to the arch's
    latest. Raises ConfigError for an unknown scenario or entry, a scenario
    the arch cannot run, and a tree that does not assemble or keep the
    trampoline ABI.
    """
    sc = load_scenario(scenario)
    arch = tree.arch
    entry = entry or ENTRIES_BY_ARCH[arch][-1]
    ours = load_outcome_table(sc.name, entry, progress=progress, arch=arch)
    calls, stats = explore(sc, strategies="all", entry=entry, mode="exhaustive", progress=progress, tree=tree,
                           arch=arch)
    theirs = outcome_table(calls)
    mismatches = sorted({m for s in stats.values() for m in s.get("reference_mismatches", ())})
    cols = [*RULE_COLUMNS, *LENGTH_COLUMNS]
    keys = (["arch"] if "arch" in ours and "arch" in theirs else []) + list(KEYS)
    m = ours[keys + cols].merge(theirs[keys + cols], on=keys, how="outer", suffixes=("_ours", "_tree"),
                                indicator="present", sort=True)
    m["present"] = m["present"].map({"both": "both", "left_only": "ours_only", "right_only": "tree_only"})
    same = m["present"] == "both"
    for c in RULE_COLUMNS:
        same &= (m[f"{c}_ours"] - m[f"{c}_tree"]).abs() <= 1e-12
    m["same_rules"] = same
    m["kernel_tree"] = calls.attrs["kernel_tree"]
    order = keys + ["present", "same_rules"] + [f"{c}_{s}" for c in cols for s in ("ours", "tree")] + ["kernel_tree"]
    return TreeComparison(m[order].reset_index(drop=True), mismatches, calls.attrs["kernel_tree"])
