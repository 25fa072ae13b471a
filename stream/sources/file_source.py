"""Video file source on PyAV: demux and decode in a thread, frames out with real timestamps.

The decode thread feeds a bounded queue and waits when it is full (files are lossless and
deterministic: no frame is ever dropped). Problems surface as `SourceError`s with a message that
says what is wrong with which file; a file that stops decoding part-way yields every good frame
and then raises `TruncatedVideoError`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import av

from lanewatch.sinks.cpu_use import ThreadCpuClock
from lanewatch.sinks.errors import SourceError, TruncatedVideoError
from lanewatch.sinks.frames import Frame, Picture

log = logging.getLogger(__name__)

_END = object()  # sentinel: the decoder finished normally


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its video stream."""

    width: int
    height: int
    fps: float
    frame_count: int | None  # declared by the container; None when unknown
    duration_s: float | None
    codec: str
    creation_time: datetime | None = None  # the container's creation_time tag (UTC), if any


def _creation_time(metadata: dict[str, str]) -> datetime | None:
    """The container's creation_time: when a camera or recorder wrote the file (for many
    recorders the recording's start); None when absent, unreadable or a zero date."""
    try:
        when = datetime.fromisoformat(metadata.get("creation_time", ""))
    except ValueError:
        return None
    if when.year < 1980:  # muxers write 1970-01-01 or 1904-01-01 for "unknown"
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise SourceError(f"video file not found: {path}")
    if not path.is_file():
        raise SourceError(f"not a file: {path}")
    if path.stat().st_size == 0:
        raise SourceError(f"video file is empty (0 bytes): {path}")
    try:
        return av.open(str(path), mode="r")
    except av.error.FFmpegError as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise SourceError(
            f"cannot read {path} as video ({reason}); is it a complete video file?"
        ) from None


class FileSource:
    """Frames of one video file, decoded in a background thread.

    Use as an iterator (`for frame in source.frames()`) and call `close()` (or use `with`) to
    stop the thread early.
    """

    def __init__(self, path: str | Path, stream_id: str = "video", queue_size: int = 8):
        self.path = Path(path)
        self.stream_id = stream_id
        self._container = _open(self.path)
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path} has no video stream")
        self._stream = self._container.streams.video[0]
        # Slice threading only: frame threading costs ~20% more CPU per frame, and the CPU is
        # the model's while reviewing; decoding in its own thread already overlaps inference.
        self._stream.thread_type = "SLICE"
        self.info = self._read_info()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_decoded = 0
        self.decoder_cpu = ThreadCpuClock()  # complete once the thread ended (close)

    def _read_info(self) -> VideoInfo:
        s = self._stream
        ctx = s.codec_context
        rate = s.average_rate or s.guessed_rate or s.base_rate
        fps = float(rate) if rate else 0.0
        if not ctx.width or not ctx.height:
            raise SourceError(f"{self.path}: the video stream has no frame size (corrupt header?)")
        if fps <= 0 or fps > 1000:
            log.warning("%s: container gives no usable frame rate; assuming 30 fps", self.path)
            fps = 30.0
        duration = float(s.duration * s.time_base) if s.duration and s.time_base else None
        return VideoInfo(ctx.width, ctx.height, fps, s.frames or None, duration, ctx.name,
                         _creation_time(self._container.metadata))

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def frames(self) -> Iterator[Frame]:
        """Decoded frames in order; raises SourceError subclasses on failure."""
        if self._thread is not None:
            raise RuntimeError("frames() can be iterated only once per source")
        self._thread = threading.Thread(target=self._decode, name=f"decode-{self.stream_id}",
                                        daemon=True)
        self._thread.start()
        try:
            while True:
                item = self._queue.get()
                if item is _END:
                    break
                if isinstance(item, Exception):
                    raise item
                yield item
        finally:
            self.close()
        if self.frames_decoded == 0:
            raise SourceError(f"{self.path} contains no decodable video frames")
        declared = self.info.frame_count
        # Containers round their declared count; a shortfall of a few percent is a real cut.
        if declared and self.frames_decoded < declared * 0.97 - 1:
            raise TruncatedVideoError(
                f"{self.path} is truncated: decoded {self.frames_decoded} of {declared} frames "
                f"declared by the container"
            )

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self) -> None:
        with self.decoder_cpu:
            self._decode_all()

    def _decode_all(self) -> None:
        s = self._stream
        start = s.start_time if s.start_time is not None else 0
        index = 0
        try:
            for packet in self._container.demux(s):
                for vf in packet.decode():
                    if vf.pts is not None and s.time_base:
                        pts_s = float((vf.pts - start) * s.time_base)
                    else:
                        pts_s = index / self.info.fps
                    frame = Frame(self.stream_id, index, pts_s, time.time(),
                                  Picture.from_video_frame(vf))
                    if not self._put(frame):
                        return
                    index += 1
                    self.frames_decoded = index
        except av.error.FFmpegError as err:
            reason = getattr(err, "strerror", None) or str(err)
            if index == 0:
                self._put(SourceError(f"cannot decode {self.path}: {reason}"))
            else:
                self._put(TruncatedVideoError(
                    f"{self.path} is damaged: decoding failed after frame {index - 1} "
                    f"({index / self.info.fps:.1f} s): {reason}"))
            return
        except Exception as err:  # never leave the consumer waiting for ever
            self._put(SourceError(f"decoding {self.path} failed: {err!r}"))
            return
        self._put(_END)

    def close(self) -> None:
        """Stop decoding and release the file (safe to call twice)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            # Unblock a producer waiting on a full queue, then wait briefly for it to exit.
            while not self._queue.empty():
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._thread.join(timeout=5)
        try:
            self._container.close()
        except Exception:  # closing twice or after an error: nothing left to release
            pass
