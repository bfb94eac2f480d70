"""The report's notebooks run side by side, each in its own directory, and a failure stops them all.

Small notebooks of their own (a kernel each, a few seconds), not the project's.
"""

import os
import time

import nbformat
import pytest

from workbench.ui.report import execute_notebooks


def _notebook(path, source: str):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)
    return path


TIMED = """
import os, pathlib, time
t0 = time.time()
time.sleep(3)
pathlib.Path("{name}.times").write_text(f"{{t0}} {{time.time()}} {{os.getcwd()}}")
"""


def test_two_notebooks_run_at_once_in_their_directory_and_come_back_in_order(tmp_path):
    nbs = [_notebook(tmp_path / f"0{i}_timed.ipynb", TIMED.format(name=f"nb{i}")) for i in (1, 2)]
    out = tmp_path / "out"
    out.mkdir()
    executed = execute_notebooks(nbs, out, timeout=120, jobs=2)
    assert executed == [out / nb.name for nb in nbs] and all(p.is_file() for p in executed)
    (a0, a1, a_cwd), (b0, b1, b_cwd) = ((tmp_path / f"nb{i}.times").read_text().split() for i in (1, 2))
    assert a_cwd == b_cwd == str(tmp_path)  # each kernel in its notebook's directory
    assert float(a0) < float(b1) and float(b0) < float(a1)  # their 3-s sleeps overlapped
    assert os.getcwd() != str(tmp_path)  # and this process's directory is its own


def test_one_notebook_failing_kills_the_kernel_of_the_other_at_once(tmp_path):
    import papermill

    waiting = _notebook(tmp_path / "01_waits.ipynb",
                        "import os, pathlib, time\npathlib.Path('pid').write_text(str(os.getpid()))\ntime.sleep(300)")
    failing = _notebook(tmp_path / "02_fails.ipynb",
                        "import pathlib, time\nwhile not pathlib.Path('pid').exists():\n    time.sleep(0.1)\n"
                        "raise ValueError('this notebook fails')")
    out = tmp_path / "out"
    out.mkdir()
    t0 = time.monotonic()
    with pytest.raises(papermill.PapermillExecutionError, match="this notebook fails"):
        execute_notebooks([waiting, failing], out, timeout=600, jobs=2)
    assert time.monotonic() - t0 < 60  # not the other notebook's 300-s cell
    pid = int((tmp_path / "pid").read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{pid}"), "the waiting notebook's kernel outlived the failure"


def test_ctrl_c_while_notebooks_run_kills_their_kernels_and_prints_nothing(tmp_path, capfd):
    import _thread
    import threading

    nbs = [_notebook(tmp_path / f"0{i}_waits.ipynb",
                     f"import os, pathlib, time\npathlib.Path('pid{i}').write_text(str(os.getpid()))\ntime.sleep(300)")
           for i in (1, 2)]
    out = tmp_path / "out"
    out.mkdir()

    def ctrl_c_once_both_run():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all((tmp_path / f"pid{i}").exists() for i in (1, 2)):
            time.sleep(0.1)
        _thread.interrupt_main()  # what the terminal's SIGINT raises in the main thread

    threading.Thread(target=ctrl_c_once_both_run, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        execute_notebooks(nbs, out, timeout=600, jobs=2)
    assert time.monotonic() - t0 < 60
    time.sleep(0.5)
    for i in (1, 2):
        assert not os.path.exists(f"/proc/{int((tmp_path / f'pid{i}').read_text())}")
    assert "Kernel died" not in capfd.readouterr().err
