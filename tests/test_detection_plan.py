"""`streams[].detection`: detection on every Nth frame (the tracker predicts between), a
region-of-interest crop and a per-stream input size. Unit tables for the plan, the tracker's
prediction, and the real model on highway.mp4, where counts must stay exact."""

from __future__ import annotations

import re
import textwrap
from collections import Counter

import numpy as np
import pytest
from test_bad_inputs import assert_clean_error, run_process

from lanewatch.sinks.frames import Picture
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import DetectionSettings, ModelConfig, StreamConfig
from lanewatch.stream.detect.detection_plan import DetectionPlan, Region, resolve_region
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.detect.step import pipelined_steps
from lanewatch.stream.pipeline.processor import StreamProcessor, _shift_masks
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.trackers.analytics.lanes import LaneSpec, resolve_lanes
from lanewatch.trackers.bytetrack.tracker import ByteTrack, ByteTrackSettings
from lanewatch.trackers.detections import Detections

from conftest import CONFIGS
from test_review_footage import HIGHWAY_TRUTH
from videos import write_video

EXPECTED = Counter(lane for _, lane in HIGHWAY_TRUTH)
LANES = [LaneSpec(name="a", polygon=[(100, 100), (300, 100), (300, 200), (100, 200)]),
         LaneSpec(name="b", line=[(250, 150), (400, 180)])]


def settings(**kw) -> DetectionSettings:
    return DetectionSettings(**kw)


@pytest.mark.parametrize("detection, coordinates, expected", [
    (settings(), "pixels", None),
    (settings(region="lanes", region_margin=0), "pixels", Region(100, 100, 400, 200)),
    # margin: 5% of 640 = 32 px, 5% of 480 = 24 px
    (settings(region="lanes"), "pixels", Region(68, 76, 432, 224)),
    # a margin past the frame's edge is cut at the edge
    (settings(region="lanes", region_margin=0.5), "pixels", Region(0, 0, 640, 440)),
    (settings(region=[10, 20, 330.5, 240]), "pixels", Region(10, 20, 332, 240)),  # even
    (settings(region=[11, 19, 329, 239]), "pixels", Region(10, 18, 330, 240)),
    (settings(region=[0.25, 0.5, 0.75, 1.0]), "normalized", Region(160, 240, 480, 480)),
    (settings(region=[0, 0, 640, 480]), "pixels", None),  # the whole frame: no crop at all
])
def test_region_resolves_to_pixels(detection, coordinates, expected):
    lanes = resolve_lanes(LANES, "pixels", 640, 480)
    assert resolve_region(detection, lanes, coordinates, (640, 480)) == expected


@pytest.mark.parametrize("detection, lanes, coordinates, message", [
    (settings(region=[0, 0, 700, 100]), LANES, "pixels", "outside the 640x480 frame"),
    (settings(region=[0, 0, 2, 0.5]), LANES, "normalized", "is not in 0..1"),
    (settings(region=[0, 0, 20, 100]), LANES, "pixels", "too small"),
    (settings(region="lanes"), [], "pixels", "needs at least one lane"),
])
def test_bad_regions_say_what_to_change(detection, lanes, coordinates, message):
    resolved = resolve_lanes(lanes, "pixels", 640, 480)
    with pytest.raises(ValueError, match=message):
        resolve_region(detection, resolved, coordinates, (640, 480))


@pytest.mark.parametrize("region, message", [
    ([1, 2, 3], "must be [x1, y1, x2, y2]"),
    ([5, 0, 4, 10], "x1 < x2"),
    ("roads", "Input should be 'full' or 'lanes'"),
])
def test_region_config_is_validated(region, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        DetectionSettings(region=region)
    with pytest.raises(ValueError, match="multiple of 32"):
        DetectionSettings(imgsz=300)


@pytest.mark.parametrize("every, pattern", [
    (1, "1111111"),
    (2, "1010101"),
    (3, "1001001"),
])
def test_schedule_detects_the_first_frame_then_every_nth(every, pattern):
    plan = DetectionPlan(settings(every_nth_frame=every), None, (640, 480))
    assert "".join("1" if plan.due() else "0" for _ in pattern) == pattern


def test_restore_moves_boxes_and_pads_masks_to_the_frame():
    plan = DetectionPlan(settings(), Region(100, 50, 300, 150), (640, 480))
    image = np.arange(480 * 640 * 3, dtype=np.uint8).reshape(480, 640, 3)
    crop = plan.crop(Picture(bgr=image))
    assert crop.size == (200, 100)
    assert crop.bgr[0, 0, 0] == image[50, 100, 0]
    mask = np.zeros((1, 100, 200), bool)
    mask[0, 10:20, 30:40] = True
    on_crop = Detections(np.array([[30, 10, 40, 20]], np.float32), np.array([0.9], np.float32),
                         np.array([2], np.int32), masks=mask)
    full = plan.restore(on_crop)
    np.testing.assert_array_equal(full.xyxy, [[130, 60, 140, 70]])
    assert full.masks.shape == (1, 480, 640)
    assert full.masks.sum() == 100 and full.masks[0, 60:70, 130:140].all()


@pytest.mark.parametrize("shift, moved_to", [
    ((0, 0), (10, 20)),
    ((5, 3), (15, 23)),
    ((-4, -6), (6, 14)),
    ((100, 0), None),  # moved out of the frame: nothing left
])
def test_masks_follow_the_predicted_box(shift, moved_to):
    masks = np.zeros((1, 40, 60), bool)
    masks[0, 20:24, 10:14] = True
    dx, dy = shift
    out = _shift_masks(masks, np.array([[dx, dy, dx, dy]], float))
    if moved_to is None:
        assert not out.any()
    else:
        x, y = moved_to
        assert out[0, y:y + 4, x:x + 4].all() and out.sum() == 16


def test_prediction_extrapolates_without_changing_the_tracker():
    """A car moving 4 px per frame: predictions continue the motion, and the tracker's later
    updates are exactly those of a tracker that never predicted."""
    def box(t):
        return Detections(np.array([[100 + 4 * t, 50, 140 + 4 * t, 80]], np.float32),
                          np.array([0.9], np.float32), np.array([2], np.int32))
    s = ByteTrackSettings(min_hits=1)
    predicting, plain = ByteTrack(s, 30), ByteTrack(s, 30)
    for t in range(10):
        predicting.update(box(t), t / 30)
        plain.update(box(t), t / 30)
    for t in (10, 11):
        p = predicting.predict(t / 30)
        assert p.ids.tolist() == [1] and p.confirmed.tolist() == [True]
        np.testing.assert_allclose(p.xyxy[0], box(t).xyxy[0], atol=1.0)
    a, b = predicting.update(box(12), 12 / 30), plain.update(box(12), 12 / 30)
    np.testing.assert_array_equal(a.filtered_xyxy, b.filtered_xyxy)
    assert ByteTrack(s, 30).predict(0.0).ids.size == 0  # nothing seen yet


# -- the real model on highway.mp4 --------------------------------------------------------------
@pytest.fixture(scope="module")
def highway(highway_video):
    config = load_config(CONFIGS / "highway.yaml")
    detector = create_detector(config.model)
    with FileSource(highway_video) as source:
        frames = list(source.frames())
    return config, detector, frames


def with_detection(highway, **kw):
    """A processor for the highway stream with these `detection:` settings."""
    config, detector, _ = highway
    stream = config.streams[0]
    detection = stream.detection.model_copy(update=kw)
    return StreamProcessor(stream.model_copy(update={"detection": detection}), config,
                           detector, (1280, 720), 30000 / 1001)


def run(processor, frames):
    """(crossing events, detected flags) of `frames` through the plan, pipelined."""
    events, detected = [], []
    for step in pipelined_steps(frames, processor.detector, processor.plan):
        result = processor.update(step.frame, step.detections, step.detect_s)
        events += result.analytics.crossings
        detected.append(result.detected)
    return events, detected


def assert_hand_count(events, label):
    per_lane = Counter(e.lane for e in events)
    assert per_lane == EXPECTED, f"{label}: counted {dict(per_lane)}, expected {dict(EXPECTED)}"
    assert len({e.track_id for e in events}) == len(events), f"{label}: a track counted twice"


@pytest.mark.integration
@pytest.mark.timeout(600)
@pytest.mark.parametrize("every", [2, 3, 4])
def test_detecting_every_nth_frame_still_counts_exactly(highway, every):
    frames = highway[2]
    processor = with_detection(highway, every_nth_frame=every)
    events, detected = run(processor, frames)
    assert len(detected) == 335 and sum(detected) == len(range(0, 335, every))
    assert detected[:every + 1] == [True] + [False] * (every - 1) + [True]
    assert_hand_count(events, f"detection every {every}th frame")


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_predicted_frames_carry_the_tracks(highway):
    """Between detections the tracks move on: same ids, boxes shifted down the image."""
    frames = highway[2]
    processor = with_detection(highway, every_nth_frame=3)
    previous = None
    moved = 0
    for step in pipelined_steps(frames[:120], processor.detector, processor.plan):
        result = processor.update(step.frame, step.detections, step.detect_s)
        if not result.detected and previous is not None and len(result.tracks):
            before = dict(zip(previous.tracker_id.tolist(), previous.xyxy[:, 3]))
            common = [i for i in result.tracks.tracker_id.tolist() if i in before]
            assert common, "a predicted frame lost every track"
            bottoms = dict(zip(result.tracks.tracker_id.tolist(), result.tracks.xyxy[:, 3]))
            moved += sum(bottoms[i] > before[i] for i in common)
        previous = result.tracks
    assert moved > 20  # traffic comes towards the camera: predicted boxes move down


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_lane_region_crop_counts_exactly(highway):
    frames = highway[2]
    processor = with_detection(highway, region="lanes")
    assert processor.plan.region is not None
    events, _ = run(processor, frames)
    assert_hand_count(events, "region: lanes")
    # the live path (one frame at a time) crops the same way
    single = with_detection(highway, region="lanes")
    one_by_one = []
    for frame in frames:
        one_by_one += single.process(frame).analytics.crossings
    assert Counter(e.lane for e in one_by_one) == EXPECTED


@pytest.mark.integration
@pytest.mark.timeout(300)
@pytest.mark.parametrize("detection", [{}, {"region": "lanes"}, {"imgsz": 320},
                                       {"region": [0, 100, 1280, 500], "imgsz": 480}])
def test_the_model_is_ready_for_the_streams_input_before_the_first_frame(highway, detection):
    """`prepare_detector` compiles (and refits) the model for exactly the input the plan gives
    the pipelined detector, so no compilation happens once frames flow (0.6 s here: a tenth
    of a short review's timed run)."""
    config, _, frames = highway
    processor = with_detection((config, create_detector(config.model), frames), **detection)
    detector = processor.detector
    processor.prepare_detector()
    compiled = set(detector._compiled)
    assert any(hint == "THROUGHPUT" for _, hint in compiled)
    list(pipelined_steps(frames[:5], detector, processor.plan))
    assert set(detector._compiled) == compiled, "compiled while frames were flowing"


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_per_stream_input_size_on_a_dynamic_model(segment_model, pedestrians_video):
    """The seg export is dynamic: a stream can ask for a smaller input, and gets masks at
    frame resolution in the right place."""
    config = load_config(CONFIGS / "pedestrians.yaml")
    config = config.model_copy(update={"model": ModelConfig(
        path=str(segment_model), task="segment", classes=["person"])})
    stream = config.streams[0]
    small = stream.model_copy(update={"detection": DetectionSettings(imgsz=320)})
    with FileSource(pedestrians_video) as source:
        frame = next(f for f in source.frames() if f.index == 100)
    detector = create_detector(config.model)
    full = StreamProcessor(stream, config, detector, frame.size, 30).detect(frame.image)
    reduced = StreamProcessor(small, config, detector, frame.size, 30).detect(frame.image)
    assert reduced.masks.shape[1:] == (1080, 1920)
    sure = reduced.xyxy[reduced.confidence >= 0.5]
    assert len(sure) >= 2 and (full.confidence >= 0.5).sum() >= 3
    # every person found with confidence at 320 is one found at 640
    for box in sure:
        tl = np.maximum(box[:2], full.xyxy[:, :2])
        br = np.minimum(box[2:], full.xyxy[:, 2:])
        inter = np.prod(np.clip(br - tl, 0, None), axis=1)
        area = np.prod(box[2:] - box[:2]) + np.prod(full.xyxy[:, 2:] - full.xyxy[:, :2], 1)
        assert (inter / (area - inter)).max() > 0.5


@pytest.mark.parametrize("rect, detection, messages", [
    ("false", "{imgsz: 320}",
     ("streams(s).detection.imgsz", "fixed 640x640 input", "dynamic=True")),
    ("true", "{region: [0, 0, 400, 100]}",
     ("streams(s).detection.region", "outside the 320x240 frame")),
])
def test_detection_settings_the_stream_cannot_use_fail_clearly(tmp_path, detector_model, rect,
                                                               detection, messages):
    """A fixed-size 640x640 export cannot run at 320 when it is not refitted (`rect: false`);
    a region must fit the 320x240 frame."""
    config = tmp_path / "c.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{path: {detector_model}, rect: {rect}}}
        streams:
          - id: s
            source: x.mp4
            detection: {detection}
            lanes: [{{name: l, line: [[0, 100], [320, 100]]}}]
    """))
    video = write_video(tmp_path / "v.mp4", frames=2)
    assert_clean_error(run_process(video, config, tmp_path / "out"), *messages)


def test_stream_config_accepts_detection_section():
    stream = StreamConfig(id="s", source="x.mp4",
                          detection={"every_nth_frame": 2, "region": "lanes", "imgsz": 480})
    assert stream.detection.every_nth_frame == 2 and stream.detection.region == "lanes"
