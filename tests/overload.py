"""A deterministic overload harness for live-counting tests: capacity set by the test, not
by how fast the machine happens to be.

- `PacedDetector` wraps the real detector as a single server with a fixed time per frame:
  calls take turns (one lock for the process) and each is padded to `seconds_per_frame` x its
  number of frames. With `seconds_per_frame = k / camera fps`, the box detects at most 1/k of
  one camera's frames, whatever the CPU (as long as the real model is faster than that).
- `cpu_burner()` starts a real process that keeps one core busy for the test's duration.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

from lanewatch.stream.detect.detector import DetectorDefaults
from lanewatch.trackers.detections import Detections


class PacedDetector(DetectorDefaults):
    """The wrapped detector's answers, at a capacity of 1 / `seconds_per_frame` frames/s."""

    def __init__(self, inner, seconds_per_frame: float):
        self.inner = inner
        self.seconds_per_frame = seconds_per_frame
        self.class_names = inner.class_names
        self.task = inner.task
        self.calls = 0
        self.late = 0  # calls where the real model alone took longer than the padding
        self._server = threading.Lock()

    def _paced(self, frames: int, run):
        with self._server:
            start = time.perf_counter()
            result = run()
            remaining = start + frames * self.seconds_per_frame - time.perf_counter()
            if remaining > 0:
                time.sleep(remaining)
            else:
                self.late += 1
            self.calls += 1
            return result

    @property
    def in_control(self) -> bool:
        """Whether the padding set the capacity: the real model was faster on most calls.
        Otherwise this machine, at this moment, is slower than the capacity asked for."""
        return self.calls > 0 and self.late <= self.calls / 2

    def detect(self, image, imgsz: int | None = None) -> Detections:
        return self._paced(1, lambda: self.inner.detect(image, imgsz))

    def detect_batch(self, images, imgsz: int | None = None) -> list[Detections]:
        return self._paced(len(images), lambda: self.inner.detect_batch(images, imgsz))

    def check_input_size(self, imgsz: int) -> None:
        self.inner.check_input_size(imgsz)

    def prepare(self, frame_size, imgsz=None, single=False) -> None:
        self.inner.prepare(frame_size, imgsz, single=single)


@contextlib.contextmanager
def cpu_burner() -> Iterator[subprocess.Popen]:
    """A separate process spinning on one core until the block ends."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield process
    finally:
        process.kill()
        process.wait(10)
