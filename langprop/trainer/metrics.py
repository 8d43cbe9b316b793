"""Per-step metrics: JSONL + CSV (always), TensorBoard (when installed), training curves as a PNG.

Rows hold only values that are reproducible under the replay backend (no wall-clock times), so
two runs with the same seed and recorded answers write byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langprop.atomic import atomic_write_text

log = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "step",
    "epoch",
    "batch",
    "n_samples",
    "n_policies",
    "best_id",
    "best_priority",
    "mean_priority",
    "batch_best_score",
    "batch_mean_score",
    "n_prompts",
    "n_answers",
    "n_children",
    "n_no_code",
    "children_best_score",
    "n_calls",
    "n_exceptions",
    "n_timeouts",
    "n_crashes",
    "val_best_id_score",
    "val_max_score",
    "llm_calls",
    "llm_prompt_tokens",
    "llm_completion_tokens",
    "llm_cost",
)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


def truncate_jsonl(path: Path, max_step: int) -> None:
    """Drop rows written after ``max_step`` (a crash between a step's rows and its checkpoint)."""
    rows = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= max_step]
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def append_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    if not rows:
        return
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, sort_keys=True) + "\n")


def _csv_text(rows: Sequence[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(METRIC_COLUMNS), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in METRIC_COLUMNS})
    return buffer.getvalue()


class MetricsLogger:
    """Writes ``metrics.jsonl`` and ``metrics.csv`` in the run dir; mirrors scalars to TensorBoard."""

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, purge_step: int | None = None) -> None:
        """``purge_step``: the first step this logger will write; TensorBoard then discards the
        events of older event files at or after it (a resumed run truncates its rows the same way)."""
        self.run_dir = Path(run_dir)
        self.jsonl_path = self.run_dir / "metrics.jsonl"
        self.csv_path = self.run_dir / "metrics.csv"
        self.rows: list[dict[str, Any]] = read_jsonl(self.jsonl_path)
        self._tb = _open_tensorboard(self.run_dir / "tensorboard", purge_step) if tensorboard else None

    def truncate(self, max_step: int) -> None:
        """Forget rows after ``max_step`` (resume from the checkpoint of that step)."""
        self.rows = [r for r in self.rows if int(r["step"]) <= max_step]
        self._rewrite()

    def log(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        append_jsonl(self.jsonl_path, [row])
        atomic_write_text(self.csv_path, _csv_text(self.rows))
        if self._tb is not None:
            scalars = {k: float(v) for k, v in row.items() if isinstance(v, int | float) and k != "step"}
            self._tb.write(int(row["step"]), scalars)

    def _rewrite(self) -> None:
        atomic_write_text(self.jsonl_path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in self.rows))
        atomic_write_text(self.csv_path, _csv_text(self.rows))

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class _TensorBoardWriter:
    """Scalars as TensorBoard event files, using only the ``tensorboard`` package (no torch/TF)."""

    def __init__(self, log_dir: Path, purge_step: int | None = None) -> None:
        import time

        from tensorboard.compat.proto.event_pb2 import Event, SessionLog
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        self._event, self._summary = Event, Summary
        self._writer = EventFileWriter(str(log_dir))
        if purge_step is not None:
            # What torch's SummaryWriter(purge_step=) writes: a SessionLog START at that step makes
            # TensorBoard drop previously loaded events with step >= purge_step.
            self._writer.add_event(
                Event(wall_time=time.time(), step=purge_step, session_log=SessionLog(status=SessionLog.START))
            )
            self._writer.flush()

    def write(self, step: int, scalars: dict[str, float]) -> None:
        import time

        values = [self._summary.Value(tag=k, simple_value=v) for k, v in scalars.items()]
        self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=self._summary(value=values)))
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


def _open_tensorboard(log_dir: Path, purge_step: int | None = None) -> _TensorBoardWriter | None:
    """A writer when the optional ``tensorboard`` package is installed, else None (CSV/JSONL still written)."""
    try:
        return _TensorBoardWriter(log_dir, purge_step)
    except ImportError:
        log.debug("tensorboard is not installed; metrics go to CSV and JSONL only")
        return None


def plot_curves(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "LangProp training") -> Path | None:
    """Save best/mean priority, batch scores and validation per step as a PNG (matplotlib, Agg)."""
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def series(key: str) -> tuple[list[int], list[float]]:
        pts = [(int(r["step"]), float(r[key])) for r in rows if isinstance(r.get(key), int | float)]
        pts = [(s, v) for s, v in pts if math.isfinite(v)]
        return [s for s, _ in pts], [v for _, v in pts]

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for key, label, style in (
        ("best_priority", "best priority (train)", "-o"),
        ("mean_priority", "mean priority (train)", "--"),
        ("batch_best_score", "best batch score", ":"),
        ("val_best_id_score", "validation (best policy)", "-s"),
        ("val_max_score", "validation (best of population)", "x"),
    ):
        xs, ys = series(key)
        if xs:
            ax.plot(xs, ys, style, label=label, markersize=4)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("step (0 = initial policies)")
    ax.set_ylabel("score")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    out = Path(path)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    from langprop.atomic import atomic_write_bytes

    atomic_write_bytes(out, buffer.getvalue())
    return out
