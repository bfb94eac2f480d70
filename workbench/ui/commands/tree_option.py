"""``--kernel-tree PATH``: the option every command that builds an image shares.

Opens the tree for the command's ``--arch`` and builds its image before any
work, so a tree that is not a kernel tree, lacks
``arch/x86/kernel/ftrace_32.S`` (i386) or ``ftrace_64.S`` (x86_64), does
not assemble with the shims or breaks the trampoline ABI (also by running
it: :mod:`workbench.emulate.tree_abi`) is one line and exit status 2
(:mod:`workbench.kernel.tree`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from workbench.base.errors import check_choice
from workbench.base.vocabulary import ARCHES

if TYPE_CHECKING:
    from workbench.kernel.tree import KernelTree

__all__ = ["add_kernel_tree", "kernel_tree"]


def add_kernel_tree(p) -> None:
    """Add ``--kernel-tree PATH`` to the parser *p*."""
    p.add_argument("--kernel-tree", default=None, metavar="PATH",
                   help="a Linux source tree: run its own arch/x86/kernel/ftrace_32.S (--arch i386) or "
                        "ftrace_64.S (--arch x86_64): ftrace_caller, ftrace_regs_caller, ftrace_stub, in place "
                        "of ours (docs/KERNEL_TREE.md)")


def kernel_tree(args, n_ordinary: int = 8) -> KernelTree | None:
    """The tree ``--kernel-tree`` names for ``--arch`` (checked: opened, assembled, linked, ABI), or None."""
    if getattr(args, "kernel_tree", None) is None:
        return None
    from workbench.emulate.tree_abi import check_trampoline_abi  # start-up: Unicorn, only with --kernel-tree
    from workbench.kernel.image import build_image  # start-up: capstone, pyelftools, only with --kernel-tree
    from workbench.kernel.tree import open_kernel_tree  # start-up: pyelftools, only with --kernel-tree

    arch = check_choice("arch", getattr(args, "arch", "i386"), ARCHES)
    tree = open_kernel_tree(args.kernel_tree, arch)
    build_image(n_ordinary, arch, tree)
    check_trampoline_abi(tree, n_ordinary)
    return tree
