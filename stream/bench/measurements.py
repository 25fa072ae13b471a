"""The measurements behind `lanewatch bench` (end_to_end.py prints them): the raw model, our
`process` (counting only, annotated), the live worker's latency and cadence, paced inference,
and the model comparison table. Each returns its figures; nothing here prints or asserts a
timing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanewatch.sinks.frames import Picture
from lanewatch.stream.config.schema import Config, ModelConfig
from lanewatch.stream.detect.exported_model import exported_model_files
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.detect.openvino_detector import OpenVINODetector
from lanewatch.stream.sources.file_source import FileSource


@dataclass(frozen=True)
class ModelFigures:
    """The model alone, and per frame with pre- and post-processing."""

    model: str
    input_hw: tuple[int, int]  # the letterboxed input the clip's frames get
    refitted: bool  # a fixed-size export run at another input (model.rect)
    sync_fps: float  # inference only, one request at a time
    inflight_fps: float  # inference only, `requests` in flight (as `detect_frames` queues)
    inflight_cpu_ms: float  # CPU time per frame in flight, every thread of the process
    requests: int  # in flight: two per runtime stream
    latency_p50_ms: float  # one frame, synchronous, letterbox + inference + NMS
    latency_p95_ms: float
    detections_per_frame: float
    peak_rss_mb: float


def load_frames(video: Path, count: int) -> list[Picture]:
    """The clip's first `count` frames' pixels, as the pipeline gets them."""
    with FileSource(video) as source:
        return [f.picture for f, _ in zip(source.frames(), range(count))]


def measure_model(config: ModelConfig, frames: list[Picture], seconds: float = 5.0
                  ) -> ModelFigures:
    """Raw throughput (sync, in flight) and per-frame latency of one exported model."""
    import openvino as ov

    detector = create_detector(config)
    if not isinstance(detector, OpenVINODetector):
        raise SystemExit(f"bench measures exported OpenVINO/ONNX models; {config.path} is not")
    tensors = [detector._prepare(image, None)[0] for image in frames]
    hw = tensors[0].shape[1:3]
    request = detector._compiled_for(hw, "LATENCY").create_infer_request()  # as one stream
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        request.infer({0: tensors[n % len(tensors)]}, share_inputs=True)
        n += 1
    sync_fps = n / (time.perf_counter() - start)
    compiled = detector._compiled_for(hw, "THROUGHPUT")  # as `detect_frames`
    # As many queued as `process` queues (two per runtime stream: a stream that finishes one
    # starts the next at once); with only one per stream the model alone is ~5% slower here.
    queue = ov.AsyncInferQueue(compiled, detector.in_flight)
    n, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        queue.start_async({0: tensors[n % len(tensors)]}, share_inputs=True)
        n += 1
    queue.wait_all()
    inflight_fps = n / (time.perf_counter() - start)
    inflight_cpu_ms = (time.process_time() - cpu_start) * 1000 / n
    latencies, found = [], []
    for image in frames:
        t0 = time.perf_counter()
        found.append(len(detector.detect(image)))
        latencies.append(time.perf_counter() - t0)
    return ModelFigures(
        model=Path(config.path).name, input_hw=(int(hw[0]), int(hw[1])),
        refitted=not detector.dynamic and tuple(hw) != detector._fixed_hw, sync_fps=sync_fps,
        inflight_fps=inflight_fps, inflight_cpu_ms=inflight_cpu_ms,
        requests=detector.in_flight,
        latency_p50_ms=float(np.percentile(latencies, 50) * 1000),
        latency_p95_ms=float(np.percentile(latencies, 95) * 1000),
        detections_per_frame=float(np.mean(found)),
        peak_rss_mb=_peak_rss_mb())


def _peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, not getrusage's ru_maxrss: Linux carries
    ru_maxrss across exec, so a child started from a big parent would report the parent's."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass(frozen=True)
class ProcessRun:
    """One `lanewatch process` run of the clip."""

    fps: float
    lanes: dict[str, int]  # crossings per lane
    cpu_ms: dict[str, float]  # CPU per frame by thread (sinks/cpu_use.py)


def measure_process(config: Config, clip: Path, every_nth_frame: int = 1,
                    **output) -> ProcessRun:
    """Our `process` end to end, with `output:` settings overridden (video, video_preset,
    video_width) and detection on every Nth frame."""
    from lanewatch.stream.pipeline.review import review_video

    streams = [s.model_copy(update={"detection": s.detection.model_copy(
        update={"every_nth_frame": every_nth_frame})}) for s in config.streams]
    config = config.model_copy(update={"output": config.output.model_copy(update=output),
                                       "streams": streams})
    with tempfile.TemporaryDirectory() as out:
        result = review_video(clip, config, Path(out), progress=False)
    summary = result.summary
    return ProcessRun(summary["fps_achieved"],
                      {name: lane["total"] for name, lane in summary["lanes"].items()},
                      summary["cpu_ms_per_frame"])


def live_rate(clip_fps: float, latency_p50_ms: float) -> float:
    """The rate the live measurement runs at: the clip's, but at most half of what the model
    does one frame at a time (the latency target holds below capacity; near it, frames queue
    behind the model whatever the pipeline does, and decoding the camera's every frame, the
    tracker and the publishing take their share of the same cores)."""
    return min(clip_fps, 0.5 * 1000 / latency_p50_ms)


@dataclass(frozen=True)
class LiveRun:
    """The first stream paced like a camera (the clip looped) through the live worker."""

    latencies: np.ndarray  # capture to publish (s), after warm-up
    status: dict  # the stream's status at the end: cadence, reliability, frames
    max_cadence: int  # the largest cadence any frame was scheduled at
    crossings: int  # counted over the whole run (the clip looped: several passes)
    passes: float  # how many times the clip was played (frames received / clip frames)


def measure_live_latency(config: Config, seconds: float, max_fps: float | None = None,
                         clip_frames: int | None = None) -> LiveRun:
    """Capture-to-publish latencies of the first stream paced like a camera, processing
    at most `max_fps` frames per second (the source's `max_fps`), with the cadence its worker
    chose and what it counted."""
    from lanewatch.sinks.metrics import ServiceMetrics
    from lanewatch.stream.pipeline.runner import StreamRunner

    detector = create_detector(config.model)
    latencies: list[float] = []
    crossings = [0]
    cadences = [0]

    def published(result) -> None:
        latencies.append(time.time() - result.frame.wall_time)
        crossings[0] += len(result.analytics.crossings)
        if runner.scheduler is not None:
            cadences[0] = max(cadences[0], runner.scheduler.load.cadence)

    stream = config.streams[0]
    options = stream.source_options.model_copy(update={"loop": True, "realtime": True,
                                                       "max_fps": max_fps})
    runner = StreamRunner(stream, config, detector, ServiceMetrics(),
                          on_result=published, source_settings=options)
    runner.start()
    try:
        time.sleep(seconds)
        status = runner.status()
    finally:
        runner.stop()
    skip = min(len(latencies) // 10, 30)  # warm-up
    passes = status["frames_received"] / clip_frames if clip_frames else float("nan")
    return LiveRun(np.asarray(latencies[skip:]), status, max(cadences[0], status["cadence"]),
                   crossings[0], passes)


def measure_paced_inference(config: Config, frames: list[Picture], rate: float
                            ) -> np.ndarray:
    """Single-frame detection times (s) with the model called `rate` times a second, as the
    live worker calls it. On a virtual machine an idle CPU costs the next inference several
    milliseconds (13-14 ms here against 10 ms back to back, whatever the runtime's threading:
    even one inference thread pays it), so the live latency target is stated against the
    model at the live pace as well as back to back."""
    detector = create_detector(config.model)
    times, next_at = [], time.perf_counter()
    for picture in frames:
        time.sleep(max(0.0, next_at - time.perf_counter()))
        next_at = time.perf_counter() + 1 / rate
        start = time.perf_counter()
        detector.detect(picture)
        times.append(time.perf_counter() - start)
    return np.asarray(times[min(10, len(frames) // 10):])  # after warm-up


def model_table(paths: list[str], base: ModelConfig, video: Path) -> list[dict]:
    """Each model measured in its own child process (its own peak memory)."""
    rows = []
    for path in paths:
        task = "segment" if "seg" in Path(path).name else base.task
        if exported_model_files(path) is not None:
            meta_task = exported_model_files(path)[1].get("task")
            task = meta_task or task
        spec = base.model_copy(update={"path": path, "task": task, "classes": None})
        code = ("import json,sys; from pathlib import Path; "
                "from lanewatch.stream.bench.measurements import measure_model, load_frames; "
                "from lanewatch.stream.config.schema import ModelConfig; "
                "c = ModelConfig.model_validate_json(sys.argv[1]); "
                "f = measure_model(c, load_frames(Path(sys.argv[2]), 60), 4.0); "
                "print(json.dumps(f.__dict__))")
        done = subprocess.run([sys.executable, "-c", code, spec.model_dump_json(), str(video)],
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            rows.append({"model": Path(path).name, "error": done.stderr.strip()[-300:]})
        else:
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return rows


@dataclass(frozen=True)
class Round:
    """One interleaved round: the raw model, then `process` counting only and annotated."""

    raw: ModelFigures
    counting: ProcessRun
    annotated: ProcessRun


def measure_rounds(config: Config, video: Path, frames: list[Picture], rounds: int
                   ) -> list[Round]:
    """The target ratios' figures, measured back to back `rounds` times: on a machine whose
    speed drifts (shared or thermally limited) each ratio comes from adjacent measurements.
    The model alone runs on `frames` (the clip's first)."""
    done = []
    for _ in range(rounds):
        raw = measure_model(config.model, frames)
        counting = measure_process(config, video, video=False)
        done.append(Round(raw, counting, measure_process(config, video, video=True)))
    return done
