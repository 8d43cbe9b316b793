"""Progress of a collection in the main process: an overall bar and one bar per running route.

Workers only send events (``start``, ``progress`` {rc, frames}, ``done``); this class turns them into
rich progress bars on stderr, so any backend (inline, processes, Ray) shows the same display.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any


class CollectProgress:
    def __init__(self, total: int, already_done: int, enabled: bool = True) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            console=Console(stderr=True), disable=not enabled, transient=False)
        self.overall = self.bar.add_task("routes", total=total, completed=already_done,
                                         info=f"{already_done} already recorded" if already_done else "")
        self.routes: dict[int, Any] = {}  # job index -> its task

    def __enter__(self) -> CollectProgress:
        self.bar.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.bar.__exit__(kind, exc, tb)

    def on_event(self, kind: str, job: Any, payload: Any) -> None:
        if kind == "start":
            self._drop(job.index)
            self.routes[job.index] = self.bar.add_task(f"  {job.name}", total=100, info="RC %")
        elif kind == "progress" and job.index in self.routes:
            self.bar.update(self.routes[job.index], completed=min(100.0, float(payload["rc"])),
                            info=f"RC % | {payload['frames']} frames")
        elif kind == "done":
            self._drop(job.index)
            self.bar.update(self.overall, advance=1, info=f"{payload.record_id}: {payload.status}")

    def _drop(self, index: int) -> None:
        task = self.routes.pop(index, None)
        if task is not None:
            self.bar.remove_task(task)
