"""Checkpoints a person can read, written so that a crash never loses the previous one.

Layout::

    <dir>/latest                        text file naming the current step dir, written LAST
    <dir>/step_000123/index.json        step, ranked policies with priorities and tracker state,
                                        population state (lineage, RNG), resolved config, extra
    <dir>/step_000123/policies/<id>.py  each policy's source under a short comment header

Saving writes the step into a temporary sibling directory (every file via
:mod:`langprop.atomic`), renames it into place, and only then atomically rewrites ``latest``.
A crash at any point leaves ``latest`` naming a complete earlier step, which is what
:func:`load_checkpoint` follows. A ``.py`` file may be edited by hand: the edited source is used
(with a warning that it no longer matches the recorded hash).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import logging
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langprop.atomic import atomic_write_json, atomic_write_text, fsync_dir
from langprop.policy import Policy, PolicySpec, load_in_process
from langprop.population import Population

__all__ = [
    "CheckpointError",
    "CheckpointData",
    "save_checkpoint",
    "load_checkpoint",
    "load_best_policy",
    "list_checkpoints",
    "INDEX_NAME",
    "LATEST_NAME",
]

log = logging.getLogger(__name__)

FORMAT = "langprop-checkpoint"
FORMAT_VERSION = 1
INDEX_NAME = "index.json"
LATEST_NAME = "latest"
_SOURCE_MARKER = "# ---- langprop: policy source below this line ----"
_STEP_DIR = re.compile(r"^step_(\d+)$")


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt; the message names the file."""


@dataclass
class CheckpointData:
    """A loaded checkpoint. ``policies`` are in rank order (best first)."""

    path: Path
    step: int
    policies: list[Policy]
    priorities: dict[str, float]
    population_state: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    spec: PolicySpec | None = None

    @property
    def best(self) -> Policy:
        if not self.policies:
            raise CheckpointError(f"{self.path / INDEX_NAME}: the checkpoint holds no policies")
        return self.policies[0]

    def population(self) -> Population:
        """A :class:`Population` restored exactly as it was saved (trackers, lineage, RNG)."""
        try:
            return Population.from_state_dict(self.population_state)
        except ValueError as exc:
            raise CheckpointError(f"{self.path / INDEX_NAME}: {exc}") from exc


def _step_dir_name(step: int) -> str:
    return f"step_{step:06d}"


def _json_default(value: Any) -> Any:
    """Make common non-JSON values storable: numpy scalars/arrays, paths, sets, dataclasses."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _plain_config(config: Any) -> dict[str, Any]:
    """A resolved plain dict from a dict, dataclass or OmegaConf config."""
    if config is None:
        return {}
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        try:
            from omegaconf import OmegaConf

            return OmegaConf.to_container(config, resolve=True)  # type: ignore[return-value]
        except Exception as exc:
            raise CheckpointError(f"config of type {type(config).__name__} cannot be stored: {exc}") from exc
    return dict(config)


def _policy_file_text(policy: Policy, rank: int, n: int, priorities: dict[str, float], step: int) -> str:
    per_tracker = ", ".join(f"{name} {value:.6g}" for name, value in priorities.items())
    header = [
        f"# LangProp policy {policy.id}: generation {policy.generation}, parent {policy.parent_id or '-'}, "
        f"model {policy.model or '-'}",
        f"# priority {sum(priorities.values()):.6g} ({per_tracker}) at step {step}; rank {rank} of {n}",
        _SOURCE_MARKER,
    ]
    return "\n".join(header) + "\n" + policy.source


def _source_from_file(text: str) -> str:
    head, sep, rest = text.partition(_SOURCE_MARKER + "\n")
    return rest if sep else text


def list_checkpoints(directory: str | Path) -> list[Path]:
    """Complete-looking step directories (with an index file), oldest step first."""
    root = Path(directory)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / INDEX_NAME).is_file():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def save_checkpoint(
    directory: str | Path,
    step: int,
    population: Population,
    config: Any = None,
    extra: dict[str, Any] | None = None,
    *,
    spec: PolicySpec | None = None,
    keep_last: int | None = None,
) -> Path:
    """Save ``population`` as ``directory/step_<step>/`` and point ``directory/latest`` at it.

    ``config`` is the resolved run config (dict, dataclass or OmegaConf); ``extra`` is free-form
    JSON-able state for the trainer (RNG state, LLM usage, epoch/batch cursor...). ``spec`` records
    the function name so :func:`load_best_policy` needs no arguments. ``keep_last`` prunes older
    step dirs (the new one is never pruned). Re-saving an existing step replaces it. Returns the
    step directory.
    """
    if int(step) < 0:
        raise ValueError(f"checkpoint step must be >= 0, got {step}")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".step_*.tmp-*"):  # left by a crash mid-save
        shutil.rmtree(stale, ignore_errors=True)

    state = population.state_dict()
    order = state["order"]
    ranked = []
    for rank, pid in enumerate(order):
        policy = population.get(pid)
        trackers = state["trackers"][pid]
        per_tracker = {name: trackers[name]["priority"] for name in state["tracker_names"]}
        entry = {"rank": rank, "id": pid, "file": f"policies/{pid}.py", "priority": population.priority(pid)}
        entry["priorities"] = per_tracker
        entry.update(policy.lineage())
        entry["trackers"] = trackers
        ranked.append((policy, per_tracker, entry))

    population_state = {k: v for k, v in state.items() if k not in ("policies", "trackers", "order")}
    index = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "step": int(step),
        "saved_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "function_name": spec.name if spec else None,
        "spec": dataclasses.asdict(spec) if spec else None,
        "best": order[0] if order else None,
        "policies": [entry for _, _, entry in ranked],
        "population": population_state,
        "config": _plain_config(config),
        "extra": dict(extra or {}),
    }
    try:  # serialise before touching the disk: a bad value must not leave a half-made step
        json.dumps(index, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint index for step {step} is not JSON-serialisable: {exc}") from exc

    final = root / _step_dir_name(step)
    tmp = root / f".{final.name}.tmp-{secrets.token_hex(4)}"
    (tmp / "policies").mkdir(parents=True)
    for rank, (policy, per_tracker, _) in enumerate(ranked):
        text = _policy_file_text(policy, rank, len(ranked), per_tracker, step)
        atomic_write_text(tmp / "policies" / f"{policy.id}.py", text)
    atomic_write_json(tmp / INDEX_NAME, index, default=_json_default)
    fsync_dir(tmp)

    old = None
    if final.exists():
        old = root / f".{final.name}.old-{secrets.token_hex(4)}"
        os.replace(final, old)
    os.replace(tmp, final)
    fsync_dir(root)
    atomic_write_text(root / LATEST_NAME, final.name + "\n")  # the commit point
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    if keep_last is not None and keep_last > 0:
        for path in list_checkpoints(root)[:-keep_last]:
            if path != final:
                shutil.rmtree(path, ignore_errors=True)
    log.debug("saved checkpoint %s (%d policies)", final, len(ranked))
    return final


def _resolve_step_dir(path: Path) -> Path:
    if (path / INDEX_NAME).is_file():
        return path
    if not path.is_dir():
        raise CheckpointError(f"checkpoint directory not found: {path}")
    pointer = path / LATEST_NAME
    if pointer.is_file():
        name = pointer.read_text(encoding="utf-8").strip()
        if not _STEP_DIR.match(name):
            raise CheckpointError(f"{pointer}: corrupt pointer {name!r} (expected step_NNNNNN)")
        target = path / name
        if not (target / INDEX_NAME).is_file():
            raise CheckpointError(f"{pointer} names {name}, but {target / INDEX_NAME} is missing")
        return target
    candidates = list_checkpoints(path)
    if candidates:
        log.warning("%s has no '%s' pointer; loading the newest step dir %s", path, LATEST_NAME, candidates[-1].name)
        return candidates[-1]
    if path.name.startswith("step_"):
        raise CheckpointError(f"{path / INDEX_NAME}: checkpoint index is missing")
    raise CheckpointError(f"no checkpoint in {path} (no '{LATEST_NAME}' pointer and no step_* dir with {INDEX_NAME})")


def load_checkpoint(path: str | Path) -> CheckpointData:
    """Load a checkpoint from a checkpoint root (follows ``latest``) or from one step directory.

    Raises :class:`CheckpointError` naming the file for a missing/corrupt index or policy file.
    """
    step_dir = _resolve_step_dir(Path(path))
    index_path = step_dir / INDEX_NAME
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{index_path}: corrupt checkpoint index: {exc}") from exc
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise CheckpointError(f"{index_path}: not a LangProp checkpoint index (format field missing)")
    if int(index.get("version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{index_path}: format version {index['version']} is newer than this code")
    try:
        entries = index["policies"]
        population_state = dict(index["population"])
        step = int(index["step"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{index_path}: missing or invalid field {exc}") from exc

    policies: list[Policy] = []
    trackers: dict[str, Any] = {}
    priorities: dict[str, float] = {}
    for entry in entries:
        try:
            pid, file = entry["id"], entry["file"]
        except (KeyError, TypeError) as exc:
            raise CheckpointError(f"{index_path}: policy entry without {exc}") from exc
        policy_path = step_dir / file
        try:
            source = _source_from_file(policy_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{policy_path}: cannot read policy file: {exc}") from exc
        fields = {k: entry.get(k) for k in ("generation", "parent_id", "model", "prompt_file", "response_file")}
        fields["generation"] = int(fields["generation"] or 0)
        policy = Policy(id=pid, source=source, created_step=int(entry.get("created_step") or 0), **fields)
        if entry.get("source_hash") and policy.source_hash != entry["source_hash"]:
            log.warning("%s was edited after saving (hash differs from the index); using the file", policy_path)
        policies.append(policy)
        trackers[pid] = entry.get("trackers", {})
        priorities[pid] = float(entry.get("priority", 0.0))

    population_state.update(
        order=[p.id for p in policies],
        policies={p.id: p.to_dict() for p in policies},
        trackers=trackers,
    )
    spec_data = index.get("spec")
    spec = PolicySpec(**spec_data) if isinstance(spec_data, dict) else None
    return CheckpointData(
        path=step_dir,
        step=step,
        policies=policies,
        priorities=priorities,
        population_state=population_state,
        config=index.get("config") or {},
        extra=index.get("extra") or {},
        spec=spec,
    )


def load_best_policy(
    checkpoint_dir: str | Path,
    sandboxed: bool = True,
    function_name: str | None = None,
    limits: Any = None,
) -> Callable[..., Any]:
    """The best (rank 0) policy of a checkpoint as a callable.

    ``sandboxed=True`` (default) returns a ``langprop.sandbox.SandboxedFunction``: the code runs
    in a separate worker process with resource limits (call ``.close()`` when done).
    ``sandboxed=False`` ``exec``s the source in THIS process with full privileges — only for
    code you trust (e.g. you reviewed the ``.py`` file). ``function_name`` defaults to the spec
    name recorded in the checkpoint; ``limits`` is a ``SandboxLimits``.
    """
    data = load_checkpoint(checkpoint_dir)
    name = function_name or (data.spec.name if data.spec else None)
    if not name:
        raise CheckpointError(
            f"{data.path / INDEX_NAME}: no function name recorded; pass function_name=... to load_best_policy"
        )
    best = data.best
    filename = str(data.path / "policies" / f"{best.id}.py")
    if not sandboxed:
        # Compile the file text itself (its header is comments) so traceback lines match the file.
        try:
            text = Path(filename).read_text(encoding="utf-8")
            return load_in_process(text, name, filename=filename)
        except (OSError, SyntaxError, NameError, TypeError) as exc:
            raise CheckpointError(f"{filename}: cannot load {name}: {type(exc).__name__}: {exc}") from exc
    from langprop.sandbox import SandboxedFunction, SandboxLimits  # lazy: spawns worker processes

    return SandboxedFunction(best.source, name, limits if limits is not None else SandboxLimits())
