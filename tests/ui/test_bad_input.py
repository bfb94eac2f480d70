"""Bad input, as a careless or hostile user gives it: one line ``error: ...``, exit 2, before any work.

Every case runs the command line in this process with the expensive steps
(emulation, outcome tables, sweeps, figures) replaced by tripwires, so a
case passes only if it is refused with one line, status 2, no traceback,
and before any of that work starts.
"""

from __future__ import annotations

import os
import socket

import pytest

from workbench.ui.cli import main

SCENARIOS = {
    "unknownfn.toml": '[ops.t]\nkind = "tracer"\nfunctions = ["nosuch"]\n[transition]\nbefore = []\nafter = ["t"]\n',
    "nofn.toml": '[ops.t]\nkind = "tracer"\nfunctions = []\n[transition]\nbefore = []\nafter = ["t"]\n',
    "same.toml": ('[ops.t]\nkind = "tracer"\nfunctions = ["do_IRQ"]\n[ops.u]\nkind = "tracer"\n'
                  'functions = ["do_IRQ"]\n[transition]\nbefore = ["t"]\nafter = ["u"]\n'),
    "twice.toml": '[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\nafter = ["t", "t"]\n',
    "notrace_all.toml": ('[ops.t]\nkind = "tracer"\nfunctions = ["do_IRQ"]\nnotrace = ["do_IRQ"]\n'
                         '[transition]\nbefore = []\nafter = ["t"]\n'),
    "badnotrace.toml": ('[ops.t]\nkind = "tracer"\nnotrace = ["nosuch"]\n'
                        '[transition]\nbefore = []\nafter = ["t"]\n'),
    "badtoml.toml": "[ops.t\n",
    "nokind.toml": '[ops.t]\nfunctions = "all"\n[transition]\nbefore = []\nafter = ["t"]\n',
    "unknownkey.toml": 'oops = 1\n[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\nafter = ["t"]\n',
    "unchanged.toml": '[ops.t]\nkind = "tracer"\n[transition]\nbefore = ["t"]\nafter = ["t"]\n',
    # a livepatch on i386 that is not the mail's named sketch: HAVE_LIVEPATCH is x86_64 only
    "lp386.toml": ('[ops.lp]\nkind = "livepatch"\nfunctions = ["do_IRQ"]\n[transition]\nbefore = []\n'
                   'after = ["lp"]\n'),
}


def _refused_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


# (argv, needle in the one line); {d} is a scratch directory with the files above
CASES = [
    # -- the 19 traceback paths of issue 13 -------------------------------------------------------
    (["explore", "--scenario", ""], "scenario: expected a name"),
    (["explore", "--scenario", "{d}/adir.toml"], "not a regular file"),
    (["explore", "--scenario", "{d}"], "scenario: cannot read"),
    (["explore", "--scenario", "{d}/latin.toml"], "not UTF-8"),
    (["explore", "--scenario", "{d}/unknownfn.toml"], "unknown function 'nosuch'"),
    (["explore", "--mode", "random", "--seed", "-1"], "seed: -1 is outside"),
    (["simulate", "--cpus", ","], "cpus: empty range"),
    (["simulate", "--cpus", ""], "cpus: empty range"),
    (["simulate", "--strategy", ""], "strategy: empty range"),
    (["sweep", "--set", "cpus=Infinity"], "cpus: inf is outside"),
    (["sweep", "--set", "cpus=1:inf:2"], "cpus bounds"),
    (["sweep", "--set", "cpus=4", "--out", "{d}/outdir.parquet"], "is a directory"),
    (["sweep", "--set", "cpus=4", "--out", "/proc/wb/x.parquet"], "out: cannot write"),
    (["sweep", "--set", "cpus=4", "--out", "{d}/afile/x.parquet"], "out: cannot write"),
    (["sweep", "--set", "cpus=4", "--scheduler", "not a url"], "scheduler: expected tcp://HOST:PORT"),
    (["sweep", "--set", "cpus=4", "--scheduler", "tcp://127.0.0.1:{port}"], "scheduler: nothing answers"),
    (["figures", "--scheduler", "tcp://127.0.0.1:{port}"], "scheduler: nothing answers"),
    (["figures", "--scheduler", "localhost:8786"], "scheduler: expected"),
    (["sweep", "--set", "cpus=4", "WORKBENCH_DATA={d}/afile"], "WORKBENCH_DATA: cannot use"),
    (["explore", "WORKBENCH_DATA=/proc/wb-data"], "WORKBENCH_DATA: cannot use"),
    # -- accepted silently before ---------------------------------------------------------------------
    (["sweep", "--set", "cpus=true"], "cpus: expected an integer, got True"),
    (["sweep", "--set", "trampolines=1"], "trampolines: expected true or false"),
    (["simulate", "--entry", "bogus", "--strategy", "stop_machine"], "entry: unknown value 'bogus'"),
    (["sweep", "--set", "cpus=4", "--out", ""], "out: empty name"),
    (["figures", "--only", ","], "only: empty list"),
    (["figures", "--only", ""], "only: empty list"),
    (["figures", "--seed", "-1"], "seed: -1 is outside"),
    (["explore", "--scenario", "{d}/same.toml"], "nothing to patch"),
    (["explore", "--scenario", "{d}/nofn.toml"], "functions is empty"),
    (["explore", "--scenario", "{d}/twice.toml"], "names an ops twice"),
    (["explore", "--scenario", "{d}/notrace_all.toml"], "traces no function"),
    (["explore", "--scenario", "{d}/badnotrace.toml"], "unknown function 'nosuch'"),
    (["explore", "--scenario", "{d}/fifo.toml"], "not a regular file"),
    (["simulate", "--seed", "-1"], "seed: -1 is outside"),
    # -- refused cleanly before, kept so -----------------------------------------------------------------
    (["call", "--function", "do_irq"], "function: unknown 'do_irq'"),
    (["call", "--ops", "tracer,bogus"], "ops: unknown 'bogus'"),
    (["call", "--entry", "v9"], "entry: unknown value 'v9'"),
    (["call", "--arch", "arm64"], "arch: unknown value 'arm64'"),
    (["explore", "--scenario", "{d}/lp386.toml"], "scenario lp386: cannot run on arch i386"),
    (["call", "--functions", "-1"], "n_ordinary"),
    (["listing", "nope"], "symbol: unknown 'nope'"),
    (["nosuchcommand"], "invalid choice"),
    (["explore", "--strategy", "nope"], "strategy: unknown value 'nope'"),
    (["explore", "--scenario", "nope"], "scenario: unknown value 'nope'"),
    (["explore", "--scenario", "{d}/missing.toml"], "scenario: no file"),
    (["explore", "--scenario", "{d}/badtoml.toml"], "not valid TOML"),
    (["explore", "--scenario", "{d}/nokind.toml"], "kind"),
    (["explore", "--scenario", "{d}/unknownkey.toml"], "unknown keys"),
    (["explore", "--scenario", "{d}/unchanged.toml"], "are the same"),
    (["explore", "--mode", "nope"], "mode: unknown value 'nope'"),
    (["explore", "--mode", "random", "--cpus", "0"], "cpus: 0 is outside"),
    (["explore", "--mode", "random", "--cpus", "17"], "cpus: 17 is outside"),
    (["explore", "--cpus", "4"], "cpus: 4 is outside the valid range [1, 3]"),
    (["explore", "--cpus", "2", "--split", "0"], "split: 0 is outside the valid range [1, 4096]"),
    (["explore", "--mode", "random", "--schedules", "0"], "schedules: 0 is outside"),
    (["explore", "--entry", "v5.2"], "entry: unknown value 'v5.2'"),
    (["explore", "--protocol", "nope"], "protocol: unknown value 'nope'"),
    (["explore", "--functions", "nope"], "function: unknown 'nope'"),
    (["explore", "--functions", ","], "function: unknown ''"),
    (["explore", "--cpus", "x"], "invalid int value"),
    (["simulate", "--trials", "1"], "trials: 1 is outside"),
    (["simulate", "--cpus", "0"], "cpus: 0 is outside"),
    (["simulate", "--cpus", "70000"], "cpus: 70000 is outside"),
    (["simulate", "--cpus", "1.5"], "cpus: "),
    (["simulate", "--strategy", "bogus"], "strategy: unknown value 'bogus'"),
    (["simulate", "--scenario", "bogus"], "scenario: unknown value 'bogus'"),
    (["simulate", "--protocol", "bogus"], "protocol"),
    (["simulate", "--hot", "do_IRQ"], "argument --hot"),
    (["simulate", "--zipf-s", "11"], "zipf_s"),
    (["simulate", "--dispersion", "-1"], "dispersion"),
    (["simulate", "--write-ns", "nan"], "write_ns"),
    (["simulate", "--sync-round-ns", "0"], "sync_round_ns"),
    (["simulate", "--sync-round-ns", "1e5,2e5"], "sync_round_ns: takes one value"),
    (["simulate", "--tail-functions", "-1"], "tail_functions"),
    (["sweep"], "set: give at least one"),
    (["sweep", "--set", "nope=1"], "nope: unknown sweep parameter"),
    (["sweep", "--set", "cpus"], "expected NAME=V1,V2"),
    (["sweep", "--set", "cpus="], "cpus: empty range"),
    (["sweep", "--set", "cpus=,"], "cpus: empty range"),
    (["sweep", "--set", "cpus=0"], "cpus: 0 is outside"),
    (["sweep", "--set", "cpus=1.5"], "cpus: expected an integer"),
    (["sweep", "--set", "cpus=NaN"], "cpus"),
    (["sweep", "--set", "cpus=1:10:0"], "cpus count"),
    (["sweep", "--set", "cpus=a:b:c"], "expected LO:HI:COUNT"),
    (["sweep", "--set", "cpus=10:1:3"], "cpus bounds"),
    (["sweep", "--set", "strategy=bogus"], "strategy: unknown value 'bogus'"),
    (["sweep", "--set", "trials=1"], "trials: 1 is outside"),
    (["sweep", "--set", "outcomes=maybe"], "outcomes: unknown value"),
    (["sweep", "--set", "cpus=4", "--jobs", "0"], "jobs: 0 is outside"),
    (["sweep", "--set", "cpus=4", "--seed", "-1"], "seed: -1 is outside"),
    (["sweep", "--set", "cpus=4", "--serial", "--dask", "local"], "backend: choose one"),
    (["figures", "--serial", "--dask", "local"], "backend: choose one"),
    (["figures", "--only", "fig9"], "figure: unknown 'fig9'"),
    (["figures", "--jobs", "0"], "jobs: 0 is outside"),
]



# more inputs a careless user types: refused in one line, whatever the message
MORE = [
    ['call', '--ops', ''],
    ['call', '--ops', ','],
    ['call', '--function', ''],
    ['call', '--functions', '99999'],
    ['listing', ''],
    ['listing', '--functions', '-3'],
    ['explore', '--functions', ''],
    ['explore', '--strategy', ''],
    ['explore', '--strategy', ','],
    ['explore', '--protocol', ''],
    ['explore', '--entry', ''],
    ['explore', '--table', 'x'],
    ['explore', '--mode', 'random', '--schedules', '1e9'],
    ['explore', '--mode', 'random', '--cpus', '-1'],
    ['explore', '--scenario', '/dev/null'],
    ['explore', '--scenario', '/etc'],
    ['explore', '--scenario', '/nonexistent/x'],
    ['simulate', '--scenario', ''],
    ['simulate', '--protocol', ''],
    ['simulate', '--entry', ''],
    ['simulate', '--hot', '=5'],
    ['simulate', '--hot', 'do_IRQ=-5,__migrate_task=20'],
    ['simulate', '--hot', 'do_IRQ=inf,__migrate_task=20'],
    ['simulate', '--hot', 'nosuch=5'],
    ['simulate', '--hot', 'do_IRQ=nan,__migrate_task=20'],
    ['simulate', '--tail-rate', 'inf'],
    ['simulate', '--tail-rate', '-1'],
    ['simulate', '--write-ns', '-1'],
    ['simulate', '--dispersion', 'nan'],
    ['simulate', '--zipf-s', '-1'],
    ['simulate', '--stop-machine-ns', 'inf'],
    ['simulate', '--irq-off-prob', '2'],
    ['simulate', '--batch-max', '0'],
    ['simulate', '--trampolines', 'maybe'],
    ['simulate', '--trials', '99999999999'],
    ['simulate', '--tail-functions', '3000000'],
    ['simulate', '--cpus', '1,x'],
    ['simulate', '--strategy', 'skip,,bogus'],
    ['simulate', '--seed', '99999999999999999999999'],
    ['sweep', '--set', '=4'],
    ['sweep', '--set', 'cpus=4', '--set', 'cpus=8'],
    ['sweep', '--set', 'hot=5'],
    ['sweep', '--set', 'hot={"do_IRQ":-1}'],
    ['sweep', '--set', 'sync_round_ns=0'],
    ['sweep', '--set', 'sync_round_ns=-1'],
    ['sweep', '--set', 'sync_round_ns=inf'],
    ['sweep', '--set', 'write_ns=nan'],
    ['sweep', '--set', 'irq_off_prob=2'],
    ['sweep', '--set', 'tail_functions=-1'],
    ['sweep', '--set', 'zipf_s=true'],
    ['sweep', '--set', 'dispersion=null'],
    ['sweep', '--set', 'scenario=nope'],
    ['sweep', '--set', 'entry=v9'],
    ['sweep', '--set', 'protocol=nope'],
    ['sweep', '--set', 'cpus=1e400'],
    ['sweep', '--set', 'cpus=1:10:1e9'],
    ['sweep', '--set', 'cpus=[1,2]'],
    ['sweep', '--set', 'cpus={}'],
    ['sweep', '--set', 'trials=1e30'],
    ['sweep', '--set', 'cpus=4', '--jobs', '-1'],
    ['sweep', '--set', 'cpus=4', '--seed', '99999999999999999999999'],
    ['sweep', '--set', 'cpus=4', '--out', '/'],
    ['sweep', '--set', 'cpus=4', '--out', '.'],
    ['sweep', '--set', 'cpus=4', '--scheduler', 'tcp://:8786'],
    ['sweep', '--set', 'cpus=4', '--scheduler', 'tcp://host:99999'],
    ['figures', '--only', 'fig1_drops_vs_cpus,,nope'],
    ['figures', '--jobs', '-2'],
    ['figures', '--seed', '99999999999999999999999'],
]


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """Scenario files, a FIFO, a file and a directory; tripwires on every expensive step."""
    for name, text in SCENARIOS.items():
        (tmp_path / name).write_text(text)
    (tmp_path / "latin.toml").write_bytes(b'description = "\xff\xfe"\n')
    (tmp_path / "adir.toml").mkdir()
    (tmp_path / "outdir.parquet").mkdir()
    (tmp_path / "afile").write_text("x")
    os.mkfifo(tmp_path / "fifo.toml")
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))

    def tripwire(*a, **k):
        raise AssertionError("work started before the input was checked")

    import workbench.emulate.explore as ex
    import workbench.figures.job as job
    import workbench.race.experiment as rx
    import workbench.sweep.engine as eng
    import workbench.sweep.mc as mc

    for mod, name in ((mc, "subtrees"), (ex, "_exhaustive_function"), (ex, "_random_schedule"), (ex, "load_outcome_table"),
                      (eng, "_execute"), (job, "_load_tables")):
        monkeypatch.setattr(mod, name, tripwire)
    monkeypatch.setattr(rx.RaceExperiment, "prepare", tripwire)
    return tmp_path


def _run(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = exc.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("argv, needle", CASES + [(a, "") for a in MORE],
                         ids=[" ".join(a)[:60] or "empty" for a in [c[0] for c in CASES] + MORE])
def test_bad_input_is_one_line_exit_2_before_any_work(argv, needle, scratch, capsys, monkeypatch):
    port = _refused_port()
    args = []
    for a in argv:
        a = a.replace("{d}", str(scratch)).replace("{port}", str(port))
        if a.startswith("WORKBENCH_DATA="):
            monkeypatch.setenv("WORKBENCH_DATA", a.partition("=")[2])
        else:
            args.append(a)
    status, err = _run(args, capsys)
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert needle in lines[0], lines[0]
    assert "unrecognized arguments" not in lines[0]  # the case checks a value, not a flag that is gone
    assert not list(scratch.rglob("*.tmp"))  # nothing left behind


def test_the_table_covers_the_issue():
    """At least every case the issue lists, and the silently accepted ones."""
    assert len(CASES) >= 19 + 6
