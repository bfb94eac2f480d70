"""A kernel source tree's own i386 trampolines, assembled into the emulated kernel.

Models the build of ``arch/x86/kernel/ftrace_32.S`` (``ftrace_caller``,
``ftrace_regs_caller``, ``ftrace_stub``) as kbuild does it: the C
preprocessor with the kernel's configuration, then GNU as. The kernel's own
headers are replaced by the workbench's shims (``asm/shim/``: linkage, export,
frame, unwind hints, return thunks, nospec; ``asm/asm-offsets.h``,
``asm/segment.h`` and ``asm/ftrace.h`` are generated from ``asm/defs.inc``),
each written from the documented meaning of the kernel header it stands for,
under the options of Debian's 6.1 i386 ``686`` configuration
(``asm/shim/kconfig.h``). The tree's ``struct pt_regs`` (i386 half of
``arch/x86/include/asm/ptrace.h``) must lay out as ours does.

Anything the workbench cannot assemble or link the same way -- an include or
macro the shims lack, a symbol the emulated kernel does not define -- is a
:class:`ConfigError` naming the tree's file, line and construct. The
per-ops ``live_patch_trampoline`` stays the workbench's (no i386 kernel has
per-ops trampolines); the int3 entry stays the workbench's too (the tree's
``entry_32.S`` needs the whole of the kernel's entry machinery, which the
shims do not model).
"""

from __future__ import annotations

import functools
import io
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from elftools.elf.elffile import ELFFile

from workbench.base.errors import ConfigError
from workbench.base.version import files_digest
from workbench.kernel.layout import EQU, PT_REGS_FIELDS, pt_offset

__all__ = ["FTRACE_32", "HARNESS_LABELS", "KernelTree", "PTRACE_H", "SHIM_DIR", "TreeObject", "assemble_tree",
           "check_trampolines", "label_line", "object_lines", "open_kernel_tree", "shim_digest", "source_line",
           "tree_line"]

#: the tree's file that holds the i386 trampolines, relative to its root
FTRACE_32 = "arch/x86/kernel/ftrace_32.S"
#: the tree's file whose i386 ``struct pt_regs`` the shims' offsets must match
PTRACE_H = "arch/x86/include/asm/ptrace.h"
#: labels the harness patches or calls: the trampolines, their patchable calls, the stub
HARNESS_LABELS = ("ftrace_caller", "ftrace_call", "ftrace_regs_caller", "ftrace_regs_call", "ftrace_stub")
#: the shim headers standing in for the kernel's includes
SHIM_DIR = Path(__file__).resolve().parent / "asm" / "shim"
_CTYPE_SIZE = {"long": 4, "int": 4, "short": 2, "char": 1}


@dataclass(frozen=True)
class KernelTree:
    """A Linux source tree: its root, version (from the top Makefile) and the digest of the files used."""

    root: Path
    version: str  #: ``VERSION.PATCHLEVEL.SUBLEVEL`` plus ``EXTRAVERSION``, e.g. ``6.1.192``

    @property
    def digest(self) -> str:
        """files_digest of ftrace_32.S, ptrace.h and the Makefile as they are now (an edit is a new key)."""
        return files_digest([self.root / FTRACE_32, self.root / PTRACE_H, self.root / "Makefile"], self.root)

    @property
    def tag(self) -> str:
        """What outputs carry as their ``kernel_tree``: ``linux-<version>@<digest>``."""
        return f"linux-{self.version}@{self.digest[:8]}"


@dataclass(frozen=True)
class TreeObject:
    """The tree's trampolines as an i386 relocatable object, with DWARF lines back to its source."""

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


def open_kernel_tree(path: str | Path) -> KernelTree:
    """The kernel tree at *path*, checked before any work.

    Raises :class:`ConfigError` (one line) for a path that is missing or not a
    directory, one that is not a kernel tree (no top-level Makefile with
    ``VERSION``/``PATCHLEVEL``, or no ``arch/x86``), a tree without
    ``arch/x86/kernel/ftrace_32.S`` or ``asm/ptrace.h``, and a tree whose i386
    ``struct pt_regs`` lays out differently from the one the shims describe.
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise ConfigError(f"kernel-tree: {str(root)!r} does not exist; give the root of a Linux source tree")
    if not root.is_dir():
        raise ConfigError(f"kernel-tree: {str(root)!r} is not a directory; give the root of a Linux source tree")
    version = _makefile_version(root)
    if version is None or not (root / "arch" / "x86").is_dir():
        raise ConfigError(f"kernel-tree: {str(root)!r} is not a kernel tree (no top-level Makefile with "
                          "VERSION and PATCHLEVEL, or no arch/x86); give the root of a Linux source tree")
    for rel, what in ((FTRACE_32, "the i386 ftrace trampolines"), (PTRACE_H, "struct pt_regs")):
        f = root / rel
        if not f.is_file():
            raise ConfigError(f"kernel-tree: {rel}: missing from the {version} tree at {str(root)!r} "
                              f"(the workbench reads {what} there)")
    _check_pt_regs(root)
    return KernelTree(root.resolve(), version)


def _check_pt_regs(root: Path) -> None:
    """The tree's i386 ``struct pt_regs`` must have our fields at our offsets (the shims' asm-offsets)."""
    lines = (root / PTRACE_H).read_text(errors="replace").splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"\s*#\s*ifdef\s+__i386__", ln)), None)
    begin = None if start is None else next(
        (i for i in range(start, len(lines)) if re.match(r"\s*struct\s+pt_regs\s*\{", lines[i])), None)
    if begin is None:
        raise ConfigError(f"kernel-tree: {PTRACE_H}: no i386 struct pt_regs (under #ifdef __i386__); "
                          "the trampolines' regs layout cannot be checked")
    offset, in_comment = 0, False
    want = {f: pt_offset(f) for f in PT_REGS_FIELDS}
    for i in range(begin + 1, len(lines)):
        ln = lines[i]
        if in_comment:
            if "*/" not in ln:
                continue
            ln, in_comment = ln.split("*/", 1)[1], False
        ln = re.sub(r"/\*.*?\*/", "", ln)
        if "/*" in ln:
            ln, in_comment = ln.split("/*", 1)[0], True
        if re.match(r"\s*\}", ln):
            end = offset
            if end != EQU["PT_SIZE"]:
                raise ConfigError(f"kernel-tree: {PTRACE_H}:{i + 1}: struct pt_regs is {end} bytes, the shims' "
                                  f"asm-offsets describe {EQU['PT_SIZE']} (trampoline ABI: regs layout)")
            return
        m = re.match(r"\s*(?:unsigned\s+)?(long|int|short|char)\s+(\w+)\s*;", ln)
        if not m:
            continue
        name = m.group(2)
        if name in want and want[name] != offset:
            raise ConfigError(f"kernel-tree: {PTRACE_H}:{i + 1}: pt_regs->{name} at offset {offset}, the shims' "
                              f"asm-offsets put it at {want[name]} (trampoline ABI: regs layout)")
        offset += _CTYPE_SIZE[m.group(1)]
    raise ConfigError(f"kernel-tree: {PTRACE_H}:{begin + 1}: struct pt_regs has no closing brace")


def tree_line(tree: KernelTree, rel: str, line: int) -> str:
    """The text of line *line* (1-based) of the tree's file *rel*, stripped ('' if out of range)."""
    lines = (tree.root / rel).read_text(errors="replace").splitlines()
    return lines[line - 1].strip() if 1 <= line <= len(lines) else ""


def _generated_headers(inc: Path) -> None:
    """asm-offsets, segment and ftrace constants, written from ``asm/defs.inc`` (the one source)."""
    (inc / "asm").mkdir(parents=True, exist_ok=True)
    names = ("PT_EBX", "PT_ECX", "PT_EDX", "PT_ESI", "PT_EDI", "PT_EBP", "PT_EAX", "PT_DS", "PT_ES", "PT_FS",
             "PT_GS", "PT_ORIG_EAX", "PT_EIP", "PT_CS", "PT_EFLAGS", "PT_OLDESP", "PT_OLDSS")
    (inc / "asm" / "asm-offsets.h").write_text(
        "/* generated from asm/defs.inc: offsets of struct pt_regs (i386), as kbuild's asm-offsets_32.c */\n"
        + "".join(f"#define {n} {EQU[n]}\n" for n in names) + f"#define PTREGS_SIZE {EQU['PT_SIZE']}\n")
    (inc / "asm" / "segment.h").write_text(
        "/* generated from asm/defs.inc: the kernel code and data selectors of the emulated GDT */\n"
        f"#define __KERNEL_CS {EQU['__KERNEL_CS']:#x}\n#define __KERNEL_DS {EQU['__KERNEL_DS']:#x}\n")
    (inc / "asm" / "ftrace.h").write_text(
        "/* generated from asm/defs.inc: the size of the 5-byte call at every traced function's start */\n"
        f"#define MCOUNT_INSN_SIZE {EQU['MCOUNT_INSN_SIZE']}\n#define MCOUNT_ADDR __fentry__\n")


def shim_digest() -> str:
    """Digest of the shim headers and the constants generated from ``defs.inc`` (part of every image key)."""
    files = sorted(p for p in SHIM_DIR.rglob("*.h"))
    consts = ",".join(f"{k}={v}" for k, v in sorted(EQU.items()))
    return files_digest(files, SHIM_DIR) + consts


def assemble_tree(tree: KernelTree, work: Path) -> TreeObject:
    """Preprocess and assemble the tree's ``ftrace_32.S`` with the shims into *work*; the object.

    Raises :class:`ConfigError` naming file, line and construct when an
    include, a macro or an instruction does not assemble with the shims.
    """
    inc = work / "generated"
    _generated_headers(inc)
    pre, obj = work / "tree_ftrace_32.s", work / "tree_ftrace_32.o"
    cpp = ["cpp", "-x", "assembler-with-cpp", "-D__ASSEMBLY__", "-D__KERNEL__", "-nostdinc", "-undef",
           "-D__i386__", "-I", str(inc), "-I", str(SHIM_DIR), "-include", str(SHIM_DIR / "kconfig.h"),
           FTRACE_32, "-o", str(pre)]
    r = subprocess.run(cpp, cwd=tree.root, capture_output=True, text=True)
    if r.returncode:
        raise ConfigError(_cpp_error(tree, r.stderr))
    r = subprocess.run(["as", "--32", "-g", "-o", str(obj), str(pre)], cwd=tree.root, capture_output=True, text=True)
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
    return f"kernel-tree: {FTRACE_32}: does not preprocess with the shims: {first}"


def _as_error(tree: KernelTree, stderr: str) -> str:
    m = re.search(r"^(\S+?):(\d+): Error: (.+)$", stderr, re.M)
    if not m:
        first = next((ln for ln in stderr.splitlines() if "Error" in ln), stderr.strip()[:200])
        return f"kernel-tree: {FTRACE_32}: does not assemble with the shims: {first}"
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
    """(file, line) of the instruction at *offset* in the object's ``.text`` (``FTRACE_32``, 0 if unknown)."""
    best = (FTRACE_32, 0)
    for addr, name, line in _lines_cached(obj.elf, obj.tree.root):
        if addr > offset:
            break
        best = (name, line)
    return best


def _object_symbols(elf: bytes) -> dict[str, tuple[int, str]]:
    f = ELFFile(io.BytesIO(elf))
    return {s.name: (s["st_value"], s["st_info"]["bind"]) for s in f.get_section_by_name(".symtab").iter_symbols()
            if s.name and s["st_shndx"] != "SHN_UNDEF"}


def label_line(tree: KernelTree, label: str) -> int:
    """The line of the tree's ``ftrace_32.S`` that names *label* as a label or symbol start (0 if none)."""
    lines = (tree.root / FTRACE_32).read_text(errors="replace").splitlines()
    pats = (rf"^\s*{label}\s*:", rf"\(\s*{label}\s*[,)]", rf"\b{label}\b")
    for pat in pats:
        for i, ln in enumerate(lines):
            if re.search(pat, ln):
                return i + 1
    return 0


def check_trampolines(obj: TreeObject, image: Any) -> None:
    """The linked trampolines keep the ABI the harness relies on, else a one-line :class:`ConfigError`.

    *image* is the linked :class:`~workbench.kernel.image.KernelImage`.
    Checked: every label of :data:`HARNESS_LABELS` is a global (or weak)
    symbol of the tree's object; ``ftrace_call`` and ``ftrace_regs_call`` are
    each the 5-byte ``call ftrace_stub`` that ftrace rewrites; the last
    write of ``%ecx`` before each is the load of ``function_trace_op`` (the
    op-pointer load: handlers get their ops in ``%ecx``).
    """
    syms = _object_symbols(obj.elf)
    rel = FTRACE_32
    for label in HARNESS_LABELS:
        if label not in syms or syms[label][1] not in ("STB_GLOBAL", "STB_WEAK"):
            owner = "ftrace_regs_caller" if label.startswith("ftrace_regs") else "ftrace_caller"
            line = label_line(obj.tree, label) or label_line(obj.tree, owner)
            what = "is not global" if label in syms else "is missing"
            raise ConfigError(f"kernel-tree: {rel}:{line}: label {label} {what} (the harness patches and calls it; "
                              f"{obj.tree.version} tree)")
    delta = image.sym("ftrace_caller") - syms["ftrace_caller"][0]
    stub, op = image.sym("ftrace_stub"), image.sym("function_trace_op")

    def where(addr: int) -> str:
        name, line = source_line(obj, addr - delta)
        return f"{name}:{line}"

    for call, tramp in (("ftrace_call", "ftrace_caller"), ("ftrace_regs_call", "ftrace_regs_caller")):
        a = image.sym(call)
        insns = image.disassemble(image.read(a, 16), a)
        insn = insns[0] if insns else None
        text = f"{insn.mnemonic} {insn.op_str}".strip() if insn else "undecodable bytes"
        if insn is None or insn.size != 5 or insn.bytes[0] != 0xE8 or int(insn.op_str, 16) != stub:
            raise ConfigError(f"kernel-tree: {where(a)}: {call} holds `{text}`, not the 5-byte `call ftrace_stub` "
                              f"that ftrace rewrites (trampoline ABI: patchable call; {obj.tree.version} tree)")
        start = image.sym(tramp)
        before = [i for i in image.disassemble(image.read(start, a - start), start) if i.address < a]
        writes = [i for i in before if i.op_str.replace(" ", "").endswith("%ecx") or
                  (i.mnemonic.startswith("pop") and "%ecx" in i.op_str)]
        last = writes[-1] if writes else None
        if last is None or not last.mnemonic.startswith("mov") or not last.op_str.startswith(f"{op:#x},"):
            at = where(last.address) if last else where(a)
            got = f"`{last.mnemonic} {last.op_str}`" if last else "nothing"
            raise ConfigError(f"kernel-tree: {at}: {tramp} sets %ecx with {got} before {call}, not the load of "
                              f"function_trace_op (trampoline ABI: op-pointer load; {obj.tree.version} tree)")
