"""``listing SYMBOL``: capstone listing of a symbol of the emulated kernel."""

from workbench.kernel.image import build_image


def configure(p):
    p.add_argument("symbol", help="e.g. ftrace_regs_caller, do_IRQ, int3_entry_v53")
    p.add_argument("--functions", type=int, default=8, metavar="N", help="ordinary traced functions in the image")


def run(args):
    print(build_image(args.functions).listing(args.symbol))
    return 0
