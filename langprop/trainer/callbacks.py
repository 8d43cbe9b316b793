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
        status = f"best={metrics.get('best_priority')}"
        if metrics.get("val_best_id_score") is not None:
            status += f" val={metrics['val_best_id_score']:.3g}"
        self._progress.update(self._task, completed=step, status=status)

    def on_fit_end(self, trainer: Any, stop_reason: str) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
