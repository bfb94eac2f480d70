"""``kernel-source``: Debian's linux-source package as a kernel tree, cached under the data directory.

Reads /usr/src/linux-source-6.1.tar.xz when the package is installed
(apt-get install linux-source-6.1), else fetches it with apt-get download
and dpkg-deb -x; extracts the top Makefile, arch/x86/kernel/ftrace_32.S,
ftrace_64.S, entry_32.S and the headers they include, and prints the tree's
root, ready for --kernel-tree.

  python -m workbench check-tree --kernel-tree "$(python -m workbench kernel-source)"
"""

from workbench.kernel.tree_source import DEBIAN_SERIES, debian_kernel_tree


def configure(p):
    p.add_argument("--series", default="6.1", help=f"Debian's kernel source series, one of {', '.join(DEBIAN_SERIES)}")


def run(args):
    from workbench.kernel.tree import open_kernel_tree  # start-up: pyelftools, not for parsing

    root = debian_kernel_tree(args.series)
    open_kernel_tree(root)  # a usable tree, or one line
    print(root)
    return 0
