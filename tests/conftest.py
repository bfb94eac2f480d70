import os
import shutil

import pytest

from workbench.kernel.image import build_image


@pytest.fixture(scope="session")
def image():
    return build_image(8)


@pytest.fixture(scope="session")
def seed_outcome_cache():
    """A function copying the emulator's cached outcome tables into another data directory.

    A test that needs a data directory of its own (its sweep points, figures
    or records apart from every other test's) but not fresh emulation calls
    it with that directory: the outcome tables computed once for the session
    (:func:`pytest_sessionstart`, or the first test that needed them) are
    read there as from any cache, verified on read and keyed by the
    emulator's code version, instead of being emulated again.
    """
    from workbench.base.paths import data_dir

    source = data_dir() / "cache" / "outcomes"

    def seed(dest) -> None:
        if source.is_dir():
            shutil.copytree(source, os.path.join(dest, "cache", "outcomes"), dirs_exist_ok=True)

    return seed


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """Under pytest-xdist (``-n N``, N > 1), compute the emulator's outcome tables once, before any worker starts.

    The figures job's eight tables (:data:`workbench.figures.job.TABLES`, i386
    and x86_64) are cached in the data directory that every test shares;
    computed here, two at a time, no two workers compute the same table side
    by side. A warm cache costs a read; a serial run leaves them to the first
    test that needs them, as before.
    """
    config = session.config
    workers = getattr(config.option, "numprocesses", None)
    if hasattr(config, "workerinput") or not workers or config.option.collectonly:
        return
    from joblib import Parallel, delayed

    from workbench.emulate.explore import load_outcome_table
    from workbench.figures.job import TABLES

    from joblib.externals.loky import get_reusable_executor

    Parallel(n_jobs=min(len(TABLES), os.cpu_count() or 1))(
        delayed(load_outcome_table)(s, e, progress=False, arch=a) for s, e, a in TABLES)
    get_reusable_executor().shutdown(wait=True, kill_workers=True)  # no worker outlives the warm-up


def pytest_collection_modifyitems(config, items):
    """The modules marked ``slow(seconds)`` first, longest first, then the rest (a stable sort).

    The longest units of work start first, so that no worker is left with
    one at the end while the others are done (with ``--dist loadscope``
    and ``--no-loadscope-reorder`` the workers take modules in this order).
    The seconds are a module's measured time on two busy cores, a hint only.
    """
    def seconds(item) -> float:
        mark = item.get_closest_marker("slow")
        return float(mark.args[0]) if mark is not None and mark.args else 0.0

    items.sort(key=lambda item: -seconds(item))
