"""The command line: JSON that tools can read, one-line errors with exit status 2."""

import json
import subprocess
import sys

import pytest


def wb(*args):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True)


def test_call_json():
    r = wb("call", "--function", "do_IRQ", "--ops", "livepatch,tracer", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["handlers"] == ["livepatch", "tracer"] and out["body"] == "new"
    assert out["instructions"] > 50
    assert out["path"][:3] == ["do_IRQ", "ftrace_regs_caller", "ftrace_ops_list_func"]
    assert out["tracer_records"][0]["ip"] == out["site"]["address"]


def test_call_text():
    r = wb("call", "--function", "fn_00001", "--ops", "tracer")
    assert r.returncode == 0 and "handlers   tracer" in r.stdout and "body       old" in r.stdout


def test_listing():
    r = wb("listing", "ftrace_caller")
    assert r.returncode == 0 and "<ftrace_call>" in r.stdout


@pytest.mark.parametrize("args, needle", [
    (["call", "--function", "do_irq"], "function: unknown 'do_irq'; choose from do_IRQ"),
    (["call", "--ops", "tracer,bogus"], "ops: unknown 'bogus'"),
    (["call", "--ops", "tracer,tracer"], "names the same ops twice"),
    (["call", "--entry", "v9"], "entry: unknown value 'v9'; choose from v5.1, v5.3"),
    (["call", "--arch", "x86_64", "--entry", "v5.3"], "entry: unknown value 'v5.3'; choose from v5.1, v5.2"),
    (["explore", "--arch", "arm64"], "arch: unknown value 'arm64'; choose from i386, x86_64"),
    (["explore", "--arch", "x86_64", "--entry", "v5.3"], "entry: unknown value 'v5.3'; choose from v5.1, v5.2"),
    (["explore", "--arch", "x86_64", "--cpus", "2"], "arch: the model checker (--cpus 2) runs i386 only"),
    (["listing", "--arch", "sparc", "ftrace_caller"], "arch: unknown value 'sparc'"),
    (["scenarios", "--arch", "sparc"], "arch: unknown value 'sparc'"),
    (["explore", "--strategy", "nope"], "strategy: unknown value 'nope'; choose from skip"),
    (["explore", "--scenario", "nope"], "scenario: unknown value 'nope'; choose from seed"),
    (["explore", "--mode", "random", "--cpus", "0"], "cpus: 0 is outside the valid range [1, 16]"),
    (["explore", "--entry", "v5.2"], "entry: unknown value 'v5.2'; choose from v5.1, v5.3"),
    (["listing", "nope"], "symbol: unknown 'nope'"),
])
def test_bad_input_is_one_line_exit_2(args, needle):
    r = wb(*args)
    assert r.returncode == 2
    assert needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_call_and_listing_take_the_arch():
    r = wb("call", "--arch", "x86_64", "--ops", "livepatch,tracer", "--function", "fn_00002")
    assert r.returncode == 0, r.stderr
    assert "(x86_64, entry v5.2, trampolines workbench)" in r.stdout and "-> trampoline:tracer" in r.stdout
    r = wb("listing", "--arch", "x86_64", "ftrace_regs_caller")
    assert r.returncode == 0 and "pushfq" in r.stdout and "<ftrace_regs_call>" in r.stdout
