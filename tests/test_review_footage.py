"""End-to-end review of the real footage with the real model, against counts made by hand.

The ground truth below was counted by a person frame by frame (crops with pixel rulers and a
time-slice of the counting row), independently of the pipeline. Frames are when the vehicle's
bottom-centre crossed the line (+-1); the pipeline reports a crossing once the anchor is a
hysteresis margin past the line, so its frame is the same or a few frames later.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import av
import numpy as np
import pytest
import yaml

from lanewatch.sinks.overlay_layout import lane_color_bgr
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.pipeline.review import review_video

from conftest import CONFIGS

pytestmark = pytest.mark.integration

# configs/highway.yaml, line y=250: (frame, lane), every vehicle a car coming towards the camera.
HIGHWAY_TRUTH = [
    (41, "lane3"), (43, "lane4"), (80, "lane3"), (115, "lane3"), (115, "lane4"),
    (222, "lane3"), (231, "lane4"), (236, "lane2"), (264, "lane2"), (287, "lane3"),
    (296, "lane1"),
]

# configs/pedestrians.yaml: persons per line and direction (in = towards the camera).
PEDESTRIAN_TRUTH = [  # (frame, line, direction)
    (215, "north", "away"),  # woman in a grey coat pushing a bicycle, x~1235
    (227, "north", "away"),  # man in a black overcoat reading a newspaper, x~335
    (84, "south", "towards_camera"),  # man in a white helmet walking beside his bike, x~620
    (110, "south", "away"),  # the woman with the bicycle again, x~1045
]
MAX_LAG_FRAMES = 15  # slow walkers need a while to get the hysteresis margin past the line


def match_events(truth, events, key):
    """Pair each hand-counted crossing with one pipeline event of the same key, close in time."""
    unmatched = list(events)
    for frame, *k in truth:
        candidates = [e for e in unmatched if key(e) == tuple(k)
                      and frame - 2 <= e["frame"] <= frame + MAX_LAG_FRAMES]
        assert candidates, f"no event for hand-counted crossing {frame} {k}; events: {events}"
        unmatched.remove(min(candidates, key=lambda e: abs(e["frame"] - frame)))
    assert not unmatched, f"events that no person counted: {unmatched}"


def read_events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_highway_writes_the_four_outputs(highway_run):
    out, proc = highway_run
    for name in ("annotated.mp4", "counts.csv", "events.jsonl", "summary.json"):
        assert (out / name).stat().st_size > 0, name
    assert "11 crossings" in proc.stdout


def test_highway_per_lane_counts_equal_the_hand_count(highway_run):
    out, _ = highway_run
    summary = json.loads((out / "summary.json").read_text())
    expected = Counter(lane for _, lane in HIGHWAY_TRUTH)
    assert {name: lane["total"] for name, lane in summary["lanes"].items()} == {
        f"lane{i}": expected[f"lane{i}"] for i in range(1, 5)}
    assert summary["classes"] == {"car": 11}
    assert summary["directions"] == {"towards": 11}
    assert summary["frames"] == 335
    assert summary["status"] == "complete"
    assert Path(summary["video"]).name == "highway.mp4"  # the input reviewed, as given


def test_highway_summary_says_where_the_cpu_went(highway_run):
    out, _ = highway_run
    cpu = json.loads((out / "summary.json").read_text())["cpu_ms_per_frame"]
    assert set(cpu) == {"runtime", "decode", "main", "video", "total"}
    for thread in ("runtime", "decode", "main", "video"):  # every thread worked, annotated
        assert cpu[thread] > 0, thread
    assert cpu["runtime"] > cpu["decode"]  # the model is most of it
    parts = cpu["runtime"] + cpu["decode"] + cpu["main"] + cpu["video"]
    assert parts == pytest.approx(cpu["total"], abs=0.01)


def test_counting_only_encodes_nothing(tmp_path, highway_video):
    config = load_config(CONFIGS / "highway.yaml")
    config = config.model_copy(update={"output": config.output.model_copy(
        update={"video": False})})
    summary = review_video(highway_video, config, tmp_path, progress=False,
                           max_frames=30).summary
    assert not (tmp_path / "annotated.mp4").exists()
    assert summary["video"] == str(highway_video)  # the input, with or without an output video
    cpu = summary["cpu_ms_per_frame"]
    assert cpu["video"] == 0 and cpu["decode"] > 0 and cpu["main"] > 0


def test_highway_events_match_each_hand_counted_vehicle(highway_run):
    out, _ = highway_run
    events = read_events(out / "events.jsonl")
    assert all(e["direction"] == "towards" and e["class"] == "car" for e in events)
    assert len({e["track_id"] for e in events}) == len(events)  # one count per vehicle
    match_events(HIGHWAY_TRUTH, events, key=lambda e: (e["lane"],))


def test_highway_counts_csv_is_a_full_grid(highway_run):
    out, _ = highway_run
    lines = (out / "counts.csv").read_text().splitlines()
    assert lines[0] == ("interval_start_s,interval_end_s,lane,class,direction,count,pcu,"
                        "per_hour,partial")
    rows = [line.split(",") for line in lines[1:]]
    # one 60 s interval x 4 lanes x 4 classes x 1 counted direction
    assert len(rows) == 16
    per_lane = Counter()
    for start, end, lane, cls, direction, count, pcu, per_hour, partial in rows:
        assert (start, end, direction) == ("0", "60", "towards")
        assert cls in {"car", "motorcycle", "bus", "truck"}
        per_lane[lane] += int(count)
        # the video covers 11.178 s of the minute: the rate is over that part
        assert partial == "1" and float(per_hour) == round(int(count) * 3600 / 11.178, 1)
        assert float(pcu) == int(count)  # cars: 1 PCU each
    assert per_lane == Counter(lane for _, lane in HIGHWAY_TRUTH)


def test_highway_annotated_video_shows_lanes_and_tracks(highway_run, highway_video):
    out, _ = highway_run
    with av.open(str(out / "annotated.mp4")) as c:
        s = c.streams.video[0]
        assert (s.codec_context.name, s.codec_context.width, s.codec_context.height) == (
            "h264", 1280, 720)
        frames = [f.to_ndarray(format="bgr24") for f in c.decode(s)]
    assert len(frames) == 335
    with av.open(str(highway_video)) as c:
        source = [f.to_ndarray(format="bgr24") for i, f in zip(range(291), c.decode(video=0))]
    annotated, original = frames[290].astype(int), source[290].astype(int)
    # Each lane's counting line (y=250) is drawn in its palette colour, the dashboard chart's
    # (sinks/overlay_layout.py); the middle third, with the direction arrow, left out.
    lanes = yaml.safe_load((CONFIGS / "highway.yaml").read_text())["streams"][0]["lanes"]
    for i, lane in enumerate(lanes):
        (x0, y), (x1, _) = lane["line"]
        xs = [x for x in range(x0 + 4, x1 - 4) if abs(x - (x0 + x1) / 2) > (x1 - x0) / 6]
        off = np.abs(annotated[y, xs] - lane_color_bgr(i)).sum(axis=1)
        assert np.mean(off < 90) > 0.5, (lane["name"], np.median(off))
    # The white SUV (tracked, crossing lane 3) gets a box: its edges change, the road around
    # it mostly does not.
    changed = np.abs(annotated - original).sum(axis=2) > 60
    assert changed[190:300, 690:780].mean() > 0.05
    assert changed[600:700, 1180:1270].mean() < 0.02  # verge far from every overlay


def test_pedestrian_lines_equal_the_hand_count(pedestrians_run):
    out, result = pedestrians_run
    events = read_events(out / "events.jsonl")
    crossings = [e for e in events if e["type"] == "crossing"]
    assert all(e["class"] == "person" for e in crossings)
    match_events(PEDESTRIAN_TRUTH, crossings, key=lambda e: (e["lane"], e["direction"]))
    lanes = result.summary["lanes"]
    assert lanes["north"]["by_direction"] == {"towards_camera": 0, "away": 2}
    assert lanes["south"]["by_direction"] == {"towards_camera": 1, "away": 1}
    page = (out / "report.html").read_text()
    assert "<th>objects</th>" in page and "<th>vehicles</th>" not in page  # people


def test_annotated_video_at_a_smaller_width(tmp_path, highway_video):
    """`output.video_width` draws and encodes the video smaller (faster, smaller files); the
    counting is the same pipeline."""
    config = load_config(CONFIGS / "highway.yaml")
    config = config.model_copy(update={"output": config.output.model_copy(
        update={"video_width": 640})})
    review_video(highway_video, config, tmp_path, progress=False, max_frames=30)
    with av.open(str(tmp_path / "annotated.mp4")) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (640, 360)
        assert stream.frames == 30
