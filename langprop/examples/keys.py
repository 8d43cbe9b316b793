"""Sample keys that change whenever a sample's content changes.

The evaluation cache is keyed by (policy source hash, sample key, scorer version), so a sample key
must identify the sample's *content*: two samples with the same key must have the same inputs and
the same expected value. Keys built here end with a short digest of both, so changing any task
option that alters a sample (clue fraction, sizes, step limit, seed...) can never reuse old scores.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

__all__ = ["content_digest", "sample_key"]


def content_digest(inputs: Any, expected: Any = None, length: int = 12) -> str:
    """A short hex SHA-256 of ``inputs`` and ``expected`` (canonical JSON; numpy values via ``tolist``)."""

    def default(value: Any) -> Any:
        tolist = getattr(value, "tolist", None)
        if callable(tolist):
            return tolist()
        raise TypeError(f"cannot digest a {type(value).__name__}")

    payload = json.dumps([inputs, expected], sort_keys=True, separators=(",", ":"), default=default)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:length]


def sample_key(prefix: str, inputs: Any, expected: Any = None) -> str:
    """``<prefix>/<digest of inputs+expected>``: a readable prefix, and a content identity."""
    return f"{prefix}/{content_digest(inputs, expected)}"
