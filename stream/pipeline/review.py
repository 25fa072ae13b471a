"""Recorded-video review (`lanewatch process`): a video file in, counts and an annotated video out.

Runs as fast as the machine allows: decoding and video encoding run in their own threads while
the main thread detects, tracks, counts and draws. Each result goes through one `FanOut`
(sinks/sink.py, as in `serve`) to the reports and the annotated video. Whatever happens (a
damaged file, Ctrl-C, a failing video encoder: dropped alone) the reports are written for
every frame processed.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lanewatch.sinks.annotate import FrameAnnotator
from lanewatch.sinks.cpu_use import CpuUse
from lanewatch.sinks.errors import LanewatchError, SourceError, TruncatedVideoError
from lanewatch.sinks.frames import Frame
from lanewatch.sinks.reports import ReportWriter, RunInfo
from lanewatch.sinks.sink import FanOut, SinkFailure
from lanewatch.sinks.video import AnnotatedVideo, VideoWriteError, VideoWriter
from lanewatch.stream.config.schema import Config
from lanewatch.stream.detect.detector import Detector
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.detect.step import pipelined_steps
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.stream.sources.file_source import FileSource
from lanewatch.trackers.analytics.lanes import Lane
from lanewatch.trackers.bytetrack.kernels import COMPILING_MESSAGE
from lanewatch.trackers.bytetrack.warm_up import warm_up

log = logging.getLogger(__name__)

VIDEO_FILE = "annotated.mp4"


@dataclass(frozen=True)
class ReviewResult:
    """Outcome of a review: the summary written to summary.json and the output folder."""

    outdir: Path
    summary: dict[str, Any]


def review_video(
    video: str | Path,
    config: Config,
    outdir: str | Path,
    stream_id: str | None = None,
    progress: bool = True,
    detector: Detector | None = None,
    max_frames: int | None = None,
    start_time: datetime | None = None,
) -> ReviewResult:
    """Process a video file with one configured stream's lanes; write the outputs to `outdir`.

    `max_frames` stops after that many frames (a quick look at a long video). `start_time`:
    when the recording started, for clock times in the reports (default: the container's
    creation_time, when it has one).
    Raises LanewatchError subclasses for bad input. A truncated video still produces complete
    reports for the decodable part before `TruncatedVideoError` is raised.
    """
    stream = config.stream(stream_id)
    outdir = Path(outdir)
    source = FileSource(video, stream.id)  # opens the file now: bad input fails before the model
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        source.close()
        raise LanewatchError(f"cannot create output folder {outdir}: {err.strerror}") from None
    info = source.info
    startup = time.perf_counter()
    try:
        if detector is None:  # seconds on a first run (OpenVINO compiles): said, not silent
            _notify(f"loading model {config.model.path}", progress)
            detector = create_detector(config.model)
        processor = StreamProcessor(stream, config, detector, (info.width, info.height), info.fps)
        processor.prepare_detector()  # start-up, like loading the model: not in the timed run
        # The tracker's compiled kernels load now too, before the progress bar starts: when
        # they must compile (install.sh does that once), it is said, not a bar stuck at 1/N.
        warm_up(on_compile=lambda: _notify(COMPILING_MESSAGE, progress))
    except BaseException:
        source.close()
        raise
    startup_s = time.perf_counter() - startup
    _notify(f"ready in {startup_s:.1f} s; counting {info.width}x{info.height} frames", progress)
    reports = ReportWriter(outdir, processor.analytics, config.model.classes, config.reports)
    annotated = _open_video(outdir, config, processor.lanes, info.fps,
                            (info.width, info.height))
    sink_errors: list[str] = []  # an output that failed alone: said in summary.json
    outputs = FanOut(stream.id, (reports, *([annotated] if annotated else [])),
                     functools.partial(_output_failed, reports, sink_errors))

    frames, status, message, last_pts = 0, "complete", None, 0.0
    total = info.frame_count if max_frames is None else min(info.frame_count or max_frames,
                                                             max_frames)
    bar: tqdm | None = None  # made at the first frame: its rate and ETA leave start-up out
    started = time.perf_counter()
    cpu_started, main_cpu_started = time.process_time(), time.thread_time()
    pending_error: BaseException | None = None
    try:
        for step in pipelined_steps(_limited(source.frames(), max_frames), detector,
                                    processor.plan):
            frame = step.frame
            result = processor.update(frame, step.detections, step.detect_s)
            outputs.on_result(result)  # a failing video is dropped; counting goes on
            frames += 1
            last_pts = frame.pts_s
            if bar is None:
                bar = tqdm(total=total, unit="frame", disable=not progress, desc=stream.id,
                           dynamic_ncols=True)
            bar.update()
    except TruncatedVideoError as err:
        status, message, pending_error = "truncated", str(err), err
    except SourceError as err:
        status, message, pending_error = "failed", str(err), err
    except KeyboardInterrupt as err:
        status, message, pending_error = "interrupted", "interrupted by the user", err
    except Exception as err:  # unexpected: still write the reports of every frame processed
        status, message, pending_error = "failed", f"{type(err).__name__}: {err}", err
    finally:
        if bar is not None:
            bar.close()
        source.close()
        elapsed = time.perf_counter() - started
        outputs.close()  # the video too after failing (its thread ends); events.jsonl closed
        message = message or next(iter(sink_errors), None)
        cpu = CpuUse(frames, time.process_time() - cpu_started, source.decoder_cpu.seconds,
                     time.thread_time() - main_cpu_started,
                     annotated.writer.encoder_cpu.seconds if annotated is not None else 0.0)
        summary = reports.finish(RunInfo(
            video=str(video), stream=stream.id, model=config.model.path, status=status,
            frames=frames, video_fps=info.fps,
            video_duration_s=last_pts + 1 / info.fps if frames else 0.0,
            elapsed_s=elapsed, startup_s=startup_s, message=message,
            start_time=start_time or info.creation_time,
            start_time_source=("given" if start_time else
                               "the video's creation_time" if info.creation_time else None),
            cpu_ms_per_frame=cpu.per_frame_ms() if frames else None))
    if pending_error is not None:
        if isinstance(pending_error, SourceError) and frames:
            raise type(pending_error)(
                f"{pending_error} (reports in {outdir} cover the {frames} frames processed)"
            ) from None
        raise pending_error
    return ReviewResult(outdir, summary)


def _notify(message: str, progress: bool) -> None:
    """A start-up notice: on stderr beside the progress bar, else only to the log."""
    if progress:
        print(f"lanewatch: {message}", file=sys.stderr, flush=True)
    else:
        log.info("%s", message)


def _open_video(outdir: Path, config: Config, lanes: list[Lane], fps: float,
                frame_size: tuple[int, int]) -> AnnotatedVideo | None:
    """The annotated video, when the config asks for it and an encoder opens (if not, that
    is logged and the review goes on without it)."""
    out = config.output
    if not out.video:
        return None
    annotator = FrameAnnotator(lanes, out.trail_seconds, out.draw_masks, config.counting.anchor,
                               frame_size, out.video_width, out.speed_labels)
    try:
        writer = VideoWriter(outdir / VIDEO_FILE, fps, *annotator.output_size,
                             crf=out.video_crf, preset=out.video_preset,
                             encoder=out.video_encoder)
    except VideoWriteError as err:
        log.error("%s; continuing without the annotated video", err)
        return None
    return AnnotatedVideo(annotator, writer)


def _output_failed(reports: ReportWriter, errors: list[str], failure: SinkFailure) -> None:
    """An output failed (logged by the fan-out): its message goes into summary.json. The
    reports are the review itself: when they cannot take a frame the run ends, as on any
    unexpected error (status failed), and `finish` still writes what it can."""
    if failure.sink == reports.name and not failure.closing:
        raise failure.error
    errors.append(str(failure.error))


def _limited(frames: Iterator[Frame], max_frames: int | None) -> Iterator[Frame]:
    """The first `max_frames` frames (all when None)."""
    for count, frame in enumerate(frames):
        if max_frames is not None and count >= max_frames:
            return
        yield frame
