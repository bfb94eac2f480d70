"""The race simulator per arch: x86_64's routing and tables beside i386's.

On x86_64 a site covered by one ops calls that ops' own trampoline
(``create_trampoline()``, ``FTRACE_FL_TRAMP`` in ``__ftrace_hash_rec_update()``;
``workbench.kernel.ftrace.FtraceState.site_target``), so while the tracer
runs alone its sites never pass through the shared ``ftrace_call`` that an
update rewrites. In ``tracer_add_livepatch`` under ``skip`` the only
tracer calls lost are those trapped on the two live-patched sites; the
i386 sketch (everything through the shared trampolines) loses every call
of every function that passes ``ftrace_call`` during its window.
"""

import json
import subprocess
import sys

import pytest

from workbench.base.errors import ConfigError
from workbench.race.experiment import RACE, race_grid
from workbench.race.outcomes import load_outcomes
from workbench.race.plan import PLANS, derive_plan
from workbench.race.simulator import RaceConfig, closed_form, simulate
from workbench.race.timeline import patch_timeline
from workbench.sweep.engine import sweep

SCENARIO = "tracer_add_livepatch"


@pytest.fixture(scope="module")
def tables():
    return {a: load_outcomes(SCENARIO, arch=a) for a in ("i386", "x86_64")}


def test_x86_64_plan_routes_no_site_through_the_shared_trampolines():
    i386, x86 = derive_plan(SCENARIO, "i386"), derive_plan(SCENARIO, "x86_64")
    shared = ("ftrace_call", "ftrace_regs_call")
    # i386: the tracer's sites and the live-patched ones pass ftrace_call while it changes
    assert any(s.target in shared and "ordinary" in s.kinds for s in i386)
    # x86_64: the same updates run (their protocol, their time), but no site calls those trampolines
    assert [s.target for s in x86 if s.target in shared] == ["ftrace_call", "ftrace_regs_call"]
    assert all(s.kinds == () and s.functions == () for s in x86 if s.target in shared)
    assert [s.functions for s in x86 if s.target == "sites"] == [("do_IRQ",), ("__migrate_task",)]
    assert PLANS[(SCENARIO, "x86_64")] == x86 and PLANS[SCENARIO] == PLANS[(SCENARIO, "i386")] == i386


def test_x86_64_skip_loses_only_live_patched_sites_tracer_calls(tables):
    """No ordinary-site loss through ftrace_call; orders of magnitude below the i386 sketch."""
    cfg = RaceConfig(SCENARIO, "skip", cpus=64, arch="x86_64")
    stages = patch_timeline(cfg, tables["x86_64"])
    for s in stages:
        for g in s.groups:
            if g.trap_site != "fentry" or g.kind != "livepatched":
                assert g.sites.total == 0, (s.what, g.kind, g.trap_site)
    cf = closed_form(cfg, tables["x86_64"])
    # the trampoline-call updates add nothing: the same losses as a plain text_poke batch of the sites
    plain = closed_form(RaceConfig(SCENARIO, "skip", cpus=64, arch="x86_64", trampolines=False), tables["x86_64"])
    assert cf["dropped_tracer"] == pytest.approx(plain["dropped_tracer"], rel=1e-12) and cf["dropped_tracer"] > 0
    assert cf["dropped_tracer"] == pytest.approx(cf["trapped"], rel=1e-12)  # the tracer runs throughout
    sketch = closed_form(RaceConfig(SCENARIO, "skip", cpus=64), tables["i386"])
    assert sketch["dropped_tracer"] > 1000 * cf["dropped_tracer"]
    assert cf["patch_ns"] == pytest.approx(sketch["patch_ns"], rel=1e-12)  # same protocol runs, same time


@pytest.mark.parametrize("strategy,cpus", [("skip", 64), ("emulate_regs_caller", 24), ("spin", 256)])
def test_x86_64_closed_form_agrees_with_monte_carlo(strategy, cpus, tables):
    """Every metric within 4 standard errors (fixed seed: deterministic)."""
    cfg = RaceConfig(SCENARIO, strategy, cpus=cpus, arch="x86_64")
    row = simulate(cfg, tables["x86_64"], trials=20_000, seed=7).iloc[0]
    assert row["arch"] == "x86_64" and row["entry"] == "v5.2"
    for m in ("trapped", "dropped_tracer", "dropped_livepatch", "violations", "stall_ns", "patch_ns"):
        se, diff = row[f"{m}_se"], abs(row[f"{m}_mean"] - row[f"{m}_cf"])
        if se == 0:
            assert diff <= 1e-9 * max(1.0, abs(row[f"{m}_cf"])), m
        else:
            assert diff < 4 * se, (m, row[f"{m}_mean"], row[f"{m}_cf"], se)


def test_outcomes_of_another_arch_are_refused(tables):
    with pytest.raises(ConfigError, match="arch"):
        simulate(RaceConfig(SCENARIO, "skip", cpus=4, arch="x86_64"), tables["i386"], trials=10)
    assert tables["x86_64"].arch == "x86_64" and tables["x86_64"].entry == "v5.2"
    assert tables["x86_64"].patching is not None  # the patching-CPU table runs on x86_64 too


def test_arch_is_checked_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="arch: unknown value 'arm64'; choose from i386, x86_64"):
        RaceConfig("seed", arch="arm64")
    only64 = tmp_path / "lp64.toml"
    only64.write_text('description = "livepatch, x86_64 only"\narches = ["x86_64"]\n'
                      '[ops.lp]\nkind = "livepatch"\nfunctions = ["do_IRQ"]\n'
                      '[transition]\nbefore = []\nafter = ["lp"]\n')
    with pytest.raises(ConfigError, match="cannot run on arch i386"):
        RaceConfig(str(only64), arch="i386")
    with pytest.raises(ConfigError, match="entry: unknown value 'v5.3'; choose from v5.1, v5.2"):
        RACE.normalize({"arch": "x86_64", "entry": "v5.3"})
    assert RACE.normalize({"arch": "x86_64"})["entry"] == "v5.2"
    assert RACE.normalize({})["entry"] == "v5.3"


def test_arch_is_a_sweep_parameter_and_every_row_names_it():
    frame = sweep(race_grid(arch=["i386", "x86_64"], scenario=SCENARIO, cpus=64, trials=200), RACE,
                  seed=0, backend="serial", progress=False)
    by = frame.set_index("arch")
    assert set(by.index) == {"i386", "x86_64"}
    assert list(by.loc[["i386", "x86_64"], "entry"]) == ["v5.3", "v5.2"]
    assert by.loc["x86_64", "dropped_tracer_cf"] * 1000 < by.loc["i386", "dropped_tracer_cf"]


def _wb(*args):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args,needle", [
    (["--arch", "arm64"], "arch: unknown value 'arm64'; choose from i386, x86_64"),
    (["--arch", "x86_64", "--entry", "v5.3"], "entry: unknown value 'v5.3'; choose from v5.1, v5.2"),
    (["--arch", "i386", "--entry", "v5.2"], "entry: unknown value 'v5.2'; choose from v5.1, v5.3"),
])
def test_simulate_refuses_an_impossible_arch_in_one_line(args, needle):
    r = _wb("simulate", *args, "--trials", "10")
    assert r.returncode == 2 and needle in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_simulate_names_the_arch():
    r = _wb("simulate", "--arch", "x86_64", "--scenario", SCENARIO, "--cpus", "4", "--trials", "10", "--json")
    assert r.returncode == 0, r.stderr
    rec = json.loads(r.stdout)[0]
    assert rec["arch"] == "x86_64" and rec["entry"] == "v5.2"
