"""A kernel tree's own ftrace_64.S on the x86_64 machine: assembled, linked in place of ours, or one line why not.

The tree is Debian's linux-source-6.1 (workbench.kernel.tree_source). Each broken tree is a copy of its
files with one construct changed here; the error names the file, the line and the construct.
"""

import json
import re
import shutil
from pathlib import Path

import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.tree_abi import check_trampoline_abi
from workbench.kernel.ftrace import FtraceOps, FtraceState
from workbench.kernel.image import build_image
from workbench.kernel.layout import equ
from workbench.kernel.tree import FTRACE_32, FTRACE_64, PTRACE_H, open_kernel_tree
from workbench.kernel.tree_source import debian_kernel_tree
from workbench.ui.cli import main

_FILES = ("Makefile", FTRACE_64, PTRACE_H)


@pytest.fixture(scope="module")
def linux61() -> Path:
    return debian_kernel_tree("6.1")


@pytest.fixture(scope="module")
def tree61(linux61):
    return open_kernel_tree(linux61, "x86_64")


@pytest.fixture(scope="module")
def image61(tree61):
    """The x86_64 image with 6.1's trampolines, built once for the module."""
    return build_image(8, "x86_64", tree61)


def _copy(src: Path, dst: Path, files=_FILES) -> Path:
    for rel in files:
        (dst / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src / rel, dst / rel)
    return dst


def _mutate(root: Path, rel: str, old: str, new: str) -> int:
    """Replace the one line of *rel* holding *old* by *new*; its 1-based line number."""
    lines = (root / rel).read_text().splitlines()
    hits = [i for i, ln in enumerate(lines) if old in ln]
    assert len(hits) == 1, (old, hits)
    lines[hits[0]] = new
    (root / rel).write_text("\n".join(lines) + "\n")
    return hits[0] + 1


def test_the_trees_trampolines_replace_ours(tree61, image61):
    ours = build_image(8, "x86_64")
    assert image61.kernel_tree == tree61.tag and ours.kernel_tree == "workbench"
    assert tree61.tag.startswith(f"linux-{tree61.version}@") and tree61.version.startswith("6.1.")
    # the tag names ftrace_64.S through its digest: the same tree's i386 tag differs
    assert tree61.tag != open_kernel_tree(tree61.root).tag
    # 6.1: RET is `jmp __x86_return_thunk` (CONFIG_RETHUNK), ftrace_caller passes a pt_regs (with CS = 0),
    # ftrace_regs_caller tests orig_ax for a direct call (the jnz at ftrace_regs_caller_jmp)
    end = image61.sym("ftrace_caller_end")
    ret = image61.disassemble(image61.read(end, 5), end)[0]
    assert ret.mnemonic == "jmp" and int(ret.op_str, 16) == image61.sym("__x86_return_thunk")
    assert image61.read(image61.sym("__x86_return_thunk"), 2) == b"\xc3\xcc"  # ret; int3
    assert image61.read(image61.sym("ftrace_regs_caller_jmp"), 1) == b"\x75"
    for im in (image61, ours):
        for sym in ("ftrace_call", "ftrace_regs_call"):
            insn = im.disassemble(im.read(im.sym(sym), 5), im.sym(sym))[0]
            assert insn.bytes[0] == 0xE8 and int(insn.op_str, 16) == im.sym("ftrace_stub")
    assert "ftrace_epilogue" in ours.symbols and "ftrace_epilogue" not in image61.symbols
    # our module area, traced functions and entries stay
    assert set(image61.functions) == set(ours.functions)
    for sym in ("ftrace_tramp_area", "int3_entry_v52", "klp_ftrace_handler"):
        assert sym in image61.symbols


def test_per_ops_trampolines_are_copies_of_the_trees_code(image61):
    """create_trampoline() as 6.1 makes it: the tree's bytes up to *_end, its return, the ops pointer;
    the op-pointer load reads that pointer, the call goes to the ops' function, the direct-call jnz is a NOP."""
    eq = equ("x86_64")
    lp = FtraceOps("livepatch", "livepatch", frozenset({"do_IRQ"}))
    tr = FtraceOps("tracer", "tracer")
    state = FtraceState(image61, (lp, tr))
    for ops, start, end, op_ptr, call in ((tr, "ftrace_caller", "ftrace_caller_end", "ftrace_caller_op_ptr",
                                           "ftrace_call"),
                                          (lp, "ftrace_regs_caller", "ftrace_regs_caller_end",
                                           "ftrace_regs_caller_op_ptr", "ftrace_regs_call")):
        code, base = state.trampoline_code(ops), state.trampoline_addr(ops)
        s = image61.sym(start)
        size = image61.sym(end) - s
        src = image61.read(s, size)
        differ = [i for i in range(size) if code[i] != src[i]]
        op, c = image61.sym(op_ptr) - s, image61.sym(call) - s
        allowed = set(range(op + 3, op + 7)) | set(range(c + 1, c + 5))
        if ops is lp:
            j = image61.sym("ftrace_regs_caller_jmp") - s
            assert code[j:j + 2] == b"\x66\x90"
            allowed |= {j, j + 1}
        assert set(differ) <= allowed
        ret = image61.disassemble(code[size:size + 5], base + size)[0]
        assert ret.mnemonic == "jmp" and int(ret.op_str, 16) == image61.sym("__x86_return_thunk")
        ptr = base + size + 5
        assert int.from_bytes(code[size + 5:size + 13], "little") == state._slots[ops.name][0]
        assert base + op + 7 + int.from_bytes(code[op + 3:op + 7], "little", signed=True) == ptr
        target = image61.disassemble(code[c:c + 5], base + c)[0]
        assert int(target.op_str, 16) == image61.sym(ops.trampoline_func)
        assert len(code) <= eq["TRAMP_SLOT"]


def test_the_abi_holds_when_run(tree61):
    check_trampoline_abi(tree61)


def test_a_missing_ftrace_64(linux61, tmp_path):
    root = _copy(linux61, tmp_path, ("Makefile", FTRACE_32, PTRACE_H))
    open_kernel_tree(root)  # i386 has what it needs
    with pytest.raises(ConfigError, match=r"^kernel-tree: arch/x86/kernel/ftrace_64\.S: missing from the "
                                          r"6\.1\.\d+ tree at '.*' \(the workbench reads the x86_64 ftrace"):
        open_kernel_tree(root, "x86_64")


def test_not_a_kernel_tree(tmp_path):
    with pytest.raises(ConfigError, match=r"^kernel-tree: '.*' is not a kernel tree \(no top-level Makefile"):
        open_kernel_tree(tmp_path, "x86_64")


@pytest.mark.parametrize("old, new, message", [
    # a macro the shims lack
    ("UNWIND_HINT_FUNC", "\tUNWIND_HINT_FROBNICATE",
     r"ftrace_64\.S:{line}: uses UNWIND_HINT_FROBNICATE, a macro the workbench's shims do not define"),
    # an include the shims lack
    ("#include <asm/frame.h>", "#include <asm/frobnicate.h>",
     r"ftrace_64\.S:{line}: includes <asm/frobnicate\.h>, which the workbench's shims do not provide"),
    # an instruction that does not assemble
    ("subq $MCOUNT_INSN_SIZE, %rdi", "\tsubq $MCOUNT_INSN_SIZE, %rdi, %rax",
     r"ftrace_64\.S:{line}: does not assemble with the shims: .*`subq \$MCOUNT_INSN_SIZE, %rdi, %rax`"),
    # a label the harness (create_trampoline()) needs
    ("SYM_INNER_LABEL(ftrace_regs_caller_end, SYM_L_GLOBAL)", "SYM_INNER_LABEL(ftrace_regs_end, SYM_L_GLOBAL)",
     r"ftrace_64\.S:\d+: label ftrace_regs_caller_end is missing"),
    ("SYM_INNER_LABEL(ftrace_caller_op_ptr, SYM_L_GLOBAL)", "SYM_INNER_LABEL(ftrace_op_ptr, SYM_L_GLOBAL)",
     r"ftrace_64\.S:\d+: label ftrace_caller_op_ptr is missing"),
    # the op-pointer load: ftrace_caller's ops no longer in %rdx
    ("leaq (%rsp), %rcx\n\n\t/* Only ops", None, None),
    # the op-pointer load create_trampoline() rewrites: an absolute load instead of %rip-relative
    (("ftrace_regs_caller_op_ptr, SYM_L_GLOBAL)\n\tANNOTATE_NOENDBR\n\t/* Load the ftrace_ops into the 3rd parameter */"
      "\n\tmovq function_trace_op(%rip), %rdx"), None, None),
])
def test_a_tree_that_cannot_run_is_one_line(linux61, tmp_path, old, new, message):
    root = _copy(linux61, tmp_path)
    if new is None and old.startswith("leaq"):  # the ops pointer overwritten after its load
        text = (root / FTRACE_64).read_text()
        assert text.count(old) == 1
        (root / FTRACE_64).write_text(text.replace(old, "leaq (%rsp), %rcx\n\tmovq $0, %rdx\n\n\t/* Only ops"))
        line = text[:text.index(old)].count("\n") + 2
        message = (r"ftrace_64\.S:{line}: ftrace_caller sets %rdx with `movq \$0, %rdx` before ftrace_call, not "
                   r"the load of function_trace_op \(trampoline ABI: op-pointer load")
    elif new is None:
        text = (root / FTRACE_64).read_text()
        assert text.count(old) == 1
        (root / FTRACE_64).write_text(text.replace(old, old.replace("function_trace_op(%rip)", "function_trace_op")))
        line = text[:text.index(old)].count("\n") + 4
        message = (r"ftrace_64\.S:{line}: ftrace_regs_caller_op_ptr holds `movq 0x[0-9a-f]+, %rdx`, not the "
                   r"`movq function_trace_op\(%rip\), %rdx` \(48 8b 15\) create_trampoline\(\) rewrites "
                   r"\(trampoline ABI: op-pointer load")
    else:
        line = _mutate(root, FTRACE_64, old, new)
    want = r"^kernel-tree: arch/x86/kernel/" + message.format(line=line)
    with pytest.raises(ConfigError, match=want):
        build_image(8, "x86_64", open_kernel_tree(root, "x86_64"))


def test_a_changed_regs_layout(linux61, tmp_path):
    root = _copy(linux61, tmp_path, (*_FILES, FTRACE_32))
    lines = (root / PTRACE_H).read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("#else /* __i386__ */"))
    si = next(i for i in range(start, len(lines)) if lines[i].strip() == "unsigned long si;")
    di = next(i for i in range(start, len(lines)) if lines[i].strip() == "unsigned long di;")
    lines[si], lines[di] = lines[di], lines[si]
    (root / PTRACE_H).write_text("\n".join(lines) + "\n")
    eq = equ("x86_64")
    with pytest.raises(ConfigError, match=rf"^kernel-tree: arch/x86/include/asm/ptrace\.h:{si + 1}: pt_regs->di "
                                          rf"\(x86_64\) at offset {eq['PT_RSI']}, the shims' asm-offsets put it at "
                                          rf"{eq['PT_RDI']} \(trampoline ABI: regs layout\)$"):
        open_kernel_tree(root, "x86_64")
    open_kernel_tree(root)  # the i386 struct is unchanged


@pytest.mark.parametrize("old, new, tramp, message", [
    # the regs layout: rbx not saved
    ("\tmovq %rbx, RBX(%rsp)", "\tnop", "ftrace_regs_caller (its per-ops copy)",
     r"passed a pt_regs with regs->bx = 0x0 \(the caller's is 0x5eedb0b0\)"),
    # the return path: ftrace_caller returns to its own return address slot + 8
    ("\tmovq RIP(%rsp), %rax\n\tmovq %rax, MCOUNT_REG_SIZE(%rsp)",
     "\tmovq RIP(%rsp), %rax\n\tmovq %rax, MCOUNT_REG_SIZE+8(%rsp)", "ftrace_caller (its per-ops copy)",
     r"(never reached the traced body|crashed|returned with the caller's registers).*"),
    # the traced function's register arguments: rcx and rdx restored the other way round
    ("\tmovq RDX(%rsp), %rdx", "\tmovq RCX(%rsp), %rdx", "ftrace_caller (its per-ops copy)",
     r"entered the traced body with %rdx = 0xc0c0c0c \(was 0xd0d0d0d\)"),
])
def test_a_tree_that_breaks_the_abi_when_run_is_one_line(linux61, tmp_path, capsys, old, new, tramp, message):
    root = _copy(linux61, tmp_path)
    text = (root / FTRACE_64).read_text()
    assert text.count(old + "\n") == 1, old
    (root / FTRACE_64).write_text(text.replace(old + "\n", new + "\n"))
    label = tramp.split()[0]
    start = next(i + 1 for i, ln in enumerate(text.splitlines()) if ln.startswith(f"SYM_FUNC_START({label})"))
    want = (rf"^error: kernel-tree: arch/x86/kernel/ftrace_64\.S:{start}: {re.escape(tramp)}: a traced call whose "
            rf"handler changes nothing {message} \(trampoline ABI: return path and regs; 6\.1\.\d+ tree\)\n$")
    assert main(["call", "--arch", "x86_64", "--kernel-tree", str(root)]) == 2
    assert re.match(want, capsys.readouterr().err)


def test_a_dropped_regs_ip_store_keeps_the_abi(linux61, tmp_path):
    """What a trampoline does with a changed regs->ip is behaviour, left to the outcome table."""
    root = _copy(linux61, tmp_path)
    _mutate(root, FTRACE_64, "movq %rax, MCOUNT_REG_SIZE+8(%rsp)", "")
    check_trampoline_abi(open_kernel_tree(root, "x86_64"))


@pytest.mark.parametrize("command", [["call"], ["listing", "ftrace_caller"], ["explore", "--quiet"],
                                     ["check-tree", "--quiet"]])
def test_cli_one_line_exit_2(linux61, tmp_path, capsys, command):
    root = _copy(linux61, tmp_path)
    line = _mutate(root, FTRACE_64, "UNWIND_HINT_FUNC", "\tUNWIND_HINT_FROBNICATE")
    assert main([*command, "--arch", "x86_64", "--kernel-tree", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: kernel-tree: arch/x86/kernel/ftrace_64.S:{line}: uses UNWIND_HINT_FROBNICATE")
    (root / FTRACE_64).unlink()
    assert main([*command, "--arch", "x86_64", "--kernel-tree", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "arch/x86/kernel/ftrace_64.S: missing from the 6.1" in err
    assert main([*command, "--arch", "x86_64", "--kernel-tree", str(tmp_path / "arch")]) == 2
    assert "is not a kernel tree" in capsys.readouterr().err


def test_outputs_name_the_tree(linux61, tree61, capsys):
    assert main(["explore", "--arch", "x86_64", "--strategy", "skip", "--kernel-tree", str(linux61), "--json",
                 "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["kernel_tree"] for r in rows} == {tree61.tag} and {r["arch"] for r in rows} == {"x86_64"}
    assert main(["call", "--arch", "x86_64", "--kernel-tree", str(linux61), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel_tree"] == tree61.tag
    assert main(["listing", "ftrace_caller", "--arch", "x86_64", "--kernel-tree", str(linux61)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"; trampolines from {linux61} ({tree61.tag})") and "<__x86_return_thunk>" in out


@pytest.mark.parametrize("extra, message", [
    (["--arch", "foo"], "error: arch: unknown value 'foo'; choose from i386, x86_64\n"),
    (["--arch", "x86_64", "--entry", "v5.3"], "error: entry: unknown value 'v5.3'; choose from v5.1, v5.2\n"),
])
def test_check_tree_bad_arch_or_entry(linux61, capsys, extra, message):
    assert main(["check-tree", "--kernel-tree", str(linux61), *extra]) == 2
    assert capsys.readouterr().err == message
