"""Detections made once per detection variant, re-used by every candidate that shares it.

Only a few settings change what the model itself sees: the input size (`model.imgsz`,
`streams[].detection.imgsz`), the region crop and the NMS IoU. Each such *variant* costs one
detector pass over the clip; every other setting (confidences, classes, tracker, cadence,
counting) is applied after the model, so the pass runs permissively
(`policy_config.permissive`: a confidence under every value searched, every class, no
policy rule) and each candidate's detection policy, applied by its `StreamProcessor.update`,
reduces those detections to what the detector run with its own settings would have
returned (trackers/detection_policy.py says why that is exact).
Cadence needs no pass either: a candidate with `every_nth_frame` N takes the cached
detections of every Nth frame and lets the tracker predict the others, as a review does.

A pass can be kept in an .npz file (`save_clip`/`load_clip`): a second `tune` run on the same
clip, model and variant then skips the detector.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanewatch.sinks.errors import LanewatchError
from lanewatch.stream.config.schema import Config, ModelConfig, StreamConfig
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.detect.policy_config import permissive
from lanewatch.stream.detect.step import pipelined_steps
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.trackers.detections import Detections

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # 2: tiled passes keep each frame's tiles


# What does not change the model's own output: the detection policy (applied after the
# model, by the processor), the cadence (which frames, not what is found in them) and how
# frames are scheduled or batched. Every other `model:` and `streams[].detection:` setting
# is part of the variant, so a setting added later counts as changing the detections until
# it is listed here.
_POST_MODEL = frozenset({"confidence", "classes", "class_confidence", "class_aliases",
                         "agnostic_nms", "suppress_contained", "requests", "batch_size",
                         "batch_timeout_ms"})
_SCHEDULE = frozenset({"every_nth_frame", "adaptive", "max_gap_s"})


@dataclass(frozen=True)
class DetectionVariant:
    """The settings that change the model's own output: one detector pass each.

    Attributes:
        key: those settings as sorted JSON (the cache's identity).
        imgsz: the network input size used.
        region: the detection region setting.
    """

    key: str
    imgsz: int
    region: str | tuple[float, ...]

    @classmethod
    def of(cls, config: Config, stream: StreamConfig) -> DetectionVariant:
        """The variant a config runs for one of its streams."""
        model = {k: v for k, v in config.model.model_dump(mode="json").items()
                 if k not in _POST_MODEL}
        detection = {k: v for k, v in stream.detection.model_dump(mode="json").items()
                     if k not in _SCHEDULE}
        key = json.dumps({"model": model, "detection": detection}, sort_keys=True)
        d = stream.detection
        region = d.region if isinstance(d.region, str) else tuple(d.region)
        return cls(key, d.imgsz or config.model.imgsz, region)

    def label(self) -> str:
        """Short readable form, for reports."""
        region = self.region if isinstance(self.region, str) else list(self.region)
        return f"imgsz {self.imgsz}, region {region}"


@dataclass(frozen=True)
class CachedClip:
    """Every frame of a clip with the detections of one variant's permissive pass.

    Attributes:
        variant: the detection variant the pass ran.
        floor: the confidence the pass kept detections above (lower than every candidate's).
        frame_size: (width, height) of the video.
        fps: its frame rate.
        pts_s: each frame's presentation time, in decode order.
        detections: each frame's detections in frame coordinates, every class.
        detect_s: wall time of the pass (0 when loaded from a file).
        tiles: for a tiled stream, each frame's detections per tile before they were joined
            (tile coordinates): joining depends on the policy (only boxes it keeps take part),
            so each candidate joins them for its own (`DetectionPlan.merge`); None untiled.
    """

    variant: DetectionVariant
    floor: float
    frame_size: tuple[int, int]
    fps: float
    pts_s: tuple[float, ...]
    detections: tuple[Detections, ...]
    detect_s: float
    tiles: tuple[tuple[Detections, ...], ...] | None = None

    @property
    def frames(self) -> int:
        return len(self.pts_s)

    @property
    def duration_s(self) -> float:
        """The clip's length as a review's summary.json states it."""
        return self.pts_s[-1] + 1 / self.fps if self.pts_s else 0.0

    @property
    def class_names(self) -> dict[int, str]:
        return self.detections[0].class_names if self.detections else {}


def detect_clip(video: Path, config: Config, stream: StreamConfig, floor: float,
                max_frames: int | None = None) -> CachedClip:
    """Run the detector of `config` (at `floor`, every class) on every frame of `video` with
    `stream`'s region and input size. Bad input raises LanewatchError subclasses."""
    permissive_config = config.model_copy(update={"model": permissive(config.model, floor)})
    every_frame = stream.model_copy(update={"detection": stream.detection.model_copy(
        update={"every_nth_frame": 1})})
    source = FileSource(video, stream.id)
    try:
        info = source.info
        detector = create_detector(permissive_config.model)
        # The processor checks the lanes and region against this video's frame size, with the
        # same messages as `process`; only its detection plan is used here.
        processor = StreamProcessor(every_frame, permissive_config, detector,
                                    (info.width, info.height), info.fps)
        processor.prepare_detector()
        started = time.perf_counter()
        pts, found, tiles = [], [], []
        frames = source.frames()
        for step in pipelined_steps(frames, detector, processor.plan):
            pts.append(step.frame.pts_s)
            found.append(step.detections)
            tiles.append(step.tiles)
            if max_frames is not None and len(pts) >= max_frames:
                break
        elapsed = time.perf_counter() - started
    finally:
        source.close()
    if not pts:
        raise LanewatchError(f"{video}: no frames decoded: nothing to tune on")
    tiled = len(processor.plan.tiles) > 1
    return CachedClip(DetectionVariant.of(config, stream), floor, (info.width, info.height),
                      info.fps, tuple(pts), tuple(found), elapsed,
                      tuple(tiles) if tiled else None)


def _cache_key(video: Path, model: ModelConfig, variant: DetectionVariant, floor: float,
               max_frames: int | None) -> dict:
    """What must match for a saved pass to stand for a new one."""
    stat = video.stat()
    return {"version": CACHE_VERSION, "video": str(video.resolve()), "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns, "model": model.path, "task": model.task,
            "backend": model.backend, "device": model.device, "rect": model.rect,
            "variant": variant.key, "floor": floor,
            "max_frames": max_frames}


def save_clip(path: Path, clip: CachedClip, video: Path, model: ModelConfig,
              max_frames: int | None = None) -> None:
    """Write a pass to an .npz file (boxes, scores and classes of every frame)."""
    # A tiled pass keeps each frame's tiles (the joined detections are made again from them
    # on loading, for any policy); an untiled one its detections: one part per frame.
    parts = ([d for frame in clip.tiles for d in frame] if clip.tiles is not None
             else list(clip.detections))
    counts = np.array([len(d) for d in parts], np.int64)
    empty = Detections.empty(clip.class_names)
    rows = parts or [empty]
    key = _cache_key(video, model, clip.variant, clip.floor, max_frames)
    meta = {"key": key, "frame_size": list(clip.frame_size), "fps": clip.fps,
            "class_names": {str(k): v for k, v in clip.class_names.items()},
            "tiles": len(clip.tiles[0]) if clip.tiles else 1,
            "joined": [len(d) for d in clip.detections] if clip.tiles else None}
    np.savez_compressed(
        path, meta=np.array(json.dumps(meta)), pts_s=np.array(clip.pts_s, np.float64),
        counts=counts, xyxy=np.concatenate([d.xyxy for d in rows]),
        confidence=np.concatenate([d.confidence for d in rows]),
        class_id=np.concatenate([d.class_id for d in rows]))


def load_clip(path: Path, video: Path, model: ModelConfig, variant: DetectionVariant,
              floor: float, max_frames: int | None = None) -> CachedClip | None:
    """A pass saved by `save_clip` for exactly this video, model, variant and floor; None when
    there is none (or it is for something else, or unreadable: then the pass runs again)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            if meta["key"] != _cache_key(video, model, variant, floor, max_frames):
                return None
            names = {int(k): v for k, v in meta["class_names"].items()}
            ends = np.cumsum(data["counts"])
            starts = ends - data["counts"]
            xyxy, conf, cls = data["xyxy"], data["confidence"], data["class_id"]
            parts = [Detections(xyxy=xyxy[a:b], confidence=conf[a:b], class_id=cls[a:b],
                                class_names=names) for a, b in zip(starts, ends)]
            pts = tuple(float(t) for t in data["pts_s"])
    except (OSError, ValueError, KeyError) as err:
        log.warning("%s: cannot read the detection cache (%s); detecting again", path, err)
        return None
    w, h = meta["frame_size"]
    n = int(meta.get("tiles", 1))
    if n == 1:
        return CachedClip(variant, floor, (w, h), float(meta["fps"]), pts, tuple(parts), 0.0)
    tiles = tuple(tuple(parts[i:i + n]) for i in range(0, len(parts), n))
    # the joined detections are only a fallback: candidates join the tiles themselves
    joined = tuple(Detections.empty(names) for _ in tiles)
    return CachedClip(variant, floor, (w, h), float(meta["fps"]), pts, joined, 0.0, tiles)
