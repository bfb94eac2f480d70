"""``listing SYMBOL``: capstone listing of a symbol of the emulated kernel."""

from workbench.base.vocabulary import ARCHES
from workbench.kernel.image import build_image


def configure(p):
    p.add_argument("symbol", help="e.g. ftrace_regs_caller, do_IRQ, int3_entry_v53")
    p.add_argument("--functions", type=int, default=8, metavar="N", help="ordinary traced functions in the image")
    p.add_argument("--arch", default="i386", help=f"emulated kernel, one of {', '.join(ARCHES)} "
                   "(x86_64: ftrace_64.S, int3_entry_v51/v52)")


def run(args):
    print(build_image(args.functions, args.arch).listing(args.symbol))
    return 0
