"""The explicit interfaces between the stages and the detection step shared by review and live:
every optional detector capability is declared (no probing with getattr), the pipeline uses
its tracker only through the `Tracker` protocol, and `FrameResult.timings.detect_s` is the
detection's wall time on detected frames and 0 on skipped ones, in the review and live paths
alike. Fake detectors and generated traffic: no model."""

from __future__ import annotations

import ast
import collections
import inspect
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import pytest
from overload import PacedDetector
from synthetic_traffic import CLASS_NAMES, FPS, count, make_traffic, processor

from lanewatch.sinks.frames import Frame, Picture
from lanewatch.sinks.metrics import ServiceMetrics
from lanewatch.stream.config.loading import parse_config
from lanewatch.stream.detect.batching import BatchingDetector
from lanewatch.stream.detect.detector import Detector, DetectorDefaults
from lanewatch.stream.detect.openvino_detector import OpenVINODetector
from lanewatch.stream.detect.step import detection_steps, pipelined_steps
from lanewatch.stream.detect.ultralytics_detector import UltralyticsDetector
from lanewatch.stream.pipeline import processor as processor_module
from lanewatch.stream.pipeline.review import review_video
from lanewatch.stream.pipeline.runner import StreamRunner
from lanewatch.stream.sources.live import StreamState
from lanewatch.trackers.bytetrack.tracker import ByteTrack, TrackerOutput, TrackPrediction
from lanewatch.trackers.detections import Detections
from lanewatch.trackers.protocol import Tracker

from conftest import REPO
from inprocess import StubDetector
from videos import write_video

SLEEP_S = 0.02  # the fake model's time per frame


class ReplayDetector(StubDetector):
    """Answers each picture with the detections recorded for it, after `sleep_s`; one frame at
    a time (the `DetectorDefaults`)."""

    class_names = CLASS_NAMES

    def __init__(self, answers: dict[int, Detections] | None = None, sleep_s: float = SLEEP_S):
        self.answers = answers or {}  # id(picture) -> detections
        self.sleep_s = sleep_s
        self.prepared: list[tuple] = []

    def detect(self, image, imgsz: int | None = None) -> Detections:
        time.sleep(self.sleep_s)
        return self.answers.get(id(image), Detections.empty(self.class_names))

    def prepare(self, frame_size, imgsz=None, single=False) -> None:
        self.prepared.append((frame_size, imgsz, single))


class PipelinedReplay(ReplayDetector):
    """The same answers with `depth` frames in flight, as OpenVINO's `detect_frames` queues
    them: it takes frames ahead of the one it answers."""

    depth = 3

    def detect_frames(self, frames: Iterable[Frame], imgsz: int | None = None
                      ) -> Iterator[tuple[Frame, Detections]]:
        in_flight: collections.deque[Frame] = collections.deque()
        for frame in frames:
            if len(in_flight) >= self.depth:
                done = in_flight.popleft()
                yield done, self.detect(done.picture, imgsz)
            in_flight.append(frame)
        while in_flight:
            done = in_flight.popleft()
            yield done, self.detect(done.picture, imgsz)


def _protocol_methods() -> list[str]:
    return [name for name, value in vars(Detector).items()
            if callable(value) and not name.startswith("_")]


# -- explicit interfaces ---------------------------------------------------------------------
def test_no_detector_capability_is_probed_in_stream():
    """Callers call the declared methods: no `getattr`/`hasattr` on a detector method's name
    anywhere in stream/ (a probe would hide a backend that lacks the capability)."""
    members = set(_protocol_methods())
    probes = []
    for path in sorted((REPO / "stream").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("getattr", "hasattr") and len(node.args) >= 2
                    and isinstance(node.args[1], ast.Constant)
                    and node.args[1].value in members):
                probes.append(f"{path.relative_to(REPO)}:{node.lineno} {node.args[1].value}")
    assert not probes, f"detector members probed instead of called: {probes}"


@pytest.mark.parametrize("backend", [OpenVINODetector, UltralyticsDetector, BatchingDetector,
                                     DetectorDefaults, PacedDetector])
def test_every_backend_has_the_whole_protocol_with_its_signatures(backend):
    """Every method of the protocol, the optional ones too (from `DetectorDefaults` where the
    backend has nothing of its own), with the protocol's parameters."""
    methods = _protocol_methods()
    assert {"prepare", "set_callers", "detect_frames"} <= set(methods)
    if backend is DetectorDefaults:
        methods = ["prepare", "set_callers", "detect_frames"]
    else:
        assert issubclass(backend, DetectorDefaults)
    for name in methods:
        declared = list(inspect.signature(getattr(Detector, name)).parameters)
        assert list(inspect.signature(getattr(backend, name)).parameters) == declared, name


def test_a_wrapping_detector_passes_the_capabilities_on():
    """The batching detector is a whole `Detector` and forwards the start-up work."""
    inner = ReplayDetector(sleep_s=0.0)
    batching = BatchingDetector(inner, batch_size=2, timeout_s=0.001)
    try:
        assert isinstance(batching, Detector)
        batching.prepare((640, 360), 320)
        batching.set_callers(3)  # the dispatcher is the only caller: nothing to pass on
        assert inner.prepared == [((640, 360), 320, False)]
        assert [len(d) for d in batching.detect_batch([np.zeros((8, 8, 3), np.uint8)] * 3)
                ] == [0, 0, 0]
    finally:
        batching.close()


class ProtocolOnly:
    """A tracker with the `Tracker` protocol's methods and nothing else (ByteTrack inside):
    the pipeline fails on anything more it asks for."""

    __slots__ = ("_inner", "calls")

    def __init__(self, inner: ByteTrack):
        self._inner = inner
        self.calls: collections.Counter[str] = collections.Counter()

    def update(self, detections: Detections, timestamp_s: float) -> TrackerOutput:
        self.calls["update"] += 1
        return self._inner.update(detections, timestamp_s)

    def predict(self, timestamp_s: float) -> TrackPrediction:
        self.calls["predict"] += 1
        return self._inner.predict(timestamp_s)

    def reset(self) -> None:
        self._inner.reset()


def test_bytetrack_is_a_tracker_and_predicts_without_changing_its_state():
    tracker = ByteTrack(frame_rate=30)
    assert isinstance(tracker, Tracker)
    assert "predict" in vars(Tracker)
    box = Detections(xyxy=np.array([[10, 10, 50, 40]], np.float32),
                     confidence=np.array([0.9], np.float32), class_id=np.array([2], np.int32),
                     class_names=CLASS_NAMES)
    tracker.update(box, 0.0)
    prediction = tracker.predict(1 / 30)
    assert isinstance(prediction, TrackPrediction) and prediction.ids.tolist() == [1]
    assert tracker.predict(1 / 30).xyxy.tolist() == prediction.xyxy.tolist()


def test_the_pipeline_uses_its_tracker_only_through_the_protocol():
    """An injected tracker with the protocol's methods only counts what ByteTrack counts, on
    detected frames (update) and skipped ones (predict) alike."""
    traffic = make_traffic(speed=12, length=60, seed=3)
    tracker = ProtocolOnly(ByteTrack(processor(traffic).tracker.settings, frame_rate=FPS))
    pipeline = processor(traffic, tracker=tracker)
    assert pipeline.tracker is tracker
    picture = Picture(bgr=np.zeros((2, 2, 3), np.uint8))
    events = []
    for index, detections in enumerate(traffic.frames):
        frame = Frame("synthetic", index, index / FPS, 0.0, picture)
        events += pipeline.update(frame, None if index % 2 else detections).analytics.crossings
    assert _keys(events) == _keys(count(traffic, every=2))
    assert tracker.calls["update"] > 0 and tracker.calls["predict"] > 0


# -- the detection step --------------------------------------------------------------------------
def _frames(traffic, answers: dict[int, Detections]) -> list[Frame]:
    """The traffic's frames, each with its own picture; `answers` maps the pictures to the
    traffic's detections (what the fake model finds)."""
    frames = []
    for index, detections in enumerate(traffic.frames):
        picture = Picture(bgr=np.zeros((2, 2, 3), np.uint8))  # update() never looks at pixels
        answers[id(picture)] = detections
        frames.append(Frame("synthetic", index, index / FPS, 0.0, picture))
    return frames


def _keys(events) -> list[tuple]:
    return [(e.lane, e.track_id, e.frame_index, e.direction) for e in events]


@pytest.mark.parametrize("detector_type", [ReplayDetector, PipelinedReplay])
@pytest.mark.parametrize("every", [1, 3])
def test_review_step_times_each_detection_and_keeps_the_counts(detector_type, every):
    """Through the review's step (one at a time, or several frames in flight): frames in order,
    the same crossings as feeding the tracker directly, detect_s at least the model's time on
    every detected frame and 0 on the skipped ones."""
    traffic = make_traffic(speed=12, length=60, seed=1)
    pipeline = processor(traffic, every_nth_frame=every)
    answers: dict[int, Detections] = {}
    frames = _frames(traffic, answers)
    events, order = [], []
    for step in pipelined_steps(frames, detector_type(answers), pipeline.plan):
        result = pipeline.update(step.frame, step.detections, step.detect_s)
        assert result.detected == (step.frame.index % every == 0)
        if result.detected:
            assert result.timings.detect_s >= SLEEP_S
        else:
            assert result.timings.detect_s == 0.0
        events += result.analytics.crossings
        order.append(step.frame.index)
    assert order == list(range(len(frames)))
    assert _keys(events) == _keys(count(traffic, every))


def test_pipelined_detect_s_leaves_out_the_wait_for_the_source():
    """Time spent waiting for the decoder's next frame is not the model's."""
    traffic = make_traffic(speed=12, length=60, seed=1)
    pipeline = processor(traffic)
    answers: dict[int, Detections] = {}
    frames = _frames(traffic, answers)[:12]

    def slow_source():
        for frame in frames:
            time.sleep(0.05)  # decoding
            yield frame

    steps = list(pipelined_steps(slow_source(), ReplayDetector(answers, sleep_s=0.0),
                                 pipeline.plan))
    assert len(steps) == 12 and all(s.detected for s in steps)
    assert sum(s.detect_s for s in steps) < 0.05  # twelve waits of 0.05 s left out


def test_live_step_is_one_frame_at_a_time():
    """The live step hands each frame on before taking the next, timed like the review's."""
    taken, detector = [], ReplayDetector()

    def frames():
        for index in range(4):
            taken.append(index)
            yield Frame("cam", index, index / FPS, 0.0, Picture(bgr=np.zeros((2, 2, 3),
                                                                              np.uint8)))

    for step in detection_steps(frames(), lambda f: f.index % 2 == 0, detector.detect):
        assert taken[-1] == step.frame.index  # nothing taken ahead
        assert step.detected == (step.frame.index % 2 == 0)
        assert step.detect_s >= SLEEP_S if step.detected else step.detect_s == 0.0


# -- both drivers, end to end ------------------------------------------------------------------
@pytest.fixture
def recorded(monkeypatch) -> list:
    """Every FrameResult the pipeline makes (taken at `StreamProcessor.update`)."""
    results = []
    update = processor_module.StreamProcessor.update

    def recording(self, *args, **kwargs):
        result = update(self, *args, **kwargs)
        results.append(result)
        return result

    monkeypatch.setattr(processor_module.StreamProcessor, "update", recording)
    return results


def _config(tmp_path: Path, video: Path, every: int, adaptive: bool = True):
    return parse_config({
        "model": {"path": "stub.pt"}, "output": {"video": False},
        "store": {"path": str(tmp_path / "counts.db")},
        "streams": [{"id": "cam", "source": str(video),
                     "detection": {"every_nth_frame": every, "adaptive": adaptive},
                     "lanes": [{"name": "l1", "line": [[10, 120], [310, 120]]}]}]})


def _assert_timed(results: list, every: int) -> None:
    assert results and results[0].detected
    for result in results:
        assert result.detected == (result.frame.index % every == 0), result.frame.index
        if result.detected:
            assert result.timings.detect_s >= SLEEP_S
        else:
            assert result.timings.detect_s == 0.0


@pytest.mark.timeout(60)
def test_review_results_carry_the_detection_time(tmp_path, recorded):
    video = write_video(tmp_path / "cam.mp4", frames=12)
    config = _config(tmp_path, video, every=2)
    review_video(video, config, tmp_path / "out", progress=False, detector=ReplayDetector())
    assert len(recorded) == 12
    _assert_timed(recorded, every=2)


@pytest.mark.timeout(60)
def test_live_results_carry_the_detection_time(tmp_path, recorded):
    video = write_video(tmp_path / "cam.mp4", frames=12)
    config = _config(tmp_path, video, every=2, adaptive=False)
    detector = ReplayDetector()
    runner = StreamRunner(config.streams[0], config, detector, ServiceMetrics()).start()
    try:
        deadline = time.monotonic() + 30
        while not (runner.source.state is StreamState.STOPPED
                   and not runner._thread.is_alive()):
            assert time.monotonic() < deadline, runner.status()
            time.sleep(0.05)
    finally:
        runner.stop()
    assert detector.prepared == [((320, 240), None, True)]  # compiled before the first frame
    assert len(recorded) == runner.frames_processed > 0
    _assert_timed(recorded, every=2)
