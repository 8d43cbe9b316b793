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

Loading makes two passes over the files. The first reads and checks everything but the column data
(attributes, sizes, each block's ``columns`` attribute, vocabularies), so one ``(columns, rows)``
array per table and kind can be allocated for all files; the second decompresses each file's
blocks straight into their slice of it (``columns[name]`` is a row of that array: no per-file
copy), remaps string codes into the shared vocabularies and rebases the list offsets. A block
whose stored column order is not the codec's is read whole and its rows picked instead. Files are
opened without a chunk cache (each chunk is inflated once) and up to ``KEEP_OPEN`` stay open
between the passes.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import hdf5plugin  # noqa: F401 - registers the Blosc filter the episode files use
import numpy as np
from h5py import h5a, h5d, h5o, h5s, h5t

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


# Every stored table ("frames", the list names, "infractions") -> its columns, and per table the
# column names of each kind's block in codec order (the row order a writer of this schema uses).
_TABLES: dict[str, list[Column]] = {"frames": FRAME_CODEC.columns,
                                   **{name: codec.columns for name, codec in LIST_CODECS.items()},
                                   "infractions": INFRACTION_CODEC.columns}
_BLOCKS: dict[str, dict[str, list[str]]] = {
    table: {kind: [c.name for c in cols] for kind, cols in by_kind(columns).items() if cols}
    for table, columns in _TABLES.items()}
_ROW: dict[str, dict[str, tuple[str, int]]] = {  # table -> column -> (kind, row in that kind's block)
    table: {name: (kind, j) for kind, names in kinds.items() for j, name in enumerate(names)}
    for table, kinds in _BLOCKS.items()}


def check_header(path: Path, f: h5py.File | Mapping[str, Any]) -> None:
    """Raise ``DatasetFileError`` unless ``f`` (a file or its attributes) is a complete file of this schema."""
    attrs = f.attrs if isinstance(f, h5py.File) else f
    if not bool(attrs.get("complete", False)):
        raise DatasetFileError(path, "incomplete episode file (no complete=True attribute: its writer did not "
                                     "finish)")
    for key, expected in (("schema_version", DATASET_SCHEMA_VERSION), ("scene_schema_version", SCENE_SCHEMA_VERSION)):
        found = attrs.get(key)
        if found is None:
            raise DatasetFileError(path, f"missing attribute {key!r}")
        if int(found) != expected:
            raise DatasetFileError(path, f"{key} is {int(found)}, this code reads {expected}")


# Low-level h5py (h5o/h5a/h5d) throughout: the high-level objects cost ~30-100 us per group, dataset
# or attribute lookup, which was a quarter of the load time of a folder of 2000-frame files (~100
# objects each); the low-level calls cost ~5-20 us.
_VLEN_STR = h5py.string_dtype()  # variable-length strings: what h5py writes for ``str``


def _read_strings(obj: h5a.AttrID | h5d.DatasetID, shape: tuple[int, ...]) -> np.ndarray:
    """``obj``'s values; variable-length strings (what h5py writes for ``str``) come back as bytes."""
    read = obj.read if isinstance(obj, h5a.AttrID) else lambda a: obj.read(h5s.ALL, h5s.ALL, a)
    values = np.empty(shape, _VLEN_STR)
    try:
        read(values)
    except OSError:  # not variable-length strings (HDF5 has no conversion path): read as stored
        values = np.empty(shape, obj.dtype)
        read(values)
    return values


def _attr(f: h5py.File, attr: h5a.AttrID) -> Any:
    """One attribute of ``f``'s root as a plain value (scalars and strings; others as h5py reads them)."""
    if attr.shape == ():
        stored = attr.get_type()
        if isinstance(stored, h5t.TypeStringID) and stored.is_variable_str():
            value = _read_strings(attr, ())[()]
            return value.decode("utf-8" if stored.get_cset() == h5t.CSET_UTF8 else "ascii")
        dtype = stored.dtype
        if dtype.kind in "biuf":
            value = np.empty((), dtype)
            attr.read(value)
            return attr_value(value[()])
    return attr_value(f.attrs[attr.name.decode()])


def _root_attrs(f: h5py.File) -> dict[str, Any]:
    root = h5o.open(f.id, b"/")
    attrs = (h5a.open(root, index=i) for i in range(h5a.get_num_attrs(root)))
    return {a.name.decode(): _attr(f, a) for a in attrs}


def _is_complete(f: h5py.File) -> bool:
    try:
        return bool(_attr(f, h5a.open(f.id, b"complete")))
    except KeyError:
        return False


def _dataset(path: Path, f: h5py.File, name: str) -> h5d.DatasetID:
    try:
        return h5d.open(f.id, name.encode())
    except KeyError:  # missing, or not a dataset
        raise DatasetFileError(path, f"missing dataset /{name}") from None


def _text(ds: h5d.DatasetID) -> str:
    """A scalar string dataset (JSON of /meta and the vocabularies)."""
    value = _read_strings(ds, ds.shape)[()]
    return value.decode() if isinstance(value, bytes) else str(value)


def _column_names(ds: h5d.DatasetID) -> list[str]:
    try:
        attr = h5a.open(ds, b"columns")
    except KeyError:
        return []
    shape = attr.shape
    if shape is None or len(shape) != 1:
        return []
    return [n.decode() if isinstance(n, bytes) else str(n) for n in _read_strings(attr, shape).tolist()]


@dataclass
class _Layout:
    """What one file holds, read and checked before any column is: sizes, each block's row order,
    vocabularies. ``order[(table, kind)]`` is None when the stored block's rows are exactly the
    codec's columns (read straight into place), else the stored row of each codec column.
    ``datasets``: the file's open dataset handles by name while it is kept open between passes."""

    path: Path
    attrs: dict[str, Any]
    summary: dict[str, Any]
    n_frames: int
    rows: dict[str, int]  # table -> rows (frames: n_frames; a list: its elements; infractions: events)
    shapes: dict[tuple[str, str], tuple[int, int]]  # (table, kind) -> stored (columns, rows)
    order: dict[tuple[str, str], np.ndarray | None]
    vocab: dict[str, dict[str, list[str]]]
    datasets: dict[str, h5d.DatasetID]


def _read_meta(f: h5py.File, attrs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    attrs = dict(attrs)
    summary: dict[str, Any] = {}
    try:
        meta = h5o.open(f.id, b"meta")
    except KeyError:
        return attrs, summary
    for key in meta:
        value = json.loads(_text(h5d.open(meta, key)))
        if key == b"summary":
            summary = value
        else:
            attrs[key.decode()] = value
    return attrs, summary


def _scan(path: Path, f: h5py.File, attrs: dict[str, Any], keep: bool = True) -> _Layout:
    """Everything but the column data of one open file, validated (``DatasetFileError`` otherwise).
    ``keep``: remember the open dataset handles (the file stays open until its blocks are read)."""
    attrs, summary = _read_meta(f, attrs)
    if "n_frames" not in attrs:
        raise DatasetFileError(path, "missing attribute 'n_frames'")
    n = int(attrs["n_frames"])
    rows: dict[str, int] = {}
    shapes: dict[tuple[str, str], tuple[int, int]] = {}
    order: dict[tuple[str, str], np.ndarray | None] = {}
    vocab: dict[str, dict[str, list[str]]] = {}
    datasets: dict[str, h5d.DatasetID] = {}
    for table, kinds in _BLOCKS.items():
        where = table_path(table)
        for kind, codec_names in kinds.items():
            ds = datasets[f"{where}/{kind}"] = _dataset(path, f, f"{where}/{kind}")
            shape = ds.shape
            if len(shape) != 2:
                raise DatasetFileError(path, f"missing dataset /{where}/{kind}")
            names = _column_names(ds)
            if len(names) != shape[0]:
                raise DatasetFileError(path, f"/{where}/{kind} has {shape[0]} rows but {len(names)} column names")
            if names == codec_names:
                order[table, kind] = None
            else:  # another column order (or extra columns): read the block, then pick its rows
                position = {name: i for i, name in enumerate(names)}
                missing = [name for name in codec_names if name not in position]
                if missing:
                    raise DatasetFileError(path, f"missing column {missing[0]!r} in /{where}/{kind}")
                order[table, kind] = np.array([position[name] for name in codec_names], np.intp)
            shapes[table, kind] = shape
            expected = n if table == "frames" else rows.setdefault(table, shape[1])
            if shape[1] != expected:
                what = f"expected n_frames={n}" if table == "frames" else f"other columns of /{where} have {expected}"
                raise DatasetFileError(path, f"/{where}/{kind} has {shape[1]} rows, {what}")
        rows.setdefault(table, n)
        if table in LIST_CODECS:
            ds = datasets[f"{where}/offsets"] = _dataset(path, f, f"{where}/offsets")
            if ds.shape != (n + 1,):
                raise DatasetFileError(path, f"/{where}/offsets is not a valid ({n + 1},) offsets array")
        if "str" in kinds:
            stored = json.loads(_text(_dataset(path, f, f"{where}/vocab")))
            vocab[table] = {name: list(stored.get(name, [])) for name in kinds["str"]}
        else:
            vocab[table] = {}
    return _Layout(path, attrs, summary, n, rows, shapes, order, vocab, datasets if keep else {})


def _read_blocks(f: h5py.File, layout: _Layout, blocks: Mapping[tuple[str, str], np.ndarray],
                 offsets: Mapping[str, np.ndarray], start: Mapping[str, int],
                 remaps: Mapping[tuple[str, str], np.ndarray | None] | None = None) -> None:
    """Decompress every table of one file into ``blocks[(table, kind)][:, start[table]:][:, :rows]``
    and its list offsets, rebased by ``start[list]``, into ``offsets[list][start["frames"]:][:n + 1]``.

    A block whose stored rows are the codec's columns is read straight into place (HDF5 inflates
    each chunk and copies it into the destination slice: no per-file array); others are read whole
    and their rows picked (the fallback, e.g. for a file whose writer ordered columns differently). String codes are checked against the file's vocabulary and, with ``remaps``, mapped
    into shared ones in place."""
    path, n = layout.path, layout.n_frames

    def dataset(name: str, shape: tuple[int, ...]) -> h5d.DatasetID:
        ds = layout.datasets.pop(name, None)  # still open from _scan: known shape
        if ds is None:
            ds = _dataset(path, f, name)
            if ds.shape != shape:
                raise DatasetFileError(path, "changed while the dataset was loading")
        return ds

    for (table, kind), shape in layout.shapes.items():
        where = table_path(table)
        ds = dataset(f"{where}/{kind}", shape)
        block, lo, rows = blocks[table, kind], start[table], shape[1]
        order = layout.order[table, kind]
        if rows == 0:
            pass
        elif order is None and lo == 0 and rows == block.shape[1]:
            ds.read(h5s.ALL, h5s.ALL, block)
        elif order is None:
            memory = h5s.create_simple(block.shape)
            memory.select_hyperslab((0, lo), (block.shape[0], rows))
            ds.read(memory, h5s.ALL, block)
        else:
            stored = np.empty(shape, block.dtype)
            ds.read(h5s.ALL, h5s.ALL, stored)
            block[:, lo:lo + rows] = stored[order]
        if kind != "str" or rows == 0:
            continue
        for j, name in enumerate(_BLOCKS[table]["str"]):
            codes = block[j, lo:lo + rows]
            if int(codes.max()) >= len(layout.vocab[table][name]) or int(codes.min()) < -1:
                raise DatasetFileError(path, f"/{where}/str column {name!r} has codes beyond its vocabulary")
            remap = None if remaps is None else remaps[table, name]
            if remap is not None:
                np.take(remap, codes, out=codes)  # code -1 indexes remap's trailing -1
    lo = start["frames"]
    for name in LIST_CODECS:
        dest = offsets[name][lo:lo + n + 1]
        ds = dataset(f"lists/{name}/offsets", (n + 1,))
        memory = h5s.create_simple(offsets[name].shape)
        memory.select_hyperslab((lo,), (n + 1,))
        ds.read(memory, h5s.ALL, offsets[name])
        if dest[0] != 0 or np.any(dest[1:] < dest[:-1]):
            raise DatasetFileError(path, f"/lists/{name}/offsets is not a valid ({n + 1},) offsets array")
        if dest[-1] != layout.rows[name]:
            raise DatasetFileError(path, f"/lists/{name} columns have {layout.rows[name]} rows, offsets say "
                                         f"{dest[-1]}")
        if start[name]:
            dest += start[name]
    layout.datasets.clear()


def _alloc_blocks(rows: Mapping[str, int]) -> dict[tuple[str, str], np.ndarray]:
    return {(table, kind): np.empty((len(names), rows[table]), DTYPES[kind])
            for table, kinds in _BLOCKS.items() for kind, names in kinds.items()}


def _columns(table: str, blocks: Mapping[tuple[str, str], np.ndarray]) -> dict[str, np.ndarray]:
    """A table's columns in codec order: row views of its blocks (no copy)."""
    return {c.name: blocks[table, _ROW[table][c.name][0]][_ROW[table][c.name][1]] for c in _TABLES[table]}


def _open_file(path: Path) -> h5py.File:
    if path.name.endswith(PARTIAL_SUFFIX):
        raise DatasetFileError(path, "partial episode file: its writer has not finished or crashed")
    if not path.is_file():
        raise DatasetFileError(path, "no such file")
    try:
        # No chunk cache: every chunk is inflated once, straight into the reader's array.
        return h5py.File(path, "r", rdcc_nbytes=0)
    except OSError as exc:
        raise DatasetFileError(path, f"not a readable HDF5 file ({exc})") from None


@contextlib.contextmanager
def _unreadable(path: Path) -> Iterator[None]:
    try:
        yield
    except (OSError, KeyError, RuntimeError) as exc:  # h5py's errors for damaged content
        raise DatasetFileError(path, f"unreadable content ({exc})") from None


@contextlib.contextmanager
def _open(path: str | Path) -> Iterator[tuple[h5py.File, dict[str, Any]]]:
    """(file, root attributes) of a complete episode file of this schema; see ``open_episode``."""
    path = Path(path)
    with _open_file(path) as f, _unreadable(path):
        attrs = _root_attrs(f)
        check_header(path, attrs)
        yield f, attrs


@contextlib.contextmanager
def open_episode(path: str | Path) -> Iterator[h5py.File]:
    """Open a complete episode file of this schema for reading; ``DatasetFileError`` otherwise
    (partial, missing, not HDF5, incomplete, other schema version, or unreadable content).
    The file is opened without a chunk cache (whole datasets are read once)."""
    with _open(path) as (f, _):
        yield f


def read_metadata(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes incl. JSON provenance, summary) of a complete episode file, without its frames."""
    with _open(path) as (f, attrs):
        return _read_meta(f, attrs)


def read_raw(path: str | Path) -> RawEpisode:
    """Open, validate and read every dataset of one episode file (``DatasetFileError`` if unusable)."""
    path = Path(path)
    with _open(path) as (f, attrs):
        layout = _scan(path, f, attrs)
        blocks = _alloc_blocks(layout.rows)
        offsets = {name: np.empty(layout.n_frames + 1, np.int64) for name in LIST_CODECS}
        _read_blocks(f, layout, blocks, offsets, dict.fromkeys(_TABLES, 0))
    lists = {name: {**_columns(name, blocks), "offsets": offsets[name]} for name in LIST_CODECS}
    return RawEpisode(path, layout.attrs, layout.summary, _columns("frames", blocks), lists,
                      _columns("infractions", blocks), layout.vocab)


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
def _candidates(paths_or_dir: str | Path | Iterable[str | Path]) -> tuple[list[tuple[Path, bool]], str]:
    """(path, found in a directory) of every file ``paths_or_dir`` names, and how to name it in errors."""
    items = [paths_or_dir] if isinstance(paths_or_dir, str | Path) else list(paths_or_dir)
    files: list[tuple[Path, bool]] = []
    for item in map(Path, items):
        if not item.is_dir():
            files.append((item, False))
            continue
        files += [(path, True) for path in
                  sorted(item.rglob(f"*{EPISODE_SUFFIX}"), key=lambda p: p.relative_to(item).as_posix())]
    where = str(items[0]) if len(items) == 1 else ", ".join(map(str, items)) or "(no paths)"
    return files, where


def _skip_incomplete(path: Path) -> None:
    log.warning("skipping %s: incomplete episode file (its writer did not finish)", path)


def _none_found(where: str) -> DatasetFileError:
    return DatasetFileError(where, f"no complete episode files (*{EPISODE_SUFFIX}) found")


def find_episode_files(paths_or_dir: str | Path | Iterable[str | Path]) -> list[Path]:
    """Episode files named by ``paths_or_dir``: a directory (every ``*.h5`` below it, sorted by
    relative path; files without ``complete=True`` are skipped with a warning), a file, or a list of
    them. Explicitly named files must be complete. Raises ``DatasetFileError`` if none is found."""
    candidates, where = _candidates(paths_or_dir)
    files: list[Path] = []
    for path, in_directory in candidates:
        if in_directory:
            try:
                with h5py.File(path, "r") as f:
                    complete = _is_complete(f)
            except OSError as exc:
                raise DatasetFileError(path, f"not a readable HDF5 file ({exc})") from None
            if not complete:
                _skip_incomplete(path)
                continue
        files.append(path)
    if not files:
        raise _none_found(where)
    return files


# Files kept open between the loader's two passes (their dataset handles are reused); beyond this
# many, a file is closed after the first pass and opened again for the second.
KEEP_OPEN = 128


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
        self.files: list[Path] = []
        self.attrs: list[dict[str, Any]] = []  # per file: attributes incl. JSON provenance
        self.summaries: list[dict[str, Any]] = []
        self.vocab: dict[str, dict[str, list[str]]] = {}
        self._load(paths_or_dir)
        self._mark_infractions()
        mask = self.columns["expert.present"].copy() if labelled_only else np.ones(len(self), bool)
        if where is not None:
            mask &= np.asarray(where(self.columns), dtype=bool)
        if not mask.all():
            self._select(mask)

    # -- loading ------------------------------------------------------------------------------------
    def _load(self, paths_or_dir: str | Path | Iterable[str | Path]) -> None:
        # Pass 1: every file's sizes, column orders and vocabularies (no column data), so each
        # (table, kind) block is allocated once for all files. Pass 2: each file's blocks are
        # decompressed straight into their slice of it; columns are row views of the blocks.
        candidates, where = _candidates(paths_or_dir)
        layouts: list[_Layout] = []
        handles: list[h5py.File | None] = []  # files kept open for pass 2
        with contextlib.ExitStack() as stack:
            for path, in_directory in candidates:
                f = stack.enter_context(_open_file(path))
                with _unreadable(path):
                    attrs = _root_attrs(f)
                    if in_directory and not attrs.get("complete", False):
                        _skip_incomplete(path)
                        f.close()
                        continue
                    check_header(path, attrs)
                    keep = len(layouts) < KEEP_OPEN
                    layouts.append(_scan(path, f, attrs, keep))
                if not keep:
                    f.close()
                handles.append(f if keep else None)
            if not layouts:
                raise _none_found(where)
            self._read_all(layouts, handles)

    def _read_all(self, layouts: list[_Layout], handles: list[h5py.File | None]) -> None:
        self.files = [layout.path for layout in layouts]
        self.attrs = [layout.attrs for layout in layouts]
        self.summaries = [layout.summary for layout in layouts]
        base = {table: np.concatenate([[0], np.cumsum([layout.rows[table] for layout in layouts])]).astype(np.int64)
                for table in _TABLES}
        n_frames = [layout.n_frames for layout in layouts]
        frame_base, total = base["frames"], int(base["frames"][-1])
        blocks = _alloc_blocks({table: int(b[-1]) for table, b in base.items()})
        offsets = {name: np.zeros(total + 1, np.int64) for name in LIST_CODECS}
        vocabs: dict[str, dict[str, dict[str, int]]] = {table: {} for table in _TABLES}
        for k, (layout, f) in enumerate(zip(layouts, handles, strict=True)):
            remaps = {}  # file codes -> codes of the shared vocabularies (None: the same)
            for table, columns in _TABLES.items():
                for c in columns:
                    if c.kind == "str":
                        shared = vocabs[table].setdefault(c.name, {word: i for i, word in enumerate(c.seed)})
                        words = layout.vocab[table][c.name]
                        remap = np.array([shared.setdefault(w, len(shared)) for w in words] + [-1], np.int32)
                        remaps[table, c.name] = None if np.array_equal(remap[:-1], np.arange(len(words))) else remap
            with contextlib.ExitStack() as stack:
                if f is None:
                    f = stack.enter_context(_open_file(layout.path))
                stack.callback(f.close)
                with _unreadable(layout.path):
                    _read_blocks(f, layout, blocks, offsets, {table: int(b[k]) for table, b in base.items()},
                                 remaps)
        columns = _columns("frames", blocks)
        columns["episode"] = np.repeat(np.arange(len(layouts), dtype=np.int32), n_frames)
        columns["index_in_episode"] = np.arange(total, dtype=np.int64) - np.repeat(frame_base[:-1], n_frames)
        self.columns = columns
        self.tables = {name: {**_columns(name, blocks), "offsets": offsets[name]} for name in LIST_CODECS}
        self.infractions = _columns("infractions", blocks)
        self.infractions["episode"] = np.repeat(np.arange(len(layouts), dtype=np.int32),
                                                np.diff(base["infractions"]))
        self.vocab = {table: {col: list(words) for col, words in cols.items()} for table, cols in vocabs.items()}
        self._frame_base = frame_base
        log.info("loaded %d frames from %d episode files", total, len(layouts))

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

