"""JPEGs of a recorded video's frames by index, for the manual-counting page.

One `FrameReader` decodes on one worker thread, so requests are served in the order they
arrive (a player asking for n+1, n+2, n+3 gets them decoded in one forward pass) and the
event loop never waits for a decoder. A small LRU keeps the encoded frames around the
current one: stepping back re-reads them from memory instead of seeking.

Playback faster than the box can decode, convert, encode and the browser can show at full
size asks for `reduced` frames: half the width and height (a quarter of the pixels to
convert, encode, send and draw), while every frame stepped to is full size.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import cv2

from lanewatch.stream.sources.frame_reader import DecodedFrame, FrameReader

JPEG_QUALITY = 88  # vehicles' outlines stay sharp at the lines; ~200 KB a 720p frame
CACHE_FRAMES = 160  # encoded frames kept (~35 MB at 720p, ~65 MB at 1080p)
BACKFILL_FRAMES = 24  # after a seek, the frames just before the target are kept too
AHEAD_FRAMES = 8  # a forward jump this short keeps the frames it decoded on the way
MIN_REDUCED_WIDTH = 480  # smaller videos are served full size even when reduced is asked


@dataclass(frozen=True)
class FrameJpeg:
    """One encoded frame and its time."""

    index: int
    time_s: float
    jpeg: bytes
    reduced: bool  # half size


class FrameServer:
    """Encoded frames of one video by index; `close()` when done."""

    def __init__(self, reader: FrameReader):
        self.reader = reader
        self._cache: OrderedDict[tuple[int, bool], FrameJpeg] = OrderedDict()
        self._lock = threading.Lock()  # the cache: read on the loop, filled by the worker
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frames")
        self._last = -1  # the index last asked for
        width, height = reader.info.width, reader.info.height
        # Even sizes: 4:2:0 chroma and JPEG blocks stay aligned.
        self.reduced_size = ((width // 4 * 2, height // 4 * 2)
                             if width // 2 >= MIN_REDUCED_WIDTH else None)

    def __len__(self) -> int:
        return len(self.reader)

    async def jpeg(self, index: int, reduced: bool = False) -> FrameJpeg:
        """Frame `index` as a JPEG (`reduced`: half size, when the video is large enough);
        IndexError past either end, SourceError on a bad file."""
        if not 0 <= index < len(self.reader):
            raise IndexError(index)
        reduced = reduced and self.reduced_size is not None
        cached = self._cached((index, reduced))
        if cached is not None:
            return cached
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, self.encode, index, reduced)

    def encode(self, index: int, reduced: bool = False) -> FrameJpeg:
        """Frame `index` as a JPEG, decoding it if it is not cached (blocking)."""
        reduced = reduced and self.reduced_size is not None
        cached = self._cached((index, reduced))  # asked for twice before the first was done
        if cached is not None:
            return cached
        backwards = index < self._last
        self._last = index
        # Stepping back: keep the frames before the target (decoded anyway after the seek);
        # a short jump forward: keep the ones it passes (the player asks for them next).
        passed_from = index - BACKFILL_FRAMES if backwards else index - AHEAD_FRAMES
        def store(frame: DecodedFrame) -> FrameJpeg:
            return self._store(frame, reduced)

        frame = self.reader.read(index, store, max(passed_from, 0),
                                 self.reduced_size if reduced else None)
        return store(frame)

    def _store(self, frame: DecodedFrame, reduced: bool) -> FrameJpeg:
        ok, data = cv2.imencode(".jpg", frame.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"JPEG encoding of frame {frame.index} failed")
        encoded = FrameJpeg(frame.index, frame.time_s, data.tobytes(), reduced)
        key = (frame.index, reduced)
        with self._lock:
            self._cache[key] = encoded
            self._cache.move_to_end(key)
            while len(self._cache) > CACHE_FRAMES:
                self._cache.popitem(last=False)
        return encoded

    def _cached(self, key: tuple[int, bool]) -> FrameJpeg | None:
        with self._lock:
            found = self._cache.get(key)
            if found is not None:
                self._cache.move_to_end(key)
            return found

    def close(self) -> None:
        """Stop the worker (after the frame it is on) and release the file."""
        self._worker.shutdown(wait=True, cancel_futures=True)
        self.reader.close()
