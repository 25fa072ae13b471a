"""`lanewatch bench`: how close the pipeline runs to the model's own limit, on this machine.

One run, one clip, one model, measured in turn (never concurrently):

- the raw model: synchronous (one request at a time) and with requests in flight, on frames
  letterboxed beforehand (decode and pre-processing excluded);
- our `process`: counting only (decode, detect, track, count, reports), then with annotation
  and H.264 video writing as well;
- Ultralytics on the same clip and model: `model.track` (ByteTrack) and
  `solutions.ObjectCounter` (the counting lines joined into its one region);
- the CPU per frame of the model alone and of each `process` thread (decode, main, video,
  the runtime's), and the frames per second those allow with every core busy: what bounds
  the ratios on this machine (stream/cpu_use.py);
- live: the clip paced like a camera through the live worker, capture-to-publish latency
  percentiles against the model's single-frame inference time;
- live: the cadence the stream's worker chose (the model on every Nth frame), whether its
  counts were reliable, and its crossings;
- many cameras (`--streams N`): for k = 1 .. N, k copies of the stream paced like cameras and
  played once, in one process as `serve` runs them (shared model, or batched; one capacity
  governor): each stream's cadence and counts against the review's, and how many cameras the
  box counts exactly (stream/bench_streams.py); `--streams-only` measures just that;
- a model comparison table over the models given (each measured in a child process, so peak
  memory is its own).

Figures are printed, with the ratios the performance targets are stated in; nothing here
asserts a timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lanewatch.stream.bench_ultralytics import measure_object_counter, measure_ultralytics_track
from lanewatch.stream.cadence import ordinal
from lanewatch.stream.config import Config, ModelConfig
from lanewatch.stream.cpu_use import cpu_bound_fps
from lanewatch.stream.detector import create_detector
from lanewatch.stream.frames import Picture
from lanewatch.stream.openvino_detector import OpenVINODetector, exported_model_files
from lanewatch.stream.sources import FileSource

_ORDINAL = {2: "2nd", 3: "3rd"}


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
    cpu_ms: dict[str, float]  # CPU per frame by thread (stream/cpu_use.py)


def measure_process(config: Config, clip: Path, every_nth_frame: int = 1,
                    **output) -> ProcessRun:
    """Our `process` end to end, with `output:` settings overridden (video, video_preset,
    video_width) and detection on every Nth frame."""
    from lanewatch.stream.review import review_video

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
    from lanewatch.stream.runner import StreamRunner

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
                "from lanewatch.stream.bench import measure_model, load_frames; "
                "from lanewatch.stream.config import ModelConfig; "
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


def report_cpu(measured: Round, preset: str, say) -> None:
    """Where the CPU goes, per frame: the model alone against `process`, thread by thread,
    and the frames per second each total allows with every core busy (the ceiling the
    ratios above are bound by, on this machine)."""
    raw, cores = measured.raw, os.cpu_count() or 1
    columns = ("runtime", "decode", "main", "video", "total")

    def line(name: str, cpu: dict[str, float], measured_fps: float) -> None:
        ceiling = cpu_bound_fps(cpu["total"], cores)
        cells = "".join(f"{cpu[k]:8.2f}" if cpu.get(k) else f"{'-':>8}" for k in columns)
        say(f"  {name:<50}{cells}   {ceiling:6.1f} = {ceiling / raw.inflight_fps:.2f}x raw "
            f"(measured {measured_fps:.1f})")

    say(f"\n  {'CPU per frame, ms (every thread)':<50}"
        + "".join(f"{k:>8}" for k in columns) + f"   frames/s at most on {cores} cores")
    line("model alone, in flight", {"runtime": raw.inflight_cpu_ms,
                                    "total": raw.inflight_cpu_ms}, raw.inflight_fps)
    line("process: counting only", measured.counting.cpu_ms, measured.counting.fps)
    line(f"process: counting + annotated H.264 ({preset})", measured.annotated.cpu_ms,
         measured.annotated.fps)
    say("  (runtime: the inference runtime's threads and the rest of the process; main: "
        "pre- and post-processing, tracking, counting, drawing; at most: every core busy "
        "with this CPU per frame; one round, the median's)")


def _many_streams(config: Config, video: Path, streams: int, seconds: float | None,
                  say) -> dict:
    """k = 1 .. `streams` cameras counted live against the review (stream/bench_streams.py)."""
    from lanewatch.stream import bench_streams

    return bench_streams.measure_streams(config, video, streams, seconds, say=say)


def _median(values) -> float:
    return float(np.median(list(values)))


def run(config: Config, video: Path, models: list[str], live_seconds: float,
        ultralytics: bool = True, out=sys.stdout, streams: int = 0,
        streams_seconds: float | None = None, rounds: int = 3,
        streams_only: bool = False) -> dict:
    """Measure everything and print the report; returns the figures (for --json). The raw
    model and `process` (counting only, annotated) are measured in `rounds` interleaved
    rounds and reported as medians; each target ratio is the median of its rounds' ratios.
    `streams_only`: only the many-cameras part (`streams` cameras, the clip's first
    `streams_seconds` when given)."""
    def say(text: str = "") -> None:
        print(text, file=out, flush=True)

    with FileSource(video) as source:
        info = source.info
    say(f"lanewatch bench: {video.name} ({info.width}x{info.height}, {info.frame_count} "
        f"frames), model {Path(config.model.path).name}, {os.cpu_count()} CPU threads")
    if streams_only:
        return {"many_streams": _many_streams(config, video, max(streams, 1), streams_seconds,
                                              say)}
    frames = load_frames(video, 60)
    measured = measure_rounds(config, video, frames, rounds)
    middle = min(measured, key=lambda r: abs(r.raw.inflight_fps - _median(
        m.raw.inflight_fps for m in measured)))  # the median round (by the model alone)
    raw = middle.raw
    counting = _median(r.counting.fps for r in measured)
    annotated = _median(r.annotated.fps for r in measured)
    counting_ratio = _median(r.counting.fps / r.raw.inflight_fps for r in measured)
    annotated_ratio = _median(r.annotated.fps / r.raw.inflight_fps for r in measured)
    lanes = measured[0].counting.lanes
    preset = config.output.video_preset
    fastest = measure_process(config, video, video=True, video_preset="ultrafast")
    smaller = measure_process(config, video, video=True, video_width=640)
    skipping = {n: measure_process(config, video, every_nth_frame=n, video=False)
                for n in (2, 3)}
    padded = None
    if raw.refitted:  # also the export as Ultralytics runs it, padded to its own input
        padded = measure_model(config.model.model_copy(update={"rect": False}), frames)
    figures: dict = {"raw": raw.__dict__, "process_counting_fps": counting,
                     "process_annotated_fps": annotated, "video_preset": preset,
                     "rounds": [{"raw_inflight_fps": r.raw.inflight_fps,
                                 "raw_sync_fps": r.raw.sync_fps,
                                 "raw_inflight_cpu_ms": r.raw.inflight_cpu_ms,
                                 "counting_fps": r.counting.fps,
                                 "annotated_fps": r.annotated.fps, "lanes": r.counting.lanes,
                                 "lanes_annotated": r.annotated.lanes,
                                 "counting_cpu_ms": r.counting.cpu_ms,
                                 "annotated_cpu_ms": r.annotated.cpu_ms} for r in measured],
                     "counting_vs_raw": counting_ratio, "annotated_vs_raw": annotated_ratio,
                     "process_annotated_ultrafast_fps": fastest.fps,
                     "process_annotated_640_fps": smaller.fps, "lanes": lanes,
                     "process_every_nth_frame": {n: {"fps": skip.fps, "lanes": skip.lanes}
                                                 for n, skip in skipping.items()}}
    track_fps = counter_fps = counter_total = None
    if ultralytics:
        track_fps = measure_ultralytics_track(config, video)
        counter_fps, counter_total = measure_object_counter(config, video) or (None, None)
        figures.update(ultralytics_track_fps=track_fps, object_counter_fps=counter_fps,
                       object_counter_crossings=counter_total)

    def row(name: str, fps: float, note: str = "", ratio: float | None = None) -> None:
        vs_raw = f"{fps / raw.inflight_fps if ratio is None else ratio:5.2f}x"
        vs_counter = f"{fps / counter_fps:5.2f}x" if counter_fps else "     -"
        say(f"  {name:<58}{fps:8.1f}   {vs_raw}   {vs_counter}   {note}")

    say(f"\n  {'':<58}{'frames/s':>8}   {'vs raw':>6}   {'vs OC':>6}")
    shape = f"{raw.input_hw[1]}x{raw.input_hw[0]}"
    row(f"model alone at {shape}, synchronous", raw.sync_fps)
    row(f"model alone at {shape}, {raw.requests} requests in flight", raw.inflight_fps,
        "the raw reference: the input process gives this clip")
    if padded is not None:
        figures["raw_padded"] = padded.__dict__
        row(f"model alone padded to {padded.input_hw[1]}x{padded.input_hw[0]} (rect: false), "
            f"in flight", padded.inflight_fps, "the export's own input, as Ultralytics runs it")
    total = sum(lanes.values())
    def same(*found: dict) -> str:
        differ = [f for f in found if f != lanes]
        return "same counts" if not differ else f"COUNTS DIFFER {differ}"
    rounds_note = f"median of {rounds} rounds, " if rounds > 1 else ""
    row("process: counting only", counting, f"{rounds_note}{total} crossings {lanes}"
        + ("" if all(r.counting.lanes == lanes for r in measured) else
           f" ROUNDS DIFFER {[r.counting.lanes for r in measured]}"), counting_ratio)
    row(f"process: counting + annotated H.264 ({preset})", annotated,
        f"{rounds_note}{same(*(r.annotated.lanes for r in measured))}", annotated_ratio)
    if preset != "ultrafast":
        row("process: counting + annotated H.264 (ultrafast)", fastest.fps,
            same(fastest.lanes))
    row(f"process: counting + annotated H.264 at 640 px ({preset})", smaller.fps,
        same(smaller.lanes))
    for n, skip in skipping.items():
        row(f"process: counting, detection every {_ORDINAL[n]} frame", skip.fps,
            same(skip.lanes))
    if ultralytics:
        row("Ultralytics model.track (ByteTrack)", track_fps)
        if counter_fps:
            row("Ultralytics solutions.ObjectCounter", counter_fps,
                f"{counter_total} crossings of the joined line")
        else:
            say("  Ultralytics solutions.ObjectCounter: not measured, the stream has no "
                "counting line for it to count at")
    say("  (vs raw: against the model alone with requests in flight; vs OC: against "
        "ObjectCounter)")
    if rounds > 1:
        say(f"  (counting and annotated: medians of {rounds} rounds, each measuring the model "
            "alone, counting and annotated back to back; their 'vs raw' is the median of the "
            "rounds' ratios; the model rows are the median round's)")
    padded_note = ("" if padded is None else
                   f"; against the export padded to its own input: counting "
                   f"{counting / padded.inflight_fps:.2f}x, annotated "
                   f"{annotated / padded.inflight_fps:.2f}x")
    say(f"  targets: counting >= 0.85x raw ({counting_ratio:.2f}x)"
        + (f" and >= 2.0x ObjectCounter ({counting / counter_fps:.2f}x)" if counter_fps
           else "")
        + f"; annotated >= 0.70x raw ({annotated_ratio:.2f}x){padded_note}")
    report_cpu(middle, preset, say)

    if live_seconds > 0:
        rate = live_rate(info.fps, raw.latency_p50_ms)
        live = measure_live_latency(config, live_seconds, rate if rate < info.fps else None,
                                    info.frame_count)
        latency = live.latencies
        p50, p95, p99 = (float(np.percentile(latency, q) * 1000) for q in (50, 95, 99))
        paced_ms = float(np.median(measure_paced_inference(config, load_frames(video, 90),
                                                           rate)) * 1000)
        figures["live_latency_ms"] = {"p50": p50, "p95": p95, "p99": p99,
                                      "frames": int(len(latency)), "rate_fps": rate,
                                      "paced_inference_p50": paced_ms}
        paced = (f"the clip paced at {info.fps:.2f} frames/s" if rate >= info.fps else
                 f"the clip paced at {info.fps:.2f} frames/s, processed at {rate:.1f} "
                 "(half the model's one-frame-at-a-time rate: the target holds below "
                 "capacity)")
        say(f"\n  live ({paced}, {len(latency)} frames): "
            f"capture to publish p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms")
        say(f"  single-frame detection p50: {paced_ms:.1f} ms at the live pace, "
            f"{raw.latency_p50_ms:.1f} ms back to back; target p99 < 2x: "
            f"{p99 / paced_ms:.2f}x the model at the live pace "
            f"({p99 / raw.latency_p50_ms:.2f}x back to back)")
        st = live.status
        figures["live_stream"] = {
            "cadence": st["cadence"], "max_cadence": live.max_cadence,
            "processed_fraction": st["processed_fraction"],
            "largest_gap_frames": st["largest_gap_frames"],
            "largest_gap_s": st["largest_gap_s"], "gap_limit_s": st["gap_limit_s"],
            "counting_reliable": st["counting_reliable"],
            "counting_reason": st["counting_reason"],
            "frames_received": st["frames_received"],
            "frames_processed": st["frames_processed"],
            "frames_dropped": st["frames_dropped"], "crossings": live.crossings,
            "clip_passes": live.passes}
        say(f"  live stream: cadence {st['cadence']} (the model on every "
            f"{ordinal(st['cadence'])} frame; at most {live.max_cadence} during the run), "
            f"{st['processed_fraction']:.1%} of the frames it processed went to the model, "
            f"largest gap "
            f"{st['largest_gap_frames']} frames ({st['largest_gap_s']:.3f} s, limit "
            f"{st['gap_limit_s']:g} s), counting reliable: "
            f"{'yes' if st['counting_reliable'] else 'NO'}; {st['frames_received']} frames "
            f"received ({live.passes:.1f} plays of the looped clip), {st['frames_processed']} "
            f"processed, {st['frames_dropped']} dropped; {live.crossings} crossings counted")
        if not st["counting_reliable"] and st["counting_reason"]:
            say(f"  (not reliable: {st['counting_reason']})")

    if streams > 0:
        figures["many_streams"] = _many_streams(config, video, streams, streams_seconds, say)

    if models:
        rows = model_table(models, config.model, video)
        figures["models"] = rows
        say(f"\n  {'model':<36}{'sync f/s':>9}{'in flight':>10}{'p50 ms':>8}{'p95 ms':>8}"
            f"{'peak MB':>9}{'dets/frame':>11}")
        for r in rows:
            if "error" in r:
                say(f"  {r['model']:<36}error: {r['error']}")
                continue
            say(f"  {r['model']:<36}{r['sync_fps']:9.1f}{r['inflight_fps']:10.1f}"
                f"{r['latency_p50_ms']:8.1f}{r['latency_p95_ms']:8.1f}"
                f"{r['peak_rss_mb']:9.0f}{r['detections_per_frame']:11.1f}")
    return figures
