"""Files the workbench reads from a user: regular files only, bounded in size and nesting depth.

Models no kernel file. Every file a user names (a scenario or ``sweep
--config`` TOML, a counterexample JSON for ``replay``) is read by
:func:`read_input` and parsed by :func:`parse_document`:

* only a regular file is read: a FIFO is never waited on and a device
  (``/dev/zero``) is never read until memory runs out (opened with
  ``O_NONBLOCK``, checked with ``fstat``);
* at most :data:`MAX_INPUT_BYTES` bytes: a larger file is refused before
  it is read whole;
* nested at most :data:`MAX_INPUT_DEPTH` levels (arrays and tables):
  a deeper document is refused instead of exhausting the parser's stack.

Each refusal is a :class:`~workbench.base.errors.ConfigError` naming the
file and the bound, one line, exit status 2 on the command line.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tomllib
from pathlib import Path

from workbench.base.errors import ConfigError

__all__ = ["MAX_INPUT_BYTES", "MAX_INPUT_DEPTH", "depth_of", "parse_document", "read_input"]

#: the largest input file read, in bytes (the shipped scenarios are under 2 KB,
#: a counterexample file under 20 KB)
MAX_INPUT_BYTES = 1 << 20
#: the deepest nesting of arrays and tables accepted in an input file (the
#: workbench's own files nest 3 deep)
MAX_INPUT_DEPTH = 16


def read_input(path: str | os.PathLike, what: str, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file *path*, at most *limit* of them; ConfigError naming *what* otherwise.

    A missing file, a directory, a FIFO, a device, an unreadable or an
    oversized file is refused in one line.
    """
    p = Path(path)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise ConfigError(f"{what}: no file {str(p)!r}") from None
    except OSError as exc:
        raise ConfigError(f"{what}: cannot read {str(p)!r} ({exc.strerror or exc}); give a regular file") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what}: cannot read {str(p)!r} (not a regular file); give a regular file")
        if st.st_size > limit:
            raise ConfigError(f"{what}: {str(p)!r} has {st.st_size} bytes, more than the {limit} an input "
                              "file may have")
        chunks, size = [], 0
        while size <= limit:
            try:
                b = os.read(fd, min(1 << 20, limit + 1 - size))
            except OSError as exc:
                reason = "not a regular file" if exc.errno == errno.EISDIR else (exc.strerror or str(exc))
                raise ConfigError(f"{what}: cannot read {str(p)!r} ({reason})") from None
            if not b:
                break
            chunks.append(b)
            size += len(b)
        if size > limit:  # grew while we read it
            raise ConfigError(f"{what}: {str(p)!r} has more than the {limit} bytes an input file may have")
        return b"".join(chunks)
    finally:
        os.close(fd)


def depth_of(doc: object) -> int:
    """How deep *doc* nests lists and dicts (a scalar is 0), without recursion."""
    deepest, stack = 0, [(doc, 0)]
    while stack:
        obj, d = stack.pop()
        if isinstance(obj, dict):
            obj = list(obj.values())
        if isinstance(obj, (list, tuple)):
            deepest = max(deepest, d + 1)
            if d + 1 <= MAX_INPUT_DEPTH:  # deeper than the bound is all we need to know
                stack.extend((v, d + 1) for v in obj)
    return deepest


def _bracket_depth(text: str) -> int:
    """An upper bound of the nesting of ``[``/``{`` in *text* (brackets inside strings count too)."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    return deepest


def parse_document(data: bytes, fmt: str, what: str) -> object:
    """*data* (UTF-8) parsed as ``"toml"`` or ``"json"``; ConfigError naming *what* for any defect.

    Refused: text that is not UTF-8, a syntax error, and nesting deeper
    than :data:`MAX_INPUT_DEPTH` (checked on the parsed document, and
    before parsing where the brackets alone nest far deeper than the
    parser's stack allows).
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    deep = ConfigError(f"{what}: nested deeper than {MAX_INPUT_DEPTH} levels of arrays and tables")
    if _bracket_depth(text) > 4 * MAX_INPUT_DEPTH + 64:  # far past any string's brackets: never parsed
        raise deep
    try:
        if fmt == "toml":
            doc = tomllib.loads(text)
        else:
            doc = json.loads(text)
    except RecursionError:
        raise deep from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what}: not valid TOML: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{what}: not valid JSON: {exc}") from None
    if depth_of(doc) > MAX_INPUT_DEPTH:
        raise deep
    return doc
