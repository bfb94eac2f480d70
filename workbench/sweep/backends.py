"""Where a sweep's points run: this process, local loky workers, or a Dask cluster.

``serial`` runs the chunks here; ``local`` in a joblib loky pool whose workers die with this
process (:func:`local_parallel`, shared with the figures job); ``dask`` on the cluster at a
scheduler address, an existing client, or a LocalCluster on the loopback interface
(:func:`dask_client`). The backend never changes a number: :func:`run_chunk` gives every point
the rows a cache entry would give back. Models no kernel file.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
from contextlib import contextmanager

import pandas as pd

from workbench.base.errors import ConfigError
from workbench.base.process import die_with_parent, prepare_pool, start_worker
from workbench.base.version import loaded_code_version
from workbench.sweep.cache import plain_json
from workbench.sweep.experiment import Experiment

__all__ = ["BACKENDS", "check_scheduler", "dask_client", "execute_chunks", "local_parallel", "run_chunk"]

#: where a sweep's points run
BACKENDS = ("local", "dask", "serial")


def _rows(result) -> list[dict]:
    """An experiment's result as JSON-round-tripped rows (what the cache will return)."""
    if isinstance(result, pd.DataFrame):
        rows = result.to_dict("records")
    elif isinstance(result, dict):
        rows = [result]
    else:
        rows = list(result)
    # the same round trip as a cache entry, so fresh and cached frames are identical
    return json.loads(json.dumps(plain_json(rows), allow_nan=True))


def run_chunk(experiment, chunk, seed, context, coordinator=None):
    """Run the points of *chunk* (``(index, params, stream)`` triples); ``(version, [(index, rows)])``.

    In a worker process (not *coordinator*, the coordinating process's pid)
    the worker first arranges to die with its parent, and *version* is the
    code version the worker loaded (it never reloads a module); in the
    coordinating process it is ``None`` (the sweep's own version).
    """
    version = None
    if coordinator is not None and os.getpid() != coordinator:
        die_with_parent()
        version = loaded_code_version()
    return version, [(i, _rows(experiment.run(p, seed, stream, context))) for i, p, stream in chunk]


def check_scheduler(address: str, timeout: float = 5.0) -> str:
    """Check a Dask scheduler address before any work: ``tcp://HOST:PORT`` (or ``tls://``) that answers.

    Opens and closes one TCP connection (at most *timeout* seconds). Raises
    :class:`ConfigError` for a malformed address or one where nothing listens.
    """
    m = re.fullmatch(r"(tcp|tls)://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})", str(address).strip())
    if not m or not 0 < int(m.group(3)) < 65536:
        raise ConfigError(f"scheduler: expected tcp://HOST:PORT (port 1-65535), got {address!r}")
    host, port = m.group(2).strip("[]"), int(m.group(3))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConfigError(f"scheduler: nothing answers at {address} ({reason}); start a scheduler there "
                          "or use --dask local") from None
    return str(address).strip()


@contextmanager
def dask_client(scheduler=None, client=None, jobs=None, processes=True):
    """A ``distributed.Client``: *client* as is, one at *scheduler*, or a LocalCluster.

    A LocalCluster has *jobs* single-threaded workers (default: CPU count),
    in processes unless *processes* is False, and is closed on exit. It
    listens on the loopback interface only, on ports the system picks: no
    dashboard (its scheduler's bare HTTP server too is on 127.0.0.1, port 0),
    so concurrent runs never compete for a port. Raises :class:`ConfigError`
    for a scheduler that is malformed or does not answer.
    """
    if client is not None:
        yield client
        return
    # start-up: distributed's (about a second) is paid only by Dask runs
    from distributed import Client, LocalCluster

    if scheduler:
        check_scheduler(scheduler)
        try:
            c = Client(scheduler, timeout=10)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(f"scheduler: could not connect to {scheduler} ({type(exc).__name__}); "
                              "start a scheduler there or use --dask local") from None
        with c:
            yield c
        return
    n = jobs or os.cpu_count() or 1
    if processes:
        prepare_pool()
    # processes: TCP on loopback only; threads: in-process comms, no socket but the HTTP one
    where = {"host": "127.0.0.1"} if processes else {}
    with LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, **where,
                      dashboard_address=None, worker_dashboard_address=None,
                      scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.ERROR) as cluster, Client(cluster) as c:
        yield c


def local_parallel(n_jobs: int, **kwargs):
    """A joblib ``Parallel`` of *n_jobs* loky workers that die with this process from their first instant.

    Each worker runs :func:`workbench.base.process.start_worker` as its
    initializer, before it takes any task: a ``kill -9`` of this process at
    any moment, even while the pool starts, ends every worker. The sweep
    engine and the figures job share it (same initializer, same arguments),
    so they share one reusable pool. *kwargs* go to ``Parallel``.
    """
    from joblib import Parallel, parallel_config  # start-up: joblib, only for parallel runs

    prepare_pool()
    with parallel_config(backend="loky", initializer=start_worker, initargs=(os.getpid(),)):
        return Parallel(n_jobs=n_jobs, **kwargs)


def execute_chunks(experiment: Experiment, chunks: list, seed: int, context, backend: str, jobs: int | None,
                   scheduler: str | None, client, processes: bool):
    """Yield the results of *chunks* as they finish, on *backend*."""
    me = os.getpid()
    if backend == "serial" or (backend == "local" and len(chunks) == 1):
        for chunk in chunks:  # one chunk: a process pool would only add its start-up
            yield run_chunk(experiment, chunk, seed, context)
    elif backend == "local":
        from joblib import delayed  # start-up: joblib, only for parallel runs

        # unordered: finished chunks are cached at once, whatever their order; one chunk per
        # dispatch (the chunks are sized here already; joblib's own batching would hand a
        # worker several, leaving the other idle behind a long one)
        yield from local_parallel(jobs or -1, return_as="generator_unordered", batch_size=1)(
            delayed(run_chunk)(experiment, c, seed, context, me) for c in chunks)
    else:
        from distributed import as_completed  # start-up: distributed, only on Dask

        with dask_client(scheduler, client, jobs, processes) as c:
            ctx = c.scatter([context], broadcast=True)[0]  # one copy per worker, not per task
            futures = c.map(run_chunk, [experiment] * len(chunks), chunks, seed=seed, context=ctx,
                            coordinator=me, pure=False)
            try:
                for f in as_completed(futures):
                    yield f.result()
            finally:
                c.cancel(futures)
