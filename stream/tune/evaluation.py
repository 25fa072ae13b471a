"""A candidate config scored from cached detections, exactly as `validate` would score the
review of that config.

The candidate's own `StreamProcessor` (its detection policy, tracker, lanes, counting
settings and detection plan) is fed the cached permissive detections of the frames its plan
makes due, and None on the others (the tracker predicts them, as in a review). Its policy
(trackers/detection_policy.py) reduces them to exactly what a detector run with the
candidate's own confidences and classes would have given. Frames carry no pixels: only
the detector looks at them. The crossings and movements it counts become the `CountEvent`s
a review's events.jsonl would hold (times rounded to the millisecond as there), matched
against the manual count with `match_counts` and scored with `validate_counts`: the
functions `lanewatch validate` uses.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from lanewatch.sinks.errors import ModelError
from lanewatch.sinks.frames import Frame, Image, Picture
from lanewatch.sinks.reports import crossing_record, movement_record
from lanewatch.stream.config.schema import Config
from lanewatch.stream.detect.detector import DetectorDefaults
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.stream.tune.detection_cache import CachedClip
from lanewatch.trackers.analytics.events import AnalyticsUpdate
from lanewatch.trackers.detections import Detections
from lanewatch.trackers.evaluation.count_matching import CountEvent, match_counts
from lanewatch.trackers.evaluation.count_metrics import CountValidation, validate_counts

MAX_CADENCE = 30  # streams[].detection.every_nth_frame's bound


@dataclass(frozen=True)
class Score:
    """How well a candidate's counts agree with the manual count (higher key is better).

    Attributes:
        f1, precision, recall: overall, as `validate` reports them.
        count_error: sum over (lane, direction) of |automatic - manual| (class aside).
        lane_errors: (lane, direction) -> automatic - manual.
        matched, manual, automatic: overall figures.
    """

    f1: float
    precision: float
    recall: float
    count_error: int
    lane_errors: tuple[tuple[str, str, int], ...]
    matched: int
    manual: int
    automatic: int
    perturbed: Score | None = None  # the same config with one more frame skipped

    @property
    def primary_key(self) -> tuple[float, int]:
        """Quality on the clip, best highest: F1 first, then the total count error."""
        return (round(self.f1, 9), -self.count_error)

    @property
    def key(self) -> tuple:
        """What the search ranks by: the quality, then the quality with one more frame
        skipped between detections (a config that counts right only on an edge, where one
        missed detection loses a vehicle, ranks below one with a margin)."""
        return self.primary_key + (() if self.perturbed is None else self.perturbed.primary_key)

    @classmethod
    def of(cls, validation: CountValidation, perturbed: Score | None = None) -> Score:
        o = validation.overall
        lanes = tuple((r.lane, r.direction, r.automatic - r.manual) for r in validation.rows
                      if r.lane is not None and r.direction is not None and r.class_name is None)
        return cls(o.f1, o.precision, o.recall, sum(abs(e) for *_, e in lanes), lanes,
                   o.matched, o.manual, o.automatic, perturbed)

    def text(self) -> str:
        return (f"F1 {self.f1:.3f} (P {self.precision:.3f}, R {self.recall:.3f}), "
                f"{self.matched}/{self.manual} matched, {self.automatic} counted, "
                f"count error {self.count_error}"
                + ("" if self.perturbed is None else
                   f"; one more frame skipped: F1 {self.perturbed.f1:.3f}"))


@dataclass(frozen=True)
class Evaluation:
    """One candidate's events and their validation."""

    events: tuple[CountEvent, ...]
    validation: CountValidation
    score: Score
    seconds: float


class CachedDetector(DetectorDefaults):
    """Stands in for the model in a candidate's processor: it knows the model's classes and
    is never asked to detect (the cache has the detections)."""

    task = "detect"

    def __init__(self, class_names: dict[int, str]):
        self.class_names = class_names

    def detect(self, image: Image, imgsz: int | None = None) -> Detections:
        raise ModelError("a cached detector cannot detect: the tune cache holds the detections")

    def detect_batch(self, images: list[Image], imgsz: int | None = None) -> list[Detections]:
        raise ModelError("a cached detector cannot detect: the tune cache holds the detections")

    def check_input_size(self, imgsz: int) -> None:
        """The cache pass ran the real model at this size: it fits."""


def _blank_picture(frame_size: tuple[int, int]) -> Picture:
    """A frame-sized picture that costs no memory (nothing reads its pixels)."""
    w, h = frame_size
    zero = np.zeros(1, np.uint8)
    return Picture(planes=(np.broadcast_to(zero, (h, w)), np.broadcast_to(zero, (h // 2, w // 2)),
                           np.broadcast_to(zero, (h // 2, w // 2))))


def count_events(update: AnalyticsUpdate) -> list[CountEvent]:
    """A frame's counted vehicles as `validate` reads them back from events.jsonl."""
    events = []
    for c in update.crossings:
        r = crossing_record(c)
        events.append(CountEvent(r["time_s"], r["lane"], r["direction"], r["class"], r["frame"],
                                 None, r["track_id"]))
    for m in update.movements:
        r = movement_record(m)
        events.append(CountEvent(r["time_s"], r["movement"], "", r["class"], r["frame"], None,
                                 r["track_id"]))
    return events


def candidate_events(config: Config, stream_id: str, clip: CachedClip) -> list[CountEvent]:
    """The events a review of the clip with `config` counts, from the cached detections."""
    stream = config.stream(stream_id)
    processor = StreamProcessor(stream, config, CachedDetector(clip.class_names),
                                clip.frame_size, clip.fps)
    picture = _blank_picture(clip.frame_size)
    events: list[CountEvent] = []
    plan = processor.plan
    for index, (pts_s, found) in enumerate(zip(clip.pts_s, clip.detections)):
        detections = None
        if plan.due():
            # a tiled frame's tiles are joined for this candidate's policy, as its review would
            detections = (found if clip.tiles is None
                          else plan.merge(clip.tiles[index], processor.policy))
        result = processor.update(Frame(stream.id, index, pts_s, 0.0, picture), detections)
        if result.analytics.crossings or result.analytics.movements:
            events += count_events(result.analytics)
    return events


def evaluate(config: Config, stream_id: str, clip: CachedClip, manual: tuple[CountEvent, ...],
             tolerance_s: float, interval_s: float, perturb: bool = True) -> Evaluation:
    """Score one candidate config against the manual count; `perturb`: also with the model
    on one frame fewer (every_nth_frame + 1), for `Score.key`'s margin."""
    started = time.perf_counter()
    events = tuple(candidate_events(config, stream_id, clip))
    validation = score_events(events, manual, tolerance_s, clip.duration_s, interval_s)
    perturbed = None
    stream = config.stream(stream_id)
    if perturb and stream.detection.every_nth_frame < MAX_CADENCE:
        sparser = config.model_copy(update={"streams": [
            s.model_copy(update={"detection": s.detection.model_copy(update={
                "every_nth_frame": s.detection.every_nth_frame + 1})}) if s.id == stream_id
            else s for s in config.streams]})
        perturbed = Score.of(score_events(tuple(candidate_events(sparser, stream_id, clip)),
                                          manual, tolerance_s, clip.duration_s, interval_s))
    return Evaluation(events, validation, Score.of(validation, perturbed),
                      time.perf_counter() - started)


def score_events(events: tuple[CountEvent, ...], manual: tuple[CountEvent, ...],
                 tolerance_s: float, duration_s: float, interval_s: float) -> CountValidation:
    """`validate`'s figures for these automatic events."""
    return validate_counts(match_counts(manual, events, tolerance_s), duration_s, interval_s)
