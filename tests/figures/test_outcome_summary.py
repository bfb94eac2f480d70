"""A full figures run writes the outcome table of every shipped scenario x entry x arch."""

import pytest

from workbench.base.errors import ConfigError
from workbench.base.vocabulary import ENTRIES_BY_ARCH
from workbench.emulate.scenario import load_scenario, scenario_names
from workbench.figures import job


def test_all_tables_cover_every_scenario_entry_and_arch_a_kernel_or_the_sketch_has():
    tables = job.all_tables()
    assert tables[:len(job.TABLES)] == job.TABLES  # the figures' tables first, in their order
    assert len(set(tables)) == len(tables)
    names = scenario_names()
    assert {"seed", "tracer_add_livepatch", "tracer_remove_livepatch", "shared_regs_caller"} <= set(names)
    for arch, entries in ENTRIES_BY_ARCH.items():
        for name in names:
            got = {e for s, e, a in tables if s == name and a == arch}
            assert got == set(entries), (name, arch)
    # x86_64's own entries only: v5.2 on x86_64, v5.3 on i386, never crossed
    assert ("seed", "v5.2", "i386") not in tables and ("seed", "v5.3", "x86_64") not in tables
    assert ("tracer_remove_livepatch", "v5.2", "x86_64") in tables


def test_a_scenario_an_arch_cannot_have_gets_no_table_there(monkeypatch):
    assert load_scenario("tracer_add_livepatch").check_arch("i386") == "i386"  # shipped as the mail's sketch

    class NotOnI386:
        def check_arch(self, arch):
            if arch == "i386":
                raise ConfigError("scenario x: cannot run on arch i386")
            return arch

    monkeypatch.setattr(job, "load_scenario", lambda name: NotOnI386() if name == "tracer_add_livepatch" else load_scenario(name))
    tables = [t for t in job.all_tables() if t not in job.TABLES]
    assert ("tracer_add_livepatch", "v5.1", "i386") not in tables
    assert ("tracer_add_livepatch", "v5.1", "x86_64") in tables


@pytest.mark.parametrize("quick", [False, True])
def test_a_full_run_loads_every_table_a_quick_run_the_figures_own(quick, monkeypatch, tmp_path):
    asked = []

    class Stop(Exception):
        pass

    def load(keys, jobs, progress):
        asked.append(keys)
        raise Stop

    monkeypatch.setattr(job, "_load_tables", load)
    with pytest.raises(Stop):
        job.regenerate(quick, backend="serial", outdir=tmp_path, progress=False)
    assert asked == [job.TABLES if quick else job.all_tables()]
