"""Replay backend: serves recorded answers from human-editable files, deterministically.

Two file shapes, freely mixed in one directory (files are read in name order):

* **Markdown answer files** (``*.md``), one answer each — what the recorder and the run log write::

      ---
      tag: update            # optional: the request tag must start with this
      contains: solve_sudoku # optional: substring (or list of substrings) of the last user message
      prompt_sha256: 3f2a... # optional: exact prompt (written by the recorder; delete it to loosen)
      repeat: false          # optional: serve forever instead of once
      ---
      ```python
      def solve_sudoku(...): ...
      ```

* **YAML files** (``*.yaml``/``*.yml``) holding many entries and an optional fallback answer::

      default: "```python\\ndef f(): pass\\n```"   # optional: served when nothing matches
      entries:
        - tag: setup
          contains: "sudoku"
          answers: ["```python\\n...```", "..."]     # served in order, one per answer
        - tag: update
          repeat: true
          answer: "..."

For every answer requested, the first entry (in file order) that matches and is not used up is served.
When none is left the default answer is used (file ``default:`` or ``llm.replay_default``); without one,
ReplayMissError names the files, the tag and the start of the prompt.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from langprop.atomic import atomic_write_text
from langprop.llm.base import BackendResult, Completion, LLMConfigError, Message, ReplayMissError
from langprop.llm.budget import UsageMeter, estimate_prompt_tokens

__all__ = [
    "ReplayEntry",
    "ReplayBackend",
    "load_replay",
    "prompt_sha256",
    "write_answer_file",
    "read_answer_file",
    "next_sequence_number",
    "write_text_no_fsync",
]

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?\n)?---[ \t]*\n", re.DOTALL)
_ENTRY_KEYS = {"tag", "contains", "prompt_sha256", "repeat", "answer", "answers", "model", "index",
               "seq", "prompt_tokens", "completion_tokens", "finish_reason", "cached", "prompt_file"}


def prompt_sha256(messages: list[Message]) -> str:
    """Identity of an exact prompt (the messages as sent, including any prefix messages)."""
    payload = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _last_user_message(messages: list[Message]) -> str:
    for msg in reversed(messages):
        if msg.get("role") == "user":
            return msg.get("content") or ""
    return ""


@dataclass
class ReplayEntry:
    answers: list[str]
    source: str  # "file" or "file#entries[3]", for error messages
    tag: str | None = None
    contains: list[str] = field(default_factory=list)
    prompt_sha256: str | None = None
    repeat: bool = False
    model: str | None = None
    completion_tokens: int | None = None
    served: int = 0

    def matches(self, tag: str, last_user: str, sha: str) -> bool:
        if self.tag is not None and not tag.startswith(self.tag):
            return False
        if self.prompt_sha256 is not None and self.prompt_sha256 != sha:
            return False
        return all(s in last_user for s in self.contains)

    @property
    def used_up(self) -> bool:
        return not self.repeat and self.served >= len(self.answers)

    def take(self) -> str:
        text = self.answers[self.served % len(self.answers)]
        self.served += 1
        return text


# -- reading ----------------------------------------------------------------------------------------
def read_answer_file(path: str | Path) -> tuple[dict[str, Any], str]:
    """(front matter, body) of a markdown answer file; the body is returned exactly as stored."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise LLMConfigError(f"{path}: cannot read replay file: {exc}") from exc
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    try:
        meta = yaml.safe_load(match.group(1) or "") or {}
    except yaml.YAMLError as exc:
        raise LLMConfigError(f"{path}: bad YAML front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise LLMConfigError(f"{path}: front matter must be a mapping of keys to values")
    return meta, text[match.end():]


def _entry_from_mapping(data: dict[str, Any], source: str, body: str | None = None) -> ReplayEntry:
    unknown = set(data) - _ENTRY_KEYS
    if unknown:
        raise LLMConfigError(f"{source}: unknown key(s) {sorted(unknown)} (allowed: {sorted(_ENTRY_KEYS)})")
    if body is not None:
        answers = [body]
    elif "answers" in data:
        answers = data["answers"]
    elif "answer" in data:
        answers = [data["answer"]]
    else:
        raise LLMConfigError(f"{source}: entry needs 'answer' or 'answers'")
    if not isinstance(answers, list) or not answers or not all(isinstance(a, str) for a in answers):
        raise LLMConfigError(f"{source}: 'answers' must be a non-empty list of strings")
    contains = data.get("contains")
    if contains is None:
        contains = []
    elif isinstance(contains, str):
        contains = [contains]
    elif not (isinstance(contains, list) and all(isinstance(c, str) for c in contains)):
        raise LLMConfigError(f"{source}: 'contains' must be a string or a list of strings")
    tag = data.get("tag")
    return ReplayEntry(
        answers=list(answers),
        source=source,
        tag=None if tag is None else str(tag),
        contains=list(contains),
        prompt_sha256=data.get("prompt_sha256"),
        repeat=bool(data.get("repeat", False)),
        model=data.get("model"),
        completion_tokens=data.get("completion_tokens") if len(answers) == 1 else None,
    )


def _load_yaml(path: Path) -> tuple[list[ReplayEntry], str | None]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise LLMConfigError(f"{path}: cannot read replay file: {exc}") from exc
    default = None
    if isinstance(data, dict):
        unknown = set(data) - {"entries", "default"}
        if unknown:
            raise LLMConfigError(f"{path}: unknown top-level key(s) {sorted(unknown)} (allowed: default, entries)")
        default = data.get("default")
        if default is not None and not isinstance(default, str):
            raise LLMConfigError(f"{path}: 'default' must be a string")
        data = data.get("entries") or []
    if not isinstance(data, list):
        raise LLMConfigError(f"{path}: expected a list of entries or a mapping with 'entries'")
    entries = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise LLMConfigError(f"{path}#entries[{i}]: each entry must be a mapping")
        entries.append(_entry_from_mapping(item, f"{path}#entries[{i}]"))
    return entries, default


def load_replay(path: str | Path) -> tuple[list[ReplayEntry], str | None]:
    """All entries (in order) and the file-level default answer from a file or a directory."""
    root = Path(path)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".md", ".yaml", ".yml") and p.is_file())
    elif root.is_file():
        files = [root]
    else:
        raise LLMConfigError(f"llm.replay_path: {root} does not exist")
    entries: list[ReplayEntry] = []
    default: str | None = None
    for file in files:
        if file.suffix == ".md":
            meta, body = read_answer_file(file)
            entries.append(_entry_from_mapping(meta, str(file), body=body))
        else:
            more, file_default = _load_yaml(file)
            entries.extend(more)
            default = default if file_default is None else file_default
    return entries, default


# -- writing ----------------------------------------------------------------------------------------
def write_text_no_fsync(path: str | Path, text: str) -> Path:
    """Write via a temp file and rename: never torn, but not fsync'ed. For transcripts, where the
    ~5 ms of two fsyncs per file would dominate a warm-cache run and losing the last lines on a
    power cut is acceptable (checkpoints use langprop.atomic)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)
    return target


def write_answer_file(path: str | Path, text: str, meta: dict[str, Any], *, durable: bool = False) -> Path:
    """Write one answer in the markdown replay format (atomically; fsync'ed when ``durable``)."""
    header = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    content = f"---\n{header}---\n{text}"
    return atomic_write_text(path, content) if durable else write_text_no_fsync(path, content)


def next_sequence_number(directory: str | Path) -> int:
    """One past the largest leading number of the files in ``directory`` (0 when empty)."""
    best = -1
    root = Path(directory)
    if root.is_dir():
        for p in root.iterdir():
            head = p.name.split("_", 1)[0]
            if head.isdigit():
                best = max(best, int(head))
    return best + 1


# -- backend ----------------------------------------------------------------------------------------
class ReplayBackend:
    """Serves recorded answers in file order; never touches the network."""

    name = "replay"
    concurrent = False  # answers are handed out in prompt order so replays are deterministic
    n_supported = True

    def __init__(self, path: str | Path, meter: UsageMeter, model: str = "replay", default: str | None = None):
        self.path = Path(path)
        self.entries, file_default = load_replay(self.path)
        self.default = default if default is not None else file_default
        self.model = model
        self.meter = meter
        self._lock = threading.Lock()

    def describe(self) -> str:
        return f"replay {self.path}"

    def complete(self, messages: list[Message], n: int, *, tag: str, seed: int | None) -> BackendResult:
        last_user = _last_user_message(messages)
        sha = prompt_sha256(messages)
        completions = []
        with self._lock:
            for _ in range(n):
                entry = next((e for e in self.entries if not e.used_up and e.matches(tag, last_user, sha)), None)
                if entry is not None:
                    text = entry.take()
                    tokens = entry.completion_tokens if entry.completion_tokens is not None else len(text) // 4
                    completions.append(Completion(text, "stop", int(tokens), entry.model or self.model))
                elif self.default is not None:
                    completions.append(Completion(self.default, "stop", len(self.default) // 4, self.model))
                else:
                    raise ReplayMissError(self._miss_message(tag, last_user, sha))
        prompt_tokens = estimate_prompt_tokens(messages)
        completion_tokens = sum(c.completion_tokens for c in completions)
        self.meter.add(model=self.model, calls=1, requests=1,
                       prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)
        return BackendResult(completions, prompt_tokens, completion_tokens, requests=1)

    def _miss_message(self, tag: str, last_user: str, sha: str) -> str:
        used = sum(1 for e in self.entries if e.used_up and e.matches(tag, last_user, sha))
        snippet = " ".join(last_user.split())[:80]
        why = f"{used} matching entr{'y is' if used == 1 else 'ies are'} used up" if used else "no entry matches"
        return (
            f"replay {self.path}: no recorded answer for tag {tag!r} (last user message: {snippet!r}); {why}. "
            "Add an entry (tag / contains / repeat: true) or set llm.replay_default."
        )

    def close(self) -> None:
        pass
