"""Errors the workbench raises for bad input.

Every user-facing mistake (an unknown function, a negative rate, a malformed
scenario file) raises :class:`ConfigError` with a one-line message that names
the parameter and its valid range or choices. The command line turns it into
``error: <message>`` on stderr and exit status 2, never a traceback.
"""

__all__ = ["ConfigError", "check_choice", "check_range"]


class ConfigError(ValueError):
    """A parameter is outside its valid range or choices."""


def check_choice(name, value, choices):
    """Return *value* if it is one of *choices*, else raise :class:`ConfigError`."""
    choices = list(choices)
    if value not in choices:
        shown = ", ".join(map(str, choices[:12])) + (", ..." if len(choices) > 12 else "")
        raise ConfigError(f"{name}: unknown value {value!r}; choose from {shown}")
    return value


def check_range(name, value, lo=None, hi=None, *, integer=False):
    """Return *value* (as float, or int if *integer*) if ``lo <= value <= hi`` (either bound optional).

    Raises :class:`ConfigError` for NaN, a bool, a non-number, an integer
    parameter given a fractional or infinite value, or a value out of range.
    """
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool):  # True is 1 to Python, never a count or a rate to a user
        raise ConfigError(f"{name}: expected {kind}, got {value!r}")
    try:
        v = int(value) if integer else float(value)
    except OverflowError:  # int(inf)
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ConfigError(f"{name}: {value!r} is outside the valid range {rng}") from None
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected {kind}, got {value!r}") from None
    if integer and v != value and not isinstance(value, str):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if v != v or (lo is not None and v < lo) or (hi is not None and v > hi):
        rng = f"[{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}]"
        raise ConfigError(f"{name}: {value!r} is outside the valid range {rng}")
    return v
