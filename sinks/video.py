"""H.264 video file writer on PyAV, encoding in its own thread.

Frames are queued (bounded; the producer waits, so no frame is lost) and encoded by a worker
thread, overlapping encoding with inference. An encoder failure is kept and re-raised as
`VideoWriteError` at the next `write` or at `close`. `AnnotatedVideo` is the video as a sink
(sinks/sink.py): the error is a `SinkFailed`, so the fan-out drops the video and the counting
goes on.

The encoder is x264 on the CPU, or a hardware encoder of PyAV's FFmpeg (NVIDIA NVENC, Intel
Quick Sync) that takes the encoding off the cores the model needs. A hardware encoder is opened
once at start-up to see whether this machine has it; if not, the video is written with x264.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import cv2
import numpy as np

from lanewatch.sinks.cpu_use import ThreadCpuClock
from lanewatch.sinks.results import FrameResult
from lanewatch.sinks.sink import SinkFailed

if TYPE_CHECKING:
    from lanewatch.sinks.annotate import FrameAnnotator

_STOP = object()
HARDWARE_ENCODERS = ("h264_nvenc", "h264_qsv")  # tried in this order by `auto`
_PIXEL_FORMATS = {"h264_qsv": "nv12"}  # what each encoder takes (default yuv420p)

log = logging.getLogger(__name__)


class VideoWriteError(SinkFailed):
    """The annotated video could not be written (for good: the video sink is dropped)."""


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """Quality and speed options of an encoder (constant quality near x264's `crf`)."""
    if codec == "h264_nvenc":
        return {"preset": "p2", "rc": "vbr", "cq": str(crf)}
    if codec == "h264_qsv":
        return {"preset": "veryfast", "global_quality": str(crf)}
    return {"crf": str(crf), "preset": preset, "threads": str(x264_threads())}


def x264_threads(cores: int | None = None) -> int:
    """x264's threads: a quarter of the cores (one on a small box). Its default (1.5 per
    core) encodes a 720p frame faster but with 23-28% more CPU in total (superfast 11.8 ms
    against 9.1 ms, one thread), taken from the model on a box bound by the CPU; a single
    thread still encodes 100+ frames/s, and the encoder has its own thread."""
    return max(1, (cores or os.cpu_count() or 1) // 4)


def _opens(codec: str, width: int, height: int, rate: Fraction,
           options: dict[str, str]) -> str | None:
    """None if this machine can open the encoder, else why not."""
    try:
        context = av.CodecContext.create(codec, "w")
        context.width, context.height = width, height
        context.pix_fmt = _PIXEL_FORMATS.get(codec, "yuv420p")
        context.time_base, context.framerate = 1 / rate, rate
        context.options = options
        context.open()
        context.close()
        return None
    except Exception as err:  # noqa: BLE001 - FFmpeg errors, missing drivers, unknown codecs
        return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def choose_encoder(wanted: str, width: int, height: int, rate: Fraction, crf: int = 23,
                   preset: str = "superfast") -> str:
    """The encoder to use for `wanted` (auto, libx264 or a hardware encoder): a hardware
    encoder this machine cannot open falls back to libx264, saying why."""
    if wanted == "libx264":
        return "libx264"
    for codec in HARDWARE_ENCODERS if wanted == "auto" else (wanted,):
        reason = _opens(codec, width, height, rate, encoder_options(codec, crf, preset))
        if reason is None:
            log.info("annotated video: hardware encoder %s", codec)
            return codec
        (log.info if wanted == "auto" else log.warning)(
            "annotated video: %s cannot be used on this machine (%s); encoding with libx264 "
            "on the CPU instead", codec, reason)
    return "libx264"


class VideoWriter:
    """Writes BGR frames of a fixed size to an H.264 MP4 at a constant frame rate."""

    def __init__(self, path: Path, fps: float, width: int, height: int, crf: int = 23,
                 queue_size: int = 8, preset: str = "superfast", encoder: str = "libx264"):
        self.path = Path(path)
        # H.264 with yuv420p needs even dimensions; odd sizes are padded by one pixel.
        self.width, self.height = width + width % 2, height + height % 2
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self.codec = choose_encoder(encoder, self.width, self.height, rate, crf, preset)
            self._container = av.open(str(self.path), mode="w")
            self._time_base = 1 / rate  # one tick per frame: constant frame rate
            self._stream = self._container.add_stream(self.codec, rate=rate)
            self._stream.width, self._stream.height = self.width, self.height
            self._stream.pix_fmt = _PIXEL_FORMATS.get(self.codec, "yuv420p")
            self._stream.options = encoder_options(self.codec, crf, preset)
        except (av.error.FFmpegError, ValueError) as err:
            raise VideoWriteError(f"cannot create {self.path}: {err}") from None
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._error: Exception | None = None
        self.frames_written = 0
        self.encoder_cpu = ThreadCpuClock()  # complete after `close`
        self._thread = threading.Thread(target=self._run, name="video-writer", daemon=True)
        self._thread.start()

    def write(self, image: np.ndarray) -> None:
        """Queue one BGR frame (blocks while the queue is full)."""
        if self._error is not None:
            raise VideoWriteError(f"writing {self.path} failed: {self._error}")
        if image.shape[1] != self.width or image.shape[0] != self.height:
            image = np.pad(image, ((0, self.height - image.shape[0]),
                                   (0, self.width - image.shape[1]), (0, 0)))
        self._queue.put(image)

    def _run(self) -> None:
        with self.encoder_cpu:
            self._encode_all()

    def _encode_all(self) -> None:
        try:
            while (item := self._queue.get()) is not _STOP:
                # OpenCV's SIMD colour conversion costs a third of swscale's (which PyAV
                # would run inside encode) on the encoder thread's budget.
                frame = av.VideoFrame.from_ndarray(cv2.cvtColor(item, cv2.COLOR_BGR2YUV_I420),
                                                   format="yuv420p")
                if self._stream.pix_fmt != "yuv420p":
                    frame = frame.reformat(format=self._stream.pix_fmt)
                frame.pts = self.frames_written
                frame.time_base = self._time_base
                for packet in self._stream.encode(frame):
                    self._container.mux(packet)
                self.frames_written += 1
            for packet in self._stream.encode():
                self._container.mux(packet)
        except Exception as err:  # kept for the producer; drain so it never blocks
            self._error = err
            while self._queue.get() is not _STOP:
                pass

    def close(self) -> None:
        """Flush the encoder and finish the file; raises VideoWriteError on failure."""
        self._queue.put(_STOP)
        self._thread.join()
        try:
            self._container.close()
        except Exception as err:
            self._error = self._error or err
        if self._error is not None:
            raise VideoWriteError(f"writing {self.path} failed: {self._error}")


class AnnotatedVideo:
    """The annotated video as a sink: each result drawn by `annotator`, queued to `writer`.

    A frame that cannot be drawn ends the video too (`VideoWriteError`): a video that skipped
    it would run out of step with the counts it shows."""

    name = "video"

    def __init__(self, annotator: FrameAnnotator, writer: VideoWriter):
        self.annotator = annotator
        self.writer = writer

    def on_result(self, result: FrameResult) -> None:
        """Draw the frame and queue it for the encoder (waits while its queue is full)."""
        try:
            image = self.annotator.annotate(result)
        except Exception as err:
            raise VideoWriteError(f"cannot draw frame {result.frame.index} of "
                                  f"{self.writer.path}: {type(err).__name__}: {err}") from err
        self.writer.write(image)

    def close(self) -> None:
        """Finish the file (its encoder thread ends); raises VideoWriteError on failure."""
        self.writer.close()
