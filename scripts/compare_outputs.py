"""Record a tree's figure data and outcome tables, and compare two recordings value by value.

``python scripts/compare_outputs.py dump TREE OUT [--full]`` runs ``figures --quick`` (``--full``: the
published grid) of the checkout TREE with its data directory under OUT, then writes under OUT/values/
every summary table and sweep as CSV, and, for every scenario, arch and int3 entry, the exhaustive
explorer's outcome and transition tables. ``code_version`` (a hash of the sources) is left out: it
changes with any edit. ``python scripts/compare_outputs.py diff A B [--rename OLD=NEW ...]`` compares
two recordings file by file: the same files, the same columns (A's renamed as given; ``GLOB:OLD=NEW``
renames in the files whose name matches GLOB only) in the same order, and byte-identical values in
every cell. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import io
import os
import subprocess
import sys
from pathlib import Path

#: columns that name the code, not the result
SKIP = ("code_version",)

_TABLES = r"""
import sys
from pathlib import Path
from workbench.base.vocabulary import ENTRIES_BY_ARCH
from workbench.emulate.explore import explore, outcome_table, transition_table
from workbench.emulate.scenario import load_scenario
from workbench.base.errors import ConfigError
out = Path(sys.argv[1])
names = sorted(p.stem for p in Path("workbench/emulate/scenarios").glob("*.toml"))
for arch, entries in ENTRIES_BY_ARCH.items():
    for name in names:
        try:
            load_scenario(name).check_arch(arch)
        except ConfigError:
            continue
        for entry in entries:
            calls, _ = explore(name, strategies="all", entry=entry, mode="exhaustive", progress=False, arch=arch)
            outcome_table(calls).to_csv(out / f"outcomes_{name}_{arch}_{entry}.csv", index=False)
            transition_table(calls).to_csv(out / f"transitions_{name}_{arch}_{entry}.csv", index=False)
            print(arch, name, entry, len(calls), flush=True)
"""


def dump(tree: Path, out: Path, full: bool) -> None:
    tree, out = tree.resolve(), out.resolve()
    values = out / "values"
    values.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(tree), "WORKBENCH_DATA": str(out / "data")}
    subprocess.run([sys.executable, "-m", "workbench", "figures", *([] if full else ["--quick"])],
                   cwd=tree, env=env, check=True)
    subprocess.run([sys.executable, "-c", _TABLES, str(values)], cwd=tree, env=env, check=True)
    import pandas as pd  # only the dump needs it

    for path in sorted((out / "data" / "summary").glob("*.csv")):
        (values / f"summary_{path.name}").write_bytes(path.read_bytes())
    for path in sorted((out / "data" / "sweeps").glob("*.parquet")):
        pd.read_parquet(path).to_csv(values / f"sweep_{path.stem}.csv", index=False)


def _renames(specs: list[str], name: str) -> dict[str, str]:
    """The column renames of ``[GLOB:]OLD=NEW`` *specs* that apply to the file *name*."""
    out = {}
    for spec in specs:
        glob, _, pair = spec.rpartition(":")
        if not glob or fnmatch.fnmatch(name, glob):
            old, new = pair.split("=", 1)
            out[old] = new
    return out


def _read(path: Path, rename: dict[str, str]) -> tuple[list[str], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(path.read_text())))
    head = [rename.get(c, c) for c in rows[0]] if rows else []
    keep = [i for i, c in enumerate(head) if c not in SKIP]
    return [head[i] for i in keep], [[r[i] for i in keep] for r in rows[1:]]


def diff(a: Path, b: Path, renames: list[str]) -> int:
    fa = {p.name: p for p in sorted((a / "values").glob("*.csv"))}
    fb = {p.name: p for p in sorted((b / "values").glob("*.csv"))}
    bad = 0
    for name in sorted(set(fa) | set(fb)):
        if name not in fa or name not in fb:
            print(f"{name}: only in {'A' if name in fa else 'B'}")
            bad += 1
            continue
        (ha, ra), (hb, rb) = _read(fa[name], _renames(renames, name)), _read(fb[name], {})
        cells = sum(len(r) for r in ra)
        if ha != hb:
            print(f"{name}: columns differ: {ha} vs {hb}")
            bad += 1
        elif ra != rb:
            # the rows both have, cell by cell (a row of one length less is counted once, below)
            n = sum(x != y for r, s in zip(ra, rb, strict=False) for x, y in zip(r, s, strict=True))
            n += abs(len(ra) - len(rb))
            print(f"{name}: {n} of {cells} values differ")
            bad += 1
        else:
            print(f"{name}: {len(ra)} rows x {len(ha)} columns, {cells} values identical")
    print(f"{len(set(fa) | set(fb))} files compared, {bad} differ")
    return 1 if bad else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("tree", type=Path)
    d.add_argument("out", type=Path)
    d.add_argument("--full", action="store_true")
    c = sub.add_parser("diff")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    c.add_argument("--rename", action="append", default=[], metavar="[GLOB:]OLD=NEW")
    args = p.parse_args()
    if args.cmd == "dump":
        dump(args.tree, args.out, args.full)
        return 0
    return diff(args.a, args.b, args.rename)


if __name__ == "__main__":
    sys.exit(main())
