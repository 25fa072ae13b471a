"""Live video for WebSocket viewers: the width ladder, rate limiting, drawing at the rendition's
size, and a video thread that survives a failing frame."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from lanewatch.sinks.annotate import FrameAnnotator
from lanewatch.sinks.frames import Frame
from lanewatch.sinks.live_video import LiveVideo, RateLimiter, rendition_width
from lanewatch.sinks.results import FrameResult, StageTimings
from lanewatch.trackers.analytics.lane_analytics import AnalyticsUpdate, LaneState
from lanewatch.trackers.analytics.lanes import LaneSpec, resolve_lanes
from lanewatch.trackers.detections import Detections

LANES = resolve_lanes([LaneSpec(name="l1", polygon=[[100, 100], [600, 100], [600, 600],
                                                    [100, 600]],
                                line=[[100, 400], [600, 400]])], "pixels", 1280, 720)


def result(index: int = 0, stream: str = "cam", masks: bool = False) -> FrameResult:
    image = np.full((720, 1280, 3), 90, np.uint8)
    tracks = Detections(
        xyxy=np.array([[200, 300, 400, 450]], np.float32), confidence=np.array([0.9], np.float32),
        class_id=np.array([2], np.int32), class_names={2: "car"},
        masks=np.ones((1, 720, 1280), bool) if masks else None,
        tracker_id=np.array([7]))
    lanes = (LaneState("l1", 1, False, 0.5, {"in": 3}),)
    return FrameResult(Frame.of_image(stream, index, index / 30, time.time(), image), tracks,
                       tracks, AnalyticsUpdate(lanes, (), ()), StageTimings(0.0, 0.0, 0.0))


@pytest.mark.parametrize("max_width, frame_width, expected", [
    (640, 1280, 640),
    (700, 1280, 640),  # the step below what was asked
    (959, 1920, 800),
    (4096, 1280, 1280),  # never wider than the camera
    (1280, 1000, 960),
    (200, 1280, 200),  # below the ladder: exactly what was asked
    (320, 1280, 320),
    (64, 50, 50),
])
def test_rendition_width(max_width, frame_width, expected):
    assert rendition_width(max_width, frame_width) == expected


@pytest.mark.parametrize("fps, spacing, seconds", [
    (10, 1 / 30, 10),  # a 30 frames/s source, 10 asked: exactly 10
    (10, 1 / 15, 10),  # 15 frames/s source: not 7.5 (no beat)
    (4, 1 / 25, 5),
    (30, 1 / 30, 4),  # asking for at least the source rate: every frame
])
def test_rate_limiter_keeps_the_average_at_most_the_asked_rate(fps, spacing, seconds):
    limiter = RateLimiter()
    times = np.arange(0, seconds, spacing) + 1000.0
    allowed = [t for t in times if limiter.allow(t, fps)]
    source_rate = 1 / spacing
    assert len(allowed) <= fps * seconds + 1
    assert len(allowed) >= min(fps, source_rate) * seconds * 0.95


def test_rate_limiter_does_not_burst_after_a_pause():
    limiter = RateLimiter()
    assert limiter.allow(0.0, 10)
    assert not limiter.allow(0.05, 10)
    assert limiter.allow(0.1, 10)
    assert limiter.allow(5.0, 10)  # after a long pause
    assert not limiter.allow(5.05, 10)  # no catching up
    assert limiter.allow(5.1, 10)
    assert limiter.allow(5.24, 10)  # a little late: the schedule holds (next at 5.3)
    assert not limiter.allow(5.28, 10)
    assert limiter.allow(5.3, 10)


@pytest.mark.parametrize("width, shape", [(None, (720, 1280, 3)), (640, (360, 640, 3)),
                                          (2000, (720, 1280, 3))])
def test_annotator_draws_at_the_output_size(width, shape):
    annotator = FrameAnnotator(LANES, frame_size=(1280, 720), output_width=width)
    image = annotator.annotate(result(masks=True))
    assert image.shape == shape
    # The counting line (the first lane's palette colour, #3fa7ff, under the masks) sits at
    # y = 400 of the camera frame, scaled: nearer that colour than the rows beside it.
    y = round(400 * shape[1] / 1280)
    span = slice(round(150 * shape[1] / 1280), round(550 * shape[1] / 1280))
    off = [np.abs(image[row, span].astype(int) - (255, 167, 63)).sum(axis=1)
           for row in (y, y - 12)]
    assert np.mean(off[0] + 40 < off[1]) > 0.4


class Viewers:
    """Stands in for the hub: the clients' requests, and what was published."""

    def __init__(self, requests):
        self.requests = requests
        self.frames = []
        self.published = threading.Event()

    def publish(self, frame):
        self.frames.append(frame)
        self.published.set()


def make_annotator(stream, frame_size, width):
    return FrameAnnotator(LANES, frame_size=frame_size, output_width=width)


@pytest.mark.timeout(30)
def test_one_encode_per_rendition_at_the_fastest_clients_rate():
    viewers = Viewers([(5.0, 700), (2.0, 640), (30.0, 1280)])
    video = LiveVideo(["cam"], lambda s: viewers.requests, viewers.publish,
                      make_annotator).start()
    try:
        for i in range(40):  # 2 s of a 20 frames/s stream
            video.on_result(result(i))
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        video.stop()
    by_width = {}
    for f in viewers.frames:
        by_width.setdefault(f.rendition, []).append(f)
        image = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape[1] == f.rendition == f.header["width"]
        assert f.source_width == 1280 and f.header["stream"] == "cam"
    assert set(by_width) == {640, 1280}
    assert 8 <= len(by_width[640]) <= 12  # the 5 frames/s of the faster 640 client
    assert len(by_width[1280]) >= 15  # as fast as the video thread keeps up, up to 20/s


@pytest.mark.timeout(30)
def test_shed_video_is_drawn_at_the_governors_share_never_below_one_frame_a_second():
    """An overloaded box sheds live video first (stream/pipeline/governor.py): at a quarter, a
    5 frames/s client gets ~1.25 frames/s, and a 1 frames/s client keeps its 1 frame/s."""
    viewers = Viewers([(5.0, 640), (1.0, 320)])
    video = LiveVideo(["cam"], lambda s: viewers.requests, viewers.publish, make_annotator,
                      rate_scale=lambda: 0.25).start()
    try:
        for i in range(80):  # 4 s of a 20 frames/s stream
            video.on_result(result(i))
            time.sleep(0.05)
        time.sleep(0.3)
    finally:
        video.stop()
    by_width = {}
    for f in viewers.frames:
        by_width.setdefault(f.rendition, []).append(f)
    assert 4 <= len(by_width[640]) <= 6  # 1.25 frames/s instead of 5
    assert 3 <= len(by_width[320]) <= 5  # 1 frame/s: already at the floor


@pytest.mark.timeout(30)
def test_nothing_is_drawn_without_viewers_and_a_failing_frame_loses_only_itself():
    viewers = Viewers([])
    calls = []

    def flaky_annotator(stream, frame_size, width):
        calls.append(width)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return make_annotator(stream, frame_size, width)

    video = LiveVideo(["cam"], lambda s: viewers.requests, viewers.publish,
                      flaky_annotator).start()
    try:
        video.on_result(result(0))
        time.sleep(0.3)
        assert calls == [] and viewers.frames == []  # nobody watches: no work at all
        viewers.requests = [(10.0, 640)]
        video.on_result(result(1))  # the annotator fails to build: this frame is lost
        time.sleep(0.3)
        video.on_result(result(2))
        assert viewers.published.wait(5)
        assert [f.header["frame"] for f in viewers.frames] == [2]
        video.on_result(result(3, stream="unknown"))  # a stream it does not know: ignored
    finally:
        video.stop()
    assert video.frames_encoded("cam") == 1
