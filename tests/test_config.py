"""Config validation: every problem names its field path and says what is wrong."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.cli import main
from lanewatch.stream.config.loading import load_config

from conftest import CONFIGS

VALID = """
model:
  path: yolo11n.pt
streams:
  - id: cam1
    source: rtsp://example/stream
    lanes:
      - name: north
        line: [[0, 10], [100, 10]]
"""


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def with_lane(extra_lane_yaml: str) -> str:
    return VALID + textwrap.indent(textwrap.dedent(extra_lane_yaml), " " * 6)


@pytest.mark.parametrize("name", ["highway.yaml", "pedestrians.yaml"])
def test_shipped_configs_are_valid(name):
    config = load_config(CONFIGS / name)
    assert config.streams[0].lanes


def test_valid_minimal_config_gets_defaults(tmp_path):
    config = load_config(write(tmp_path, VALID))
    assert config.model.task == "detect"
    assert config.counting.interval_s == 60
    assert config.tracker.lost_track_buffer_s == 1.0
    assert config.streams[0].lanes[0].direction.value == "both"


ERRORS = {
    "typo in a top-level key": (
        VALID + "countng: {}\n", ["countng: unknown key"]),
    "typo in a nested key": (
        VALID.replace("path: yolo11n.pt", "path: yolo11n.pt\n  confidance: 0.3"),
        ["model.confidance: unknown key"]),
    "missing model": (
        VALID.replace("model:\n  path: yolo11n.pt\n", ""), ["model: required but missing"]),
    "no streams": (
        "model: {path: a.pt}\nstreams: []\n", ["streams: List should have at least 1 item"]),
    "bad task": (
        VALID.replace("path: yolo11n.pt", "path: yolo11n.pt\n  task: classify"),
        ["model.task: Input should be 'detect' or 'segment'"]),
    "imgsz not a multiple of 32": (
        VALID.replace("path: yolo11n.pt", "path: yolo11n.pt\n  imgsz: 650"),
        ["model.imgsz: must be a multiple of 32"]),
    "confidence out of range": (
        VALID.replace("path: yolo11n.pt", "path: yolo11n.pt\n  confidence: 1.5"),
        ["model.confidence: Input should be less than 1"]),
    "line with one point": (
        VALID.replace("line: [[0, 10], [100, 10]]", "line: [[0, 10]]"),
        ["streams[0](cam1).lanes[0](north).line"]),
    "line with identical points": (
        VALID.replace("line: [[0, 10], [100, 10]]", "line: [[5, 5], [5, 5]]"),
        ["streams[0](cam1).lanes[0](north): line needs two distinct points"]),
    "lane without geometry": (
        VALID.replace("        line: [[0, 10], [100, 10]]\n", ""),
        ["lanes[0](north): a lane needs a polygon, a counting line, or both"]),
    "self-intersecting polygon": (
        with_lane("- name: bow\n  polygon: [[0, 0], [10, 10], [10, 0], [0, 10]]\n"),
        ["lanes[1](bow): polygon edges cross each other"]),
    "polygon with two points": (
        with_lane("- name: thin\n  polygon: [[0, 0], [10, 10]]\n"),
        ["lanes[1](thin): polygon needs at least 3 points"]),
    "duplicate lane names": (
        with_lane("- name: north\n  line: [[0, 20], [100, 20]]\n"),
        ["streams[0](cam1).lanes: lane names must be unique; repeated: north"]),
    "duplicate stream ids": (
        VALID + "  - id: cam1\n    source: b.mp4\n",
        ["stream ids must be unique; repeated: cam1"]),
    "bad stream id": (
        VALID.replace("id: cam1", "id: 'cam 1'"), ["streams[0](cam 1).id: String should match"]),
    "bad direction": (
        VALID.replace("line: [[0, 10], [100, 10]]",
                      "line: [[0, 10], [100, 10]]\n        direction: up"),
        ["lanes[0](north).direction: Input should be 'both', 'in' or 'out'"]),
    "congestion without polygon": (
        VALID.replace("line: [[0, 10], [100, 10]]",
                      "line: [[0, 10], [100, 10]]\n        congestion: {min_occupancy: 3}"),
        ["congestion needs a polygon"]),
    "tracker thresholds inverted": (
        VALID + "tracker: {low_threshold: 0.6, high_threshold: 0.5}\n",
        ["tracker: low_threshold (0.6) must be below high_threshold (0.5)"]),
    "two problems reported together": (
        VALID + "countng: {}\noutput: {vidoe: true}\n",
        ["2 problem(s)", "countng: unknown key", "output.vidoe: unknown key"]),
    "not a mapping": ("- just\n- a list\n", ["expected a mapping with model: and streams:"]),
    "invalid YAML": ("model: {path: a.pt\nstreams: [\n", ["not valid YAML at line"]),
    "unset environment variable": (
        VALID.replace("rtsp://example/stream", "rtsp://${LW_TEST_UNSET_VAR}@cam/1"),
        ["streams[0].source: environment variable LW_TEST_UNSET_VAR is not set"]),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_config_errors_name_the_field(tmp_path, name):
    text, fragments = ERRORS[name]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_environment_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("LW_CAM_PASSWORD", "s3cret")
    text = VALID.replace("rtsp://example/stream", "rtsp://admin:${LW_CAM_PASSWORD}@cam/1")
    text = text.replace("path: yolo11n.pt", "path: ${LW_TEST_MODEL:-fallback.pt}")
    config = load_config(write(tmp_path, text))
    assert config.streams[0].source == "rtsp://admin:s3cret@cam/1"
    assert config.model.path == "fallback.pt"


def test_escaped_dollar_brace_is_literal(tmp_path):
    config = load_config(write(tmp_path, VALID.replace("rtsp://example/stream", "cam$${x}")))
    assert config.streams[0].source == "cam${x}"


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.onnx").write_bytes(b"")
    text = VALID.replace("yolo11n.pt", "../model.onnx")
    config = load_config(write(tmp_path / "sub", text))
    assert config.model.path == str((tmp_path / "model.onnx").resolve())
    assert config.streams[0].source == "rtsp://example/stream"  # URLs untouched


def test_check_config_prints_a_summary(capsys):
    assert main(["check-config", str(CONFIGS / "highway.yaml")]) == 0
    out = capsys.readouterr().out
    assert "highway.yaml: OK" in out
    for lane in ("lane1", "lane2", "lane3", "lane4"):
        assert f"{lane}: line" in out


def test_check_config_invalid_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, VALID + "countng: {}\n")
    proc = subprocess.run([sys.executable, "-m", "lanewatch.stream.cli", "check-config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "countng: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_readme_configuration_reference_is_current():
    from lanewatch.stream.config.reference import embedded, reference

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    assert embedded(readme) == reference(), (
        "README's configuration reference is stale: regenerate it from "
        "`python -m lanewatch.stream.config.reference`")
