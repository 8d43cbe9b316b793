"""Reading episode files: one (``read_episode`` -> ``Episode``) or many (``DrivingDataset``).

``open_episode`` refuses what cannot be trusted (a ``.partial`` file, no ``complete=True``, another
schema version, missing datasets or columns) with a ``DatasetFileError`` naming the file. The
writer and the on-disk layout are in ``data_collection.storage``, which re-exports the one-file readers.

``DrivingDataset`` loads every complete episode file of a directory as one columnar dataset.
The fast path is ``columns`` (one array per stored frame column, all files concatenated in sorted
path order) and ``tables`` (the list tables, with offsets rebased over the concatenation). String
columns hold int32 codes into ``vocab[table][column]``, one vocabulary shared by all files.
``scene(i)`` / ``record(i)`` / ``sample(i)`` build objects for one frame on demand.

``infraction_ahead[i]`` is True when an infraction happens within the next ``infraction_horizon``
*recorded* frames of frame ``i``'s file: for an infraction at simulation tick ``E``, the last
``infraction_horizon`` recorded frames with ``scene.frame < E`` are marked (the scene at the tick
before ``E`` is the one whose action led to it). Frames are recorded every ``record_every`` ticks,
so the horizon in ticks is ``infraction_horizon * record_every``. Marks never cross files.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the Blosc filter the episode files use
import numpy as np

from data_collection.schema import (
    DATASET_SCHEMA_VERSION,
    DTYPES,
    FRAME_CODEC,
    INFRACTION_CODEC,
    LIST_CODECS,
    PARTIAL_SUFFIX,
    SCENE_CODEC,
    SCENE_SCHEMA_VERSION,
    Column,
    DatasetFileError,
    FrameRecord,
    attr_value,
    build_elements,
    by_kind,
    decode_columns,
    table_path,
)
from driving.criteria.events import InfractionEvent
from driving.scene import Scene

log = logging.getLogger(__name__)

__all__ = ["DrivingDataset", "find_episode_files", "Episode", "RawEpisode", "read_episode", "read_raw",
           "read_metadata", "open_episode", "check_header"]

EPISODE_SUFFIX = ".h5"


# -- one episode file ------------------------------------------------------------------------------
@dataclass
class RawEpisode:
    """An episode file's arrays as stored (strings as codes + vocabularies); the loader's fast path."""

    path: Path
    attrs: dict[str, Any]
    summary: dict[str, Any]
    frames: dict[str, np.ndarray]
    lists: dict[str, dict[str, np.ndarray]]  # each with "offsets"
    infractions: dict[str, np.ndarray]
    vocab: dict[str, dict[str, list[str]]]  # table ("frames", a list name, "infractions") -> column -> words

    @property
    def n_frames(self) -> int:
        return int(self.attrs["n_frames"])


def check_header(path: Path, f: h5py.File) -> None:
    """Raise ``DatasetFileError`` unless ``f`` is a complete file of this schema."""
    if not bool(f.attrs.get("complete", False)):
        raise DatasetFileError(path, "incomplete episode file (no complete=True attribute: its writer did not "
                                     "finish)")
    for key, expected in (("schema_version", DATASET_SCHEMA_VERSION), ("scene_schema_version", SCENE_SCHEMA_VERSION)):
        found = f.attrs.get(key)
        if found is None:
            raise DatasetFileError(path, f"missing attribute {key!r}")
        if int(found) != expected:
            raise DatasetFileError(path, f"{key} is {int(found)}, this code reads {expected}")


def lookup(group: h5py.Group, name: str) -> Any:
    """``group[name]`` or None: one HDF5 lookup where ``group.get`` makes two."""
    try:
        return group[name]
    except KeyError:
        return None


def _read_table(path: Path, f: h5py.File, table: str, columns: Sequence[Column], offsets: bool = False
                ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """One table's columns (views into its per-kind blocks) and the vocabularies of its str columns."""
    where = table_path(table)
    group = lookup(f, where)
    if not isinstance(group, h5py.Group):
        raise DatasetFileError(path, f"missing group /{where}")
    arrays: dict[str, np.ndarray] = {}
    if offsets:
        ds = lookup(group, "offsets")
        if not isinstance(ds, h5py.Dataset):
            raise DatasetFileError(path, f"missing dataset /{where}/offsets")
        arrays["offsets"] = ds[()]
    for kind, cols in by_kind(columns).items():
        if not cols:
            continue
        ds = lookup(group, kind)
        if not isinstance(ds, h5py.Dataset) or ds.ndim != 2:
            raise DatasetFileError(path, f"missing dataset /{where}/{kind}")
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in ds.attrs.get("columns", [])]
        block = ds[()]
        if len(names) != block.shape[0]:
            raise DatasetFileError(path, f"/{where}/{kind} has {block.shape[0]} rows but {len(names)} column names")
        rows = {name: i for i, name in enumerate(names)}
        for c in cols:
            if c.name not in rows:
                raise DatasetFileError(path, f"missing column {c.name!r} in /{where}/{kind}")
            arrays[c.name] = block[rows[c.name]]
    vocab: dict[str, list[str]] = {}
    if any(c.kind == "str" for c in columns):
        ds = lookup(group, "vocab")
        if not isinstance(ds, h5py.Dataset):
            raise DatasetFileError(path, f"missing dataset /{where}/vocab")
        stored = json.loads(ds.asstr()[()])
        for c in columns:
            if c.kind != "str":
                continue
            words = vocab[c.name] = list(stored.get(c.name, []))
            codes = arrays[c.name]
            if codes.size and int(codes.max()) >= len(words):
                raise DatasetFileError(path, f"/{where}/str column {c.name!r} has codes beyond its vocabulary")
    return arrays, vocab


@contextlib.contextmanager
def open_episode(path: str | Path) -> Iterator[h5py.File]:
    """Open a complete episode file of this schema for reading; ``DatasetFileError`` otherwise
    (partial, missing, not HDF5, incomplete, other schema version, or unreadable content)."""
    path = Path(path)
    if path.name.endswith(PARTIAL_SUFFIX):
        raise DatasetFileError(path, "partial episode file: its writer has not finished or crashed")
    if not path.is_file():
        raise DatasetFileError(path, "no such file")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DatasetFileError(path, f"not a readable HDF5 file ({exc})") from None
    with f:
        check_header(path, f)
        try:
            yield f
        except (OSError, KeyError, RuntimeError) as exc:  # h5py's errors for damaged content
            raise DatasetFileError(path, f"unreadable content ({exc})") from None


def _read_meta(f: h5py.File) -> tuple[dict[str, Any], dict[str, Any]]:
    attrs = {k: attr_value(v) for k, v in f.attrs.items()}
    summary: dict[str, Any] = {}
    for key, ds in f.get("meta", {}).items():
        value = json.loads(ds.asstr()[()])
        if key == "summary":
            summary = value
        else:
            attrs[key] = value
    return attrs, summary


def read_metadata(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes incl. JSON provenance, summary) of a complete episode file, without its frames."""
    with open_episode(path) as f:
        return _read_meta(f)


def read_raw(path: str | Path) -> RawEpisode:
    """Open, validate and read every dataset of one episode file (``DatasetFileError`` if unusable)."""
    path = Path(path)
    with open_episode(path) as f:
        attrs, summary = _read_meta(f)
        n = int(attrs.get("n_frames", -1))
        frames, frame_vocab = _read_table(path, f, "frames", FRAME_CODEC.columns)
        vocab = {"frames": frame_vocab}
        lists = {}
        for name, codec in LIST_CODECS.items():
            lists[name], vocab[name] = _read_table(path, f, name, codec.columns, offsets=True)
        infractions, vocab["infractions"] = _read_table(path, f, "infractions", INFRACTION_CODEC.columns)
    for name, arr in frames.items():
        if len(arr) != n:
            raise DatasetFileError(path, f"/frames column {name!r} has {len(arr)} rows, expected n_frames={n}")
    for name, table in lists.items():
        offsets = table["offsets"]
        if len(offsets) != n + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise DatasetFileError(path, f"/lists/{name}/offsets is not a valid ({n + 1},) offsets array")
        for col, arr in table.items():
            if col != "offsets" and len(arr) != offsets[-1]:
                raise DatasetFileError(path, f"/lists/{name} column {col!r} has {len(arr)} rows, offsets say "
                                             f"{offsets[-1]}")
    return RawEpisode(path, attrs, summary, frames, lists, infractions, vocab)


class Episode:
    """One episode file read into memory: provenance, summary, arrays, and the objects on demand."""

    def __init__(self, raw: RawEpisode) -> None:
        self.raw = raw
        self.path = raw.path
        self.attrs = raw.attrs
        self.summary = raw.summary

    def __len__(self) -> int:
        return self.raw.n_frames

    def _list_elements(self) -> dict[str, list[Any]]:
        raw = self.raw
        return {name: build_elements(codec, decode_columns(codec.columns, raw.lists[name], raw.vocab[name]))
                for name, codec in LIST_CODECS.items()}

    def _rows(self) -> list[tuple]:
        raw = self.raw
        return list(zip(*decode_columns(FRAME_CODEC.columns, raw.frames, raw.vocab["frames"]), strict=True))

    def _materialize(self, codec: Any) -> list[Any]:
        elements = self._list_elements()
        offsets = {name: self.raw.lists[name]["offsets"].tolist() for name in LIST_CODECS}
        out = []
        for i, row in enumerate(self._rows()):
            lists = {name: elements[name][o[i]:o[i + 1]] for name, o in offsets.items()}
            out.append(codec.build(row, 0, lists)[0])
        return out

    def scenes(self) -> list[Scene]:
        """Every recorded scene, equal (==) to the one appended."""
        return self._materialize(SCENE_CODEC)

    def frames(self) -> list[FrameRecord]:
        """Every recorded frame (scene, route completion, actions, controls), equal to the one appended."""
        return self._materialize(FRAME_CODEC)

    def infractions(self) -> list[InfractionEvent]:
        raw = self.raw
        values = decode_columns(INFRACTION_CODEC.columns, raw.infractions, raw.vocab["infractions"])
        return build_elements(INFRACTION_CODEC, values)


def read_episode(path: str | Path) -> Episode:
    """Read one complete episode file; ``DatasetFileError`` names the file and the problem."""
    return Episode(read_raw(path))


# -- many episode files ----------------------------------------------------------------------------
def find_episode_files(paths_or_dir: str | Path | Iterable[str | Path]) -> list[Path]:
    """Episode files named by ``paths_or_dir``: a directory (every ``*.h5`` below it, sorted by
    relative path; files without ``complete=True`` are skipped with a warning), a file, or a list of
    them. Explicitly named files must be complete. Raises ``DatasetFileError`` if none is found."""
    items = [paths_or_dir] if isinstance(paths_or_dir, str | Path) else list(paths_or_dir)
    files: list[Path] = []
    for item in map(Path, items):
        if not item.is_dir():
            files.append(item)
            continue
        for path in sorted(item.rglob(f"*{EPISODE_SUFFIX}"), key=lambda p: p.relative_to(item).as_posix()):
            try:
                with h5py.File(path, "r") as f:
                    complete = bool(f.attrs.get("complete", False))
            except OSError as exc:
                raise DatasetFileError(path, f"not a readable HDF5 file ({exc})") from None
            if complete:
                files.append(path)
            else:
                log.warning("skipping %s: incomplete episode file (its writer did not finish)", path)
    if not files:
        where = items[0] if len(items) == 1 else ", ".join(map(str, items)) or "(no paths)"
        raise DatasetFileError(where, f"no complete episode files (*{EPISODE_SUFFIX}) found")
    return files


class DrivingDataset:
    """All frames of the given episode files, columnar; see the module docstring.

    ``labelled_only`` keeps frames with an expert label; ``where(columns) -> bool mask`` keeps any
    other selection (it sees every column, plus ``episode``, ``index_in_episode`` and
    ``infraction_ahead``, before filtering).
    """

    def __init__(self, paths_or_dir: str | Path | Iterable[str | Path], infraction_horizon: int = 0, *,
                 labelled_only: bool = False,
                 where: Callable[[Mapping[str, np.ndarray]], np.ndarray] | None = None) -> None:
        if infraction_horizon < 0:
            raise ValueError(f"infraction_horizon must be >= 0, got {infraction_horizon}")
        self.infraction_horizon = int(infraction_horizon)
        self.files = find_episode_files(paths_or_dir)
        self.attrs: list[dict[str, Any]] = []
        self.summaries: list[dict[str, Any]] = []
        self.vocab: dict[str, dict[str, list[str]]] = {}
        self._load()
        self._mark_infractions()
        mask = self.columns["expert.present"].copy() if labelled_only else np.ones(len(self), bool)
        if where is not None:
            mask &= np.asarray(where(self.columns), dtype=bool)
        if not mask.all():
            self._select(mask)

    # -- loading ------------------------------------------------------------------------------------
    def _load(self) -> None:
        # Pass 1: sizes only, so every column is allocated once and files are copied straight in.
        n_frames, n_rows = [], {name: [] for name in LIST_CODECS}
        for path in self.files:
            with open_episode(path) as f:
                n_frames.append(int(f.attrs["n_frames"]))
                for name in LIST_CODECS:
                    offsets = lookup(f, f"lists/{name}/offsets")
                    if not isinstance(offsets, h5py.Dataset) or offsets.shape[0] < 1:
                        raise DatasetFileError(path, f"missing dataset /lists/{name}/offsets")
                    n_rows[name].append(int(offsets[-1]))
        frame_base = np.concatenate([[0], np.cumsum(n_frames)]).astype(np.int64)
        total = int(frame_base[-1])
        columns = _alloc(FRAME_CODEC.columns, total)
        columns["episode"] = np.repeat(np.arange(len(self.files), dtype=np.int32), n_frames)
        columns["index_in_episode"] = np.arange(total, dtype=np.int64) - np.repeat(frame_base[:-1], n_frames)
        tables: dict[str, dict[str, np.ndarray]] = {}
        row_base: dict[str, np.ndarray] = {}
        for name, codec in LIST_CODECS.items():
            row_base[name] = np.concatenate([[0], np.cumsum(n_rows[name])]).astype(np.int64)
            tables[name] = _alloc(codec.columns, int(row_base[name][-1]))
            tables[name]["offsets"] = np.zeros(total + 1, np.int64)
        infraction_parts: list[dict[str, np.ndarray]] = []
        vocabs: dict[str, dict[str, dict[str, int]]] = {}

        # Pass 2: read each file, remap its string codes into the shared vocabularies, copy it in.
        for k, path in enumerate(self.files):
            raw = read_raw(path)
            if raw.n_frames != n_frames[k]:
                raise DatasetFileError(path, "changed while the dataset was loading")
            self.attrs.append(raw.attrs)
            self.summaries.append(raw.summary)
            lo, hi = frame_base[k], frame_base[k + 1]
            _copy_into(columns, raw.frames, FRAME_CODEC.columns, raw.vocab["frames"],
                       vocabs.setdefault("frames", {}), slice(lo, hi))
            for name, codec in LIST_CODECS.items():
                table, rb = tables[name], row_base[name]
                if int(raw.lists[name]["offsets"][-1]) != rb[k + 1] - rb[k]:
                    raise DatasetFileError(path, "changed while the dataset was loading")
                _copy_into(table, raw.lists[name], codec.columns, raw.vocab[name], vocabs.setdefault(name, {}),
                           slice(rb[k], rb[k + 1]))
                table["offsets"][lo + 1:hi + 1] = raw.lists[name]["offsets"][1:] + rb[k]
            part = _alloc(INFRACTION_CODEC.columns, len(raw.infractions["kind"]))
            _copy_into(part, raw.infractions, INFRACTION_CODEC.columns, raw.vocab["infractions"],
                       vocabs.setdefault("infractions", {}), slice(None))
            part["episode"] = np.full(len(part["kind"]), k, np.int32)
            infraction_parts.append(part)
        self.columns = columns
        self.tables = tables
        self.infractions = {key: np.concatenate([p[key] for p in infraction_parts])
                            for key in infraction_parts[0]}
        self.vocab = {table: {col: list(words) for col, words in cols.items()} for table, cols in vocabs.items()}
        self._frame_base = frame_base
        log.info("loaded %d frames from %d episode files", total, len(self.files))

    def _mark_infractions(self) -> None:
        """``infraction_ahead`` and the infractions' ``before_index`` (last frame before it, or -1)."""
        n = len(self)
        episode, ticks = self.infractions["episode"], self.infractions["frame"]
        frame_ticks = self.columns["frame"]
        before = np.empty(len(ticks), np.int64)
        for j, (k, tick) in enumerate(zip(episode.tolist(), ticks.tolist(), strict=True)):
            lo, hi = self._frame_base[k], self._frame_base[k + 1]
            before[j] = lo + np.searchsorted(frame_ticks[lo:hi], tick, side="left") - 1
        starts = np.maximum(before + 1 - self.infraction_horizon, self._frame_base[episode])
        ends = before + 1
        diff = np.zeros(n + 1, np.int64)
        np.add.at(diff, starts, 1)
        np.add.at(diff, ends, -1)
        self.infraction_ahead = np.cumsum(diff[:-1]) > 0
        self.columns["infraction_ahead"] = self.infraction_ahead
        has_before = before >= self._frame_base[episode]
        self.infractions["before_index"] = np.where(has_before, before, -1)

    def _select(self, mask: np.ndarray) -> None:
        keep = np.flatnonzero(mask)
        new_index = np.full(len(mask) + 1, -1, np.int64)  # slot -1 keeps -1 for "no frame"
        new_index[keep] = np.arange(len(keep))
        self.columns = {key: arr[keep] for key, arr in self.columns.items()}
        self.infraction_ahead = self.columns["infraction_ahead"]
        for table in self.tables.values():
            offsets = table.pop("offsets")
            starts, counts = offsets[keep], np.diff(offsets)[keep]
            rows = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(counts.sum())
            for key in table:
                table[key] = table[key][rows]
            table["offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.infractions["before_index"] = new_index[self.infractions["before_index"]]

    # -- access -------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.columns["frame"])

    def _index(self, i: int) -> int:
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"frame index {i} out of range for a dataset of {n} frames")
        return int(i) % n

    def _values(self, i: int) -> tuple[list[Any], dict[str, list[Any]]]:
        values = [v[0] for v in decode_columns(FRAME_CODEC.columns, self.columns, self.vocab["frames"], i)]
        lists = {}
        for name, codec in LIST_CODECS.items():
            table = self.tables[name]
            rows = slice(int(table["offsets"][i]), int(table["offsets"][i + 1]))
            lists[name] = build_elements(codec, decode_columns(codec.columns, table, self.vocab[name], rows))
        return values, lists

    def scene(self, i: int) -> Scene:
        """The scene of frame ``i``, equal to the one recorded."""
        values, lists = self._values(self._index(i))
        return SCENE_CODEC.build(values, 0, lists)[0]

    def record(self, i: int) -> FrameRecord:
        """Frame ``i`` as recorded: scene, route completion, actions and controls."""
        values, lists = self._values(self._index(i))
        return FRAME_CODEC.build(values, 0, lists)[0]

    def sample(self, i: int) -> dict[str, Any]:
        """Plain-dict view for LangProp training (JSON-friendly: dicts, lists, str, float, bool, None).

        ``frame`` is the frame's index in its file (``file``); ``scene["frame"]`` is its simulation tick.
        """
        i = self._index(i)
        rec = self.record(i)

        def action(a: Any) -> dict[str, Any] | None:
            return None if a is None else {"speed_level": a.speed_level, "steering_deg": a.steering_deg,
                                           "target_speed": a.target_speed}

        episode = int(self.columns["episode"][i])
        return {
            "scene": rec.scene.to_dict(),
            "expert": action(rec.expert),
            "driver": action(rec.driver),
            "route_completion": rec.route_completion,
            "infraction_ahead": bool(self.infraction_ahead[i]),
            "file": str(self.files[episode]),
            "episode": episode,
            "frame": int(self.columns["index_in_episode"][i]),
        }

    def strings(self, table: str, column: str, codes: np.ndarray | None = None) -> np.ndarray:
        """Decode a string column (``table`` = "frames", a list name or "infractions") to an object array."""
        source = self.columns if table == "frames" else self.infractions if table == "infractions" \
            else self.tables[table]
        codes = source[column] if codes is None else codes
        words = np.array([*self.vocab[table][column], None], dtype=object)  # code -1 -> None
        return words[codes]


def _alloc(columns: Iterable[Column], n: int) -> dict[str, np.ndarray]:
    return {c.name: np.empty(n, dtype=DTYPES[c.kind]) for c in columns}


def _copy_into(dest: dict[str, np.ndarray], src: Mapping[str, np.ndarray], columns: Iterable[Column],
               file_vocab: Mapping[str, list[str]], shared: dict[str, dict[str, int]], rows: slice) -> None:
    for c in columns:
        values = src[c.name]
        if c.kind == "str":
            vocab = shared.setdefault(c.name, {word: i for i, word in enumerate(c.seed)})
            remap = np.array([vocab.setdefault(w, len(vocab)) for w in file_vocab[c.name]] + [-1], np.int32)
            values = remap[values]  # code -1 indexes the trailing -1
        dest[c.name][rows] = values
