"""Where a run's CPU goes: the CPU time of each of the pipeline's threads, per frame.

On a box bound by its CPU every frame costs the sum of these, whatever runs in parallel: with
every core busy, `cores x 1000 / total ms` frames per second is the most the run could do.
`lanewatch process` writes the figures into summary.json and `lanewatch bench` prints them
beside the model's own, which shows what the pipeline adds to the model and what bounds it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class CpuUse:
    """CPU seconds of one run, by thread. A library's own worker threads (FFmpeg's slice
    threads, the inference runtime's) count under `runtime_s`, with anything else the
    process did."""

    frames: int
    total_s: float  # the whole process, every thread
    decode_s: float  # the decoder thread (demux, decode)
    main_s: float  # the pipeline: pre- and post-processing, tracking, counting, drawing
    video_s: float  # the video encoder's thread (colour conversion, x264); 0 without video

    @property
    def runtime_s(self) -> float:
        """The rest: the inference runtime's threads, mostly."""
        return max(self.total_s - self.decode_s - self.main_s - self.video_s, 0.0)

    def per_frame_ms(self) -> dict[str, float]:
        """Milliseconds of CPU per frame: runtime, decode, main, video and total."""
        frames = max(self.frames, 1)
        return {name: round(seconds * 1000 / frames, 3) for name, seconds in (
            ("runtime", self.runtime_s), ("decode", self.decode_s), ("main", self.main_s),
            ("video", self.video_s), ("total", self.total_s))}


def cpu_bound_fps(total_ms_per_frame: float, cores: int | None = None) -> float:
    """The frames per second a CPU cost per frame allows with every core busy."""
    return (cores or os.cpu_count() or 1) * 1000 / max(total_ms_per_frame, 1e-9)


class ThreadCpuClock:
    """`with clock:` around a thread's work: `seconds` is then the CPU time that thread used
    in the block (also when it raised). Read it after the thread has ended."""

    def __init__(self):
        self.seconds = 0.0
        self._started = 0.0

    def __enter__(self) -> ThreadCpuClock:
        self._started = time.thread_time()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.thread_time() - self._started
