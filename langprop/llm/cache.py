"""Disk cache of answers: sqlite in WAL mode, safe to share between threads and processes.

Keyed by (model, messages, sampling parameters, answer index), so asking again for the same prompt
with the same parameters returns the same answers without a request, and asking for more answers
than before only requests the missing indices.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from langprop.llm.base import Completion, LLMConfigError, Message

__all__ = ["AnswerCache", "cache_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    answer_index INTEGER NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
)
"""


def cache_key(model: str, messages: list[Message], params: dict[str, Any], index: int) -> str:
    """Stable sha256 of everything that determines one answer."""
    payload = json.dumps(
        {"model": model, "messages": messages, "params": params, "index": index},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class AnswerCache:
    """sqlite-backed answer store. One connection guarded by a lock per instance; WAL + busy timeout
    let several processes (e.g. Hydra multirun jobs) share the file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), timeout=60.0, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute(_SCHEMA)
            self._conn.commit()
        except (OSError, sqlite3.Error) as exc:
            raise LLMConfigError(f"llm.cache_path: cannot open answer cache {self.path}: {exc}") from exc
        self._lock = threading.Lock()

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, finish_reason, completion_tokens, model FROM answers WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        return Completion(text=row[0], finish_reason=row[1], completion_tokens=int(row[2]), model=row[3])

    def put(self, key: str, index: int, completion: Completion, model: str) -> Completion:
        """Store an answer; returns the stored one (another process may have stored the key first)."""
        with self._lock:
            # INSERT OR IGNORE: the first answer stored for a key wins, so concurrent writers agree.
            self._conn.execute(
                "INSERT OR IGNORE INTO answers VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    completion.model or model,
                    index,
                    completion.text,
                    completion.finish_reason,
                    completion.completion_tokens,
                    time.time(),
                ),
            )
            self._conn.commit()
        return self.get(key) or completion

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
