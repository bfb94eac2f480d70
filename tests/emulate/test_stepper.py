"""One traced call replayed at any patch step and instruction (emulate.stepper), on i386 and x86_64."""

import pytest

from workbench.base.errors import ConfigError
from workbench.emulate.stepper import CallStepper, trapped_calls


def test_call_stepper_is_deterministic_and_checks_its_input():
    cs = CallStepper(strategy="skip", cpus=1)
    k = cs.trap_step()
    assert cs.state(k, 10) == cs.state(k, 10)
    assert cs.arch == "i386" and cs.entry == "v5.3"  # the i386 default: its latest entry
    with pytest.raises(ConfigError, match="step"):
        cs.state(cs.n_steps + 1, 0)
    with pytest.raises(ConfigError, match="cpus"):
        CallStepper(cpus=9)
    with pytest.raises(ConfigError, match="function: unknown 'nope'"):
        CallStepper(function="nope")
    with pytest.raises(ConfigError, match=r"^arch: unknown value 'arm'; choose from i386, x86_64$"):
        CallStepper(arch="arm")
    with pytest.raises(ConfigError, match=r"^entry: unknown value 'v5.3'; choose from v5.1, v5.2$"):
        CallStepper(entry="v5.3", arch="x86_64")  # the gap came to x86_64 in v5.2, to i386 in v5.3


def test_a_scenario_the_arch_cannot_have_is_refused_in_the_command_lines_words(tmp_path):
    path = tmp_path / "probe_x86_only.toml"
    path.write_text('description = "a tracer, said to run on x86_64 only"\narches = ["x86_64"]\n'
                    '[ops.tracer]\nkind = "tracer"\nfunctions = "all"\n'
                    '[transition]\nbefore = []\nafter = ["tracer"]\n')
    with pytest.raises(ConfigError, match=r"scenario probe_x86_only: cannot run on arch i386 .* choose arch from x86_64"):
        CallStepper(str(path), "skip", arch="i386")
    assert CallStepper(str(path), "skip", arch="x86_64").arch == "x86_64"


def test_trapped_calls_summarises_every_strategy():
    t = trapped_calls("do_IRQ", "v5.3").set_index("strategy")
    assert set(t.arch) == {"i386"} and set(t.entry) == {"v5.3"}
    assert t.loc["skip", "returned"] and "ftrace_regs_caller" not in t.loc["skip", "path"]
    assert "ftrace_regs_caller" in t.loc["emulate_regs_caller", "path"]
    assert not t.loc["spin", "returned"]  # the patch never completes in this replay
    assert not t.loc["stop_machine", "trapped"]
    v51 = trapped_calls("do_IRQ", "v5.1").set_index("strategy")
    assert "oops" in v51.loc["emulate_new", "crash"]


def test_x86_64_trapped_calls_gap_or_no_gap():
    """x86_64: v5.2's gap (2700fefdb2d9) lets the emulated call to ftrace_regs_caller run the new
    body; without it (v5.1) the emulated push lands on the trap frame's SS and iretq faults."""
    v52 = trapped_calls("do_IRQ", arch="x86_64").set_index("strategy")
    assert set(v52.arch) == {"x86_64"} and set(v52.entry) == {"v5.2"}  # the arch's latest by default
    assert "int3_entry_v52" in v52.loc["emulate_regs_caller", "path"]
    assert "ftrace_regs_caller" in v52.loc["emulate_regs_caller", "path"]
    assert v52.loc["emulate_regs_caller", "returned"] and v52.loc["emulate_regs_caller", "crash"] == ""
    # skip: straight back into the old body, no trampoline, no handler
    assert v52.loc["skip", "returned"] and "caller" not in v52.loc["skip", "path"]
    assert "klp_ftrace_handler" not in v52.loc["skip", "path"]
    v51 = trapped_calls("do_IRQ", "v5.1", strategies=("skip", "emulate_regs_caller"),
                        arch="x86_64").set_index("strategy")
    crash = v51.loc["emulate_regs_caller", "crash"]
    assert not v51.loc["emulate_regs_caller", "returned"] and "iretq" in crash and "SS selector" in crash
    assert v51.loc["skip", "returned"]


def test_x86_64_pt_regs_of_the_int3_entry_and_of_a_per_ops_trampoline():
    cs = CallStepper("seed", "emulate_regs_caller", None, "do_IRQ", arch="x86_64")
    k = cs.trap_step()
    at = cs.next_trap(k, 0)["cpus"][0]
    assert at["where"] == "int3_entry_v52" and "hardware pushed ss, rsp, flags, cs, rip" in at["frame"]
    st = cs.seek(k, lambda c: c["where"] == "do_int3")
    regs = st["cpus"][0]["pt_regs"]
    assert st["arch"] == "x86_64" and st["cpus"][0]["pt_regs_from"] == "int3 entry"
    assert regs["ip"] == cs.site + 1 and regs["orig_ax"] == 2**64 - 1 and "r15" in regs  # 64-bit pt_regs
    assert len(st["cpus"][0]["stack"]) == 8
    nxt = cs.state(k, st["cpus"][0]["executed"] + 1)  # the strategy ran: the call "returns" into the trampoline
    assert nxt["cpus"][0]["pt_regs"]["ip"] == cs.image.sym("ftrace_regs_caller")
    # before the patch the site calls the live patch's own trampoline, which create_trampoline() copied
    # from ftrace_regs_caller: the pt_regs its handler gets is built there
    first = cs.seek(0, lambda c: c["where"] == "klp_ftrace_handler")
    assert "trampoline:livepatch" in first["site"]["insn"]
    c = first["cpus"][0]
    assert c["pt_regs_from"].startswith("trampoline:livepatch") and c["pt_regs"]["ip"] == cs.site + 5
    done = cs.state(0, cs.length(0))["cpus"][0]
    assert done["returned"] and "klp_new_do_IRQ" in done["path"]
    assert any(p.startswith("trampoline:livepatch") for p in done["path"])
