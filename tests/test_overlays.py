"""Lane overlays: the palette shared with the dashboard, direction arrows, count labels off the
counting line and off the vehicles, speed labels (sinks/overlay_layout.py, sinks/annotate.py)."""

from __future__ import annotations

import json
import time

import cv2
import numpy as np
import pytest

from lanewatch.sinks.annotate import FrameAnnotator
from lanewatch.sinks.frames import Frame
from lanewatch.sinks.live_video import LiveVideo
from lanewatch.sinks.overlay_layout import (
    LANE_PALETTE,
    direction_arrows,
    lane_color_bgr,
    lane_colors,
    place_label,
)
from lanewatch.sinks.results import FrameResult, StageTimings
from lanewatch.trackers.analytics.events import CrossingEvent
from lanewatch.trackers.analytics.lane_analytics import AnalyticsUpdate, LaneState
from lanewatch.trackers.analytics.lanes import LaneSpec, resolve_lanes
from lanewatch.trackers.detections import Detections


def lanes(*specs: dict):
    return resolve_lanes([LaneSpec(**s) for s in specs], "pixels", 1280, 720)


THREE = lanes(*({"name": f"l{i}", "line": [[100 + 300 * i, 300], [300 + 300 * i, 300]],
                 "direction": d} for i, d in enumerate(["in", "out", "both"])))


def frame_result(lane_list, boxes=(), ids=(), crossings=()) -> FrameResult:
    image = np.zeros((720, 1280, 3), np.uint8)
    n = len(ids)
    tracks = Detections(np.asarray(boxes, np.float32).reshape(n, 4),
                        np.full(n, 0.9, np.float32), np.zeros(n, np.int32), {0: "car"},
                        tracker_id=np.asarray(ids, np.int64))
    states = tuple(LaneState(lane.name, 0, False, 0.0, {"in": 2}) for lane in lane_list)
    return FrameResult(Frame.of_image("cam", 0, 1.0, time.time(), image), tracks, tracks,
                       AnalyticsUpdate(states, tuple(crossings), ()),
                       StageTimings(0.0, 0.0, 0.0))


@pytest.mark.parametrize("index, hex_color", [(0, "#3fa7ff"), (3, "#ff5c5c"),
                                              (8, LANE_PALETTE[0])])
def test_palette_is_the_charts_in_bgr(index, hex_color):
    r, g, b = (int(hex_color[i:i + 2], 16) for i in (1, 3, 5))
    assert lane_color_bgr(index) == (b, g, r)


def test_lane_colors_follow_the_lane_order():
    assert lane_colors(["a", "b"]) == {"a": LANE_PALETTE[0], "b": LANE_PALETTE[1]}


def test_each_lane_line_is_drawn_in_its_palette_colour():
    image = FrameAnnotator(THREE, trail_seconds=0).annotate(frame_result(THREE))
    for i, lane in enumerate(THREE):
        (x0, y), (x1, _) = lane.line.astype(int)
        # Along the line, away from its arrow and label: the pixel is exactly the colour.
        samples = [tuple(int(v) for v in image[int(y), x]) for x in (x0 + 15, x1 - 15)]
        assert samples == [lane_color_bgr(i)] * 2, (lane.name, samples)


@pytest.mark.parametrize("direction, expected", [
    ("in", [((0.0, -10.0), (0.0, 10.0))]),  # line left->right: "in" moves down the image
    ("out", [((0.0, 10.0), (0.0, -10.0))]),
])
def test_direction_arrow_points_the_counted_way(direction, expected):
    arrows = direction_arrows(np.array([[-50.0, 0.0], [50.0, 0.0]]), direction, 20)
    assert [(a.tail, a.tip) for a in arrows] == expected


def test_both_directions_get_one_arrow_each_way():
    arrows = direction_arrows(np.array([[0.0, 0.0], [0.0, 100.0]]), "both", 20)
    # Line drawn downwards: its right-hand side on screen is -x.
    signs = sorted(np.sign(a.tip[0] - a.tail[0]) for a in arrows)
    assert signs == [-1.0, 1.0]


def test_the_arrow_is_drawn_on_the_counting_line():
    lane = lanes({"name": "l", "line": [[400, 300], [600, 300]], "direction": "in"})
    image = FrameAnnotator(lane, trail_seconds=0).annotate(frame_result(lane))
    # Across the line's middle, its head (wider than the shaft) on the "in" side, below.
    width = [int(image[y, 470:530].any(axis=1).sum()) for y in (290, 309)]
    assert width[0] >= 1 and width[1] > width[0] + 3, width


LINE = np.array([[400.0, 300.0], [600.0, 300.0]])


@pytest.mark.parametrize("boxes, expected_x0", [
    ([], 606),  # free: beside the line's right-hand end
    ([[600, 250, 700, 350]], 400 - 6 - 80),  # a vehicle there: beside the left-hand end
    ([[600, 250, 700, 350], [300, 250, 400, 350]], 460),  # both ends covered: above
])
def test_count_label_avoids_the_vehicles(boxes, expected_x0):
    rect = place_label(LINE, None, (80, 30), (1280, 720), np.array(boxes, float))
    assert rect[0] == expected_x0
    x0, y0, x1, y1 = rect
    for bx0, by0, bx1, by1 in boxes:
        assert x1 <= bx0 or x0 >= bx1 or y1 <= by0 or y0 >= by1, "over a box"


def test_count_label_stays_off_the_line_and_inside_the_frame():
    edge = np.array([[1100.0, 10.0], [1279.0, 10.0]])  # right end at the frame's edge
    x0, y0, x1, y1 = place_label(edge, None, (80, 30), (1280, 720), np.zeros((0, 4)))
    assert 0 <= x0 and x1 < 1280 and 0 <= y0 and y1 <= 720
    assert y0 > 10 + 2 or y1 < 10 - 2 or x1 < 1100 or x0 > 1279, "on the line"


def test_label_is_drawn_off_a_box_covering_the_default_spot():
    lane = lanes({"name": "l", "line": [[400, 300], [600, 300]], "direction": "in"})
    box = [605, 260, 760, 340]  # where the label goes by default
    image = FrameAnnotator(lane, trail_seconds=0, draw_masks=False).annotate(
        frame_result(lane))
    assert image[285:315, 610:640].any()  # the default spot, free
    covered = FrameAnnotator(lane, trail_seconds=0, draw_masks=False).annotate(
        frame_result(lane, [box], [5]))
    # Inside the box (not its outline nor its own label on top) nothing of the lane label.
    assert not covered[285:315, 630:740].any()
    assert covered[285:315, 300:395].any()  # beside the line's other end instead


def test_speed_labels_show_after_a_crossing_only_when_asked():
    lane = lanes({"name": "l", "line": [[400, 300], [600, 300]], "direction": "in"})
    box = [[100, 500, 200, 560]]
    crossing = CrossingEvent("cam", "l", 4, "car", "in", 1.0, 0, speed_kmh=87.4)
    with_speeds = FrameAnnotator(lane, trail_seconds=0, speed_labels=True)
    before = with_speeds.annotate(frame_result(lane, box, [4]))
    assert not before[563:590, 100:200].any()
    after = with_speeds.annotate(frame_result(lane, box, [4], [crossing]))
    assert after[563:590, 100:200].any()  # "87 km/h" under the box
    assert with_speeds.speeds.as_dict() == {4: 87.4}
    again = with_speeds.annotate(frame_result(lane, box, [4]))  # it stays with the track
    assert again[563:590, 100:200].any()
    plain = FrameAnnotator(lane, trail_seconds=0).annotate(
        frame_result(lane, box, [4], [crossing]))
    assert not plain[563:590, 100:200].any()


def test_count_label_stays_off_the_neighbouring_lanes_lines():
    # Side-by-side lanes continue each other's line: beside the end is on the next line.
    neighbours = (np.array([[600.0, 300.0], [800.0, 300.0]]),
                  np.array([[200.0, 300.0], [400.0, 300.0]]))
    x0, y0, x1, y1 = place_label(LINE, None, (80, 30), (1280, 720), np.zeros((0, 4)),
                                 other_lines=neighbours)
    assert (x0, y1) == (460, 300 - 6)  # above the middle


def test_count_labels_of_side_by_side_lanes_do_not_overlap():
    side_by_side = lanes(*({"name": f"lane{i}", "line": [[300 + 60 * i, 300],
                                                         [360 + 60 * i, 300]]}
                           for i in range(4)))
    annotator = FrameAnnotator(side_by_side, trail_seconds=0)
    placed = []
    original = annotator._draw_lane_label

    def spy(*args):
        placed.append(original(*args))
        return placed[-1]

    annotator._draw_lane_label = spy
    annotator.annotate(frame_result(side_by_side))
    assert len(placed) == 4
    for i, (ax0, ay0, ax1, ay1) in enumerate(placed):
        for bx0, by0, bx1, by1 in placed[i + 1:]:
            assert ax1 <= bx0 or ax0 >= bx1 or ay1 <= by0 or ay0 >= by1, placed


def test_live_video_keeps_the_speed_of_a_crossing_in_a_result_it_never_drew():
    lane = lanes({"name": "l", "line": [[400, 300], [600, 300]], "direction": "in"})
    box = [[100, 500, 200, 560]]
    crossing = CrossingEvent("cam", "l", 4, "car", "in", 1.0, 0, speed_kmh=64.0)
    drawn = []
    video = LiveVideo(["cam"], lambda s: [(30.0, 1280)], drawn.append,
                      lambda s, size, w: FrameAnnotator(lane, trail_seconds=0,
                                                        frame_size=size, output_width=w,
                                                        speed_labels=True))
    # Not started: results are only offered; the crossing's result is replaced, never drawn.
    video.on_result(frame_result(lane, box, [4], [crossing]))
    video.on_result(frame_result(lane, box, [4]))
    stream = video._streams["cam"]
    stream._draw(stream.pending)
    assert len(drawn) == 1
    image = cv2.imdecode(np.frombuffer(drawn[0].jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image[563:590, 100:200].max() > 150  # "64 km/h" under the box
    annotator = next(iter(stream.annotators.values()))
    assert annotator.speeds.get(4) == 64.0


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_speed_labels_on_the_calibrated_highway_review(tmp_path, highway_video, monkeypatch):
    """`output.speed_labels: true` on configs/highway.yaml (calibrated): the first 140 frames'
    cars (five cross, frames 41-115) get their spot speeds drawn after they crossed."""
    from lanewatch.stream.config.loading import load_config
    from lanewatch.stream.pipeline.review import review_video

    from conftest import CONFIGS

    drawn: list[tuple[int, int, float]] = []  # (frame index, track id, km/h)
    annotate, draw = FrameAnnotator.annotate, FrameAnnotator._draw_speeds

    def annotate_spy(self, result):
        self.frame_index = result.frame.index
        return annotate(self, result)

    def draw_spy(self, image, tracks, crossings):
        draw(self, image, tracks, crossings)
        for tid in tracks.tracker_id.tolist():
            if self.speeds.get(tid) is not None:
                drawn.append((self.frame_index, tid, self.speeds.get(tid)))

    monkeypatch.setattr(FrameAnnotator, "annotate", annotate_spy)
    monkeypatch.setattr(FrameAnnotator, "_draw_speeds", draw_spy)
    config = load_config(CONFIGS / "highway.yaml")
    labelled = config.model_copy(update={"output": config.output.model_copy(
        update={"speed_labels": True, "video_width": 640, "video_preset": "ultrafast"})})
    review_video(highway_video, labelled, tmp_path, progress=False, max_frames=140)
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    crossed = {e["track_id"]: e for e in events
               if e.get("type") == "crossing" and e.get("speed_kmh") is not None}
    assert len(crossed) >= 3, events
    labelled_ids = {tid for _, tid, _ in drawn}
    assert labelled_ids and labelled_ids <= set(crossed)
    for frame, tid, kmh in drawn:
        assert kmh == crossed[tid]["speed_kmh"]
        assert frame >= crossed[tid]["frame"]  # only once it crossed
    assert all(60 <= e["speed_kmh"] <= 160 for e in crossed.values())  # a motorway


@pytest.mark.parametrize("calibrated, complaint", [(True, False), (False, True)])
def test_check_config_says_speed_labels_need_a_calibrated_stream(calibrated, complaint):
    from lanewatch.stream.config.checks import preflight
    from lanewatch.stream.config.loading import load_config

    from conftest import CONFIGS

    config = load_config(CONFIGS / "highway.yaml")
    stream = config.streams[0]
    if not calibrated:
        stream = stream.model_copy(update={"calibration": None})
    config = config.model_copy(update={
        "streams": [stream],
        "output": config.output.model_copy(update={"speed_labels": True})})
    said = [p for p in preflight(config) if p.startswith("output.speed_labels")]
    assert bool(said) == complaint, said
    if complaint:
        assert "calibration:" in said[0] and "speed_labels: false" in said[0]
