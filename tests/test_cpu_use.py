"""The CPU accounting `process` writes to summary.json and `bench` prints."""

from __future__ import annotations

import threading
import time

import pytest

from lanewatch.sinks.cpu_use import CpuUse, ThreadCpuClock, cpu_bound_fps


@pytest.mark.parametrize("use, expected", [
    # frames, total, decode, main, video -> ms per frame
    (CpuUse(100, 2.5, 0.3, 0.2, 0.0),
     {"runtime": 20.0, "decode": 3.0, "main": 2.0, "video": 0.0, "total": 25.0}),
    (CpuUse(10, 0.4, 0.03, 0.02, 0.1),
     {"runtime": 25.0, "decode": 3.0, "main": 2.0, "video": 10.0, "total": 40.0}),
    # Clock granularity can make the threads add up to a little more than the process.
    (CpuUse(1, 0.010, 0.004, 0.004, 0.003),
     {"runtime": 0.0, "decode": 4.0, "main": 4.0, "video": 3.0, "total": 10.0}),
    (CpuUse(0, 0.0, 0.0, 0.0, 0.0),
     {"runtime": 0.0, "decode": 0.0, "main": 0.0, "video": 0.0, "total": 0.0}),
])
def test_cpu_per_frame_by_thread(use, expected):
    assert use.per_frame_ms() == pytest.approx(expected)


@pytest.mark.parametrize("total_ms, cores, fps", [
    (20.0, 2, 100.0),
    (25.0, 2, 80.0),
    (10.0, 1, 100.0),
    (40.0, 8, 200.0),
])
def test_the_frames_per_second_a_cpu_cost_allows(total_ms, cores, fps):
    assert cpu_bound_fps(total_ms, cores) == pytest.approx(fps)


def busy(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_a_thread_clock_counts_its_own_thread_only():
    clock = ThreadCpuClock()

    def work():
        with clock:
            busy(0.05)
            time.sleep(0.05)  # waiting is not CPU
            raise RuntimeError("a failing thread still reports its CPU")

    worker = threading.Thread(target=lambda: pytest.raises(RuntimeError, work))
    worker.start()
    busy(0.1)  # the calling thread's CPU is not the worker's
    worker.join(timeout=10)
    assert not worker.is_alive()
    assert 0.04 < clock.seconds < 0.09
