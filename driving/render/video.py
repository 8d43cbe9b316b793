"""Episode videos: RGB frames -> MP4 (H.264 through imageio-ffmpeg's bundled ffmpeg)."""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

import numpy as np

log = logging.getLogger(__name__)


class VideoWriter:
    """Append RGB uint8 frames of one size; ``close()`` (or the ``with`` block) finishes the MP4.

    The file is written to ``<name>.part.mp4`` and renamed on close, so a crashed run never leaves a
    truncated video under the final name.
    """

    def __init__(self, path: str | Path, fps: float = 20.0, quality: int = 7) -> None:
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self.frames = 0
        self._tmp = self.path.with_name(self.path.stem + ".part" + self.path.suffix)
        self._writer = None

    def append(self, frame: np.ndarray) -> None:
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"video frames must be HxWx3 uint8 RGB, got {frame.shape} {frame.dtype}")
        if self._writer is None:
            import imageio.v2 as imageio  # imported on first frame: videos cost nothing unless asked for

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = imageio.get_writer(
                self._tmp, format="FFMPEG", mode="I", fps=self.fps, codec="libx264", quality=self.quality,
                pixelformat="yuv420p", macro_block_size=16, ffmpeg_log_level="error",
                output_params=["-preset", "veryfast"])  # small frames: encoder speed matters more than size
        self._writer.append_data(frame)
        self.frames += 1

    def close(self) -> Path | None:
        """Finish the file; returns its path, or None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.close()
        self._writer = None
        self._tmp.replace(self.path)
        log.debug("wrote %s (%d frames)", self.path, self.frames)
        return self.path

    def abort(self) -> None:
        """Drop the video being written (after a failure): the writer is closed quietly, the part file removed."""
        writer, self._writer = self._writer, None
        if writer is not None:
            try:
                writer.close()
            except Exception as exc:  # noqa: BLE001 - already failing; the file is discarded anyway
                log.debug("closing the failed video writer of %s: %r", self.path, exc)
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def count_frames(path: str | Path) -> int:
    """Number of decodable frames in a video file (decodes it with ffmpeg)."""
    import imageio_ffmpeg

    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    return int(frames)
