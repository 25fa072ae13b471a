"""ByteTrack and its Kalman filter."""

from __future__ import annotations

import numpy as np
import pytest

from lanewatch.trackers.bytetrack import kalman
from lanewatch.trackers.bytetrack.association import iou_matrix as box_iou
from lanewatch.trackers.bytetrack.tracker import ByteTrack, ByteTrackSettings
from lanewatch.trackers.detections import Detections

NAMES = {0: "car"}


def dets(boxes, scores=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scores = (np.full(len(boxes), 0.9, np.float32) if scores is None
              else np.asarray(scores, np.float32))
    return Detections(boxes, scores, np.zeros(len(boxes), np.int32), NAMES)


def reference_matrices(h, dt):
    """F, Q, H, R written out directly for one box of height h."""
    f = np.eye(8)
    for i in range(4):
        f[i, i + 4] = dt
    sp, sv = 1 / 20, 1 / 160
    q = np.diag(np.square([sp * h, sp * h, 1e-2, sp * h, sv * h, sv * h, 1e-5, sv * h])) * dt
    hm = np.hstack([np.eye(4), np.zeros((4, 4))])
    r = np.diag(np.square([sp * h, sp * h, 1e-1, sp * h]))
    return f, q, hm, r


@pytest.mark.parametrize("dt", [1.0, 3.0])
def test_kalman_matches_a_direct_computation(dt):
    rng = np.random.default_rng(1)
    z0 = np.array([[100, 200, 0.5, 80], [300, 50, 1.2, 40], [640, 360, 2.0, 120]], float)
    x = kalman.initiate(z0)
    x[:, 4:8] = rng.normal(0, 2, (3, 4)) * [1, 1, 0.001, 0.1]
    x = kalman.predict(x, 1.0)  # non-zero position-velocity covariances
    z1 = z0 + rng.normal(0, 3, z0.shape) * [1, 1, 0.01, 1]

    predicted = kalman.predict(x, dt)
    updated = kalman.update(predicted, z1)
    cov, pc, uc = (kalman.full_covariance(c) for c in (x, predicted, updated))
    for i in range(3):
        mean = x[i, :8]
        f, q, hm, _ = reference_matrices(mean[3], dt)  # process noise from the prior height
        m = f @ mean
        p = f @ cov[i] @ f.T + q
        np.testing.assert_allclose(predicted[i, :8], m, rtol=1e-9)
        np.testing.assert_allclose(pc[i], p, rtol=1e-9)
        _, _, _, r = reference_matrices(m[3], dt)  # measurement noise from the predicted height
        s = hm @ p @ hm.T + r
        k = p @ hm.T @ np.linalg.inv(s)
        np.testing.assert_allclose(updated[i, :8], m + k @ (z1[i] - hm @ m), rtol=1e-7)
        np.testing.assert_allclose(uc[i], (np.eye(8) - k @ hm) @ p, rtol=1e-6, atol=1e-9)


def test_box_conversions_round_trip():
    boxes = np.array([[10, 20, 50, 100], [0, 0, 1, 1]], float)
    np.testing.assert_allclose(kalman.xyah_to_xyxy(kalman.xyxy_to_xyah(boxes)), boxes)


def test_box_iou():
    a = np.array([[0, 0, 10, 10]], float)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 1 / 3, 0.0]])


def moving_box(t, x0=100, y0=100, vx=5, vy=0, w=40, h=30):
    return [x0 + vx * t, y0 + vy * t, x0 + vx * t + w, y0 + vy * t + h]


def run(tracker, frames, fps=30.0, start=0):
    out = []
    for i, boxes in enumerate(frames):
        out.append(tracker.update(dets(boxes), (start + i) / fps))
    return out


def test_first_frame_tracks_are_confirmed_and_ids_carry_detection_index():
    tracker = ByteTrack()
    out = tracker.update(dets([moving_box(0), moving_box(0, x0=400)]), 0.0)
    assert out.detections.tracker_id.tolist() == [1, 2]
    assert out.detection_index.tolist() == [0, 1]


@pytest.mark.parametrize("min_hits", [1, 2, 5])
def test_new_track_is_tentative_until_min_hits(min_hits):
    tracker = ByteTrack(ByteTrackSettings(min_hits=min_hits))
    tracker.update(dets([moving_box(0)]), 0.0)
    shown = []
    for t in range(1, 8):
        out = tracker.update(dets([moving_box(t), moving_box(t - 1, x0=500)]), t / 30)
        assert 2 in out.detections.tracker_id.tolist()  # followed from its first frame
        shown.append(2 in out.confirmed_detections.tracker_id.tolist())
    # The newcomer (id 2) first appears at frame 1; it is confirmed at its min_hits-th match.
    assert shown == [k + 1 >= min_hits for k in range(7)]


# (model on every Nth frame, the newcomer's match at which it is confirmed): min_hits (5)
# matches on every frame; from every 2nd frame on, sparse_min_hits (3) spanning 5 frames.
SPARSE_CONFIRMATION = [(1, 5), (2, 3), (3, 3), (5, 3), (10, 3)]


@pytest.mark.parametrize("every, confirmed_at", SPARSE_CONFIRMATION)
def test_confirmation_is_evidence_over_camera_frames_not_model_calls(every, confirmed_at):
    tracker = ByteTrack()  # min_hits 5, sparse_min_hits 3
    tracker.update(dets([moving_box(0, x0=800)]), 0.0)  # an unrelated first-frame track
    shown = []
    for k in range(1, 7):  # the newcomer's k-th match, `every` camera frames apart
        t = k * every
        out = tracker.update(dets([moving_box(0, x0=800), moving_box(t, vx=2)]), t / 30)
        assert 2 in out.detections.tracker_id.tolist()
        shown.append(2 in out.confirmed_detections.tracker_id.tolist())
    assert shown == [k >= confirmed_at for k in range(1, 7)]


def test_a_sparse_track_whose_last_match_jumped_is_not_confirmed_early():
    """Every 10th frame: the third match lies beside the predicted box (a neighbour in the next
    lane, reached only through the buffered IoU): it does not confirm the track; the next
    match, where the motion since the jump predicted it, does."""
    tracker = ByteTrack()
    tracker.update(dets([moving_box(0, x0=800)]), 0.0)
    path = [moving_box(10, vx=2), moving_box(20, vx=2), moving_box(30, vx=2, y0=135),
            moving_box(40, vx=2, y0=135), moving_box(50, vx=2, y0=135)]
    shown = []
    for k, box in enumerate(path, start=1):
        out = tracker.update(dets([moving_box(0, x0=800), box]), 10 * k / 30)
        assert out.detections.tracker_id.tolist()[-1] == 2  # followed on the grown boxes
        shown.append(2 in out.confirmed_detections.tracker_id.tolist())
    assert shown == [False, False, False, True, True]


def test_a_miss_kills_a_tentative_track():
    tracker = ByteTrack(ByteTrackSettings(min_hits=3))
    tracker.update(dets([moving_box(0)]), 0.0)
    frames = [[moving_box(1), moving_box(0, x0=500)], [moving_box(2)],
              [moving_box(3), moving_box(2, x0=500)], [moving_box(4), moving_box(3, x0=500)],
              [moving_box(5), moving_box(4, x0=500)]]
    out = run(tracker, frames, start=1)
    assert out[-1].confirmed_detections.tracker_id.tolist() == [1, 3]  # id 2 died at its miss


def test_output_rows_follow_input_order_not_track_order():
    tracker = ByteTrack()
    tracker.update(dets([moving_box(0), moving_box(0, x0=400)]), 0.0)
    out = tracker.update(dets([moving_box(1, x0=400), moving_box(1)]), 1 / 30)
    assert out.detection_index.tolist() == [0, 1]
    assert out.detections.tracker_id.tolist() == [2, 1]
    np.testing.assert_allclose(out.detections.xyxy[0], moving_box(1, x0=400))


def test_id_survives_a_short_occlusion():
    tracker = ByteTrack(ByteTrackSettings(lost_track_buffer_s=1.0))
    frames = [[moving_box(t)] if not 10 <= t < 25 else [] for t in range(40)]  # 0.5 s gap
    out = run(tracker, frames)
    ids = {int(o.detections.tracker_id[0]) for o in out if len(o.detections)}
    assert ids == {1}


def test_track_lost_longer_than_the_buffer_gets_a_new_id():
    tracker = ByteTrack(ByteTrackSettings(lost_track_buffer_s=0.5))
    frames = [[moving_box(t)] if not 10 <= t < 40 else [] for t in range(50)]  # 1 s gap
    out = run(tracker, frames)
    assert [int(o.detections.tracker_id[0]) for o in out if len(o.detections)][-1] != 1
    assert tracker.active_track_count == 1


def test_frame_gap_in_timestamps_is_bridged_by_the_motion_model():
    # After 8 consecutive frames, only every 4th frame reaches the tracker (a detector running
    # every Nth frame): the 40 px box moves 40 px between updates, so it only keeps its id if
    # the filter predicts 4 frame intervals ahead (a 1-frame prediction leaves IoU at 0).
    tracker = ByteTrack()
    times = list(range(8)) + list(range(8, 80, 4))
    out = [tracker.update(dets([moving_box(t, vx=10)]), t / 30) for t in times]
    assert [int(o.detections.tracker_id[0]) for o in out] == [1] * len(times)


def test_ids_are_never_reused():
    tracker = ByteTrack(ByteTrackSettings(lost_track_buffer_s=0.1))
    seen = []
    for burst in range(20):  # objects appear for 10 frames, vanish, new ones appear
        for t in range(10):
            out = tracker.update(dets([moving_box(t, x0=50 + 30 * burst)]), burst + t / 30)
            seen.extend(out.detections.tracker_id.tolist())
    first_seen = list(dict.fromkeys(seen))
    assert len(first_seen) == 20
    assert first_seen == sorted(first_seen)


def test_two_instances_never_share_state():
    a, b = ByteTrack(), ByteTrack()
    out_a = a.update(dets([moving_box(0)]), 0.0)
    for _ in range(5):
        b.update(dets([moving_box(0, x0=500), moving_box(0, x0=700)]), 0.0)
    out_a2 = a.update(dets([moving_box(1)]), 1 / 30)
    assert out_a.detections.tracker_id.tolist() == out_a2.detections.tracker_id.tolist() == [1]


def test_memory_stays_bounded_over_a_long_run():
    tracker = ByteTrack(ByteTrackSettings(lost_track_buffer_s=1.0))
    rng = np.random.default_rng(0)
    for i in range(3000):  # 100 s of traffic: objects enter, cross and leave
        t = i % 60
        boxes = [moving_box(t, x0=20 + 90 * k, vy=6) for k in range(8)]
        boxes = [b for b in boxes if rng.random() > 0.1]  # missed detections
        tracker.update(dets(boxes), i / 30)
        assert tracker.active_track_count <= 40


def test_low_score_detections_keep_a_track_alive():
    tracker = ByteTrack()
    tracker.update(dets([moving_box(0)]), 0.0)
    tracker.update(dets([moving_box(1)]), 1 / 30)
    out = tracker.update(dets([moving_box(2)], scores=[0.15]), 2 / 30)  # occluded: low score
    assert out.detections.tracker_id.tolist() == [1]


def test_tentative_tracks_match_fast_motion_through_buffered_iou():
    # A new object moving 20 px per update on a 40 px box: plain IoU with its first (still
    # motionless) prediction is 1/3, under the tentative threshold once fused with the score.
    confirmed = []
    for buffer in (0.0, 0.3):
        tracker = ByteTrack(ByteTrackSettings(tentative_iou_buffer=buffer, min_hits=3))
        tracker.update(dets([moving_box(0, x0=600)]), 0.0)  # an unrelated confirmed track
        for t in range(1, 6):
            out = tracker.update(dets([moving_box(0, x0=600), moving_box(t, vx=20)]), t / 30)
        confirmed.append(len(out.confirmed_detections))
    assert confirmed == [1, 2]


def test_low_score_detection_never_starts_a_track():
    tracker = ByteTrack()
    for t in range(5):
        out = tracker.update(dets([moving_box(t)], scores=[0.15]), t / 30)
        assert len(out.detections) == 0


def test_empty_frames_and_empty_tracker():
    tracker = ByteTrack()
    out = tracker.update(Detections.empty(NAMES), 0.0)
    assert len(out.detections) == 0 and out.detections.tracker_id is not None


def test_settings_validation():
    with pytest.raises(ValueError, match="low_threshold"):
        ByteTrackSettings(low_threshold=0.6, high_threshold=0.5)
    with pytest.raises(ValueError):
        ByteTrack(frame_rate=0)


def test_nothing_compiles_after_warm_up():
    """A kernel compiled for the first time mid-stream holds the interpreter for seconds and
    every live stream of the process drops frames (and misses vehicles): after warm_up, a
    tracker going through every path (new, tentative, lost, re-found after a gap, expired,
    duplicates) must not compile anything."""
    from lanewatch.trackers.bytetrack import association, kalman
    from lanewatch.trackers.bytetrack.warm_up import warm_up

    def compiled():
        return {f"{m.__name__}.{name}": len(getattr(m, name).signatures)
                for m in (kalman, association) for name in dir(m)
                if hasattr(getattr(m, name), "signatures")}

    warm_up()
    before = compiled()
    tracker = ByteTrack(ByteTrackSettings(), frame_rate=30)
    rng = np.random.default_rng(3)
    cars = rng.uniform(0, 400, (6, 2))  # six objects moving steadily, plus clutter
    for t in range(120):
        n = int(rng.integers(0, 6))
        xy = np.concatenate([cars + 3 * t, rng.uniform(0, 600, (n, 2))])
        boxes = np.concatenate([xy, xy + 50], axis=1)
        if t % 17 in (5, 6, 7):  # everything lost for a few frames, then found again
            boxes = boxes[:0]
        tracker.update(Detections(boxes.astype(np.float32),
                                  np.r_[np.full(6, 0.9), rng.uniform(0.05, 1, n)][
                                      :len(boxes)].astype(np.float32),
                                  np.zeros(len(boxes), np.int32)), t / 30)
    assert compiled() == before
