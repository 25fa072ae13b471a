"""Tracker benchmark: our ByteTrack against the libraries people would otherwise use, on the
same MOTChallenge detections with the same metric code (`lanewatch bench-tracker`).

Each tracker gets the detections in its own native input type, built before the clock starts,
so the throughput column measures the trackers' `update` calls and nothing else.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanewatch.trackers.bytetrack.tracker import ByteTrack, ByteTrackSettings
from lanewatch.trackers.detections import Detections
from lanewatch.trackers.evaluation.mot import MotScores, MotSequence, evaluate

FrameOutput = tuple[np.ndarray, np.ndarray]  # (ids, (K, 4) xyxy)


class BenchTracker:
    """A tracker under test: `prepare` converts a frame's detections (untimed), `step` runs."""

    name = "?"

    def prepare(self, dets: np.ndarray):  # (N, 5) x1 y1 x2 y2 score
        raise NotImplementedError

    def step(self, prepared, timestamp_s: float) -> FrameOutput:
        raise NotImplementedError


class OurByteTrack(BenchTracker):
    name = "lanewatch ByteTrack"

    def __init__(self, frame_rate: float, settings: ByteTrackSettings | None = None,
                 filtered_boxes: bool = True):
        self._tracker = ByteTrack(settings, frame_rate=frame_rate)
        self._filtered = filtered_boxes

    def prepare(self, dets):
        return Detections(dets[:, :4].astype(np.float32), dets[:, 4].astype(np.float32),
                          np.zeros(len(dets), np.int32))

    def step(self, prepared, timestamp_s):
        out = self._tracker.update(prepared, timestamp_s)
        keep = out.confirmed  # tentative tracks are not reported as objects
        boxes = out.filtered_xyxy if self._filtered else out.detections.xyxy
        return out.detections.tracker_id[keep], boxes[keep]


def _import_roboflow_trackers():
    """Roboflow's PyPI package `trackers`. From a lanewatch checkout, the repository's own
    trackers/ folder (installed as lanewatch.trackers) would shadow it when the working
    directory is on sys.path, so such entries are skipped for this one import."""
    import importlib
    import sys

    def ours(entry: str) -> bool:
        return (Path(entry or ".").resolve() / "trackers" / "bytetrack" / "tracker.py").exists()

    saved, cached = sys.path[:], sys.modules.pop("trackers", None)
    try:
        sys.path[:] = [p for p in sys.path if not ours(p)]
        return importlib.import_module("trackers")
    finally:
        sys.path[:] = saved
        if cached is not None and not hasattr(sys.modules.get("trackers"), "SORTTracker"):
            sys.modules["trackers"] = cached


class RoboflowTracker(BenchTracker):
    """Roboflow `trackers` (pip package of that name; imported lazily)."""

    def __init__(self, frame_rate: float, kind: str):
        roboflow = _import_roboflow_trackers()

        cls = {"bytetrack": roboflow.ByteTrackTracker, "sort": roboflow.SORTTracker,
               "ocsort": roboflow.OCSORTTracker}[kind]
        self.name = f"Roboflow {cls.__name__}"
        self._tracker = cls(frame_rate=frame_rate)

    def prepare(self, dets):
        import supervision as sv

        return sv.Detections(xyxy=dets[:, :4].astype(np.float32),
                             confidence=dets[:, 4].astype(np.float32),
                             class_id=np.zeros(len(dets), int))

    def step(self, prepared, timestamp_s):
        out = self._tracker.update(prepared)
        keep = out.tracker_id >= 0 if out.tracker_id is not None else np.zeros(0, bool)
        ids = np.zeros(0, int) if out.tracker_id is None else out.tracker_id[keep]
        return ids, out.xyxy[keep]


class UltralyticsByteTrack(BenchTracker):
    """Ultralytics' BYTETracker with its default bytetrack.yaml settings."""

    name = "Ultralytics BYTETracker"

    def __init__(self, frame_rate: float):
        import ultralytics
        import yaml
        from ultralytics.trackers.byte_tracker import BYTETracker
        from ultralytics.utils import IterableSimpleNamespace

        cfg = Path(ultralytics.__file__).parent / "cfg" / "trackers" / "bytetrack.yaml"
        args = IterableSimpleNamespace(**yaml.safe_load(cfg.read_text()))
        self._tracker = BYTETracker(args)  # track_buffer: 30 frames, whatever the rate

    def prepare(self, dets):
        from ultralytics.engine.results import Boxes

        data = np.hstack([dets[:, :5], np.zeros((len(dets), 1))]).astype(np.float32)
        return Boxes(data, orig_shape=(1080, 1920))

    def step(self, prepared, timestamp_s):
        out = self._tracker.update(prepared)
        if len(out) == 0:
            return np.zeros(0, int), np.zeros((0, 4))
        return out[:, 4].astype(int), out[:, :4]


TRACKERS: dict[str, Callable[[float], BenchTracker]] = {
    "lanewatch": OurByteTrack,
    "roboflow-bytetrack": lambda fr: RoboflowTracker(fr, "bytetrack"),
    "roboflow-sort": lambda fr: RoboflowTracker(fr, "sort"),
    "roboflow-ocsort": lambda fr: RoboflowTracker(fr, "ocsort"),
    "ultralytics-bytetrack": UltralyticsByteTrack,
}


@dataclass(frozen=True)
class BenchRow:
    """One tracker's line of the comparison table."""

    tracker: str
    scores: MotScores
    frames: int
    update_seconds: float

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.update_seconds if self.update_seconds > 0 else float("inf")


def run_tracker(make: Callable[[float], BenchTracker], sequences: list[MotSequence],
                repeats: int = 2) -> BenchRow:
    """One tracker alone (see `compare`)."""
    return compare({"tracker": make}, sequences, repeats)[0]


def compare(makers: dict[str, Callable[[float], BenchTracker]], sequences: list[MotSequence],
            repeats: int = 3) -> list[BenchRow]:
    """Track every sequence with a fresh tracker of each kind; time only the update calls.

    A warm-up pass (untimed) loads whatever a tracker compiles or caches on first use. The
    timed passes are interleaved across trackers, round after round, and each tracker keeps
    its fastest: a machine whose speed drifts during the run (shared CPUs) then skews the
    ratios as little as possible. The scores are identical across passes.
    """
    for make in makers.values():
        _track_all(make, sequences[:1])
    best: dict[str, _Pass] = {}
    for _ in range(repeats):
        for key, make in makers.items():
            run = _track_all(make, sequences)
            if key not in best or run.update_seconds < best[key].update_seconds:
                best[key] = run
    return [BenchRow(p.tracker, evaluate(sequences, p.results), p.frames, p.update_seconds)
            for p in (best[key] for key in makers)]


@dataclass(frozen=True)
class _Pass:
    tracker: str
    results: dict
    frames: int
    update_seconds: float


def _track_all(make: Callable[[float], BenchTracker], sequences: list[MotSequence]) -> _Pass:
    results: dict[str, dict[int, FrameOutput]] = {}
    frames, seconds, name = 0, 0.0, "?"
    empty = np.zeros((0, 5))
    for seq in sequences:
        tracker = make(seq.frame_rate)
        name = tracker.name
        prepared = [tracker.prepare(seq.detections.get(f, empty))
                    for f in range(1, seq.length + 1)]
        out: dict[int, FrameOutput] = {}
        start = time.perf_counter()
        for f, p in enumerate(prepared, start=1):
            out[f] = tracker.step(p, (f - 1) / seq.frame_rate)
        seconds += time.perf_counter() - start
        frames += seq.length
        results[seq.name] = {f: (np.asarray(i), np.asarray(b)) for f, (i, b) in out.items()}
    return _Pass(name, results, frames, seconds)


def format_table(rows: list[BenchRow]) -> str:
    """Markdown comparison table, with our margins over the best library."""
    lines = ["| tracker | MOTA | IDF1 | ID switches | FP | FN | update frames/s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        s = r.scores
        lines.append(f"| {r.tracker} | {s.mota:.1f} | {s.idf1:.1f} | {s.id_switches} | "
                     f"{s.false_positives} | {s.misses} | {r.frames_per_second:,.0f} |")
    ours = [r for r in rows if r.tracker.startswith("lanewatch")]
    others = [r for r in rows if not r.tracker.startswith("lanewatch")]
    if ours and others:
        o = ours[0]
        lines.append("")
        lines.append(
            "lanewatch vs best library: "
            f"MOTA {o.scores.mota - max(r.scores.mota for r in others):+.1f}, "
            f"IDF1 {o.scores.idf1 - max(r.scores.idf1 for r in others):+.1f}, "
            f"ID switches {o.scores.id_switches - min(r.scores.id_switches for r in others):+d}, "
            f"throughput x{o.frames_per_second / max(r.frames_per_second for r in others):.1f}")
    return "\n".join(lines)
