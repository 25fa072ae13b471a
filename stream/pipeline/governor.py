"""How the live streams of one process share the box: detection cadence and video shedding.

Every live stream processes every frame; what varies is how many of them the model sees. The
`CapacityGovernor` measures, per stream, what a detection costs (wall time, so contention for
the cores and a shared or batched model are included) and what the rest of a frame costs
(tracking, analytics, store, publishing), and from them predicts the share of real time a
stream's worker is busy at cadence N:

    load(N) = camera fps x (detection seconds / N + other seconds per frame)

It keeps one shared *level* L for the process: a stream at the fastest camera's rate detects
every Lth frame, a slower camera proportionally less often, so every stream gets the same
number of detections per second (fairness; a stream's own `every_nth_frame` is a floor).

The order in which work is shed when the box cannot keep up is explicit:
  1. the dashboard's live video (annotation and JPEG at a lower rate, down to 1 frame/s),
     which nobody's counts depend on;
  2. then the cadence rises, to the smallest level whose predicted load is under TARGET.
It is restored in the opposite order: the cadence first (counting matters more), then video.

Hysteresis: the cadence rises at once when a stream's predicted load passes 1 (it would fall
behind) or its queue, more than half a second beyond one detection, grew at three decisions in
a row at the current level; it falls only after `hold_s` without a change, only to a level
predicted under LOWER_BELOW, and at most halved. A lowering that has to be undone within two
holds was a failed probe: the hold doubles (up to `max_hold_s`), so a box at the edge of a
level does not oscillate.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

TARGET = 0.9  # predicted busy share a chosen cadence aims at
RAISE_ABOVE = 1.0  # predicted busy share at the current cadence that raises it at once
LOWER_BELOW = 0.8  # a lower cadence must be predicted under this
MIN_SAMPLES = 1  # detections measured (after the first) before a stream's load is predicted
DRAIN_S = 5.0  # a queue beyond one detection's time is planned to drain within this ...
MAX_DRAIN_SHARE = 0.1  # ... with at most this much of the target given to draining
GROWING_DECISIONS = 3  # a long queue growing at this many decisions in a row: falling behind
BACKLOG_HIGH_S = 0.5  # seconds of queued video beyond one detection's time: falling behind
VIDEO_STEPS = (1.0, 0.5, 0.25, 0.1)  # live video frame-rate scale, shed in this order
MAX_CADENCE = 30


@dataclass
class StreamLoad:
    """One stream's share, as the governor sees it (mutated under the governor's lock; the
    stream's worker reads `cadence`)."""

    stream_id: str
    fps: float
    min_cadence: int  # the stream's own every_nth_frame
    adaptive: bool  # false: always min_cadence
    cadence: int
    detect_s: deque[float] = field(default_factory=lambda: deque(maxlen=9))
    other_s: deque[float] = field(default_factory=lambda: deque(maxlen=31))
    backlog: int = 0
    backlog_before: int = 0  # at the previous decision
    growing: int = 0  # decisions in a row at which the queue was long and longer than before
    detections: int = 0

    def predicted(self, cadence: int) -> float | None:
        """Busy share of real time at this cadence (None until MIN_SAMPLES detections)."""
        if len(self.detect_s) < MIN_SAMPLES:
            return None
        # Medians: one slow frame (a store commit, a page fault) must not move the cadence.
        detect = statistics.median(self.detect_s)
        other = statistics.median(self.other_s) if self.other_s else 0.0
        return self.fps * (detect / cadence + other)

    def queued_s(self) -> float:
        """Seconds of video queued beyond what one detection explains."""
        detect = statistics.median(self.detect_s) if self.detect_s else 0.0
        return max(self.backlog / self.fps - detect, 0.0)

    def falling_behind(self) -> bool:
        """More than half a second queued beyond one detection, and longer at each of the
        last GROWING_DECISIONS decisions: the prediction was wrong. A queue that drains
        (after start-up or a load peak) raises nothing, nor does the jitter of a queue that
        fills during each detection and empties after it. Call once per decision."""
        long = self.queued_s() > BACKLOG_HIGH_S
        self.growing = self.growing + 1 if long and self.backlog > self.backlog_before else 0
        self.backlog_before = self.backlog
        return self.growing >= GROWING_DECISIONS


class CapacityGovernor:
    """Chooses every live stream's detection cadence and the live video's rate (module doc).

    Args:
        video_active: whether anyone watches live video now (shedding it frees nothing
            otherwise, so the cadence rises at once).
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(self, video_active: Callable[[], bool] | None = None, tick_s: float = 0.25,
                 hold_s: float = 2.0, max_hold_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic):
        self.video_active = video_active or (lambda: False)
        self.tick_s = tick_s
        self.base_hold_s = hold_s
        self.max_hold_s = max_hold_s
        self.clock = clock
        self.level = 1
        self.video_scale = 1.0
        self.hold_s = hold_s
        self._loads: dict[str, StreamLoad] = {}
        self._lock = threading.Lock()
        self._last_tick = clock()
        self._last_change = clock()
        self._last_lowered: float | None = None

    # -- streams ---------------------------------------------------------------------------
    def register(self, stream_id: str, fps: float, min_cadence: int = 1,
                 adaptive: bool = True) -> StreamLoad:
        """A stream joins with the current level (its fair share at once)."""
        with self._lock:
            load = StreamLoad(stream_id, fps, min_cadence, adaptive, min_cadence)
            self._loads[stream_id] = load
            self._apply()
            return load

    def unregister(self, load: StreamLoad) -> None:
        with self._lock:
            if self._loads.get(load.stream_id) is load:
                del self._loads[load.stream_id]

    # -- measurements ------------------------------------------------------------------------
    def report(self, load: StreamLoad, detect_s: float | None, other_s: float,
               backlog: int) -> None:
        """A stream finished a frame (`detect_s` None: the model did not see it)."""
        with self._lock:
            if detect_s is not None:
                load.detections += 1
                if load.detections > 1:  # the first one pays for warming caches up
                    load.detect_s.append(detect_s)
            load.other_s.append(other_s)
            load.backlog = backlog
            now = self.clock()
            if now - self._last_tick >= self.tick_s:
                self._last_tick = now
                self._decide(now)

    # -- decisions (under the lock) -----------------------------------------------------------
    def _cadence(self, load: StreamLoad, level: int) -> int:
        if not load.adaptive:
            return load.min_cadence
        reference = max((ld.fps for ld in self._loads.values() if ld.adaptive), default=load.fps)
        return min(max(load.min_cadence, math.ceil(level * load.fps / reference - 1e-9)),
                   MAX_CADENCE)

    def _worst(self, level: int) -> float:
        """The highest predicted load of any stream at this level."""
        loads = [ld.predicted(self._cadence(ld, level)) for ld in self._loads.values()]
        return max((x for x in loads if x is not None), default=0.0)

    def _lowest_level(self, start: int, under: float) -> int:
        """The smallest level from `start` up whose worst predicted load is under `under`."""
        level = start
        while level < MAX_CADENCE and self._worst(level) > under:
            level += 1
        return level

    def _decide(self, now: float) -> None:
        behind = any([ld.falling_behind() for ld in self._loads.values()])
        worst = self._worst(self.level)
        if behind or worst > RAISE_ABOVE:
            self._shed(now, urgent=behind and worst > RAISE_ABOVE or worst > 1.15)
        elif now - self._last_change >= self.hold_s:
            self._restore(now)

    def _shed(self, now: float, urgent: bool) -> None:
        if self.video_scale > VIDEO_STEPS[-1] and self.video_active():
            self.video_scale = VIDEO_STEPS[VIDEO_STEPS.index(self.video_scale) + 1]
            log.warning("box over capacity: live video at %.0f%% of its rate",
                        100 * self.video_scale)
            self._last_change = now
            if not urgent:
                return  # see whether that was enough before touching the counting
        if self.level >= MAX_CADENCE:
            return
        # A queue (start-up, a load peak) is drained within DRAIN_S: the target leaves room.
        queued = max((ld.queued_s() for ld in self._loads.values()), default=0.0)
        target = TARGET - min(queued / DRAIN_S, MAX_DRAIN_SHARE)
        level = max(self.level + 1, self._lowest_level(self.level + 1, target))
        if self._last_lowered is not None and now - self._last_lowered < 2 * self.hold_s:
            self.hold_s = min(2 * self.hold_s, self.max_hold_s)  # that lowering was a probe
        log.warning("box over capacity: detection cadence %d -> %d (predicted load %.2f)",
                    self.level, level, self._worst(self.level))

        self.level = level
        self._last_change = now
        self._apply()

    def _restore(self, now: float) -> None:
        if self._last_lowered is not None and now - self._last_lowered > 4 * self.hold_s:
            self.hold_s = self.base_hold_s  # the last lowering held: probes are cheap again
        if self.level > 1 and self._worst(self.level - 1) <= LOWER_BELOW:
            # At most halved: a detector shared by several streams slows down as they all
            # detect more often, which the per-stream prediction does not see.
            level = max(self._lowest_level(1, LOWER_BELOW), (self.level + 1) // 2)
            log.info("capacity to spare: detection cadence %d -> %d", self.level, level)
            self.level = level
            self._last_change = self._last_lowered = now
            self._apply()
        elif self.video_scale < 1.0 and self._worst(self.level) <= LOWER_BELOW:
            self.video_scale = VIDEO_STEPS[VIDEO_STEPS.index(self.video_scale) - 1]
            log.info("capacity to spare: live video at %.0f%% of its rate",
                     100 * self.video_scale)
            self._last_change = now

    def _apply(self) -> None:
        for load in self._loads.values():
            load.cadence = self._cadence(load, self.level)
            load.growing = 0  # a queue must be seen growing at the new level to count
