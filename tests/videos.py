"""Generated videos for edge cases (written with PyAV; nothing downloaded)."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np


def write_video(path: Path, frames: int = 60, size: tuple[int, int] = (320, 240),
                fps: int = 30, seed: int = 0) -> Path:
    """An H.264 MP4 of random-noise frames with its index up front (faststart)."""
    rng = np.random.default_rng(seed)
    container = av.open(str(path), "w", options={"movflags": "faststart"})
    stream = container.add_stream("libx264", rate=fps)
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    for _ in range(frames):
        image = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="bgr24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def truncate(src: Path, dst: Path, keep: float | int) -> Path:
    """Copy the first `keep` bytes (int) or fraction (float) of a file."""
    data = src.read_bytes()
    n = keep if isinstance(keep, int) else int(len(data) * keep)
    dst.write_bytes(data[:n])
    return dst


def zero_frame_video(path: Path) -> Path:
    """An MP4 whose index declares frames but whose media data is empty."""
    full = write_video(path.with_name(path.stem + "_full.mp4"), frames=10)
    data = full.read_bytes()
    return truncate(full, path, data.find(b"mdat") + 4)


def header_only_video(path: Path) -> Path:
    """An MP4 with a header written but no frame ever encoded."""
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height = 64, 64
    stream.pix_fmt = "yuv420p"
    container.start_encoding()
    container.close()
    return path
