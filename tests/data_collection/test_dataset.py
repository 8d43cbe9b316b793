"""DrivingDataset: concatenation over files, rebased offsets, shared vocabularies, infraction marks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from data_collection import DatasetFileError, DrivingDataset, EpisodeWriter
from data_collection.schema import LIST_CODECS


@pytest.fixture
def three_files(write_episode, make_frames, make_infraction):
    """Three files (written out of name order) with different lengths, ticks recorded every 2."""
    frames = {name: make_frames(n, seed=k, stride=2) for k, (name, n) in
              enumerate([("c.h5", 7), ("a.h5", 12), ("b.h5", 0)])}
    for name, fr in frames.items():
        write_episode(name, fr, [make_infraction("red_light", 11)] if fr else [])
    ordered = frames["a.h5"] + frames["b.h5"] + frames["c.h5"]
    return ordered, frames


def test_concatenates_files_in_sorted_order(three_files, tmp_path: Path) -> None:
    ordered, frames = three_files
    dataset = DrivingDataset(tmp_path)
    assert [p.name for p in dataset.files] == ["a.h5", "b.h5", "c.h5"]
    assert len(dataset) == 19
    assert [dataset.record(i) for i in range(len(dataset))] == ordered
    assert [dataset.scene(i) for i in range(len(dataset))] == [f.scene for f in ordered]
    assert dataset.columns["episode"].tolist() == [0] * 12 + [2] * 7
    assert dataset.columns["index_in_episode"].tolist() == list(range(12)) + list(range(7))
    assert dataset.columns["frame"].tolist() == [f.scene.frame for f in ordered]
    assert dataset.columns["ego.x"].tolist() == [f.scene.ego.x for f in ordered]
    assert dataset.scene(-1) == ordered[-1].scene
    with pytest.raises(IndexError):
        dataset.scene(19)


def test_list_offsets_are_rebased_over_files(three_files, tmp_path: Path) -> None:
    ordered, _ = three_files
    dataset = DrivingDataset(tmp_path)
    for name in LIST_CODECS:
        table = dataset.tables[name]
        offsets = table["offsets"]
        lengths = [len(getattr(f.scene, name)) for f in ordered]
        assert offsets.tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist(), name
        column = "x" if "x" in table else "distance_to_stop_line"
        flat = [getattr(item, column) for f in ordered for item in getattr(f.scene, name)]
        assert table[column].tolist() == flat, name


def test_string_columns_share_one_vocabulary(write_episode, tmp_path: Path, make_frames) -> None:
    first, second = make_frames(20, seed=1), make_frames(20, seed=2, start_tick=100)
    for k, frame in enumerate(second):  # strings that the first file never uses
        if frame.scene.traffic_light is not None:
            frame.scene.traffic_light = dataclasses.replace(frame.scene.traffic_light, id=f"only_in_b_{k % 3}")
    write_episode("a.h5", first)
    write_episode("b.h5", second)
    dataset = DrivingDataset(tmp_path)
    ids = dataset.strings("frames", "traffic_light.id").tolist()
    assert ids == [None if f.scene.traffic_light is None else f.scene.traffic_light.id for f in first + second]
    kinds = dataset.strings("vehicles", "kind")
    assert set(kinds.tolist()) == {"vehicle"}
    assert dataset.vocab["route"]["road_option"][:2] == ["VOID", "LEFT"]  # seeded: codes stable across files


def test_infraction_ahead_marks_exactly_the_frames_before_and_stays_in_its_file(write_episode,
                                                                               tmp_path: Path, make_frames, make_infraction) -> None:
    # File a: ticks 0, 2, ..., 18 (10 frames). File b: ticks 0, 2, ..., 10 (6 frames).
    write_episode("a.h5", make_frames(10, seed=1, stride=2), [
        make_infraction("red_light", 11),  # frames with tick < 11: indices 0..5 -> marks 3, 4, 5
        make_infraction("collisions_vehicle", 1),  # only index 0 precedes it -> mark 0
        make_infraction("route_timeout", 0),  # nothing recorded before tick 0 -> no mark
        make_infraction("route_dev", 500),  # after the last frame -> the last 3 frames (7, 8, 9)
    ])
    # b: an infraction at a recorded tick (6, index 3): the frame at that tick is not "before" it.
    write_episode("b.h5", make_frames(6, seed=2, stride=2), [make_infraction("red_light", 6)])
    dataset = DrivingDataset(tmp_path, infraction_horizon=3)
    expected = np.zeros(16, bool)
    expected[[0, 3, 4, 5, 7, 8, 9]] = True
    expected[[10, 11, 12]] = True  # b's ticks 0, 2, 4; a's tail (7..9) is marked by a's own infraction only
    assert dataset.infraction_ahead.tolist() == expected.tolist()
    assert dataset.infractions["before_index"].tolist() == [5, 0, -1, 9, 12]
    assert dataset.infractions["episode"].tolist() == [0, 0, 0, 0, 1]
    assert dataset.strings("infractions", "kind").tolist()[:2] == ["red_light", "collisions_vehicle"]
    assert not DrivingDataset(tmp_path, infraction_horizon=0).infraction_ahead.any()
    # A long horizon is clipped at the start of each file, never reaching into the previous one.
    long = DrivingDataset(tmp_path, infraction_horizon=100).infraction_ahead
    assert long.tolist() == [True] * 10 + [True, True, True, False, False, False]


def test_filters_keep_records_offsets_and_marks_consistent(write_episode, tmp_path: Path, make_frames, make_infraction) -> None:
    frames = make_frames(40, seed=6)
    write_episode("a.h5", frames, [make_infraction("red_light", 30)])
    full = DrivingDataset(tmp_path, infraction_horizon=4)
    labelled = DrivingDataset(tmp_path, infraction_horizon=4, labelled_only=True)
    keep = [i for i, f in enumerate(frames) if f.expert is not None]
    assert 0 < len(keep) < len(frames)
    assert len(labelled) == len(keep)
    assert [labelled.record(i) for i in range(len(labelled))] == [frames[i] for i in keep]
    assert labelled.infraction_ahead.tolist() == full.infraction_ahead[keep].tolist()
    assert labelled.columns["index_in_episode"].tolist() == keep
    for name in LIST_CODECS:
        assert labelled.tables[name]["offsets"][-1] == sum(len(getattr(frames[i].scene, name)) for i in keep)
    before = full.infractions["before_index"][0]
    assert labelled.infractions["before_index"][0] == (keep.index(before) if before in keep else -1)
    late = DrivingDataset(tmp_path, where=lambda c: c["frame"] >= 35)
    assert [late.scene(i) for i in range(len(late))] == [f.scene for f in frames[35:]]


def test_sample_is_a_plain_json_ready_dict(write_episode, tmp_path: Path, make_frames, make_infraction) -> None:
    frames = make_frames(12, seed=2)
    path = write_episode("a.h5", frames, [make_infraction("red_light", 5)])
    dataset = DrivingDataset(tmp_path, infraction_horizon=2)
    for i, frame in enumerate(frames):
        sample = dataset.sample(i)
        json.dumps(sample)  # nothing but dicts, lists, str, numbers, bools and None
        assert sample["scene"] == frame.scene.to_dict()
        expert = None if frame.expert is None else dataclasses.asdict(frame.expert)
        assert sample["expert"] == expert
        assert sample["driver"] == (None if frame.driver is None else dataclasses.asdict(frame.driver))
        assert sample["infraction_ahead"] is (i in (3, 4))
        assert (sample["file"], sample["frame"], sample["episode"]) == (str(path), i, 0)
        assert sample["route_completion"] == frame.route_completion


def test_no_complete_files_is_a_clear_error(tmp_path: Path, make_frames) -> None:
    with pytest.raises(DatasetFileError, match="no complete episode files"):
        DrivingDataset(tmp_path)
    writer = EpisodeWriter(tmp_path / "running.h5", {})
    writer.append(make_frames(1)[0])  # a writer still running: only its .partial exists
    with pytest.raises(DatasetFileError, match="no complete episode files") as err:
        DrivingDataset(tmp_path)
    assert str(tmp_path) in str(err.value)
    writer.abort()


def test_incomplete_files_are_skipped_in_a_directory_but_refused_by_name(write_episode, tmp_path: Path, make_frames) -> None:
    good = write_episode("a.h5", make_frames(5, seed=1))
    broken = write_episode("b.h5", make_frames(5, seed=2))
    with h5py.File(broken, "r+") as f:
        del f.attrs["complete"]
    dataset = DrivingDataset(tmp_path)
    assert dataset.files == [good] and len(dataset) == 5
    with pytest.raises(DatasetFileError, match="incomplete") as err:
        DrivingDataset([good, broken])
    assert str(broken) in str(err.value)


def test_wrong_schema_version_in_a_directory_names_the_file(write_episode, tmp_path: Path, make_frames) -> None:
    write_episode("a.h5", make_frames(3, seed=1))
    old = write_episode("b.h5", make_frames(3, seed=2))
    with h5py.File(old, "r+") as f:
        f.attrs["schema_version"] = 0
    with pytest.raises(DatasetFileError, match="schema_version is 0") as err:
        DrivingDataset(tmp_path)
    assert str(old) in str(err.value)


def test_nested_directories_and_explicit_lists(write_episode, tmp_path: Path, make_frames) -> None:
    (tmp_path / "town2").mkdir()
    (tmp_path / "town1").mkdir()
    b = write_episode("town2/r0.h5", make_frames(2, seed=1))
    a = write_episode("town1/r9.h5", make_frames(3, seed=2))
    assert DrivingDataset(tmp_path).files == [a, b]
    assert DrivingDataset([b, a]).files == [b, a]  # explicit files keep the given order
    assert len(DrivingDataset(b)) == 2
