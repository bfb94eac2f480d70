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
    (["explore", "--arch", "x86_64", "--cpus", "2"], "cpus: --mode exhaustive explores one calling CPU, not 2; "
     "two or three calling CPUs are model-checked by `model-check --cpus 2`"),
    (["explore", "--cpus", "3"], "model-checked by `model-check --cpus 3`"),
    (["model-check", "--arch", "x86_64", "--entry", "v5.3"], "entry: unknown value 'v5.3'; choose from v5.1, v5.2"),
    (["model-check", "--arch", "arm64"], "arch: unknown value 'arm64'; choose from i386, x86_64"),
    (["model-check", "--cpus", "1"], "cpus: 1 is outside the valid range [2, 3]"),
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


def test_model_check_runs_the_x86_64_seed_and_its_counterexample_replays(tmp_path):
    """``model-check --arch x86_64``: every row names the arch; skip loses the live patch of a trapped
    do_IRQ (a violation) with no crash, emulate_regs_caller under v5.1 crashes (a counterexample file
    that names x86_64, which ``replay`` re-executes on the x86_64 machine)."""
    import os

    env = {**os.environ, "WORKBENCH_DATA": str(tmp_path / "data")}
    r = subprocess.run([sys.executable, "-m", "workbench", "model-check", "--arch", "x86_64", "--strategy",
                        "skip,emulate_regs_caller", "--entry", "v5.1", "--json", "--quiet", "--cex-dir",
                        str(tmp_path / "cex")], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    rows = out["outcomes"]
    assert {row["arch"] for row in rows} == {"x86_64"} and {row["entry"] for row in rows} == {"v5.1"}
    skip = [row for row in rows if row["strategy"] == "skip"]
    assert any(row["function"] == "do_IRQ" and row["trapped"] and row["violation"] for row in skip)
    assert not any(row["crash"] for row in skip)
    assert out["counterexamples"] and all("_x86_64_emulate_regs_caller_v5.1_" in f for f in out["counterexamples"])
    doc = json.loads(open(out["counterexamples"][0]).read())
    assert doc["config"]["arch"] == "x86_64"
    rep = subprocess.run([sys.executable, "-m", "workbench", "replay", out["counterexamples"][0]],
                         capture_output=True, text=True, env=env)
    assert rep.returncode == 0, rep.stderr
    assert rep.stdout.startswith("x86_64 seed: emulate_regs_caller, entry v5.1, poke method breakpoint")
    assert "int3_iret_v51" in rep.stdout  # the x86_64 entry's iretq, where the frame's SS faults
    assert rep.stdout.splitlines()[-1].startswith("outcome: ") and "general protection fault at iretq" in rep.stdout
    text = subprocess.run([sys.executable, "-m", "workbench", "model-check", "--arch", "x86_64", "--strategy",
                           "skip", "--quiet", "--cex-dir", str(tmp_path / "cex2")], capture_output=True, text=True,
                          env=env)
    assert text.returncode == 0 and "model check, x86_64, 2 calling CPUs: skip v5.2" in text.stdout
    assert max(map(len, text.stdout.splitlines())) <= 100
