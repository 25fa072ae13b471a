"""A live stream end to end: the highway file paced like a camera through the real model, the
store and the metrics; restart resumes the counts; a broken stream does not stop another."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from lanewatch.sinks.errors import ModelError
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.sinks.store import CountStore
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.pipeline.runner import StreamRunner, next_slot
from lanewatch.stream.sources.live import StreamState
from lanewatch.trackers.analytics.lanes import LaneSpec

from conftest import CONFIGS
from test_review_footage import HIGHWAY_TRUTH
from videos import write_video

pytestmark = pytest.mark.integration


def wait_for(predicate, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def config():
    return load_config(CONFIGS / "highway.yaml")


@pytest.fixture(scope="module")
def detector(config):
    return create_detector(config.model)


@pytest.mark.timeout(180)
def test_live_highway_counts_like_the_review_and_resumes_after_restart(tmp_path, config,
                                                                      detector):
    store = CountStore(tmp_path / "counts.db")
    metrics = ServiceMetrics()
    results = []
    runner = StreamRunner(config.streams[0], config, detector, metrics, store,
                          on_result=results.append).start()
    try:
        assert wait_for(lambda: runner.source.state is StreamState.STOPPED
                        and not runner._thread.is_alive(), timeout=120), runner.status()
    finally:
        runner.stop()
    status = runner.status()
    assert status["frames_received"] == 335
    assert status["frames_processed"] > 0  # the rest were dropped: the latest frame wins
    assert status["frames_processed"] + status["frames_dropped"] == 335
    # Every crossing reaches the store, the metrics and the listener alike.
    counts = store.cumulative("highway")
    seen = Counter(e.lane for r in results for e in r.analytics.crossings)
    assert {k.lane: n for k, n in counts.items()} == dict(seen)
    assert {k.class_name for k in counts} == {"car"}
    exposition = metrics.exposition().decode()
    for key, n in counts.items():
        assert (f'lanewatch_lane_crossings_total{{class="car",direction="towards",'
                f'lane="{key.lane}",stream="highway"}} {float(n)}') in exposition
    assert 'lanewatch_stream_up{stream="highway"} 0.0' in exposition
    assert len(results) == status["frames_processed"]
    # The hand count (which the offline review matches): frames the worker had no time for
    # were dropped, and the counts are still exact (tests/test_frame_skipping.py covers down
    # to every 7th frame).
    assert seen == Counter(lane for _, lane in HIGHWAY_TRUTH)

    # Restart on the same store: cumulative counts resume from it.
    metrics2 = ServiceMetrics()
    again = StreamRunner(config.streams[0], config, detector, metrics2, store).start()
    try:
        assert wait_for(lambda: again.frames_processed > 3, timeout=60)
        assert again.processor.analytics.counts.total() >= sum(counts.values())
        key = next(iter(counts))
        assert (f'lane="{key.lane}",stream="highway"}} {float(counts[key])}'
                in metrics2.exposition().decode())
    finally:
        again.stop()


@pytest.mark.timeout(120)
def test_a_misconfigured_stream_fails_alone(tmp_path, config, detector):
    small = write_video(tmp_path / "small.mp4", frames=300, size=(320, 240))
    bad = StreamConfig(id="bad", source=str(small),
                       lanes=[LaneSpec(name="far", line=((0, 500), (1000, 500)))])
    metrics = ServiceMetrics()
    good = StreamRunner(config.streams[0], config, detector, metrics).start()
    broken = StreamRunner(bad, config, detector, metrics).start()
    try:
        assert wait_for(lambda: broken.state is StreamState.FAILED, timeout=30)
        assert "outside the 320x240 frame" in broken.status()["error"]
        before = good.frames_processed
        assert wait_for(lambda: good.frames_processed > before + 10, timeout=30)
    finally:
        good.stop()
        broken.stop()


class UnfitModel:
    """A detector whose start-up for the stream's frame size fails, as a fixed-size model
    that cannot run at that input does."""

    def __init__(self, inner):
        self.class_names, self.task = inner.class_names, inner.task

    def check_input_size(self, imgsz):
        pass

    def prepare(self, frame_size, imgsz=None, single=False):
        raise ModelError(f"cannot run model m at {frame_size[0]}x{frame_size[1]}")


@pytest.mark.timeout(60)
def test_a_model_that_cannot_start_on_a_stream_fails_that_stream_with_its_reason(
        tmp_path, config, detector):
    small = write_video(tmp_path / "small.mp4", frames=60, size=(320, 240))
    stream = StreamConfig(id="unfit", source=str(small))
    runner = StreamRunner(stream, config, UnfitModel(detector), ServiceMetrics()).start()
    try:
        assert wait_for(lambda: runner.state is StreamState.FAILED, timeout=30)
        assert runner.status()["error"] == "cannot run model m at 320x240"
    finally:
        runner.stop()


@pytest.mark.parametrize("captured, next_due, due, following", [
    (0.0, 0.0, True, 0.2),     # the first frame
    (0.1, 0.2, False, 0.2),    # inside the current slot: dropped
    (0.2, 0.2, True, 0.4),     # the first frame of its slot, as it arrives
    (0.23, 0.2, True, 0.4),    # a little late: the cadence keeps its slots
    (5.0, 0.4, True, 5.2),     # after a stall: no burst to catch up
    (-3600.0, 0.4, True, -3599.8),  # the wall clock stepped back an hour: no stall
])
def test_frame_rate_cap_slots(captured, next_due, due, following):
    assert next_slot(captured, next_due, 0.2) == (due, pytest.approx(following))


@pytest.mark.timeout(120)
def test_frame_rate_cap_limits_what_a_stream_takes(config, detector):
    """`source_options.max_fps: 5` on a 30 frames/s camera: about 5 frames/s are processed,
    the rest are dropped and counted, and the stream still counts its vehicles."""
    stream = config.streams[0]
    options = stream.source_options.model_copy(update={"max_fps": 5.0})
    runner = StreamRunner(stream, config, detector, ServiceMetrics(),
                          source_settings=options).start()
    try:
        assert wait_for(lambda: runner.source.state is StreamState.STOPPED
                        and not runner._thread.is_alive(), timeout=90), runner.status()
    finally:
        runner.stop()
    status = runner.status()
    seconds = 335 / (30000 / 1001)
    print(f"\ncapped at 5 frames/s: {status['frames_processed']} frames processed in "
          f"{seconds:.1f} s of video")
    assert 5 * seconds * 0.7 <= status["frames_processed"] <= 5 * seconds + 2
    assert status["frames_processed"] + status["frames_dropped"] == 335
    assert runner.processor.analytics.counts.total() >= 8  # most vehicles at 1/6 of the frames
