"""A kernel source tree's own ftrace trampolines, assembled into the emulated kernel.

Models the build of ``arch/x86/kernel/ftrace_32.S`` (i386) and
``arch/x86/kernel/ftrace_64.S`` (x86_64): ``ftrace_caller``,
``ftrace_regs_caller``, ``ftrace_stub``, as kbuild does it: the C
preprocessor with the kernel's configuration, then GNU as. The kernel's own
headers are replaced by the workbench's shims (``asm/shim/``: linkage, CFI
types, IBT, export, frame, objtool, unwind hints, return thunks, nospec;
``asm/asm-offsets.h`` (i386) or ``asm/ptrace.h`` (x86_64), ``asm/segment.h``
and ``asm/ftrace.h`` are generated from the arch's ``defs.inc``), each
written from the documented meaning of the kernel header it stands for, under
the options of Debian's 6.1 i386 ``686`` (``asm/shim/kconfig.h``) or amd64
(``asm/shim/kconfig_64.h``) configuration. The tree's ``struct pt_regs``
(the arch's half of ``arch/x86/include/asm/ptrace.h``) must lay out as ours.

Anything the workbench cannot assemble or link the same way -- an include or
macro the shims lack, a symbol the emulated kernel does not define -- is a
:class:`ConfigError` naming the tree's file, line and construct. The
per-ops ``live_patch_trampoline`` of the i386 sketch stays the workbench's
(no i386 kernel has per-ops trampolines; on x86_64 ``create_trampoline()``
copies the tree's own code); the int3 entry stays the workbench's (the
tree's ``entry_32.S`` / ``entry_64.S`` need the whole of the kernel's entry
machinery, which the shims do not model: docs/KERNEL_TREE.md).
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.elffile import ELFFile

from workbench.base.errors import ConfigError, check_choice
from workbench.base.version import files_digest
from workbench.kernel.layout import EQU, equ, pt_fields, pt_offset

__all__ = [
    "FTRACE_32",
    "FTRACE_64",
    "FTRACE_FILES",
    "PTRACE_H",
    "SHIM_DIR",
    "KernelTree",
    "TreeObject",
    "assemble_tree",
    "label_line",
    "object_lines",
    "object_name",
    "object_symbols",
    "open_kernel_tree",
    "shim_digest",
    "source_line",
    "tree_line",
]

#: the tree's file that holds the i386 trampolines, relative to its root
FTRACE_32 = "arch/x86/kernel/ftrace_32.S"
#: the tree's file that holds the x86_64 trampolines, relative to its root
FTRACE_64 = "arch/x86/kernel/ftrace_64.S"
#: the trampolines' file of each arch
FTRACE_FILES = {"i386": FTRACE_32, "x86_64": FTRACE_64}
#: the tree's file whose i386 ``struct pt_regs`` the shims' offsets must match
PTRACE_H = "arch/x86/include/asm/ptrace.h"
#: the shim headers standing in for the kernel's includes
SHIM_DIR = Path(__file__).resolve().parent / "asm" / "shim"
#: sizes of the C types of struct pt_regs, per arch (LP64 on x86_64)
_FIXED = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}
_CTYPE_SIZE = {"i386": {"long": 4, "int": 4, "short": 2, "char": 1, **_FIXED},
               "x86_64": {"long": 8, "int": 4, "short": 2, "char": 1, **_FIXED}}


@dataclass(frozen=True)
class KernelTree:
    """A Linux source tree: its root, version (from the top Makefile), the arch whose trampolines it gives.

    The tag names the arch's file through its digest; outputs carry the arch beside it.
    """

    root: Path
    version: str  #: ``VERSION.PATCHLEVEL.SUBLEVEL`` plus ``EXTRAVERSION``, e.g. ``6.1.192``
    arch: str = "i386"  #: ``i386`` (ftrace_32.S) or ``x86_64`` (ftrace_64.S)

    @property
    def ftrace(self) -> str:
        """The trampolines' file of this tree's arch, relative to its root."""
        return FTRACE_FILES[self.arch]

    @property
    def digest(self) -> str:
        """files_digest of the arch's ftrace file, ptrace.h and the Makefile as they are now (an edit is a new key)."""
        return files_digest([self.root / self.ftrace, self.root / PTRACE_H, self.root / "Makefile"], self.root)

    def for_arch(self, arch: str) -> KernelTree:
        """This tree for *arch*'s trampolines: itself, or opened again (its file and regs layout checked)."""
        return self if arch == self.arch else open_kernel_tree(self.root, arch)

    @property
    def tag(self) -> str:
        """What outputs carry as their ``kernel_tree``: ``linux-<version>@<digest>``."""
        return f"linux-{self.version}@{self.digest[:8]}"


@dataclass(frozen=True)
class TreeObject:
    """The tree's trampolines as a relocatable object of its arch, with DWARF lines back to its source."""

    tree: KernelTree
    elf: bytes
    undefined: tuple[str, ...]  #: symbols the object uses and does not define


def _makefile_version(root: Path) -> str | None:
    try:
        text = (root / "Makefile").read_text(errors="replace")
    except OSError:
        return None
    fields = {}
    for key in ("VERSION", "PATCHLEVEL", "SUBLEVEL", "EXTRAVERSION"):
        m = re.search(rf"^{key}\s*=[ \t]*(\S*)[ \t]*$", text, re.M)
        fields[key] = m.group(1) if m else None
    if not (fields["VERSION"] or "").isdigit() or not (fields["PATCHLEVEL"] or "").isdigit():
        return None
    v = f"{fields['VERSION']}.{fields['PATCHLEVEL']}"
    if (fields["SUBLEVEL"] or "").isdigit():
        v += f".{fields['SUBLEVEL']}"
    return v + (fields["EXTRAVERSION"] or "")


def open_kernel_tree(path: str | Path, arch: str = "i386") -> KernelTree:
    """The kernel tree at *path*, for *arch*'s trampolines, checked before any work.

    Raises :class:`ConfigError` (one line) for a path that is missing or not a
    directory, one that is not a kernel tree (no top-level Makefile with
    ``VERSION``/``PATCHLEVEL``, or no ``arch/x86``), a tree without the arch's
    ``arch/x86/kernel/ftrace_32.S`` / ``ftrace_64.S`` or ``asm/ptrace.h``, and
    a tree whose ``struct pt_regs`` of that arch lays out differently from the
    one the shims describe.
    """
    check_choice("arch", arch, tuple(FTRACE_FILES))
    root = Path(path).expanduser()
    if not root.exists():
        raise ConfigError(f"kernel-tree: {str(root)!r} does not exist; give the root of a Linux source tree")
    if not root.is_dir():
        raise ConfigError(f"kernel-tree: {str(root)!r} is not a directory; give the root of a Linux source tree")
    version = _makefile_version(root)
    if version is None or not (root / "arch" / "x86").is_dir():
        raise ConfigError(f"kernel-tree: {str(root)!r} is not a kernel tree (no top-level Makefile with "
                          "VERSION and PATCHLEVEL, or no arch/x86); give the root of a Linux source tree")
    for rel, what in ((FTRACE_FILES[arch], f"the {arch} ftrace trampolines"), (PTRACE_H, "struct pt_regs")):
        f = root / rel
        if not f.is_file():
            raise ConfigError(f"kernel-tree: {rel}: missing from the {version} tree at {str(root)!r} "
                              f"(the workbench reads {what} there)")
    _check_pt_regs(root, arch)
    return KernelTree(root.resolve(), version, arch)


def _check_pt_regs(root: Path, arch: str = "i386") -> None:
    """The tree's ``struct pt_regs`` of *arch* must have our fields at our offsets (the shims' asm-offsets).

    i386's is the struct under ``#ifdef __i386__``, x86_64's the one after its ``#else``.
    """
    lines = (root / PTRACE_H).read_text(errors="replace").splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"\s*#\s*ifdef\s+__i386__", ln)), None)
    if arch == "x86_64" and start is not None:
        start = next((i for i in range(start, len(lines)) if re.match(r"\s*#\s*else\b", lines[i])), None)
    begin = None if start is None else next(
        (i for i in range(start, len(lines)) if re.match(r"\s*struct\s+pt_regs\s*\{", lines[i])), None)
    if begin is None:
        where = "under #ifdef __i386__" if arch == "i386" else "after the #else of #ifdef __i386__"
        raise ConfigError(f"kernel-tree: {PTRACE_H}: no {arch} struct pt_regs ({where}); "
                          "the trampolines' regs layout cannot be checked")
    offset, in_comment, union = 0, False, None
    want = {f: pt_offset(f, arch) for f in pt_fields(arch)}
    size = equ(arch)["PT_SIZE"]
    for i in range(begin + 1, len(lines)):
        ln = lines[i]
        if in_comment:
            if "*/" not in ln:
                continue
            ln, in_comment = ln.split("*/", 1)[1], False
        ln = re.sub(r"/\*.*?\*/", "", ln)
        if "/*" in ln:
            ln, in_comment = ln.split("/*", 1)[0], True
        if union is None and re.match(r"\s*union\s*\{", ln):  # members share one slot (6.12's cs/csx/fred_cs)
            union = 0
            continue
        if union is not None and re.match(r"\s*\}", ln):
            offset, union = offset + union, None
            continue
        if re.match(r"\s*\}", ln):
            end = offset
            if end != size:
                raise ConfigError(f"kernel-tree: {PTRACE_H}:{i + 1}: struct pt_regs ({arch}) is {end} bytes, the "
                                  f"shims' asm-offsets describe {size} (trampoline ABI: regs layout)")
            return
        m = re.match(r"\s*(?:unsigned\s+)?(long|int|short|char|u8|u16|u32|u64)\s+(\w+)\s*;", ln)
        if not m:
            continue
        name = m.group(2)
        if name in want and want[name] != offset:
            raise ConfigError(f"kernel-tree: {PTRACE_H}:{i + 1}: pt_regs->{name} ({arch}) at offset {offset}, the "
                              f"shims' asm-offsets put it at {want[name]} (trampoline ABI: regs layout)")
        if union is None:
            offset += _CTYPE_SIZE[arch][m.group(1)]
        else:  # a union is as large as its largest scalar member (a struct member there is a view of it)
            union = max(union, _CTYPE_SIZE[arch][m.group(1)])
    raise ConfigError(f"kernel-tree: {PTRACE_H}:{begin + 1}: struct pt_regs has no closing brace")


def tree_line(tree: KernelTree, rel: str, line: int) -> str:
    """The text of line *line* (1-based) of the tree's file *rel*, stripped ('' if out of range)."""
    lines = (tree.root / rel).read_text(errors="replace").splitlines()
    return lines[line - 1].strip() if 1 <= line <= len(lines) else ""


def _generated_headers(inc: Path, arch: str = "i386") -> None:
    """asm-offsets (i386) or ptrace (x86_64), segment and ftrace constants, written from the arch's ``defs.inc``."""
    (inc / "asm").mkdir(parents=True, exist_ok=True)
    if arch == "x86_64":
        _generated_headers_64(inc)
        return
    names = ("PT_EBX", "PT_ECX", "PT_EDX", "PT_ESI", "PT_EDI", "PT_EBP", "PT_EAX", "PT_DS", "PT_ES", "PT_FS",
             "PT_GS", "PT_ORIG_EAX", "PT_EIP", "PT_CS", "PT_EFLAGS", "PT_OLDESP", "PT_OLDSS")
    (inc / "asm" / "asm-offsets.h").write_text(
        "/* generated from asm/defs.inc: offsets of struct pt_regs (i386), as kbuild's asm-offsets_32.c */\n"
        + "".join(f"#define {n} {EQU[n]}\n" for n in names) + f"#define PTREGS_SIZE {EQU['PT_SIZE']}\n")
    _segment_and_ftrace_headers(inc, EQU, "asm/defs.inc")


def _generated_headers_64(inc: Path) -> None:
    """x86_64: the pt_regs offsets of ``uapi/asm/ptrace-abi.h``, selectors, ftrace constants, from defs.inc."""
    eq = equ("x86_64")
    names = {"R15": "PT_R15", "R14": "PT_R14", "R13": "PT_R13", "R12": "PT_R12", "RBP": "PT_RBP", "RBX": "PT_RBX",
             "R11": "PT_R11", "R10": "PT_R10", "R9": "PT_R9", "R8": "PT_R8", "RAX": "PT_RAX", "RCX": "PT_RCX",
             "RDX": "PT_RDX", "RSI": "PT_RSI", "RDI": "PT_RDI", "ORIG_RAX": "PT_ORIG_RAX", "RIP": "PT_RIP",
             "CS": "PT_CS", "EFLAGS": "PT_EFLAGS", "RSP": "PT_RSP", "SS": "PT_SS"}
    (inc / "asm" / "ptrace.h").write_text(
        "/* generated from asm_x86_64/defs.inc: arch/x86/include/asm/ptrace.h in assembly, i.e. the offsets\n"
        " * of struct pt_regs (x86_64) that uapi/asm/ptrace-abi.h defines, and FRAME_SIZE, its size */\n"
        "#include <asm/segment.h>\n#include <asm/page_types.h>\n"
        + "".join(f"#define {k} {eq[v]}\n" for k, v in names.items()) + f"#define FRAME_SIZE {eq['PT_SIZE']}\n")
    (inc / "asm" / "asm-offsets.h").write_text(
        "/* generated from asm_x86_64/defs.inc: what kbuild's asm-offsets_64.c gives assembly of struct pt_regs */\n"
        + "".join(f"#define pt_regs_{f} {pt_offset(f, 'x86_64')}\n" for f in pt_fields("x86_64"))
        + f"#define PTREGS_SIZE {eq['PT_SIZE']}\n")
    _segment_and_ftrace_headers(inc, eq, "asm_x86_64/defs.inc")


def _segment_and_ftrace_headers(inc: Path, eq: dict, source: str) -> None:
    """``asm/segment.h`` and ``asm/ftrace.h``: the same constants on both arches, from *source*."""
    (inc / "asm" / "segment.h").write_text(
        f"/* generated from {source}: the kernel code and data selectors of the emulated GDT */\n"
        f"#define __KERNEL_CS {eq['__KERNEL_CS']:#x}\n#define __KERNEL_DS {eq['__KERNEL_DS']:#x}\n")
    (inc / "asm" / "ftrace.h").write_text(
        f"/* generated from {source}: the size of the 5-byte call at every traced function's start */\n"
        f"#define MCOUNT_INSN_SIZE {eq['MCOUNT_INSN_SIZE']}\n#define MCOUNT_ADDR __fentry__\n")


def shim_digest() -> str:
    """Digest of the shim headers and the constants generated from ``defs.inc`` (part of every image key)."""
    files = sorted(p for p in SHIM_DIR.rglob("*.h"))
    consts = ",".join(f"{k}={v}" for k, v in sorted(EQU.items()))
    consts += ";" + ",".join(f"{k}={v}" for k, v in sorted(equ("x86_64").items()))
    return files_digest(files, SHIM_DIR) + consts


def object_name(tree: KernelTree) -> str:
    """The file name of the tree's assembled object in the link's work directory."""
    return f"tree_{Path(tree.ftrace).stem}.o"


def assemble_tree(tree: KernelTree, work: Path) -> TreeObject:
    """Preprocess and assemble the tree's ``ftrace_32.S`` / ``ftrace_64.S`` with the shims into *work*.

    The object is written to ``work / object_name(tree)``. Raises
    :class:`ConfigError` naming file, line and construct when an include, a
    macro or an instruction does not assemble with the shims.
    """
    x64 = tree.arch == "x86_64"
    inc = work / ("generated64" if x64 else "generated")
    _generated_headers(inc, tree.arch)
    stem = Path(tree.ftrace).stem
    pre, obj = work / f"tree_{stem}.s", work / object_name(tree)
    cpp = ["cpp", "-x", "assembler-with-cpp", "-D__ASSEMBLY__", "-D__KERNEL__", "-nostdinc", "-undef",
           "-D__x86_64__" if x64 else "-D__i386__", "-I", str(inc), "-I", str(SHIM_DIR),
           "-include", str(SHIM_DIR / ("kconfig_64.h" if x64 else "kconfig.h")), tree.ftrace, "-o", str(pre)]
    r = subprocess.run(cpp, cwd=tree.root, capture_output=True, text=True)
    if r.returncode:
        raise ConfigError(_cpp_error(tree, r.stderr))
    r = subprocess.run(["as", "--64" if x64 else "--32", "-g", "-o", str(obj), str(pre)], cwd=tree.root,
                       capture_output=True, text=True)
    if r.returncode:
        raise ConfigError(_as_error(tree, r.stderr))
    elf = obj.read_bytes()
    return TreeObject(tree, elf, _undefined(elf))


def _cpp_error(tree: KernelTree, stderr: str) -> str:
    m = re.search(r"^(\S+?):(\d+):\d+: fatal error: (\S+): No such file", stderr, re.M)
    if m:
        return (f"kernel-tree: {m.group(1)}:{m.group(2)}: includes <{m.group(3)}>, which the workbench's shims "
                f"do not provide ({tree.version} tree); add a shim in workbench/kernel/asm/shim/")
    m = re.search(r"^(\S+?):(\d+):(?:\d+:)? error: (.+)$", stderr, re.M)
    if m:
        return f"kernel-tree: {m.group(1)}:{m.group(2)}: does not preprocess with the shims: {m.group(3)}"
    first = stderr.strip().splitlines()[0] if stderr.strip() else "cpp failed"
    return f"kernel-tree: {tree.ftrace}: does not preprocess with the shims: {first}"


def _as_error(tree: KernelTree, stderr: str) -> str:
    m = re.search(r"^(\S+?):(\d+): Error: (.+)$", stderr, re.M)
    if not m:
        first = next((ln for ln in stderr.splitlines() if "Error" in ln), stderr.strip()[:200])
        return f"kernel-tree: {tree.ftrace}: does not assemble with the shims: {first}"
    rel, line, msg = m.group(1), int(m.group(2)), m.group(3)
    src = tree_line(tree, rel, line) if (tree.root / rel).is_file() else ""
    word = re.match(r"no such instruction: `([^' ]+)", msg)
    token = src.split()[0].rstrip(",(") if src.split() else ""
    if word and token.lower() == word.group(1).lower() and (token.isupper() or "_" in token):
        return (f"kernel-tree: {rel}:{line}: uses {token}, a macro the workbench's shims do not define "
                f"({tree.version} tree); add it to a shim in workbench/kernel/asm/shim/")
    return f"kernel-tree: {rel}:{line}: does not assemble with the shims: {msg} (`{src}`)"


def _undefined(elf: bytes) -> tuple[str, ...]:
    f = ELFFile(io.BytesIO(elf))
    return tuple(sorted(s.name for s in f.get_section_by_name(".symtab").iter_symbols()
                        if s.name and s["st_shndx"] == "SHN_UNDEF"))


def object_lines(elf: bytes, root: Path | None = None) -> list[tuple[int, str, int]]:
    """(address, file, line) rows of an object's DWARF line table, by address; files relative to *root*."""
    f = ELFFile(io.BytesIO(elf))
    if not f.has_dwarf_info():
        return []
    rows = []
    dwarf = f.get_dwarf_info()
    for cu in dwarf.iter_CUs():
        lp = dwarf.line_program_for_CU(cu)
        v5 = lp.header["version"] >= 5  # file and directory numbers count from 0 in DWARF 5, from 1 before
        files, dirs = lp["file_entry"], lp["include_directory"]

        def path(k: int) -> str:
            e = files[k if v5 else k - 1]
            d = e.dir_index if v5 else e.dir_index - 1
            name = e.name.decode(errors="replace")
            if 0 <= d < len(dirs) and (e.dir_index or not v5):
                name = f"{dirs[d].decode(errors='replace')}/{name}"
            if root is not None:
                name = name.removeprefix(f"{root}/")
            return name

        for e in lp.get_entries():
            st = e.state
            if st is None or st.end_sequence:
                continue
            rows.append((st.address, path(st.file), st.line))
    return sorted(rows)


@functools.lru_cache(maxsize=8)
def _lines_cached(elf: bytes, root: Path) -> tuple:
    return tuple(object_lines(elf, root))


def source_line(obj: TreeObject, offset: int) -> tuple[str, int]:
    """(file, line) of the instruction at *offset* in the object's ``.text`` (the tree's file, 0 if unknown)."""
    best = (obj.tree.ftrace, 0)
    for addr, name, line in _lines_cached(obj.elf, obj.tree.root):
        if addr > offset:
            break
        best = (name, line)
    return best


def object_symbols(elf: bytes) -> dict[str, tuple[int, str]]:
    """``{name: (value, binding)}`` of the symbols an object defines."""
    f = ELFFile(io.BytesIO(elf))
    return {s.name: (s["st_value"], s["st_info"]["bind"]) for s in f.get_section_by_name(".symtab").iter_symbols()
            if s.name and s["st_shndx"] != "SHN_UNDEF"}


def label_line(tree: KernelTree, label: str) -> int:
    """The line of the tree's ftrace file that names *label* as a label or symbol start (0 if none)."""
    lines = (tree.root / tree.ftrace).read_text(errors="replace").splitlines()
    pats = (rf"^\s*{label}\s*:", rf"\(\s*{label}\s*[,)]", rf"\b{label}\b")
    for pat in pats:
        for i, ln in enumerate(lines):
            if re.search(pat, ln):
                return i + 1
    return 0
