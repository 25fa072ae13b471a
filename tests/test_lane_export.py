"""Lanes from the dashboard's editor: validated like a config file, exported as YAML in the
stream's coordinate mode, and spliced into the config file without resolving its ${ENV}."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from lanewatch.sinks.errors import ConfigError
from lanewatch.stream.config.loading import load_config
from lanewatch.stream.config.schema import StreamConfig
from lanewatch.stream.serve.lane_export import config_yaml, lanes_from_editor, lanes_yaml

from conftest import ASSETS

PIXELS = StreamConfig(id="cam", source="cam.mp4")
NORMALIZED = StreamConfig(id="cam", source="cam.mp4", coordinates="normalized")
LANE = {"name": "a", "polygon": [[100, 100], [300, 100], [300, 400]],
        "line": [[100, 200], [300, 200.4]], "direction": "in"}


@pytest.mark.parametrize("stream, expected_line", [
    (PIXELS, [[100, 200], [300, 200]]),  # whole pixels
    (NORMALIZED, [[0.1, 0.4], [0.3, 0.4008]]),  # fractions of the 1000x500 frame
])
def test_lanes_are_exported_in_the_streams_coordinates(stream, expected_line):
    specs = lanes_from_editor({"lanes": [LANE]}, stream, (1000, 500))
    exported = yaml.safe_load(lanes_yaml(specs))["lanes"]
    assert exported[0]["line"] == expected_line
    assert exported[0]["direction"] == "in" and exported[0]["name"] == "a"
    assert "in_label" not in exported[0]  # defaults are left out


@pytest.mark.parametrize("payload, message", [
    ([LANE], 'expected {"lanes": [...]}'),
    ({"lanes": ["a"]}, "each lane must be an object"),
    ({"lanes": [{**LANE, "line": [[1, 2, 3]]}]}, "line must be a list of [x, y] points"),
    ({"lanes": [LANE, LANE]}, "lane names must be unique; repeated: a"),
    ({"lanes": [{**LANE, "line": [[5, 5], [5, 5]]}]}, "line needs two distinct points"),
    ({"lanes": [{**LANE, "polygon": [[1, 1], [2, 2]]}]}, "at least 3 points"),
    ({"lanes": [{**LANE, "line": [[100, 200], [1200, 200]]}]}, "outside the 1000x500 frame"),
    ({"lanes": [{**LANE, "colour": "red"}]}, "colour"),
    ({"lanes": [{"name": "b"}]}, "a lane needs a polygon, a counting line, or both"),
])
def test_bad_lanes_get_clear_errors(payload, message):
    with pytest.raises(ConfigError) as info:
        lanes_from_editor(payload, PIXELS, (1000, 500))
    assert message in str(info.value)


def test_whole_config_keeps_env_references_and_passes_check_config(tmp_path, monkeypatch):
    monkeypatch.setenv("CAM_PASSWORD", "hunter22")
    (tmp_path / "model").mkdir()
    path = tmp_path / "site.yaml"
    path.write_text(textwrap.dedent("""
        model: {path: model}
        streams:
          - id: gate
            source: rtsp://viewer:${CAM_PASSWORD}@10.0.0.7/stream1
            lanes:
              - {name: old, line: [[0, 10], [50, 10]]}
          - id: other
            source: other.mp4
    """))
    specs = lanes_from_editor({"lanes": [LANE]}, load_config(path).streams[0], (1000, 500))
    text = config_yaml(path, "gate", specs)
    assert "${CAM_PASSWORD}" in text and "hunter22" not in text
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    config = load_config(exported)
    assert [lane.name for lane in config.streams[0].lanes] == ["a"]
    assert config.streams[0].source.endswith("viewer:hunter22@10.0.0.7/stream1")
    assert config.streams[1].id == "other"
    with pytest.raises(ConfigError, match="has no stream 'gone'"):
        config_yaml(path, "gone", specs)


# -- issue 22: the exported YAML pastes as-is; the whole config keeps the file as written ------
HIGHWAY = Path(__file__).resolve().parent.parent / "configs" / "highway.yaml"


def test_the_lanes_block_pastes_as_is_under_a_streams_item(tmp_path):
    (tmp_path / "model").mkdir()
    block = lanes_yaml(lanes_from_editor({"lanes": [LANE]}, PIXELS, (1000, 500)))
    head = "model: {path: model}\nstreams:\n  - id: cam\n    source: cam.mp4\n"
    path = tmp_path / "pasted.yaml"
    path.write_text(head + block + "  - id: other\n    source: other.mp4\n")
    config = load_config(path)
    assert [lane.name for lane in config.streams[0].lanes] == ["a"]
    assert config.streams[0].lanes[0].line == ((100, 200), (300, 200))
    assert config.streams[1].id == "other"


def test_whole_config_keeps_every_comment_and_line_of_the_file(tmp_path, monkeypatch):
    """configs/highway.yaml with lane2's line moved, lane3 removed and a lane added: every
    comment line survives, every line outside the changed lanes is byte-for-byte the same, and
    the result loads with the new lanes."""
    stream = load_config(HIGHWAY).streams[0]
    lanes = [{**lane.model_dump(mode="json", exclude_defaults=True), "direction": "in"}
             for lane in stream.lanes]
    lanes[1]["line"] = [[530, 262], [650, 262]]
    del lanes[2]
    lanes.append({"name": "shoulder", "line": [[20, 600], [120, 600]]})
    specs = lanes_from_editor({"lanes": lanes}, stream, (1280, 720))
    original = HIGHWAY.read_text()
    text = config_yaml(HIGHWAY, "highway", specs)
    comments = [line.strip() for line in original.splitlines() if "#" in line]
    for comment in comments:
        if "lane3" not in comment:
            assert any(comment.split("#", 1)[1] in line for line in text.splitlines()), comment
    assert "name: lane1           # leftmost lane" in text  # in place, at its column
    before, after = original.split("    lanes:\n")[0], text.split("    lanes:\n")[0]
    assert before == after  # model, calibration (its flow lists broken over lines), ...
    monkeypatch.setenv("LANEWATCH_ASSETS", str(ASSETS))  # its paths, from anywhere
    exported = tmp_path / "exported.yaml"
    exported.write_text(text)
    config = load_config(exported)
    assert [lane.name for lane in config.streams[0].lanes] == ["lane1", "lane2", "lane4",
                                                               "shoulder"]
    assert config.streams[0].lanes[1].line == ((530, 262), (650, 262))
    assert config.streams[0].lanes[0].congestion == stream.lanes[0].congestion


def test_unchanged_lanes_leave_the_file_byte_for_byte():
    stream = load_config(HIGHWAY).streams[0]
    specs = lanes_from_editor({"lanes": [
        {**lane.model_dump(mode="json", exclude_defaults=True), "direction": "in"}
        for lane in stream.lanes]}, stream, (1280, 720))
    assert config_yaml(HIGHWAY, "highway", specs) == HIGHWAY.read_text()


def test_settings_the_editor_does_not_show_are_kept():
    stream = StreamConfig(id="cam", source="cam.mp4", lanes=[{**LANE, "max_dwell_s": 30}])
    specs = lanes_from_editor({"lanes": [dict(LANE)]}, stream, (1000, 500))
    assert specs[0].max_dwell_s == 30


SITE = """model: {path: model}
streams:
  - id: a
    source: a.mp4
    lanes:   # the lanes
      - name: l1   # first
        line: [[0, 10], [50, 10]]
      # the bus lane, next:
      - name: l2
        line: [[0, 20], [50, 20]]   # moved last week
      - name: l4
        line: [[0, 40], [50, 40]]
    # about the key after the lanes
    coordinates: pixels

  - id: b
    source: b.mp4
# the server
server: {port: 1}
"""


@pytest.mark.parametrize("stream, lanes, expected", [
    # l1 changed: its end-of-line comment stays at its column; l2 as written (a default added
    # is no change), with the comment before it; l4 removed; l3 new at the end.
    ("a", [{"name": "l1", "line": [[0, 11], [50, 11]]},
           {"name": "l2", "line": [[0, 20], [50, 20]], "direction": "both"},
           {"name": "l3", "line": [[0, 30], [50, 30]], "direction": "in"}],
     SITE.replace("""      - name: l1   # first
        line: [[0, 10], [50, 10]]
""", """      - name: l1   # first
        line: [[0, 11], [50, 11]]
        direction: both
""").replace("""      - name: l4
        line: [[0, 40], [50, 40]]
""", """      - name: l3
        line: [[0, 30], [50, 30]]
        direction: in
""")),
    # a stream without lanes: its new lanes: key goes before the comment of the next key
    ("b", [{"name": "l1", "line": [[0, 11], [50, 11]]}],
     SITE.replace("""    source: b.mp4
""", """    source: b.mp4
    lanes:
      - name: l1
        line: [[0, 11], [50, 11]]
        direction: both
""")),
], ids=["changed-kept-removed-added", "no-lanes-yet"])
def test_splice_keeps_the_comments_around_and_inside_the_lanes(tmp_path, stream, lanes,
                                                                 expected):
    (tmp_path / "model").mkdir()
    path = tmp_path / "site.yaml"
    path.write_text(SITE)
    specs = lanes_from_editor({"lanes": lanes}, load_config(path).streams[0], (1000, 500))
    assert config_yaml(path, stream, specs) == expected
