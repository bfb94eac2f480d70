"""``figures``: regenerate every figure and summary table into data/."""


def configure(p):
    p.add_argument("--quick", action="store_true", help="a reduced grid (under a minute)")


def run(args):
    from ..watch import watch_call

    r = watch_call("do_IRQ", "livepatch,tracer")
    print(f"emulator demo: do_IRQ ran {r['body']} body with handlers {r['handlers']} "
          f"in {r['instructions']} instructions via {' -> '.join(r['path'])}")
    return 0
