"""What episode videos cost: BEV render and encode time per frame, and the runner's CPU time with/without video.

    python benchmarks/bev_render.py [--town grid_tls] [--seed 3] [--routes 2] [--repeats 2]

Prints ms per frame (render, encode) and the runner's CPU-time ratio video/no-video on the same
generated routes (RouteFollower, default traffic; CPU time because the machine may be shared). Rendering is never imported without --video-dir,
so the no-video run is the runner's true cost.
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--town", default="grid_tls")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--routes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from driving.drivers import RouteFollower
    from driving.routes import generate_route_set
    from driving.towns import get_town
    from driving.worlds.embedded import EmbeddedWorld, EmbeddedWorldConfig
    from leaderboard_eval.runner import run_routes

    town = get_town(args.town)
    sets = generate_route_set(town, seed=args.seed, count=args.routes, min_length=150.0, max_length=300.0)
    routes = [r for name in sets for r in sets[name]][: args.routes]
    config = EmbeddedWorldConfig(town=args.town)

    # 1) per-frame costs on real ticks of the first route
    from driving.render import BEVRenderer, VideoWriter
    from driving.signals import load_stop_lines

    with EmbeddedWorld(config) as world:
        driver = RouteFollower()
        scene = world.reset(routes[0], args.seed)
        driver.reset(routes[0])
        ticks = []
        for _ in range(400):
            scene = world.step(driver.run_step(scene))
            ticks.append(world.tick())
    bev = BEVRenderer(town.load_map(), routes[0], load_stop_lines(town))
    t0 = time.perf_counter()
    frames = [bev.render(t, 50.0, []) for t in ticks]
    render_ms = (time.perf_counter() - t0) / len(frames) * 1e3
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with VideoWriter(Path(tmp) / "bench.mp4") as video:
            for f in frames:
                video.append(f)
        encode_ms = (time.perf_counter() - t0) / len(frames) * 1e3

        # 2) the runner with and without videos (same routes, same seed: same simulation)
        # CPU seconds (this process + finished children, i.e. ffmpeg) are what a video costs; wall
        # time on a shared machine mostly measures the neighbours. Warm up once, then alternate.
        def cpu() -> float:
            me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
            return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime

        def run(label: str, video_dir: Path | None) -> tuple[float, float, float]:
            t0, c0 = time.perf_counter(), cpu()
            res = run_routes(routes, config, RouteFollower, checkpoint_path=Path(tmp) / f"{label}.json",
                             video_dir=video_dir, seed=args.seed, progress=False)
            game = sum(r["meta"]["duration_game"] for r in res["_checkpoint"]["records"])
            return time.perf_counter() - t0, cpu() - c0, game

        run("warm-up", None)
        best: dict[str, tuple[float, float, float]] = {}
        for i in range(args.repeats):
            order = [("no video", None), ("video", Path(tmp) / "videos")]
            for label, video_dir in order if i % 2 == 0 else order[::-1]:
                wall, cpu_s, game = run(label, video_dir)
                if label not in best or cpu_s < best[label][1]:
                    best[label] = (wall, cpu_s, game)
        for label, (wall, cpu_s, game) in best.items():
            print(f"runner {label:8s}: {cpu_s:6.2f} CPU s, {wall:6.2f} s wall for {game:7.1f} s simulated "
                  f"({game / cpu_s:5.1f}x real time per CPU second)")
    print(f"BEV render  : {render_ms:6.2f} ms/frame ({np.mean([f.nbytes for f in frames]) / 1024:.0f} KiB frames)")
    print(f"MP4 encode  : {encode_ms:6.2f} ms/frame")
    print(f"CPU ratio video / no video: {best['video'][1] / best['no video'][1]:.2f}")


if __name__ == "__main__":
    main()
