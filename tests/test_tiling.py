"""Tiled inference (streams[].detection.tiles, issue 21 item 4): the tile grid, seams joined
without double counts (synthetic boxes), the pipelined and one-frame-at-a-time paths alike,
and on the real footage: counts with 2x1 tiles and with an upscaled input."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.sinks.frames import Frame
from lanewatch.stream.config.schema import DetectionSettings
from lanewatch.stream.detect.detection_plan import DetectionPlan, Region
from lanewatch.stream.detect.step import pipelined_steps
from lanewatch.stream.detect.tiling import Tile, merge_tiles, tile_grid
from lanewatch.trackers.detection_policy import DetectionPolicy
from lanewatch.trackers.detections import Detections

CAR, TRUCK = 2, 7
NAMES = {CAR: "car", TRUCK: "truck"}


@pytest.mark.parametrize("area, tiles, overlap, boxes", [
    ((0, 0, 1280, 720), (1, 1), 0.2, [(0, 0, 1280, 720)]),
    ((0, 0, 1280, 720), (2, 1), 0.2, [(0, 0, 712, 720), (568, 0, 1280, 720)]),
    ((0, 0, 1280, 720), (2, 1), 0.0, [(0, 0, 640, 720), (640, 0, 1280, 720)]),
    ((100, 50, 700, 450), (2, 2), 0.25,
     [(100, 50, 444, 280), (356, 50, 700, 280), (100, 220, 444, 450), (356, 220, 700, 450)]),
    ((0, 0, 1000, 100), (3, 1), 0.1,
     [(0, 0, 358, 100), (320, 0, 678, 100), (642, 0, 1000, 100)]),
])
def test_tile_grid_covers_the_area_with_equal_even_tiles(area, tiles, overlap, boxes):
    grid = tile_grid(area, tiles, overlap)
    assert [t.box for t in grid] == boxes
    assert len({t.size for t in grid}) == 1  # one input size: the model compiled once
    columns, rows = tiles
    for i, t in enumerate(grid):
        col, row = i % columns, i // columns
        assert t.seams == (col > 0, row > 0, col < columns - 1, row < rows - 1)


LEFT, RIGHT = Tile((0, 0, 600, 400), (False, False, True, False)), \
    Tile((400, 0, 1000, 400), (True, False, False, False))  # overlap x 400..600
TOP, BOTTOM = Tile((0, 0, 1000, 240), (False, False, False, True)), \
    Tile((0, 160, 1000, 400), (False, True, False, False))


def dets(*rows) -> Detections:
    if not rows:
        return Detections.empty(NAMES)
    return Detections(xyxy=np.array([r[0] for r in rows], np.float32),
                      confidence=np.array([r[1] for r in rows], np.float32),
                      class_id=np.array([r[2] for r in rows], np.int32), class_names=NAMES)


def merged(parts, tiles, agnostic=False, policy=None):
    out = merge_tiles(parts, tiles, 0.7, agnostic, policy)
    return sorted((tuple(round(v) for v in box), round(float(s), 2), int(c))
                  for box, s, c in zip(out.xyxy.tolist(), out.confidence, out.class_id))


# name: (tiles, each tile's detections in frame coordinates, agnostic, expected boxes).
SEAMS = {
    "whole in the overlap, seen by both": (
        [LEFT, RIGHT], [dets(([450, 100, 550, 160], 0.8, CAR)),
                        dets(([451, 101, 551, 160], 0.7, CAR))], False,
        [((450, 100, 551, 160), 0.8, CAR)]),
    "on the seam: whole in one tile, cut by the other's edge": (
        [LEFT, RIGHT], [dets(([380, 100, 590, 150], 0.8, CAR)),
                        dets(([400, 101, 590, 150], 0.6, CAR))],  # left part cut at x=400
        False, [((380, 100, 590, 150), 0.8, CAR)]),
    "wider than the overlap: cut by both tiles, joined": (
        [LEFT, RIGHT], [dets(([300, 100, 600, 180], 0.7, TRUCK)),
                        dets(([400, 98, 750, 182], 0.9, TRUCK))], False,
        [((300, 98, 750, 182), 0.9, TRUCK)]),
    "cut at a horizontal seam": (
        [TOP, BOTTOM], [dets(([100, 120, 200, 240], 0.8, CAR)),
                        dets(([100, 160, 200, 300], 0.8, CAR))], False,
        [((100, 120, 200, 300), 0.8, CAR)]),
    "two vehicles side by side at the seam stay two": (
        [LEFT, RIGHT], [dets(([420, 100, 500, 150], 0.8, CAR)),
                        dets(([505, 100, 585, 150], 0.8, CAR))], False,
        [((420, 100, 500, 150), 0.8, CAR), ((505, 100, 585, 150), 0.8, CAR)]),
    "a vehicle cut by the frame's edge, not a seam, stays as it is": (
        [LEFT, RIGHT], [dets(([0, 100, 80, 150], 0.8, CAR)), dets()], False,
        [((0, 100, 80, 150), 0.8, CAR)]),
    "one tile's box and another's cut part of a different class: two, class-aware": (
        [LEFT, RIGHT], [dets(([380, 100, 590, 150], 0.8, CAR)),
                        dets(([400, 100, 590, 150], 0.6, TRUCK))], False,
        [((380, 100, 590, 150), 0.8, CAR), ((400, 100, 590, 150), 0.6, TRUCK)]),
    "the same, agnostic: one, of the better class": (
        [LEFT, RIGHT], [dets(([380, 100, 590, 150], 0.8, CAR)),
                        dets(([400, 100, 590, 150], 0.6, TRUCK))], True,
        [((380, 100, 590, 150), 0.8, CAR)]),
    "boxes of one tile are never joined (the detector's NMS chose them)": (
        [LEFT, RIGHT], [dets(([450, 100, 550, 160], 0.8, CAR), ([452, 100, 552, 160], 0.7, CAR)),
                        dets()], False,
        [((450, 100, 550, 160), 0.8, CAR), ((452, 100, 552, 160), 0.7, CAR)]),
}


@pytest.mark.parametrize("tiles, parts, agnostic, expected", SEAMS.values(), ids=SEAMS.keys())
def test_seams_are_joined_without_double_counts(tiles, parts, agnostic, expected):
    assert merged(parts, tiles, agnostic) == expected


def test_four_pieces_at_a_corner_of_2x2_tiles_are_one_vehicle():
    grid = tile_grid((0, 0, 1000, 800), (2, 2), 0.1)  # seams: x 474..526, y 380..420
    x0, y0 = grid[1].box[0], grid[2].box[1]  # the second tile's left, third's top edges
    xa, ya = grid[0].box[2], grid[0].box[3]  # the first tile's right and bottom edges
    vehicle = (400, 330, 620, 480)
    parts = [dets(([400, 330, xa, ya], 0.8, CAR)), dets(([x0, 330, 620, ya], 0.7, CAR)),
             dets(([400, y0, xa, 480], 0.6, CAR)), dets(([x0, y0, 620, 480], 0.9, CAR))]
    assert merged(parts, grid) == [(vehicle, 0.9, CAR)]


def test_only_boxes_the_policy_can_keep_are_joined():
    # A low-scored cut box would stretch the vehicle's box; under the floor it takes no part,
    # so a permissive run merged with this policy gives what the detector at 0.3 gives.
    parts = [dets(([450, 100, 600, 150], 0.8, CAR)), dets(([400, 100, 700, 150], 0.05, CAR))]
    policy = DetectionPolicy(confidence=0.3)
    assert merged(parts, [LEFT, RIGHT], policy=policy) == [((450, 100, 600, 150), 0.8, CAR)]
    assert merged(parts, [LEFT, RIGHT]) == [((400, 100, 700, 150), 0.8, CAR)]


class _TileDetector:
    """One car at the centre of every picture it is given (a tile); `detect_frames` as a
    pipelined backend's."""

    class_names = NAMES
    task = "detect"

    def __init__(self):
        self.sizes = []

    def detect(self, picture, imgsz=None):
        self.sizes.append(picture.size)
        w, h = picture.size
        return dets(([w / 2 - 10, h / 2 - 10, w / 2 + 10, h / 2 + 10], 0.5, CAR))

    def detect_frames(self, frames, imgsz=None):
        for frame in frames:
            yield frame, self.detect(frame.picture)


def test_pipelined_and_single_frame_paths_tile_alike():
    settings = DetectionSettings(tiles=(2, 2), tile_overlap=0.1, every_nth_frame=2)
    plan = DetectionPlan(settings, Region(100, 100, 740, 580), (800, 600))
    assert plan.input_size == (338, 254)  # 640x480 in 2x2 tiles overlapping by 10%
    frames = [Frame.of_image("s", i, i / 10, 0, np.zeros((600, 800, 3), np.uint8))
              for i in range(5)]
    detector = _TileDetector()
    steps = list(pipelined_steps(frames, detector, plan))
    assert [s.detected for s in steps] == [True, False, True, False, True]
    assert set(detector.sizes) == {(338, 254)} and len(detector.sizes) == 3 * 4
    centres = [((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in (t.box for t in plan.tiles)]
    assert centres[0] == (269, 227) and centres[3] == (571, 453)
    for step in steps[::2]:
        got = sorted(((x1 + x2) / 2, (y1 + y2) / 2) for x1, y1, x2, y2 in step.detections.xyxy)
        assert got == sorted(centres)
        single = plan.merge([detector.detect(crop) for crop in plan.crops(step.frame.picture)])
        assert np.array_equal(single.xyxy, step.detections.xyxy)
        assert len(step.tiles) == 4  # the parts, kept for a merge with another policy
        assert np.array_equal(plan.merge(step.tiles).xyxy, step.detections.xyxy)
    assert all(s.tiles is None for s in steps[1::2])


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_bench_prints_the_cost_of_tiles_against_none(highway_video, monkeypatch):
    """The bench's rows for the config's tiles against none: frames/s, CPU and model ms with
    their ratios, crossings (the review is stubbed: its own figures are tested in test_bench.py;
    the detection step runs on the real model)."""
    import io
    from types import SimpleNamespace

    from lanewatch.stream.bench import robustness
    from lanewatch.stream.config.loading import load_config
    from lanewatch.stream.pipeline import review

    from conftest import CONFIGS

    def fake_review(video, config, out, progress):
        tiles = config.streams[0].detection.tiles
        return SimpleNamespace(summary={
            "fps_achieved": 20.0 / tiles[0], "cpu_ms_per_frame": {"total": 50.0 * tiles[0]},
            "classes": {"car": 11}, "lanes": {"lane1": {"total": 11}}})

    monkeypatch.setattr(review, "review_video", fake_review)
    config = load_config(CONFIGS / "highway.yaml")
    stream = config.streams[0]
    tiled = config.model_copy(update={"streams": [stream.model_copy(update={
        "detection": stream.detection.model_copy(update={"tiles": (2, 1)})})]})
    assert robustness.is_tiled_or_upscaled(tiled) and not robustness.is_tiled_or_upscaled(config)
    out = io.StringIO()
    figures = robustness.compare([("untiled", config), ("tiles 2x1", tiled)], highway_video,
                                 lambda line: print(line, file=out), every=100)
    text = out.getvalue()
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "untiled" in rows and "tiles" in rows
    assert rows["tiles"].split()[2:5] == ["10.0", "100.0", "2.00x"]  # the stubbed review
    by_name = {f.name: f for f in figures}
    assert by_name["tiles 2x1"].model_ms > 0 and by_name["untiled"].detections_per_frame > 0
    assert by_name["tiles 2x1"].classes == {"car": 11}


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_highway_counts_stay_exact_with_2x1_tiles_and_upscaling_runs_on_the_static_export(
        detector_model, highway_video, tmp_path):
    """The review (pipelined: each frame's two tiles in flight) with configs/highway.yaml cut
    into 2x1 tiles counts the hand count's cars, lane by lane; and a stream input larger
    than the fixed 640x640 export (upscaling) runs on it, refitted."""
    from lanewatch.stream.config.loading import load_config
    from lanewatch.stream.detect.openvino_detector import OpenVINODetector
    from lanewatch.stream.pipeline.processor import StreamProcessor
    from lanewatch.stream.pipeline.review import review_video
    from lanewatch.stream.sources.file_source import FileSource

    from conftest import CONFIGS

    config = load_config(CONFIGS / "highway.yaml")
    stream = config.streams[0]
    tiled = config.model_copy(update={
        "output": config.output.model_copy(update={"video": False}),
        "streams": [stream.model_copy(update={"detection": stream.detection.model_copy(
            update={"tiles": (2, 1)})})]})
    # The first 140 frames: the hand count's first five cars (frames 41-115, all on lanes 3
    # and 4, released by frame 130); the whole clip's 11 are in docs/analytics.md.
    summary = review_video(highway_video, tiled, tmp_path, progress=False,
                           max_frames=140).summary
    assert summary["classes"] == {"car": 5}
    assert {lane: n["total"] for lane, n in summary["lanes"].items()} == {
        "lane1": 0, "lane2": 0, "lane3": 3, "lane4": 2}

    upscaled = stream.model_copy(update={"detection": stream.detection.model_copy(
        update={"imgsz": 960})})
    detector = OpenVINODetector(config.model)
    processor = StreamProcessor(upscaled, config, detector, (1280, 720), 29.97)
    with FileSource(highway_video) as source:
        pictures = [f.picture for f in source.frames() if f.index in (100, 230)]
    found = [processor.detect(p) for p in pictures]
    assert detector._placement((1280, 720), 960).input_hw == (544, 960)
    assert all(len(d) >= 2 for d in found)
