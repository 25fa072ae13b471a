"""H.264 video file writer on PyAV, encoding in its own thread.

Frames are queued (bounded; the producer waits, so no frame is lost) and encoded by a worker
thread, overlapping encoding with inference. An encoder failure is kept and re-raised as
`VideoWriteError` at the next `write` or at `close`, so the caller can isolate it.
"""

from __future__ import annotations

import queue
import threading
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

_STOP = object()


class VideoWriteError(RuntimeError):
    """The annotated video could not be written."""


class VideoWriter:
    """Writes BGR frames of a fixed size to an H.264 MP4 at a constant frame rate."""

    def __init__(self, path: Path, fps: float, width: int, height: int, crf: int = 23,
                 queue_size: int = 8, preset: str = "superfast"):
        self.path = Path(path)
        # H.264 with yuv420p needs even dimensions; odd sizes are padded by one pixel.
        self.width, self.height = width + width % 2, height + height % 2
        try:
            self._container = av.open(str(self.path), mode="w")
            rate = Fraction(fps).limit_denominator(1001)
            self._time_base = 1 / rate  # one tick per frame: constant frame rate
            self._stream = self._container.add_stream("libx264", rate=rate)
            self._stream.width, self._stream.height = self.width, self.height
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = {"crf": str(crf), "preset": preset}
        except (av.error.FFmpegError, ValueError) as err:
            raise VideoWriteError(f"cannot create {self.path}: {err}") from None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: Exception | None = None
        self.frames_written = 0
        self._thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray) -> None:
        """Queue one BGR frame (blocks while the queue is full)."""
        if self._error is not None:
            raise VideoWriteError(f"writing {self.path} failed: {self._error}")
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = np.pad(image, ((0, self.height - image.shape[0]),
                                   (0, self.width - image.shape[1]), (0, 0)))
        self._queue.put(image)

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not _STOP:
                # OpenCV's SIMD colour conversion costs a third of swscale's (which PyAV
                # would run inside encode) on the encoder thread's budget.
                frame = av.VideoFrame.from_ndarray(cv2.cvtColor(item, cv2.COLOR_BGR2YUV_I420),
                                                   format="yuv420p")
                frame.pts = self.frames_written
                frame.time_base = self._time_base
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self.frames_written += 1
            for packet in self._stream.encode():
                self._container.mux(packet)
        except Exception as err:  # kept for the producer; drain so it never blocks
            self._error = err
            while self._queue.get() is not _STOP:
                pass

    def close(self) -> None:
        """Flush the encoder and finish the file; raises VideoWriteError on failure."""
        self._queue.put(_STOP)
        self._thread.join()
        try:
            self._container.close()
        except Exception as err:
            self._error = self._error or err
        if self._error is not None:
            raise VideoWriteError(f"writing {self.path} failed: {self._error}")
