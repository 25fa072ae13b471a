"""The live scheduler's decisions, on a simulated clock (no model, no video): which cadence a
measured capacity gives, the shedding order (live video, then the cadence), hysteresis,
fairness between streams, and the counting-reliability verdict."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.sinks.frames import Frame, Picture
from lanewatch.stream.config.schema import DetectionSettings
from lanewatch.stream.pipeline.cadence import CadenceScheduler, GapMonitor
from lanewatch.stream.pipeline.governor import CapacityGovernor

FPS = 30.0


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def simulate(governor, clock, streams, seconds, detect_s, other_s=0.002, backlog=None):
    """Feed `streams` (StreamLoads) frames at FPS for `seconds`; `detect_s(level)` gives a
    detection's time. Returns the (level, video_scale) after each change."""
    changes = [(governor.level, governor.video_scale)]
    frames = int(seconds * FPS)
    for i in range(frames):
        clock.now += 1 / FPS
        for load in streams:
            detected = i % load.cadence == 0
            queued = 0 if backlog is None else backlog(i)
            governor.report(load, detect_s(governor.level) if detected else None, other_s,
                            queued)
        if (governor.level, governor.video_scale) != changes[-1]:
            changes.append((governor.level, governor.video_scale))
    return changes


# (seconds per detection, seconds of the rest per frame) -> the cadence the box settles at:
# the smallest N with 30 x (detect / N + other) <= 0.9
@pytest.mark.parametrize("detect_s,other_s,cadence", [
    (0.020, 0.002, 1),   # a fast box: every frame
    (0.035, 0.002, 2),   # the nano model on this CPU: just over capacity
    (2 / FPS, 0.002, 3),  # capacity 1/2 of the camera: every 3rd (every 2nd would fall behind)
    (3 / FPS, 0.002, 4),  # 1/3: 30 x (0.025 + 0.002) = 0.81
    (5 / FPS, 0.002, 6),  # 1/5
    (5 / FPS, 0.006, 7),  # 1/5 with the rest of the frame slower (a busy box)
    (0.5, 0.002, 18),
])
def test_cadence_settles_where_the_measured_capacity_allows(detect_s, other_s, cadence):
    clock = Clock()
    governor = CapacityGovernor(clock=clock)
    load = governor.register("cam", FPS)
    simulate(governor, clock, [load], 30, lambda level: detect_s, other_s)
    assert load.cadence == cadence
    assert FPS * (detect_s / cadence + other_s) <= 0.9


def test_live_video_is_shed_before_the_cadence_and_restored_after_it():
    clock = Clock()
    watched = [True]
    governor = CapacityGovernor(video_active=lambda: watched[0], clock=clock)
    load = governor.register("cam", FPS)
    # Slightly over capacity at every frame (30 x 0.034 = 1.02 < the urgent 1.15): video
    # first, one step per decision, down to its floor; then the cadence.
    over = simulate(governor, clock, [load], 1.2, lambda level: 0.032)
    assert over == [(1, 1.0), (1, 0.5), (1, 0.25), (1, 0.1), (2, 0.1)]
    # The load goes away: the cadence comes back first, then the video, a step per hold.
    under = simulate(governor, clock, [load], 40, lambda level: 0.005)
    assert under == [(2, 0.1), (1, 0.1), (1, 0.25), (1, 0.5), (1, 1.0)]


def test_an_urgent_overload_sheds_video_and_raises_the_cadence_at_once():
    clock = Clock()
    governor = CapacityGovernor(video_active=lambda: True, clock=clock)
    load = governor.register("cam", FPS)
    changes = simulate(governor, clock, [load], 2, lambda level: 0.1)
    assert changes[1] == (4, 0.5)  # 30 x (0.1 + 0.002) = 3: both in the first decision


def test_without_video_watchers_the_cadence_rises_at_once():
    clock = Clock()
    governor = CapacityGovernor(video_active=lambda: False, clock=clock)
    load = governor.register("cam", FPS)
    changes = simulate(governor, clock, [load], 2, lambda level: 0.032)
    assert changes[1] == (2, 1.0)


def test_streams_share_the_box_fairly_and_a_new_stream_takes_its_share():
    clock = Clock()
    governor = CapacityGovernor(clock=clock)
    # A shared model: each detection takes longer the more detections per second the whole
    # box runs (a single server of 20 ms per frame, queueing included roughly).
    loads = [governor.register(f"cam{k}", FPS) for k in range(2)]

    def contended(level):
        rate = sum(FPS / ld.cadence for ld in governor._loads.values())
        return 0.02 / max(1 - rate * 0.02, 0.05)

    simulate(governor, clock, loads, 20, contended)
    assert loads[0].cadence == loads[1].cadence
    before = loads[0].cadence
    loads += [governor.register(f"cam{k}", FPS) for k in range(2, 4)]
    assert loads[3].cadence == before  # joins at the shared level at once
    simulate(governor, clock, loads, 30, contended)
    assert len({ld.cadence for ld in loads}) == 1
    assert loads[0].cadence > before  # four cameras: each detects less often
    for ld in loads[2:]:
        governor.unregister(ld)
    simulate(governor, clock, loads[:2], 60, contended)
    assert loads[0].cadence == before  # the share comes back after the hold


def test_a_slower_camera_detects_as_often_per_second_and_a_floor_is_kept():
    clock = Clock()
    governor = CapacityGovernor(clock=clock)
    fast = governor.register("fast", FPS)
    slow = governor.register("slow", FPS / 2)
    fixed = governor.register("fixed", FPS, min_cadence=5)
    manual = governor.register("manual", FPS, min_cadence=2, adaptive=False)
    governor.level = 4
    governor._apply()
    assert (fast.cadence, slow.cadence, fixed.cadence, manual.cadence) == (4, 2, 5, 2)


def test_a_failed_probe_doubles_the_hold_and_the_cadence_does_not_oscillate():
    clock = Clock()
    governor = CapacityGovernor(clock=clock, hold_s=5.0)
    load = governor.register("cam", FPS)

    # Level 3 looks light, but at level 2 the detector slows down (a thermal or shared
    # box): 30 x (0.05 / 2 + 0.002) = 0.81 at level 3 predicts 0.7 at 2, then measures 1.0+.
    def detect(level):
        return 0.04 if level >= 3 else 0.066

    changes = simulate(governor, clock, [load], 120, detect)
    lowerings = sum(1 for a, b in zip(changes, changes[1:]) if b[0] < a[0])
    assert governor.hold_s > 5.0
    assert lowerings <= 4, changes  # 5 s, 10 s, 20 s, 40 s holds: a handful of probes


def test_a_queue_that_keeps_growing_raises_the_cadence_even_if_the_prediction_is_fine():
    clock = Clock()
    governor = CapacityGovernor(clock=clock)
    load = governor.register("cam", FPS)
    # The prediction says 30 x (0.02 + 0.002) = 0.66, but the queue grows a frame a frame.
    changes = simulate(governor, clock, [load], 5, lambda level: 0.02, backlog=lambda i: i)
    assert changes[-1][0] > 1
    # A queue that is long but draining (after start-up) raises nothing.
    clock2 = Clock()
    governor2 = CapacityGovernor(clock=clock2)
    load2 = governor2.register("cam", FPS)
    simulate(governor2, clock2, [load2], 5, lambda level: 0.02,
             backlog=lambda i: max(120 - i, 0))
    assert load2.cadence == 1


# -- the verdict ---------------------------------------------------------------------------

PIXELS = Picture(np.zeros((8, 8, 3), np.uint8))


def frame(index: int, fps: float = FPS) -> Frame:
    return Frame("cam", index, index / fps, 0.0, PIXELS)


def monitor(indices_detected, frames, limit=0.27, missing=()):
    gaps = GapMonitor(limit, FPS)
    for i in range(frames):
        if i not in missing:
            gaps.record(frame(i), i in indices_detected)
    return gaps


@pytest.mark.parametrize("cadence,reliable", [(1, True), (3, True), (7, True), (8, True),
                                              (9, False), (12, False)])
def test_an_even_cadence_is_reliable_up_to_the_limit(cadence, reliable):
    gaps = monitor(set(range(0, 300, cadence)), 300)
    verdict = gaps.reliability(cadence)  # a limit of 0.27 s, 8 frames at 30/s
    assert verdict.largest_gap_frames == cadence
    assert verdict.largest_gap_s == pytest.approx(cadence / FPS)
    assert verdict.processed_fraction == pytest.approx(len(range(0, 300, cadence)) / 300)
    assert verdict.reliable is reliable
    if not reliable:
        assert f"every {cadence}th frame" in verdict.reason
        assert "0.27 s (detection.max_gap_s)" in verdict.reason


def test_dropped_frames_and_a_stalled_detector_show_as_gaps():
    dropped = monitor(set(range(0, 300, 2)) - set(range(100, 120)), 300,
                      missing=set(range(101, 119)))
    verdict = dropped.reliability(2)
    assert not verdict.reliable and verdict.frames_lost == 18
    assert "18 frames were dropped" in verdict.reason
    stalled = monitor({0, 2, 4}, 60)  # the model answered nothing for 55 frames
    assert stalled.reliability(2).largest_gap_frames == 55
    assert not stalled.reliability(2).reliable


def test_an_old_gap_leaves_the_window():
    gaps = GapMonitor(0.25, FPS, window_s=10)
    for i in range(0, 600):
        gaps.record(frame(i), i < 50 and i % 20 == 0 or i >= 50 and i % 2 == 0)
    assert gaps.reliability(2).reliable  # the 20-frame gaps were 18 s ago
    assert gaps.reliability(2).largest_gap_frames == 2


def test_the_scheduler_detects_evenly_on_multiples_of_the_cadence():
    governor = CapacityGovernor()
    scheduler = CadenceScheduler("cam", DetectionSettings(), FPS, governor)
    governor.level = 3
    governor._apply()
    seen = [i for i in range(12) if scheduler.due(frame(i))]
    assert seen == [0, 3, 6, 9]
    governor.level = 5
    governor._apply()
    seen = [i for i in range(12, 31) if i != 15 and scheduler.due(frame(i))]
    assert seen == [12, 16, 20, 25, 30]  # 15 never arrived: 16 is detected instead


def test_timestamp_jitter_is_not_a_gap_but_frames_the_camera_lost_are():
    jittery = GapMonitor(0.27, FPS)
    for i in range(90):  # every 8th frame, timestamps off by up to 0.4 of a frame
        jittery.record(Frame("cam", i, i / FPS + (0.4 / FPS if i % 2 else 0), 0.0, PIXELS),
                       i % 8 == 0)
    verdict = jittery.reliability(8)
    assert verdict.reliable and verdict.largest_gap_s == pytest.approx(8 / FPS)
    lossy = GapMonitor(0.27, FPS)
    for i in range(90):  # the camera sent nothing for 0.5 s after frame 40: same indices
        lossy.record(Frame("cam", i, i / FPS + (0.5 if i > 40 else 0), 0.0, PIXELS),
                     i % 4 == 0)
    verdict = lossy.reliability(4)
    assert not verdict.reliable and verdict.largest_gap_s == pytest.approx(0.5 + 4 / FPS)
