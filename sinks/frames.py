"""The frame type that flows from sources into the pipeline, and its pixels.

Decoders give planar YUV 4:2:0; the pipeline needs BGR in two sizes: the model's small input
on every detected frame, full size only to draw (the annotated video, a watched dashboard).
Converting a 720p frame to BGR costs about 1 ms of CPU, the CPU the model is bound by, so a
`Picture` keeps the decoder's planes and makes each size when it is first asked for: the
model's input straight from the planes at its own size (a quarter of the pixels), and full
BGR only if something draws. A live frame dropped for a newer one is never converted.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Formats whose planes OpenCV converts as FFmpeg does (limited-range BT.601 4:2:0); anything
# else (full range, 4:2:2, RGB, grey) is converted to BGR by FFmpeg at decode time.
_PLANAR_FORMATS = frozenset({"yuv420p"})


def _yuv_to_bgr_matrix() -> np.ndarray:
    """(B, G, R) = M @ (Y, U, V, 1) for limited-range BT.601, as OpenCV's COLOR_YUV2BGR_I420."""
    ky, kb, kr = 255 / 219, 255 / 224 * 1.772, 255 / 224 * 1.402
    kgb, kgr = kb * 0.114 / 0.587, kr * 0.299 / 0.587
    return np.array([[ky, kb, 0, -16 * ky - 128 * kb],
                     [ky, -kgb, -kgr, -16 * ky + 128 * (kgb + kgr)],
                     [ky, 0, kr, -16 * ky - 128 * kr]], np.float32)


_YUV_TO_BGR = _yuv_to_bgr_matrix()


class Picture:
    """One frame's pixels: BGR, or the decoder's I420 planes until BGR is asked for.

    Planes from the decoder are its own buffers, not copied (`from_video_frame`): the model's
    input is made from them, and a crop is a view of them. Immutable from the outside; the
    full-size BGR conversion is cached (two threads asking at once may both convert: the same
    result, so no lock is needed).
    """

    def __init__(self, bgr: np.ndarray | None = None, i420: np.ndarray | None = None,
                 planes: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
        if sum(x is not None for x in (bgr, i420, planes)) != 1:
            raise ValueError("a Picture needs either BGR pixels or I420 planes")
        self._bgr = bgr
        self._i420 = i420  # (H * 3 / 2, W) uint8: Y, then U and V at half size, contiguous
        if i420 is not None:
            h, w = i420.shape[0] * 2 // 3, i420.shape[1]
            planes = (i420[:h], *i420[h:].reshape(2, h // 2, w // 2))
        self._planes = planes  # Y (H, W), U and V (H / 2, W / 2): views, maybe strided
        if bgr is not None:
            self.height, self.width = bgr.shape[:2]
        else:
            self.height, self.width = planes[0].shape

    @classmethod
    def from_video_frame(cls, frame) -> Picture:
        """The pixels of a decoded PyAV frame: views of its planes when OpenCV can convert
        them (no copy: the views keep the frame's buffers alive, and the decoder never
        writes into a buffer that is still referenced), else BGR converted by FFmpeg."""
        if (frame.format.name in _PLANAR_FORMATS and frame.width % 2 == 0
                and frame.height % 2 == 0):
            return cls(planes=tuple(_plane_view(plane) for plane in frame.planes[:3]))
        return cls(bgr=frame.to_ndarray(format="bgr24"))

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.width, self.height

    def _contiguous_i420(self) -> np.ndarray:
        """The planes in one (H * 3 / 2, W) buffer, as OpenCV's I420 conversion takes them."""
        if self._i420 is None:
            h, w = self.height, self.width
            i420 = np.empty((h * 3 // 2, w), np.uint8)
            i420[:h] = self._planes[0]
            i420[h:].reshape(2, h // 2, w // 2)[:] = self._planes[1:]
            self._i420 = i420
        return self._i420

    @property
    def bgr(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR at full size (converted on first use)."""
        if self._bgr is None:
            self._bgr = cv2.cvtColor(self._contiguous_i420(), cv2.COLOR_YUV2BGR_I420)
        return self._bgr

    def drawable(self) -> np.ndarray:
        """Full-size BGR the caller may draw on: a fresh conversion when nothing has asked
        for BGR yet (no extra copy), else a copy of the cached pixels."""
        if self._bgr is None:
            return cv2.cvtColor(self._contiguous_i420(), cv2.COLOR_YUV2BGR_I420)
        return self._bgr.copy()

    def resized(self, width: int, height: int, interpolation: int = cv2.INTER_LINEAR,
                out: np.ndarray | None = None) -> np.ndarray:
        """BGR at (width, height), resized with OpenCV's `interpolation`; written into `out`
        ((height, width, 3) uint8, a view of a larger buffer too) when given, and returned.
        A smaller picture is made from the planes when there is no full-size BGR yet: luma
        and chroma resized to the target, then converted (0.4 ms instead of 0.9 for 720p to
        640x360; 99% of values within 1 grey level of converting first: resizing and the
        linear conversion commute, up to rounding)."""
        if self._bgr is not None or width >= self.width or height >= self.height:
            bgr = self.bgr
            if (width, height) == (self.width, self.height):
                if out is None:
                    return bgr
                out[...] = bgr
                return out
            return _written(cv2.resize(bgr, (width, height), dst=out,
                                       interpolation=interpolation), out)
        yuv = cv2.merge([p if p.shape == (height, width) else
                         cv2.resize(p, (width, height), interpolation=interpolation)
                         for p in self._planes])
        return _written(cv2.transform(yuv, _YUV_TO_BGR, dst=out), out)

    def cropped(self, x1: int, y1: int, x2: int, y2: int) -> Picture:
        """The pixels of columns x1..x2-1, rows y1..y2-1. Views of the planes when the
        corners are even (nothing converted or copied; stream/detect/detection_plan.py aligns its
        regions so), else cut from the BGR pixels."""
        if self._bgr is not None or (x1 | y1 | x2 | y2) % 2:
            return Picture(bgr=self.bgr[y1:y2, x1:x2])
        y, u, v = self._planes
        return Picture(planes=(y[y1:y2, x1:x2], u[y1 // 2:y2 // 2, x1 // 2:x2 // 2],
                               v[y1 // 2:y2 // 2, x1 // 2:x2 // 2]))


def _plane_view(plane) -> np.ndarray:
    """A decoded frame's plane as a (height, width) uint8 view of its buffer (rows may be
    padded: `line_size` bytes apart)."""
    rows = np.frombuffer(plane, np.uint8)[:plane.height * plane.line_size]
    return rows.reshape(plane.height, plane.line_size)[:, :plane.width]


def _written(result: np.ndarray, out: np.ndarray | None) -> np.ndarray:
    """OpenCV's result, in `out` when one was given. OpenCV writes into a `dst` of the right
    shape and type, strided views included; should it ever allocate instead, copy."""
    if out is not None and result is not out:
        out[...] = result
        return out
    return result


Image = np.ndarray | Picture  # what detectors take: BGR pixels, or a frame's Picture


def as_picture(image: Image) -> Picture:
    """A Picture of BGR pixels, or the Picture itself."""
    return image if isinstance(image, Picture) else Picture(bgr=image)


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes:
        stream_id: the configured stream it belongs to.
        index: 0-based decode order within the stream.
        pts_s: presentation time in seconds from the start of the stream.
        wall_time: time.time() when the frame was captured/decoded.
        picture: its pixels (`image` is them as BGR).
    """

    stream_id: str
    index: int
    pts_s: float
    wall_time: float
    picture: Picture

    @classmethod
    def of_image(cls, stream_id: str, index: int, pts_s: float, wall_time: float,
                 image: np.ndarray) -> Frame:
        """A frame of (H, W, 3) uint8 BGR pixels."""
        return cls(stream_id, index, pts_s, wall_time, Picture(bgr=image))

    @property
    def image(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR pixels at full size."""
        return self.picture.bgr

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.picture.size
