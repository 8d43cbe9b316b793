"""One HDF5 file per route: ``EpisodeWriter`` records it crash-safely; ``read_episode`` (defined in
``data_collection.dataset``, re-exported here) reads it back.

On-disk layout (column names and kinds come from ``data_collection.schema``)::

    /                      attrs: schema_version, scene_schema_version, complete (written last),
                           n_frames, created, package_version, git_commit, provenance scalars
                           (town, route_id, repetition, seed, driver, labeller, version, ...)
    /meta/<key>            JSON text of non-scalar provenance (config, ...) and /meta/summary
    /frames/<kind>         (C, N): the frame columns of one kind (float | int | bool | str), one row
                           per column, named in order by the attribute ``columns`` (ego.x, target.present,
                           expert.speed_level, ...); N = recorded frames
    /lists/<list>/offsets  (N + 1,) int64: frame i owns rows offsets[i]:offsets[i + 1]
    /lists/<list>/<kind>   (C, M) the element columns (route, vehicles, pedestrians, obstacles, stop_signs)
    /infractions/<kind>    (C, K) one column per InfractionEvent field (kind, frame, time, x, y, ...)
    <table>/vocab          JSON {column: [words]}: the strings that a str column's int32 codes index

Kinds: float = float64, int = int64, bool, str = int32 codes (-1 = None). One 2-D dataset per kind
rather than one dataset per column because h5py costs ~0.1 ms per dataset read; each chunk is
``(1, rows)``, i.e. one column's run, so compression stays columnar. Chunks are sized to the first
flush (a reader inflates whole chunks). Filters: Blosc2 (LZ4, byte shuffle) from ``hdf5plugin`` by
default (not Blosc v1: it corrupted columns written one frame per flush): ~10 % more bytes than
gzip but ~2x faster to load, the fastest compressed choice to load
(``python benchmarks/dataset_read.py --compare-compression``).
Other tools need ``import hdf5plugin`` before h5py opens these files; ``compression="gzip"`` writes
files any HDF5 reader opens (smallest, slowest to load), ``None`` is uncompressed (~3x the bytes).

The writer keeps frames as Python tuples (cheap to append), packs them into numpy every 256 frames
and writes every ``flush_every`` frames; the file is ``<final>.partial`` until ``close`` has written
everything, set ``complete=True``, fsync'ed and atomically renamed it. A crashed writer leaves only
a ``.partial``, which readers refuse.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import json
import logging
import operator
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin
import numpy as np

from data_collection.dataset import (  # the readers; re-exported: storage is the one-file API
    Episode,
    RawEpisode,
    check_header,
    open_episode,
    read_episode,
    read_metadata,
    read_raw,
)
from data_collection.schema import (
    DATASET_SCHEMA_VERSION,
    DTYPES,
    FRAME_CODEC,
    INFRACTION_CODEC,
    LIST_CODECS,
    PARTIAL_SUFFIX,
    SCENE_SCHEMA_VERSION,
    Column,
    FrameRecord,
    Vocabulary,
    attr_value,
    by_kind,
    encode_rows,
    table_path,
)
from driving.criteria.events import InfractionEvent
from langprop.atomic import fsync_dir

log = logging.getLogger(__name__)

__all__ = ["EpisodeWriter", "Episode", "RawEpisode", "read_episode", "read_raw", "read_metadata", "check_header",
           "open_episode", "PARTIAL_SUFFIX"]

RESERVED_ATTRS = frozenset({"schema_version", "scene_schema_version", "complete", "n_frames", "summary"})
MAX_ATTR_CHARS = 8192
# h5py filter settings per ``compression`` choice (see benchmarks/dataset_read.py --compare-compression).
FILTERS: dict[str | None, dict[str, Any]] = {
    "blosc-lz4": dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)),  # default
    "lz4": {**hdf5plugin.LZ4(), "shuffle": True},
    "gzip": {"compression": "gzip", "compression_opts": 1, "shuffle": True},  # smallest, any HDF5 reader
    "lzf": {"compression": "lzf", "shuffle": True},
    None: {},  # uncompressed: ~3x the bytes, ~2x faster to load
}
FRAME_CHUNK = 4096  # most rows per chunk of a per-frame column (32 KiB of float64)
LIST_CHUNK = 32768  # most rows per chunk of a list table column (256 KiB of float64)
MIN_CHUNK = 256
PACK_EVERY = 256  # frames kept as Python tuples before they are packed into numpy


@functools.lru_cache(maxsize=1)
def _code_version() -> tuple[str, str]:
    """(package version, git commit) of this checkout; '' where unknown. Cached: once per process."""
    from importlib import metadata

    try:
        version = metadata.version("langprop-drive")
    except metadata.PackageNotFoundError:
        version = ""
    commit = ""
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():  # only our own checkout, never an enclosing repository
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                    timeout=5, check=False).stdout.strip()
    return version, commit


def _json_default(value: Any) -> Any:
    if isinstance(value, np.ndarray | np.generic):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"attribute value {value!r} is not JSON-serialisable")


def _is_scalar_attr(value: Any) -> bool:
    # HDF5 object headers cap an attribute at 64 KiB: long strings go to /meta like other JSON.
    return isinstance(value, int | float | bool) or (isinstance(value, str) and len(value) <= MAX_ATTR_CHARS)


class EpisodeWriter:
    """Writes ``<final_path>.partial``, fsyncs and renames it to ``final_path`` on ``close()``.

    ``attrs`` is the provenance (town, route_id, repetition, seed, config, driver, labeller, version,
    ...): scalars become HDF5 attributes, anything else is stored as JSON under ``/meta``.
    Use as a context manager to ``abort()`` on an exception. Not thread-safe.
    """

    def __init__(self, final_path: str | Path, attrs: Mapping[str, Any] | None = None, *,
                 flush_every: int = 2048, overwrite: bool = False, compression: str | None = "blosc-lz4") -> None:
        self.final_path = Path(final_path)
        self.partial_path = self.final_path.with_name(self.final_path.name + PARTIAL_SUFFIX)
        self.flush_every = max(1, int(flush_every))
        if compression not in FILTERS:
            raise ValueError(f"compression must be one of {list(FILTERS)}, got {compression!r}")
        self._filters = FILTERS[compression]
        attrs = dict(attrs or {})
        reserved = RESERVED_ATTRS.intersection(attrs)
        if reserved:
            raise ValueError(f"attrs may not set {sorted(reserved)}: the writer owns them")
        bad = [k for k in attrs if not isinstance(k, str) or not k or "/" in k or k == "."]
        if bad:
            raise ValueError(f"attribute names must be non-empty strings without '/': {bad}")
        if self.final_path.exists() and not overwrite:
            raise FileExistsError(f"{self.final_path} exists (pass overwrite=True to replace it)")
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        if self.partial_path.exists():
            log.warning("discarding a stale %s (a previous writer did not finish)", self.partial_path)
            self.partial_path.unlink()
        self._file: h5py.File | None = h5py.File(self.partial_path, "w")
        self._closed = False
        self._created = False  # datasets are created at the first flush, sized to it
        self._written = 0  # frames in the file so far
        self._packed: list[dict[str, dict[str, np.ndarray]]] = []  # encoded batches not yet written
        self._n_frames = 0
        self._last_tick: int | None = None
        self._frame_rows: list[tuple] = []
        self._list_rows: dict[str, list[tuple]] = {name: [] for name in LIST_CODECS}
        self._list_counts: dict[str, list[int]] = {name: [] for name in LIST_CODECS}
        self._list_totals: dict[str, int] = dict.fromkeys(LIST_CODECS, 0)
        self._vocabs: dict[str, dict[str, Vocabulary]] = {}  # table -> column -> vocabulary
        # attrgetter(*fields) builds an element's row in C: the per-frame cost is dominated by lists.
        self._list_getters = {
            name: (operator.attrgetter(*codec.names) if codec.flat and len(codec.names) > 1 else codec.extract)
            for name, codec in LIST_CODECS.items()
        }
        try:
            self._write_provenance(attrs)
        except BaseException:
            self.abort()
            raise

    # -- public API ---------------------------------------------------------------------------------
    @property
    def n_frames(self) -> int:
        return self._n_frames

    def append(self, frame: FrameRecord) -> None:
        """Buffer one frame; every ``flush_every`` frames the buffer goes to the partial file."""
        if self._closed:
            raise RuntimeError(f"{self.final_path}: append after close/abort")
        scene = frame.scene
        tick = scene.frame
        if self._last_tick is not None and tick <= self._last_tick:
            raise ValueError(f"{self.final_path}: frames must be appended in increasing scene.frame order "
                             f"(got {tick} after {self._last_tick})")
        # Extract everything before touching the buffers, so a bad frame leaves them consistent.
        row = FRAME_CODEC.extract(frame)
        lists = [list(map(getter, getattr(scene, name))) for name, getter in self._list_getters.items()]
        self._frame_rows.append(row)
        for name, rows in zip(self._list_getters, lists, strict=True):
            self._list_counts[name].append(len(rows))
            self._list_rows[name].extend(rows)
        self._last_tick = tick
        self._n_frames += 1
        if len(self._frame_rows) >= PACK_EVERY:
            self._pack()
        if self._n_frames - self._written >= self.flush_every:
            self._flush()

    def close(self, infractions: Sequence[InfractionEvent] = (), summary: Mapping[str, Any] | None = None) -> Path:
        """Write the rest, the infractions, the summary (DS, RC, IP, status...) and ``complete=True``;
        fsync and atomically rename to ``final_path``, which is returned. On failure the partial
        file is deleted and the error re-raised."""
        if self._closed:
            raise RuntimeError(f"{self.final_path}: close after close/abort")
        try:
            self._flush()
            f = self._require_file()
            rows = [INFRACTION_CODEC.extract(event) for event in infractions]
            group = f.create_group("infractions")
            blocks = encode_rows(INFRACTION_CODEC.columns, rows, self._vocabs.setdefault("infractions", {}))
            for kind, cols in by_kind(INFRACTION_CODEC.columns).items():
                if cols:
                    ds = group.create_dataset(kind, data=blocks[kind], **(self._filters if rows else {}))
                    ds.attrs["columns"] = [c.name for c in cols]
            self._write_vocabs()
            self._write_json("summary", dict(summary or {}))
            f.attrs["n_frames"] = self._n_frames
            f.attrs["complete"] = True  # last: a reader trusts nothing in a file without it
            f.close()
            self._file = None
            fd = os.open(self.partial_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(self.partial_path, self.final_path)
            fsync_dir(self.final_path.parent)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        log.debug("wrote %s (%d frames, %d infractions)", self.final_path, self._n_frames, len(infractions))
        return self.final_path

    def abort(self) -> None:
        """Drop everything: close and delete the partial file. Idempotent; never raises for I/O."""
        self._closed = True
        if self._file is not None:
            with contextlib.suppress(Exception):
                self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self.partial_path.unlink()

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if not self._closed:
            if exc_type is None:
                log.warning("%s: writer left without close(); the episode is discarded", self.final_path)
            self.abort()

    def __del__(self) -> None:  # an abandoned writer must not leave an open HDF5 handle behind
        if getattr(self, "_file", None) is not None:
            with contextlib.suppress(Exception):
                self._file.close()

    # -- internals ----------------------------------------------------------------------------------
    def _require_file(self) -> h5py.File:
        if self._file is None:
            raise RuntimeError(f"{self.final_path}: writer is closed")
        return self._file

    def _write_json(self, key: str, value: Any) -> None:
        meta = self._require_file().require_group("meta")
        if key in meta:
            del meta[key]
        meta.create_dataset(key, data=json.dumps(value, sort_keys=True, default=_json_default, ensure_ascii=False),
                            dtype=h5py.string_dtype())

    def _write_provenance(self, attrs: dict[str, Any]) -> None:
        f = self._require_file()
        version, commit = _code_version()
        defaults = {"package_version": version, "git_commit": commit,
                    "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
        f.attrs["schema_version"] = DATASET_SCHEMA_VERSION
        f.attrs["scene_schema_version"] = SCENE_SCHEMA_VERSION
        for key, value in {**defaults, **attrs}.items():
            value = attr_value(value)
            if _is_scalar_attr(value):
                f.attrs[key] = value
            else:
                self._write_json(key, value)

    def _pack(self) -> None:
        """Python row tuples (~30 KB a frame) -> numpy blocks (~6 KB a frame), kept until the flush."""
        if not self._frame_rows:
            return
        batch = {"frames": encode_rows(FRAME_CODEC.columns, self._frame_rows, self._vocabs.setdefault("frames", {}))}
        for name, codec in LIST_CODECS.items():
            batch[name] = encode_rows(codec.columns, self._list_rows[name], self._vocabs.setdefault(name, {}))
            batch[name]["counts"] = np.asarray(self._list_counts[name], dtype=np.int64)[None]
            self._list_rows[name], self._list_counts[name] = [], []
        self._frame_rows = []
        self._packed.append(batch)

    def _flush(self) -> None:
        """Append the packed batches to the partial file (creating its datasets the first time)."""
        self._pack()
        batches, self._packed = self._packed, []
        tables = {table: {kind: np.concatenate([b[table][kind] for b in batches], axis=1) for kind in batches[0][table]}
                  for table in ("frames", *LIST_CODECS)} if batches else {}
        f = self._require_file()
        if not self._created:
            self._create_datasets(tables)
        if not tables:
            return
        _append_blocks(f["frames"], tables["frames"])
        for name in LIST_CODECS:
            group = f["lists"][name]
            blocks = tables[name]
            offsets = self._list_totals[name] + np.cumsum(blocks.pop("counts")[0])
            self._list_totals[name] = int(offsets[-1])
            ds = group["offsets"]
            start = ds.shape[0]
            ds.resize((start + len(offsets),))
            ds[start:] = offsets
            _append_blocks(group, blocks)
        self._written = self._n_frames

    def _create_datasets(self, tables: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Chunks sized to the first batch: a reader inflates whole chunks, so a mostly empty chunk
        (a 2000-frame route in 32768-row chunks) would cost as much to read as a full one."""
        def rows(table: str) -> int:
            return next((b.shape[1] for k, b in tables.get(table, {}).items() if k != "counts"), 0)

        f = self._require_file()
        n = rows("frames")
        _create_blocks(f.create_group("frames"), FRAME_CODEC.columns, _chunk_rows(n, FRAME_CHUNK), self._filters)
        lists = f.create_group("lists")
        for name, codec in LIST_CODECS.items():
            group = lists.create_group(name)
            group.create_dataset("offsets", data=np.zeros(1, np.int64), maxshape=(None,),
                                 chunks=(_chunk_rows(n + 1, FRAME_CHUNK),), **self._filters)
            _create_blocks(group, codec.columns, _chunk_rows(rows(name), LIST_CHUNK), self._filters)
        self._created = True

    def _write_vocabs(self) -> None:
        f = self._require_file()
        for table, codec_columns in (("frames", FRAME_CODEC.columns), ("infractions", INFRACTION_CODEC.columns),
                                     *((name, c.columns) for name, c in LIST_CODECS.items())):
            vocabs = self._vocabs.get(table, {})
            words = {c.name: vocabs[c.name].words if c.name in vocabs else [] for c in codec_columns
                     if c.kind == "str"}
            if words:
                f[table_path(table)].create_dataset("vocab", data=json.dumps(words, ensure_ascii=False),
                                                     dtype=h5py.string_dtype())


def _chunk_rows(n: int, cap: int) -> int:
    """Rows per chunk for a first batch of ``n`` rows: equal chunks of at most ``cap`` rows."""
    pieces = max(1, -(-n // cap))
    return max(MIN_CHUNK, -(-n // pieces))


def _create_blocks(group: h5py.Group, columns: Sequence[Column], chunk: int, filters: dict[str, Any]) -> None:
    """One empty, resizable 2-D dataset per kind; a chunk is one column's run of ``chunk`` rows."""
    for kind, cols in by_kind(columns).items():
        if cols:
            ds = group.create_dataset(kind, shape=(len(cols), 0), maxshape=(len(cols), None), dtype=DTYPES[kind],
                                      chunks=(1, chunk), **filters)
            ds.attrs["columns"] = [c.name for c in cols]


def _append_blocks(group: h5py.Group, blocks: Mapping[str, np.ndarray]) -> None:
    for kind, block in blocks.items():
        if block.shape[0] == 0 or block.shape[1] == 0:
            continue
        ds = group[kind]
        start = ds.shape[1]
        ds.resize((block.shape[0], start + block.shape[1]))
        ds[:, start:] = block


