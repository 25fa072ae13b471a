"""The cost of the detector robustness options (issue 21, item 4): tiled or upscaled inference
of a stream (`streams[].detection.tiles`, `.imgsz`) and the detection policy (`model:`
class_confidence, class_aliases, agnostic_nms), measured on a clip against the same config
without them.

For each variant: `process` end to end (frames/s, crossings per lane), the model's wall time
per frame one frame at a time (every tile, sequentially, as a live stream runs it) and the
detections per frame after the policy. `lanewatch bench` prints the config's tiling or
upscaling against none when the config has either; docs/analytics.md's figures come from
`compare`. Ratios are printed next to the figures; nothing asserts a speed.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanewatch.sinks.frames import Picture
from lanewatch.stream.config.schema import Config
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.stream.sources.file_source import FileSource


@dataclass(frozen=True)
class VariantCost:
    """One configuration measured on the clip.

    Attributes:
        name: what the variant is.
        fps: `process` frames per second (counting only, no video).
        lanes: crossings per lane counted by that run.
        classes: crossings per class counted by that run.
        model_ms: median wall time per frame of the detection step alone, one frame at a
            time (crop or tiles, inference, merge, the policy).
        detections_per_frame: mean boxes per frame after the policy, on the sampled frames.
    """

    name: str
    fps: float
    lanes: dict[str, int]
    classes: dict[str, int]
    model_ms: float
    detections_per_frame: float


def sample_frames(video: Path, every: int) -> list[Picture]:
    """Every `every`-th frame's pixels, over the whole clip."""
    with FileSource(video) as source:
        return [f.picture for f in source.frames() if f.index % every == 0]


def measure_variant(name: str, config: Config, video: Path, pictures: list[Picture]
                    ) -> VariantCost:
    """`process` and the detection step of `config`'s first stream on the clip."""
    from lanewatch.stream.pipeline.review import review_video

    no_video = config.model_copy(update={"output": config.output.model_copy(
        update={"video": False})})
    with tempfile.TemporaryDirectory() as out:
        summary = review_video(video, no_video, Path(out), progress=False).summary
    stream = config.streams[0]
    detector = create_detector(config.model)
    processor = StreamProcessor(stream, config, detector, pictures[0].size, 30.0)
    processor.prepare_detector(single=True)
    times, boxes = [], []
    for picture in pictures:
        started = time.perf_counter()
        found = processor.policy.apply(processor.detect(picture))
        times.append(time.perf_counter() - started)
        boxes.append(len(found))
    detector.close()
    return VariantCost(name, summary["fps_achieved"],
                       {lane: n["total"] for lane, n in summary["lanes"].items()},
                       dict(summary.get("classes", {})), float(np.median(times)) * 1000,
                       float(np.mean(boxes)))


def untiled(config: Config) -> Config:
    """`config` with its streams' tiling and input size back to the defaults."""
    streams = [s.model_copy(update={"detection": s.detection.model_copy(
        update={"tiles": (1, 1), "imgsz": None})}) for s in config.streams]
    return config.model_copy(update={"streams": streams})


def is_tiled_or_upscaled(config: Config) -> bool:
    """Whether the first stream tiles its region or runs the model at its own input size."""
    detection = config.streams[0].detection
    return detection.tiles != (1, 1) or detection.imgsz is not None


def compare(variants: list[tuple[str, Config]], video: Path, say: Callable[[str], None],
            every: int = 5) -> list[VariantCost]:
    """Measure each (name, config) on the clip and print them against the first."""
    pictures = sample_frames(video, every)
    measured = [measure_variant(name, config, video, pictures) for name, config in variants]
    base = measured[0]
    say(f"\n  {'detection variant':<44}{'frames/s':>9}{'vs first':>9}{'model ms':>9}"
        f"{'vs first':>9}{'dets/frame':>11}   crossings")
    for m in measured:
        say(f"  {m.name:<44}{m.fps:9.1f}{m.fps / base.fps:8.2f}x{m.model_ms:9.1f}"
            f"{m.model_ms / base.model_ms:8.2f}x{m.detections_per_frame:11.1f}   "
            f"{sum(m.lanes.values())} {m.classes}")
    say(f"  (model ms: the detection step per frame, one frame at a time, every tile in "
        f"turn, median over every {every}th frame; dets/frame after the detection policy)")
    return measured


def detection_cost(config: Config, video: Path, say: Callable[[str], None]) -> dict:
    """`lanewatch bench`: the config's tiling or upscaling against none, as figures."""
    detection = config.streams[0].detection
    columns, rows = detection.tiles
    name = (f"the config's: tiles {columns}x{rows}, imgsz "
            f"{detection.imgsz or config.model.imgsz}")
    measured = compare([("untiled, model.imgsz", untiled(config)), (name, config)], video, say)
    return {m.name: m.__dict__ for m in measured}
