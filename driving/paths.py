"""Output folders the command lines write into, checked before any work starts."""

from __future__ import annotations

import os
from pathlib import Path


class OutputPathError(ValueError):
    """An output folder that cannot be created or written; the message names it."""


def prepare_output_dir(path: str | Path, what: str) -> Path:
    """Create ``path`` (and its parents) as a writable directory, or raise ``OutputPathError``
    whose message starts with ``what`` (e.g. ``--out``) and names the path."""
    directory = Path(path)
    if directory.exists() and not directory.is_dir():
        raise OutputPathError(f"{what} {directory}: exists and is not a directory")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a parent is a file
        raise OutputPathError(f"{what} {directory}: cannot create it, a parent path is not a directory") from None
    except OSError as exc:
        raise OutputPathError(f"{what} {directory}: cannot create it: {exc.strerror or exc}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {directory}: directory is not writable")
    return directory
