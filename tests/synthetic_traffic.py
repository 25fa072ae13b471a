"""Generated traffic for counting tests: the detector output of vehicles driving down the
image lane by lane, and how many cross each lane's counting line. No model, no video.

A vehicle's box is `length` px long in the direction of travel (the box height) and 0.6 x
that wide; its bottom edge (the counted anchor) crosses the lane's line at `speed` px per
frame. Lanes are twice a vehicle wide, side by side; each lane's line spans that lane only and
is drawn left to right, so "in" is moving down the image (as in configs/highway.yaml).

The scene is drawn at the scale of the box (the same road seen through cameras zoomed
differently): the frame's height and the line's row are multiples of `length`, so apart from
pixel floors the counts depend on `speed / length` and the detection cadence only. Two motions:

- constant: size and speed never change, like a camera looking steeply down on the road. A
  vehicle enters at the top edge (its box cut by the frame, as a detector's boxes are), is
  whole `approach` lengths before the line and leaves at the bottom edge 4 lengths after it.
- perspective: vehicles come towards a camera looking along the road, as on highway.mp4. At
  scale g (box height / `length`) a vehicle is g x larger and moves g^2 x faster than at the
  line: it is first detected at g = 0.4 (2.3 lengths before the line), and the lanes converge
  to a vanishing point 3.85 lengths above the line. These figures, the line's row and the
  frame's height are those of highway.mp4 (see tests/test_exactness_limit.py).

The detector's noise (all seeded): box edges jitter (2.5% of the box height, at least 1 px),
scores are uniform in 0.5..0.9, and vehicles are missed now and then. On highway.mp4 the real
model misses the counted cars in 2.8% of the frames where their box is small (under 0.7 of its
size at the line), a few times at the frame's bottom edge and never near the line: here a box
that small or cut by the frame's edge is missed with probability `miss_rate`, any other box
with probability `line_miss_rate`.

`count` replays a clip through the live path's `StreamProcessor.update`: the detector's
output on every `every`-th frame, the tracker's prediction on the frames between.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from lanewatch.sinks.frames import Frame, Picture
from lanewatch.stream.config.schema import Config, ModelConfig, StreamConfig
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.trackers.analytics.lane_analytics import CrossingEvent
from lanewatch.trackers.analytics.lanes import CountingSettings, Direction, LaneSpec
from lanewatch.trackers.bytetrack.tracker import ByteTrackSettings
from lanewatch.trackers.detections import Anchor, Detections

FPS = 30.0
WIDTH = 1280
CAR = 2
CLASS_NAMES = {CAR: "car"}
ASPECT = 0.6  # box width / box length
LANE_WIDTH = 2.0  # lane width / vehicle width (3.5 m lanes, 1.8 m cars)
# In lengths of the box at the line:
AFTER_LINE = 4.0  # constant motion: from the line to the frame's bottom edge
PERSPECTIVE_LINE, PERSPECTIVE_HEIGHT = 3.6, 10.4  # the same, perspective (highway.mp4)
HORIZON = 3.85  # perspective: the vanishing point is this far above the line
FIRST_SEEN = 0.4  # perspective: vehicles are first detected at this scale


@dataclass(frozen=True)
class Traffic:
    """One generated clip: what the detector reports in each frame, and the truth."""

    frames: list[Detections]
    lanes: list[LaneSpec]
    expected: Counter  # lane name -> vehicles that cross its line
    frame_size: tuple[int, int]


def make_traffic(speed: float, length: float, *, perspective: bool = False,
                 approach: float = 3.0, lanes: int = 3, per_lane: int = 3,
                 miss_rate: float = 0.03, line_miss_rate: float = 0.0, seed: int = 0) -> Traffic:
    """`per_lane` vehicles in each of `lanes` lanes, moving `speed` px/frame and `length` px
    long at the counting line, 4..7 lengths apart (front to front) at the line."""
    rng = np.random.default_rng(seed)
    if perspective:
        line_y, height = PERSPECTIVE_LINE * length, round(PERSPECTIVE_HEIGHT * length)
    else:
        line_y = (1 + approach) * length
        height = round(line_y + AFTER_LINE * length)
    motion = _Motion(speed, length, perspective, line_y, height)
    pitch = LANE_WIDTH * ASPECT * length
    lane_x = WIDTH / 2 + (np.arange(lanes) - (lanes - 1) / 2) * pitch  # centres, at the line
    edges = [float(x - pitch / 2) for x in lane_x] + [float(lane_x[-1] + pitch / 2)]
    specs = [LaneSpec(name=f"lane{i + 1}", line=((edges[i], line_y), (edges[i + 1], line_y)),
                      direction=Direction.IN) for i in range(lanes)]

    # Each vehicle: lane, frame at which its bottom edge is on the line, lateral offset.
    vehicles = []
    for lane in range(lanes):
        t = rng.uniform(0, 4) * length / speed  # lanes out of step
        for _ in range(per_lane):
            vehicles.append((lane, t, rng.uniform(-0.08, 0.08) * pitch))
            t += rng.uniform(4, 7) * length / speed
    before, after = motion.extent()
    start = int(np.floor(min(t for _, t, _ in vehicles) + before))
    stop = int(np.ceil(max(t for _, t, _ in vehicles) + after)) + 2

    frames = []
    for k in range(start, stop):
        boxes = []
        for lane, t_line, dx in vehicles:
            box = motion.box(k - t_line, lane_x[lane] + dx)
            if box is None:
                continue
            hard = box[3] - box[1] < 0.7 * length or box[1] == 0 or box[3] == height
            if rng.random() < (miss_rate if hard else line_miss_rate):
                continue
            jitter = rng.normal(0, max(1.0, 0.025 * (box[3] - box[1])), 4)
            boxes.append(np.clip(box + jitter, 0, [WIDTH, height, WIDTH, height]))
        boxes = [boxes[i] for i in rng.permutation(len(boxes))]  # in no particular order
        frames.append(Detections(
            xyxy=np.array(boxes, np.float32).reshape(-1, 4),
            confidence=rng.uniform(0.5, 0.9, len(boxes)).astype(np.float32),
            class_id=np.full(len(boxes), CAR, np.int32), class_names=CLASS_NAMES))
    expected = Counter(f"lane{lane + 1}" for lane, _, _ in vehicles)
    return Traffic(frames, specs, expected, (WIDTH, height))


@dataclass(frozen=True)
class _Motion:
    speed: float
    length: float
    perspective: bool
    line_y: float
    height: int

    @property
    def _rate(self) -> float:
        """Perspective: the scale is g = 1 / (1 - rate * tau), tau frames after the line."""
        return self.speed / (HORIZON * self.length)

    def extent(self) -> tuple[float, float]:
        """Frames from the line back to the first sighting (negative), and on to the exit."""
        if not self.perspective:
            return -self.line_y / self.speed, (self.height - self.line_y + self.length) / self.speed
        exit_scale = 1 + (self.height - self.line_y + self.length) / (HORIZON * self.length)
        return -(1 / FIRST_SEEN - 1) / self._rate, (1 - 1 / exit_scale) / self._rate

    def box(self, tau: float, x_line: float) -> np.ndarray | None:
        """The true box `tau` frames after the bottom edge met the line (cut at the frame's
        edges), or None when the detector cannot see the vehicle."""
        if self.perspective:
            if self._rate * tau >= 1:
                return None
            g = 1 / (1 - self._rate * tau)
            if g < FIRST_SEEN:
                return None
            bottom = self.line_y + (g - 1) * HORIZON * self.length
            cx = WIDTH / 2 + g * (x_line - WIDTH / 2)
        else:
            g, bottom, cx = 1.0, self.line_y + self.speed * tau, x_line
        h, w = g * self.length, g * ASPECT * self.length
        top = bottom - h
        if min(bottom, self.height) - max(top, 0) < 0.3 * h:  # mostly out of the frame
            return None
        return np.array([cx - w / 2, max(top, 0), cx + w / 2, min(bottom, self.height)])


class _Detector:
    """Stands in for the model: StreamProcessor.update only needs its class names."""

    class_names = CLASS_NAMES
    task = "detect"


def processor(traffic: Traffic, every_nth_frame: int = 1, detector=None,
              tracker=None) -> StreamProcessor:
    """The live path's per-stream pipeline for this traffic, with configs/highway.yaml's
    tracker and counting settings; the detector and tracker given, if any."""
    stream = StreamConfig(id="synthetic", source="synthetic", lanes=traffic.lanes,
                          detection={"every_nth_frame": every_nth_frame})
    config = Config(model=ModelConfig(path="synthetic"), streams=[stream],
                    tracker=ByteTrackSettings(lost_track_buffer_s=1.0),
                    counting=CountingSettings(anchor=Anchor.BOTTOM_CENTER, hysteresis=0.1,
                                              confirm_frames=3))
    return StreamProcessor(stream, config, detector or _Detector(), traffic.frame_size, FPS,
                           tracker=tracker)


def count(traffic: Traffic, every: int, offset: int = 0) -> list[CrossingEvent]:
    """The crossings counted when the detector runs on frames offset, offset + every, ...
    and the tracker predicts the frames between, as on a live stream."""
    pipeline = processor(traffic)
    picture = Picture(bgr=np.zeros((2, 2, 3), np.uint8))  # update() never looks at pixels
    events = []
    for index, detections in enumerate(traffic.frames):
        frame = Frame("synthetic", index, index / FPS, 0.0, picture)
        detected = detections if index % every == offset else None
        events += pipeline.update(frame, detected).analytics.crossings
    return events


def exact(traffic: Traffic, events: list[CrossingEvent]) -> bool:
    """Every lane counted each of its vehicles once."""
    return (Counter(e.lane for e in events) == traffic.expected
            and len({e.track_id for e in events}) == len(events))
