"""Prompt rendering: sandboxed Jinja2 templates with chat-role sections (see ``template.py``)
and the documented context of the generic ``setup.j2`` / ``update.j2`` (see ``context.py``)."""

from langprop.prompts.context import (
    Example,
    FailureExample,
    HistoryEntry,
    failure_from_evaluation,
    outputs_identical,
    select_failures,
    setup_context,
    update_context,
)
from langprop.prompts.template import (
    PACKAGE_TEMPLATE_DIR,
    ROLES,
    Message,
    PromptError,
    PromptTemplate,
    make_environment,
    show,
)

__all__ = [
    "PACKAGE_TEMPLATE_DIR",
    "ROLES",
    "Example",
    "FailureExample",
    "HistoryEntry",
    "Message",
    "PromptError",
    "PromptTemplate",
    "failure_from_evaluation",
    "make_environment",
    "outputs_identical",
    "select_failures",
    "setup_context",
    "show",
    "update_context",
]
