"""`lanewatch bench` runs end to end on the real model and clip: every figure is there and
consistent with the others, the report prints the ratios the targets are stated in, and the
counts it measured with are the hand counts. Timings are printed, never asserted: no test here
depends on how fast (or how busy) the machine is."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from collections import Counter

import pytest

from lanewatch.stream.bench.many_streams import (
    RunFigures,
    StreamFigures,
    count_difference,
    count_table,
    exactly_counted,
)
from lanewatch.stream.bench.measurements import live_rate
from lanewatch.stream.bench.ultralytics_counter import object_counter_region
from lanewatch.stream.config.loading import load_config

from conftest import CONFIGS, REPO
from test_review_footage import HIGHWAY_TRUTH

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_bench_reports_every_figure(tmp_path, detector_model, segment_model):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [shutil.which("lanewatch"), "bench", "-c", str(CONFIGS / "highway.yaml"),
         "--live-seconds", "6", "--streams", "2", "--streams-seconds", "5", "--rounds", "2",
         "--models", str(detector_model), str(segment_model),
         "--json", str(out)],
        capture_output=True, text=True, timeout=850, cwd=REPO)
    print(proc.stdout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())

    raw = figures["raw"]
    assert raw["requests"] >= 1
    assert raw["inflight_fps"] > 0 and raw["sync_fps"] > 0
    assert 0 < raw["latency_p50_ms"] <= raw["latency_p95_ms"]
    assert raw["input_hw"] == [384, 640] and raw["refitted"]  # as process runs the clip
    assert figures["raw_padded"]["input_hw"] == [640, 640]
    assert figures["raw_padded"]["inflight_fps"] > 0
    for key in ("process_counting_fps", "process_annotated_fps",
                "process_annotated_ultrafast_fps", "process_annotated_640_fps",
                "ultralytics_track_fps", "object_counter_fps"):
        assert figures[key] > 0, key
    hand = {}
    for _, lane in HIGHWAY_TRUTH:
        hand[lane] = hand.get(lane, 0) + 1
    assert figures["lanes"] == hand  # measured on a run that counts exactly
    assert len(figures["rounds"]) == 2
    for measured in figures["rounds"]:
        assert measured["lanes"] == measured["lanes_annotated"] == hand
        assert measured["raw_inflight_fps"] > 0 and measured["counting_fps"] > 0
        assert measured["raw_inflight_cpu_ms"] > 0
        counting, annotated = measured["counting_cpu_ms"], measured["annotated_cpu_ms"]
        assert counting["video"] == 0 < annotated["video"]
        assert 0 < counting["decode"] and 0 < counting["main"] < annotated["main"]
    ratios = sorted(r["counting_fps"] / r["raw_inflight_fps"] for r in figures["rounds"])
    assert figures["counting_vs_raw"] == pytest.approx(sum(ratios) / 2)  # median of two
    for every, run in figures["process_every_nth_frame"].items():
        assert run["lanes"] == hand, f"detection every {every} frames"
        assert run["fps"] > 0
    assert figures["object_counter_crossings"] > 0

    live = figures["live_latency_ms"]
    stream = figures["live_stream"]
    # The latencies are those of frames the stream processed, after a warm-up.
    assert 0 < live["frames"] <= stream["frames_processed"]
    assert 0 < live["p50"] <= live["p95"] <= live["p99"]
    assert live["paced_inference_p50"] > 0
    assert live["rate_fps"] == pytest.approx(
        live_rate(29.97, figures["raw"]["latency_p50_ms"]), rel=0.01)
    check_stream_figures(stream, fps=29.97, looped=True)
    # Stopped mid-clip: frames may still wait in its queue.
    assert stream["frames_processed"] + stream["frames_dropped"] <= stream["frames_received"]
    assert stream["clip_passes"] == pytest.approx(stream["frames_received"] / 335)
    assert isinstance(stream["crossings"], int) and stream["crossings"] >= 0

    check_many_streams(figures["many_streams"], proc.stdout)

    models = {row["model"]: row for row in figures["models"]}
    assert set(models) == {detector_model.name, segment_model.name}
    for row in models.values():
        assert "error" not in row, row
        assert row["inflight_fps"] > 0 and row["peak_rss_mb"] > 50
        assert row["detections_per_frame"] > 1  # highway frames are full of cars

    text = proc.stdout
    for fragment in ("model alone at 640x384, synchronous", "padded to 640x640",
                     "process: counting only",
                     "process: counting + annotated H.264 (superfast)", "same counts",
                     "median of 2 rounds",
                     "detection every 2nd frame",
                     "Ultralytics solutions.ObjectCounter", "targets: counting >= 0.85x raw",
                     "CPU per frame, ms", "frames/s at most on",
                     "capture to publish p50", "at the live pace", "live stream: cadence",
                     "counting reliable:", "dets/frame"):
        assert fragment in text, fragment


def check_stream_figures(s: dict, fps: float, looped: bool = False) -> None:
    """One live stream's figures agree with each other (whatever the machine's speed)."""
    assert 1 <= s["cadence"] <= s["max_cadence"]
    assert 0 < s["processed_fraction"] <= 1
    assert s["largest_gap_frames"] >= 1
    if not looped:  # (a looped file's clock restarts at each play: gaps over it differ)
        assert s["largest_gap_s"] == pytest.approx(s["largest_gap_frames"] / fps, rel=0.01)
        # The verdict is the largest gap against the limit (status rounds to 0.1 ms).
        assert s["counting_reliable"] == (s["largest_gap_s"] <= s["gap_limit_s"] + 1e-4)
    assert (s["counting_reason"] is None) == s["counting_reliable"]
    for key in ("frames_received", "frames_processed", "frames_dropped"):
        assert isinstance(s[key], int) and s[key] >= 0, key
    assert 0 < s["frames_processed"] <= s["frames_received"]


def hand_count_before(frames: int) -> dict:
    """The hand counts of highway.mp4's first `frames` frames, as the bench reports counts."""
    lanes = Counter(lane for frame, lane in HIGHWAY_TRUTH if frame < frames)
    return {lane: {"car": {"towards": n}} for lane, n in sorted(lanes.items())}


def check_many_streams(many: dict, text: str) -> None:
    """`--streams 2 --streams-seconds 5`: k = 1, 2 cameras playing highway.mp4's first 5 s
    once; every figure there and consistent, whether or not this box counted them exactly."""
    assert many["streams"] == 2
    clip = many["clip"]
    assert clip["frames"] == 150 and clip["seconds"] == pytest.approx(5.0, abs=0.01)
    assert many["camera"] == "720p, 29.97 frames/s"
    # The reference is the review of the same 5 s, which counts them as the hand counts do.
    assert many["review_counts"] == hand_count_before(150)
    assert many["review_crossings"] == sum(1 for frame, _ in HIGHWAY_TRUTH if frame < 150)
    runs = many["runs"]
    assert [(r["setup"], r["cameras"]) for r in runs] == [
        ("shared", 1), ("shared", 2), ("batched", 2)]
    for run in runs:
        streams = run["streams"]
        assert len(streams) == run["cameras"]
        assert len({s["id"] for s in streams}) == run["cameras"]
        assert run["elapsed_s"] > 0
        assert run["detections_per_s"] == pytest.approx(
            sum(s["detections"] for s in streams) / run["elapsed_s"], rel=1e-6)
        for s in streams:
            check_stream_figures(s, fps=clip["fps"])
            assert s["max_latency_s"] >= 0
            if run["drained"]:  # the file played once and every frame taken
                assert s["frames_received"] == clip["frames"]
                assert s["frames_processed"] + s["frames_dropped"] == s["frames_received"]
                # The model's share: the frames it saw of those counted (the whole clip).
                assert s["detections"] / s["frames_processed"] == pytest.approx(
                    s["processed_fraction"], abs=1e-3)
            for lane in s["counts"].values():
                for directions in lane.values():
                    assert all(isinstance(n, int) and n > 0 for n in directions.values())
            assert s["exact"] == (s["counts"] == many["review_counts"])
        assert run["all_exact"] == all(s["exact"] for s in streams)
        assert run["all_reliable"] == all(s["counting_reliable"] for s in streams)
        assert run["counted_exactly"] == (run["drained"] and run["all_exact"]
                                          and run["all_reliable"])
        cadences = {s["cadence"] for s in streams}
        assert len(cadences) == 1, cadences  # one governor: the same share for each camera
    by_setup = many["exact_cameras_by_setup"]
    assert set(by_setup) == {"shared", "batched"}
    for setup, k in by_setup.items():
        assert k == max((r["cameras"] for r in runs if r["setup"] == setup
                         and r["counted_exactly"]), default=0)
    assert many["exact_cameras"] == max(by_setup.values())
    for fragment in ("many cameras: k copies of highway.mp4 (its first 5.0 s)", "cadence",
                     "largest gap", "reliable", "= review" if any(
                         s["exact"] for r in runs for s in r["streams"]) else "DIFFER",
                     f"this box counts {many['exact_cameras']} of 2 cameras (720p, 29.97 "
                     "frames/s) exactly"):
        assert fragment in text, fragment


def test_streams_only_measures_just_the_cameras(highway_video, monkeypatch):
    """`--streams-only`: the header, then the many-cameras part, nothing else."""
    from lanewatch.stream.bench import end_to_end as bench

    called = []

    def many(config, video, streams, seconds, say):
        called.append((video, streams, seconds))
        say("many cameras")
        return {"streams": streams}

    def nothing_else(*args, **kwargs):
        raise AssertionError("only the cameras are measured")

    monkeypatch.setattr(bench, "_many_streams", many)
    monkeypatch.setattr(bench, "measure_rounds", nothing_else)
    monkeypatch.setattr(bench, "measure_live_latency", nothing_else)
    out = io.StringIO()
    figures = bench.run(load_config(CONFIGS / "highway.yaml"), highway_video, [], 20.0,
                        out=out, streams=3, streams_seconds=4.0, streams_only=True)
    assert figures == {"many_streams": {"streams": 3}}
    assert called == [(highway_video, 3, 4.0)]
    assert out.getvalue().startswith("lanewatch bench: highway.mp4 (1280x720, 335 frames)")


def test_cameras_counted_exactly_is_the_most_that_were_all_exact_and_reliable():
    reference = count_table(Counter({("lane1", "car", "towards"): 2,
                                     ("lane2", "car", "towards"): 1}))
    assert reference == {"lane1": {"car": {"towards": 2}}, "lane2": {"car": {"towards": 1}}}
    assert count_table(Counter({("lane1", "car", "towards"): 0})) == {}

    def run(setup, cameras, exact=True, reliable=True, drained=True):
        counts = reference if exact else {"lane1": {"car": {"towards": 1}}}
        streams = [StreamFigures(f"s{k}", 2, 3, 0.5, 2, 0.067, 0.25, reliable, None, 100, 100,
                                 0, 50, 0.1, counts, exact) for k in range(cameras)]
        return RunFigures(setup, cameras, 12.0, drained, 8.0, streams)

    runs = [run("shared", 1), run("shared", 2), run("shared", 3, reliable=False),
            run("batched", 2, exact=False), run("shared", 4, drained=False)]
    assert exactly_counted(runs, "shared") == 2
    assert exactly_counted(runs, "batched") == 0
    assert [r.counted_exactly for r in runs] == [True, True, False, False, False]
    assert runs[3].as_json()["all_exact"] is False
    assert count_difference({"lane1": {"car": {"towards": 1}}}, reference) == (
        "lane1 car towards 1 (review 2), lane2 car towards 0 (review 1)")


@pytest.mark.parametrize("clip_fps, latency_ms, rate", [
    (29.97, 15.9, 29.97),  # a fast model: the camera's own rate
    (29.97, 33.9, 14.75),  # near capacity: half of it, so the target's condition holds
    (60.0, 10.0, 50.0),
    (10.0, 50.0, 10.0),
])
def test_live_latency_is_measured_below_capacity(clip_fps, latency_ms, rate):
    assert live_rate(clip_fps, latency_ms) == pytest.approx(rate, abs=0.01)


def test_bench_needs_a_video_file(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: {path: m.pt}\nstreams: [{id: s, source: 'rtsp://cam/1'}]\n")
    proc = subprocess.run([shutil.which("lanewatch"), "bench", "-c", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "bench needs a video file" in proc.stderr and "Traceback" not in proc.stderr


def test_object_counter_counts_at_the_lines_joined_or_is_not_measured():
    config = load_config(CONFIGS / "highway.yaml")
    lines = [lane.line for lane in config.streams[0].lanes]
    assert object_counter_region(config) == [tuple(lines[0][0]), tuple(lines[-1][1])]
    polygons_only = config.model_copy(update={"streams": [config.streams[0].model_copy(
        update={"lanes": [lane.model_copy(update={"line": None})
                          for lane in config.streams[0].lanes]})]})
    assert object_counter_region(polygons_only) is None


def test_the_model_alone_queues_as_many_requests_as_process(detector_model, highway_video,
                                                            monkeypatch):
    """The raw reference is like for like: as many requests queued as `detect_frames` keeps
    in flight (two per runtime stream), not one per stream (3-5% slower here)."""
    import openvino as ov

    from lanewatch.stream.bench.measurements import load_frames, measure_model
    from lanewatch.stream.config.schema import ModelConfig
    from lanewatch.stream.detect.factory import create_detector

    queued = []

    class Recording(ov.AsyncInferQueue):
        def __init__(self, compiled, jobs):
            queued.append(jobs)
            super().__init__(compiled, jobs)

    monkeypatch.setattr(ov, "AsyncInferQueue", Recording)
    config = ModelConfig(path=str(detector_model), classes=["car", "truck"])
    figures = measure_model(config, load_frames(highway_video, 4), seconds=0.3)
    assert queued and queued[0] == figures.requests
    runtime = create_detector(config)
    runtime.prepare((1280, 720))  # its runtime streams are known once compiled for throughput
    assert runtime.requests >= 1 and figures.requests == 2 * runtime.requests
