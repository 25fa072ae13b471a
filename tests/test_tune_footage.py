"""`lanewatch tune` on highway.mp4 and its hand count (tests/data/highway_manual.csv):
candidates scored from cached detections count exactly what a review of the same config
counts, and tune brings a deliberately bad config back to exact counts."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from lanewatch.sinks.validation_input import load_run
from lanewatch.stream.config.checks import preflight
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.pipeline.review import review_video
from lanewatch.stream.tune.detection_cache import DetectionVariant, detect_clip, save_clip
from lanewatch.stream.tune.evaluation import candidate_events
from lanewatch.stream.tune.tuner import FLOOR, cache_file

from conftest import ASSETS, CONFIGS, REPO

pytestmark = pytest.mark.integration

MANUAL = REPO / "tests" / "data" / "highway_manual.csv"


@pytest.fixture(scope="module")
def highway_clip(highway_video):
    """configs/highway.yaml's detection variant run once, permissively, over the clip."""
    config = load_config(CONFIGS / "highway.yaml")
    return config, detect_clip(highway_video, config, config.streams[0], FLOOR)


def _keys(events):
    return sorted((round(e.time_s, 3), e.frame, e.lane, e.direction, e.class_name, e.track_id)
                  for e in events)


@pytest.mark.timeout(300)
def test_cached_evaluation_counts_what_the_review_counts(highway_clip, highway_run,
                                                         highway_video, tmp_path):
    config, clip = highway_clip
    assert clip.frames == 335
    assert max(len(d) for d in clip.detections) < 300  # under the detector's cap: exact
    # the user's config: the session's review of it (the README's job)
    review = load_run(highway_run[0])
    cached = candidate_events(config, "highway", clip)
    assert len(cached) == 11
    assert _keys(cached) == _keys(review.events)

    # several settings changed at once, the cadence among them (skipped frames predicted)
    stream = config.streams[0]
    changed = config.model_copy(update={
        "model": config.model.model_copy(update={
            "confidence": 0.3, "class_confidence": {"car": 0.35}, "agnostic_nms": True,
            "classes": ["car", "truck"]}),
        "tracker": config.tracker.model_copy(update={"new_track_threshold": 0.45}),
        "output": config.output.model_copy(update={"video": False}),
        "streams": [stream.model_copy(update={"detection": stream.detection.model_copy(
            update={"every_nth_frame": 3})})]})
    review_video(highway_video, changed, tmp_path, progress=False)
    cached = candidate_events(changed, "highway", clip)
    assert cached, "the changed config should still count something"
    assert _keys(cached) == _keys(load_run(tmp_path).events)


@pytest.mark.timeout(300)
def test_tune_brings_a_bad_config_back_to_exact_counts(highway_clip, highway_video, tmp_path):
    # A start that misses 10 of the 11 cars: tracks start only above 0.8 and boxes are kept
    # only above 0.6 (each alone already loses cars on this clip).
    text = (CONFIGS / "highway.yaml").read_text()
    text = text.replace("${LANEWATCH_ASSETS:-../../shared}", str(ASSETS))
    text = text.replace("  confidence: 0.1 ", "  confidence: 0.6 ")
    text = text.replace("tracker:\n", "tracker:\n  new_track_threshold: 0.8   # bad on purpose\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    out = tmp_path / "tune"
    out.mkdir()
    # The detector pass of this variant, as a previous run would have left it: tune re-uses
    # it (the confidences are applied after the model, so they share it).
    config, clip = highway_clip
    save_clip(cache_file(out, DetectionVariant.of(load_config(bad), config.streams[0])),
              clip, highway_video, load_config(bad).model)

    exe = shutil.which("lanewatch")
    assert exe, "the `lanewatch` console script is not installed (pip install -e .)"
    proc = subprocess.run([exe, "tune", str(highway_video), str(MANUAL), "-c", str(bad),
                           "-o", str(out), "--quick", "-q"],
                          capture_output=True, text=True, timeout=280, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((out / "tune.json").read_text())
    assert report["before"]["matched"] == 1 and report["before"]["f1"] < 0.2
    after = dict(report["after"])
    assert after.pop("one_more_frame_skipped")["f1"] == 1.0  # a margin, not an edge
    assert after == report["check"]["score"]
    assert report["check"]["agrees"]
    check = report["check"]["score"]
    assert (check["matched"], check["manual"], check["automatic"]) == (11, 11, 11)
    assert check["precision"] == check["recall"] == 1.0
    changed = {c["setting"]: (c["old"], c["new"]) for c in report["changes"]}
    assert changed["tracker.new_track_threshold"][0] == 0.8
    assert changed["tracker.new_track_threshold"][1] < 0.8
    assert set(changed) <= {"tracker.new_track_threshold", "model.confidence",
                            "tracker.high_threshold"}
    assert [p["from_file"] for p in report["detector_passes"]] == [True]
    assert len(report["candidates"]) == report["candidates_evaluated"] <= 150
    for name in changed:
        assert name in proc.stdout
    assert (out / "tune.md").read_text().count("| `") == len(changed)

    # the tuned file: the user's with the tuned lines changed, accepted as check-config does
    tuned = out / "bad.tuned.yaml"
    assert "bad on purpose" in tuned.read_text()
    assert sum(a != b for a, b in zip(text.splitlines(), tuned.read_text().splitlines())) \
        == len(changed)
    assert preflight(load_config(tuned)) == []  # what check-config checks beyond the schema


@pytest.mark.timeout(300)
def test_a_tiled_stream_is_scored_as_its_review_counts(highway_video, tmp_path):
    """Tiles are joined according to the policy (only boxes it keeps take part), so a tiled
    pass keeps each frame's tiles and every candidate joins them for its own policy; the
    tiles survive the cache file too. The first 90 frames: three crossings."""
    from lanewatch.stream.tune.detection_cache import load_clip

    config = load_config(CONFIGS / "highway.yaml")
    stream = config.streams[0]
    tiled = config.model_copy(update={
        "output": config.output.model_copy(update={"video": False}),
        "streams": [stream.model_copy(update={"detection": stream.detection.model_copy(
            update={"tiles": (2, 1)})})]})
    clip = detect_clip(highway_video, tiled, tiled.streams[0], FLOOR, max_frames=90)
    assert clip.tiles is not None and all(len(t) == 2 for t in clip.tiles)
    candidate = tiled.model_copy(update={"model": tiled.model.model_copy(update={
        "confidence": 0.3, "agnostic_nms": True})})
    review_video(highway_video, candidate, tmp_path / "review", progress=False, max_frames=90)
    expected = _keys(load_run(tmp_path / "review").events)
    assert len(expected) == 3
    assert _keys(candidate_events(candidate, "highway", clip)) == expected
    path = tmp_path / "pass.npz"
    save_clip(path, clip, highway_video, tiled.model, max_frames=90)
    loaded = load_clip(path, highway_video, tiled.model, clip.variant, FLOOR, max_frames=90)
    assert loaded is not None and loaded.tiles is not None
    assert _keys(candidate_events(candidate, "highway", loaded)) == expected
