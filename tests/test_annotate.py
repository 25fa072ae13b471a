"""Track trails on the annotated frame: drawn along the path, fading with age."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.sinks.annotate import FrameAnnotator
from lanewatch.trackers.detections import Anchor, Detections


def tracked(boxes: list[list[float]], ids: list[int]) -> Detections:
    n = len(ids)
    return Detections(np.asarray(boxes, np.float32).reshape(n, 4), np.full(n, 0.9, np.float32),
                      np.zeros(n, np.int32), {0: "car"}, tracker_id=np.asarray(ids))


def drive(annotator: FrameAnnotator, paths: dict[int, list[tuple[float, float]]], fps: float):
    """Feed each track's bottom-centre positions, one per frame."""
    frames = max(len(p) for p in paths.values())
    for i in range(frames):
        rows = [(tid, p[i]) for tid, p in paths.items() if i < len(p)]
        boxes = [[x - 10, y - 20, x + 10, y] for _, (x, y) in rows]
        annotator.trails.update(tracked(boxes, [tid for tid, _ in rows]), i / fps,
                                Anchor.BOTTOM_CENTER)
    return (frames - 1) / fps


def brightness(image: np.ndarray, x: int, y: int) -> int:
    return int(image[y - 2:y + 3, x - 2:x + 3].max())


@pytest.mark.parametrize("y", [100, 250])
def test_a_trail_follows_the_path_and_fades_with_age(y):
    annotator = FrameAnnotator([], trail_seconds=2.0, frame_size=(640, 360))
    path = [(20 + 14 * i, y) for i in range(21)]  # 2 s at 10 frames/s, x 20 -> 300
    now = drive(annotator, {7: path}, fps=10)
    image = np.zeros((360, 640, 3), np.uint8)
    annotator._draw_trails(image, now)
    drawn = [brightness(image, x, y) for x in range(30, 300, 10)]
    assert min(drawn) > 0, "a gap in the trail"
    assert brightness(image, 290, y) > brightness(image, 30, y), "old part not fainter"
    assert brightness(image, 160, y + 40) == 0 and brightness(image, 400, y) == 0
    assert image[:y - 10].max() == 0 and image[y + 10:].max() == 0  # only along the path


def test_single_points_and_no_tracks_draw_nothing():
    annotator = FrameAnnotator([], trail_seconds=2.0, frame_size=(640, 360))
    image = np.zeros((360, 640, 3), np.uint8)
    annotator._draw_trails(image, 0.0)
    now = drive(annotator, {1: [(100, 100)], 2: [(300, 200)]}, fps=10)
    annotator._draw_trails(image, now)
    assert image.max() == 0


def test_two_tracks_get_their_own_colours():
    annotator = FrameAnnotator([], trail_seconds=1.0, frame_size=(640, 360))
    now = drive(annotator, {1: [(50 + 10 * i, 100) for i in range(10)],
                            2: [(50 + 10 * i, 250) for i in range(10)]}, fps=10)
    image = np.zeros((360, 640, 3), np.uint8)
    annotator._draw_trails(image, now)
    first, second = image[98:103, 120:130].max((0, 1)), image[248:253, 120:130].max((0, 1))
    assert first.max() > 0 and second.max() > 0 and not np.array_equal(first, second)


@pytest.mark.parametrize("corner", [(0, 0), (639, 359), (639, 0)])
def test_a_trail_at_the_frame_edge_is_clipped_not_lost(corner):
    # Each run is blended within its own rectangle, clipped to the frame.
    x, y = corner
    step = -12 if x else 12
    annotator = FrameAnnotator([], trail_seconds=2.0, frame_size=(640, 360))
    now = drive(annotator, {3: [(x + step * i, y) for i in range(12)]}, fps=10)
    image = np.zeros((360, 640, 3), np.uint8)
    annotator._draw_trails(image, now)
    row = image[y, :, :].max(axis=1)
    assert row[min(x, x + step * 11):max(x, x + step * 11)].min() > 0, "a gap along the edge"
