"""What an episode file stores, derived from the dataclasses so the two can never drift apart.

Every dataclass that is recorded (``Scene`` and its parts, ``Action``, ``VehicleControl``,
``InfractionEvent``) is flattened into *columns* by walking ``dataclasses.fields`` with resolved
type hints. A field added to ``Scene`` is therefore stored automatically; a field of a type this
module cannot store raises ``SchemaError`` at import time instead of being silently dropped.

Flattening rules (column names are dotted field paths, e.g. ``ego.x``, ``traffic_light.state``):

- ``float`` -> float64, ``int`` -> int64, ``bool`` -> bool, ``str`` -> int32 codes into a per-file
  vocabulary (lossless for any string; ``-1`` = absent). Known enumerations seed the vocabulary so
  their codes are stable across files (``expert.speed_level`` codes are ``SPEED_LEVELS`` indices).
- A nested dataclass is inlined with its field name as prefix.
- ``X | None`` (scalar or dataclass) adds a bool ``<name>.present`` column before the value
  columns; absent values are stored as NaN / 0 / False / -1 and read back as ``None``.
- ``list[Dataclass]`` (only directly on ``Scene``) becomes a *list table*: one flat row per element
  plus an ``(N + 1,)`` offsets array, frame ``i`` owning rows ``offsets[i]:offsets[i + 1]``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from driving.actions import SPEED_LEVELS, Action
from driving.criteria.events import INFRACTION_KINDS, InfractionEvent
from driving.scene import SCENE_SCHEMA_VERSION, Actor, RoutePoint, Scene, TrafficLight
from driving.types import RoadOption, VehicleControl

__all__ = [
    "DATASET_SCHEMA_VERSION", "SCENE_SCHEMA_VERSION", "DatasetFileError", "FrameRecord", "SchemaError",
    "Column", "StructCodec", "SCENE_CODEC", "FRAME_CODEC", "LIST_CODECS", "INFRACTION_CODEC", "PRESENT_SUFFIX",
    "PARTIAL_SUFFIX", "table_path", "attr_value",
]

# Bump when the on-disk layout changes (not when Scene changes: that is SCENE_SCHEMA_VERSION).
DATASET_SCHEMA_VERSION = 1
PRESENT_SUFFIX = ".present"
PARTIAL_SUFFIX = ".partial"  # an episode file while (or if) its writer has not finished


class SchemaError(TypeError):
    """A recorded dataclass has a field type the episode format cannot store."""


class DatasetFileError(ValueError):
    """An episode file that cannot be read: names the file and what is wrong with it."""

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class FrameRecord:
    """One recorded tick: the scene the driver acted on, the label and what was applied."""

    scene: Scene
    route_completion: float  # % of the route completed at this frame
    expert: Action | None  # the label (None when there is no labeller)
    expert_control: VehicleControl | None  # the labeller's control for this scene
    driver: Action | None  # what the driving policy decided (None for a driver without actions)
    driver_control: VehicleControl  # what was applied to the ego


# Initial vocabularies of known enumerations, keyed by (dataclass, field name).
_SEEDS: dict[tuple[type, str], tuple[str, ...]] = {
    (RoutePoint, "road_option"): tuple(o.name for o in RoadOption),
    (Actor, "kind"): ("vehicle", "pedestrian", "static"),
    (TrafficLight, "state"): ("red", "yellow", "green", "off"),
    (Action, "speed_level"): SPEED_LEVELS,
    (InfractionEvent, "kind"): INFRACTION_KINDS,
}
_SCALARS = {float: "float", int: "int", bool: "bool", str: "str"}


@dataclass(frozen=True)
class Column:
    """One stored leaf: a dotted name, its kind (float | int | bool | str) and string seeds."""

    name: str
    kind: str
    seed: tuple[str, ...] = ()
    nullable: bool = False  # inside an ``X | None``: the value is None when its .present flag is False


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
        raise SchemaError(f"unsupported union type {tp!r}")
    return tp, False


class StructCodec:
    """Flattens one dataclass type into columns; ``extract`` / ``build`` convert an instance.

    ``extract(obj)`` returns the tuple of leaf values in column order (``None`` where absent);
    ``build(values, pos, lists)`` rebuilds an instance from ``values[pos:]`` and returns it with the
    next position. List fields are not columns: ``lists`` maps their names to the built elements.
    """

    def __init__(self, cls: type, prefix: str = "", inline: Sequence[str] = (), allow_lists: bool = False):
        self.cls = cls
        self.columns: list[Column] = []
        self.lists: dict[str, StructCodec] = {}
        self._getters: list[Callable[[Any], tuple]] = []
        self._builders: list[tuple[str, Callable[[Sequence[Any], int, dict], tuple[Any, int]]]] = []
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            self._add_field(f.name, hints[f.name], prefix, f.name in inline, allow_lists)

    # -- construction -------------------------------------------------------------------------------
    def _add_field(self, name: str, tp: Any, prefix: str, inline: bool, allow_lists: bool) -> None:
        path = f"{prefix}{name}"
        base, optional = _unwrap_optional(tp)
        getter: Callable[[Any], tuple]
        if typing.get_origin(base) is list:
            (elem,) = typing.get_args(base)
            if optional or not allow_lists or not dataclasses.is_dataclass(elem):
                raise SchemaError(f"{self.cls.__name__}.{name}: only list[dataclass] on Scene is storable")
            self.lists[name] = StructCodec(elem)
            self._builders.append((name, lambda v, p, lists, _n=name: (lists[_n], p)))
            return
        if dataclasses.is_dataclass(base):
            sub = StructCodec(base, "" if inline else f"{path}.")
            if sub.lists:
                raise SchemaError(f"{self.cls.__name__}.{name}: lists are storable only directly on Scene")
            sub_extract, sub_build, width = sub.extract, sub.build, len(sub.columns)
        elif base in _SCALARS:
            sub = None
            width = 1
            seed = _SEEDS.get((self.cls, name), ())
        else:
            raise SchemaError(f"{self.cls.__name__}.{name}: cannot store field of type {tp!r}")

        if optional:
            self.columns.append(Column(path + PRESENT_SUFFIX, "bool"))
        leaves = sub.columns if sub is not None else [Column(path, _SCALARS[base], seed)]
        self.columns.extend(dataclasses.replace(c, nullable=True) if optional else c for c in leaves)

        # Extraction/building closures: plain attribute access, no per-call introspection.
        if sub is None and not optional:
            getter = lambda o, _n=name: (getattr(o, _n),)  # noqa: E731
            builder = lambda v, p, lists: (v[p], p + 1)  # noqa: E731
        elif sub is None:
            getter = lambda o, _n=name: (False, None) if (x := getattr(o, _n)) is None else (True, x)  # noqa: E731
            builder = lambda v, p, lists: (v[p + 1] if v[p] else None, p + 2)  # noqa: E731
        elif not optional:
            getter = lambda o, _n=name, _e=sub_extract: _e(getattr(o, _n))  # noqa: E731
            builder = lambda v, p, lists, _b=sub_build: _b(v, p, lists)  # noqa: E731
        else:
            absent = (False,) + (None,) * width
            getter = lambda o, _n=name, _e=sub_extract, _a=absent: (  # noqa: E731
                _a if (x := getattr(o, _n)) is None else (True, *_e(x)))
            builder = lambda v, p, lists, _b=sub_build, _w=width: (  # noqa: E731
                (_b(v, p + 1, lists)[0], p + 1 + _w) if v[p] else (None, p + 1 + _w))
        self._getters.append(getter)
        self._builders.append((name, builder))

    # -- conversion ---------------------------------------------------------------------------------
    def extract(self, obj: Any) -> tuple:
        out: tuple = ()
        for get in self._getters:
            out += get(obj)
        return out

    def build(self, values: Sequence[Any], pos: int = 0, lists: dict | None = None) -> tuple[Any, int]:
        kwargs = {}
        for name, builder in self._builders:
            kwargs[name], pos = builder(values, pos, lists or {})
        return self.cls(**kwargs), pos

    @property
    def flat(self) -> bool:
        """True when instances are ``cls(*row)`` (all fields plain scalars, in column order)."""
        return not self.lists and [c.name for c in self.columns] == [f.name for f in dataclasses.fields(self.cls)]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _make_frame_codec() -> StructCodec:
    # Build FrameRecord's codec with the scene inlined and lists allowed on the scene only.
    codec = StructCodec.__new__(StructCodec)
    codec.cls = FrameRecord
    codec.columns, codec.lists, codec._getters, codec._builders = [], {}, [], []
    hints = typing.get_type_hints(FrameRecord)
    scene = SCENE_CODEC
    for f in dataclasses.fields(FrameRecord):
        if f.name == "scene":
            codec.columns.extend(scene.columns)
            codec.lists = scene.lists
            codec._getters.append(lambda o, _e=scene.extract: _e(o.scene))
            codec._builders.append(("scene", lambda v, p, lists, _b=scene.build: _b(v, p, lists)))
        else:
            codec._add_field(f.name, hints[f.name], "", False, False)
    names = codec.names
    if len(set(names)) != len(names):
        raise SchemaError(f"duplicate column names in the frame layout: {names}")
    return codec


SCENE_CODEC = StructCodec(Scene, allow_lists=True)  # its columns are the first of FRAME_CODEC's
FRAME_CODEC = _make_frame_codec()
LIST_CODECS: dict[str, StructCodec] = FRAME_CODEC.lists
INFRACTION_CODEC = StructCodec(InfractionEvent)



def table_path(table: str) -> str:
    """Where a table ("frames", "infractions" or a list name) lives in an episode file."""
    return table if table in ("frames", "infractions") else f"lists/{table}"


def attr_value(value: Any) -> Any:
    """An HDF5 attribute value as a plain Python value (numpy scalars -> int/float/bool)."""
    return value.item() if isinstance(value, np.generic) else value


# -- objects <-> column arrays ---------------------------------------------------------------------
KINDS = ("float", "int", "bool", "str")  # one 2-D block per kind and table on disk
DTYPES = {"float": np.dtype(np.float64), "int": np.dtype(np.int64), "bool": np.dtype(np.bool_),
          "str": np.dtype(np.int32)}
_FILL = {"float": float("nan"), "int": 0, "bool": False}


class Vocabulary(dict):
    """String -> code, growing on first sight (``None`` -> -1); ``words`` lists codes 0, 1, ..."""

    def __init__(self, column: Column) -> None:
        super().__init__({None: -1})
        self.column = column
        for word in column.seed:
            self[word] = len(self) - 1

    def __missing__(self, word: Any) -> int:
        if not isinstance(word, str):
            raise TypeError(f"column {self.column.name!r} holds strings, got {word!r}")
        code = self[word] = len(self) - 1
        return code

    @property
    def words(self) -> list[str]:
        return [w for w in self if w is not None]


def by_kind(columns: Sequence[Column]) -> dict[str, list[Column]]:
    """The columns of each kind, in column order (the row order of that kind's block)."""
    return {kind: [c for c in columns if c.kind == kind] for kind in KINDS}


def encode_rows(columns: Sequence[Column], rows: Sequence[tuple], vocabs: dict[str, Vocabulary]
                ) -> dict[str, np.ndarray]:
    """Row tuples (from ``StructCodec.extract``) -> one ``(n_columns_of_kind, n_rows)`` block per kind.

    Values are cast to the column's type (float64, int64, bool); strings become codes into
    ``vocabs[column.name]`` (created and grown here); ``None`` of nullable columns is stored as
    NaN / 0 / False / -1. Raises ``TypeError`` naming the column for values that do not fit.
    """
    # One structured array from the tuples (a single C loop) beats transposing them in Python.
    fields = [(f"f{j}", object if c.nullable or c.kind == "str" else DTYPES[c.kind]) for j, c in enumerate(columns)]
    try:
        table = np.array(rows, dtype=fields) if rows else np.zeros(0, dtype=fields)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"a value does not fit its column ({exc}); columns: {[c.name for c in columns]}") from None
    blocks = {kind: np.empty((len(cols), len(table)), DTYPES[kind]) for kind, cols in by_kind(columns).items()}
    position = dict.fromkeys(KINDS, 0)
    for j, c in enumerate(columns):
        values = table[f"f{j}"]
        if c.kind == "str":
            vocab = vocabs.get(c.name)
            if vocab is None:
                vocab = vocabs[c.name] = Vocabulary(c)
            values = np.fromiter(map(vocab.__getitem__, values), np.int32, count=len(values))
        elif values.dtype == object:
            missing = np.equal(values, None)
            if missing.any():
                values = values.copy()
                values[missing] = _FILL[c.kind]
            try:
                values = values.astype(DTYPES[c.kind])
            except (TypeError, ValueError) as exc:
                raise TypeError(f"column {c.name!r} holds {c.kind} values ({exc})") from None
        blocks[c.kind][position[c.kind]] = values
        position[c.kind] += 1
    return blocks


def decode_columns(columns: Sequence[Column], arrays: dict[str, np.ndarray], vocab: dict[str, Sequence[str]],
                   index: slice | int = slice(None)) -> list[list[Any]]:
    """Arrays (sliced by ``index``) -> one list of Python values per column, strings decoded."""
    out = []
    for c in columns:
        values = np.atleast_1d(arrays[c.name][index]).tolist()
        if c.kind == "str":
            words = vocab.get(c.name, ())
            values = [words[v] if v >= 0 else None for v in values]
        out.append(values)
    return out


def build_elements(codec: StructCodec, values: list[list[Any]]) -> list[Any]:
    """Decoded column lists of a list table -> its dataclass instances, in row order."""
    rows = zip(*values, strict=True)
    if codec.flat:
        cls = codec.cls
        return [cls(*row) for row in rows]
    return [codec.build(row)[0] for row in rows]
