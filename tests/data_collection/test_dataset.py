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
from data_collection.storage import FILTERS


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


def _permute_blocks(path: Path, seed: int) -> list[str]:
    """Rewrite every per-kind block of ``path`` with its rows (and ``columns``) in another order, plus
    an extra column the codecs do not know, as another writer might; returns the blocks rewritten."""
    rng = np.random.default_rng(seed)
    rewritten = []
    with h5py.File(path, "r+") as f:
        blocks = []
        f.visititems(lambda name, obj: blocks.append(name) if isinstance(obj, h5py.Dataset) and obj.ndim == 2
                     else None)
        for name in blocks:
            ds = f[name]
            data, names = ds[()], [n.decode() if isinstance(n, bytes) else n for n in ds.attrs["columns"]]
            order = rng.permutation(len(names) + 1)  # row len(names) is the extra column
            rows = np.concatenate([data, np.zeros((1, data.shape[1]), data.dtype)])[order]
            del f[name]
            new = f.create_dataset(name, data=rows, chunks=(1, max(1, rows.shape[1])), **FILTERS["blosc-lz4"])
            new.attrs["columns"] = [([*names, "zz.not_a_column"])[i] for i in order]
            rewritten.append(name)
    return rewritten


def _assert_same_arrays(got: dict, expected: dict, what: str) -> None:
    assert list(got) == list(expected), what
    for key in expected:
        assert got[key].dtype == expected[key].dtype, (what, key)
        assert np.array_equal(got[key], expected[key], equal_nan=got[key].dtype.kind == "f"), (what, key)


def test_permuted_column_order_reads_exactly_like_the_direct_path(tmp_path: Path, make_frames, make_infraction,
                                                                   monkeypatch) -> None:
    """A block whose stored rows are not in codec order goes through the read-then-pick fallback;
    it must give what the direct (read into place) path gives for the same data."""
    import data_collection.dataset as dataset_module

    frames = {"a.h5": make_frames(30, seed=1), "b.h5": make_frames(25, seed=2, start_tick=50),
              "c.h5": make_frames(9, seed=3)}
    for k, (name, fr) in enumerate(frames.items()):
        for i, frame in enumerate(fr):  # file-specific strings: shared vocabularies need remapping
            if frame.scene.traffic_light is not None:
                frame.scene.traffic_light = dataclasses.replace(frame.scene.traffic_light, id=f"{name}_{i % 4}")
        for d in ("direct", "mixed"):
            writer = EpisodeWriter(tmp_path / d / name, {"route_id": name}, flush_every=7 + k)
            for frame in fr:
                writer.append(frame)
            writer.close([make_infraction("red_light", fr[len(fr) // 2].scene.frame + 1)], {"DS": 1.0})
    rewritten = _permute_blocks(tmp_path / "mixed" / "b.h5", seed=0)
    assert {"frames/float", "frames/str", "lists/route/str", "lists/vehicles/float", "infractions/int"} <= set(
        rewritten)

    orders = {}
    scan = dataset_module._scan

    def spy(path, f, attrs, keep=True):
        layout = scan(path, f, attrs, keep)
        orders[path.name] = {key: o is not None for key, o in layout.order.items()}
        return layout

    monkeypatch.setattr(dataset_module, "_scan", spy)
    mixed = DrivingDataset(tmp_path / "mixed", infraction_horizon=3)
    assert not any(orders["a.h5"].values()) and not any(orders["c.h5"].values())  # direct path
    assert all(orders["b.h5"].values())  # every block of b went through the fallback
    direct = DrivingDataset(tmp_path / "direct", infraction_horizon=3)
    assert not any(orders["b.h5"].values())

    _assert_same_arrays(mixed.columns, direct.columns, "columns")
    for name in LIST_CODECS:
        _assert_same_arrays(mixed.tables[name], direct.tables[name], name)
    _assert_same_arrays(mixed.infractions, direct.infractions, "infractions")
    assert mixed.vocab == direct.vocab
    ordered = frames["a.h5"] + frames["b.h5"] + frames["c.h5"]
    assert [mixed.record(i) for i in range(len(mixed))] == ordered
    # The one-file reader takes the same two paths.
    assert dataset_module.read_episode(tmp_path / "mixed" / "b.h5").frames() == frames["b.h5"]
    # Columns of the direct path are rows of one block per (table, kind): no per-file copies.
    x, y = direct.columns["ego.x"], direct.columns["ego.y"]
    assert x.base is not None and x.base is y.base and x.base.shape[1] == len(direct)


@pytest.mark.parametrize("keep_open", [0, 1, 100])
def test_files_of_many_chunks_and_compressions_load_whether_kept_open_or_reopened(
        tmp_path: Path, make_frames, make_infraction, monkeypatch, keep_open: int) -> None:
    import data_collection.dataset as dataset_module

    monkeypatch.setattr(dataset_module, "KEEP_OPEN", keep_open)
    ordered, infractions = [], []
    for k, compression in enumerate(["blosc-lz4", "gzip", None, "lzf"]):
        frames = make_frames(17 + 5 * k, seed=10 + k, stride=2)
        writer = EpisodeWriter(tmp_path / f"{k}.h5", {}, flush_every=3 + k, compression=compression)
        for frame in frames:
            writer.append(frame)
        events = [make_infraction("red_light", 7 + k)]
        writer.close(events, {})
        ordered += frames
        infractions += events
    dataset = DrivingDataset(tmp_path, infraction_horizon=2)
    assert [dataset.record(i) for i in range(len(dataset))] == ordered
    assert dataset.infractions["frame"].tolist() == [e.frame for e in infractions]
    assert dataset.infractions["episode"].tolist() == [0, 1, 2, 3]
    for name in LIST_CODECS:
        lengths = [len(getattr(f.scene, name)) for f in ordered]
        assert dataset.tables[name]["offsets"].tolist() == np.concatenate([[0], np.cumsum(lengths)]).tolist()
    twice = DrivingDataset([tmp_path / "1.h5", tmp_path / "0.h5", tmp_path / "1.h5"])  # one file open twice
    first, second = ordered[17:17 + 22], ordered[:17]
    assert [twice.record(i) for i in range(len(twice))] == first + second + first


def test_a_string_code_beyond_the_vocabulary_is_refused(write_episode, tmp_path: Path, make_frames) -> None:
    path = write_episode("a.h5", make_frames(6, seed=1))
    with h5py.File(path, "r+") as f:
        names = [n.decode() if isinstance(n, bytes) else n for n in f["lists/route/str"].attrs["columns"]]
        if f["lists/route/str"].shape[1]:
            f["lists/route/str"][names.index("road_option"), 0] = 99
        else:
            pytest.skip("no route points")
    with pytest.raises(DatasetFileError, match="codes beyond its vocabulary") as err:
        DrivingDataset(tmp_path)
    assert str(path) in str(err.value)
