"""Bytes between the trainer and its workers: length-prefixed frames, plain-data encoding, safe decoding.

Anything a worker sends back may have been forged by the policy running in it, so the trusted side
only ever decodes it with :func:`loads_plain`: a pickle reader that refuses every global (no class,
no function, hence no ``__reduce__`` payload) and rebuilds numpy arrays from raw bytes with a
whitelisted dtype. Workers turn policy outputs into that plain form with :func:`to_plain` before
sending, so a hostile object is rejected (as the policy's error) inside the worker.
"""

from __future__ import annotations

import io
import math
import pickle
import re
import struct
from typing import Any

import numpy as np

__all__ = [
    "HEADER",
    "MAX_DEPTH",
    "NotPlainData",
    "ProtocolError",
    "dumps",
    "frame",
    "from_plain",
    "loads_plain",
    "loads_unchecked",
    "to_plain",
]

HEADER = struct.Struct("<I")  # frame length prefix
MAX_DEPTH = 64  # nesting limit for outputs (also stops self-referencing lists)
# Containers the trusted side walks per output. Pickle's memo lets a few KB describe a DAG whose
# expansion has billions of nodes (l = [l] * 300, four times); the budget bounds that walk (~0.5 s).
MAX_CONTAINERS = 1_000_000
# Marks an encoded ndarray inside plain data; only rebuilt into an array on the trusted side.
_ARRAY_TAG = b"\x00langprop.ndarray\x00"
_DTYPE_OK = re.compile(r"^[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|[SU]\d{1,6})$")


class ProtocolError(RuntimeError):
    """A worker sent bytes that are not a valid message (corrupt, oversized or forged)."""


class NotPlainData(TypeError):
    """A policy output contains something other than plain data."""


def dumps(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def frame(payload: bytes) -> bytes:
    return HEADER.pack(len(payload)) + payload


class _PlainUnpickler(pickle.Unpickler):
    """Refuses every global: only the builtin containers and scalars pickle encodes natively."""

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle hook
        raise ProtocolError(f"worker message references {module}.{name}; only plain data is accepted")

    def persistent_load(self, pid: Any) -> Any:
        raise ProtocolError("worker message uses persistent ids; only plain data is accepted")


def loads_plain(data: bytes) -> Any:
    """Decode bytes from an untrusted worker into plain data (arrays rebuilt); raise ProtocolError."""
    return from_plain(loads_unchecked(data))


def loads_unchecked(data: bytes) -> Any:
    """Decode without the plain-data walk: no global can load, so the result holds only builtin
    containers and scalars; the caller must still pass untrusted parts through :func:`from_plain`."""
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except ProtocolError:
        raise
    except Exception as exc:  # truncated or garbage bytes
        raise ProtocolError(f"undecodable worker message: {type(exc).__name__}: {exc}") from None


def to_plain(obj: Any, depth: int = 0) -> Any:
    """Policy output → plain data (runs in the worker). numpy scalars become Python scalars."""
    if depth > MAX_DEPTH:
        raise NotPlainData(f"output is nested deeper than {MAX_DEPTH} levels (or refers to itself)")
    t = type(obj)
    if t in _SCALARS:
        return obj
    if t is tuple or t is list:
        for x in obj:  # the common case (a flat tuple of str/float), without a call per item
            if type(x) not in _SCALARS:
                break
        else:
            return obj if t is tuple else list(obj)  # a list is copied: the policy may mutate it later
        items = [to_plain(x, depth + 1) for x in obj]
        return items if t is list else tuple(items)
    if t is dict:
        return {_plain_key(k): to_plain(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return _encode_array(obj)
    if isinstance(obj, np.generic):
        return _numpy_scalar(obj)
    # Subclasses of the plain types (IntEnum, namedtuple, OrderedDict, str subclasses) lose their class.
    if isinstance(obj, bool):
        return bool(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, str):
        return str.__str__(obj)
    if isinstance(obj, bytes | bytearray | memoryview):
        return bytes(obj)
    if isinstance(obj, list | tuple):
        return to_plain(list(obj) if isinstance(obj, list) else tuple(obj), depth)
    if isinstance(obj, dict):
        return to_plain(dict(obj), depth)
    raise NotPlainData(
        f"output of type {t.__module__}.{t.__qualname__} is not plain data "
        "(allowed: None, bool, int, float, str, bytes, list, tuple, dict, numpy arrays/scalars)"
    )


def _plain_key(key: Any) -> Any:
    plain = to_plain(key, MAX_DEPTH - 1)
    if isinstance(plain, list | dict):
        raise NotPlainData(f"dict key of type {type(key).__name__} is not plain data")
    return plain


def _numpy_scalar(value: np.generic) -> Any:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.str_ | np.bytes_):
        return value.item()
    raise NotPlainData(f"numpy scalar of dtype {value.dtype} is not plain data")


def _encode_array(arr: np.ndarray) -> tuple[Any, ...]:
    dtype = arr.dtype.str
    if arr.dtype.hasobject or not _DTYPE_OK.match(dtype):
        raise NotPlainData(f"numpy array of dtype {arr.dtype} is not plain data (object/structured dtypes)")
    return (_ARRAY_TAG, dtype, tuple(int(n) for n in arr.shape), np.ascontiguousarray(arr).tobytes())


_SCALARS = frozenset((type(None), bool, int, float, str, bytes))


def from_plain(obj: Any, depth: int = 0, _budget: list[int] | None = None) -> Any:
    """Rebuild arrays inside decoded plain data; reject anything that is not plain (trusted side)."""
    t = type(obj)
    if t in _SCALARS:
        return obj
    if depth > MAX_DEPTH + 2:
        raise ProtocolError("worker message is nested too deeply")
    if _budget is None:
        _budget = [MAX_CONTAINERS]
    _budget[0] -= 1
    if _budget[0] < 0:
        raise ProtocolError(f"worker output holds more than {MAX_CONTAINERS:,} containers (shared references expanded)")
    if t is tuple:
        if len(obj) == 4 and obj[0] == _ARRAY_TAG:
            return _decode_array(obj)
        if all(type(x) in _SCALARS for x in obj):  # the common case, without a call per item
            return obj
        return tuple(from_plain(x, depth + 1, _budget) for x in obj)
    if t is list:
        if all(type(x) in _SCALARS for x in obj):
            return obj
        return [from_plain(x, depth + 1, _budget) for x in obj]
    if t is dict:
        return {from_plain(k, depth + 1, _budget): from_plain(v, depth + 1, _budget) for k, v in obj.items()}
    raise ProtocolError(f"worker message holds a {t.__name__}, which is not plain data")


def _decode_array(obj: tuple[Any, ...]) -> np.ndarray:
    _, dtype, shape, data = obj
    if not (isinstance(dtype, str) and _DTYPE_OK.match(dtype)):
        raise ProtocolError(f"worker sent an array with unsupported dtype {dtype!r}")
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)) or type(data) is not bytes:
        raise ProtocolError("worker sent a malformed array")
    dt = np.dtype(dtype)
    if math.prod(shape) * dt.itemsize != len(data):
        raise ProtocolError("worker sent an array whose size does not match its shape")
    return np.frombuffer(data, dtype=dt).reshape(shape).copy()
