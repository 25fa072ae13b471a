"""Dynamic batching: one detector serves every stream of a process.

Each stream's worker calls `detect` and waits. A dispatcher thread takes the first waiting
frame, gathers whatever else arrives within `timeout` (up to `batch_size` frames) and runs them
through the model together: one `predict` call on a list for Ultralytics (a real batch on a
GPU), all frames in flight at once for OpenVINO. Fairness comes from the shape of it: each
stream has at most one frame waiting (its worker blocks until it is answered) and frames are
taken in arrival order, so a busy stream cannot push the others out of a batch.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from lanewatch.sinks.frames import Image
from lanewatch.stream.detect.detector import Detector, DetectorDefaults
from lanewatch.trackers.detections import Detections


@dataclass
class _Request:
    image: Image
    imgsz: int | None
    done: threading.Event = field(default_factory=threading.Event)
    result: Detections | None = None
    error: BaseException | None = None


class BatchingDetector(DetectorDefaults):
    """A `Detector` that batches the concurrent calls of several threads (see module doc).
    `detect_frames` is the default, one frame at a time: a live stream's worker is one of
    the callers a batch gathers."""

    def __init__(self, detector: Detector, batch_size: int, timeout_s: float,
                 observe: Callable[[int], None] | None = None):
        self.inner = detector
        self._observe = observe  # called with each batch's size (a metrics histogram)
        self.class_names = detector.class_names
        self.task = detector.task
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        self.batch_sizes: Counter[int] = Counter()  # how many batches of each size ran
        self._queue: queue.Queue[_Request | None] = queue.Queue()
        self._thread = threading.Thread(target=self._dispatch, name="batching", daemon=True)
        self._thread.start()

    def check_input_size(self, imgsz: int) -> None:
        self.inner.check_input_size(imgsz)

    def prepare(self, frame_size: tuple[int, int], imgsz: int | None = None,
                single: bool = False) -> None:
        """Start-up work of the model for a stream's frames: for batches, whoever asks."""
        self.inner.prepare(frame_size, imgsz)

    def set_callers(self, callers: int) -> None:
        """The dispatcher is the model's only caller, whatever the number of streams."""

    def detect(self, image: Image, imgsz: int | None = None) -> Detections:
        """Objects in one image, inferred in a batch with other streams' frames."""
        return self.detect_batch([image], imgsz)[0]

    def detect_batch(self, images: list[Image], imgsz: int | None = None
                     ) -> list[Detections]:
        """Objects in several images, queued together for the dispatcher's batches (a
        caller with several images waits for all of them)."""
        requests = [_Request(image, imgsz) for image in images]
        for request in requests:
            self._queue.put(request)
        for request in requests:
            request.done.wait()
            if request.error is not None:
                raise request.error
        return [request.result for request in requests]

    def close(self) -> None:
        """End the dispatcher thread (its queued frames are answered first)."""
        self._queue.put(None)
        self._thread.join(10)

    def _dispatch(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = time.monotonic() + self.timeout_s
            closing = False
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
                except queue.Empty:
                    break
                if item is None:
                    closing = True
                    break
                batch.append(item)
            self._run(batch)
            if closing:
                return

    def _run(self, batch: list[_Request]) -> None:
        self.batch_sizes[len(batch)] += 1
        if self._observe is not None:
            self._observe(len(batch))
        by_size: dict[int | None, list[_Request]] = {}
        for request in batch:  # frames for different input sizes cannot share a call
            by_size.setdefault(request.imgsz, []).append(request)
        for imgsz, group in by_size.items():
            try:
                results = self.inner.detect_batch([r.image for r in group], imgsz)
            except BaseException as err:  # noqa: BLE001 - handed to each waiting caller
                for r in group:
                    r.error = err
                    r.done.set()
                continue
            for r, detections in zip(group, results):
                r.result = detections
                r.done.set()
