"""Policies: the trainable parameters of LangProp are Python source code.

``PolicySpec`` names the function the LLM must write; ``Policy`` is one candidate (source plus
lineage); ``extract_code`` turns an LLM answer into source, raising ``NoCodeError`` (a scored
failure with a ``reason``, never a crash) when the answer holds no usable code.
"""

from __future__ import annotations

import ast
import hashlib
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

__all__ = [
    "PolicySpec",
    "Policy",
    "NoCodeError",
    "extract_code",
    "defines_name",
    "make_policy_id",
    "load_in_process",
]

_PYTHON_TAGS = {"python", "py", "python3", "py3"}
# An opening fence: optional indentation, 3+ backticks, an optional info string (language tag).
_FENCE_OPEN = re.compile(r"^[ \t]*(?P<ticks>`{3,})[ \t]*(?P<info>[^`\n]*?)[ \t]*$")
_ID_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class PolicySpec:
    """The function the LLM must define.

    ``signature`` is the full ``def`` line (type hints included) and ``docstring`` says what the
    function must do; both are rendered verbatim into the setup and update prompts.
    """

    name: str
    signature: str
    docstring: str

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"PolicySpec.name must be a Python identifier, got {self.name!r}")

    def stub(self) -> str:
        """The signature with its docstring, as a Python stub (useful in prompts)."""
        doc = self.docstring.strip().replace('"""', r"\"\"\"")
        body = "\n".join(("    " + line) if line else "" for line in doc.splitlines())
        return f'{self.signature.rstrip().rstrip(":")}:\n    """\n{body}\n    """\n'


class NoCodeError(ValueError):
    """The answer holds no usable code; ``reason`` is a short human-readable explanation.

    The trainer scores such an answer as a failure and shows the reason in logs; it is not a crash.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Policy:
    """One candidate policy: its source and where it came from.

    ``id`` is unique, stable and filesystem-safe (used as the checkpoint file name); see
    :func:`make_policy_id`. ``model`` is the LLM model name, or ``"hand-written"``.
    """

    id: str
    source: str
    generation: int = 0
    parent_id: str | None = None
    model: str | None = None
    prompt_file: str | None = None
    response_file: str | None = None
    created_step: int = 0

    def __post_init__(self) -> None:
        if not _ID_SAFE.match(self.id) or self.id in {".", ".."}:
            raise ValueError(f"Policy.id must be filesystem-safe ([A-Za-z0-9_.-]), got {self.id!r}")

    @property
    def source_hash(self) -> str:
        """sha256 hex digest of the source (the evaluation cache key)."""
        return hashlib.sha256(self.source.encode("utf-8")).hexdigest()

    def lineage(self) -> dict[str, Any]:
        """Everything except the source: where this policy came from."""
        record = asdict(self)
        record.pop("source")
        record["source_hash"] = self.source_hash
        return record

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Policy:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def make_policy_id(generation: int, index: int) -> str:
    """The canonical policy id, e.g. ``make_policy_id(3, 7) == "g003_0007"``."""
    return f"g{generation:03d}_{index:04d}"


def _fenced_blocks(answer: str) -> list[tuple[str, str, bool]]:
    """(language tag, body, terminated) for every fenced block, in order.

    A block closes at a line holding only backticks, at least as many as opened it. A block still
    open at the end of the answer is returned with ``terminated=False`` (servers often stop at
    ``"\\n```"`` so the closing fence never arrives).
    """
    blocks: list[tuple[str, str, bool]] = []
    lines = answer.splitlines()
    i = 0
    while i < len(lines):
        match = _FENCE_OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        ticks = len(match.group("ticks"))
        tag = match.group("info").split()[0].lower() if match.group("info").strip() else ""
        body: list[str] = []
        i += 1
        terminated = False
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped and set(stripped) == {"`"} and len(stripped) >= ticks:
                terminated = True
                i += 1
                break
            body.append(lines[i])
            i += 1
        blocks.append((tag, "\n".join(body), terminated))
    return blocks


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names bound at module level, looking inside if/try/with blocks but not into defs."""
    names: set[str] = set()
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.If | ast.Try | ast.With | ast.For | ast.While):
            for attr in ("body", "orelse", "finalbody"):
                stack.extend(getattr(node, attr, []) or [])
            for handler in getattr(node, "handlers", []) or []:
                stack.extend(handler.body)
    return names


def defines_name(source: str, name: str) -> bool | None:
    """True/False whether ``source`` binds ``name`` at module level; None on a syntax error."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    return name in _top_level_names(tree)


def extract_code(answer: str, spec: PolicySpec | None = None) -> str:
    """Extract policy source from an LLM answer.

    Rules, in order:

    1. Fenced blocks tagged ``python``/``py``/``python3`` are concatenated (blank line between);
       if there are none, untagged (bare ```` ``` ````) blocks are used instead. Blocks tagged with
       another language (``json``, ``bash``...) are never code. An unterminated final block is
       accepted.
    2. With no fences at all, an answer that parses as Python and defines a function is taken
       as-is (small models sometimes reply with bare code).
    3. If ``spec`` is given and the code parses, it must bind ``spec.name`` at module level.
       Code that does not parse is returned unchanged: a syntax error is a *scored* failure that
       the sandbox reports with its traceback, not an extraction error.

    Raises :class:`NoCodeError` with a ``reason`` when nothing usable is found.
    """
    if not answer or not answer.strip():
        raise NoCodeError("empty answer")
    blocks = _fenced_blocks(answer)
    tagged = [body for tag, body, _ in blocks if tag in _PYTHON_TAGS]
    bare = [body for tag, body, _ in blocks if tag == ""]
    chosen = tagged or bare
    if chosen:
        code = "\n\n".join(body.strip("\n") for body in chosen if body.strip())
        if not code.strip():
            raise NoCodeError("the ```python block is empty")
    elif blocks:
        langs = sorted({tag for tag, _, _ in blocks})
        raise NoCodeError(f"no ```python block (only blocks tagged {', '.join(langs)})")
    else:
        code = answer.strip("\n")
        try:
            tree = ast.parse(code)
        except SyntaxError:
            raise NoCodeError("no ```python block in the answer") from None
        if not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) for n in tree.body):
            raise NoCodeError("no ```python block in the answer")
    code = code.rstrip() + "\n"
    if spec is not None and defines_name(code, spec.name) is False:
        raise NoCodeError(f"the code does not define {spec.name}")
    return code


def load_in_process(source: str, function_name: str, filename: str = "<policy>") -> Callable[..., Any]:
    """Compile ``source`` and return ``function_name`` from it, in THIS process.

    This ``exec``s the code with full privileges: use it only for policies you trust (ones you
    reviewed, e.g. the best policy of your own checkpoint). Untrusted candidates go through
    ``langprop.sandbox``. Raises ``NameError`` if the function is not defined and ``TypeError`` if
    the name is bound to something that is not callable.
    """
    namespace: dict[str, Any] = {"__name__": f"langprop_policy_{function_name}"}
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - trusted code by contract
    if function_name not in namespace:
        raise NameError(f"{filename} does not define {function_name}")
    function = namespace[function_name]
    if not callable(function):
        raise TypeError(f"{filename}: {function_name} is not callable")
    return function
