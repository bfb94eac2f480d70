"""``call``: one traced call in a stable ftrace state, and what ran."""

import json

from workbench.base.errors import ConfigError
from workbench.base.errors import check_choice
from workbench.base.vocabulary import ARCHES, ENTRIES_BY_ARCH, OPS_CHOICES
from workbench.ui.commands.tree_option import add_kernel_tree, kernel_tree


def configure(p):
    p.add_argument("--function", default="do_IRQ", help="traced function to call (default do_IRQ)")
    p.add_argument("--ops", default="livepatch,tracer",
                   help=f"comma-separated registered ops from {', '.join(OPS_CHOICES)}, or none")
    p.add_argument("--arch", default="i386", help=f"emulated kernel, one of {', '.join(ARCHES)}")
    p.add_argument("--entry", default=None,
                   help="int3 entry: " + "; ".join(f"{a}: {', '.join(e)}" for a, e in ENTRIES_BY_ARCH.items())
                   + " (default: the arch's latest)")
    p.add_argument("--functions", type=int, default=8, metavar="N", help="ordinary traced functions in the image")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_kernel_tree(p)


def run(args):
    from workbench.emulate.watch import watch_call  # start-up: Unicorn, not for parsing

    if not args.ops.strip(" ,"):
        raise ConfigError(f"ops: empty; give comma-separated ops from {', '.join(OPS_CHOICES)}, or none")
    ops = [o.strip() for o in args.ops.split(",")]
    if "none" in ops and len(ops) > 1:
        raise ConfigError(f"ops: none means no ops registered and cannot be combined with others, got {args.ops!r}")
    arch = check_choice("arch", args.arch, ARCHES)
    if args.entry is not None:
        check_choice("entry", args.entry, ENTRIES_BY_ARCH[arch])
    tree = kernel_tree(args, args.functions)
    r = watch_call(args.function, args.ops, args.functions, args.entry, arch, tree)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{r['function']} with ops [{', '.join(r['ops']) or 'none'}]  ({r['arch']}, entry {r['entry']}, "
          f"trampolines {r['kernel_tree']})")
    s = r["site"]
    print(f"  site       {s['address']:#010x}: {s['bytes']}  {s['insn']}  -> {s['target']}")
    print(f"  trampoline calls hold: {r['trace_function']}")
    if r["crash"]:
        print(f"  CRASH: {r['crash']}")
        return 0
    print(f"  path       {' -> '.join(r['path'])}")
    print(f"  handlers   {', '.join(r['handlers']) or 'none'}")
    print(f"  body       {r['body']}")
    print(f"  tracer     {len(r['tracer_records'])} record(s)" + "".join(
        f"\n               ip={t['ip']:#010x} parent_ip={t['parent_ip']:#010x} cpu={t['cpu']}"
        for t in r["tracer_records"]))
    print(f"  executed   {r['instructions']} instructions")
    return 0
