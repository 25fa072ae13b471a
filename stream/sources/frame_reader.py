"""Random access to the frames of a video file by index, for the manual-counting tool.

Frame n is the n-th frame the decoder outputs, numbered exactly as `FileSource` numbers the
frames `lanewatch process` reads, and its time is the same presentation time
(`(pts - start) x time_base`), so a count made by hand on frame n lines up with the review's
events of frame n.

The frame table (each frame's pts, and where the keyframes are) comes from one pass over the
packets without decoding: with one frame per packet (H.264, HEVC, VP9, MPEG-4 ...), the
packets' presentation times sorted are the decoder's output order. When a packet has no pts
(some AVI and raw streams), the table is built by decoding the whole file once instead; when
the frames have no pts either (a raw .h264 stream), frame n is the n-th decoded and its time
n / fps, as `FileSource` numbers and times them, and any step back decodes from the start.

Reading is cheap in order: the decoder stays where the last read left it and decodes forward.
Any other frame costs a seek to the keyframe before it and a decode forward from there
(`read` decodes at most one group of pictures).
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from lanewatch.sinks.errors import SourceError
from lanewatch.stream.sources.file_source import FileSource, VideoInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrameTable:
    """Every frame's presentation time, in decoder output order."""

    pts: tuple[int, ...]  # stream time-base units, ascending
    keyframe_pts: tuple[int, ...]  # pts of the frames a seek can land on, ascending
    start: int  # the stream's start time (pts of its origin)
    time_base: Fraction  # exact, as FileSource multiplies it: the same float times
    fps: float | None = None  # set when the frames have no pts: pts are then the indices

    def __len__(self) -> int:
        return len(self.pts)

    @property
    def counted(self) -> bool:
        """No timestamps: frames are known only by counting them from the start."""
        return self.fps is not None

    def time_s(self, index: int) -> float:
        """Seconds from the start of the video to frame `index` (as `FileSource` gives it)."""
        if self.fps is not None:
            return index / self.fps
        return float((self.pts[index] - self.start) * self.time_base)


@dataclass(frozen=True)
class DecodedFrame:
    """One frame read by index: its pixels (BGR) and presentation time."""

    index: int
    time_s: float
    image: np.ndarray  # (H, W, 3) uint8 BGR


def _table_from_packets(container, stream) -> FrameTable | None:
    pts, keys = [], []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue  # the demuxer's end-of-stream marker
        if packet.pts is None:
            return None
        pts.append(packet.pts)
        if packet.is_keyframe:
            keys.append(packet.pts)
    return _table(pts, keys, stream)


def _table_from_decoding(container, stream, fps: float) -> FrameTable:
    pts, keys, count = [], [], 0
    for frame in container.decode(stream):
        count += 1
        if frame.pts is None:
            continue
        pts.append(frame.pts)
        if frame.key_frame:
            keys.append(frame.pts)
    if len(pts) < count:  # frames without timestamps: counted from the start
        return FrameTable(tuple(range(count)), (0,), 0, Fraction(1), fps)
    return _table(pts, keys, stream)


def _table(pts: list[int], keys: list[int], stream) -> FrameTable:
    start = stream.start_time if stream.start_time is not None else 0
    ordered = sorted(pts)
    keyframes = sorted(set(keys)) or ordered[:1]
    return FrameTable(tuple(ordered), tuple(keyframes), start, Fraction(stream.time_base or 0))


class FrameReader:
    """Frames of one video file by index (not thread-safe: one caller at a time).

    `on_passed(frame)` is given the frames from `passed_from` on that are decoded on the way
    to the one asked for, so a caller can keep those it will likely want next (stepping back
    after a seek) without converting every frame of the group of pictures."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with FileSource(self.path) as probe:  # the same checks and errors as `process`
            self.info: VideoInfo = probe.info
        try:
            self._open()
            table = _table_from_packets(self._container, self._stream)
            if table is None:
                log.warning("%s: packets without timestamps; indexing by decoding it once",
                            self.path)
                self._open()
                table = _table_from_decoding(self._container, self._stream, self.info.fps)
        except av.error.FFmpegError as err:
            reason = getattr(err, "strerror", None) or str(err)
            raise SourceError(f"cannot index the frames of {self.path}: {reason}") from None
        if not table.pts:
            raise SourceError(f"{self.path} contains no video frames")
        if not table.time_base:
            raise SourceError(f"{self.path}: the video stream has no time base")
        self._frames: Iterator | None = None  # the decoder, positioned after `_position`
        self._position = -1  # index of the last frame the decoder gave
        self.table = table if table.counted else self._from_first_decoded(table)
        self._index_of = {p: i for i, p in enumerate(self.table.pts)}
        if self._frames is not None:
            self._position = 0  # the first frame was just decoded

    def _from_first_decoded(self, table: FrameTable) -> FrameTable:
        """The table from the first frame the decoder gives on: a file cut inside an open
        group of pictures starts with frames that need the one before the cut, which the
        decoder drops (and FileSource never counts)."""
        self._open()
        frames = iter(self._container.decode(self._stream))
        try:
            first = next(frames, None)
        except av.error.FFmpegError:
            return table  # read() will say what is wrong, at that frame
        if first is None or first.pts not in table.pts:
            return table
        self._frames = frames
        k = table.pts.index(first.pts)
        if k:
            log.info("%s: %d frame(s) before the first decodable one left out", self.path, k)
        return FrameTable(table.pts[k:], tuple(p for p in table.keyframe_pts if p >= first.pts)
                          or (first.pts,), table.start, table.time_base)

    def __len__(self) -> int:
        return len(self.table)

    def _open(self) -> None:
        """(Re)open the file, positioned at its start."""
        if getattr(self, "_container", None) is not None:
            self._container.close()
        self._container = av.open(str(self.path))
        self._stream = self._container.streams.video[0]
        self._stream.thread_type = "SLICE"  # no frame-threading delay after a seek

    def close(self) -> None:
        """Release the file (safe to call twice)."""
        self._frames = None
        try:
            self._container.close()
        except Exception:  # closed already: nothing left to release
            pass

    def read(self, index: int, on_passed: Callable[[DecodedFrame], None] | None = None,
             passed_from: int = 0, size: tuple[int, int] | None = None) -> DecodedFrame:
        """Frame `index` (0-based), scaled to `size` (width, height) if given. IndexError past
        either end; SourceError when the file cannot be decoded there."""
        if not 0 <= index < len(self.table):
            raise IndexError(index)
        if not self._can_decode_forward_to(index):
            self._seek_before(index)
        for attempt in range(2):
            found = self._decode_forward_to(index, on_passed, passed_from, size)
            if found is not None:
                return found
            # The seek landed past the frame (an inexact index): start from the beginning.
            log.debug("%s: seek missed frame %d (attempt %d)", self.path, index, attempt)
            self._seek_to_pts(None)
        raise SourceError(f"{self.path}: cannot decode frame {index}")

    def _can_decode_forward_to(self, index: int) -> bool:
        if self._frames is None or index <= self._position:
            return False
        if self.table.counted:
            return True  # no keyframe to seek to: only the start
        # A keyframe between here and there: seeking to it decodes less.
        target_key = bisect.bisect_right(self.table.keyframe_pts, self.table.pts[index]) - 1
        here_key = bisect.bisect_right(self.table.keyframe_pts,
                                       self.table.pts[self._position]) - 1
        return target_key <= here_key

    def _seek_before(self, index: int) -> None:
        if self.table.counted:
            self._seek_to_pts(None)
            return
        pts = self.table.pts[index]
        k = bisect.bisect_right(self.table.keyframe_pts, pts) - 1
        self._seek_to_pts(self.table.keyframe_pts[k] if k > 0 else None)

    def _seek_to_pts(self, pts: int | None) -> None:
        # PyAV flushes the decoder on seek. None: the very start (a seek to 0 can land after
        # leading frames whose pts are negative).
        if pts is None:
            try:
                self._container.seek(0, backward=True, stream=self._stream)
            except av.error.FFmpegError:  # not seekable (a raw stream): start it again
                self._open()
        else:
            try:
                self._container.seek(pts, backward=True, any_frame=False, stream=self._stream)
            except av.error.FFmpegError:  # a container that cannot seek: from the start
                self._seek_to_pts(None)
                return
        self._frames = iter(self._container.decode(self._stream))
        self._position = -1

    def _decode_forward_to(self, index: int,
                           on_passed: Callable[[DecodedFrame], None] | None,
                           passed_from: int, size: tuple[int, int] | None
                           ) -> DecodedFrame | None:
        try:
            for vf in self._frames:
                n = self._position + 1 if self.table.counted else self._index_of.get(vf.pts)
                if n is None:
                    continue  # not in the table (a frame the decoder drops on a full pass)
                self._position = n
                if n > index:
                    return None
                if n == index or (on_passed is not None and n >= passed_from):
                    if size is not None:  # scaled and converted in one pass
                        vf = vf.reformat(width=size[0], height=size[1], format="bgr24")
                    frame = DecodedFrame(n, self.table.time_s(n),
                                         vf.to_ndarray(format="bgr24"))
                    if n == index:
                        return frame
                    on_passed(frame)
        except av.error.FFmpegError as err:
            self._frames = None
            reason = getattr(err, "strerror", None) or str(err)
            raise SourceError(f"{self.path}: decoding failed near frame {index}: {reason}"
                              ) from None
        self._frames = None  # at the end of the file
        return None
