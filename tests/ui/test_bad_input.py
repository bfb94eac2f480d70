"""Bad input, as a careless or hostile user gives it: one line ``error: ...``, exit 2, before any work.

Every case runs the command line in this process with the expensive steps
(emulation, outcome tables, sweeps, figures) replaced by tripwires, so a
case passes only if it is refused with one line, status 2, no traceback,
and before any of that work starts.
"""

from __future__ import annotations

import hashlib
import json
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
    # round two: unknown keys, wrong types, names that do not exist
    "ctxfn.toml": ('[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\nafter = ["t"]\n'
                   '[context]\nno_such_fn = "irq_off"\n'),
    "desctable.toml": ('[description]\nx = 1\n[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\n'
                       'after = ["t"]\n'),
    "descint.toml": 'description = 5\n[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\nafter = ["t"]\n',
    "desclist.toml": ('description = ["a"]\n[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\n'
                      'after = ["t"]\n'),
    "unknowntable.toml": ('[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\nafter = ["t"]\n'
                          '[extra]\nx = 1\n'),
    "ctxbad.toml": ('[ops.t]\nkind = "tracer"\n[transition]\nbefore = []\nafter = ["t"]\n'
                    '[context]\ndo_IRQ = "sometimes"\n'),
    "deep.toml": "description = " + "[" * 40 + "1" + "]" * 40 + "\n",
    "deeper.toml": "description = " + "[" * 5000 + "1" + "]" * 5000 + "\n",
    "deepinline.toml": "x = " + "{a = " * 30 + "1" + "}" * 30 + "\n",
    "deepest.toml": "x = " + "{a = " * 3000 + "1" + "}" * 3000 + "\n",
    # sweep --config files
    "emptygrid.toml": "[[grid]]\n",
    "unknowntop.toml": "[[grid]]\ncpus = [4]\n[other]\nx = 1\n",
    "unknownparam.toml": "[[grid]]\ncpuz = [4]\n",
    "nestedlist.toml": "[[grid]]\ncpus = [[4, 8]]\n",
    "emptylist.toml": "[[grid]]\ncpus = []\n",
    "datetime.toml": "[[grid]]\ncpus = 1979-05-27\n",
    "gridnotable.toml": "grid = 5\n",
    "gridbadrate.toml": "[[grid]]\ntail_rate = [1e20]\n",
    "gridbool.toml": "[[grid]]\ncpus = [true]\n",
    "gridhuge.toml": "[[grid]]\ncpus = [" + ",".join(str(i) for i in range(1, 1001)) + "]\n"
                     "sync_round_ns = [" + ",".join(str(1000 + i) for i in range(1000)) + "]\n",
    "gridmany.toml": "[[grid]]\ncpus = [" + ",".join(str(i) for i in range(1, 201)) + "]\n"
                     "trials = [" + ",".join(str(10 + i) for i in range(100)) + "]\n",
    "griddesc.toml": 'description = 3\n[[grid]]\ncpus = [4]\n',
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
    (["model-check", "--cpus", "4"], "cpus: 4 is outside the valid range [2, 3]"),
    (["model-check", "--split", "0"], "split: 0 is outside the valid range [1, 4096]"),
    (["explore", "--mode", "random", "--schedules", "0"], "schedules: 0 is outside"),
    (["explore", "--entry", "v5.2"], "entry: unknown value 'v5.2'"),
    (["explore", "--poke-method", "nope"], "poke_method: unknown value 'nope'"),
    (["explore", "--batching", "stop_machine"], "batching: unknown value 'stop_machine'"),
    (["explore", "--functions", "nope"], "function: unknown 'nope'"),
    (["explore", "--functions", ","], "function: unknown ''"),
    (["explore", "--cpus", "x"], "invalid int value"),
    (["simulate", "--trials", "1"], "trials: 1 is outside"),
    (["simulate", "--cpus", "0"], "cpus: 0 is outside"),
    (["simulate", "--cpus", "70000"], "cpus: 70000 is outside"),
    (["simulate", "--cpus", "1.5"], "cpus: "),
    (["simulate", "--strategy", "bogus"], "strategy: unknown value 'bogus'"),
    (["simulate", "--scenario", "bogus"], "scenario: unknown value 'bogus'"),
    (["simulate", "--batching", "bogus"], "batching: unknown value 'bogus'"),
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



# -- round two: the classes an audit found (each case failed before: a traceback, a hang, or silence)

def _replay_doc(**change):
    """A counterexample file's document with *change* applied to it (or, ``config_<k>``, to its config),
    carrying a valid SHA-256, so only the schema can refuse it."""
    cfg = {"scenario": "seed", "strategy": "emulate_new", "entry": "v5.3", "poke_method": None,
           "calls": [["do_IRQ"], ["schedule"]], "handler": "strategy", "coherent_fetch": False, "n_ordinary": 8,
           "per_site": False, "all_sites": False, "items": None}
    body = {"schema": 1, "kind": "workbench-mc-schedule", "config": cfg, "schedule": [0, 1, 2],
            "outcome": "x", "note": ""}
    for k, v in change.items():
        if k.startswith("config_"):
            if v is _DROP:
                cfg.pop(k[7:])
            else:
                cfg[k[7:]] = v
        elif v is _DROP:
            body.pop(k)
        else:
            body[k] = v
    digest = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    return json.dumps({**body, "sha256": digest})


_DROP = object()
REPLAYS = {
    "calls5": dict(config_calls=[["do_IRQ"]] * 5),
    "calls0": dict(config_calls=[]),
    "callsstr": dict(config_calls="do_IRQ"),
    "callsint": dict(config_calls=[[1]]),
    "callsflat": dict(config_calls=["do_IRQ", "schedule"]),
    "calls5deep": dict(config_calls=[["do_IRQ"] * 5]),
    "callsempty": dict(config_calls=[[]]),
    "ordbool": dict(config_n_ordinary=True),
    "ordstr": dict(config_n_ordinary="8"),
    "ordfloat": dict(config_n_ordinary=8.5),
    "ordneg": dict(config_n_ordinary=-1),
    "ordbig": dict(config_n_ordinary=10**6),
    "cohstr": dict(config_coherent_fetch="yes"),
    "cohint": dict(config_coherent_fetch=1),
    "persite": dict(config_per_site=2),
    "allsites": dict(config_all_sites="no"),
    "itemsstr": dict(config_items="abc"),
    "itemsint": dict(config_items=[1, 2]),
    "scenint": dict(config_scenario=5),
    "scennone": dict(config_scenario="no_such_scenario"),
    "scenfile": dict(config_scenario="/etc/passwd"),
    "strat": dict(config_strategy="bogus"),
    "stratint": dict(config_strategy=3),
    "entry": dict(config_entry="v9"),
    "proto": dict(config_poke_method=7),
    "protobad": dict(config_poke_method="nope"),
    "protoold": dict(config_poke_method=_DROP, config_protocol=7),  # a file's old name for it, checked alike
    "protooldbad": dict(config_poke_method=_DROP, config_protocol="nope"),
    "protoboth": dict(config_protocol="breakpoint"),  # the old name and the new one: which?
    "handler": dict(config_handler="bogus"),
    "cfgkey": dict(config_extra=1),
    "cfglist": dict(config=[1, 2]),
    "cfgnone": dict(config=None),
    "nocfg": dict(config=_DROP),
    "nosched": dict(schedule=_DROP),
    "schedstr": dict(schedule="0,1"),
    "schedstrs": dict(schedule=["0", "1"]),
    "schedneg": dict(schedule=[0, -1]),
    "schedbig": dict(schedule=[0, 99]),
    "schedfloat": dict(schedule=[0.5]),
    "schedbool": dict(schedule=[True, False]),
    "schedlong": dict(schedule=[0] * 100_001),
    "topkey": dict(extra="x"),
    "outcomeint": dict(outcome=5),
    "notestr": dict(note=["x"]),
    "schema2": dict(schema=2),
    "schematrue": dict(schema=True),
    "kind": dict(kind="other"),
}

ENVS = [("MPLBACKEND=nonsense", "MPLBACKEND"), ("MPLBACKEND=module://", "MPLBACKEND"),
        ("MPLBACKEND=agg agg", "MPLBACKEND"), ("OMP_NUM_THREADS=0", "OMP_NUM_THREADS"),
        ("OMP_NUM_THREADS=abc", "OMP_NUM_THREADS"), ("OMP_NUM_THREADS=-2", "OMP_NUM_THREADS"),
        ("OPENBLAS_NUM_THREADS=many", "OPENBLAS_NUM_THREADS"), ("MKL_NUM_THREADS=0", "MKL_NUM_THREADS"),
        ("LOKY_MAX_CPU_COUNT=abc", "LOKY_MAX_CPU_COUNT"), ("LOKY_MAX_CPU_COUNT=-1", "LOKY_MAX_CPU_COUNT"),
        ("LOKY_MAX_CPU_COUNT=1.5", "LOKY_MAX_CPU_COUNT"), ("MPLCONFIGDIR=/proc/wb-x", "MPLCONFIGDIR"),
        ("MPLCONFIGDIR={d}/afile", "MPLCONFIGDIR"), ("JOBLIB_TEMP_FOLDER=/nonexistent/x", "JOBLIB_TEMP_FOLDER"),
        ("JOBLIB_TEMP_FOLDER={d}/afile", "JOBLIB_TEMP_FOLDER")]
ENV_COMMANDS = [["figures", "--quick"], ["sweep", "--set", "cpus=4"], ["explore"], ["simulate"],
                ["call"], ["listing", "do_IRQ"], ["replay", "{d}/calls5.json"], ["columns"],
                ["model-check", "--cpus", "2"], ["sweep", "--dask", "local", "--set", "cpus=4"]]

# every rate, count, duration and size: past its range, through each way in (simulate, sweep --set, --config)
RANGE_CASES = [  # no upper bound before: an OverflowError or numpy's "lam value too large", after work began
    ("tail-rate", "tail_rate", ["1e200", "1e20", "1e10", "1.1e9", "1e300"]),
    ("sync-round-ns", "sync_round_ns", ["1e10", "1e300", "2e9", "1e15"]),
    ("write-ns", "write_ns", ["1e12", "1e10", "1e300"]),
    ("stop-machine-ns", "stop_machine_ns", ["1e11", "1e200", "1e15"]),
]
RANGE_KEPT = [  # refused before too, by ranges scattered through the code; now all from the vocabulary
    ("tail-rate", "tail_rate", ["-0.5"]),
    ("sync-round-ns", "sync_round_ns", ["0.0001"]),
    ("write-ns", "write_ns", ["-1"]),
    ("irq-off-prob", "irq_off_prob", ["1.5", "-0.1"]),
    ("cpus", "cpus", ["65537", "1e9", "-4"]),
    ("tail-functions", "tail_functions", ["2000001", "1e12"]),
    ("zipf-s", "zipf_s", ["10.5", "1e300"]),
    ("dispersion", "dispersion", ["10001", "1e200"]),
    ("batch-max", "batch_max", ["0", "1e10", "-3"]),
    ("trials", "trials", ["1e9", "100000001", "0"]),
]
HOT = ["do_IRQ=1e20,__migrate_task=20", "do_IRQ=1e10,__migrate_task=20", "do_IRQ=5,__migrate_task=1e300",
       "do_IRQ=5,__migrate_task=2e9", "do_IRQ=5,__migrate_task=20,schedule=1e12"]

ROUND_TWO = [
    # 1. deeply nested or oversized input, and files that are not regular
    (["explore", "--scenario", "{d}/deep.toml"], "nested deeper than"),
    (["explore", "--scenario", "{d}/deeper.toml"], "nested deeper than"),
    (["explore", "--scenario", "{d}/deepinline.toml"], "nested deeper than"),
    (["explore", "--scenario", "{d}/deepest.toml"], "nested deeper than"),
    (["simulate", "--scenario", "{d}/deeper.toml"], "nested deeper than"),
    (["sweep", "--set", "scenario={d}/deepest.toml"], "nested deeper than"),
    (["explore", "--scenario", "{d}/big.toml"], "more than the 1048576"),
    (["explore", "--scenario", "/dev/zero"], "not a regular file"),
    (["sweep", "--config", "{d}/deep.toml"], "nested deeper than"),
    (["sweep", "--config", "{d}/deeper.toml"], "nested deeper than"),
    (["sweep", "--config", "{d}/deepest.toml"], "nested deeper than"),
    (["sweep", "--config", "{d}/big.toml"], "more than the 1048576"),
    (["sweep", "--config", "/dev/zero"], "not a regular file"),
    (["sweep", "--config", "{d}/fifo.toml"], "not a regular file"),
    (["sweep", "--config", "{d}/adir.toml"], "not a regular file"),
    (["sweep", "--config", "{d}/latin.toml"], "not UTF-8"),
    (["replay", "{d}/brackets.json"], "nested deeper than"),
    (["replay", "{d}/deepdict.json"], "nested deeper than"),
    (["replay", "{d}/big.json"], "more than the 1048576"),
    (["replay", "/dev/zero"], "not a regular file"),
    (["replay", "{d}/fifo.toml"], "not a regular file"),
    (["replay", "{d}/adir.toml"], "not a regular file"),
    (["replay", "{d}/latin.toml"], "not UTF-8"),
    (["replay", "{d}/notjson.json"], "not valid JSON"),
    # 3. grids counted before they are made
    (["sweep", "--set", "trials=2:1e8:1000000", "--set", "cpus=1:65536:1000000"], "grid points"),
    (["sweep", "--set", "sync_round_ns=1e3:1e7:1000000"], "pass --force"),
    (["sweep", "--set", "sync_round_ns=1e3:1e7:20000"], "pass --force"),
    (["sweep", "--set", "sync_round_ns=1e3:1e7:200", "--set", "cpus=1:64:200"], "pass --force"),
    (["sweep", "--set", "sync_round_ns=1e3:1e7:100", "--set", "trials=1e8"], "Monte Carlo trials"),
    (["sweep", "--set", "cpus=1,2,3,4,5,6,7,8,9,10", "--set", "trials=99999999,100000000"], "Monte Carlo trials"),
    (["sweep", "--config", "{d}/gridhuge.toml"], "pass --force"),
    (["sweep", "--config", "{d}/gridmany.toml"], "pass --force"),
    # 4. paths: checked writable before any work, named in one line
    (["sweep", "--set", "cpus=4", "--out", "a" * 300], "too long"),
    (["sweep", "--set", "cpus=4", "--out", "é" * 150], "too long"),
    (["sweep", "--set", "cpus=4", "--out", "{d}/" + "b" * 300 + ".parquet"], "too long"),
    (["sweep", "--set", "cpus=4", "--out", "x\0y"], "NUL"),
    (["sweep", "--set", "cpus=4", "SWEEPS=file"], "is not a directory"),
    (["sweep", "--set", "cpus=4", "SWEEPS=link"], "is a symlink"),
    (["sweep", "--set", "cpus=4", "--out", "../../x"], "neither a bare name"),
    (["sweep", "--set", "cpus=4", "--out", "sub/x"], "neither a bare name"),
    (["sweep", "--set", "cpus=4", "--out", "/dev/null"], "neither a bare name"),
    (["sweep", "--set", "cpus=4", "--out", "/tmp/x.csv"], "neither a bare name"),
    (["sweep", "--set", "cpus=4", "--out", "{d}/fifo.parquet"], "out: cannot write"),
    (["model-check", "--cex-dir", "{d}/afile"], "cex-dir: cannot write"),
    (["model-check", "--cex-dir", "/proc/x"], "cex-dir: cannot write"),
    (["model-check", "--cex-dir", "/proc/self"], "cex-dir: cannot write"),
    (["model-check", "--cex-dir", "{d}/afile/sub"], "cex-dir: cannot write"),
    (["model-check", "--cex-dir", "{d}/" + "c" * 300], "cex-dir: cannot write"),
    (["model-check", "CEX=file"], "is not a directory"),
    (["model-check", "CEX=link"], "is a symlink"),
    # 6. flags that cannot apply, or conflict
    (["explore", "--cpus", "2", "--batching", "per_site"], "model-checked by `model-check --cpus 2`"),
    (["explore", "--cpus", "3", "--table", "calls"], "model-checked by `model-check --cpus 3`"),
    (["explore", "--cpus", "4"], "cpus: --mode exhaustive explores one calling CPU, not 4"),
    (["model-check", "--dask", "local", "--scheduler", "tcp://127.0.0.1:1"], "choose one"),
    (["model-check", "--jobs", "2", "--scheduler", "tcp://127.0.0.1:1"], "--jobs does not apply"),
    (["model-check", "--jobs", "0"], "jobs: 0 is outside"),
    (["model-check", "--json", "--wide"], "wide: --json and --wide conflict"),
    (["model-check", "--cpus", "0"], "cpus: 0 is outside the valid range [2, 3]"),
    (["model-check", "--cpus", "1"], "cpus: 1 is outside the valid range [2, 3]"),
    (["model-check", "--handler", "bogus"], "handler: unknown value 'bogus'; choose from strategy, irqoff_wait"),
    (["model-check", "--poke-method", "per_site"], "poke_method: unknown value 'per_site'; choose from breakpoint"),
    (["model-check", "--strategy", "skip,nope"], "strategy: unknown value 'nope'"),
    (["model-check", "--arch", "x86_64", "--entry", "v5.3"], "entry: unknown value 'v5.3'; choose from v5.1, v5.2"),
    (["model-check", "--entry", "v5.2"], "entry: unknown value 'v5.2'; choose from v5.1, v5.3"),
    (["model-check", "--arch", "sparc"], "arch: unknown value 'sparc'"),
    (["model-check", "--scenario", "{d}/lp386.toml"], "scenario lp386: cannot run on arch i386"),
    (["model-check", "--arch", "x86_64", "--kernel-tree", "{d}/afile"], "kernel-tree: "),
    (["model-check", "--split", "-5"], "split: -5 is outside"),
    (["model-check", "--split", "5000"], "split: 5000 is outside"),
    (["explore", "--entry", "all"], "entry: unknown value 'all'"),
    (["explore", "--schedules", "5"], "--schedules applies only to --mode random"),
    (["explore", "--seed", "5"], "--seed applies only to --mode random"),
    (["sweep", "--serial", "--jobs", "7", "--set", "cpus=4"], "--jobs does not apply"),
    (["sweep", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2", "--set", "cpus=4"], "--jobs does not apply"),
    (["figures", "--serial", "--jobs", "2"], "--jobs does not apply"),
    (["figures", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], "--jobs does not apply"),
    (["report", "--serial", "--dask", "local"], "backend: choose one"),
    (["model-check", "--serial", "--dask", "local"], "backend: choose one"),
    (["model-check", "--serial", "--jobs", "2"], "--jobs does not apply"),
    (["report", "--serial", "--jobs", "2"], "--jobs does not apply"),
    (["call", "--ops", "none,tracer"], "ops: none"),
    (["call", "--ops", "tracer,none"], "ops: none"),
    (["call", "--ops", "none,livepatch,tracer"], "ops: none"),
    (["replay", "{d}/calls5.json", "--json", "--quiet"], "conflict"),
    (["replay", "{d}/missing.json", "--json", "--quiet"], "conflict"),
    (["simulate", "--bristot", "--json"], "--json does not apply"),
    (["simulate", "--bristot", "--cpus", "4,8"], "--cpus does not apply"),
    (["simulate", "--bristot", "--strategy", "spin"], "--strategy does not apply"),
    (["simulate", "--bristot", "--trials", "100"], "--trials does not apply"),
    (["simulate", "--bristot", "--seed", "3"], "--seed does not apply"),
    (["simulate", "--bristot", "--tail-rate", "5"], "--tail-rate does not apply"),
    (["simulate", "--bristot", "--scenario", "seed"], "--scenario does not apply"),
    (["simulate", "--bristot", "--hot", "do_IRQ=5"], "--hot does not apply"),
    # 7. scenario and config files: unknown keys and wrong types name the key
    (["explore", "--scenario", "{d}/ctxfn.toml"], "context names unknown function 'no_such_fn'"),
    (["simulate", "--scenario", "{d}/ctxfn.toml"], "context names unknown function 'no_such_fn'"),
    (["explore", "--scenario", "{d}/desctable.toml"], "description must be a string"),
    (["explore", "--scenario", "{d}/descint.toml"], "description must be a string"),
    (["explore", "--scenario", "{d}/desclist.toml"], "description must be a string"),
    (["simulate", "--scenario", "{d}/desctable.toml"], "description must be a string"),
    (["sweep", "--config", "{d}/emptygrid.toml"], "grid[0] is empty"),
    (["sweep", "--config", "{d}/unknowntop.toml"], "unknown key 'other'"),
    (["sweep", "--config", "{d}/nestedlist.toml"], "grid[0].cpus has a nested list"),
    (["sweep", "--config", "{d}/emptylist.toml"], "grid[0].cpus is an empty list"),
    (["sweep", "--config", "{d}/datetime.toml"], "grid[0].cpus has a date"),
    (["sweep", "--config", "{d}/gridbadrate.toml"], "tail_rate: 1e+20 is outside"),
    (["sweep", "--config", "{d}/griddesc.toml"], "description must be a string"),
]
#: replay files the old reader refused already (kept: the schema must go on refusing them)
REPLAYS_KEPT = ("cfgkey", "cfglist", "cfgnone", "nocfg", "nosched", "schedstr", "schedstrs", "schedfloat",
                "schema2", "kind")
ROUND_TWO += [(["replay", f"{{d}}/{name}.json"], "schedule file") for name in REPLAYS if name not in REPLAYS_KEPT]
ROUND_TWO += [([*cmd, env], needle) for env, needle in ENVS for cmd in ENV_COMMANDS]
for flag, name, values in RANGE_CASES:
    for v in values:
        ROUND_TWO.append((["simulate", f"--{flag}", v], f"{name}: "))
        ROUND_TWO.append((["sweep", "--set", f"{name}={v}"], f"{name}"))
ROUND_TWO += [(["simulate", "--hot", h], "hot[") for h in HOT]
ROUND_TWO += [(["sweep", "--set", 'hot={"%s":%s}' % tuple(h.split(",")[0].split("="))], "hot[")
              for h in HOT[:2]]  # --set takes one NAME:RATE pair (a comma starts the next value)
ROUND_TWO += [(["sweep", "--set", 'hot={"schedule":%s}' % v], "hot[schedule]") for v in ("1e12", "1e300", "2e9")]
#: cases the old code refused already, kept so
KEPT = [
    (["replay", "{d}/missing.json"], "no file"),
    (["sweep", "--set", "cpus=1:64:2000000"], "outside the valid range"),
    (["explore", "--mode", "nope", "--seed", "3"], "mode: unknown value"),
    (["explore", "--scenario", "{d}/ctxbad.toml"], "context.do_IRQ"),
    (["explore", "--scenario", "{d}/unknowntable.toml"], "unknown keys ['extra']"),
    (["sweep", "--config", "{d}/unknownparam.toml"], "cpuz: unknown sweep parameter"),
    (["sweep", "--config", "{d}/gridnotable.toml"], "no [[grid]] table"),
    (["sweep", "--config", "{d}/gridbool.toml"], "cpus: expected an integer, got True"),
    (["sweep", "--config", "{d}/missing.toml"], "config: no file"),
    (["sweep", "--config", "{d}/gridmany.toml", "--set", "cpus=4"], "not both"),
]
for flag, name, values in RANGE_KEPT:
    for v in values:
        KEPT.append((["simulate", f"--{flag}", v], f"{name}: "))
        KEPT.append((["sweep", "--set", f"{name}={v}"], f"{name}"))
KEPT += [(["replay", f"{{d}}/{name}.json"], "schedule file") for name in REPLAYS_KEPT]


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
    ['explore', '--poke-method', ''],
    ['explore', '--entry', ''],
    ['explore', '--table', 'x'],
    ['explore', '--mode', 'random', '--schedules', '1e9'],
    ['explore', '--mode', 'random', '--cpus', '-1'],
    ['model-check', '--functions', ''],
    ['model-check', '--functions', 'nope'],
    ['model-check', '--strategy', ''],
    ['model-check', '--entry', ''],
    ['model-check', '--poke-method', ''],
    ['model-check', '--scenario', '/dev/null'],
    ['model-check', '--cpus', '-1'],
    ['explore', '--scenario', '/dev/null'],
    ['explore', '--scenario', '/etc'],
    ['explore', '--scenario', '/nonexistent/x'],
    ['simulate', '--scenario', ''],
    ['simulate', '--batching', ''],
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
    ['sweep', '--set', 'batching=nope'],
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
    os.mkfifo(tmp_path / "fifo.parquet")
    (tmp_path / "big.toml").write_text("# " + "x" * (1 << 20) + "\n")
    (tmp_path / "big.json").write_text(" " * (1 << 20) + "{}")
    (tmp_path / "brackets.json").write_text("[" * 100_000)
    (tmp_path / "deepdict.json").write_text('{"a": ' * 50 + "1" + "}" * 50)
    (tmp_path / "notjson.json").write_text("{oops")
    for name, change in REPLAYS.items():
        (tmp_path / f"{name}.json").write_text(_replay_doc(**change))
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path / "data"))

    def tripwire(*a, **k):
        raise AssertionError("work started before the input was checked")

    import workbench.emulate.explore as ex
    import workbench.figures.job as job
    import workbench.race.experiment as rx
    import workbench.sweep.engine as eng
    import workbench.emulate.mc.experiment as mc

    import workbench.emulate.mc.schedule as sch

    monkeypatch.setattr(sch, "replay_steps", tripwire)  # the replay command imports it when it runs
    for mod, name in ((mc, "subtrees"), (ex, "exhaustive_function"), (ex, "_random_schedule"), (ex, "load_outcome_table"),
                      (eng, "execute_chunks"), (job, "_load_tables")):
        monkeypatch.setattr(mod, name, tripwire)
    monkeypatch.setattr(rx.RaceExperiment, "prepare", tripwire)
    return tmp_path


def _run(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = exc.code
    return status, capsys.readouterr().err


ALL = CASES + ROUND_TWO + KEPT + [(a, "") for a in MORE]


@pytest.mark.parametrize("argv, needle", ALL, ids=[f"{i}: " + " ".join(a)[:60] for i, (a, _) in enumerate(ALL)])
def test_bad_input_is_one_line_exit_2_before_any_work(argv, needle, scratch, capsys, monkeypatch):
    port = _refused_port()
    args = []
    for a in argv:
        a = a.replace("{d}", str(scratch)).replace("{port}", str(port))
        name, sep, value = a.partition("=")
        if sep and name in ("SWEEPS", "CEX"):  # a data subdirectory replaced by a file or a link
            where = scratch / "data" / {"SWEEPS": "sweeps", "CEX": "counterexamples"}[name]
            where.parent.mkdir(parents=True, exist_ok=True)
            if value == "file":
                where.write_text("x")
            else:
                where.symlink_to(scratch)
        elif sep and name.isupper() and name.replace("_", "").isalnum():
            monkeypatch.setenv(name, value)
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
    """At least every case the issue lists, and the silently accepted ones; past 450 in all."""
    assert len(CASES) >= 19 + 6
    assert len(ALL) > 450


def test_the_replay_schema_names_every_field_of_a_configuration():
    """A field added to McConfig must be added to the schema (else every new file is refused)."""
    from dataclasses import fields

    from workbench.emulate.mc.schedule import _CONFIG_TYPES
    from workbench.emulate.mc.config import McConfig

    assert set(_CONFIG_TYPES) == {f.name for f in fields(McConfig)}
