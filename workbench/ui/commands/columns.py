"""``python -m workbench columns``: every parameter and data column, its unit and meaning.

The dictionary is :data:`workbench.base.vocabulary.COLUMNS`; the same text is
written beside every data file as ``<file>.columns.json``.
"""

from __future__ import annotations

import json

from workbench.base.errors import check_choice
from workbench.base.vocabulary import COLUMNS, columns_frame_rows

__all__ = ["configure", "run"]


def configure(parser):
    """Add the columns options to *parser*."""
    parser.add_argument("names", nargs="*", metavar="NAME", help="only these columns (default: all)")
    parser.add_argument("--json", action="store_true", help="print the dictionary as JSON")


def run(args):
    """Print the units/columns dictionary."""
    for name in args.names:
        check_choice("column", name, COLUMNS)
    rows = columns_frame_rows(args.names or None)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    width = max(len(r["column"]) for r in rows)
    uwidth = max(len(r["unit"]) for r in rows)
    for r in rows:
        print(f"{r['column']:{width}s}  {r['unit']:{uwidth}s}  {r['meaning']}")
    return 0
