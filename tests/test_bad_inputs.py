"""Bad inputs to `lanewatch process`: a clear one-line error, a non-zero exit, no traceback,
and nothing already computed is lost."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from videos import header_only_video, truncate, write_video, zero_frame_video


@pytest.fixture(scope="module")
def config_file(tmp_path_factory, detector_model):
    path = tmp_path_factory.mktemp("cfg") / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        model:
          path: {detector_model}
          classes: [car, person]
        streams:
          - id: test
            source: unused.mp4
            coordinates: normalized
            lanes:
              - name: middle
                line: [[0, 0.5], [1, 0.5]]
    """))
    return path


def run_process(video, config, outdir, *extra):
    return subprocess.run(
        [sys.executable, "-m", "lanewatch.stream.cli", "process", str(video), "-c", str(config),
         "-o", str(outdir), "-q", *extra],
        capture_output=True, text=True, timeout=300,
    )


def assert_clean_error(proc, *fragments, code=2):
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines and lines[-1].startswith("lanewatch: error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[-1]


def test_missing_file(tmp_path, config_file):
    proc = run_process(tmp_path / "nope.mp4", config_file, tmp_path / "out")
    assert_clean_error(proc, "video file not found", "nope.mp4")


def test_file_that_is_not_video(tmp_path, config_file):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is a shopping list, not a video\n" * 50)
    proc = run_process(fake, config_file, tmp_path / "out")
    assert_clean_error(proc, "cannot read", "notes.mp4")


def test_empty_file(tmp_path, config_file):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_clean_error(run_process(empty, config_file, tmp_path / "out"), "empty (0 bytes)")


def test_directory_instead_of_file(tmp_path, config_file):
    assert_clean_error(run_process(tmp_path, config_file, tmp_path / "out"), "not a file")


def test_zero_frame_video(tmp_path, config_file):
    video = zero_frame_video(tmp_path / "zero.mp4")
    proc = run_process(video, config_file, tmp_path / "out")
    assert_clean_error(proc, "no decodable video frames")


def test_header_only_video_has_no_video_stream(tmp_path, config_file):
    video = header_only_video(tmp_path / "header.mp4")
    assert_clean_error(run_process(video, config_file, tmp_path / "out"), "no video stream")


def test_truncated_video_keeps_what_was_decoded(tmp_path, config_file):
    full = write_video(tmp_path / "full.mp4", frames=90)
    video = truncate(full, tmp_path / "cut.mp4", 0.5)
    out = tmp_path / "out"
    proc = run_process(video, config_file, out)
    assert_clean_error(proc, "cut.mp4", "reports in", code=3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "truncated"
    assert 10 < summary["frames"] < 90
    for name in ("counts.csv", "events.jsonl", "annotated.mp4"):
        assert (out / name).exists()


def test_missing_config(tmp_path):
    video = write_video(tmp_path / "v.mp4", frames=2)
    proc = run_process(video, tmp_path / "missing.yaml", tmp_path / "out")
    assert_clean_error(proc, "config file not found")


def test_lane_outside_the_frame(tmp_path, detector_model):
    config = tmp_path / "c.yaml"
    config.write_text(textwrap.dedent(f"""
        model: {{path: {detector_model}}}
        streams:
          - id: s
            source: x.mp4
            lanes: [{{name: far, line: [[0, 10], [5000, 10]]}}]
    """))
    video = write_video(tmp_path / "v.mp4", frames=2)
    proc = run_process(video, config, tmp_path / "out")
    assert_clean_error(proc, "lane 'far'", "outside the 320x240 frame")


def test_missing_model(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: {path: /nonexistent/model_openvino_model}\n"
                      "streams: [{id: s, source: x.mp4, lanes: []}]\n")
    video = write_video(tmp_path / "v.mp4", frames=2)
    assert_clean_error(run_process(video, config, tmp_path / "out"), "model not found")


def test_unknown_class_name_suggests_a_fix(tmp_path, detector_model):
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{path: {detector_model}, classes: [car, trucks]}}\n"
                      "streams: [{id: s, source: x.mp4, lanes: []}]\n")
    video = write_video(tmp_path / "v.mp4", frames=2)
    proc = run_process(video, config, tmp_path / "out")
    assert_clean_error(proc, "'trucks'", "did you mean 'truck'")


def test_task_mismatch(tmp_path, detector_model):
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {{path: {detector_model}, task: segment}}\n"
                      "streams: [{id: s, source: x.mp4, lanes: []}]\n")
    video = write_video(tmp_path / "v.mp4", frames=2)
    proc = run_process(video, config, tmp_path / "out")
    assert_clean_error(proc, "is a 'detect' model but model.task is 'segment'")


def test_bad_max_frames_is_a_usage_error(tmp_path, config_file):
    video = write_video(tmp_path / "v.mp4", frames=2)
    proc = run_process(video, config_file, tmp_path / "out", "--max-frames", "0")
    assert proc.returncode == 2
    assert "must be at least 1" in proc.stderr
    assert "Traceback" not in proc.stderr
