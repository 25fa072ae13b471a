"""YOLO's input and output in NumPy and OpenCV, computed as Ultralytics computes them: the
letterbox placement of a frame in the model's input, class-aware NMS's building block, and
instance masks from the prototype masks. Used by the OpenVINO backend; the tests compare
the results with Ultralytics' own on the real models.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from lanewatch.sinks.frames import Image, Picture, as_picture

PAD_VALUE = 114  # Ultralytics' letterbox grey


def minimal_size(frame_wh: tuple[int, int], size: tuple[int, int], stride: int
                 ) -> tuple[int, int]:
    """The smallest (h, w) a frame of `frame_wh` letterboxes into within `size` (h, w): its
    own aspect ratio, padded only to the next multiple of `stride`."""
    w, h = frame_wh
    gain = min(size[0] / h, size[1] / w)
    new_w, new_h = round(w * gain), round(h * gain)
    return new_h + (size[0] - new_h) % stride, new_w + (size[1] - new_w) % stride


@dataclass(frozen=True)
class Placement:
    """Where a frame goes in the model's letterboxed input, and so how boxes map back."""

    input_hw: tuple[int, int]  # the letterboxed input, (h, w)
    gain: float  # input pixels per frame pixel
    left: int  # grey columns before the frame
    top: int  # grey rows above it
    width: int  # the frame's size in the input
    height: int
    frame_hw: tuple[int, int]  # the frame's own (h, w)

    def fill(self, picture: Picture, out: np.ndarray) -> np.ndarray:
        """Write the letterboxed frame into `out` ((h, w, 3) uint8 of `input_hw`: an
        inference request's own input buffer): the frame resized into its place, grey
        around it. Nothing is allocated at the input's size."""
        top, bottom, left, right = (self.top, self.top + self.height, self.left,
                                    self.left + self.width)
        out[:top] = PAD_VALUE
        out[bottom:] = PAD_VALUE
        out[top:bottom, :left] = PAD_VALUE
        out[top:bottom, right:] = PAD_VALUE
        picture.resized(self.width, self.height, out=out[top:bottom, left:right])
        return out


def place(frame_wh: tuple[int, int], size: tuple[int, int], stride: int,
          minimal: bool) -> Placement:
    """The letterbox of a frame of `frame_wh` in `size` (h, w), keeping its aspect ratio;
    padded to all of `size`, or only to the next multiple of `stride` when `minimal`."""
    w, h = frame_wh
    gain = min(size[0] / h, size[1] / w)
    if minimal:
        size = minimal_size((w, h), size, stride)
    new_w, new_h = round(w * gain), round(h * gain)
    dw, dh = (size[1] - new_w) / 2, (size[0] - new_h) / 2
    return Placement((int(size[0]), int(size[1])), gain, round(dw - 0.1), round(dh - 0.1),
                     new_w, new_h, (h, w))


def letterbox(image: Image, size: tuple[int, int], stride: int,
              minimal: bool) -> tuple[np.ndarray, float, tuple[int, int]]:
    """Resize keeping the aspect ratio and pad with grey to `size` (h, w), or only to the
    next multiple of `stride` when `minimal`; returns (BGR image, gain, (left, top) padding).
    A frame's Picture is resized from its decoder planes (see sinks/frames.py)."""
    picture = as_picture(image)
    placement = place(picture.size, size, stride, minimal)
    out = placement.fill(picture, np.empty((*placement.input_hw, 3), np.uint8))
    return out, placement.gain, (placement.left, placement.top)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression of (N, 4) xyxy boxes; indices kept, best score first.
    A box goes when its IoU with a kept, better one exceeds `iou_threshold`. OpenCV's
    (10x faster than the NumPy loop it replaced, same boxes kept)."""
    if len(boxes) == 0:
        return np.zeros(0, np.int64)
    xywh = np.asarray(boxes, np.float64).copy()
    xywh[:, 2:] -= xywh[:, :2]
    kept = cv2.dnn.NMSBoxes(xywh, np.asarray(scores, np.float32), 0.0, iou_threshold)
    return np.asarray(kept, np.int64).reshape(-1)


def instance_masks(coefficients: np.ndarray, proto: np.ndarray, boxes: np.ndarray,
           image_hw: tuple[int, int]) -> np.ndarray:
    """Instance masks at frame resolution (Ultralytics' retina masks)."""
    h, w = image_hw
    if len(coefficients) == 0:
        return np.zeros((0, h, w), bool)
    channels, mh, mw = proto.shape
    logits = (coefficients @ proto.reshape(channels, -1)).reshape(-1, mh, mw)
    gain = min(mh / h, mw / w)  # the frame inside the prototype grid (without padding)
    pad_w, pad_h = (mw - w * gain) / 2, (mh - h * gain) / 2
    top, left = int(round(pad_h - 0.1)), int(round(pad_w - 0.1))
    bottom, right = int(round(mh - pad_h + 0.1)), int(round(mw - pad_w + 0.1))
    ys, xs = np.arange(h)[:, None], np.arange(w)[None, :]
    out = np.empty((len(logits), h, w), bool)
    for i, m in enumerate(logits):
        full = cv2.resize(m[top:bottom, left:right], (w, h), interpolation=cv2.INTER_LINEAR)
        x1, y1, x2, y2 = boxes[i]
        out[i] = (full > 0) & (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
    return out
