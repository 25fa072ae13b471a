"""`lanewatch check-config` (issue 19, items 6a and 8): it never prints a password, and it fails,
with exit code 2 and a one-line error naming the key path and the fix, for what would only fail
later: malformed `${...}` references, a missing model, a coordinate that is not a finite
number, a lane outside the frame."""

from __future__ import annotations

import textwrap

import pytest
from test_config import VALID  # the same minimal valid config

from lanewatch.stream.cli import main

from videos import write_video

LINE = "line: [[0, 10], [100, 10]]"


def check(tmp_path, text: str, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `lanewatch check-config` on this config text."""
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(text))
    code = main(["check-config", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("password", ["hunter22", "p@ss:w0rd"])
def test_check_config_never_prints_the_password(tmp_path, capsys, monkeypatch, password):
    monkeypatch.setenv("LW_CAM_PASSWORD", password)
    text = VALID.replace("rtsp://example/stream", "rtsp://viewer:${LW_CAM_PASSWORD}@cam:554/s1")
    code, out, err = check(tmp_path, text, capsys)
    assert code == 0, err
    assert password not in out + err
    assert "rtsp://viewer:***@cam:554/s1" in out


def test_a_password_that_breaks_the_url_is_refused_without_printing_it(tmp_path, capsys,
                                                                      monkeypatch):
    # Unencoded, the / ends the URL's authority (for FFmpeg too): refused, how to fix it said.
    monkeypatch.setenv("LW_CAM_PASSWORD", "p#ss/w?rd")
    text = VALID.replace("rtsp://example/stream", "rtsp://viewer:${LW_CAM_PASSWORD}@cam:554/s1")
    code, out, err = check(tmp_path, text, capsys)
    assert code == 2, out
    assert "percent-encode any @ : / ? # in the user name or password" in err
    for secret in ("p#ss", "w?rd"):
        assert secret not in out + err


def test_check_config_hides_a_database_password(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LW_PG_PASSWORD", "pg-s3cret")
    text = VALID + "store: {url: 'postgresql://counter:${LW_PG_PASSWORD}@db:5432/lw'}\n"
    code, out, err = check(tmp_path, text, capsys)
    assert code == 0, err
    assert "pg-s3cret" not in out + err


# name: (config text, fragments of the error line). Each must fail with exit code 2.
BAD = {
    "unclosed reference": (
        VALID.replace("rtsp://example/stream", "rtsp://u:${LW_PW@cam/1"),
        ["streams[0].source: malformed environment reference '${LW_PW@cam/1'",
         "${NAME} or ${NAME:-default}"]),
    "default without the dash": (
        VALID.replace("rtsp://example/stream", "rtsp://u:${LW_PW:secret}@cam/1"),
        ["streams[0].source: malformed environment reference '${LW_PW:...}'"]),
    "name starting with a digit": (
        VALID.replace("yolo11n.pt", "${1MODEL}"),
        ["model.path: malformed environment reference '${1MODEL}'"]),
    "empty reference": (
        VALID.replace("rtsp://example/stream", "rtsp://cam/${}"),
        ["streams[0].source: malformed environment reference '${}'", "$${"]),
    "missing model file": (
        VALID.replace("yolo11n.pt", "models/missing.onnx"),
        ["model.path: models/missing.onnx not found", "relative to the config file"]),
    "missing model directory": (
        VALID.replace("yolo11n.pt", "/nonexistent/yolo11n_openvino_model"),
        ["model.path: /nonexistent/yolo11n_openvino_model not found"]),
    "NaN coordinate": (
        VALID.replace(LINE, "line: [[0, .nan], [100, 10]]"),
        ["streams[0](cam1)", "lanes[0](north).line[0][1] is not a number (NaN)", "finite"]),
    "infinite coordinate": (
        VALID.replace(LINE, "polygon: [[0, 0], [.inf, 0], [0, 10]]"),
        ["lanes[0](north).polygon[1][0] is infinite"]),
    "NaN in a calibration point": (
        VALID + "    calibration: {image_points: [[0, 0], [1, 0], [1, 1], [.nan, 1]], "
        "world_points: [[0, 0], [1, 0], [1, 1], [0, 1]]}\n",
        ["calibration.image_points[3][0] is not a number (NaN)"]),
    "infinite push interval": (
        VALID + "server: {counts_interval_s: .inf}\n",
        ["server.counts_interval_s is infinite", "finite"]),
    "NaN batch time-out": (
        VALID.replace("yolo11n.pt", "yolo11n.pt\n  batch_timeout_ms: .nan"),
        ["model.batch_timeout_ms is not a number (NaN)"]),
    "source port out of range": (
        VALID.replace("rtsp://example/stream", "rtsp://u:pw@cam:99999/s"),
        ["streams[0](cam1).source: source URL port must be a number in 1-65535"]),
    "source scheme FFmpeg would not open": (
        VALID.replace("rtsp://example/stream", "rtps://cam/s"),
        ["streams[0](cam1).source: source scheme 'rtps://' is not supported"]),
    "normalized line outside 0..1": (
        VALID.replace("    lanes:", "    coordinates: normalized\n    lanes:")
        .replace(LINE, "line: [[0, 0.5], [1.2, 0.5]]"),
        ["streams[0](cam1)", "lanes[0](north).line: point (1.2, 0.5) is not in 0..1",
         "coordinates: pixels"]),
    "normalized zone outside 0..1": (
        VALID.replace("    lanes:", "    coordinates: normalized\n    lanes:")
        .replace(LINE, "line: [[0, 0.5], [1, 0.5]]")
        + "    turning:\n      zones:\n"
          "        - {name: a, polygon: [[0, 0], [0.5, 0], [0.5, -0.5]]}\n"
          "        - {name: b, polygon: [[0, 0.6], [0.5, 0.6], [0.5, 0.9]]}\n",
        ["turning.zones[0](a).polygon: point (0.5, -0.5) is not in 0..1"]),
    "negative pixel coordinate": (
        VALID.replace(LINE, "line: [[-5, 10], [100, 10]]"),
        ["lanes[0](north).line: point (-5, 10) is negative"]),
}


@pytest.mark.parametrize("name", list(BAD))
def test_check_config_rejects(tmp_path, capsys, monkeypatch, name):
    monkeypatch.delenv("LW_PW", raising=False)
    text, fragments = BAD[name]
    code, out, err = check(tmp_path, text, capsys)
    assert code == 2, out
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if fragments[0] in line]
    assert len(lines) == 1, err  # the problem is one line of its own
    for fragment in fragments:
        assert fragment in lines[0], err


@pytest.mark.parametrize("line, ok", [
    ("[[0, 10], [320, 10]]", True),  # on the frame's edge
    ("[[0, 10], [400, 10]]", False),
    ("[[0, 250], [100, 250]]", False),
])
def test_pixel_lanes_are_checked_against_a_file_sources_frame(tmp_path, capsys, line, ok):
    video = write_video(tmp_path / "small.mp4", frames=2, size=(320, 240))
    text = VALID.replace("rtsp://example/stream", str(video)).replace(LINE, f"line: {line}")
    code, out, err = check(tmp_path, text, capsys)
    if ok:
        assert code == 0, err
    else:
        assert code == 2
        assert "streams[0](cam1).lanes[0](north).line: point" in err
        assert "outside the 320x240 frame of small.mp4" in err


def test_escaped_reference_and_hub_model_names_still_pass(tmp_path, capsys):
    text = VALID.replace("rtsp://example/stream", "rtsp://cam/$${not_a_reference}")
    code, out, err = check(tmp_path, text, capsys)
    assert code == 0, err
    assert "rtsp://cam/${not_a_reference}" in out


@pytest.mark.parametrize("depth", [40, 300, 5000])
def test_deeply_nested_config_is_a_clear_error(tmp_path, capsys, depth):
    text = VALID + "counting: {extra: " + "[" * depth + "]" * depth + "}\n"
    code, out, err = check(tmp_path, text, capsys)
    assert code == 2, out
    assert "Traceback" not in err
    assert "nested" in err
