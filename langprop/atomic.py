"""Crash-safe file writes: the one helper for every file that must never be seen half-written.

Each write goes to a temporary file in the *same* directory (so the rename cannot cross a
filesystem), is flushed and fsync'ed, then ``os.replace``'d over the target, and finally the
directory itself is fsync'ed so the rename survives a power cut. A reader therefore sees either
the old content or the new content, never a torn mix.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "fsync_dir"]

# Checkpoints are meant to be read by people: temp files start 0600, so widen to the usual mode.
_FILE_MODE = 0o644


def fsync_dir(path: str | Path) -> None:
    """fsync a directory so renames/creations inside it are durable (no-op where unsupported)."""
    try:
        fd = os.open(str(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (and non-POSIX platforms) refuse fsync on directories
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int = _FILE_MODE) -> Path:
    """Write ``data`` to ``path`` atomically; creates parent directories. Returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see module docstring)."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(
    path: str | Path,
    obj: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Serialise ``obj`` as JSON and write it atomically; ends with a newline.

    Floats round-trip exactly (json uses ``repr``); NaN/Infinity are allowed because scores can be
    non-finite. Serialisation happens before the temp file is created, so an unserialisable object
    leaves the previous file untouched. ``default`` is passed to ``json.dumps``.
    """
    text = json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False, default=default)
    return atomic_write_text(path, text + "\n")
