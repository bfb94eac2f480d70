"""The figures job's record (workbench/figures/job_record.py): a rerun with nothing changed reads its
files back instead of running the job; anything changed, damaged or different runs the job again.

The job itself is replaced by a stand-in that writes a few files and counts its calls: what is under
test is when the ``figures`` command runs it, what it prints and which checks come first (the job's
own outputs and caches are tested in test_plots.py and test_damaged_outputs.py).
"""

import pytest

import workbench.figures.job as job
import workbench.figures.job_record as record
from workbench.ui.cli import main


@pytest.fixture
def data(tmp_path, monkeypatch):
    """A data directory and a stand-in job; returns (data dir, list of the job's calls)."""
    d = tmp_path / "data"
    monkeypatch.setenv("WORKBENCH_DATA", str(d))
    calls = []

    def regenerate(quick=False, *, seed=0, only=None, **kw):
        calls.append({"quick": quick, "seed": seed, "only": only})
        suffix = "_quick" if quick else ""
        report = job.Report()
        for sub, name, body in (("sweeps", f"cpus{suffix}.parquet", b"frame %d" % seed),
                                ("summary", f"drops{suffix}.csv", b"a,b\n1,2\n"),
                                ("figures", f"fig1{suffix}.png", b"\x89PNG drawn"),
                                ("figures", f"fig1{suffix}.inputs.json", b'{"digest": "x"}')):
            (d / sub).mkdir(parents=True, exist_ok=True)
            (d / sub / name).unlink(missing_ok=True)  # as write_atomic renames over a link
            (d / sub / name).write_bytes(body)
            if not name.endswith(".inputs.json"):
                report.files.append(d / sub / name)
        report.problems.append(f"fig1{suffix}: a label overlaps")
        report.sweeps["cpus"] = {"points": 4, "cached": 0}
        return report

    monkeypatch.setattr(job, "regenerate", regenerate)
    return d, calls


def _figures(capsys, *argv):
    status = main(["figures", "--quiet", *argv])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_a_rerun_with_nothing_changed_reads_the_files_back_and_runs_nothing(data, capsys):
    d, calls = data
    status, first, _ = _figures(capsys)
    assert status == 0 and len(calls) == 1 and "4 computed" in first
    assert record.record_path(False).is_file()
    status, second, _ = _figures(capsys, "--jobs", "1")  # the number of workers changes no output bit
    assert status == 0 and len(calls) == 1
    assert "nothing recomputed" in second
    wrote = [line for line in second.splitlines() if line.startswith("wrote /")]
    assert wrote == [line for line in first.splitlines() if line.startswith("wrote /")]
    assert "warning: fig1: a label overlaps" in second  # the recorded problems are said again
    assert "wrote 3 files" in second


@pytest.mark.parametrize("damage", ["truncate", "edit", "remove", "symlink", "manifest", "record"])
def test_a_damaged_output_or_record_runs_the_job_again(data, capsys, damage):
    d, calls = data
    _figures(capsys)
    png = d / "figures" / "fig1.png"
    if damage == "truncate":
        png.write_bytes(b"")
    elif damage == "edit":
        png.write_bytes(b"\x89PNG drawn!")
    elif damage == "remove":
        png.unlink()
    elif damage == "symlink":  # the same bytes, but through a link: not the file written then
        (d / "elsewhere.png").write_bytes(png.read_bytes())
        png.unlink()
        png.symlink_to(d / "elsewhere.png")
    elif damage == "manifest":  # what the next real job would redraw depends on it: checked too
        (d / "figures" / "fig1.inputs.json").write_bytes(b"{}")
    else:
        record.record_path(False).write_text("{not json")
    status, out, _ = _figures(capsys)
    assert status == 0 and len(calls) == 2 and "nothing recomputed" not in out
    _figures(capsys)
    assert len(calls) == 2  # and the job's new record serves the next run


def test_another_seed_grid_or_subset_runs_the_job(data, capsys):
    d, calls = data
    _figures(capsys)
    _figures(capsys, "--seed", "1")
    assert calls[-1]["seed"] == 1 and len(calls) == 2
    _figures(capsys, "--quick")
    assert calls[-1]["quick"] is True and len(calls) == 3
    _figures(capsys, "--only", "fig1_drops_vs_cpus", "--seed", "1")  # a subset: never answered from the record
    assert calls[-1]["only"] == ["fig1_drops_vs_cpus"] and len(calls) == 4
    _figures(capsys, "--seed", "1")  # seed 0's outputs were overwritten by seed 1's: seed 1's record holds
    _figures(capsys, "--quick")
    assert len(calls) == 4
    _figures(capsys)  # seed 0's files are gone (seed 1's bytes are there): the job runs
    assert calls[-1]["seed"] == 0 and len(calls) == 5


def test_bad_input_is_refused_before_the_record_is_read(data, capsys):
    d, calls = data
    _figures(capsys)
    for argv, message in ((["--jobs", "0"], "jobs: 0 is outside"), (["--seed", "-1"], "seed: -1 is outside")):
        status, out, err = _figures(capsys, *argv)
        assert status == 2 and message in err and "wrote" not in out
    assert len(calls) == 1


def test_the_key_names_everything_the_outputs_depend_on(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_DATA", str(tmp_path))
    base = record.job_key(False, 0, tmp_path)
    assert base == record.job_key(False, 0, tmp_path)
    assert len({base, record.job_key(True, 0, tmp_path), record.job_key(False, 1, tmp_path),
                record.job_key(False, 0, tmp_path / "other")}) == 4
    monkeypatch.setattr(record, "code_version", lambda: "0123456789abcdef")  # a source file edited
    assert record.job_key(False, 0, tmp_path) != base
    monkeypatch.undo()
    monkeypatch.setattr(record, "_version", lambda dist: "9.9" if dist == "matplotlib" else "1")
    assert record.job_key(False, 0, tmp_path) != base
    monkeypatch.undo()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # another (here: no) assembler and linker
    assert record.job_key(False, 0, tmp_path) != base


def test_the_record_is_written_after_a_complete_job_only(data, capsys, monkeypatch):
    d, calls = data

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(job, "regenerate", interrupted)
    assert main(["figures", "--quiet"]) == 130
    assert not record.record_path(False).exists()
