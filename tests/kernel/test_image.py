"""The image: assembled by binutils, read by pyelftools, listed by capstone."""

import pytest

from workbench.base.errors import ConfigError
from workbench.kernel.image import NOP5, build_image
from workbench.kernel.layout import PT_REGS_FIELDS, pt_offset


def test_pt_regs_layout_is_the_kernels():
    # arch/x86/include/asm/ptrace.h, i386 (docs/KERNEL.md §10)
    want = dict(bx=0, cx=4, dx=8, si=12, di=16, bp=20, ax=24, ds=28, es=32, fs=36, gs=40,
                orig_ax=44, ip=48, cs=52, flags=56, sp=60, ss=64)
    assert {f: pt_offset(f) for f in PT_REGS_FIELDS} == want


def test_every_traced_function_starts_with_a_nop_site(image):
    assert len(image.functions) == 3 + 8
    for f in image.functions.values():
        assert image.read(f.site, 5) == NOP5
        assert image.symbols[f.name] == f.site
    assert image.functions["do_IRQ"].new_body == image.symbols["klp_new_do_IRQ"]
    assert image.functions["fn_00003"].new_body is None


def test_patchable_calls_start_as_calls_to_ftrace_stub(image):
    for site in ("ftrace_call", "ftrace_regs_call"):
        insn = image.disassemble(image.read(image.sym(site), 5), image.sym(site))[0]
        assert insn.mnemonic == "calll" and int(insn.op_str, 16) == image.sym("ftrace_stub")
    insn = image.disassemble(image.read(image.sym("live_patch_call"), 5), image.sym("live_patch_call"))[0]
    assert int(insn.op_str, 16) == image.sym("klp_ftrace_handler")


def test_text_and_data_are_separate_pages(image):
    assert image.text[0] == image.base == 0xC1000000
    assert image.text[1] <= image.data[0] and image.data[0] % 4096 == 0
    assert image.data[0] <= image.sym("ftrace_ops_list") < image.data[1]


def test_listing_names_symbols(image):
    text = image.listing("ftrace_regs_caller")
    assert "<ftrace_regs_call>" in text and "<ftrace_stub>" in text
    assert "pushl $0x60" in text  # __KERNEL_CS


def test_build_is_cached_by_source_hash():
    a, b = build_image(2), build_image(3)
    assert a.digest != b.digest and len(b.functions) == len(a.functions) + 1
    assert build_image(2) is a


@pytest.mark.parametrize("bad", [-1, 5000, "x"])
def test_bad_function_count(bad):
    with pytest.raises(ConfigError, match="n_ordinary"):
        build_image(bad)


def test_unknown_names_list_the_choices(image):
    with pytest.raises(ConfigError, match="choose from do_IRQ, __migrate_task"):
        image.function("do_irq")
    with pytest.raises(ConfigError, match="unknown 'no_such_symbol'"):
        image.sym("no_such_symbol")
