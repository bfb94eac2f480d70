"""``listing SYMBOL``: capstone listing of a symbol of the emulated kernel."""

from workbench.base.vocabulary import ARCHES
from workbench.ui.commands.tree_option import add_kernel_tree, kernel_tree


def configure(p):
    p.add_argument("symbol", help="e.g. ftrace_regs_caller, do_IRQ, int3_entry_v53")
    p.add_argument("--functions", type=int, default=8, metavar="N", help="ordinary traced functions in the image")
    p.add_argument("--arch", default="i386", help=f"emulated kernel, one of {', '.join(ARCHES)} "
                   "(x86_64: ftrace_64.S, int3_entry_v51/v52)")
    add_kernel_tree(p)


def run(args):
    from workbench.kernel.image import build_image  # start-up: capstone, pyelftools, not for parsing

    tree = kernel_tree(args, args.functions)
    image = build_image(args.functions, args.arch, tree)
    if tree is not None:
        print(f"; trampolines from {tree.root} ({image.kernel_tree})")
    print(image.listing(args.symbol))
    return 0
