"""The guest's console read back; the initramfs archive; the cache entry check. No QEMU needed."""

import gzip
import json
import subprocess
from pathlib import Path

import pandas as pd

from workbench.anchor.console import parse_console
from workbench.anchor.guest import UPDATES, guest_script
from workbench.anchor.initramfs import build_initramfs
from workbench.anchor.run import _load, _parser_version

LOG = (Path(__file__).parent / "data" / "console_i386_k2.log").read_text()


def test_console_rows_deltas_and_classes():
    run = parse_console(LOG)
    assert run.release == "6.1.0-57-686" and run.cpus == 2 and run.ended
    assert [u.kind for u in run.updates[:4]] == list(UPDATES)
    on = run.updates[0]
    assert on.n == 1 and on.enabled == 1 and len(on.cal) == 2
    # every do_sync_core sender asked the one other CPU: 5 text_poke_bp batches of 3 rounds
    assert on.senders["text_poke_sync"] == 15 and on.senders["ftrace_sync_ipi"] == 1
    assert on.marker_us > 0
    add = run.updates[1]
    assert add.senders["text_poke_sync"] == 9 and add.senders["ftrace_sync_ipi"] == 0


def test_console_of_a_dead_guest_has_no_end():
    cut = LOG[: LOG.index("@@ U 2 ")]
    run = parse_console(cut)
    assert not run.ended and len(run.updates) == 2


def test_initramfs_is_a_newc_archive_busybox_can_list(tmp_path):
    script, updates = guest_script((1, 600), word="x32")
    assert len(updates) == 2 * len(UPDATES) and "set_ftrace_filter" in script
    blob = build_initramfs(Path("/bin/sh").resolve(), script)
    assert blob == build_initramfs(Path("/bin/sh").resolve(), script)  # byte-stable
    raw = gzip.decompress(blob)
    assert raw.startswith(b"070701") and b"TRAILER!!!" in raw and len(raw) % 512 == 0
    busybox = Path("/bin/busybox")
    if busybox.exists():
        listed = subprocess.run([str(busybox), "cpio", "-t"], input=raw, capture_output=True, check=True).stdout
        assert set(listed.decode().split()) >= {"init", "bin/busybox"}


def test_damaged_or_foreign_cache_entry_is_not_served(tmp_path):
    key = {"arch": "i386", "vcpus": 2}
    bad = tmp_path / "measured.parquet"
    bad.write_bytes(b"PAR1 not really")
    assert _load(bad, key) is None
    frame = pd.DataFrame({"x": [1]})
    frame.attrs["anchor_key"] = json.dumps({**key, "vcpus": 4}, sort_keys=True)
    frame.to_parquet(bad)
    assert _load(bad, key) is None
    frame.attrs["anchor_key"] = json.dumps(key, sort_keys=True)
    frame.to_parquet(bad)
    assert _load(bad, key) is None  # written by another parser, and no console log to re-read
    frame.attrs["parser"] = _parser_version()
    frame.to_parquet(bad)
    assert _load(bad, key) is not None


def test_bad_anchor_options_are_one_line_before_any_boot(monkeypatch, capsys):
    import workbench.anchor.run as anchor_run
    from workbench.ui.cli import main

    def tripwire(*a, **k):
        raise AssertionError("booted before the options were checked")
    monkeypatch.setattr(anchor_run, "anchor_frame", tripwire)  # the command loads it when its run starts
    for argv, needle in ((["--vcpus", "9"], "--vcpus: '9' is not valid"),
                         (["--arch", "arm64"], "--arch: 'arm64' is not valid; choose from x86_64, i386"),
                         (["--sites", "1,x"], "--sites: 'x' is not valid"),
                         (["--sites", "5,5"], "--sites: a value is repeated"),
                         (["--timeout", "3"], "--timeout: '3' is not valid"),
                         (["--retries", "-1"], "--retries: '-1' is not valid")):
        assert main(["anchor", *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err, (argv, err)


def test_anchor_figure_from_a_console_log_passes_the_figure_checks():
    from workbench.anchor.run import _rows, with_model
    from workbench.figures.anchor_plot import anchor_ipis
    from workbench.figures.style import figure_check

    key = {"arch": "i386", "kernel_package": "linux-image-6.1.0-57-686:i386", "kernel_version": "6.1.192-3",
           "qemu_version": "7.2", "vcpus": 2, "accelerator": "tcg", "ns": [1], "guest_code": "x"}
    frame = with_model(_rows(parse_console(LOG), key, Path("console.log")))
    assert list(frame.model_ipis) == [16, 9, 16, 16]  # the v6.1 plan of one site on two CPUs
    assert (frame.asked_text_poke_sync == frame.model_sync_ipis).all()
    fig = anchor_ipis(frame)
    assert figure_check(fig) == []
