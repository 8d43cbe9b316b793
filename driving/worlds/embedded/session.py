"""The one libsumo simulation of this process: start, restart, close, and who owns it.

libsumo is a process-wide singleton (one simulation per process). ``SumoSession`` wraps it so that
a second world cannot silently share or corrupt the first one's simulation: ``claim`` closes the
previous owner (it then raises ``EmbeddedWorldError`` on use) or, with ``exclusive=True``, refuses.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedWorldError(RuntimeError):
    """A user-facing failure of the embedded world (bad config or route, SUMO failure, closed world)."""


@dataclass(frozen=True)
class SumoOptions:
    net_file: Path
    seed: int
    step_length: float = 0.05
    action_step: float = 0.1  # s between SUMO drivers' decisions (ballistic motion in between)


_OWNER: weakref.ref[Any] | None = None
_OWNER_CLOSE: Callable[[], None] | None = None


def claim(owner: Any, close_owner: Callable[[], None], exclusive: bool = False) -> None:
    """Make ``owner`` the process's libsumo user, closing the previous live owner first."""
    global _OWNER, _OWNER_CLOSE
    previous = _OWNER() if _OWNER is not None else None
    if previous is not None and previous is not owner:
        if exclusive:
            raise EmbeddedWorldError(
                "another EmbeddedWorld already runs the process's libsumo simulation; close it first "
                "(one libsumo simulation per process: use one world per worker process)"
            )
        log.warning("closing the previous EmbeddedWorld: libsumo runs one simulation per process")
        if _OWNER_CLOSE is not None:
            _OWNER_CLOSE()
    _OWNER = weakref.ref(owner)
    _OWNER_CLOSE = close_owner


def release(owner: Any) -> None:
    global _OWNER, _OWNER_CLOSE
    if _OWNER is not None and _OWNER() is owner:
        _OWNER = None
        _OWNER_CLOSE = None


def sumo_args(options: SumoOptions) -> list[str]:
    """Command line of the embedded simulation.

    Teleporting is off (``time-to-teleport -1``): a teleport could take the ego off the network;
    the traffic manager removes jammed background vehicles itself. A vehicle that finds no room to
    enter within 10 s is dropped (and replaced elsewhere) instead of waiting forever. SUMO's collision handling is off
    because our oriented-box check is authoritative (SUMO's reports for a moved ego are unreliable).
    Drivers decide every ``action_step`` (ballistic update in between, as SUMO recommends for action
    steps longer than the step): 0.1 s halves SUMO's step cost against deciding every 0.05 s.
    """
    return [
        "sumo",
        "-n", str(options.net_file),
        "--step-length", repr(float(options.step_length)),
        "--seed", str(int(options.seed)),
        "--begin", "0",
        "--no-step-log", "true",
        "--no-warnings", "true",
        "--time-to-teleport", "-1",
        "--max-depart-delay", "10",
        "--collision.action", "none",
        "--collision.check-junctions", "false",
        "--pedestrian.model", "striping",
        "--ignore-route-errors", "true",
        "--default.action-step-length", repr(float(options.action_step)),
        "--step-method.ballistic", "true",
        "--xml-validation", "never",
    ]


def start(options: SumoOptions) -> Any:
    """Start (or restart) libsumo on ``options``; returns the ``libsumo`` module."""
    import libsumo

    args = sumo_args(options)
    if not options.net_file.exists():
        raise EmbeddedWorldError(f"SUMO network {options.net_file} does not exist")
    try:
        if libsumo.isLoaded():
            libsumo.load(args[1:])
        else:
            libsumo.start(args)
    except libsumo.TraCIException as exc:
        raise EmbeddedWorldError(f"SUMO could not load network {options.net_file}: {exc}") from None
    return libsumo


def stop() -> None:
    import libsumo

    try:
        if libsumo.isLoaded():
            libsumo.close()
    except libsumo.TraCIException as exc:  # closing twice or after a failed load
        log.debug("libsumo close: %s", exc)
