"""``check-tree --kernel-tree PATH``: a tree's trampolines against ours, outcome table by outcome table.

Assembles the tree's arch/x86/kernel/ftrace_32.S (--arch i386, the default)
or ftrace_64.S (--arch x86_64) with the workbench's shims, links it in place
of ours (on x86_64 the per-ops trampolines are copies of the tree's code),
explores every scenario the arch can run (or --scenario) under every
strategy on each of the arch's int3 entries (or --entry), and compares each outcome
table with ours row by row. Exit status 0 when every per-trapped-call
outcome (violation, dropped_tracer, dropped_livepatch, spurious, crash,
deadlock) is equal and every reference run agrees with the ftrace state
table; 1 when something differs (the rows are printed); 2 for bad input or
a tree the shims cannot assemble. trapped_placements and delay_traps count
instructions and follow the trampolines' length (docs/KERNEL_TREE.md).

The int3 entry is always the workbench's (the tree's entry_32.S / entry_64.S
cannot be assembled the same way: docs/KERNEL_TREE.md); the output says so.

  python -m workbench check-tree --kernel-tree ~/src/linux
  python -m workbench check-tree --kernel-tree ~/src/linux --arch x86_64
  python -m workbench check-tree --kernel-tree ~/src/linux --scenario seed --entry v5.3 --json
"""

import json

from workbench.base.errors import ConfigError, check_choice
from workbench.base.vocabulary import ARCHES, ENTRIES, ENTRIES_BY_ARCH
from workbench.ui.commands.tree_option import add_kernel_tree, kernel_tree


def configure(p):
    add_kernel_tree(p)
    p.add_argument("--arch", default="i386", help=f"emulated kernel, one of {', '.join(ARCHES)}: i386 runs the "
                   "tree's ftrace_32.S, x86_64 its ftrace_64.S")
    p.add_argument("--scenario", default="all", help="all, or comma-separated names from `scenarios` or TOML files")
    p.add_argument("--entry", default="all", help=f"all, or comma-separated int3 entries of the arch (i386: "
                   f"{', '.join(ENTRIES)}; x86_64: {', '.join(ENTRIES_BY_ARCH['x86_64'])})")
    p.add_argument("--json", action="store_true", help="print JSON: every row of every comparison")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args):
    if args.kernel_tree is None:
        raise ConfigError("kernel-tree: required; give the root of a Linux source tree")
    from workbench.emulate.scenario import check_scenario, load_scenario, scenario_names  # start-up: capstone
    from workbench.emulate.tree_compare import (KEYS, LENGTH_COLUMNS,  # start-up: pandas, Unicorn, not for parsing
                                                RULE_COLUMNS, compare_outcome_tables)

    arch = check_choice("arch", args.arch, ARCHES)
    if args.scenario == "all":  # every scenario the arch can run (really, or as the i386 sketch)
        scenarios = [s for s in scenario_names() if _runs_on(s, arch)]
    else:
        scenarios = [check_scenario(s) for s in args.scenario.split(",")]
        for s in scenarios:
            load_scenario(s).check_arch(arch)
    entries = list(ENTRIES_BY_ARCH[arch]) if args.entry == "all" else [
        check_choice("entry", e, ENTRIES_BY_ARCH[arch]) for e in args.entry.split(",")]
    tree = kernel_tree(args)
    results = [compare_outcome_tables(tree, sc, e, progress=not args.quiet) for sc in scenarios for e in entries]
    same = all(r.same for r in results)
    if args.json:
        print(json.dumps({"kernel_tree": tree.tag, "tree": str(tree.root), "version": tree.version, "arch": arch,
                          "file": tree.ftrace, "int3_entry": "workbench", "same": same,
                          "mismatches": sorted({m for r in results for m in r.mismatches}),
                          "rows": [row for r in results
                                   for row in json.loads(r.rows.to_json(orient="records"))]}, indent=1))
        return 0 if same else 1
    print(f"linux {tree.version} at {tree.root} ({tree.tag}): {tree.ftrace} against the workbench's ({arch})")
    print(f"  int3 entry: the workbench's ({', '.join(entries)}); the tree's "
          f"{'entry_64.S' if arch == 'x86_64' else 'entry_32.S'} is not assembled (docs/KERNEL_TREE.md)")
    for r in results:
        sc, e = r.rows["scenario"].iloc[0], r.rows["entry"].iloc[0]
        n, d = len(r.rows), r.differences()
        both = r.rows["present"] == "both"
        counts = {c: int(((r.rows[f"{c}_ours"] != r.rows[f"{c}_tree"]) & both).sum()) for c in LENGTH_COLUMNS}
        verdict = "same outcomes" if d.empty else f"{len(d)} row(s) differ"
        note = "; instruction counts differ: " + ", ".join(f"{c} in {k} row(s)" for c, k in counts.items() if k) \
            if any(counts.values()) else ""
        print(f"  {sc:<24} {e}: {n} rows, {verdict}{note}")
        if not d.empty:
            cols = [*KEYS[2:], "present"] + [f"{c}_{s}" for c in RULE_COLUMNS for s in ("ours", "tree")]
            print(d[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    for m in sorted({m for r in results for m in r.mismatches}):
        print(f"  reference run disagrees with the ftrace state table: {m}")
    print("same per-call outcomes as the workbench's trampolines" if same else
          "the tree's trampolines change the outcomes above")
    return 0 if same else 1


def _runs_on(name: str, arch: str) -> bool:
    from workbench.emulate.scenario import load_scenario  # start-up: capstone, loaded by run already

    try:
        load_scenario(name).check_arch(arch)
    except ConfigError:
        return False
    return True
