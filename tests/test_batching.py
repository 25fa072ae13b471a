"""Dynamic batching: concurrent calls from stream threads are answered from shared batches,
exactly as one at a time; errors reach their callers; four live streams share one batched
model in `lanewatch serve` and each counts exactly like the review."""

from __future__ import annotations

import json
import re
import textwrap
import threading
import time

import numpy as np
import pytest
from test_fast_detector import assert_same, frames

from lanewatch.stream.config.schema import ModelConfig
from lanewatch.stream.detect.batching import BatchingDetector
from lanewatch.stream.detect.factory import create_detector
from lanewatch.stream.detect.ultralytics_detector import UltralyticsDetector

from rtsp import free_port
from serving import http_get, metric, start_serve, stop_serve
from test_review_footage import HIGHWAY_TRUTH

pytestmark = pytest.mark.integration


def call_together(detector, images, rounds=5):
    """Each image from its own thread, all released at once, `rounds` times."""
    barrier = threading.Barrier(len(images))
    results: dict[int, list] = {i: [] for i in range(len(images))}

    def worker(i, image):
        for _ in range(rounds):
            barrier.wait(10)
            results[i].append(detector.detect(image))

    threads = [threading.Thread(target=worker, args=(i, im)) for i, im in enumerate(images)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


@pytest.mark.timeout(120)
def test_concurrent_calls_share_batches_and_get_their_own_answers(detector_model,
                                                                   highway_video):
    config = ModelConfig(path=str(detector_model), classes=["car", "truck", "bus", "motorcycle"])
    inner = create_detector(config)
    images = [f.image for f in frames(highway_video, every=60)][:4]
    expected = [inner.detect(image) for image in images]
    batching = BatchingDetector(inner, batch_size=4, timeout_s=0.05)
    try:
        results = call_together(batching, images)
    finally:
        batching.close()
    for i, got in results.items():
        assert len(got) == 5
        for detections in got:
            assert_same(expected[i], detections, box_iou=0.999, score=1e-5)
    assert max(batching.batch_sizes) > 1  # frames really went to the model together
    assert sum(n * k for n, k in batching.batch_sizes.items()) == 20


@pytest.mark.timeout(120)
def test_ultralytics_batch_equals_one_at_a_time(detector_model, highway_video):
    detector = UltralyticsDetector(ModelConfig(path=str(detector_model)))
    images = [f.image for f in frames(highway_video, every=100)][:3]
    for one, batched in zip([detector.detect(im) for im in images],
                            detector.detect_batch(images)):
        assert_same(one, batched)


@pytest.mark.timeout(60)
def test_a_failing_frame_fails_its_caller_only(detector_model, highway_video):
    inner = create_detector(ModelConfig(path=str(detector_model)))
    batching = BatchingDetector(inner, batch_size=4, timeout_s=0.05)
    good = next(iter(frames(highway_video, every=100))).image
    outcome = {}

    def ask(name, image):
        try:
            outcome[name] = len(batching.detect(image))
        except Exception as err:  # noqa: BLE001 - what the caller sees is the test
            outcome[name] = type(err).__name__

    try:
        threads = [threading.Thread(target=ask, args=("good", good)),
                   threading.Thread(target=ask, args=("bad", np.zeros((0, 0, 3), np.uint8)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert isinstance(outcome["bad"], str)  # an exception, raised in its own thread
        assert batching.detect(good) is not None  # the dispatcher survived
    finally:
        batching.close()


CLIP_FRAMES = 335  # highway.mp4


@pytest.mark.timeout(300)
def test_four_live_streams_on_one_batched_model_count_exactly(tmp_path, detector_model,
                                                               highway_video):
    port = free_port()
    config = tmp_path / "serve.yaml"
    lanes = "".join(
        f"      - {{name: lane{i}, line: [[{a}, 250], [{b}, 250]], direction: in}}\n"
        for i, (a, b) in enumerate([(395, 535), (535, 654), (654, 790), (790, 910)], 1))
    streams = "".join(f"  - id: cam{k}\n    source: {highway_video}\n    lanes:\n{lanes}"
                      for k in range(1, 5))
    config.write_text(textwrap.dedent(f"""
        model: {{path: {detector_model}, classes: [car, truck, bus, motorcycle],
                 batch_size: 4, batch_timeout_ms: 10}}
        server: {{port: {port}}}
        store: {{path: {tmp_path / 'counts.db'}}}
    """) + "streams:\n" + streams)
    base, process = start_serve(config, port, tmp_path / "serve.log")
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            states = {s["id"]: s["state"] for s in json.loads(http_get(base + "/api/streams"))}
            if set(states.values()) == {"stopped"}:
                break
            time.sleep(0.5)
        assert set(states.values()) == {"stopped"}, states
        # A source reports "stopped" at the end of its file while its worker may still be on
        # the last frame: wait for the counters to settle.
        metrics = http_get(base + "/metrics")
        for _ in range(20):
            time.sleep(0.5)
            again = http_get(base + "/metrics")
            frame_lines = [line for line in again.splitlines()
                           if line.startswith(("lanewatch_frames_total", "lanewatch_batch"))]
            if frame_lines == [line for line in metrics.splitlines()
                               if line.startswith(("lanewatch_frames_total", "lanewatch_batch"))]:
                break
            metrics = again
        expected = {}
        for _, lane in HIGHWAY_TRUTH:
            expected[lane] = expected.get(lane, 0) + 1
        processed, counted = {}, {}
        for k in range(1, 5):
            rows = json.loads(http_get(base + f"/api/streams/cam{k}/counts"))["counts"]
            per_lane = counted[k] = {}
            for r in rows:
                per_lane[r["lane"]] = per_lane.get(r["lane"], 0) + r["count"]
            processed[k] = float(re.search(rf'lanewatch_frames_total{{stream="cam{k}"}} (\S+)',
                                           metrics).group(1))
        print(f"\nframes processed of {CLIP_FRAMES} per stream: {processed}; counts {counted}")
        status = {s["id"]: s for s in json.loads(http_get(base + "/api/streams"))}
        for k in range(1, 5):
            s = status[f"cam{k}"]
            print(f"cam{k}: cadence {s['cadence']}, largest gap {s['largest_gap_frames']} "
                  f"frames, reliable {s['counting_reliable']}")
            # Every frame reached the lanes: the box sheds detections, evenly, not frames.
            assert processed[k] == CLIP_FRAMES and s["frames_dropped"] == 0, s
            if s["counting_reliable"]:
                assert counted[k] == expected, f"cam{k}: {counted[k]}; {s}"
            else:  # beyond the exactness limit, the stream says so (and why)
                assert s["largest_gap_s"] > s["gap_limit_s"] and s["counting_reason"], s
                assert metric(metrics, "lanewatch_counting_reliable", stream=f"cam{k}") == 0
        # The four streams share the box fairly: one cadence.
        assert len({status[f"cam{k}"]["cadence"] for k in range(1, 5)}) == 1, status
        count = float(re.search(r"^lanewatch_batch_frames_count (\S+)$", metrics, re.M)[1])
        total = float(re.search(r"^lanewatch_batch_frames_sum (\S+)$", metrics, re.M)[1])
        print(f"\n4 streams x 335 frames: processed {processed}; {total:.0f} frames in "
              f"{count:.0f} batches ({total / count:.2f} per batch)")
        # Only the detected frames went to the model.
        detected = sum(round(status[f"cam{k}"]["processed_fraction"] * CLIP_FRAMES)
                       for k in range(1, 5))
        assert total == detected
        assert total / count > 1.5  # the streams' frames mostly shared batches
    finally:
        stop_serve(process)
