"""Trainer callbacks: hooks called at fixed points of ``Trainer.fit`` (progress bar included)."""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class Callback:
    """Override any hook; ``trainer`` is the running ``Trainer``. Hooks must not mutate the population."""

    def on_fit_start(self, trainer: Any, start_step: int, total_steps: int) -> None: ...

    def on_step_end(self, trainer: Any, step: int, metrics: dict[str, Any]) -> None: ...

    def on_checkpoint(self, trainer: Any, step: int, path: Any) -> None: ...

    def on_fit_end(self, trainer: Any, stop_reason: str) -> None: ...


class RichProgress(Callback):
    """A rich progress bar over training steps showing the best priority and validation score."""

    def __init__(self) -> None:
        self._progress: Any = None
        self._task: Any = None

    def on_fit_start(self, trainer: Any, start_step: int, total_steps: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("[bold]langprop[/bold] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("steps", total=total_steps, completed=start_step, status="")

    def on_step_end(self, trainer: Any, step: int, metrics: dict[str, Any]) -> None:
        if self._progress is None:
            return
        parts = []
        if metrics.get("best_priority") is not None:
            parts.append(f"best priority {metrics['best_priority']:.3g}")
        val = metrics.get("val_best_id_score", metrics.get("val_max_score"))
        if val is not None:
            parts.append(f"val {val:.3g}")
        parts.append(f"{metrics.get('n_children', 0)} new, {metrics.get('n_no_code', 0)} without code")
        status = " | ".join(parts)
        self._progress.update(self._task, completed=step, status=status)

    def on_fit_end(self, trainer: Any, stop_reason: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
