"""EpisodeWriter / read_episode: lossless round trips, attributes, crash safety, refusal of bad files."""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import types
import typing
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest

from data_collection import DATASET_SCHEMA_VERSION, DatasetFileError, EpisodeWriter, FrameRecord, read_episode
from data_collection.dataset import DrivingDataset
from data_collection.schema import FRAME_CODEC, LIST_CODECS, PRESENT_SUFFIX, SchemaError, StructCodec
from data_collection.storage import read_metadata
from driving.actions import SPEED_LEVELS, Action
from driving.scene import SCENE_SCHEMA_VERSION, Actor, EgoState, RoutePoint, Scene, StopSign, TrafficLight
from driving.types import VehicleControl

REPO = Path(__file__).resolve().parents[2]


def _bare_scene(tick: int) -> Scene:
    """Every optional None, every list empty."""
    return Scene(frame=tick, timestamp=0.0, ego=EgoState(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0), route=[],
                 target=None, vehicles=[], pedestrians=[], traffic_light=None, stop_signs=[], speed_limit=0.0,
                 in_junction=False, distance_to_junction=None, obstacles=[])


def _frame(scene: Scene, **kw: object) -> FrameRecord:
    fields = {"route_completion": 0.0, "expert": None, "expert_control": None, "driver": None,
              "driver_control": VehicleControl()}
    fields.update(kw)
    return FrameRecord(scene=scene, **fields)


# -- lossless round trips --------------------------------------------------------------------------
@pytest.mark.parametrize("flush_every", [1, 64, 2048])
def test_scenes_and_frames_round_trip_equal(write_episode, flush_every: int, make_frames) -> None:
    frames = make_frames(300, seed=3)
    path = write_episode("ep.h5", frames, flush_every=flush_every)
    episode = read_episode(path)
    assert len(episode) == 300
    assert episode.scenes() == [f.scene for f in frames]
    assert episode.frames() == frames
    # the generator really exercises both branches of every optional and empty/non-empty lists
    assert {f.scene.target is None for f in frames} == {True, False}
    assert {f.expert is None for f in frames} == {True, False}
    assert {len(f.scene.stop_signs) for f in frames} >= {0, 1, 2}


def test_edge_values_round_trip(write_episode) -> None:
    odd = Actor(id=-(2**62), kind="bicycle ünïcode", x=-0.0, y=1e-308, yaw=math.inf, ego_x=-math.inf,
                ego_y=5e-324, ego_yaw=180.0, speed=-1.5, half_length=1e300, half_width=0.1 + 0.2,
                distance=2.0**-40)
    full = dataclasses.replace(
        _bare_scene(1),
        timestamp=0.1 + 0.2,
        route=[RoutePoint(1.0, 2.0, 3.0, 4.0, 5.0, "NOT_A_ROAD_OPTION"), RoutePoint(0, 0, 0, 0, 0, "")],
        target=RoutePoint(9.0, 8.0, 7.0, 6.0, 5.0, "VOID"),
        vehicles=[odd], pedestrians=[odd], obstacles=[odd, odd],
        traffic_light=TrafficLight(id="", state="blinking", distance_to_stop_line=-3.25),
        stop_signs=[StopSign("s", 0.0, True)],
        distance_to_junction=0.0, in_junction=True,
    )
    frames = [
        _frame(_bare_scene(0)),
        _frame(full, expert=Action("STOP", -0.0, 0.0), expert_control=VehicleControl(gear=-1, reverse=True),
               driver=Action("SLOW", 90.0, 4.0), route_completion=100.0),
        _frame(_bare_scene(2), driver=Action("MOVE", 1e-9, 13.9)),  # a driver action without a label
    ]
    episode = read_episode(write_episode("edge.h5", frames))
    assert episode.frames() == frames
    back = episode.scenes()[1]
    assert math.copysign(1.0, back.vehicles[0].x) == -1.0  # -0.0 kept, not just == 0.0
    assert back.distance_to_junction == 0.0  # 0.0 is not confused with None
    assert episode.scenes()[0].distance_to_junction is None


def test_nan_is_stored_bit_exactly(write_episode) -> None:
    scene = dataclasses.replace(_bare_scene(0), speed_limit=math.nan, distance_to_junction=math.nan)
    back = read_episode(write_episode("nan.h5", [_frame(scene)])).scenes()[0]
    assert math.isnan(back.speed_limit)
    assert back.distance_to_junction is not None and math.isnan(back.distance_to_junction)


def test_empty_episode(write_episode) -> None:
    episode = read_episode(write_episode("empty.h5", []))
    assert len(episode) == 0
    assert episode.scenes() == [] and episode.frames() == []


def _leaf_paths(cls: type, prefix: str = "") -> set[str]:
    """Dotted paths of every scalar leaf under ``cls`` (list fields give '<name>[]' prefixes)."""
    paths: set[str] = set()
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        base = args[0] if typing.get_origin(tp) in (typing.Union, types.UnionType) else tp
        if typing.get_origin(base) is list:
            paths |= _leaf_paths(typing.get_args(base)[0], f"{prefix}{f.name}[].")
        elif dataclasses.is_dataclass(base):
            paths |= _leaf_paths(base, f"{prefix}{f.name}.")
        else:
            paths.add(prefix + f.name)
    return paths


def test_every_scene_and_frame_field_is_stored() -> None:
    expected = _leaf_paths(FrameRecord)
    stored = {c.name for c in FRAME_CODEC.columns if not c.name.endswith(PRESENT_SUFFIX)}
    stored = {f"scene.{n}" if n.split(".")[0] in {f.name for f in dataclasses.fields(Scene)} else n for n in stored}
    for name, codec in LIST_CODECS.items():
        stored |= {f"scene.{name}[].{c.name}" for c in codec.columns}
    assert stored == expected
    # Every optional has its presence flag.
    assert {"target.present", "traffic_light.present", "distance_to_junction.present", "expert.present",
            "expert_control.present", "driver.present"} <= set(FRAME_CODEC.names)


def test_unstorable_field_types_fail_loudly() -> None:
    @dataclasses.dataclass
    class WithDict:
        data: dict

    @dataclasses.dataclass
    class WithNestedList:
        items: list[RoutePoint]

    with pytest.raises(SchemaError, match="data"):
        StructCodec(WithDict)
    with pytest.raises(SchemaError, match="items"):
        StructCodec(WithNestedList)  # lists are storable directly on Scene only


def test_action_level_codes_are_speed_level_indices(write_episode) -> None:
    frames = [_frame(_bare_scene(i), expert=Action(level, 1.0, 2.0)) for i, level in enumerate(SPEED_LEVELS)]
    path = write_episode("levels.h5", frames)
    with h5py.File(path) as f:
        ds = f["frames/str"]
        names = [n.decode() if isinstance(n, bytes) else n for n in ds.attrs["columns"]]
        codes = ds[names.index("expert.speed_level")]
    assert codes.tolist() == [SPEED_LEVELS.index(level) for level in SPEED_LEVELS]
    assert [f.expert for f in read_episode(path).frames()] == [f.expert for f in frames]


def test_infractions_round_trip(write_episode, make_frames, make_infraction) -> None:
    events = [make_infraction("collisions_vehicle", 5, actor_id=12),
              make_infraction("outside_route_lanes", 9, value=3.75, message="hors piste ✓"),
              make_infraction("some_future_kind", 9, value=None, actor_id=None)]
    episode = read_episode(write_episode("inf.h5", make_frames(10), events))
    assert episode.infractions() == events
    assert read_episode(write_episode("none.h5", make_frames(3), [])).infractions() == []


@pytest.mark.parametrize("compression", ["lzf", None])
def test_other_compression_choices_round_trip(tmp_path: Path, compression: str | None, make_frames) -> None:
    frames = make_frames(40, seed=9)
    writer = EpisodeWriter(tmp_path / "c.h5", {}, compression=compression, flush_every=16)
    for frame in frames:
        writer.append(frame)
    assert read_episode(writer.close([], {})).frames() == frames
    with pytest.raises(ValueError, match="compression"):
        EpisodeWriter(tmp_path / "d.h5", {}, compression="zstd")


# -- attributes --------------------------------------------------------------------------------------
def test_attributes_provenance_and_summary(write_episode, make_frames, provenance) -> None:
    long_text = "x" * 20000  # above the HDF5 attribute size: stored under /meta, read back the same
    summary = {"DS": 42.5, "RC": 85.0, "IP": 0.5, "status": "Failed - Agent timed out", "infractions": {"red": 1}}
    path = write_episode("attrs.h5", make_frames(4), summary=summary, notes=long_text, nothing=None,
                         seed=np.int64(42))
    episode = read_episode(path)
    for key, value in provenance.items():
        if key != "seed":
            assert episode.attrs[key] == value, key
    assert episode.attrs["seed"] == 42 and isinstance(episode.attrs["seed"], int)
    assert episode.attrs["notes"] == long_text and episode.attrs["nothing"] is None
    assert episode.attrs["config"] == {"record_every": 1, "world": {"dt": 0.05}}
    assert episode.attrs["schema_version"] == DATASET_SCHEMA_VERSION
    assert episode.attrs["scene_schema_version"] == SCENE_SCHEMA_VERSION
    assert episode.attrs["complete"] is True and episode.attrs["n_frames"] == 4
    assert episode.attrs["package_version"]
    created = datetime.datetime.fromisoformat(episode.attrs["created"])
    assert abs((datetime.datetime.now(datetime.UTC) - created).total_seconds()) < 600
    assert episode.summary == summary
    assert read_metadata(path) == (episode.attrs, summary)


def test_reserved_and_invalid_attribute_names_are_refused(tmp_path: Path) -> None:
    for attrs in ({"complete": True}, {"schema_version": 3}, {"summary": {}}, {"a/b": 1}):
        with pytest.raises(ValueError):
            EpisodeWriter(tmp_path / "x.h5", attrs)
    assert list(tmp_path.iterdir()) == []


# -- crash safety --------------------------------------------------------------------------------------
def test_unclosed_writer_leaves_only_a_partial_that_readers_refuse(tmp_path: Path, make_frames, provenance) -> None:
    final = tmp_path / "r.h5"
    writer = EpisodeWriter(final, provenance, flush_every=5)
    for frame in make_frames(12):
        writer.append(frame)
    partial = tmp_path / "r.h5.partial"
    assert partial.exists() and not final.exists()
    with pytest.raises(DatasetFileError, match="partial") as err:
        read_episode(partial)
    assert str(partial) in str(err.value)
    writer.abort()


def test_abort_deletes_the_partial_and_context_manager_aborts_on_error(tmp_path: Path, make_frames) -> None:
    writer = EpisodeWriter(tmp_path / "a.h5", {})
    writer.append(make_frames(1)[0])
    writer.abort()
    writer.abort()  # idempotent
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError, match="append after"):
        writer.append(make_frames(1)[0])
    with pytest.raises(KeyError), EpisodeWriter(tmp_path / "b.h5", {}) as w:
        w.append(make_frames(1)[0])
        raise KeyError("driver crashed")
    assert list(tmp_path.iterdir()) == []


def test_close_failure_deletes_the_partial(tmp_path: Path) -> None:
    bad = dataclasses.replace(_bare_scene(0), vehicles=[Actor(1, 7, *[0.0] * 10)])  # kind must be a str
    writer = EpisodeWriter(tmp_path / "bad.h5", {})
    writer.append(_frame(bad))
    with pytest.raises(TypeError, match="kind"):
        writer.close([], {})
    assert list(tmp_path.iterdir()) == []


def test_frames_must_come_in_tick_order(tmp_path: Path) -> None:
    writer = EpisodeWriter(tmp_path / "o.h5", {})
    writer.append(_frame(_bare_scene(3)))
    with pytest.raises(ValueError, match="increasing"):
        writer.append(_frame(_bare_scene(3)))
    writer.append(_frame(_bare_scene(4)))  # the rejected frame left the buffers consistent
    assert len(read_episode(writer.close())) == 2


def test_existing_file_is_kept_until_the_new_one_is_complete(write_episode, tmp_path: Path, make_frames) -> None:
    path = write_episode("same.h5", make_frames(3, seed=1))
    with pytest.raises(FileExistsError):
        EpisodeWriter(path, {})
    stale = tmp_path / "same.h5.partial"
    stale.write_bytes(b"garbage from a crashed run")
    writer = EpisodeWriter(path, {}, overwrite=True)
    new = make_frames(5, seed=2)
    for frame in new:
        writer.append(frame)
    assert len(read_episode(path)) == 3  # the old file is intact while the new one is written
    writer.close()
    assert read_episode(path).frames() == new
    assert not stale.exists()


_KILLED_WRITER = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[2])
    from conftest import synthetic_frames
    from data_collection.storage import EpisodeWriter
    writer = EpisodeWriter(sys.argv[1], {"town": "t"}, flush_every=1)
    frames = synthetic_frames(200, seed=4)
    for frame in frames[:20]:
        writer.append(frame)
    print("writing", flush=True)
    tick = 200
    while True:  # keep flushing (every append writes to the file) until killed
        for frame in frames:
            frame.scene.frame = tick
            tick += 1
            writer.append(frame)
""")


def test_writer_killed_mid_write_leaves_no_final_file_and_others_intact(write_episode, make_frames,
                                                                       tmp_path: Path) -> None:
    frames = make_frames(30, seed=8)
    good = write_episode("good.h5", frames)
    before = good.read_bytes()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(tmp_path / "victim.h5"),
                              str(Path(__file__).parent)], stdout=subprocess.PIPE, env=env, cwd=REPO)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == b"writing"
        time.sleep(0.3)  # well inside the flushing loop
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not (tmp_path / "victim.h5").exists()
    partial = tmp_path / "victim.h5.partial"
    assert partial.exists()
    with pytest.raises(DatasetFileError, match="partial"):
        read_episode(partial)
    assert good.read_bytes() == before
    assert read_episode(good).frames() == frames
    dataset = DrivingDataset(tmp_path)
    assert dataset.files == [good] and len(dataset) == 30


# -- refusing bad files ----------------------------------------------------------------------------------
def _damage(path: Path, how: str) -> None:
    with h5py.File(path, "r+") as f:
        if how == "schema_version":
            f.attrs["schema_version"] = DATASET_SCHEMA_VERSION + 1
        elif how == "scene_schema_version":
            f.attrs["scene_schema_version"] = SCENE_SCHEMA_VERSION + 7
        elif how == "incomplete":
            del f.attrs["complete"]
        elif how == "missing_dataset":
            del f["lists/vehicles/float"]
        elif how == "missing_column":
            ds = f["frames/float"]
            ds.attrs["columns"] = ["renamed" if n in ("ego.x", b"ego.x") else n for n in ds.attrs["columns"]]
        elif how == "bad_offsets":
            f["lists/route/offsets"][0] = 5


@pytest.mark.parametrize("how, message", [
    ("schema_version", f"schema_version is {DATASET_SCHEMA_VERSION + 1}, this code reads {DATASET_SCHEMA_VERSION}"),
    ("scene_schema_version", "scene_schema_version is"),
    ("incomplete", "incomplete"),
    ("missing_dataset", "/lists/vehicles/float"),
    ("missing_column", "ego.x"),
    ("bad_offsets", "/lists/route/offsets"),
])
def test_damaged_files_are_refused_naming_file_and_problem(write_episode, how: str, message: str, make_frames) -> None:
    path = write_episode("bad.h5", make_frames(5))
    _damage(path, how)
    with pytest.raises(DatasetFileError) as err:
        read_episode(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert err.value.path == path


def test_missing_and_non_hdf5_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DatasetFileError, match="no such file"):
        read_episode(tmp_path / "nope.h5")
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(DatasetFileError, match="not a readable HDF5 file"):
        read_episode(text)


@pytest.mark.parametrize("compression", ["blosc-lz4", "lz4", "gzip", "lzf", None])
def test_every_compression_choice_round_trips_one_frame_per_flush(tmp_path: Path, make_frames, compression) -> None:
    # one frame per flush rewrites every chunk many times: Blosc v1 corrupted columns exactly here
    frames = make_frames(120, seed=5)
    writer = EpisodeWriter(tmp_path / "c.h5", {}, flush_every=1, compression=compression)
    for frame in frames:
        writer.append(frame)
    assert read_episode(writer.close([], {"DS": 1.0})).frames() == frames


def test_file_layout_is_columnar_and_compressed(write_episode, make_frames) -> None:
    path = write_episode("layout.h5", make_frames(50))
    with h5py.File(path) as f:
        block = f["lists/vehicles/float"]
        assert block.chunks[0] == 1 and str(hdf5plugin.BLOSC2_ID) in block._filters  # Blosc2 (LZ4 + shuffle)
        assert f["lists/vehicles/offsets"].shape == (51,)
        assert json.loads(f["frames/vocab"].asstr()[()])["traffic_light.state"][:4] == ["red", "yellow", "green",
                                                                                        "off"]
        assert f.attrs["complete"]
