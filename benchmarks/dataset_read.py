"""Episode-file write cost and dataset load throughput on a synthetic but realistic dataset.

Writes ``--files`` episode files of ``--frames`` frames each (an ego driving a smooth route with
``--route-points`` points ahead, ``--vehicles`` vehicles and ``--pedestrians`` pedestrians moving
around it, a traffic light, stop signs, obstacles, labels, controls, a few infractions) through the
real ``EpisodeWriter`` into a temporary directory, then times ``DrivingDataset`` loading it (open +
read every column + infraction marks) and ``scene(i)`` materialization.

    python benchmarks/dataset_read.py [--files 20 --frames 2000] [--compare-compression]

The last line is ``frames_per_second=<x>``: frames loaded per second of wall time (best of
``--repeat``; files are in the page cache, so this is decompression + assembly, not disk). The
line before also gives the CPU-time rate, which is what to compare on a busy machine.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import data_collection.storage as storage  # noqa: E402
from data_collection.dataset import DrivingDataset  # noqa: E402
from data_collection.schema import FRAME_CODEC, LIST_CODECS, FrameRecord  # noqa: E402
from data_collection.storage import EpisodeWriter, read_episode  # noqa: E402
from driving.actions import SPEED_LEVELS, Action  # noqa: E402
from driving.criteria.events import INFRACTION_KINDS, InfractionEvent  # noqa: E402
from driving.scene import Actor, EgoState, RoutePoint, Scene, StopSign, TrafficLight  # noqa: E402
from driving.types import VehicleControl  # noqa: E402

DT = 0.05


def _to_ego(ex: float, ey: float, eyaw: float, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    c, s = math.cos(math.radians(eyaw)), math.sin(math.radians(eyaw))
    dx, dy = x - ex, y - ey
    return c * dx + s * dy, -s * dx + c * dy


def synthetic_episode(seed: int, n_frames: int, n_vehicles: int, n_pedestrians: int, n_route: int
                      ) -> tuple[list[FrameRecord], list[InfractionEvent]]:
    """A route driven for ``n_frames`` ticks with moving actors (deterministic in ``seed``)."""
    rng = np.random.default_rng(seed)
    speeds = np.clip(8 + np.cumsum(rng.normal(0, 0.05, n_frames)), 0, 13.9)
    length = int(np.sum(speeds) * DT) + n_route + 50
    heading = np.cumsum(np.convolve(rng.normal(0, 0.02, length), np.ones(25) / 25, "same"))
    px, py = np.cumsum(np.cos(heading)), np.cumsum(np.sin(heading))  # 1 m apart
    options = np.where(np.sin(np.arange(length) / 40.0) > 0.9, "LEFT", "LANEFOLLOW")
    n_actors = n_vehicles + n_pedestrians
    ax, ay = rng.uniform(-40, 40, n_actors), rng.uniform(-40, 40, n_actors)
    ayaw = rng.uniform(-180, 180, n_actors)
    aspeed = np.concatenate([rng.uniform(0, 12, n_vehicles), rng.uniform(0.5, 1.8, n_pedestrians)])
    half = np.concatenate([np.tile([[2.4, 1.0]], (n_vehicles, 1)), np.tile([[0.3, 0.3]], (n_pedestrians, 1))])
    kinds = ["vehicle"] * n_vehicles + ["pedestrian"] * n_pedestrians
    s = 0.0
    frames: list[FrameRecord] = []
    for t in range(n_frames):
        i = int(s)
        ex, ey = px[i] + (s - i) * math.cos(heading[i]), py[i] + (s - i) * math.sin(heading[i])
        eyaw = math.degrees(heading[i])
        ahead = slice(i + 1, i + 1 + n_route)
        rx, ry = _to_ego(ex, ey, eyaw, px[ahead], py[ahead])
        route = [RoutePoint(*row, road_option=o) for row, o in zip(
            np.stack([px[ahead], py[ahead], rx, ry, np.arange(len(rx)) + 1 - (s - i)], 1).tolist(),
            options[ahead].tolist(), strict=True)]
        rad = np.radians(ayaw)
        wx, wy = ex + ax + t * DT * aspeed * np.cos(rad), ey + ay + t * DT * aspeed * np.sin(rad)
        lx, ly = _to_ego(ex, ey, eyaw, wx, wy)
        dist = np.hypot(lx, ly)
        rel = (ayaw - eyaw + 180) % 360 - 180
        table = np.stack([wx, wy, ayaw, lx, ly, rel, aspeed, half[:, 0], half[:, 1], dist], 1).tolist()
        actors = sorted(
            (Actor(k, kinds[k], *row) for k, row in enumerate(table)), key=lambda a: a.distance)
        light = None if (t // 200) % 2 else TrafficLight(
            f"tls{t // 400}_1", ("red", "yellow", "green")[(t // 60) % 3], 40.0 - (t % 200) * 0.2)
        frames.append(FrameRecord(
            scene=Scene(
                frame=t, timestamp=t * DT,
                ego=EgoState(ex, ey, eyaw, float(speeds[t]), float(rng.normal(0, 0.5)), 2.45, 1.05,
                             float(rng.uniform(-0.1, 0.1))),
                route=route, target=route[4] if len(route) > 4 else None,
                vehicles=[a for a in actors if a.kind == "vehicle"],
                pedestrians=[a for a in actors if a.kind == "pedestrian"],
                traffic_light=light,
                stop_signs=[StopSign(f"stop_{t // 300}", 30.0 - (t % 300) * 0.1, False)] if t % 600 < 300 else [],
                speed_limit=13.89, in_junction=(t % 200) > 180,
                distance_to_junction=None if t % 200 > 150 else float(150 - t % 200),
                obstacles=[Actor(9000, "static", ex + 30, ey, 0.0, 30.0, 0.0, 0.0, 0.0, 1.0, 0.5, 30.0)]
                if t % 500 < 50 else [],
            ),
            route_completion=100.0 * t / n_frames,
            expert=Action(SPEED_LEVELS[(t // 90) % 3], float(rng.normal(0, 5)), float(speeds[t])),
            expert_control=VehicleControl(float(rng.uniform()), float(rng.normal(0, 0.1)), 0.0),
            driver=Action(SPEED_LEVELS[(t // 95) % 3], float(rng.normal(0, 5)), float(speeds[t])),
            driver_control=VehicleControl(float(rng.uniform()), float(rng.normal(0, 0.1)), 0.0),
        ))
        s += speeds[t] * DT
    infractions = [InfractionEvent(str(rng.choice(INFRACTION_KINDS)), int(tick), tick * DT, 1.0, 2.0,
                                   "synthetic infraction", None, 7)
                   for tick in sorted(rng.integers(1, n_frames, 3).tolist())]
    return frames, infractions


def raw_bytes_per_frame(path: Path) -> float:
    """In-memory size of one frame's columns and list rows (what the loader materializes)."""
    raw = storage.read_raw(path)
    total = sum(a.nbytes for a in raw.frames.values())
    total += sum(a.nbytes for table in raw.lists.values() for a in table.values())
    return total / max(1, raw.n_frames)


def write_dataset(out: Path, args: argparse.Namespace) -> dict[str, float]:
    """Writes the files through ``EpisodeWriter``; returns per-frame write costs (seconds)."""
    appends: list[float] = []
    close_wall = close_cpu = append_cpu = 0.0
    for k in range(args.files):
        frames, infractions = synthetic_episode(args.seed + k, args.frames, args.vehicles, args.pedestrians,
                                                args.route_points)
        writer = EpisodeWriter(out / f"route_{k:04d}_rep0.h5", {"town": "synthetic", "route_id": str(k),
                                                                "repetition": 0, "seed": args.seed + k},
                               compression=args.compression)
        c0 = time.process_time()
        for frame in frames:
            t0 = time.perf_counter()
            writer.append(frame)
            appends.append(time.perf_counter() - t0)
        t1, c1 = time.perf_counter(), time.process_time()
        writer.close(infractions, {"DS": 0.0, "RC": 100.0, "IP": 1.0, "status": "Completed"})
        close_wall += time.perf_counter() - t1
        close_cpu += time.process_time() - c1
        append_cpu += c1 - c0
    n = len(appends)
    return {"median": float(np.median(appends)), "p99": float(np.percentile(appends, 99)), "max": max(appends),
            "append_wall": sum(appends) / n, "append_cpu": append_cpu / n, "close_wall": close_wall / n,
            "close_cpu": close_cpu / n, "frames": n}


def time_load(out: Path, repeat: int, horizon: int) -> tuple[float, float, DrivingDataset]:
    """(best wall s, best CPU s, dataset) of loading ``out``: CPU time shows the cost on a busy machine."""
    wall = cpu = math.inf
    dataset = None
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        dataset = DrivingDataset(out, infraction_horizon=horizon)
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    assert dataset is not None
    return wall, cpu, dataset


def compare_compression(args: argparse.Namespace) -> None:
    """The same episodes under each ``compression`` choice: size, write and load cost."""
    episodes = [synthetic_episode(args.seed + k, args.frames, args.vehicles, args.pedestrians, args.route_points)
                for k in range(min(args.files, 4))]
    n = sum(len(frames) for frames, _ in episodes)
    print(f"{'compression':<12} {'bytes/frame':>12} {'write ms/frame':>15} {'load frames/s':>14} {'(cpu)':>10}")
    for choice in storage.FILTERS:
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            for k, (frames, infractions) in enumerate(episodes):
                writer = EpisodeWriter(Path(tmp) / f"{k}.h5", {}, compression=choice)
                for frame in frames:
                    writer.append(frame)
                writer.close(infractions, {})
            write_ms = (time.perf_counter() - t0) * 1000 / n
            size = sum(p.stat().st_size for p in Path(tmp).glob("*.h5")) / n
            wall, cpu, _ = time_load(Path(tmp), args.repeat, args.horizon)
            print(f"{choice!s:<12} {size:>12.0f} {write_ms:>15.3f} {n / wall:>14,.0f} {n / cpu:>10,.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--vehicles", type=int, default=20)
    parser.add_argument("--pedestrians", type=int, default=10)
    parser.add_argument("--route-points", type=int, default=60)
    parser.add_argument("--horizon", type=int, default=20, help="infraction_horizon of the loader")
    parser.add_argument("--repeat", type=int, default=5, help="loads to time (the best counts)")
    parser.add_argument("--compression", default="blosc-lz4", type=lambda v: None if v == "none" else v,
                        choices=list(storage.FILTERS), help="EpisodeWriter compression: blosc-lz4 | gzip | lzf | none")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=2000, help="scene(i) calls to time")
    parser.add_argument("--compare-compression", action="store_true",
                        help="first write/load up to 4 files under each compression choice")
    args = parser.parse_args()
    if args.compare_compression:
        compare_compression(args)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        cost = write_dataset(out, args)
        total = int(cost["frames"])
        with h5py.File(next(out.glob("*.h5"))) as f:
            n_datasets = [0]
            f.visititems(lambda _, o: n_datasets.__setitem__(0, n_datasets[0] + isinstance(o, h5py.Dataset)))
        on_disk = sum(p.stat().st_size for p in out.glob("*.h5")) / total
        raw = raw_bytes_per_frame(next(out.glob("*.h5")))
        load_s, load_cpu, dataset = time_load(out, args.repeat, args.horizon)
        assert len(dataset) == total
        rng = np.random.default_rng(args.seed)
        picks = rng.integers(0, total, args.scenes).tolist()
        t0 = time.perf_counter()
        for i in picks:
            dataset.scene(i)
        scene_s = (time.perf_counter() - t0) / len(picks)
        t0 = time.perf_counter()
        scenes = read_episode(next(out.glob("*.h5"))).scenes()
        episode_scene_s = (time.perf_counter() - t0) / len(scenes)
    n_cols = len(FRAME_CODEC.columns) + sum(len(c.columns) + 1 for c in LIST_CODECS.values())
    ms = {k: v * 1e3 for k, v in cost.items()}
    print(f"dataset: {args.files} files x {args.frames} frames, {args.vehicles} vehicles, {args.pedestrians} "
          f"pedestrians, {args.route_points} route points per frame; {n_cols} columns in {n_datasets[0]} "
          f"datasets per file; compression={args.compression}")
    print(f"write:   append median {ms['median']:.3f} ms, p99 {ms['p99']:.3f} ms, max {ms['max']:.0f} ms (a pack "
          f"or flush); per frame incl. packing, flushes and close: {ms['append_wall'] + ms['close_wall']:.3f} ms "
          f"wall, {ms['append_cpu'] + ms['close_cpu']:.3f} ms CPU")
    print(f"size:    {on_disk:.0f} bytes/frame on disk vs {raw:.0f} raw ({raw / on_disk:.2f}x)")
    print(f"load:    {total} frames in {load_s:.3f} s (best of {args.repeat}) = {total / load_s:,.0f} frames/s "
          f"= {total * raw / load_s / 1e6:,.0f} MB/s of columns (CPU time: {total / load_cpu:,.0f} frames/s)")
    print(f"objects: dataset.scene(i) {1 / scene_s:,.0f} scenes/s random access; "
          f"Episode.scenes() {1 / episode_scene_s:,.0f} scenes/s")
    print(f"frames_per_second={total / load_s:.0f}")


if __name__ == "__main__":
    main()
