"""Prompt templates: sandboxed Jinja2 with chat-role sections.

A template is a ``.j2`` data file. Templates are looked up in the user's directories first, then
in the package's ``templates/`` directory, so a task can override ``update.j2`` outright or add
its own partials. The package originals are always reachable under the ``langprop/`` prefix
(``{% extends "langprop/update.j2" %}``), so an override can extend the file it replaces.

Role sections::

    {% role "system" %}You write Python.{% endrole %}
    Solve this task...                      <- text outside any section goes to "user"
    {% role "assistant" %}```python ...```{% endrole %}

``render`` returns ``[{"role": ..., "content": ...}, ...]`` in template order; each content is
stripped, empty messages are dropped, and adjacent messages of the same role are merged (joined
with a blank line) so the result always alternates. Sections may come from included templates;
nesting sections is an error.

Templates run in Jinja2's ``ImmutableSandboxedEnvironment`` (no ``__dunder__``/private attribute
access, no mutation of context lists/dicts) with ``StrictUndefined`` (a missing variable is an
error, not silent empty text). Every failure surfaces as :class:`PromptError` naming the template.
"""

from __future__ import annotations

import pprint
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

__all__ = [
    "ROLES",
    "PACKAGE_TEMPLATE_DIR",
    "Message",
    "PromptError",
    "PromptTemplate",
    "make_environment",
    "show",
]

ROLES = ("system", "user", "assistant")
PACKAGE_TEMPLATE_DIR = Path(__file__).resolve().parent / "templates"
Message = dict[str, str]


class PromptError(RuntimeError):
    """A template could not be found, parsed or rendered; the message names the template."""


# -- filters available in every template --------------------------------------------------------
def show(value: Any, max_chars: int = 2000, width: int = 100) -> str:
    """A readable, bounded rendering of any value: strings as-is, the rest pretty-printed."""
    text = value if isinstance(value, str) else pprint.pformat(value, width=width, sort_dicts=False)
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n... [truncated, {len(text) - max_chars} more characters]"
    return text


def tail_lines(text: str | None, n: int = 15) -> str:
    """The last ``n`` lines of ``text`` (e.g. a traceback tail); '' for None."""
    if not text:
        return ""
    lines = str(text).rstrip("\n").splitlines()
    return "\n".join(lines[-n:]) if len(lines) > n else "\n".join(lines)


def fence(code: str, lang: str = "python") -> str:
    """Wrap text in a fenced block, lengthening the fence if the text itself contains one."""
    ticks = "```"
    while ticks in str(code):
        ticks += "`"
    return f"{ticks}{lang}\n{str(code).rstrip()}\n{ticks}"


# -- the {% role %} tag ---------------------------------------------------------------------------
class RoleExtension(Extension):
    """``{% role "system" %} ... {% endrole %}`` wraps its body in per-environment markers.

    The markers contain a random token drawn when the environment is built, so text coming from
    context values (e.g. a sample that happens to contain marker-like characters) cannot forge a
    role boundary.
    """

    tags = {"role"}

    def __init__(self, environment: jinja2.Environment) -> None:
        super().__init__(environment)
        environment.extend(langprop_role_token=secrets.token_hex(8))

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        role = parser.parse_expression()
        body = parser.parse_statements(("name:endrole",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_wrap", [role]), [], [], body).set_lineno(lineno)

    def _wrap(self, role: Any, caller: Any) -> str:
        if role not in ROLES:
            raise jinja2.TemplateRuntimeError(f"unknown role {role!r}; expected one of {ROLES}")
        token = self.environment.langprop_role_token  # type: ignore[attr-defined]
        return f"\x02{token}:{role}\x03{caller()}\x02{token}:end\x03"


def make_environment(search_path: Sequence[str | Path] | None = None) -> jinja2.Environment:
    """The sandboxed environment: user dirs first, then package templates; ``langprop/`` prefix
    always resolves to the package originals."""
    user_dirs = [str(Path(p)) for p in (search_path or [])]
    for directory in user_dirs:
        if not Path(directory).is_dir():
            raise PromptError(f"template directory not found: {directory}")
    loader = jinja2.ChoiceLoader(
        [
            jinja2.FileSystemLoader([*user_dirs, str(PACKAGE_TEMPLATE_DIR)]),
            jinja2.PrefixLoader({"langprop": jinja2.FileSystemLoader(str(PACKAGE_TEMPLATE_DIR))}),
        ]
    )
    env = ImmutableSandboxedEnvironment(
        loader=loader,
        undefined=jinja2.StrictUndefined,
        extensions=[RoleExtension],
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters.update(show=show, tail_lines=tail_lines, fence=fence)
    return env


def _tidy(content: str) -> str:
    """Strip, and collapse runs of blank lines outside fenced blocks (templates stay readable
    without whitespace-control gymnastics; code inside fences is left byte-for-byte)."""
    out: list[str] = []
    fence_ticks = ""
    blank_run = 0
    for line in content.strip().splitlines():
        stripped = line.strip()
        if fence_ticks:
            if stripped.startswith(fence_ticks) and set(stripped) == {"`"}:
                fence_ticks = ""
            out.append(line)
            continue
        if stripped.startswith("```"):
            fence_ticks = stripped[: len(stripped) - len(stripped.lstrip("`"))]
        if not stripped:
            blank_run += 1
            if blank_run > 1:
                continue
        else:
            blank_run = 0
        out.append(line.rstrip())
    return "\n".join(out)


def _split_roles(text: str, token: str, template_name: str) -> list[Message]:
    marker = re.compile(r"\x02" + re.escape(token) + r":(system|user|assistant|end)\x03")
    messages: list[Message] = []
    current_role: str | None = None
    position = 0

    def emit(role: str, content: str) -> None:
        content = _tidy(content)
        if not content:
            return
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"] += "\n\n" + content
        else:
            messages.append({"role": role, "content": content})

    for match in marker.finditer(text):
        emit(current_role or "user", text[position : match.start()])
        position = match.end()
        tag = match.group(1)
        if tag == "end":
            current_role = None
        elif current_role is not None:
            raise PromptError(f"{template_name}: role section {tag!r} nested inside {current_role!r}")
        else:
            current_role = tag
    emit("user", text[position:])
    return messages


class PromptTemplate:
    """A named template (e.g. ``"update.j2"``) looked up on ``search_path`` then the package."""

    def __init__(self, name: str, search_path: Sequence[str | Path] | None = None) -> None:
        self.name = name
        self.search_path = [Path(p) for p in (search_path or [])]
        self._env = make_environment(self.search_path)
        try:
            self._template = self._env.get_template(name)
        except jinja2.TemplateNotFound as exc:
            searched = [*map(str, self.search_path), str(PACKAGE_TEMPLATE_DIR)]
            raise PromptError(f"template {exc.name!r} not found in {searched}") from None
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"{exc.filename or exc.name or name}:{exc.lineno}: {exc.message}") from None

    @classmethod
    def from_string(
        cls, source: str, search_path: Sequence[str | Path] | None = None, name: str = "<string>"
    ) -> PromptTemplate:
        """A template from text (it may still include/extend files on ``search_path``)."""
        self = cls.__new__(cls)
        self.name = name
        self.search_path = [Path(p) for p in (search_path or [])]
        self._env = make_environment(self.search_path)
        try:
            self._template = self._env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise PromptError(f"{name}:{exc.lineno}: {exc.message}") from None
        return self

    @property
    def filename(self) -> str | None:
        """Path of the file this template was loaded from (None for string templates)."""
        return self._template.filename

    def render_text(self, **context: Any) -> str:
        """The raw rendered text (role markers included); mainly for debugging."""
        try:
            return self._template.render(**context)
        except SecurityError as exc:
            raise PromptError(f"{self.name}: unsafe operation blocked by the sandbox: {exc}") from None
        except jinja2.UndefinedError as exc:
            raise PromptError(f"{self.name}: missing or invalid template variable: {exc.message}") from None
        except jinja2.TemplateNotFound as exc:
            raise PromptError(f"{self.name}: included template {exc.name!r} not found") from None
        except jinja2.TemplateError as exc:
            raise PromptError(f"{self.name}: {type(exc).__name__}: {exc}") from None
        except Exception as exc:  # e.g. a TypeError from a filter: still a template problem
            raise PromptError(f"{self.name}: error while rendering: {type(exc).__name__}: {exc}") from exc

    def render(self, **context: Any) -> list[Message]:
        """Render to chat messages (see module docstring for the role rules)."""
        text = self.render_text(**context)
        messages = _split_roles(text, self._env.langprop_role_token, self.name)  # type: ignore[attr-defined]
        if not messages:
            raise PromptError(f"{self.name}: rendered to no messages (empty template?)")
        return messages
