"""Data collection: drive routes and record them as HDF5 episode files; load them as datasets.

Storage API (stable; see ``docs/expert-and-data.md``, section "storage"):
``EpisodeWriter``, ``FrameRecord``, ``read_episode``, ``Episode``, ``DatasetFileError``,
``DrivingDataset``, ``DATASET_SCHEMA_VERSION``.

Names are resolved lazily so ``import data_collection`` stays cheap (no h5py import) and the
collection modules can import from here without import cycles.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "DATASET_SCHEMA_VERSION": "data_collection.schema",
    "DatasetFileError": "data_collection.schema",
    "FrameRecord": "data_collection.schema",
    "EpisodeWriter": "data_collection.storage",
    "Episode": "data_collection.storage",
    "read_episode": "data_collection.storage",
    "DrivingDataset": "data_collection.dataset",
}

__all__ = [
    "DATASET_SCHEMA_VERSION", "DatasetFileError", "DrivingDataset", "Episode", "EpisodeWriter", "FrameRecord",
    "read_episode",
]

if TYPE_CHECKING:  # pragma: no cover
    from data_collection.dataset import DrivingDataset
    from data_collection.schema import DATASET_SCHEMA_VERSION, DatasetFileError, FrameRecord
    from data_collection.storage import Episode, EpisodeWriter, read_episode


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'data_collection' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
