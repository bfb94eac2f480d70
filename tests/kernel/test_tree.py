"""A kernel tree's own ftrace_32.S: assembled with the shims, linked in place of ours, or one line why not.

The tree is Debian's linux-source-6.1 (workbench.kernel.tree_source; .ci/run installs the package). Each
broken tree is a copy of its three files with one construct changed here, and the error must name the
file, the line and the construct.
"""

import re
import shutil
from pathlib import Path

import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.explore import explore
from workbench.emulate.tree_abi import check_trampoline_abi
from workbench.kernel.image import build_image
from workbench.kernel.layout import EQU
from workbench.kernel.tree import FTRACE_32, PTRACE_H, open_kernel_tree
from workbench.kernel.tree_source import debian_kernel_tree
from workbench.ui.cli import main


@pytest.fixture(scope="session")
def linux61() -> Path:
    return debian_kernel_tree("6.1")


def _copy(src: Path, dst: Path) -> Path:
    for rel in ("Makefile", FTRACE_32, PTRACE_H):
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


def test_version_and_tag_come_from_the_makefile(linux61):
    tree = open_kernel_tree(linux61)
    text = (linux61 / "Makefile").read_text()
    sub = re.search(r"^SUBLEVEL = (\d+)", text, re.M).group(1)
    assert tree.version == f"6.1.{sub}"
    assert tree.tag.startswith(f"linux-6.1.{sub}@")
    assert build_image(8, tree=tree).kernel_tree == tree.tag
    assert build_image(8).kernel_tree == "workbench"


def test_the_trees_trampolines_replace_ours(linux61, image):
    im = build_image(8, tree=open_kernel_tree(linux61))
    # 6.1's ftrace_regs_caller leaves a 3-word gap and a real regs->sp (subl $3*4, %esp first);
    # ours builds the v5.1 frame (pushl $__KERNEL_CS first)
    first = lambda i, s: i.disassemble(i.read(i.sym(s), 8), i.sym(s))[0]  # noqa: E731
    assert (first(im, "ftrace_regs_caller").mnemonic, first(im, "ftrace_regs_caller").op_str) == ("subl", "$0xc, %esp")
    assert first(image, "ftrace_regs_caller").mnemonic == "pushl"
    # CONFIG_FUNCTION_GRAPH_TRACER (Debian's 686 config): the patchable jmp after ftrace_call
    assert "ftrace_graph_call" in im.symbols and "ftrace_graph_call" not in image.symbols
    for sym in ("ftrace_call", "ftrace_regs_call"):
        insn = im.disassemble(im.read(im.sym(sym), 5), im.sym(sym))[0]
        assert insn.bytes[0] == 0xE8 and int(insn.op_str, 16) == im.sym("ftrace_stub")
    # our per-ops trampoline, the traced functions and the entry stay
    assert im.read(im.sym("live_patch_trampoline"), 32) == image.read(image.sym("live_patch_trampoline"), 32)
    assert set(im.functions) == set(image.functions)


def test_an_edit_of_the_trees_file_relinks(linux61, tmp_path):
    root = _copy(linux61, tmp_path)
    a = build_image(8, tree=open_kernel_tree(root))
    _mutate(root, FTRACE_32, "movl	%ecx, -4(%eax)", "\tmovl\t%ecx, -4(%eax)\n\tnop")
    b = build_image(8, tree=open_kernel_tree(root))
    assert a.digest != b.digest and a.kernel_tree != b.kernel_tree
    assert b.read(b.sym("ftrace_regs_caller"), 0x80) != a.read(a.sym("ftrace_regs_caller"), 0x80)


def test_not_a_kernel_tree(tmp_path):
    with pytest.raises(ConfigError, match=r"^kernel-tree: '.*' is not a kernel tree \(no top-level Makefile"):
        open_kernel_tree(tmp_path)
    (tmp_path / "Makefile").write_text("VERSION = 6\nPATCHLEVEL = 1\n")
    with pytest.raises(ConfigError, match=r"no arch/x86"):
        open_kernel_tree(tmp_path)
    with pytest.raises(ConfigError, match=r"does not exist"):
        open_kernel_tree(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"is not a directory"):
        open_kernel_tree(tmp_path / "Makefile")


def test_a_missing_file(linux61, tmp_path):
    root = _copy(linux61, tmp_path)
    (root / FTRACE_32).unlink()
    with pytest.raises(ConfigError, match=r"^kernel-tree: arch/x86/kernel/ftrace_32.S: missing from the 6\.1\.\d+ tree"):
        open_kernel_tree(root)


@pytest.mark.parametrize("old, new, message", [
    # a macro the shims lack
    ("ENCODE_FRAME_POINTER", "\tUNWIND_HINT_FROBNICATE",
     r"ftrace_32\.S:{line}: uses UNWIND_HINT_FROBNICATE, a macro the workbench's shims do not define"),
    # an include the shims lack
    ("#include <asm/frame.h>", "#include <asm/frobnicate.h>",
     r"ftrace_32\.S:{line}: includes <asm/frobnicate\.h>, which the workbench's shims do not provide"),
    # an instruction that does not assemble
    ("subl	$3*4, %esp	# RET-IP + 3 gaps", "\tsubl\t$3*4, %esp, %eax",
     r"ftrace_32\.S:{line}: does not assemble with the shims: .*`subl\t\$3\*4, %esp, %eax`"),
    # a symbol the emulated kernel does not define
    ("movl	function_trace_op, %ecx	# 3rd argument", "\tmovl\tfunction_trace_ops_v2, %ecx",
     r"ftrace_32\.S:{line}: refers to function_trace_ops_v2, which the emulated kernel does not define"),
    # a label the harness needs
    ("SYM_INNER_LABEL(ftrace_regs_call, SYM_L_GLOBAL)", "SYM_INNER_LABEL(ftrace_regs_call_v2, SYM_L_GLOBAL)",
     r"ftrace_32\.S:\d+: label ftrace_regs_call is missing"),
    # the op-pointer load
    ("movl	function_trace_op, %ecx	# 3rd argument", "\tmovl\t$0, %ecx",
     r"ftrace_32\.S:{line}: ftrace_regs_caller sets %ecx with `movl \$0, %ecx` before ftrace_regs_call, not the "
     r"load of function_trace_op \(trampoline ABI: op-pointer load"),
    # the patchable call
    ("call	ftrace_stub\n\n\taddl	$4, %esp		# skip 4th", None, None),
])
def test_a_tree_that_cannot_run_is_one_line(linux61, tmp_path, old, new, message):
    root = _copy(linux61, tmp_path)
    if new is None:  # the patchable call at ftrace_regs_call becomes a 2-byte jmp
        text = (root / FTRACE_32).read_text()
        at = text.index("SYM_INNER_LABEL(ftrace_regs_call, SYM_L_GLOBAL)")
        call = text.index("call\tftrace_stub", at)
        line = text[:call].count("\n") + 1
        (root / FTRACE_32).write_text(text[:call] + "jmp\t1f\n1:" + text[call + len("call\tftrace_stub"):])
        message = r"ftrace_32\.S:{line}: ftrace_regs_call holds `jmp 0x[0-9a-f]+`, not the 5-byte `call ftrace_stub`"
    else:
        line = _mutate(root, FTRACE_32, old, new)
    tree = open_kernel_tree(root)
    with pytest.raises(ConfigError) as err:
        build_image(8, tree=tree)
    text = str(err.value)
    assert "\n" not in text
    assert re.search("^kernel-tree: arch/x86/kernel/" + message.format(line=line), text), text


def test_a_changed_regs_layout(linux61, tmp_path):
    root = _copy(linux61, tmp_path)
    lines = (root / PTRACE_H).read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("#ifdef __i386__"))
    si = next(i for i in range(start, len(lines)) if lines[i].strip() == "unsigned long si;")
    di = next(i for i in range(start, len(lines)) if lines[i].strip() == "unsigned long di;")
    lines[si], lines[di] = lines[di], lines[si]
    (root / PTRACE_H).write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match=rf"^kernel-tree: arch/x86/include/asm/ptrace\.h:{si + 1}: pt_regs->di \(i386\) at "
                                          rf"offset {EQU['PT_ESI']}, the shims' asm-offsets put it at "
                                          rf"{EQU['PT_EDI']} \(trampoline ABI: regs layout\)$"):
        open_kernel_tree(root)


@pytest.mark.parametrize("command", [["call"], ["listing", "ftrace_caller"], ["explore", "--strategy", "skip"],
                                     ["check-tree"]])
def test_cli_one_line_exit_2(linux61, tmp_path, capsys, command):
    root = _copy(linux61, tmp_path)
    line = _mutate(root, FTRACE_32, "ENCODE_FRAME_POINTER", "\tUNWIND_HINT_FROBNICATE")
    assert main([*command, "--kernel-tree", str(root)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: kernel-tree: arch/x86/kernel/ftrace_32.S:{line}: uses UNWIND_HINT_FROBNICATE")
    assert main([*command, "--kernel-tree", str(tmp_path / "arch")]) == 2
    assert "is not a kernel tree" in capsys.readouterr().err


def test_outputs_name_the_tree(linux61, capsys):
    import json

    tree = open_kernel_tree(linux61)
    assert main(["explore", "--strategy", "skip", "--kernel-tree", str(linux61), "--json", "--quiet"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and {r["kernel_tree"] for r in rows} == {tree.tag}
    assert main(["call", "--kernel-tree", str(linux61), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel_tree"] == tree.tag
    assert main(["call", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kernel_tree"] == "workbench"
    assert main(["listing", "ftrace_regs_caller", "--kernel-tree", str(linux61)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"; trampolines from {linux61} ({tree.tag})") and "subl $0xc, %esp" in out


@pytest.mark.parametrize("old, new, tramp, message", [
    # the return path: the regs caller returns 4 bytes off
    ("\tlea\t-8(%eax), %esp\n", "\tlea\t-4(%eax), %esp\n", "ftrace_regs_caller",
     r"never reached the traced body in \d+ instructions \(at [\w+]+\)"),
    # the regs layout: esi and edi pushed the other way round
    ("\tpushl\t%edi\n\tpushl\t%esi\n\tpushl\t%edx\n\tpushl\t%ecx\n\tpushl\t%ebx\n\n\tENCODE",
     "\tpushl\t%esi\n\tpushl\t%edi\n\tpushl\t%edx\n\tpushl\t%ecx\n\tpushl\t%ebx\n\n\tENCODE", "ftrace_regs_caller",
     r"passed a pt_regs with regs->si = 0x[0-9a-f]+ \(the caller's is 0x[0-9a-f]+\)"),
    # the traced function's register arguments: edx and ecx restored the other way round
    ("\tpopl\t%edx\n\tpopl\t%ecx\n\tpopl\t%eax\n#ifdef CONFIG_FRAME_POINTER\n\tpopl\t%ebp",
     "\tpopl\t%ecx\n\tpopl\t%edx\n\tpopl\t%eax\n#ifdef CONFIG_FRAME_POINTER\n\tpopl\t%ebp", "ftrace_caller",
     r"entered the traced body with %edx = 0xc0c0c0c \(was 0xd0d0d0d\), %ecx = 0xd0d0d0d \(was 0xc0c0c0c\)"),
    # the handler's ip: the site + 1
    ("\tsubl\t$MCOUNT_INSN_SIZE, %eax\n\n.globl ftrace_call", "\tsubl\t$4, %eax\n\n.globl ftrace_call", "ftrace_caller",
     r"did not give the tracer ip = the site and parent_ip = the caller"),
])
def test_a_tree_that_breaks_the_abi_when_run_is_one_line(linux61, tmp_path, capsys, old, new, tramp, message):
    root = _copy(linux61, tmp_path)
    text = (root / FTRACE_32).read_text()
    assert text.count(old) == 1
    (root / FTRACE_32).write_text(text.replace(old, new))
    start = next(i + 1 for i, ln in enumerate(text.splitlines()) if ln.startswith(f"SYM_CODE_START({tramp})"))
    want = (rf"^error: kernel-tree: arch/x86/kernel/ftrace_32\.S:{start}: {tramp}: a traced call whose handler "
            rf"changes nothing {message} \(trampoline ABI: return path and regs; 6\.1\.\d+ tree\)\n$")
    assert main(["call", "--kernel-tree", str(root)]) == 2
    assert re.match(want, capsys.readouterr().err)
    with pytest.raises(ConfigError, match=want[len("^error: "):-3]):
        explore("seed", strategies="skip", tree=open_kernel_tree(root), progress=False)


def test_a_dropped_regs_ip_store_keeps_the_abi(linux61, tmp_path):
    """What a trampoline does with a changed regs->ip is behaviour, left to the outcome table."""
    root = _copy(linux61, tmp_path)
    _mutate(root, FTRACE_32, "movl	%ecx, -4(%eax)", "")
    check_trampoline_abi(open_kernel_tree(root))
    check_trampoline_abi(open_kernel_tree(linux61))
