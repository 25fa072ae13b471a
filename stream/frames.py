"""The frame type that flows from sources into the pipeline."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame.

    Attributes:
        stream_id: the configured stream it belongs to.
        index: 0-based decode order within the stream.
        pts_s: presentation time in seconds from the start of the stream.
        wall_time: time.time() when the frame was captured/decoded.
        image: (H, W, 3) uint8 BGR pixels.
    """

    stream_id: str
    index: int
    pts_s: float
    wall_time: float
    image: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.image.shape[1], self.image.shape[0]
