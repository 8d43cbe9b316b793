"""Metrics files: JSONL + CSV rows, truncation on resume, optional TensorBoard scalars, curves PNG."""

from __future__ import annotations

import csv
import json

import pytest

from langprop.trainer.metrics import MetricsLogger, plot_curves


def _row(step: int, **extra) -> dict:
    return {"step": step, "best_priority": 0.1 * step, "val_best_id_score": None, **extra}


def test_rows_go_to_jsonl_and_csv_and_truncate_on_resume(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    for step in range(4):
        logger.log(_row(step))
    logger.close()
    reopened = MetricsLogger(tmp_path, tensorboard=False)
    assert [r["step"] for r in reopened.rows] == [0, 1, 2, 3]
    reopened.truncate(1)  # resume from the checkpoint of step 1
    reopened.log(_row(2, n_children=5))
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [0, 1, 2]
    table = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [r["step"] for r in table] == ["0", "1", "2"] and table[-1]["n_children"] == "5"
    assert table[0]["val_best_id_score"] == ""  # None is an empty cell, not "None"
    path = plot_curves(reopened.rows, tmp_path / "curves.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


def test_tensorboard_scalars_when_installed(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    logger = MetricsLogger(tmp_path, tensorboard=True)
    logger.log(_row(1))
    logger.log(_row(2))
    logger.close()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [(e.step, round(e.value, 6)) for e in events.Scalars("best_priority")] == [(1, 0.1), (2, 0.2)]
