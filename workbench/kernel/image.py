"""The emulated kernel image: i386 or x86_64 sources assembled and linked with GNU binutils.

Models ``vmlinux``: the trampolines of ``arch/x86/kernel/ftrace_32.S``, the
int3 entry of ``arch/x86/entry/entry_32.S``, the ftrace list function, the
function tracer, the livepatch handler and the traced functions, linked at
``0xc1000000``; with ``arch="x86_64"`` the same from ``asm_x86_64/`` (after
``arch/x86/kernel/ftrace_64.S`` and ``arch/x86/entry/entry_64.S``), linked
at ``0x1000000``. Symbols and the ``__mcount_loc`` site list are read with
pyelftools; listings come from capstone. Builds are cached by the hash of the
sources as they are at each call (an edit in a live session relinks), the
generated function list and the assembler's version; a cached ``vmlinux`` is
a verified entry (:mod:`workbench.base.store`): a damaged or unloadable one
is reported in one line and relinked.
"""

from __future__ import annotations

import functools
import hashlib
import io
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import capstone
from elftools.elf.elffile import ELFFile

from workbench.base.errors import ConfigError, check_choice, check_range
from workbench.base.paths import cache_dir
from workbench.base.store import load_entry, store_entry
from workbench.base.version import files_digest
from workbench.base.vocabulary import ARCHES
from workbench.kernel.layout import equ
from workbench.kernel.tree import KernelTree, TreeObject, assemble_tree, object_name, shim_digest
from workbench.kernel.tree_check import check_trampolines

__all__ = [
    "KernelImage",
    "TracedFunction",
    "build_image",
    "MCOUNT_INSN_SIZE",
    "NOP5",
    "HOT_FUNCTIONS",
]

MCOUNT_INSN_SIZE = 5
#: ideal_nops[NOP_ATOMIC5]: what ftrace_init() leaves at every site
NOP5 = bytes.fromhex("0f1f440000")
#: named traced functions, each with a livepatch replacement body in the image
HOT_FUNCTIONS = ("do_IRQ", "__migrate_task", "schedule")

_ASM_DIR = Path(__file__).resolve().parent / "asm"
_SOURCES = ("entry_32.S", "ftrace_32.S", "ftrace_ops.S", "trace_functions.S", "livepatch.S")
_ASM_DIR_X86_64 = _ASM_DIR.parent / "asm_x86_64"
_SOURCES_X86_64 = ("entry_64.S", "ftrace_64.S", "ftrace_ops.S", "trace_functions.S", "livepatch.S")
#: per arch: as and ld emulation flags, capstone mode, __mcount_loc entry size
_ARCH = {
    "i386": ("--32", "elf_i386", capstone.CS_MODE_32, 4),
    "x86_64": ("--64", "elf_x86_64", capstone.CS_MODE_64, 8),
}


def _asm(arch: str) -> tuple[Path, tuple[str, ...]]:
    """The assembly folder and sources of *arch*, read at each call (tests point them elsewhere)."""
    return (_ASM_DIR_X86_64, _SOURCES_X86_64) if arch == "x86_64" else (_ASM_DIR, _SOURCES)


@dataclass(frozen=True)
class TracedFunction:
    """A traced function: its name, body id, 5-byte site and replacement body."""

    name: str
    id: int
    site: int  #: address of the 5-byte ftrace site (the function's first byte)
    new_body: int | None  #: ``klp_new_<name>``, or None if it has no replacement
    kind: str  #: ``hot`` for the named functions, ``ordinary`` for the tail


@dataclass
class KernelImage:
    """A linked image: its bytes as laid out in memory, symbols and regions."""

    base: int
    memory: bytes  #: initial contents of [base, base + len(memory))
    symbols: dict[str, int]
    sizes: dict[str, int]
    text: tuple[int, int]  #: [start, end) read-only, executable
    data: tuple[int, int]  #: [start, end) read-write (data and bss)
    functions: dict[str, TracedFunction]
    digest: str
    arch: str = "i386"
    #: whose trampolines: ``workbench`` (ours) or a tree's ``linux-<version>@<digest>``
    kernel_tree: str = "workbench"
    _by_addr: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self._by_addr = sorted((a, n) for n, a in self.symbols.items())

    @property
    def equ(self) -> dict[str, int]:
        """The ``.equ`` constants of this image's ``defs.inc``."""
        return equ(self.arch)

    def sym(self, name: str) -> int:
        """Address of *name*; raises :class:`ConfigError` naming close choices."""
        try:
            return self.symbols[name]
        except KeyError:
            near = sorted(s for s in self.symbols if not s.startswith((".", "_")))
            raise ConfigError(f"symbol: unknown {name!r}; known symbols include "
                              + ", ".join(near[:15]) + ", ...") from None

    def function(self, name: str) -> TracedFunction:
        """The traced function *name*; raises :class:`ConfigError` listing the choices."""
        try:
            return self.functions[name]
        except KeyError:
            names = list(self.functions)
            shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            raise ConfigError(f"function: unknown {name!r}; choose from {shown}") from None

    def name_at(self, addr: int) -> str:
        """``symbol+off`` for an address (the nearest symbol at or below it)."""
        import bisect

        i = bisect.bisect_right(self._by_addr, (addr, "\uffff")) - 1
        if i < 0:
            return hex(addr)
        a, n = self._by_addr[i]
        return n if a == addr else f"{n}+{addr - a:#x}"

    def read(self, addr: int, size: int) -> bytes:
        off = addr - self.base
        return self.memory[off:off + size]

    def disassemble(self, code: bytes, addr: int):
        """Capstone instructions (AT&T syntax) for *code* placed at *addr*."""
        return list(_capstone(self.arch).disasm(code, addr))

    def listing(self, name: str) -> str:
        """Text listing of symbol *name*: address, bytes, AT&T text, target symbols."""
        start = self.sym(name)
        return self.code_listing(name, self.read(start, self.sizes.get(name) or 16), start)

    def code_listing(self, title: str, code: bytes, start: int) -> str:
        """Text listing of *code* placed at *start* (e.g. a trampoline made at run time), headed *title*."""
        lines = [f"{start:08x} <{title}>:"]
        for insn in self.disassemble(code, start):
            label = self.name_at(insn.address)
            text = f"{insn.mnemonic} {insn.op_str}".strip()
            if insn.mnemonic.startswith(("call", "jmp", "j")) and insn.op_str.startswith("0x"):
                text += f"  <{self.name_at(int(insn.op_str, 16))}>"
            tag = f"  <{label}>" if "+" not in label and insn.address != start else ""
            lines.append(f"{insn.address:08x}:  {insn.bytes.hex(' '):<24} {text}{tag}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=2)
def _capstone(arch: str = "i386"):
    md = capstone.Cs(capstone.CS_ARCH_X86, _ARCH[arch][2])
    md.syntax = capstone.CS_OPT_SYNTAX_ATT
    return md


def _traced_source(n_ordinary: int, arch: str = "i386") -> str:
    lines = ['\t.include "defs.inc"', '\t.include "traced.inc"'] + (["\t.code64"] if arch == "x86_64" else []) \
        + ["\t.text"]
    names = list(HOT_FUNCTIONS) + [f"fn_{i:05d}" for i in range(n_ordinary)]
    for i, name in enumerate(names, start=1):
        lines.append(f"\tTRACED {name}, {i}")
    for i, name in enumerate(HOT_FUNCTIONS, start=1):
        lines.append(f"\tLIVEPATCHED {name}, {i}")
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=4)
def _tool_version(tool: str) -> str:
    if shutil.which(tool) is None and tool == "cpp":
        raise ConfigError("cpp: the C preprocessor is not on PATH; --kernel-tree needs it to read the tree's "
                          "ftrace_32.S / ftrace_64.S (Debian: apt-get install cpp, conda: gcc)")
    if shutil.which(tool) is None:
        raise ConfigError(f"{tool}: GNU binutils not found on PATH; install binutils "
                          "(Debian: apt-get install binutils, conda: binutils)")
    return subprocess.run([tool, "--version"], capture_output=True, text=True).stdout.splitlines()[0]


def build_image(n_ordinary: int = 8, arch: str = "i386", tree: KernelTree | None = None) -> KernelImage:
    """Assemble and link the *arch* kernel with *n_ordinary* tail functions (cached).

    With *tree* (:func:`workbench.kernel.tree.open_kernel_tree`), the tree's
    own ``ftrace_32.S`` (i386) or ``ftrace_64.S`` (x86_64) is assembled with
    the shims and linked in place of our ``ftrace_caller``,
    ``ftrace_regs_caller`` and ``ftrace_stub`` (on x86_64 the per-ops
    trampolines are then copies of the tree's code, as create_trampoline()
    makes them), and the result is checked against the trampoline ABI the
    harness relies on (:func:`workbench.kernel.tree_check.check_trampolines`);
    the image carries the tree's tag as ``kernel_tree`` and in its digest. A
    tree opened for the other arch is opened again for *arch* (its file and
    regs layout checked).

    Raises :class:`ConfigError` if ``n_ordinary`` is outside [0, 4096], the
    arch is not one of :data:`ARCHES`, binutils is missing, or the tree's file
    does not assemble, link or keep the ABI (one line naming file, line and
    construct), and ``RuntimeError`` with the assembler's message if our
    sources do not assemble.
    """
    n_ordinary = int(check_range("n_ordinary", n_ordinary, 0, 4096, integer=True))
    check_choice("arch", arch, ARCHES)
    if tree is not None:
        tree = tree.for_arch(arch)
    return _build_cached(n_ordinary, arch, tree)


def _build_cached(n_ordinary: int, arch: str = "i386", tree: KernelTree | None = None) -> KernelImage:
    """The image of the sources as they are now: keyed by their digest, so an edit relinks."""
    asm_dir = _asm(arch)[0]
    generated = _traced_source(n_ordinary, arch)
    h = hashlib.sha256()
    h.update(files_digest([f for f in asm_dir.iterdir() if f.is_file()]).encode())
    h.update(generated.encode())
    h.update(_tool_version("as").encode() + _tool_version("ld").encode())
    if arch != "i386":  # i386 keeps the key it always had
        h.update(arch.encode())
    if tree is not None:
        # the tree's file as it is now (an edit relinks), the shims and the preprocessor
        h.update(tree.tag.encode() + (b"" if tree.arch == "i386" else tree.ftrace.encode()))
        h.update(shim_digest().encode() + _tool_version("cpp").encode())
    return _load_cached(h.hexdigest()[:16], generated, arch, tree)


@functools.lru_cache(maxsize=8)
def _load_cached(digest: str, generated: str, arch: str = "i386", tree: KernelTree | None = None) -> KernelImage:
    tag = "workbench" if tree is None else tree.tag
    out = cache_dir("image", digest) / "vmlinux"
    # a tree's image is relinked in each process: its ABI check needs the tree's object
    image = None if tree is not None else load_entry(out, lambda elf: _load(elf, digest, arch, tag),
                                                     what="image cache")
    if isinstance(image, KernelImage):
        return image
    if tree is None:
        elf = _link(generated, arch)
        store_entry(out, elf, what="image cache")
        return _load(elf, digest, arch, tag)
    made: list[TreeObject] = []
    image = _load(_link(generated, arch, tree, made), digest, arch, tag)
    check_trampolines(made[0], image)
    return image


def _link(generated: str, arch: str = "i386", tree: KernelTree | None = None, made: list | None = None) -> bytes:
    """Assemble and link; the ELF bytes of ``vmlinux``. With *tree*, its object is appended to *made*."""
    (asm_dir, sources), (as_flag, ld_emul) = _asm(arch), _ARCH[arch][:2]
    with tempfile.TemporaryDirectory(prefix="wb-image-") as tmp:
        tmp = Path(tmp)
        (tmp / "traced.S").write_text(generated)
        objs = []
        for src in [asm_dir / s for s in sources] + [tmp / "traced.S"]:
            obj = tmp / (src.stem + ".o")
            defs = ["--defsym", "KERNEL_TREE=1"] if tree is not None else []
            _run(["as", as_flag, *defs, "-I", str(asm_dir), "-o", str(obj), str(src)])
            if tree is not None and src.name in ("ftrace_32.S", "ftrace_64.S"):
                # the tree's trampolines where ours were, then what they refer to beyond our kernel
                tree_obj = assemble_tree(tree, tmp)
                if made is not None:
                    made.append(tree_obj)
                objs.append(str(tmp / object_name(tree)))
                glue = tmp / "tree_glue.o"
                _run(["as", as_flag, "-I", str(asm_dir), "-o", str(glue), str(asm_dir / "tree_glue.S")])
                objs.append(str(glue))
            objs.append(str(obj))
        linked = tmp / "vmlinux"
        cmd = ["ld", "-m", ld_emul, "-T", str(asm_dir / "kernel.ld"), "-o", str(linked), *objs]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            if tree is not None:
                raise ConfigError(_ld_error(tree, r.stderr))
            raise RuntimeError(f"ld failed:\n{r.stderr.strip()}")
        return linked.read_bytes()


def _ld_error(tree: KernelTree, stderr: str) -> str:
    """One line for a tree whose object does not link into the emulated kernel."""
    m = re.search(r"^(\S+?):(\d+):(?: \(\S+\))? undefined reference to `([^']+)'", stderr, re.M)
    if m:
        name = m.group(1).removeprefix(f"{tree.root}/")
        return (f"kernel-tree: {name}:{m.group(2)}: refers to {m.group(3)}, which the emulated kernel does "
                f"not define ({tree.version} tree)")
    m = re.search(r"multiple definition of `([^']+)'", stderr)
    if m:
        return (f"kernel-tree: {tree.ftrace}: defines {m.group(1)}, which the emulated kernel defines too "
                f"({tree.version} tree)")
    first = next((ln for ln in stderr.splitlines() if ln.strip()), "ld failed")
    return f"kernel-tree: {tree.ftrace}: does not link into the emulated kernel: {first}"


def _run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{cmd[0]} failed:\n{r.stderr.strip()}")


def _load(elf_bytes: bytes, digest: str, arch: str = "i386", kernel_tree: str = "workbench") -> KernelImage:
    elf = ELFFile(io.BytesIO(elf_bytes))
    symtab = elf.get_section_by_name(".symtab")
    symbols, sizes, funcs = {}, {}, set()
    for s in symtab.iter_symbols():
        if s.name and s["st_info"]["type"] in ("STT_FUNC", "STT_NOTYPE", "STT_OBJECT") \
                and s["st_shndx"] != "SHN_UNDEF" and not s.name.startswith(".L"):
            symbols[s.name] = s["st_value"]
            if s["st_size"]:
                sizes[s.name] = s["st_size"]
            if s["st_info"]["type"] == "STT_FUNC":
                funcs.add(s.name)
    base, end = symbols["_text"], symbols["_end"]
    mem = bytearray(end - base)
    for sec in elf.iter_sections():
        if sec["sh_type"] == "SHT_PROGBITS" and sec["sh_addr"]:
            a = sec["sh_addr"] - base
            mem[a:a + sec["sh_size"]] = sec.data()
    w = _ARCH[arch][3]
    sites = sorted(int.from_bytes(elf.get_section_by_name("__mcount_loc").data()[i:i + w], "little")
                   for i in range(0, elf.get_section_by_name("__mcount_loc")["sh_size"], w))
    by_site = {symbols[n]: n for n in funcs if symbols[n] in set(sites)}
    functions = {}
    for i, site in enumerate(sites):
        name = by_site[site]
        hot = name in HOT_FUNCTIONS
        functions[name] = TracedFunction(name, i + 1, site, symbols.get(f"klp_new_{name}"),
                                         "hot" if hot else "ordinary")
    functions = dict(sorted(functions.items(), key=lambda kv: kv[1].site))
    return KernelImage(base=base, memory=bytes(mem), symbols=symbols, sizes=sizes,
                       text=(base, symbols["_etext"]), data=(symbols["_sdata"], end),
                       functions=functions, digest=digest, arch=arch, kernel_tree=kernel_tree)
