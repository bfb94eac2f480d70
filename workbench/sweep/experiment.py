"""What a sweep runs at each point: the :class:`Experiment` interface.

An :class:`Experiment` names itself (the name keys the cache and the seed
streams), lists its parameters with their defaults, normalises and checks a
point, prepares read-only data every point needs, and runs one point.
:class:`FunctionExperiment` wraps a plain function. The sweep engine
(:mod:`workbench.sweep.engine`) receives its experiment; it holds none of
its own (the race simulator's is :data:`workbench.race.experiment.RACE`).
"""

from __future__ import annotations

import json

from workbench.base.errors import ConfigError

__all__ = ["Experiment", "FunctionExperiment"]


class Experiment:
    """What a sweep runs at each point. Subclass and fill in :meth:`run`.

    ``name`` keys the cache and the seed streams; ``parameters`` maps every
    accepted parameter to its default. :meth:`normalize` resolves a point to
    concrete values (raising :class:`ConfigError` for bad ones);
    :meth:`prepare` runs once in the coordinating process and returns
    read-only data every point needs (shipped to the workers);
    :meth:`run` computes one point and returns a dict (one row) or a frame.
    """

    name = "experiment"
    parameters: dict = {}
    #: parameter -> the name its value is hashed under in the point's random stream (a renamed
    #: parameter keeps its points' streams, and so their numbers)
    stream_names: dict[str, str] = {}

    def normalize(self, params: dict) -> dict:
        """Defaults filled in and values checked; the result keys the cache."""
        unknown = [k for k in params if k not in self.parameters]
        if unknown:
            raise ConfigError(f"{unknown[0]}: unknown sweep parameter for {self.name}; choose from "
                              + ", ".join(self.parameters))
        return {**self.parameters, **params}

    def stream_params(self, params: dict) -> dict:
        """*params* (normalised) under the names its random stream is hashed with (:attr:`stream_names`)."""
        return {self.stream_names.get(k, k): v for k, v in params.items()}

    def prepare(self, points: list[dict], progress: bool = True):
        """Shared read-only context for *points* (default: none)."""
        return None

    def run(self, params: dict, seed: int, stream: int, context):  # pragma: no cover - abstract
        raise NotImplementedError

    def tally(self, rows: list[dict]) -> dict:
        """Counts a finished point adds to the progress bar's running totals (default: none)."""
        return {}

    def columns(self, params: dict) -> dict:
        """The parameter columns a point's rows start with (scalars only)."""
        return {k: (v if v is None or isinstance(v, (bool, int, float, str)) else
                    json.dumps(v, sort_keys=True)) for k, v in params.items()}


class FunctionExperiment(Experiment):
    """An experiment from a plain function ``fn(params, seed, stream, context)``.

    *parameters* maps each accepted parameter to its default. For the
    ``local`` and ``dask`` backends *fn* must be importable by the workers
    (a module-level function).
    """

    def __init__(self, name: str, fn, parameters: dict):
        self.name, self.fn, self.parameters = name, fn, dict(parameters)

    def run(self, params, seed, stream, context):
        return self.fn(params, seed, stream, context)
