"""Human-readable record of every prompt and answer in the run directory.

``<log_dir>/prompts/<seq>_<tag>.md`` holds the messages as sent; ``<log_dir>/responses/<seq>_<tag>_<i>.md``
holds each answer in the replay format (``langprop.llm.replay``), so a run's ``responses/`` directory can
be replayed as it is. Sequence numbers continue after the largest one already on disk (resumed runs).
"""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path
from typing import Any

from langprop.llm.base import Message
from langprop.llm.replay import next_sequence_number, write_answer_file, write_text_no_fsync

__all__ = ["Transcript", "safe_tag"]


def safe_tag(tag: str) -> str:
    """A tag usable in a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", tag).strip("-")[:80] or "prompt"


def render_prompt(messages: list[Message], header: dict[str, Any]) -> str:
    lines = [f"# Prompt {header.get('seq', '')} · {header.get('tag', '')}", ""]
    lines += [f"- {k}: {json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}" for k, v in header.items()]
    for msg in messages:
        lines += ["", f"## {msg.get('role', 'user')}", "", msg.get("content") or ""]
    return "\n".join(lines) + "\n"


class Transcript:
    """Writes prompt/answer files under one directory with a shared, monotonically growing sequence."""

    def __init__(self, root: str | Path, *, prompts: bool = True, subdir: str = "responses") -> None:
        self.root = Path(root)
        self.prompts = prompts
        self.prompt_dir = self.root / "prompts"
        self.response_dir = self.root / subdir if subdir else self.root
        self._lock = threading.Lock()
        self._next = max(next_sequence_number(self.prompt_dir), next_sequence_number(self.response_dir))

    @property
    def next_seq(self) -> int:
        return self._next

    def advance_to(self, seq: int) -> None:
        with self._lock:
            self._next = max(self._next, int(seq))

    def allocate(self, count: int) -> list[int]:
        with self._lock:
            start = self._next
            self._next += count
        return list(range(start, start + count))

    def write_prompt(self, seq: int, tag: str, messages: list[Message], header: dict[str, Any]) -> str | None:
        if not self.prompts:
            return None
        path = self.prompt_dir / f"{seq:06d}_{safe_tag(tag)}.md"
        write_text_no_fsync(path, render_prompt(messages, {"seq": f"{seq:06d}", "tag": tag, **header}))
        return str(path)

    def write_answer(self, seq: int, tag: str, index: int, text: str, meta: dict[str, Any]) -> str:
        path = self.response_dir / f"{seq:06d}_{safe_tag(tag)}_{index}.md"
        write_answer_file(path, text, {"tag": tag, "index": index, "seq": seq, **meta})
        return str(path)
