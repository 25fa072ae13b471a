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
        cpu_ms: the review's CPU time per frame, every thread (on a shared box a steadier
            measure of cost than frames/s: the frames/s the cores allow is cores x 1000 /
            cpu_ms).
        model_ms: median wall time per frame of the detection step alone, one frame at a
            time (crop or tiles, inference, merge, the policy).
        model_cpu_ms: CPU time per frame of that step, every thread of the process.
        detections_per_frame: mean boxes per frame after the policy, on the sampled frames.
    """

    name: str
    fps: float
    lanes: dict[str, int]
    classes: dict[str, int]
    cpu_ms: float
    model_ms: float
    model_cpu_ms: float
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
    cpu_started = time.process_time()
    for picture in pictures:
        started = time.perf_counter()
        found = processor.policy.apply(processor.detect(picture))
        times.append(time.perf_counter() - started)
        boxes.append(len(found))
    model_cpu_ms = (time.process_time() - cpu_started) / len(pictures) * 1000
    detector.close()
    return VariantCost(name, summary["fps_achieved"],
                       {lane: n["total"] for lane, n in summary["lanes"].items()},
                       dict(summary.get("classes", {})),
                       float((summary.get("cpu_ms_per_frame") or {}).get("total", 0.0)),
                       float(np.median(times)) * 1000, model_cpu_ms, float(np.mean(boxes)))


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
    say(f"\n  {'detection variant':<40}{'frames/s':>9}{'CPU ms':>8}{'vs 1st':>7}"
        f"{'model ms':>9}{'CPU ms':>8}{'vs 1st':>7}{'dets/frame':>11}   crossings")
    for m in measured:
        say(f"  {m.name:<40}{m.fps:9.1f}{m.cpu_ms:8.1f}{_ratio(m.cpu_ms, base.cpu_ms)}"
            f"{m.model_ms:9.1f}{m.model_cpu_ms:8.1f}{_ratio(m.model_cpu_ms, base.model_cpu_ms)}"
            f"{m.detections_per_frame:11.1f}   {sum(m.lanes.values())} {m.classes}")
    say(f"  (frames/s and CPU ms: `process`, counting only, CPU per frame of every thread; "
        f"model: the detection step alone per frame, one frame at a time, every tile in "
        f"turn, median wall ms and mean CPU ms over every {every}th frame; vs 1st: CPU "
        f"against the first row; dets/frame after the detection policy)")
    return measured


def detection_cost(config: Config, video: Path, say: Callable[[str], None]) -> dict:
    """`lanewatch bench`: the config's tiling or upscaling against none, as figures."""
    detection = config.streams[0].detection
    columns, rows = detection.tiles
    name = (f"the config's: tiles {columns}x{rows}, imgsz "
            f"{detection.imgsz or config.model.imgsz}")
    measured = compare([("untiled, model.imgsz", untiled(config)), (name, config)], video, say)
    return {m.name: m.__dict__ for m in measured}


def _ratio(value: float, base: float) -> str:
    return f"{value / base:6.2f}x" if base > 0 else f"{'-':>7}"
