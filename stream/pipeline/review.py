"""Recorded-video review (`lanewatch process`): a video file in, counts and an annotated video out.

Runs as fast as the machine allows: decoding and video encoding run in their own threads while
the main thread detects, tracks, counts and draws. Whatever happens (a damaged file, Ctrl-C, a
failing video encoder) the reports are written for every frame processed.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from lanewatch.sinks.annotate import FrameAnnotator
from lanewatch.sinks.cpu_use import CpuUse
from lanewatch.sinks.errors import LanewatchError, SourceError, TruncatedVideoError
from lanewatch.sinks.frames import Frame
from lanewatch.sinks.reports import ReportWriter, RunInfo
from lanewatch.sinks.video import VideoWriteError, VideoWriter
from lanewatch.stream.config.schema import Config
from lanewatch.stream.detect.detector import Detector, detect_frames
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.pipeline.processor import StreamProcessor
from lanewatch.stream.sources.file_source import FileSource
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
) -> ReviewResult:
    """Process a video file with one configured stream's lanes; write the outputs to `outdir`.

    `max_frames` stops after that many frames (a quick look at a long video).
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
    try:
        detector = detector or create_detector(config.model)
        processor = StreamProcessor(stream, config, detector, (info.width, info.height), info.fps)
        processor.prepare_detector()  # start-up, like loading the model: not in the timed run
        # The tracker's compiled kernels load now too, before the progress bar starts: when
        # they must compile (install.sh does that once), it is said, not a bar stuck at 1/N.
        warm_up(on_compile=lambda: _notify(COMPILING_MESSAGE, progress))
    except BaseException:
        source.close()
        raise
    annotator = FrameAnnotator(processor.lanes, config.output.trail_seconds,
                               config.output.draw_masks, config.counting.anchor,
                               (info.width, info.height), config.output.video_width)
    reports = ReportWriter(outdir, processor.analytics, config.model.classes)
    writer = (_open_writer(outdir, config, info.fps, annotator.output_size)
              if config.output.video else None)

    frames, status, message, last_pts = 0, "complete", None, 0.0
    total = info.frame_count if max_frames is None else min(info.frame_count or max_frames,
                                                             max_frames)
    bar = tqdm(total=total, unit="frame", disable=not progress, desc=stream.id,
               dynamic_ncols=True)
    started = time.perf_counter()
    cpu_started, main_cpu_started = time.process_time(), time.thread_time()
    video_writer = writer  # `writer` is dropped if the video fails; this one is closed
    pending_error: BaseException | None = None
    try:
        for frame, detections in detect_frames(detector, _limited(source.frames(), max_frames),
                                               processor.plan):
            result = processor.update(frame, detections)
            reports.add(result.analytics)
            if writer is not None:
                try:
                    writer.write(annotator.annotate(result))
                except VideoWriteError as err:  # the video sink fails alone; counting goes on
                    log.error("%s; continuing without the annotated video", err)
                    message, writer = str(err), None
            frames += 1
            last_pts = frame.pts_s
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
        bar.close()
        source.close()
        elapsed = time.perf_counter() - started
        if video_writer is not None:  # closed even after failing: its thread ends
            try:
                video_writer.close()
            except VideoWriteError as err:
                if writer is not None:  # not reported yet
                    log.error("%s", err)
                    message = message or str(err)
        cpu = CpuUse(frames, time.process_time() - cpu_started, source.decoder_cpu.seconds,
                     time.thread_time() - main_cpu_started,
                     video_writer.encoder_cpu.seconds if video_writer is not None else 0.0)
        summary = reports.finish(RunInfo(
            video=str(video), stream=stream.id, model=config.model.path, status=status,
            frames=frames, video_fps=info.fps,
            video_duration_s=last_pts + 1 / info.fps if frames else 0.0,
            elapsed_s=elapsed, message=message,
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


def _open_writer(outdir: Path, config: Config, fps: float,
                 size: tuple[int, int]) -> VideoWriter | None:
    try:
        return VideoWriter(outdir / VIDEO_FILE, fps, *size,
                           crf=config.output.video_crf, preset=config.output.video_preset,
                           encoder=config.output.video_encoder)
    except VideoWriteError as err:
        log.error("%s; continuing without the annotated video", err)
        return None


def _limited(frames: Iterator[Frame], max_frames: int | None) -> Iterator[Frame]:
    """The first `max_frames` frames (all when None)."""
    for count, frame in enumerate(frames):
        if max_frames is not None and count >= max_frames:
            return
        yield frame
